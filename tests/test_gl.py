"""The live compositor (GLSL, headless EGL on Mesa) draws what `render` writes (numpy), pixel by pixel."""

import os
import subprocess
import sys

import numpy as np
import pytest

CODE = r"""
import json, sys
import numpy as np
from livejpp.render.gl import offscreen
from livejpp.render.player import ClipFrames
media = sys.argv[1]
size = (320, 180)
a = ClipFrames(media + "/av/big_buck_bunny_0_30.webm", size).frame_at(12.0)
b = ClipFrames(media + "/footage/earth.mp4", size).frame_at(3.0)
window, gl = offscreen(*size)
gl.upload(0, a)
gl.upload(1, b)
out = {}
for w in (0.0, 0.25, 0.5, 0.8, 1.0):
    gl.draw(w)
    np.save(sys.argv[2] + f"/gl_{w}.npy", gl.read_pixels())
gl.draw(0.5, blackout=True)
np.save(sys.argv[2] + "/gl_black.npy", gl.read_pixels())
np.save(sys.argv[2] + "/a.npy", a)
np.save(sys.argv[2] + "/b.npy", b)
window.close()
"""


def test_gl_crossfade_equals_the_numpy_compositor(media, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    run = subprocess.run(
        [sys.executable, "-c", CODE, str(media), str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    if run.returncode != 0 and "EGL" in run.stderr and "libEGL" in run.stderr:
        pytest.fail(f"headless OpenGL (EGL) is missing: {run.stderr.splitlines()[-1]}")
    assert run.returncode == 0, run.stderr
    from livejpp.render.compose import mix

    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert np.abs(a.astype(int) - b).mean() > 30  # two really different pictures
    for w in (0.0, 0.25, 0.5, 0.8, 1.0):
        drawn = np.load(tmp_path / f"gl_{w}.npy").astype(int)
        expected = mix(a, b, w).astype(int)
        assert np.abs(drawn - expected).max() <= 1, w  # the same picture, to one level in 255
    assert np.load(tmp_path / "gl_black.npy").max() == 0
