"""Build throughput, local against a 2-worker Dask cluster on this machine, and the engine's overhead per video.

Called by `tools/bench.py scale` as `run(args)` (its `.sizes` and `.part` belong to the million-clip part and
are not read here). Footage: the project's bundled media (tests/media/av and footage), hand features.
Overhead per video: each video sent alone to the cluster, (round trip − time inside the task) / time inside.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from livejpp.library import cluster
from livejpp.library.build import build_library, content_hash, find_videos
from livejpp.library.worker import BuildSettings, VideoJob
from livejpp.media.decode import probe

MEDIA = Path(__file__).resolve().parent.parent / "tests" / "media"
SETTINGS = BuildSettings(features="hand")
WORKERS = 2


def _build(inputs: list[Path], home: Path, name: str, **kw) -> tuple[float, float]:
    started = time.perf_counter()
    report = build_library(inputs, home / name, SETTINGS, progress=False, **kw)
    return report.seconds_added, time.perf_counter() - started


def _overheads(address: str, inputs: list[Path], home: Path) -> list[tuple[str, float, float]]:
    """(video, work s, overhead s) for each video run alone on the cluster."""
    from distributed import Client

    from livejpp.features.sets import feature_sets_for

    root = home / "alone"
    root.mkdir()
    token = cluster.mark_shared(root)
    rows = []
    with Client(address) as client:
        client.upload_file(cluster._package_zip())
        for path in find_videos(inputs)[0]:
            key = content_hash(path)
            job = VideoJob(key, probe(path), frozenset(), 0, str(root / key[:16]), key[:16], SETTINGS,
                           tuple(feature_sets_for(SETTINGS.features)))  # fmt: skip
            started = time.perf_counter()
            result = client.submit(cluster.run_video, job, str(root), token, pure=False).result()
            rows.append((path.name, result.work_seconds, time.perf_counter() - started - result.work_seconds))
    return rows


def run(args) -> None:
    inputs = [MEDIA / "av", MEDIA / "footage"]
    with tempfile.TemporaryDirectory(prefix="livejpp-scale-build-") as tmp:
        home = Path(tmp)
        footage, local_wall = _build(inputs, home, "local", jobs=WORKERS)
        address, procs = cluster.start_local(home, workers=WORKERS)
        try:
            _, cluster_wall = _build(inputs, home, "cluster", cluster=address)
            rows = _overheads(address, inputs, home)
        finally:
            cluster.stop_local(procs)
    cores = os.cpu_count() or 1
    print(f"build throughput, {footage:.0f} s of bundled footage, hand features, {cores} cores")
    print(f"{'where':<26}{'wall s':>8}{'x real time':>13}{'per worker':>12}")
    for where, wall in ((f"local, {WORKERS} processes", local_wall), (f"Dask, {WORKERS} workers", cluster_wall)):
        print(f"{where:<26}{wall:>8.1f}{footage / wall:>13.1f}{footage / wall / WORKERS:>12.1f}")
    print(
        f"\nengine overhead per video (each alone on the cluster)\n{'video':<28}{'work s':>8}{'overhead s':>12}{'%':>7}"
    )
    for name, work, over in rows:
        print(f"{name:<28}{work:>8.2f}{over:>12.3f}{100 * over / work:>7.1f}")
    work, over = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'all':<28}{work:>8.2f}{over:>12.3f}{100 * over / work:>7.1f}")


if __name__ == "__main__":
    run(None)
