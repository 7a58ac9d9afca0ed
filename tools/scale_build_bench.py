"""Build throughput, local against a 2-worker Dask cluster on this machine, and the engine's overhead per video.

Called by `tools/bench.py scale` as `run(args)` (its `.sizes` and `.part` belong to the million-clip part and
are not read here). Footage: the project's bundled media (tests/media/av and footage), hand features.
Overhead per video: each video sent alone to the cluster, (round trip − time inside the task) / time inside.

First, per core (one process): the footage as it is and the same footage made fit to play (re-encoded here
once, H.264 with a keyframe every second, sound kept), each built with a playback file per clip (today's path,
`--no-remux`) and with fit sources copied (the new one), and without playback files (the ceiling); then how
long a copied source's first picture takes at each keyframe gap (media/remux.py's limit).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from livejpp.library import cluster
from livejpp.library.build import build_library, content_hash, find_videos
from livejpp.library.store import LibraryStore
from livejpp.library.worker import BuildSettings, VideoJob
from livejpp.media.clips import ClipEncoder
from livejpp.media.decode import iter_video_frames, probe

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
        cluster.ship(client)
        for path in find_videos(inputs)[0]:
            key = content_hash(path)
            job = VideoJob(key, probe(path), frozenset(), 0, str(root / key[:16]), key[:16], SETTINGS,
                           tuple(feature_sets_for(SETTINGS.features)))  # fmt: skip
            started = time.perf_counter()
            result = client.submit(cluster.run_video, job, str(root), token, pure=False).result()
            rows.append((path.name, result.work_seconds, time.perf_counter() - started - result.work_seconds))
    return rows


def _cpu() -> float:
    """CPU-seconds of this process and its finished children (a build with jobs=1 runs in this process)."""
    return sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def make_fit_to_play(source: Path, out: Path, gop_seconds: float = 1.0, preset: str = "veryfast") -> Path:
    """`source` re-encoded as an editor would export it for playback: H.264 4:2:0 at its own size and frame rate,
    a keyframe every `gop_seconds`, its sound as AAC (so the features match)."""
    with av.open(str(source)) as inp, av.open(str(out), "w", format="mp4") as dst:
        vin = inp.streams.video[0]
        rate = Fraction(vin.average_rate or vin.guessed_rate or 25).limit_denominator(1001)
        video = dst.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = (
            vin.codec_context.width // 2 * 2,
            vin.codec_context.height // 2 * 2,
            "yuv420p",
        )
        gop = str(max(1, round(float(rate) * gop_seconds)))
        video.options = {"preset": preset, "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        audio = resampler = fifo = None
        if inp.streams.audio:
            ain = inp.streams.audio[0]
            audio = dst.add_stream("aac", rate=ain.rate or 44100)
            audio.layout = "stereo"
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=audio.rate)
            fifo = av.AudioFifo()
        last, held = -1, None
        for frame in inp.decode(vin, *(inp.streams.audio[:1] if audio else [])):
            if isinstance(frame, av.VideoFrame):
                pts = round((frame.time or 0.0) * rate)  # constant rate on the source's clock: a still is repeated
                if pts <= last:
                    continue
                frame = frame.reformat(width=video.width, height=video.height, format="yuv420p")
                for slot in range(last + 1, pts + 1):
                    shown = frame if slot == pts or held is None else held
                    picture = av.VideoFrame.from_ndarray(shown.to_ndarray(), format="yuv420p")
                    picture.pts, picture.time_base = slot, 1 / rate
                    for packet in video.encode(picture):
                        dst.mux(packet)
                last, held = pts, frame
            else:
                for f in resampler.resample(frame):
                    f.pts = None
                    fifo.write(f)
                while (f := fifo.read(1024)) is not None:
                    for packet in audio.encode(f):
                        dst.mux(packet)
        for stream in (video, audio):
            if stream is not None:
                for packet in stream.encode(None):
                    dst.mux(packet)
    return out


def _per_core(inputs: list[Path], home: Path) -> None:
    """Seconds of footage per wall second and per CPU-second, one process, each path side by side."""
    fit = home / "fit"
    fit.mkdir()
    for path in find_videos(inputs)[0]:
        make_fit_to_play(path, fit / f"{path.stem}.mp4")
    cases = [
        ("as it is", inputs, "per-clip encode (today)", replace(SETTINGS, remux=False)),
        ("as it is", inputs, "fit sources copied (new)", SETTINGS),
        ("fit to play, 1 s GOP", [fit], "per-clip encode (today)", replace(SETTINGS, remux=False)),
        ("fit to play, 1 s GOP", [fit], "fit sources copied (new)", SETTINGS),
        ("fit to play, 1 s GOP", [fit], "no playback files", replace(SETTINGS, transcode=False)),
    ]
    print(f"build throughput per core (jobs=1), hand features, x264 {SETTINGS.x264_preset}, bundled footage")
    heads = ("s footage", "copied", "wall s", "CPU s", "x/wall", "x/CPU")
    print(f"{'footage':<22}{'playback':<26}" + "".join(f"{h:>10}" for h in heads))
    for i, (footage, where, path, settings) in enumerate(cases):
        cpu, started = _cpu(), time.perf_counter()
        report = build_library(where, home / f"per-core-{i}", settings, jobs=1, progress=False)
        wall, cpu = time.perf_counter() - started, _cpu() - cpu
        seconds = report.seconds_added
        cells = (
            f"{seconds:.1f}",
            report.copied,
            f"{wall:.1f}",
            f"{cpu:.1f}",
            f"{seconds / wall:.1f}",
            f"{seconds / cpu:.1f}",
        )
        print(f"{footage:<22}{path:<26}" + "".join(f"{c:>10}" for c in cells))


def _per_core_against(baseline: str, home: Path, repeats: int = 3) -> None:
    """The fit-to-play footage built by `livejpp library build -j 1` with this tree's code and with git REV's,
    runs interleaved, the least CPU of each kept (a shared machine only ever adds to it): the analysis of every
    decoded frame, which a copied source leaves as the whole cost, today and now."""
    import subprocess
    import sys

    import baseline_code

    fit = home / "fit"
    codes = {baseline: baseline_code.export(baseline, home / "baseline-code"), "this tree": baseline_code.ROOT}
    best: dict[str, float] = {}
    seconds = 0.0
    for run in range(repeats):
        for which, (label, code) in enumerate(codes.items()):
            lib = home / f"against-{run}-{which}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            command = [sys.executable, "-m", "livejpp", "library", "build", str(fit), "--out", str(lib), "-j", "1"]
            env = {**os.environ, "PYTHONPATH": str(code)}
            subprocess.run([*command, "-q"], cwd=code, env=env, check=True, stdout=subprocess.DEVNULL)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            best[label] = min(best.get(label, cpu), cpu)
            with LibraryStore(lib, readonly=True) as store:
                seconds = sum(c.end - c.start for c in store.clips())
    print(f"\nfit to play, 1 s GOP, sources copied, jobs=1, hand features: {seconds:.1f} s of footage")
    print(f"{'code':<26}{'CPU s':>10}{'x/CPU':>10}")
    for label, cpu in best.items():
        print(f"{label:<26}{cpu:>10.2f}{seconds / cpu:>10.1f}")


def _first_pictures(home: Path) -> None:
    """How long the player takes to show a clip's first picture: a cut clip against a copied source whose clip
    starts at the worst place in its GOP (just before a keyframe), at 720p."""
    from livejpp.media.player import ClipFrames

    source = MEDIA / "av" / "big_buck_bunny_0_30.webm"

    def keyframes(path: Path) -> list[float]:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            return sorted(
                float(p.pts * stream.time_base) for p in c.demux(stream) if p.is_keyframe and p.pts is not None
            )

    def first(path: Path, base: float) -> float:
        """CPU milliseconds (this machine is shared: wall time measures the neighbours) to open and decode it."""
        times = []
        for _ in range(5):
            started = time.process_time()
            frames = ClipFrames(path, (1280, 720), base, 5.0)
            frames.planes_at(0.0)
            times.append(time.process_time() - started)
            frames.close()
        return 1000 * float(np.median(times))

    print(f"\nfirst picture of a clip, 720p ({source.name}), CPU ms (median of 5)")
    cut = home / "cut.mp4"  # a playback clip as the build writes it (ClipEncoder: ultrafast, fastdecode, 1 s GOP)
    info = probe(source)
    encoder = ClipEncoder(str(cut), 0.0, info.fps, (1280, 720))
    for t, frame in iter_video_frames(str(source), origin=info.start):
        if t >= 10.0:
            break
        encoder.add(t, frame)
    encoder.finish(10.0)
    print(f"{'cut clip, at its start':<52}{first(cut, 0.0):>8.1f}")
    print(f"{'cut clip, mid-clip start at the worst place':<52}{first(cut, 5.0 - 1.5 / 24):>8.1f}")
    for gop in (0.5, 1.0, 2.0, 4.0):
        path = make_fit_to_play(source, home / f"gop{gop}.mp4", gop)
        keys = keyframes(path)  # just before a keyframe a whole GOP (not one cut short by a scene cut) decodes first
        after = [k for k, before in zip(keys[1:], keys, strict=False) if k > 5.0 and k - before > 0.95 * gop][:3]
        worst = np.median([first(path, k - 1.5 / 24) for k in after])
        print(f"{f'copied source, keyframe every {gop:g} s, worst place':<52}{worst:>8.1f}")


def run(args) -> None:
    inputs = [MEDIA / "av", MEDIA / "footage"]
    with tempfile.TemporaryDirectory(prefix="livejpp-scale-per-core-") as tmp:
        _per_core(inputs, Path(tmp))
        if getattr(args, "baseline", None):
            _per_core_against(args.baseline, Path(tmp))
        _first_pictures(Path(tmp))
    print()
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
