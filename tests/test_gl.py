"""The live compositor (GLSL, headless EGL on Mesa) draws what `render` writes (numpy), pixel by pixel,
for every transition; the live-only effects do what they say."""

import numpy as np
from headless_gl import run_gl_script

CODE = r"""
import json, sys
import numpy as np
from livejpp.render.gl import offscreen
from livejpp.media.player import ClipFrames
media = sys.argv[1]
size = (320, 180)
a = ClipFrames(media + "/av/big_buck_bunny_0_30.webm", size).frame_at(12.0)
b = ClipFrames(media + "/footage/earth.mp4", size).frame_at(3.0)
window, gl = offscreen(*size)
gl.upload(0, a)
gl.upload(1, b)
for kind in range(3):
    gl.transition = kind
    for w in (0.0, 0.25, 0.5, 0.8, 1.0):
        gl.draw(w)
        np.save(sys.argv[2] + f"/gl_{kind}_{w}.npy", gl.read_pixels())
gl.transition = 0
for effect in (1, 2):
    gl.effect, gl.amount = effect, 1.0
    gl.draw(0.0)  # the bunny, far from symmetric
    np.save(sys.argv[2] + f"/effect_{effect}.npy", gl.read_pixels())
gl.effect = 0
gl.draw(0.5, blackout=True)
np.save(sys.argv[2] + "/gl_black.npy", gl.read_pixels())
np.save(sys.argv[2] + "/a.npy", a)
rgba = ClipFrames(media + "/av/big_buck_bunny_0_30.webm", size).frame_at(12.0, rgba=True)  # the live decoder's
gl.upload(0, rgba)
gl.draw(0.0)
np.save(sys.argv[2] + "/rgba_drawn.npy", gl.read_pixels())
np.save(sys.argv[2] + "/rgba.npy", rgba)
np.save(sys.argv[2] + "/b.npy", b)
window.close()
"""


def test_gl_crossfade_equals_the_numpy_compositor(media, tmp_path):
    run_gl_script(CODE, str(media), str(tmp_path), timeout=120)
    from livejpp.media.compose import TRANSITIONS, transition

    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert np.abs(a.astype(int) - b).mean() > 30  # two really different pictures
    for kind, name in enumerate(TRANSITIONS):
        for w in (0.0, 0.25, 0.5, 0.8, 1.0):
            drawn = np.load(tmp_path / f"gl_{kind}_{w}.npy").astype(int)
            expected = transition(a, b, w, name).astype(int)
            assert np.abs(drawn - expected).max() <= 1, (name, w)  # the same picture, to one level in 255
    mirrored = np.load(tmp_path / "effect_1.npy").astype(int)
    assert np.abs(mirrored - mirrored[:, ::-1]).mean() < 1 and np.abs(mirrored - a).mean() > 10
    assert np.abs(mirrored[:, :160] - a[:, :160]).max() <= 1  # the left half, reflected
    inverted = np.load(tmp_path / "effect_2.npy").astype(int)
    assert np.abs(inverted - (255 - a.astype(int))).max() <= 1
    assert np.load(tmp_path / "gl_black.npy").max() == 0
    # the live decoder's RGBA pictures (4-byte pixels: half the CPU) draw as they are; they are the RGB picture
    # to a few levels (swscale rounds its 3- and 4-byte paths differently: a level on average here)
    rgba = np.load(tmp_path / "rgba.npy")
    assert rgba.shape == (180, 320, 4) and np.array_equal(np.load(tmp_path / "rgba_drawn.npy"), rgba[..., :3])
    off = np.abs(rgba[..., :3].astype(int) - a)
    assert off.mean() < 1.5 and off.max() <= 4
