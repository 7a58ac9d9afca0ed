"""`live --frames gpu`: the decoder hands the window its pictures as decoded (YUV planes, HAP's DXT blocks) and
the shader converts, scales and crops them; what the show records is what the CPU's RGB of the same frames
shows. Bad input goes on with one line: odd pictures (odd width, 4:2:2, 10-bit, alpha), a HAP clip whose first
frame is damaged, pictures larger than the GL's texture limit; the standby picture and the calibration loop's
flashes (RGB) still show. Real parts: videos made here by PyAV, libraries
built by `library build`, headless EGL shows read back through their recordings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from headless_gl import run_gl_script
from test_hap import damage_frames
from test_live import live_command, recorded

from livejpp.library.store import LibraryStore
from livejpp.media.player import ClipFrames
from livejpp.media.standby import standby_picture

SIZE = (320, 180)
RECENT = 3  # cuts whose clips a recorded frame may show (a frame from any of them is a right picture)


def gradient_video(path: Path, codec: str, pix_fmt: str, width: int, height: int, hue: int = 0) -> Path:
    """4 s at 30 fps of smooth gradients that move every frame (a wrong frame, matrix or range shows)."""
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        options = {"preset": "ultrafast"} if codec == "libx264" else {}
        stream = container.add_stream(codec, rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for n in range(120):
            rgb = [(xx * 255 // width + 4 * n) % 256, yy * 255 // height, np.full_like(xx, (8 * n + hue) % 256)]
            alpha = [np.full_like(xx, 200)] if pix_fmt.startswith("yuva") else []
            picture = np.stack(rgb + alpha, -1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgba" if alpha else "rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = n, Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def build(folder: Path, lib: Path, *args: str) -> Path:
    command = [sys.executable, "-m", "livejpp", "library", "build", str(folder), "--out", str(lib), "-q"]
    run = subprocess.run([*command, "--clip-seconds", "2", *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return lib


@pytest.fixture(scope="module")
def odd_library(tmp_path_factory) -> Path:
    """Odd pictures played from their sources as they are (--no-transcode): FFV1 keeps an odd size and alpha."""
    folder = tmp_path_factory.mktemp("odd")
    gradient_video(folder / "odd_width.mkv", "ffv1", "yuv420p", 321, 181, hue=0)
    gradient_video(folder / "four22.mkv", "libx264", "yuv422p", 320, 180, hue=60)
    gradient_video(folder / "ten_bit.mkv", "libx264", "yuv420p10le", 320, 180, hue=120)
    gradient_video(folder / "alpha.mkv", "ffv1", "yuva420p", 320, 180, hue=180)
    return build(folder, folder / "lib", "--no-transcode")


@pytest.fixture(scope="module")
def hap_library(tmp_path_factory) -> tuple[Path, list[Path]]:
    """`library build --codec hap` of a 320x180 and a 640x360 video (HAP clips of 2 s), the small one's clips
    with their first frame damaged; the library and those clips."""
    folder = tmp_path_factory.mktemp("hap")
    gradient_video(folder / "small.mp4", "libx264", "yuv420p", 320, 180, hue=0)
    gradient_video(folder / "large.mp4", "libx264", "yuv420p", 640, 360, hue=120)
    lib = build(folder, folder / "lib", "--codec", "hap")
    damaged = []
    for path in sorted({Path(path) for path, _, _ in clips(lib).values()}):
        with av.open(str(path)) as container:
            small = container.streams.video[0].codec_context.width == 320
        if small:
            damaged.append(damage_frames(path, path, (0,)))
    assert damaged
    return lib, damaged


def clips(lib: Path) -> dict[str, tuple[str, float, float]]:
    """Clip uid -> (file, start in it, length): where the show reads each clip's pictures."""
    with LibraryStore(lib, readonly=True) as store:
        return {record.uid: record.pictures(lib) for record in store.clips()}


