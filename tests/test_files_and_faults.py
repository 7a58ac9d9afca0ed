"""Files and faults caused for real: full disks (tmpfs), killed renders, damaged songs, odd layouts."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from libraries import content_hashes
from synth import write_audio, write_song_with_cover, write_still

from livejpp.library.build import build_library
from livejpp.media.decode import AUDIO_RATE, iter_video_frames, read_audio_file
from livejpp.media.player import ClipFrames
from livejpp.media.standby import standby_picture


def cli(*args, timeout: float = 240, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "livejpp", *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def clip_count(lib: Path) -> int:
    with sqlite3.connect(lib / "library.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]


def clips_of_footage(lib: Path, footage: Path) -> int:
    """How many clips `lib` (the session's real_library, shared: read-only) holds of `footage`'s videos."""
    hashes = sorted(content_hashes(footage))
    marks = ", ".join("?" * len(hashes))
    query = f"SELECT COUNT(*) FROM clips c JOIN videos v ON v.id = c.video_id WHERE v.content_hash IN ({marks})"
    with contextlib.closing(sqlite3.connect(f"file:{lib / 'library.sqlite'}?mode=ro", uri=True)) as db:
        return db.execute(query, hashes).fetchone()[0]


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here to fill a disk for real: {done.stderr.strip()}")


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """`folder` on its own tmpfs of `size`: a disk that really fills up."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("filling a disk for real needs root (to mount a small tmpfs)")
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def bound(folder: Path, target: Path):
    """`folder` shows `target` (another filesystem): part of a library on a different disk."""
    folder.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(target), str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.02)


