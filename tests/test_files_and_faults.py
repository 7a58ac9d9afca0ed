"""Files and faults caused for real: full disks (tmpfs), killed renders, damaged songs, odd layouts."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


def cli(*args, timeout: float = 240, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "livejpp", *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def clip_count(lib: Path) -> int:
    with sqlite3.connect(lib / "library.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]


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
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


# --- 1, 2: full disks -------------------------------------------------------------------------


def test_a_full_disk_under_the_manifest_stops_in_one_line_and_resumes(tmp_path, small_footage):
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
    fresh = tmp_path / "fresh"
    cli("library", "build", small_footage, "--out", fresh, "--jobs", "2", "-q")
    assert resumed == clip_count(fresh)
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