def show(lib: Path, tmp_path: Path, *args) -> tuple[dict, list[np.ndarray], list[str]]:
    """A 4 s show without audio, a cut every half second (no crossfade): its stats, recorded frames and log lines."""
    command = live_command(lib, "--input", "no such device", "--max-clip", 0.5, "--min-clip", 0.25, "--crossfade", 0)
    command += ["--duration", "4", "--record", str(tmp_path / "show.mp4"), "--stats", str(tmp_path / "stats.json")]
    run = subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    return stats, recorded(tmp_path / "show.mp4"), run.stderr.splitlines()


def errors_against_rgb(lib: Path, stats: dict, frames: list[np.ndarray]) -> tuple[list[float], set[str]]:
    """Per recorded frame, its mean difference (levels) from the CPU's RGB of the nearest frame of a clip cut to
    in the last RECENT cuts: this checks what is shown (the colours of the GPU's conversion), not when (a decoder
    starved by a busy machine holds older pictures, and a due cut waits up to 0.5 s for its first one). The
    videos shown."""
    where = clips(lib)
    pictures: dict[str, np.ndarray] = {}
    cuts = stats["cuts"]
    errors, shown = [], set()
    for frame, t in zip(frames, stats["record"]["frame_show_times"], strict=False):
        on = [c for c in cuts if c["time"] + c["shown_late"] <= t + 1e-3][-RECENT:]
        candidates = []
        for cut in on:
            if cut["clip"] not in pictures:
                path, base, length = where[cut["clip"]]
                reader = ClipFrames(path, SIZE, base, length)
                pictures[cut["clip"]] = np.stack([reader.frame_at(k / 30) for k in range(round(length * 30))])
                reader.close()
            candidates.append(float(np.abs(pictures[cut["clip"]] - frame).mean(axis=(1, 2, 3)).min()))
        errors.append(min(candidates))
        shown.add(on[-1]["video"])
    return errors, shown


def assert_close(errors: list[float], typical: float = 2.5, worst: float = 8.0) -> None:
    """Frames within a few levels of the CPU's RGB; the worst a little more (x264 at the recorder's quality
    encodes a frame that changes a lot some levels off)."""
    assert len(errors) > 20 and np.median(errors) < typical and max(errors) < worst, np.round(errors, 1)


def said(lines: list[str], text: str) -> list[str]:
    return [line for line in lines if text in line]


def test_gpu_frames_show_odd_pictures_as_their_rgb(odd_library, tmp_path):
    stats, frames, lines = show(odd_library, tmp_path, "--frames", "gpu")
    assert len(said(lines, "pictures: decoded planes to the GPU")) == 1, lines
    errors, shown = errors_against_rgb(odd_library, stats, frames)
    assert shown == {"odd_width.mkv", "four22.mkv", "ten_bit.mkv", "alpha.mkv"}  # each kind was on screen
    assert_close(errors)
    assert not stats["skipped_clips"]
    converted = said(lines, "pictures are converted on the CPU")
    assert len(converted) == 1 and "alpha.mkv: yuva420p" in converted[0], lines  # one line for the file


def test_planes_larger_than_the_gl_limit_are_scaled_with_one_line(odd_library, tmp_path):
    stats, frames, lines = show(odd_library, tmp_path, "--frames", "gpu", "--max-texture", 160)
    scaled = said(lines, "larger than this GL draws (160): shown at a lower resolution")
    assert scaled and len(scaled) == len({line.split(":")[1] for line in scaled}), lines  # once per file
    errors, _ = errors_against_rgb(odd_library, stats, frames)
    assert_close(errors, typical=4.0, worst=10.0)  # a third of the samples: a little softer
    assert not stats["skipped_clips"]


def test_hap_library_plays_as_blocks_and_a_damaged_first_frame_or_a_large_clip_goes_on(hap_library, tmp_path):
    hap_library, damaged = hap_library
    stats, frames, lines = show(hap_library, tmp_path, "--frames", "gpu", "--max-texture", 400)
    assert len(said(lines, "damaged HAP frame at 0.00 s skipped")) == len(damaged), lines  # one line a file
    too_large = said(lines, "larger than this GL draws (400): decoded to RGB on the CPU")
    assert too_large and all("640x360" in line for line in too_large), lines
    errors, shown = errors_against_rgb(hap_library, stats, frames)
    assert shown == {"small.mp4", "large.mp4"} and not stats["skipped_clips"], stats["cuts"]
    assert_close(errors)


