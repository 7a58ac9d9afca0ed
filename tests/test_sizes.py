"""`--size` that cannot be drawn or encoded stops `live` and `render` with one line, before they start."""

import shutil
import subprocess
import sys

import pytest

SONG = "music/Kevin_MacLeod-Vibe_Ace.ogg"


@pytest.fixture(scope="module")
def lib(real_library, tmp_path_factory):
    copy = tmp_path_factory.mktemp("sizes") / "lib"
    shutil.copytree(real_library[0], copy)
    return copy


def livejpp(*args):
    return subprocess.run(
        [sys.executable, "-m", "livejpp", *map(str, args)], capture_output=True, text=True, timeout=90
    )


@pytest.mark.parametrize(
    "size, says",
    [
        ("0x0", "--size 0x0: width and height must be positive"),
        ("-2x4", "--size -2x4: width and height must be positive"),
        ("100000x100000", "100000x100000: this OpenGL draws at most"),
    ],
)
def test_live_refuses_a_size_it_cannot_draw(lib, media, size, says):
    out = livejpp(
        "live", "--library", lib, "--play", media / SONG, "--silent", "--headless", f"--size={size}", "--osc-port=0"
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith(f"livejpp: error: {says}")
    assert "Traceback" not in out.stderr


def test_live_refuses_to_record_an_odd_size(lib, media, tmp_path):
    out = livejpp(
        "live", "--library", lib, "--play", media / SONG, "--silent", "--headless", "--size=321x181", "--osc-port=0",
        "--record", tmp_path / "show.mp4",
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == "livejpp: error: 321x181: width and height must be even for H.264"


@pytest.mark.parametrize(
    "size, says",
    [
        ("0x0", "--size 0x0: width and height must be positive"),
        ("100000x100000", "100000x100000: H.264 (libx264) encodes at most 16384 pixels a side"),
        ("16386x16", "16386x16: H.264 (libx264) encodes at most 16384 pixels a side"),
    ],
)
def test_render_refuses_a_size_it_cannot_encode(lib, media, tmp_path, size, says):
    out = livejpp("render", media / SONG, "--library", lib, "--out", tmp_path / "v.mp4", f"--size={size}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"livejpp: error: {says}"]
    assert not (tmp_path / "v.mp4").exists()
