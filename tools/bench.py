#!/usr/bin/env python3
"""Benchmarks that print tables to quote. Speed is measured here, never asserted in tests.

    python tools/bench.py library [--media DIR ...] [--features hand pretrained] [--jobs 1 2]

library: build throughput (seconds of footage per wall second, and per core) for each feature
choice and job count; where the time goes on one core (decode, features, transcode); the time
to resume a killed build and to re-run a finished one; library size on disk per hour of footage.

    python tools/bench.py model [--videos 200] [--seed-clips 20000]

model: every preset under the three protocols (eval --table) on the project's real paired media
(2 s clips every second) and on a synthetic-correspondence set, and the time to train `seed` on
20,000 clips.

    python tools/bench.py render [--hd]     render speed at 720p30 (and 1080p), cut timing, repeats
    python tools/bench.py live [--seconds 300] [--xvfb] [--record] [--baseline REV]   a live show: frames,
        drops, latencies, memory (--baseline: the same show with the code of git REV beside it)
        [--layers N --source-height H --codec h264|hap|dxv]: playback cost per layer, RGB on the CPU vs planes
        to the GPU
        [--layers N --show]: the real live show (decoder thread, render loop) with 2 and N layers: frame-interval
        p50/p99/max and drops, rgb vs gpu frames, held and cutting on beats (each beat cut's first frame against
        its beat), decoder running vs paused (does decoding stall the render loop?); --codec hap|dxv: HAP or DXV sources
    python tools/bench.py control           OSC and MIDI latency to state and to frame, paced rates
    python tools/bench.py beats [--set DIR] [--trackers today bar beatnet]   cuts against true beats, per
        song and overall, each beat tracker side by side (default: the bundled truth songs and synthetic cases;
        --set: a set built by tools/beats_data.py)
    python tools/bench.py sync [--songs 10000] [--baseline] [--only ...]   known-track identification: rate by
        excerpt x condition, false locks, time to lock, hop cost, size, lookup at 10,000 songs (tools/sync_bench.py)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livejpp.library.build import build_library, find_videos  # noqa: E402
from livejpp.library.store import LibraryStore, disk_usage  # noqa: E402
from livejpp.library.worker import BuildSettings  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
import baseline_code  # noqa: E402

DEFAULT_MEDIA = [ROOT / "tests" / "media" / "av", ROOT / "tests" / "media" / "footage"]


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def stage_breakdown(media: list[Path]) -> list[list]:
    """One core, one video at a time: decode only, + features, + transcode (the full build)."""
    import av
    from av.video.reformatter import VideoReformatter

    from livejpp.features.visual import VisualFeatures, small_picture

    files, _ = find_videos(media)
    rows = []
    footage = 0.0
    decode = features = 0.0
    for path in files:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.thread_count = 1
            t0 = time.perf_counter()
            frames = list(c.decode(s))
            decode += time.perf_counter() - t0
            footage += float(frames[-1].time or 0) + 1 / float(s.average_rate or 25)
        scaler = VideoReformatter()
        vf = VisualFeatures()
        t0 = time.perf_counter()
        for f in frames:
            vf.add(float(f.time or 0), small_picture(scaler, f))
        features += time.perf_counter() - t0
    rows.append(["decode video (1 thread)", f"{decode:.2f}", f"{footage / decode:.1f}x"])
    rows.append(["visual features", f"{features:.2f}", f"{footage / features:.1f}x"])
    for transcode in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            settings = BuildSettings(transcode=transcode)
            report = build_library(media, Path(tmp) / "lib", settings, jobs=1, progress=False)
        label = "full build, hand features" + ("" if transcode else ", --no-transcode")
        rows.append([label, f"{report.wall_seconds:.2f}", f"{report.seconds_added / report.wall_seconds:.1f}x"])
    return rows


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: the honest basis for "per core"."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def throughput(media: list[Path], features: list[str], jobs: list[int]) -> list[list]:
    rows = []
    for feature_choice in features:
        for n in jobs:
            with tempfile.TemporaryDirectory() as tmp:
                lib = Path(tmp) / "lib"
                cpu = cpu_seconds()
                try:
                    report = build_library(media, lib, BuildSettings(features=feature_choice), jobs=n, progress=False)
                except Exception as exc:  # noqa: BLE001 - a missing extractor is reported, not fatal
                    rows.append([feature_choice, n, "-", "-", "-", "-", "-", f"unavailable: {exc}"])
                    continue
                cpu = cpu_seconds() - cpu
                size = disk_usage(lib)
                hours = report.seconds_added / 3600
                rate = report.seconds_added / report.wall_seconds
                rows.append(
                    [
                        feature_choice,
                        n,
                        f"{report.seconds_added:.1f}",
                        f"{report.wall_seconds:.2f}",
                        f"{rate:.1f}x",
                        f"{cpu:.1f}",
                        f"{report.seconds_added / cpu:.1f}x",
                        f"{size / 1e6 / hours:.0f} MB/h ({size / 1e6:.1f} MB)",
                    ]
                )
    return rows


def resume(media: list[Path], jobs: int) -> list[list]:
    """Kill a build once half its clips are in, then time the resume and a no-op re-run."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        cmd = [
            sys.executable,
            "-m",
            "livejpp",
            "library",
            "build",
            *map(str, media),
            "--out",
            str(lib),
            "-q",
            "-j",
            str(jobs),
        ]
        full = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        with LibraryStore(lib) as store:
            total = store.summary()["clips"]
        shutil.rmtree(lib)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        t0 = time.perf_counter()
        done = 0
        while proc.poll() is None and done < total // 2:
            time.sleep(0.05)
            try:
                with sqlite3.connect(f"file:{lib / 'library.sqlite'}?mode=ro", uri=True) as db:
                    done = db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
            except sqlite3.Error:
                pass
        killed_after = time.perf_counter() - t0
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        resumed = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        noop = time.perf_counter() - t0
        del full
        rows.append(
            [
                f"killed after {done}/{total} clips ({killed_after:.1f} s)",
                f"{resumed:.2f}",
                f"re-run of a finished library: {noop:.2f} s",
            ]
        )
    return rows