def test_hap_library_plays_in_rgb_frames(hap_library, tmp_path):
    hap_library, _ = hap_library
    stats, frames, lines = show(hap_library, tmp_path, "--frames", "rgb")
    errors, shown = errors_against_rgb(hap_library, stats, frames)
    assert shown == {"small.mp4", "large.mp4"} and not stats["skipped_clips"], stats["cuts"]
    assert_close(errors)


def test_a_dxv_library_plays_its_blocks_in_the_show(tmp_path):
    """Resolume DXV loops copied into a library as they are: `live --frames gpu` draws their DXT blocks (a damaged
    first frame of one says so, once: the frames went through the block path) as the CPU's decode shows them."""
    folder = tmp_path / "loops"
    folder.mkdir()
    gradient_video(folder / "small.mov", "dxv", "rgba", 320, 180, hue=0)
    gradient_video(folder / "large.mov", "dxv", "rgba", 640, 360, hue=120)
    lib = build(folder, tmp_path / "lib")
    copies = sorted({Path(path) for path, _, _ in clips(lib).values()})
    assert [p.name for p in copies] == ["video.mov", "video.mov"]  # copied as they are, not encoded again
    for copy in copies:
        with av.open(str(copy)) as container:
            if container.streams.video[0].codec_context.width == 320:
                damaged, first = copy, next(p.pos for p in container.demux(video=0) if p.size)
    data = bytearray(damaged.read_bytes())
    data[first + 8] ^= 0x55  # the first frame's header no longer says its size
    damaged.write_bytes(bytes(data))
    stats, frames, lines = show(lib, tmp_path, "--frames", "gpu")
    assert len(said(lines, "damaged DXV frame at 0.00 s skipped")) == 1, lines
    assert not said(lines, "decoded by FFmpeg"), lines
    errors, shown = errors_against_rgb(lib, stats, frames)
    assert shown == {"small.mov", "large.mov"} and not stats["skipped_clips"], stats["cuts"]
    assert_close(errors)


AUTO = r"""
import logging
logging.basicConfig(level=logging.INFO)
from livejpp.render.gl import frames_for, offscreen
window, _ = offscreen(64, 36)
print("chose", frames_for("auto"), frames_for("gpu"))
window.close()
"""


def test_auto_frames_are_rgb_on_a_software_gl():
    run = run_gl_script(AUTO)
    assert "chose rgb gpu" in run.stdout
    lines = said(run.stderr.splitlines(), "pictures:")
    assert "RGB converted on the CPU" in lines[0] and "llvmpipe" in lines[0] and "software GL" in lines[0], lines
    assert "decoded planes to the GPU" in lines[1] and "--frames gpu" in lines[1], lines


def test_gpu_frames_fall_back_to_the_standby_picture_when_no_clip_plays(hap_library, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(hap_library[0], lib)
    for path in (lib / "clips").rglob("*.mov"):
        path.write_bytes(path.read_bytes()[:2000])  # cut short: no clip can play
    stats, frames, lines = show(lib, tmp_path, "--frames", "gpu", "--no-hud")
    assert len(said(lines, "showing the standby picture")) == 1, lines
    standby = standby_picture(SIZE).astype(int)
    assert frames and max(float(np.abs(frame - standby).mean()) for frame in frames) < 3  # RGB, from the first frame


def test_gpu_frames_flash_the_calibration_loop(odd_library, tmp_path):
    stats, frames, lines = show(odd_library, tmp_path, "--frames", "gpu", "--no-hud", "--calibrate", "loop")
    levels = [float(frame.mean()) for frame in frames]
    assert all(level < 3 or level > 252 for level in levels), np.round(levels)  # white or black, no clip
    assert sum(level > 252 for level in levels) >= 3 and sum(level < 3 for level in levels) >= 30
