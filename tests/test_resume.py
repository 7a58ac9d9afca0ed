"""A killed build resumes where it stopped; libraries grow without duplicates; one writer at a time."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from libraries import content_hashes
from waiting import wait_until

from livejpp.library.build import build_library
from livejpp.library.store import LibraryError, LibraryStore
from livejpp.library.worker import BuildSettings


def snapshot(lib):
    """Clips as (video hash, idx, start, end, file) plus their features, for comparing libraries."""
    with LibraryStore(lib, readonly=True) as store:  # real_library is shared by the whole session
        clips = store.clips()
        vis = store.features("hand_visual")
        aud = store.features("hand_audio")
        return {
            (c.video_hash, c.index): (round(c.start, 3), round(c.end, 3), c.audio, vis[c.id], aud.get(c.id))
            for c in clips
        }


def of_footage(snap: dict, footage: Path) -> dict:
    """The clips of `footage`'s videos in a snapshot of a larger library (the session's real_library)."""
    hashes = content_hashes(footage)
    return {key: value for key, value in snap.items() if key[0] in hashes}


def clip_count(lib):
    try:
        with sqlite3.connect(f"file:{lib / 'library.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
    except sqlite3.Error:
        return 0


def assert_consistent(lib, finished=True):
    """Every clip row has its file; once a run has finished, every file has its row."""
    with sqlite3.connect(lib / "library.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        named = {r[0] for r in db.execute("SELECT playback FROM clips")}
    on_disk = {p.relative_to(lib).as_posix() for p in (lib / "clips").rglob("*") if p.is_file()}
    assert named <= on_disk
    if finished:
        assert named == on_disk  # what a killed run left half-done is gone


def test_killed_again_and_again_it_resumes_to_the_same_library(small_footage, tmp_path, real_library):
    lib = tmp_path / "lib"
    cmd = [sys.executable, "-m", "livejpp", "library", "build", str(small_footage), "--out", str(lib), "-j", "2", "-q"]
    kills = 0
    kept: dict = {}
    orphans: list[str] = []  # the killed builders' worker processes
    for _ in range(15):
        before = clip_count(lib)
        if (lib / "clips").exists():
            assert_consistent(lib, finished=False)
            with sqlite3.connect(lib / "library.sqlite") as db:
                now = {
                    r[0]: (r[1], os.stat(lib / r[1]).st_mtime_ns) for r in db.execute("SELECT id, playback FROM clips")
                }
            assert {k: now[k] for k in kept} == kept  # finished clips are never redone
            kept = now
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while proc.poll() is None and clip_count(lib) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is not None:
            break
        time.sleep(0.3 * (kills % 3))  # kill at different moments: between clips, mid-encode
        orphans += subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        proc.send_signal(signal.SIGKILL)  # the builder only: its workers must notice and stop
        proc.wait()
        kills += 1
    assert proc.returncode == 0, proc.stderr.read()
    assert kills >= 2
    assert_consistent(lib)
    assert not list(lib.rglob("*.part-*"))
    got, want = snapshot(lib), of_footage(snapshot(real_library[0]), small_footage)
    assert len(want) >= 6 and got.keys() == want.keys()
    for key, (start, end, audio, vis, aud) in want.items():
        g = got[key]
        assert (g[0], g[1], g[2]) == (start, end, audio)
        assert np.allclose(g[3], vis, atol=1e-3)
        if aud is not None:  # resumed audio starts after a seek: same music, a few samples' difference
            assert np.allclose(g[4], aud, rtol=0.05, atol=0.5)
    assert orphans  # every killed builder's workers notice and stop
    wait_until(lambda: not workers(orphans), timeout=10, what="workers of killed builders still running")


def test_orphaned_workers_stop_when_the_builder_dies(small_footage, tmp_path):
    lib = tmp_path / "lib"
    proc = subprocess.Popen(
        [sys.executable, "-m", "livejpp", "library", "build", str(small_footage), "--out", str(lib), "-j", "2", "-q"],
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while clip_count(lib) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(session(proc.pid)) >= 3  # the builder and its two workers
    proc.kill()
    proc.wait()
    # the resource tracker may linger a moment (and be gone by the time it is read); no worker decodes on
    wait_until(lambda: not workers(session(proc.pid)), timeout=10, what="orphaned workers still running")


def session(sid: int) -> list[str]:
    """The processes of session `sid`."""
    return subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True).stdout.split()


def workers(pids: list[str]) -> list[str]:
    """Those of `pids` that are still a build worker (a multiprocessing child)."""
    return [p for p in pids if "spawn_main" in cmdline(p)]


def cmdline(pid: str) -> str:
    """A process's command line, or "" once it has exited."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return ""


