"""`library build --cluster`: a real Dask scheduler and worker (with its nanny) on this machine."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from livejpp.library import cluster
from livejpp.library.build import build_library, content_hash
from livejpp.library.worker import BuildSettings
from tests.waiting import wait_until

pytest.importorskip("distributed")
SETTINGS = BuildSettings(features="hand")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> str:
    """A scheduler and one single-threaded worker; the worker runs outside any checkout (no PYTHONPATH,
    cwd elsewhere), so it imports the livejpp the build ships to it."""
    address, procs = cluster.start_local(tmp_path_factory.mktemp("cluster"), workers=1)
    yield address
    cluster.stop_local(procs)


@pytest.fixture(scope="module")
def local_library(tmp_path_factory) -> Path:
    footage = tmp_path_factory.mktemp("footage")
    for name in ("footage/tree.avi", "footage/earth.mp4"):
        os.link(Path(__file__).parent / "media" / name, footage / Path(name).name)
    lib = tmp_path_factory.mktemp("local") / "lib"
    build_library([footage], lib, SETTINGS, jobs=1, progress=False)
    return lib


def _contents(lib: Path) -> dict:
    """Clip for clip, feature for feature, keyed by the video's content (not its row ids or its path)."""
    db = sqlite3.connect(lib / "library.sqlite")
    clips = db.execute(
        "SELECT v.content_hash, c.idx, c.start, c.end, c.frames, c.width, c.height, c.audio, f.feature_set, f.data "
        "FROM clips c JOIN videos v ON v.id = c.video_id LEFT JOIN features f ON f.clip_id = c.id "
        "WHERE v.status = 'done'"
    ).fetchall()
    db.close()
    return {
        (h, i, fs): (round(s, 3), round(e, 3), n, w, ht, a, np.frombuffer(d, np.float32) if d else None)
        for h, i, s, e, n, w, ht, a, fs, d in clips
    }


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k][:6] == b[k][:6], k
        if a[k][6] is not None:
            np.testing.assert_allclose(a[k][6], b[k][6], rtol=1e-5, atol=1e-5, err_msg=str(k))


def _footage(lib_dir: Path) -> Path:
    footage = lib_dir.parent / "footage"
    footage.mkdir()
    for name in ("footage/tree.avi", "footage/earth.mp4"):
        os.link(Path(__file__).parent / "media" / name, footage / Path(name).name)
    return footage


def test_cluster_build_equals_local_build(scheduler, local_library, tmp_path):
    """Shared storage: the worker writes playback files into the library folder it can see. The package shipped
    to the workers leaves nothing in the temporary folder (each build left its zip there)."""
    lib = tmp_path / "lib"
    shipped_before = set(Path(tempfile.gettempdir()).glob("livejpp-ship-*"))
    report = build_library([_footage(lib)], lib, SETTINGS, progress=False, cluster=scheduler)
    assert report.videos_added == 2 and not report.skipped
    assert set(Path(tempfile.gettempdir()).glob("livejpp-ship-*")) <= shipped_before
    _same(_contents(lib), _contents(local_library))
    playback = sqlite3.connect(lib / "library.sqlite").execute("SELECT playback FROM clips").fetchall()
    assert all((lib / p).is_file() for (p,) in playback)


def test_playback_files_come_back_through_the_engine(scheduler, local_library, tmp_path, monkeypatch):
    """A worker that cannot read the driver's token at the library path sends the bytes back."""
    monkeypatch.setattr(cluster, "mark_shared", lambda root: "a token no worker can read")
    lib = tmp_path / "lib"
    report = build_library([_footage(lib)], lib, SETTINGS, progress=False, cluster=scheduler)
    assert report.videos_added == 2 and not report.skipped
    _same(_contents(lib), _contents(local_library))
    db = sqlite3.connect(lib / "library.sqlite")
    for (playback,) in db.execute("SELECT playback FROM clips"):
        assert (lib / playback).stat().st_size > 1000
    assert not list(lib.rglob("*.part*"))