def bench_library(args: argparse.Namespace) -> None:
    media = [Path(m) for m in args.media] if args.media else DEFAULT_MEDIA
    files, _ = find_videos(media)
    print(f"media: {len(files)} videos in {', '.join(str(m) for m in media)}; {os.cpu_count()} cores")
    print("\nBuild throughput (seconds of footage per wall second)")
    print(
        table(
            ["features", "jobs", "footage s", "wall s", "real time", "CPU s", "per core (CPU)", "library size"],
            throughput(media, args.features, args.jobs),
        )
    )
    print("\nWhere one core's time goes")
    print(table(["stage", "seconds", "real time"], stage_breakdown(media)))
    print("\nResume")
    print(table(["interrupted build", "resume s", "note"], resume(media, max(args.jobs))))


def bench_model(args: argparse.Namespace) -> None:
    from livejpp.model import synthetic
    from livejpp.model.pipeline import format_table, table

    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "av"
        build_library([ROOT / "tests" / "media" / "av"], lib, BuildSettings(clip_seconds=2, hop=1), progress=False)
        rows = table(lib, ("seed", "seed_tf1", "regression", "infonce", "rules"), progress=False)
        print("Real paired media: tests/media/av as 2 s clips every 1 s")
        print(format_table(rows, "tests/media/av (2 s clips)"))
        features = Path(tmp) / "synthetic.npz"
        synthetic.write(features, videos=args.videos, clips_per_video=10)
        rows = table(features, ("seed", "seed_tf1", "regression", "infonce"), progress=False)
        print(f"\nSynthetic correspondence: {args.videos} videos x 10 clips of 10 s")
        print(format_table(rows, "synthetic"))
        if args.seed_clips:
            from livejpp.model.pipeline import train_model

            big = Path(tmp) / "big.npz"
            synthetic.write(big, videos=args.seed_clips // 10, clips_per_video=10)
            t0 = time.perf_counter()
            card = train_model(big, "seed", Path(tmp) / "seed-big", "clip", progress=False)
            wall = time.perf_counter() - t0
            print(
                f"\nseed preset on {args.seed_clips} clips: {len(card['history'])} epochs (best {card['best_epoch']}), "
                f"training {card['training_seconds']:.0f} s, with export {wall:.0f} s"
            )


def bench_render(args: argparse.Namespace) -> None:
    """Render time at 720p30 for the longest bundled track, cut timing against beats, repeats."""
    import numpy as np

    from livejpp.engine.beat import BeatClock
    from livejpp.engine.music_video import render
    from livejpp.features.audio import FRAME_RATE, AudioAnalyser, tempo_of
    from livejpp.index import embed_library
    from livejpp.media.decode import read_audio_file

    music = ROOT / "tests" / "media" / "music"
    songs = sorted(music.iterdir(), key=lambda p: -len(read_audio_file(p)))
    song = Path(args.song) if args.song else songs[0]
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        build_library(DEFAULT_MEDIA, lib, progress=False)
        embed_library(lib, "default")
        rows = []
        for width, height in ((1280, 720), (1920, 1080)) if args.hd else ((1280, 720),):
            cpu = cpu_seconds()
            result = render(song, lib, Path(tmp) / "out.mp4", size=(width, height), fps=30, progress=False)
            cpu = cpu_seconds() - cpu
            rows.append(
                [
                    f"{width}x{height}@30",
                    f"{result.song_seconds:.1f}",
                    f"{result.wall_seconds:.1f}",
                    f"{result.song_seconds / result.wall_seconds:.2f}x",
                    f"{cpu:.1f}",
                ]
            )
        print(f"song: {song.name} ({result.song_seconds:.1f} s), library: bundled footage (14 clips)")
        print(table(["output", "song s", "wall s", "speed", "CPU s"], rows))
        # beats detected offline, from the whole song at once (not the engine's causal clock)
        analyser = AudioAnalyser(keep_seconds=None)
        analyser.push(read_audio_file(song))
        analyser.finish()
        env = analyser.onset_envelope(0, analyser.seconds)
        bpm, _ = tempo_of(env, FRAME_RATE)
        period = 60 / bpm
        engine_period = 60 / result.bpm
        if abs(period * 2 / engine_period - 1) < 0.08 or abs(period / 2 / engine_period - 1) < 0.08:
            period = engine_period  # the same beat at another octave: compare on the engine's
        cut_times = np.array([c["time"] for c in result.cuts[1:]])
        grid = []
        for t in cut_times:  # the beat grid around each cut, from the onsets 4 s either side (non-causal)
            start = max(0.0, t - 4.0)
            local = analyser.onset_envelope(start, t + 4.0)
            phase = start + BeatClock._phase(local, period)
            grid.append(((t - phase + period / 2) % period) - period / 2)
        peaks = [
            i / FRAME_RATE
            for i in range(1, len(env) - 1)
            if env[i] >= env[i - 1] and env[i] >= env[i + 1] and env[i] > np.percentile(env, 90)
        ]
        to_onset = [min(abs(t - p) for p in peaks) for t in cut_times] if peaks else []
        clips = [c["clip"] for c in result.cuts]
        repeats = sum(1 for i, c in enumerate(clips) if c in clips[:i])
        print(
            table(
                ["measure", "value"],
                [
                    ["tempo (engine, end of song)", f"{result.bpm:.1f} BPM"],
                    ["tempo (offline, whole song)", f"{60 / period:.1f} BPM"],
                    ["cuts", f"{len(result.cuts)} ({len(set(clips))} different clips of 14)"],
                    ["median |cut - beat detected offline|", f"{1000 * np.median(np.abs(grid)):.0f} ms"],
                    [
                        "median |cut - nearest strong onset|",
                        f"{1000 * np.median(to_onset):.0f} ms" if to_onset else "-",
                    ],
                    ["cuts to a clip already shown", f"{repeats} of {len(clips)} ({100 * repeats / len(clips):.0f} %)"],
                ],
            )
        )


def bench_live(args: argparse.Namespace) -> None:
    """A long `live --play` show, headless at 1280x720: frames, drops, latencies, CPU and memory.
    `--record`: recording it too (what the render thread and the encoder cost, what the file holds);
    `--baseline REV`: the same show with the code of git REV beside it, in one table."""
    import json

    from livejpp.index import embed_library

    sys.path.insert(0, str(ROOT / "tools"))
    import playback_bench

    if args.layers:  # playback cost per layer: today's path and the GPU-ready one (tools/playback_bench.py)
        return (playback_bench.run_show if args.show else playback_bench.run)(args, table)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        build_library(DEFAULT_MEDIA, lib, progress=False)
        embed_library(lib, "default")
        song = playback_bench.medley(args.seconds, Path(tmp))
        runs = {}
        if args.baseline:  # the same show with the code of another commit, exported beside this tree
            code = baseline_code.export(args.baseline, Path(tmp) / "baseline-code")
            runs[args.baseline] = live_run(args, lib, song, code, Path(tmp) / "baseline")
        runs["this tree"] = live_run(args, lib, song, ROOT, Path(tmp) / "this")
        (ROOT / "build").mkdir(exist_ok=True)
        (ROOT / "build" / "bench-live.json").write_text(json.dumps(runs["this tree"][0], indent=1))
    where = "a window on Xvfb (GLX, llvmpipe)" if args.xvfb else "headless (EGL, llvmpipe)"
    recording = ", recorded" if args.record else ""
    print(f"live --play, {where}, {args.size}{recording}, {args.seconds:.0f} s medley of the bundled music")
    columns = [live_rows(args, *run) for run in runs.values()]
    print(table(["measure", *runs], [[row[0][0], *(r[1] for r in row)] for row in zip(*columns, strict=True)]))


def live_run(args: argparse.Namespace, lib: Path, song: Path, code: Path, out: Path) -> tuple[dict, dict]:
    """One show with the code at `code`: its stats, and what it cost (wall, CPU, CPU by thread name)."""
    import json

    import av
    import playback_bench  # tools/, on the path since bench_live

    out.mkdir()
    stats_path = out / "stats.json"
    cmd = [
        sys.executable,
        "-m",
        "livejpp",
        "live",
        "--library",
        str(lib),
        "--play",
        str(song),
        "--silent",
        *([] if args.xvfb else ["--headless"]),
        "--size",
        args.size,
        "--duration",
        str(args.seconds),
        "--stats",
        str(stats_path),
        *(["--record", str(out / "live.mp4")] if args.record else []),
    ]
    if args.xvfb:
        cmd = playback_bench.under_xvfb(cmd, args.size)
    env = {**os.environ, "PYTHONPATH": str(code)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    threads: dict[int, tuple[str, float]] = {}  # the last CPU seconds seen of each thread
    with subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as p:
        err = []
        reader = __import__("threading").Thread(target=lambda: err.extend(p.stderr), daemon=True)
        reader.start()
        main = p.pid
        while p.poll() is None:
            main = show_pid(p.pid) or main
            threads.update(thread_cpu(main))
            time.sleep(1.0)  # a sampling period, not a wait for readiness
        reader.join()
    if p.returncode:
        raise SystemExit(f"the show failed ({p.returncode}):\n{''.join(err[-20:])}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cost = {"wall": wall, "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}
    cost["threads"], cost["main"] = threads, main
    s = json.loads(stats_path.read_text())
    if args.record:
        with av.open(str(out / "live.mp4")) as c:
            stamps = [float(pk.pts * pk.time_base) for pk in c.demux(video=0) if pk.pts is not None]
        cost["recorded"] = (len(stamps), min(stamps, default=0.0), max(stamps, default=0.0))
    return s, cost


def show_pid(pid: int) -> int | None:
    """The show's process: the command itself, or under xvfb-run the `livejpp` process below it."""
    try:
        if (
            b"livejpp" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and b"xvfb-run" not in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        ):
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return next((found for c in children if (found := show_pid(int(c)))), None)


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of `pid` so far, with its name (Linux /proc), by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)  # utime, stime
    return found


def live_rows(args: argparse.Namespace, s: dict, cost: dict) -> list[list]:
    """The measures of one show, as [name, value] rows."""
    import numpy as np

    memory = s["memory_mb"]["over_time"]
    first = [m for t, m in memory if t <= 30]
    last = [m for t, m in memory if t >= memory[-1][0] - 30]
    second_minute = [m for t, m in memory if 60 <= t < 120] or [np.nan]
    last_minute = [m for t, m in memory if t >= memory[-1][0] - 60]
    settled = np.array([(t, m) for t, m in memory if t >= 60] or [(0.0, 0.0), (1.0, 0.0)])
    slope = np.polyfit(settled[:, 0] / 60, settled[:, 1], 1)[0]  # the first minute warms caches up
    cuts = s["cuts"]
    late = s["cut_latency_ms"]
    on_beats = [c for c in cuts if c["reason"] != "start"]  # the first cut comes with the first second of audio
    threads = cost["threads"]
    # the main thread's id is the process id: the render loop runs there
    render_ms = 1000 * threads.get(cost["main"], ("", 0.0))[1] / max(1, s["frames_drawn"])
    encoder = sum(cpu for name, cpu in threads.values() if name == "recorder")
    rows = [
        ["frames drawn / dropped", f"{s['frames_drawn']} / {s['frames_dropped']}"],
        ["fps", f"{s['fps']}"],
        ["frame interval p50 / p99", f"{s['frame_interval_ms']['p50']} / {s['frame_interval_ms']['p99']} ms"],
        [
            "hop analysis latency p50 / p99",
            f"{s['analysis_latency_ms']['p50']} / {s['analysis_latency_ms']['p99']} ms"
            f" ({s['analysis_latency_ms']['hops']} hops, {s['analysis_latency_ms']['dropped_hops']} dropped)",
        ],
        ["cut latency (beat -> frame showing it) p50 / p99 / max", f"{late['p50']} / {late['p99']} / {late['max']} ms"],
        [
            "beat cuts shown on the first frame at or after their beat",
            f"{sum(c['first_frame'] for c in on_beats)} of {len(on_beats)}",
        ],
        ["the show's first picture after its first second of audio", f"{1000 * cuts[0]['shown_late']:.0f} ms"],
        ["frames a due cut waited for its picture", f"{late['waited_frames']}"],
        ["beat cuts on a beat of the clock", f"{sum(c['beat_offset'] == 0 for c in on_beats)} of {len(on_beats)}"],
        ["first picture ready at the cut", f"{sum(c['picture_ready'] for c in cuts)} of {len(cuts)}"],
        ["CPU (both cores = 200 %)", f"{100 * cost['cpu'] / cost['wall']:.0f} %"],
        ["render thread CPU a frame drawn", f"{render_ms:.1f} ms"],
        ["resident memory, first 30 s / last 30 s", f"{np.mean(first):.0f} / {np.mean(last):.0f} MB"],
        ["resident memory, minute 1-2 / last minute", f"{np.mean(second_minute):.0f} / {np.mean(last_minute):.0f} MB"],
        ["resident memory trend after the first minute", f"{slope:+.2f} MB/min (least squares)"],
        ["peak resident memory", f"{s['memory_mb']['peak']} MB"],
    ]
    if args.record:
        count, first_t, last_t = cost["recorded"]
        rows += [
            ["recorded frames / shown frames left out", f"{count} / {s['frames_drawn'] - count}"],
            ["recording covers (first / last frame)", f"{first_t:.2f} / {last_t:.2f} s"],
            ["encoder CPU (recorder and x264 threads)", f"{100 * encoder / cost['wall']:.0f} %" if encoder else "-"],
        ]
    return rows


def bench_control(args: argparse.Namespace) -> None:
    """OSC and MIDI into a headless show: latency to the state change and to the first frame that
    shows it, and paced message rates handled without loss."""
    import json
    import shutil
    import socket

    import numpy as np
    import rtmidi
    from pythonosc.osc_message_builder import OscMessageBuilder

    from livejpp.index import embed_library

    def osc(address, *values) -> bytes:
        builder = OscMessageBuilder(address)
        for v in values:
            builder.add_arg(v)
        return builder.build().dgram

    def paced(count: int, rate: float, send) -> tuple[float, float, list[float]]:
        times = []
        start = time.monotonic()
        for i in range(count):
            due = start + i / rate
            while time.monotonic() < due:
                pass
            times.append(time.monotonic())
            send(i)
        return start, time.monotonic(), times

    if not shutil.which("jackd"):
        raise SystemExit("bench control needs jackd (tools/install-system-deps.sh installs jackd2)")
    server_name = f"livejpp-bench-{os.getpid()}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": server_name, "JACK_NO_START_SERVER": "1", "LIVEJPP_MIDI_API": "jack"}
    os.environ.update({k: env[k] for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")})
    jackd = subprocess.Popen(
        ["jackd", "--no-realtime", "-n", server_name, "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            lib = Path(tmp) / "lib"
            build_library(DEFAULT_MEDIA, lib, progress=False)
            embed_library(lib, "default")
            for _ in range(100):
                try:
                    device = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "bench")
                    break
                except rtmidi.SystemError:
                    time.sleep(0.1)
            device.open_virtual_port("bench controller")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            stats_path = Path(tmp) / "stats.json"
            song = ROOT / "tests" / "media" / "music" / "Kevin_MacLeod-Vibe_Ace.ogg"
            show = subprocess.Popen(
                [sys.executable, "-m", "livejpp", "live", "--library", str(lib), "--play", str(song), "--silent"]
                + ["--headless", "--size", args.size, "--duration", "120", "--stats", str(stats_path)]
                + ["--osc-port", str(port), "--midi-in", "bench controller", "--midi-map", "generic"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            target = ("127.0.0.1", port)
            sender.settimeout(0.2)
            for _ in range(300):  # ready when /livejpp/state is answered
                sender.sendto(osc("/livejpp/state"), target)
                try:
                    sender.recv(4096)
                    break
                except TimeoutError:
                    continue
            time.sleep(3)
            sender.settimeout(None)
            n = args.latency_messages
            osc_sent = paced(n, 20, lambda i: sender.sendto(osc("/livejpp/brightness", 0.5 + 0.25 * (i % 2)), target))[
                2
            ]
            time.sleep(1)
            midi_sent = paced(n, 20, lambda i: device.send_message([0xB0, 7, 64 + 32 * (i % 2)]))[2]
            time.sleep(1)
            windows = []
            for rate in args.osc_rates:
                start, end, _ = paced(
                    int(rate / 2), rate, lambda i: sender.sendto(osc("/livejpp/intensity", 0.5), target)
                )
                windows.append(("osc", rate, int(rate / 2), start, end))
                time.sleep(1.5)
            for rate in args.midi_rates:
                start, end, _ = paced(int(rate / 2), rate, lambda i: device.send_message([0xB0, 1, i % 128]))
                windows.append(("midi", rate, int(rate / 2), start, end))
                time.sleep(1.5)
            sender.sendto(osc("/livejpp/quit"), target)
            _, err = show.communicate(timeout=120)
            if show.returncode:
                raise SystemExit(f"the show failed: {err[-2000:]}")
            s = json.loads(stats_path.read_text())
        finally:
            jackd.terminate()
            jackd.wait(timeout=10)
    t0 = s["started_monotonic"]
    events = s["control"]["events"]

    def latency(origin: str, sent: list[float]) -> list[str]:
        mine = [e for e in events if e[0] == origin and e[1] == "brightness"][: len(sent)]
        to_state = np.array([t0 + e[2] + e[3] / 1000 - t for e, t in zip(mine, sent, strict=False)]) * 1000
        to_frame = np.array([t0 + e[2] + e[4] / 1000 - t for e, t in zip(mine, sent, strict=False) if e[4]]) * 1000
        return [
            origin,
            f"{len(mine)} of {len(sent)}",
            f"{np.percentile(to_state, 50):.2f} / {np.percentile(to_state, 99):.2f}",
            f"{np.percentile(to_frame, 50):.1f} / {np.percentile(to_frame, 99):.1f}",
        ]

    print(f"control: OSC (UDP, 127.0.0.1) and MIDI (JACK dummy driver) into a headless show at {args.size}")
    print(
        table(
            ["input", "messages applied", "send -> state p50 / p99 ms", "send -> first frame p50 / p99 ms"],
            [latency("osc", osc_sent), latency("midi", midi_sent)],
        )
    )
    rows = []
    for origin, rate, sent, start, end in windows:
        command = "intensity"
        got = sum(1 for e in events if e[0] == origin and e[1] == command and start - 0.01 <= t0 + e[2] <= end + 1.0)
        rows.append([origin, f"{rate:,}", f"{sent:,}", f"{got:,}", f"{sent - got:,}"])
    print(table(["input", "paced rate / s", "sent", "applied", "lost"], rows))


def bench_beats(args: argparse.Namespace) -> None:
    """Beat-scheduled cuts against true beats, each tracker side by side (tools/beats_bench.py)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import beats_bench

    beats_bench.run(args)


def bench_scale(args: argparse.Namespace) -> None:
    """Issue 14: (1) build throughput, local and on a cluster (tools/scale_build_bench.py); (2) a library
    of 10k/100k/1M synthetic clips: index, start-up, memory, hop search (tools/scale_index_bench.py)."""
    sys.path.insert(0, str(ROOT / "tools"))
    if args.part in ("build", "all"):
        try:
            import scale_build_bench
        except ImportError:
            print("scale --part build: tools/scale_build_bench.py is not in this checkout: skipped")
        else:
            scale_build_bench.run(args)
    if args.part in ("index", "all"):
        import scale_index_bench

        scale_index_bench.run(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    lib = sub.add_parser("library", help="library build throughput, resume time, size on disk")
    lib.add_argument("--media", nargs="+", help="folders or files (default: the project's own footage)")
    lib.add_argument("--features", nargs="+", default=["hand", "pretrained"], choices=["hand", "pretrained", "all"])
    lib.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    lib.set_defaults(func=bench_library)
    model = sub.add_parser("model", help="presets under the three protocols; seed training time")
    model.add_argument("--videos", type=int, default=200, help="synthetic videos of 10 clips (default: 200)")
    model.add_argument("--seed-clips", type=int, default=20000, help="clips for the seed timing (0: skip)")
    model.set_defaults(func=bench_model)
    rend = sub.add_parser("render", help="render speed at 720p30, cut timing against beats, repeats")
    rend.add_argument("--song", help="audio file (default: the longest bundled track)")
    rend.add_argument("--hd", action="store_true", help="also render at 1920x1080")
    rend.set_defaults(func=bench_render)
    lv = sub.add_parser("live", help="a long headless live show: frames, drops, latencies, CPU, memory")
    lv.add_argument("--seconds", type=float, default=300.0, help="show length (default: 300)")
    lv.add_argument("--size", default="1280x720", help="window size (default: 1280x720)")
    lv.add_argument("--xvfb", action="store_true", help="a real window on Xvfb (xvfb-run) instead of headless EGL")
    lv.add_argument("--record", action="store_true", help="record the show too (--record), as the demo does")
    lv.add_argument("--baseline", metavar="REV", help="also run the show with the code of git REV, side by side")
    lv.add_argument("--layers", type=int, help="playback only: N layers, today's path and GPU-ready planes")
    lv.add_argument("--source-height", type=int, default=1080, help="with --layers: 720, 1080 or 2160 lines")
    lv.add_argument(
        "--codec",
        choices=["h264", "hap", "dxv"],
        default="h264",
        help="with --layers: hap adds a HAP column; dxv adds DXV sources decoded by FFmpeg and as blocks",
    )
    lv.add_argument("--show", action="store_true", help="with --layers: the real show path, rgb vs gpu frames")
    lv.add_argument("--only", nargs="+", help='with --show: only these runs, e.g. "4 rgb held" "4 rgb cutting"')
    lv.set_defaults(func=bench_live)
    ctl = sub.add_parser("control", help="OSC and MIDI latency to state and to frame; paced rates without loss")
    ctl.add_argument("--size", default="1280x720", help="window size (default: 1280x720)")
    ctl.add_argument("--latency-messages", type=int, default=200, help="messages per input, 20 a second")
    ctl.add_argument("--osc-rates", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    ctl.add_argument("--midi-rates", type=int, nargs="+", default=[500, 1000, 2000, 5000])
    ctl.set_defaults(func=bench_control)
    bt = sub.add_parser("beats", help="beat-scheduled cuts against true beats: each tracker, per song and overall")
    bt.add_argument(
        "--set",
        type=Path,
        nargs="+",
        help="folders built by tools/beats_data.py, each scored alone and all pooled (default: the bundled truth)",
    )
    bt.add_argument("--trackers", nargs="+", default=["today", "bar", "beatnet", "auto"])
    bt.add_argument("--no-synthetic", action="store_true", help="leave out the synthetic stress cases")
    bt.add_argument("--library", type=Path, help="a built, embedded library to reuse (default: built from the footage)")
    bt.set_defaults(func=bench_beats)
    sys.path.insert(0, str(ROOT / "tools"))
    import sync_bench  # known-track identification (issue 12): its own module, as beats_bench

    sy = sub.add_parser("sync", help="known-track identification: rates, false locks, lock time, 10,000-song lookup")
    sync_bench.add_arguments(sy)
    sy.set_defaults(func=sync_bench.run)
    sc = sub.add_parser("scale", help="a million clips: build throughput (cluster), index, start-up, hop search")
    sc.add_argument("--part", choices=["index", "build", "all"], default="all")
    sc.add_argument("--sizes", default="10000,100000", help="synthetic library sizes (1000000 opt-in)")
    sc.add_argument("--work", default="/tmp/livejpp-scale", help="where the synthetic libraries are kept")
    sc.add_argument("--timeout", type=float, default=600, help="seconds per measured step before it is given up")
    sc.add_argument("--baseline", metavar="REV", help="--part build: also the per-core build with the code of git REV")
    sc.set_defaults(func=bench_scale)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