def test_jobs_do_not_change_the_result(small_footage, tmp_path, real_library):
    build_library([small_footage], tmp_path / "one", jobs=1, progress=False)
    a, b = snapshot(tmp_path / "one"), of_footage(snapshot(real_library[0]), small_footage)  # b: two jobs
    assert len(a) >= 6 and a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key][3], b[key][3])
        assert (a[key][4] is None and b[key][4] is None) or np.array_equal(a[key][4], b[key][4])


def test_add_skips_what_is_already_there_by_content(small_footage, tmp_path, media):
    lib = tmp_path / "lib"
    build_library([small_footage / "tree.avi"], lib, progress=False)
    renamed = tmp_path / "same tree, other name.avi"
    renamed.write_bytes((small_footage / "tree.avi").read_bytes())
    report = build_library([renamed, media / "footage" / "mdn_bug.mp4"], lib, create=False, progress=False)
    assert report.duplicates == [str(renamed)]
    assert report.videos_added == 1
    with LibraryStore(lib) as store:
        assert store.summary()["videos"] == 2
    out = subprocess.run(
        [sys.executable, "-m", "livejpp", "library", "add", str(lib), str(renamed)], capture_output=True, text=True
    )
    assert out.returncode == 0 and "1 already in the library" in out.stdout


def test_other_settings_are_refused_not_mixed(small_footage, tmp_path):
    lib = tmp_path / "lib"
    build_library([small_footage / "tree.avi"], lib, BuildSettings(clip_seconds=5), progress=False)
    with pytest.raises(LibraryError, match="clip_seconds=5 \\(asked 10\\)"):
        build_library([small_footage / "earth.mp4"], lib, BuildSettings(clip_seconds=10), progress=False)
    build_library([small_footage / "earth.mp4"], lib, None, create=False, progress=False)  # `add` uses the library's
    with LibraryStore(lib) as store:
        assert {round(c.end - c.start, 1) for c in store.clips()} <= {5.0, 4.6}


def test_one_build_at_a_time(small_footage, tmp_path):
    lib = tmp_path / "lib"
    proc = subprocess.Popen(
        [sys.executable, "-m", "livejpp", "library", "build", str(small_footage), "--out", str(lib), "-j", "1", "-q"]
    )
    try:
        deadline = time.monotonic() + 60
        while clip_count(lib) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "livejpp", "library", "add", str(lib), str(small_footage)],
            capture_output=True,
            text=True,
        )
        assert second.returncode == 1
        assert "another build is writing to this library" in second.stderr
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0


def test_overlapping_clips_and_playing_from_sources(small_footage, tmp_path):
    lib = tmp_path / "lib"
    build_library([small_footage / "earth.mp4"], lib, BuildSettings(hop=5.0, transcode=False), progress=False)
    with LibraryStore(lib) as store:
        clips = store.clips()
        assert [(c.start, round(c.end, 1)) for c in clips] == [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30)]
        assert all(c.playback is None for c in clips)
        vis = store.features("hand_visual")
    assert not (lib / "clips").exists() or not any((lib / "clips").rglob("*.mp4"))
    # the last 5 s window adds no footage the 20-30 s clip lacks: dropped, not kept as a duplicate tail
    # overlapping windows see the same footage: clip 1's first half is clip 0's second half
    first, second = (vis[c.id] for c in clips[:2])
    assert np.allclose(first[6:10], second[1:5], atol=0.02)
