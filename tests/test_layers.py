"""Extra layers over the matcher's picture: the GL compositor (headless EGL) draws what the numpy
compositor (`compose.blend`) computes, for every blend mode, and an empty or transparent layer draws nothing."""

import numpy as np
from headless_gl import run_gl_script

CODE = r"""
import sys
import numpy as np
from livejpp.errors import LivejppError
from livejpp.render.compose import BLENDS, LayerDraw
from livejpp.render.gl import GLCompositor, offscreen
from livejpp.render.player import ClipFrames
media, out = sys.argv[1], sys.argv[2]
size = (320, 180)
pictures = {
    "a": ClipFrames(media + "/av/big_buck_bunny_0_30.webm", size).frame_at(12.0),
    "b": ClipFrames(media + "/footage/earth.mp4", size).frame_at(3.0),
    "c": ClipFrames(media + "/footage/mdn_flower.mp4", size).frame_at(1.0),
    "d": ClipFrames(media + "/footage/tree.avi", size).frame_at(1.0),
}
window, gl = offscreen(*size, layers=4)
for slot, name in enumerate("abcd"):
    gl.upload(slot, pictures[name])  # slot 4 (extra layer 3) is never uploaded
for mode in BLENDS:
    gl.draw(0.5, extra=[LayerDraw(0.6, mode)])
    np.save(out + f"/one_{mode}.npy", gl.read_pixels())
gl.draw(0.3, extra=[LayerDraw(0.5, "screen"), LayerDraw(0.7, "multiply")])
np.save(out + "/two.npy", gl.read_pixels())
gl.draw(0.5, extra=[LayerDraw(0.0, "add"), LayerDraw(0.0, "alpha"), LayerDraw(1.0, "alpha")])
np.save(out + "/none.npy", gl.read_pixels())
for name, picture in pictures.items():
    np.save(out + f"/{name}.npy", picture)
try:
    GLCompositor(*size, layers=1000)
except LivejppError as error:
    print("refused:", error)
window.close()
"""


def test_gl_layers_equal_the_numpy_blend(media, tmp_path):
    run = run_gl_script(CODE, str(media), str(tmp_path), timeout=120)
    from livejpp.render.compose import BLENDS, blend, mix

    a, b, c, d = (np.load(tmp_path / f"{name}.npy") for name in "abcd")
    for x, y in ((a, b), (a, c), (b, c), (c, d), (a, d)):
        assert np.abs(x.astype(int) - y).mean() > 20  # four really different pictures
    matcher = mix(a, b, 0.5)
    for mode in BLENDS:
        drawn = np.load(tmp_path / f"one_{mode}.npy").astype(int)
        expected = blend(matcher, c, 0.6, mode).astype(int)
        assert np.abs(expected - matcher).mean() > 5, mode  # the layer really changes the picture
        assert np.abs(drawn - expected).max() <= 1, mode  # the same picture, to one level in 255
    results = [blend(matcher, c, 0.6, mode) for mode in BLENDS]
    for i in range(len(results)):
        for j in range(i):
            assert np.abs(results[i].astype(int) - results[j]).mean() > 5  # four different blends
    expected = blend(blend(mix(a, b, 0.3), c, 0.5, "screen"), d, 0.7, "multiply").astype(int)
    assert np.abs(np.load(tmp_path / "two.npy").astype(int) - expected).max() <= 1  # layers in order
    # opacity 0 and a slot never uploaded (at opacity 1) draw nothing: not a black layer
    assert np.abs(np.load(tmp_path / "none.npy").astype(int) - matcher).max() <= 1
    refused = [line for line in run.stdout.splitlines() if line.startswith("refused:")]
    assert len(refused) == 1 and "1000 layers" in refused[0] and "texture units" in refused[0]
