"""Bad input: one clear line naming the file and the reason; the build goes on; nothing is lost."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from synth import tone, write_video

from livejpp.library.build import build_library


def cli(*args, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "livejpp", *map(str, args)], capture_output=True, text=True)


def clip_rows(lib):
    with sqlite3.connect(lib / "library.sqlite") as db:
        return db.execute(
            "SELECT v.path, c.idx, c.width, c.height, c.fps, c.frames, c.audio, c.playback "
            "FROM clips c JOIN videos v ON v.id = c.video_id ORDER BY v.path, c.idx"
        ).fetchall()


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory, media=Path(__file__).parent / "media"):
    d = tmp_path_factory.mktemp("bad")
    shutil.copy(media / "footage" / "mdn_bug.mp4", d / "good.mp4")
    data = (media / "footage" / "earth.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) * 2 // 5])  # index intact, pictures cut off
    (d / "no_index.mp4").write_bytes(data[len(data) // 2 :])  # header gone: nothing to open
    (d / "notes.mp4").write_text("this is a shopping list, not a video\n")
    (d / "empty.mov").write_bytes(b"")
    write_video(d / "short.mp4", seconds=2.5, audio=tone(440, 2.5, 44100), audio_rate=44100)
    write_video(d / "odd width.mkv", 321, 241, seconds=6, codec="mpeg4")
    write_video(d / "rotated.mp4", 320, 180, seconds=6, rotation=90)
    write_video(d / "portrait.mp4", 180, 320, seconds=6)
    write_video(d / "four_three.mp4", 320, 240, seconds=6)
    times, t, i = [], 0.0, 0
    while t < 6:
        times.append(t)
        t += 0.02 if i % 3 else 0.09
        i += 1
    write_video(d / "vfr.mp4", 320, 180, seconds=6, frame_times=times)
    write_video(d / "with music.mp4", 320, 180, seconds=6, audio=tone(440, 6, 44100), audio_rate=44100)
    sub = d / "ñandú 東京 folder"
    sub.mkdir()
    shutil.copy(media / "footage" / "cityCC0.mpg", sub / "calle ñ 東京.mpg")
    (d / "README.txt").write_text("not a video and not named like one: ignored in folders")
    return d


@pytest.fixture(scope="module")
def bad_build(bad_folder, tmp_path_factory):
    lib = tmp_path_factory.mktemp("badlib") / "lib"
    result = cli("library", "build", bad_folder, "--out", lib, "--jobs", "2")
    return lib, result


def test_each_bad_file_gets_one_line_and_the_build_goes_on(bad_build, bad_folder):
    lib, result = bad_build
    assert result.returncode == 1, result.stderr  # files not added: a script must see it
    lines = [line for line in result.stderr.splitlines() if line.startswith("livejpp: skipped")]
    reasons = {Path(line.split(": ")[1].split(":")[0].replace("skipped ", "")).name: line for line in lines}
    assert set(reasons) == {"no_index.mp4", "notes.mp4", "empty.mov", "short.mp4"}
    assert "empty file (0 bytes)" in reasons["empty.mov"]
    assert "not a readable video" in reasons["notes.mp4"]
    assert "not a readable video" in reasons["no_index.mp4"]
    assert "shorter than half a clip" in reasons["short.mp4"]
    assert f"{bad_folder / 'truncated.mp4'}: decoding stopped at" in result.stderr
    assert "README.txt" not in result.stderr
    summary = cli("library", "info", lib, "--log", "50").stdout
    assert "skipped  4 files:" in summary
    assert f"warning  {bad_folder / 'notes.mp4'}: skipped: not a readable video" in summary
    assert f"info     {bad_folder / 'good.mp4'}: added: 1 clip" in summary
    assert "info     -: build finished: 9 videos, 9 clips" in summary


def test_good_files_of_every_shape_are_in(bad_build, bad_folder):
    lib, _ = bad_build
    got = {Path(p).name: (w, h, round(fps, 3), frames, audio) for p, idx, w, h, fps, frames, audio, _ in clip_rows(lib)}
    assert got["good.mp4"][:2] == (640, 360) and got["good.mp4"][4] == "absent"
    assert got["odd width.mkv"][:2] == (320, 240)
    assert got["rotated.mp4"][:2] == (180, 320)  # turned upright by its display matrix
    assert got["portrait.mp4"][:2] == (180, 320)
    assert got["four_three.mp4"][:2] == (320, 240)
    assert got["vfr.mp4"][2] == round(24000 / 1001, 3)
    assert got["with music.mp4"][4] == "ok"
    assert got["calle ñ 東京.mpg"][:2] == (720, 404)
    assert got["truncated.mp4"][3] == 300  # the ten seconds before the damage are kept


def test_rotation_turns_the_pictures(bad_build):
    lib, _ = bad_build
    (path,) = [pb for p, *_, pb in clip_rows(lib) if p.endswith("rotated.mp4")]
    with av.open(str(lib / path)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    h, w, _ = first.shape
    red = (first[..., 0] > 200) & (first[..., 1] < 60)
    # the red marker sat top-left in the stored picture; 90° counter-clockwise puts it bottom-left
    assert red[h - 10 :, :10].all() and not red[:10, :10].any()


def test_variable_frame_rate_becomes_constant_and_keeps_time(bad_build):
    lib, _ = bad_build
    (path,) = [pb for p, *_, pb in clip_rows(lib) if p.endswith("vfr.mp4")]
    with av.open(str(lib / path)) as c:
        frames = [(f.time, f.to_ndarray(format="gray").astype(int)) for f in c.decode(video=0)]
    times = np.array([t for t, _ in frames])
    assert np.allclose(np.diff(times), 1001 / 24000, atol=1e-3)
    # brightness was written as 250 * t / 6: each frame shows the picture of its own time (±1 source frame)
    level = np.array([g[100:, 200:].mean() for _, g in frames])
    assert np.all(np.abs(level - 250 * times / 6) < 250 * 0.09 / 6 + 3)


def test_unreadable_file_is_reported(tmp_path, media):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(media / "footage" / "mdn_bug.mp4", folder / "fine.mp4")
    locked = folder / "locked.mp4"
    shutil.copy(media / "footage" / "cityCC0.mpg", locked)
    locked.chmod(0)
    prefix = ()
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv (util-linux) to take file-reading rights from root")
        caps = "-dac_override,-dac_read_search"
        prefix = ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")
    result = cli("library", "build", folder, "--out", tmp_path / "lib", "-q", prefix=prefix)
    assert result.returncode == 1, result.stderr  # the locked file was not added
    assert f"skipped {locked}: cannot read (permission denied)" in result.stderr
    assert [Path(r[0]).name for r in clip_rows(tmp_path / "lib")] == ["fine.mp4"]


def test_bad_files_added_later_lose_nothing(tmp_path, bad_folder, media):
    lib = tmp_path / "lib"
    build_library([media / "footage" / "mdn_bug.mp4"], lib, progress=False)
    before = clip_rows(lib)
    result = cli("library", "add", lib, bad_folder / "notes.mp4", bad_folder / "empty.mov", tmp_path / "missing.mp4")
    assert result.returncode == 1  # three files not added
    assert f"skipped {tmp_path / 'missing.mp4'}: no such file or folder" in result.stderr
    assert clip_rows(lib) == before
    assert all((lib / pb).is_file() for *_, pb in before)


def test_a_missing_library_is_a_clear_error(tmp_path):
    result = cli("library", "info", tmp_path / "nowhere")
    assert result.returncode == 1
    assert result.stderr.strip() == f"livejpp: error: {tmp_path / 'nowhere'}: not a livejpp library (no library.sqlite)"