def fill(folder: Path, leave: int) -> Path:
    """Take all but `leave` bytes of the filesystem under `folder`."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize - leave
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        while free > 0:
            try:
                free -= f.write(b"\0" * min(free, 64 * 1024))
            except OSError as exc:  # full before the count said so: full is what was asked
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


# --- 1, 2: full disks -------------------------------------------------------------------------


def test_a_full_disk_under_the_manifest_stops_in_one_line_and_resumes(tmp_path, small_footage, real_library):
    """The manifest's disk fills up (clips on another disk): one line, non-zero, no hang; resume after."""
    lib = tmp_path / "lib"
    with small_disk(lib, "8m"), bound(lib / "clips", tmp_path / "clip_store") as clips:
        build = subprocess.Popen(
            [sys.executable, "-m", "livejpp", "library", "build", small_footage, "--out", lib, "-j", "2", "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: any(p.suffix == ".mp4" for p in clips.rglob("*")), "the first finished clip")
            filler = fill(lib, leave=0)  # the build is under way: its next manifest write fills the disk
            out, err = build.communicate(timeout=120)
        finally:
            build.kill()
        full = subprocess.CompletedProcess(build.args, build.returncode, out, err)
        assert full.returncode == 1, full.stderr
        assert "Traceback" not in full.stderr
        errors = [line for line in full.stderr.splitlines() if line.startswith("livejpp: error:")]
        assert len(errors) == 1 and "disk is full" in errors[0] and "run the same command again" in errors[0]
        filler.unlink()
        again = cli("library", "build", small_footage, "--out", lib, "--jobs", "2", "-q")
        assert again.returncode == 0, again.stderr
        resumed = clip_count(lib)
        files = sorted(p.name for p in (lib / "clips").rglob("*") if p.is_file())
    assert resumed == clips_of_footage(real_library[0], small_footage)  # as many as a build never interrupted
    assert len(files) == resumed and not [f for f in files if ".part" in f]


def test_clip_files_that_hit_a_full_disk_make_the_build_fail(tmp_path, small_footage):
    """The clips' disk fills up: the files not added are counted in the summary and the exit code is 1."""
    lib = tmp_path / "lib"
    with small_disk(tmp_path / "clip_disk", "1m"), bound(lib / "clips", tmp_path / "clip_disk"):
        result = cli("library", "build", small_footage, "--out", lib, "--jobs", "2", "-q")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr
    summary = [line for line in result.stdout.splitlines() if line.startswith("not added")]
    assert summary and "No space left on device" in summary[0], result.stdout


# --- 3, 4, 7: renders -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def render_library(tmp_path_factory, media=Path(__file__).parent / "media"):
    """A small real library and a 12 s excerpt of a real song: renders that take seconds."""
    folder = tmp_path_factory.mktemp("render")
    lib = folder / "lib"
    build_library([media / "footage" / "mdn_bug.mp4", media / "footage" / "earth.mp4"], lib, jobs=1, progress=False)
    song = read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg", 0.0, 12.0)
    write_audio(folder / "song.flac", np.stack([song, song]), AUDIO_RATE)
    return lib, folder / "song.flac"


def render_cli(song, lib, out, *extra, **kwargs):
    return cli("render", song, "--library", lib, "-o", out, "--size", "160x90", "--fps", "10", "-q", *extra, **kwargs)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_render_checks_its_output_path_before_starting(render_library, tmp_path):
    lib, song = render_library
    (tmp_path / "folder.mp4").mkdir()
    started = time.monotonic()
    into_folder = render_cli(song, lib, tmp_path / "folder.mp4")
    assert into_folder.returncode == 1
    assert into_folder.stderr.strip() == (
        f"livejpp: error: {tmp_path / 'folder.mp4'}: is a folder; give the video a file name "
        f"(like {tmp_path / 'folder.mp4' / 'video.mp4'})"
    )
    assert time.monotonic() - started < 20  # refused at once, not after rendering the song
    read_only = tmp_path / "ro"
    with small_disk(read_only, "1m"):
        _mount("-o", "remount,ro", str(read_only))
        refused = render_cli(song, lib, read_only / "out.mp4")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"livejpp: error: {read_only / 'out.mp4'}: cannot write here (folder {read_only} is not writable)"
    )
    assert hidden(tmp_path) == []


def test_a_terminated_render_leaves_no_part_file_and_a_killed_ones_is_removed(render_library, tmp_path, media):
    lib, _ = render_library
    song = media / "music" / "lmms_Skiessi-C64.ogg"  # the whole song: time to stop it while it encodes
    out = tmp_path / "out.mp4"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen(
            [sys.executable, "-m", "livejpp", "render", song, "--library", lib, "-o", out, "--size", "160x90", "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: any(p.stat().st_size > 0 for p in tmp_path.glob(".out.mp4*")), "the encoding to start")
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        if sig == signal.SIGTERM:
            assert proc.returncode == 128 + signal.SIGTERM
            assert err.strip() == "livejpp: stopped (SIGTERM); nothing half-written is left"
            assert hidden(tmp_path) == [] and not out.exists()
    assert len(hidden(tmp_path)) == 1  # SIGKILL cannot be caught: the next render removes it
    short = render_cli(media / "music" / "loop_amen.flac", lib, out)
    assert "a song needs at least one 10 s window" in short.stderr
    assert hidden(tmp_path) == []


def test_an_embed_leaves_no_part_files_and_removes_stale_ones(render_library, tmp_path):
    lib, _ = render_library
    copy = tmp_path / "lib"
    shutil.copytree(lib, copy)
    index = copy / "index"
    index.mkdir(exist_ok=True)  # no render may have embedded the library yet (this test run alone)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (index / "default.hnsw.part").write_bytes(b"\0" * 4096)  # left by an older version, killed while saving
    (index / f".default.hnsw.part-{gone.pid}").write_bytes(b"\0" * 4096)  # by a killed embed that has gone
    result = cli("library", "embed", copy)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in index.iterdir()) == ["default.hnsw", "default.json"]


def first_clip_of_a_render(render_library, tmp_path) -> tuple[Path, list[dict], Path, str]:
    """A render's cuts, a copy of its library to damage, and the playback file of its first cut."""
    lib, song = render_library
    first = render_cli(song, lib, tmp_path / "first.mp4")
    assert first.returncode == 0, first.stderr
    cuts = json.loads((tmp_path / "first.cuts.json").read_text())["cuts"]
    copy = tmp_path / "lib"
    shutil.copytree(lib, copy)
    with sqlite3.connect(copy / "library.sqlite") as db:
        (playback,) = db.execute("SELECT playback FROM clips WHERE id = ?", (cuts[0]["clip_id"],)).fetchone()
    return song, cuts, copy, playback


def test_render_skips_a_missing_clip_file_and_finishes(render_library, tmp_path):
    song, cuts, copy, playback = first_clip_of_a_render(render_library, tmp_path)
    (copy / playback).unlink()
    second = render_cli(song, copy, tmp_path / "second.mp4")
    assert second.returncode == 0, second.stderr
    assert second.stderr.strip() == f"livejpp: {copy / playback}: clip file is missing; using the next candidates"
    again = json.loads((tmp_path / "second.cuts.json").read_text())["cuts"]
    assert again and cuts[0]["clip_id"] not in {c["clip_id"] for c in again}
    with av.open(str(tmp_path / "second.mp4")) as c:
        assert c.streams.video[0].frames == 120


def test_render_with_every_clip_file_gone_says_so_and_writes_nothing(render_library, tmp_path):
    """Clip files are checked when the music first makes them candidates (a million-clip library is not
    checked whole before the first cut); when none of them is there, one line says so and no video is left."""
    song, _, copy, _ = first_clip_of_a_render(render_library, tmp_path)
    with sqlite3.connect(copy / "library.sqlite") as db:
        for (playback,) in db.execute("SELECT playback FROM clips"):
            (copy / playback).unlink(missing_ok=True)
    second = render_cli(song, copy, tmp_path / "second.mp4")
    assert second.returncode != 0
    said = f"livejpp: error: {copy}: every clip file the music chose is missing; nothing to show"
    assert second.stderr.splitlines()[-1] == said
    assert all("clip file is missing" in line for line in second.stderr.splitlines()[:-1]), second.stderr
    assert "Traceback" not in second.stderr and not (tmp_path / "second.mp4").exists()


def test_render_holds_a_picture_over_a_clip_file_that_is_damaged(render_library, tmp_path):
    song, cuts, copy, playback = first_clip_of_a_render(render_library, tmp_path)
    (copy / playback).write_bytes(b"\x00not a video" * 100)  # there, but damaged: found only when it is decoded
    second = render_cli(song, copy, tmp_path / "second.mp4")
    assert second.returncode == 0, second.stderr
    said = [line for line in second.stderr.splitlines() if "cannot play" in line]
    assert len(said) == 1 and f"clip {cuts[0]['clip']} cannot play" in said[0], second.stderr
    with av.open(str(tmp_path / "second.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 120
    card = standby_picture((frames[0].shape[1], frames[0].shape[0])).astype(np.float32)
    # the damaged clip opens the video: nothing before it to hold, so the standby card shows, not black
    assert np.abs(frames[0].astype(np.float32) - card).mean() < 8


# --- 5: damaged and truncated songs -----------------------------------------------------------


@pytest.fixture(scope="module")
def mp3(tmp_path_factory, media=Path(__file__).parent / "media"):
    """A real song encoded as MP3 (the format people's damaged files come in) and its decoded samples."""
    folder = tmp_path_factory.mktemp("mp3")
    song = read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg")
    write_audio(folder / "song.mp3", np.stack([song, song]), AUDIO_RATE, codec="libmp3lame")
    return folder / "song.mp3", read_audio_file(folder / "song.mp3")


def loud_seconds(samples: np.ndarray) -> int:
    """Seconds with music in them (above -40 dBFS)."""
    seconds = samples[: len(samples) // AUDIO_RATE * AUDIO_RATE].reshape(-1, AUDIO_RATE)
    return int((np.sqrt((seconds**2).mean(axis=1)) > 0.01).sum())


def test_a_damaged_mp3_decodes_past_its_bad_packets(mp3, tmp_path):
    path, good = mp3
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for at in (0.1, 0.5):  # two damaged stretches, 2 KB each
        i = int(len(data) * at)
        data[i : i + 2048] = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    samples = read_audio_file(damaged)
    assert len(good) - AUDIO_RATE < len(samples) <= len(good)  # less only what the damage took
    assert loud_seconds(samples) >= loud_seconds(good) - 2  # the music goes on past the damage
    late = samples[int(0.8 * len(samples)) :][: 2 * AUDIO_RATE]
    lag = int(np.argmax(np.correlate(good[int(0.7 * len(good)) :], late, "valid"))) + int(0.7 * len(good))
    assert np.corrcoef(late, good[lag : lag + len(late)])[0, 1] > 0.99  # the song itself after the damage


def test_a_damaged_video_decodes_past_its_bad_packets(media, tmp_path, caplog):
    good = media / "av" / "bigbuckbunny_5s.mp4"
    data = bytearray(good.read_bytes())
    for at in (0.3, 0.6):  # two stretches of 4 KB zeroed: a bad copy, a disk error
        i = int(len(data) * at)
        data[i : i + 4096] = bytes(4096)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="livejpp"):
        times = [t for t, _ in iter_video_frames(str(damaged))]
    ends = [t for t, _ in iter_video_frames(str(good))][-1]
    assert times[-1] > ends - 0.1  # the pictures go on to the end (they stopped at 1.2 s of 5.3)
    assert len(times) > 0.9 * 132  # only what the damage took is lost
    assert [r.getMessage() for r in caplog.records if "damaged video packets" in r.getMessage()] == [
        f"{damaged}: skipped 2 damaged video packets"
    ]
    # a clip played live goes on past the damage: its pictures are the video's own (up to the
    # decoder's concealment until the next keyframe), not the last one before the damage, held
    played, original = ClipFrames(str(damaged), (160, 90)), ClipFrames(str(good), (160, 90))
    held = ClipFrames(str(good), (160, 90)).frame_at(1.1).astype(int)
    for t in (3.0, 5.0):
        expected = original.frame_at(t).astype(int)
        assert np.abs(played.frame_at(t) - expected).mean() < 10 < np.abs(held - expected).mean()


def test_a_truncated_mp3_is_as_long_as_its_audio(mp3, tmp_path, render_library):
    path, good = mp3
    data = path.read_bytes()
    half = tmp_path / "half.mp3"
    half.write_bytes(data[: len(data) // 2])
    samples = read_audio_file(half)
    assert abs(len(samples) - len(good) / 2) < AUDIO_RATE * 0.5  # not padded with silence to the header's length
    assert loud_seconds(samples) >= len(samples) // AUDIO_RATE - 1
    stub = tmp_path / "stub.mp3"
    stub.write_bytes(data[: len(data) // 5])  # about 7 s of a 34 s song: less than one window
    lib, _ = render_library
    short = render_cli(stub, lib, tmp_path / "out.mp4")
    assert short.returncode == 1
    documented = rf"livejpp: error: {re.escape(str(stub))}: \d\.\d s long; a song needs at least one 10 s window"
    assert re.fullmatch(documented, short.stderr.strip()), short.stderr


# --- 6: surround songs ------------------------------------------------------------------------


def stereo_of(path) -> np.ndarray:
    """A file's first audio stream as it is: channels × samples, float32."""
    with av.open(str(path)) as c:
        channels = c.streams.audio[0].channels
        resampler = av.AudioResampler(format="flt")  # packed: PyAV's planar arrays stop at 8 channels
        frames = [o.to_ndarray().reshape(-1, channels) for f in c.decode(audio=0) for o in resampler.resample(f)]
    return np.concatenate(frames).T


def db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))


@pytest.mark.parametrize(
    "layout, upmix",
    [
        ("5.1", lambda left, right: [left, right, (left + right) / 2, (left + right) / 4, left, right]),
        ("7.1", lambda left, right: [left, right, (left + right) / 2, (left + right) / 4, left, right, left, right]),
    ],
)
def test_a_surround_song_is_downmixed_to_stereo_without_clipping(render_library, tmp_path, media, layout, upmix):
    """Each surround channel carries the song (an upmix): the soundtrack must be the song, as loud, never clipped."""
    lib, _ = render_library
    with av.open(str(media / "music" / "lmms_Skiessi-C64.ogg")) as c:
        rate = c.streams.audio[0].rate
    song = stereo_of(media / "music" / "lmms_Skiessi-C64.ogg")[:, : 12 * rate]
    song *= 0.8 / np.abs(song).max()
    surround = tmp_path / f"{layout}.flac"
    write_audio(surround, np.stack(upmix(song[0], song[1])), rate, layout)
    assert stereo_of(surround).shape[0] == len(upmix(song[0], song[1]))
    result = render_cli(surround, lib, tmp_path / "out.mp4")
    assert result.returncode == 0, result.stderr
    soundtrack = stereo_of(tmp_path / "out.mp4")
    assert np.abs(soundtrack).max() <= 1.0
    assert abs(db(soundtrack) - db(song)) < 2.0  # as loud as the stereo song it was made from
    write_audio(tmp_path / "stereo.flac", song, rate)
    assert abs(db(read_audio_file(surround)) - db(read_audio_file(tmp_path / "stereo.flac"))) < 2.0  # analysed alike


# --- 8: odd but valid media, forged log lines, tiny training sets ------------------------------


def test_a_one_frame_video_is_a_still_clip_and_cover_art_is_not_a_video(tmp_path):
    write_still(tmp_path / "still.mp4", seconds=10)
    write_song_with_cover(tmp_path / "song.mp3")
    lib = tmp_path / "lib"
    report = build_library([tmp_path / "still.mp4", tmp_path / "song.mp3"], lib, jobs=1, progress=False)
    assert report.notes == []  # nothing "truncated or corrupt?"
    assert report.skipped == [(str(tmp_path / "song.mp3"), "an audio file: its only picture is cover art")]
    with sqlite3.connect(lib / "library.sqlite") as db:
        clips = db.execute("SELECT start, end, frames, fps FROM clips").fetchall()
    assert len(clips) == 1
    start, end, frames, fps = clips[0]
    assert (start, end) == (0.0, 10.0) and frames == round(10 * fps)  # the picture held for its 10 s


def test_control_characters_in_file_names_cannot_forge_lines(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    forged = folder / "x.mp4\nlivejpp: added 1000 clips\x1b[2J.mp4"
    forged.write_text("not a video")
    result = cli("library", "build", folder, "--out", tmp_path / "lib", "-q")
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "added 1000" in line] == [
        f"livejpp: skipped {folder}/x.mp4\\nlivejpp: added 1000 clips\\x1b[2J.mp4: not a readable video "
        "(Invalid data found when processing input)"
    ]
    assert "\x1b" not in result.stderr + result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("livejpp: added")]
    song = folder / "song\nlivejpp: rendered.flac"
    missing = cli("render", song, "--library", tmp_path / "lib", "-o", tmp_path / "o.mp4")
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1, missing.stderr
    assert "song\\nlivejpp: rendered.flac" in missing.stderr