def test_killed_worker_video_is_retried(scheduler, local_library, tmp_path):
    """SIGKILL the worker process while it encodes (its pid is in the .part file's name): the nanny starts
    a new one, Dask runs the video again, and the library ends the same as a local build's."""
    lib = tmp_path / "lib"
    build = subprocess.Popen(
        [sys.executable, "-m", "livejpp", "library", "build", _footage(lib), "--out", lib, "--features", "hand"]
        + ["--quiet", "--cluster", scheduler],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    part = wait_until(lambda: next(iter(lib.rglob("*.part-*")), None), 60, "a worker starts encoding")
    os.kill(int(part.name.rsplit("-", 1)[1]), signal.SIGKILL)
    out, _ = build.communicate(timeout=120)
    assert build.returncode == 0, out
    _same(_contents(lib), _contents(local_library))


def test_killed_driver_resumes(scheduler, local_library, tmp_path):
    lib = tmp_path / "lib"
    footage = _footage(lib)
    cmd = [sys.executable, "-m", "livejpp", "library", "build", footage, "--out", lib, "--features", "hand"]
    cmd += ["--quiet", "--cluster", scheduler]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    build = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def a_video_done() -> bool:
        try:
            with sqlite3.connect(lib / "library.sqlite") as db:
                return bool(db.execute("SELECT 1 FROM videos WHERE status = 'done'").fetchone())
        except sqlite3.Error:
            return False

    wait_until(a_video_done, 60, "the first video is committed")
    build.kill()
    build.wait()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "already in the library" in rerun.stdout + rerun.stderr or "1 already" in rerun.stdout
    _same(_contents(lib), _contents(local_library))


@pytest.mark.parametrize("where", ["local", "cluster"])
def test_long_video_split_into_ranges_equals_one_task(where, scheduler, tmp_path, monkeypatch):
    """A 30 s video in three 10 s ranges (three tasks) makes the clips and features of one task."""
    from livejpp.library import build

    video = tmp_path / "in" / "bbb.webm"
    video.parent.mkdir()
    os.link(Path(__file__).parent / "media" / "av" / "big_buck_bunny_0_30.webm", video)
    whole = build_library([video], tmp_path / "whole", SETTINGS, jobs=1, progress=False)
    monkeypatch.setattr(build, "SPLIT_SECONDS", 10.0)
    kw = {"cluster": scheduler} if where == "cluster" else {"jobs": 2}
    split = build_library([video], tmp_path / "split", SETTINGS, progress=False, **kw)
    assert split.videos_added == whole.videos_added == 1 and split.clips_added == whole.clips_added == 3
    _same(_contents(tmp_path / "split"), _contents(tmp_path / "whole"))
    db = sqlite3.connect(tmp_path / "split" / "library.sqlite")
    assert (
        db.execute("SELECT status, duration FROM videos").fetchall()
        == sqlite3.connect(tmp_path / "whole" / "library.sqlite")
        .execute("SELECT status, duration FROM videos")
        .fetchall()
    )


def test_video_whose_worker_keeps_dying_is_skipped(scheduler, local_library, tmp_path):
    """Every worker that starts on earth.mp4 is SIGKILLed (as a decoder crash on a poison file would): after the
    scheduler's allowed failures the video is skipped with one line naming it, and tree.avi, submitted after it
    and waiting on the same worker each time it died, is built all the same."""
    lib = tmp_path / "lib"
    footage = _footage(lib)
    poison = content_hash(footage / "earth.mp4")
    killed: set[int] = set()
    stop = threading.Event()
    build = subprocess.Popen(
        [sys.executable, "-m", "livejpp", "library", "build", footage, "--out", lib, "--features", "hand"]
        + ["--quiet", "--cluster", scheduler],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def kill_whoever_encodes_it() -> None:
        while not stop.is_set():
            for part in (lib / "clips" / poison[:16]).glob("*.part-*"):
                pid = int(part.name.rsplit("-", 1)[1])
                if pid not in killed and pid != build.pid:  # a worker's file, not one the driver writes
                    killed.add(pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            stop.wait(0.02)

    killer = threading.Thread(target=kill_whoever_encodes_it, daemon=True)
    killer.start()
    try:
        stdout, stderr = build.communicate(timeout=240)
    finally:
        stop.set()
        killer.join()
    out = stdout + stderr
    assert build.returncode == 1, out  # a file not added: the exit status says so
    assert len(killed) == 8, killed  # Dask gives up after its allowed failures (3): beside tree.avi, then alone
    said = [line for line in stderr.splitlines() if "earth.mp4" in line]
    assert len(said) == 1 and "its worker died 4 times running it alone" in said[0], out
    db = sqlite3.connect(lib / "library.sqlite")
    assert [Path(p).name for (p,) in db.execute("SELECT path FROM videos WHERE status = 'done'")] == ["tree.avi"]
    assert [Path(p).name for (p,) in db.execute("SELECT path FROM skipped")] == ["earth.mp4"]
    _same(_contents(lib), {k: v for k, v in _contents(local_library).items() if k[0] != poison})


def test_source_copy_with_the_object_store(scheduler, tmp_path, monkeypatch):
    """A source fit to play, built on a worker that cannot see the library: the driver copies it into the
    library, its clips point at spans of that copy, and the library equals a local build's."""
    from tests.test_remux import READY, _clips, _first_pictures, _moving_video

    (tmp_path / "in").mkdir()
    source = _moving_video(tmp_path / "in" / "short_gop.mp4", 0.5)
    build_library([source], tmp_path / "local", READY, jobs=1, progress=False)
    monkeypatch.setattr(cluster, "mark_shared", lambda root: "a token no worker can read")
    report = build_library([source], tmp_path / "lib", READY, progress=False, cluster=scheduler)
    assert report.videos_added == 1 and report.copied == 1 and not report.skipped
    assert _clips(tmp_path / "lib") == _clips(tmp_path / "local")
    assert len({playback for *_, playback, _ in _clips(tmp_path / "lib")}) == 1
    _same(_contents(tmp_path / "lib"), _contents(tmp_path / "local"))
    for a, b in zip(_first_pictures(tmp_path / "lib"), _first_pictures(tmp_path / "local"), strict=True):
        assert np.array_equal(a, b)


def _fingerprints(lib: Path) -> dict:
    db = sqlite3.connect(lib / "library.sqlite")
    rows = db.execute(
        "SELECT v.content_hash, f.count, f.hashes, f.frames FROM fingerprints f JOIN videos v ON v.id = f.video_id"
    ).fetchall()
    db.close()
    return {h: (n, a, b) for h, n, a, b in rows}


def test_soundtracks_are_fingerprinted_on_the_cluster_as_locally(scheduler, tmp_path, monkeypatch):
    """A soundtrack's fingerprint is per-video work too (seconds of audio decoding a video): on the driver it
    was the one part of a build that did not spread over the cluster. A worker makes it, the same as locally:
    a new video's in the video's own task (which decodes the soundtrack anyway), an older library's in a task
    of its own."""
    from distributed import Client

    from livejpp.media.decode import AudioReader

    footage = tmp_path / "footage"
    footage.mkdir()
    os.link(Path(__file__).parent / "media" / "av" / "bigbuckbunny_5s.mp4", footage / "bigbuckbunny_5s.mp4")
    build_library([footage], tmp_path / "local", SETTINGS, jobs=1, progress=False)
    local = _fingerprints(tmp_path / "local")
    on_driver: list[str] = []
    init = AudioReader.__init__

    def counted(self, path, *args, **kwargs):
        on_driver.append(path)
        init(self, path, *args, **kwargs)

    monkeypatch.setattr(AudioReader, "__init__", counted)
    lib = tmp_path / "lib"
    with Client(scheduler) as client:
        client.get_task_stream(start=0)  # from here on the scheduler records every task its workers run
        started = time.time()
        report = build_library([footage], lib, SETTINGS, progress=False, cluster=scheduler)
        ran = [str(task["key"]) for task in client.get_task_stream(start=started)]
        assert report.fingerprinted == 1 and not report.skipped and not on_driver
        assert not [key for key in ran if key.startswith("livejpp-fingerprint-")], ran  # the video's task made it
        assert list(local.values())[0][0] > 100 and _fingerprints(lib) == local
        with sqlite3.connect(lib / "library.sqlite") as db:
            db.execute("DELETE FROM fingerprints")  # a library from before fingerprints: `library add` makes them
        started = time.time()
        report = build_library([footage], lib, SETTINGS, progress=False, cluster=scheduler)
        ran = [str(task["key"]) for task in client.get_task_stream(start=started)]
    assert report.fingerprinted == 1 and not report.skipped and not on_driver
    assert [key for key in ran if key.startswith("livejpp-fingerprint-")], ran
    assert _fingerprints(lib) == local


def test_a_scheduler_that_goes_away_mid_build_is_one_line_and_the_build_resumes(tmp_path):
    """The cluster's scheduler dies while videos are out: one line, exit 1, no traceback (Dask's client logged its
    reconnect attempts' tracebacks, and the build ended in a CancelledError's); run again, it resumes locally."""
    from distributed import Client

    (tmp_path / "cluster").mkdir()
    address, procs = cluster.start_local(tmp_path / "cluster", workers=1)
    lib = tmp_path / "lib"
    footage = _footage(lib)
    command = [sys.executable, "-m", "livejpp", "library", "build", str(footage), "--out", str(lib), "-q"]
    try:
        build = subprocess.Popen([*command, "--cluster", address], stderr=subprocess.PIPE, text=True)
        with Client(address) as watcher:  # the scheduler says when a worker has a video of this build
            wait_until(lambda: any(watcher.processing().values()) or build.poll() is not None, 60, "a video out")
        procs[0].kill()  # the scheduler
        _, err = build.communicate(timeout=120)
    finally:
        cluster.stop_local(procs[1:])
    assert build.returncode == 1 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "the scheduler went away" in lines[0] and "run the same command again" in lines[0]
    again = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(lib / "library.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM videos WHERE status = 'done'").fetchone()[0] == 2
