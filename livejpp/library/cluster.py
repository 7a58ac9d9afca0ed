"""Per-video work on a Dask distributed cluster (`library build|add --cluster ADDRESS`).

Dask, not Ray, by measurement on this 2-core machine (see the issue 14 report): 24 MB installed
against 240 MB, a head and one worker up in 2.8 s against 20 s, an idle worker of 70 MB against
1.3 GB for Ray's processes; Ray's smaller per-task cost (7 ms against 27 ms) is lost in seconds of
work per video.

The driver stays the only writer of the library: a task returns its video's messages (clip rows,
features, and the playback bytes when the worker cannot see the library folder) and the builder
commits them as it does a local worker's. Dask reschedules a task whose worker died; after the
scheduler's `allowed-failures` (3) it gives up (KilledWorker); the builder runs the task again alone (the
task queued beside it was blamed for the same deaths) and skips its video with one line if its worker dies again.
A soundtrack's fingerprint is a task of its own, queued once its video is in (fingerprinting.run_fingerprint_job).
A source fit to play is copied into the library by the driver (media/remux.py): its clips carry no bytes back.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import livejpp
from livejpp.errors import LivejppError, describe
from livejpp.library.worker import ClipResult, VideoJob, process_video
from livejpp.media.decode import MediaError

SHARED_MARK = ".cluster-shared"  # the driver writes a token here; a worker that reads it back sees the folder
WORKER_NEEDS = ("av", "numpy")  # imported by the per-video work besides livejpp itself


@dataclass
class ClipBytes:
    """A playback file carried back through the engine (the worker cannot see the library folder)."""

    index: int
    data: bytes


@dataclass
class ClusterResult:
    messages: list[object]  # ClipResult/VideoDone in order, as a local worker emits them
    files: list[ClipBytes]
    error: str | None  # why the video failed (None: it went through)
    work_seconds: float  # time inside the task, for the engine's overhead


def connect(address: str):
    """A client to the cluster, with livejpp shipped to its workers; one line when that fails."""
    try:
        from distributed import Client
    except ImportError:
        raise LivejppError("--cluster needs Dask distributed: pip install 'livejpp[cluster]'") from None
    # Dask's client logs its own failures with their tracebacks (a scheduler that goes away: its reconnect
    # attempts); the build says what happened in one line of its own, and the cluster's logs are its own
    for name in ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        client = Client(address, timeout=10)
        client.wait_for_workers(1, timeout=60)
    except (OSError, TimeoutError) as exc:
        raise LivejppError(f"--cluster {address}: no scheduler with a worker answers ({exc})") from None
    ship(client)
    lacking = {w: m for w, m in client.run(_missing_modules, (*WORKER_NEEDS, "livejpp")).items() if m}
    if lacking:
        worker, missing = next(iter(lacking.items()))
        client.close()
        raise LivejppError(
            f"--cluster {address}: worker {worker} lacks Python packages {', '.join(missing)} (pip install them there)"
        )
    return client


def ship(client) -> None:
    """Send the livejpp package to the workers that do not import it from this very zip yet (a worker re-sent
    the zip it imports from breaks its imports). The zip is made in a folder of its own and removed once sent:
    each build left one in the temporary folder."""
    with tempfile.TemporaryDirectory(prefix="livejpp-ship-") as folder:
        shipped = _package_zip(folder)
        if not all(client.run(_has_on_path, os.path.basename(shipped)).values()):
            client.upload_file(shipped)  # the file is read and sent before this returns


def _package_zip(folder: str) -> str:
    """The livejpp package as a zip in `folder`, named by its content: workers import it from there, no checkout
    needed. Named by content so a second build on the same cluster finds it there and does not overwrite a zip
    that a worker's imports read from (zipimport then fails with a KeyError on its path)."""
    package = Path(livejpp.__file__).parent
    files = sorted(f for f in package.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    digest = hashlib.sha1()
    for f in files:
        digest.update(f.relative_to(package.parent).as_posix().encode() + b"\0" + f.read_bytes())
    path = os.path.join(folder, f"livejpp-{digest.hexdigest()[:12]}.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(f, f.relative_to(package.parent).as_posix())
    return path


# a lambda travels by value: the check runs on a worker that cannot import livejpp's modules yet
_missing_modules = lambda names: [n for n in names if importlib.util.find_spec(n) is None]  # noqa: E731
_has_on_path = lambda name: any(str(p).endswith(name) for p in __import__("sys").path)  # noqa: E731


def mark_shared(root: Path) -> str:
    """Write a fresh token the workers compare with what they read at the same path."""
    token = uuid.uuid4().hex
    (root / SHARED_MARK).write_text(token)
    return token


def sees_folder(root: str, token: str) -> bool:
    if os.environ.get("LIVEJPP_CLUSTER_SHARED") == "0":  # a worker told to use the object store
        return False
    try:
        return Path(root, SHARED_MARK).read_text() == token
    except OSError:
        return False


def run_video(job: VideoJob, root: str, token: str) -> ClusterResult:
    """Task entry on a worker: the video's messages, with playback bytes when the folder is not shared."""
    import time

    started = time.perf_counter()
    shared = sees_folder(root, token)
    scratch = None if shared else tempfile.mkdtemp(prefix="livejpp-clips-")
    if scratch is not None:
        job = replace(job, clip_dir=scratch)
    messages: list[object] = []
    files: list[ClipBytes] = []
    error = None
    try:
        process_video(job, messages.append)
    except MediaError as exc:
        error = exc.reason
    except Exception as exc:  # noqa: BLE001 - reported by the builder, the build goes on
        error = describe(exc)
    if scratch is not None:
        for m in messages:
            if isinstance(m, ClipResult) and m.part_path is not None:
                with open(m.part_path, "rb") as f:
                    files.append(ClipBytes(m.index, f.read()))
                m.part_path = None
        shutil.rmtree(scratch, ignore_errors=True)
    return ClusterResult(messages, files, error, time.perf_counter() - started)


def write_returned(result: ClusterResult, clip_dir: str) -> None:
    """Driver side: playback bytes carried back become `.part` files the builder renames into place."""
    by_index = {f.index: f.data for f in result.files}
    os.makedirs(clip_dir, exist_ok=True)
    for m in result.messages:
        if isinstance(m, ClipResult) and m.index in by_index:
            part = os.path.join(clip_dir, f"{m.index:05d}.mp4.part-driver")
            with open(part, "wb") as f:
                f.write(by_index[m.index])
            m.part_path = part


def start_local(home: Path, workers: int = 1, timeout: float = 60.0) -> tuple[str, list]:
    """A scheduler and `workers` single-threaded workers (each under a nanny that restarts it) on this
    machine, for tests and the bench; returns the address once every worker has registered, and the
    processes to stop. The workers run from `home` without PYTHONPATH: they import the shipped package."""
    import json
    import subprocess
    import sys
    import time

    from distributed import Client

    dask = Path(sys.executable).parent / "dask"
    address_file = home / "scheduler.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    quiet = {"cwd": home, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", address_file], **quiet
        )
    ]
    deadline = time.monotonic() + timeout
    while not address_file.exists():  # the scheduler's own readiness signal
        if time.monotonic() > deadline or procs[0].poll() is not None:
            stop_local(procs)
            raise LivejppError("the local Dask scheduler did not start")
        time.sleep(0.05)
    procs.append(
        subprocess.Popen(
            [dask, "worker", "--scheduler-file", address_file, "--nworkers", str(workers), "--nthreads", "1"]
            + ["--local-directory", home],
            **quiet,
        )
    )
    address = json.loads(address_file.read_text())["address"]
    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(workers, timeout=timeout)
    return address, procs


def stop_local(procs: list) -> None:
    for p in reversed(procs):
        p.terminate()
        p.wait(timeout=30)
