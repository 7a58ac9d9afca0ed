"""`tools/bench.py live --layers N --source-height H`: what playing N layers costs per frame, today's path
(each picture scaled and converted to RGB on the CPU, uploaded at output size) and the GPU-ready path (the
decoder's planes uploaded as they are; the shader converts, scales and crops), side by side in one run.

Headless EGL (llvmpipe) at the show's size, paced at 30 fps: per layer and frame, the CPU time of decode,
conversion and upload; frames dropped (a frame later than 1.5 intervals); frame-interval p99; peak memory.
The sources are the bundled footage scaled to H lines (H.264, in a temp dir); with --codec hap, also the same
frames as HAP (DXT1, livejpp/media/hap.py) in a third column: demux + Snappy as "decode", the DXT blocks
uploaded as they are (no conversion); with --codec dxv, the same frames as DXV (FFmpeg's encoder) played as
they were before (FFmpeg decodes them: RGB, or planes) and as blocks (livejpp/media/dxv.py unpacks them)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FOOTAGE = [ROOT / "tests/media/av/big_buck_bunny_0_30.webm", ROOT / "tests/media/footage/earth.mp4"]
FOOTAGE += [ROOT / "tests/media/footage/mdn_bug.mp4", ROOT / "tests/media/footage/cityCC0.mpg"]
FOOTAGE += [ROOT / "tests/media/footage/mdn_flower.mp4"]  # a fifth: four hand-set layers over the matcher's


def scaled_source(source: Path, height: int, out: Path, seconds: float = 10.0) -> Path:
    """The footage scaled to `height` lines (16:9 cover), H.264 yuv420p at 30 fps, `seconds` long (looped)."""
    width = (height * 16 // 9) // 2 * 2
    target = out / f"{source.stem}_{height}p.mp4"
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream = dst.add_stream("libx264", rate=30, options={"preset": "ultrafast", "crf": "20"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        n = 0
        while n < seconds * 30:
            src.seek(0)
            for frame in src.decode(video=0):
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts, picture.time_base = n, Fraction(1, 30)
                for packet in stream.encode(picture):
                    dst.mux(packet)
                n += 1
                if n >= seconds * 30:
                    break
        for packet in stream.encode(None):
            dst.mux(packet)
    return target


def hap_source(source: Path, out: Path) -> Path:
    """The H.264 source's frames as a HAP (DXT1) .mov beside it: what `library build --codec hap` writes."""
    from livejpp.media.hap import HapWriter

    target = out / f"{source.stem}.mov"
    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        writer = HapWriter(target, stream.width, stream.height, rate=stream.average_rate)
        for frame in src.decode(video=0):
            writer.add(frame.to_ndarray(format="rgb24"))
        writer.close()
    return target


def dxv_source(source: Path, out: Path) -> Path:
    """The H.264 source's frames as a DXV (DXT1) .mov beside it, by FFmpeg's DXV encoder: a VJ's Resolume loop."""
    target = out / f"{source.stem}_dxv.mov"
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream = src.streams.video[0]
        coded = dst.add_stream("dxv", rate=stream.average_rate)
        coded.width, coded.height, coded.pix_fmt = stream.width, stream.height, "rgba"
        for frame in src.decode(video=0):
            picture = frame.reformat(format="rgba")
            picture.pts, picture.time_base = frame.pts, frame.time_base
            for packet in coded.encode(picture):
                dst.mux(packet)
        for packet in coded.encode(None):
            dst.mux(packet)
    return target


def play(sources: list[Path], size: tuple[int, int], seconds: float, mode: str) -> dict:
    """One paced playback of all layers; per-stage CPU milliseconds per layer and frame, drops, p99."""
    from pyglet import gl as pgl

    from livejpp.media.compose import LayerDraw
    from livejpp.media.hap import HapFrames
    from livejpp.media.player import BLOCK_CODECS, ClipFrames, cover, planes_of
    from livejpp.render.gl import offscreen

    window, compositor = offscreen(*size, layers=max(2, len(sources)))
    blocks = mode in BLOCK_CODECS  # the DXT blocks as they are, as the player hands them out
    readers = [HapFrames(path, 0.0, *BLOCK_CODECS[mode]) if blocks else ClipFrames(path, size) for path in sources]
    if mode == "dxv":
        readers[0].picture_at(0.0)  # the coder compiled (or loaded from its cache) before the clock starts
    stages = {"decode": [], "convert": [], "upload": []}
    draws = []
    intervals, last, fps = [], None, 30.0
    start = time.monotonic()
    frame_no = 0
    while (now := time.monotonic()) - start < seconds:
        t = frame_no / fps
        for layer, reader in enumerate(readers):
            c0 = time.process_time()
            chosen = reader.picture_at(t % 9.5) if blocks else reader._chosen(t % 9.5)
            c1 = time.process_time()
            if blocks:
                picture = chosen
            elif mode == "planes":
                picture = planes_of(chosen[1])
            else:
                frame = chosen[1]
                sw, sh, x0, y0 = cover(frame.width, frame.height, *size)
                rgb = reader._scaler.reformat(frame, width=sw, height=sh, format="rgb24").to_ndarray()
                picture = np.ascontiguousarray(rgb[y0 : y0 + size[1], x0 : x0 + size[0]])
            c2 = time.process_time()
            compositor.upload(1 if layer == 0 else layer + 1, picture)
            pgl.glFinish()
            c3 = time.process_time()
            stages["decode"].append(c1 - c0)
            stages["convert"].append(c2 - c1)
            stages["upload"].append(c3 - c2)
        c4 = time.process_time()
        compositor.draw(1.0, extra=[LayerDraw(0.5, "screen")] * (len(readers) - 1))
        pgl.glFinish()
        draws.append(time.process_time() - c4)
        if last is not None:
            intervals.append(now - last)
        last = now
        frame_no += 1
        wait = start + frame_no / fps - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the pace of a 30 fps show, not a wait for something to happen
    window.close()
    for reader in readers:
        reader.close()
    intervals = np.array(intervals)
    return {
        **{k: 1000 * float(np.mean(v)) for k, v in stages.items()},
        "dropped": int(np.sum(np.maximum(0, np.round(intervals * fps) - 1)[intervals > 1.5 / fps])),
        "p99": 1000 * float(np.percentile(intervals, 99)),
        "frames": frame_no,
        "draw": 1000 * float(np.mean(draws)),
    }


def run(args: argparse.Namespace, table) -> None:
    size = tuple(int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        sources = [scaled_source(FOOTAGE[k % len(FOOTAGE)], args.source_height, Path(tmp)) for k in range(args.layers)]
        runs = {}
        modes = {"today: RGB on the CPU": ("rgb", sources), "planes to the GPU": ("planes", sources)}
        if args.codec == "hap":
            modes["HAP blocks to the GPU"] = ("hap", [hap_source(path, Path(tmp)) for path in sources])
        if args.codec == "dxv":  # today's DXV path: FFmpeg decodes it (to RGB, or planes), beside H.264's
            dxv = [dxv_source(path, Path(tmp)) for path in sources]
            modes["DXV: FFmpeg, RGB on the CPU"] = ("rgb", dxv)
            modes["DXV: FFmpeg, planes to the GPU"] = ("planes", dxv)
            modes["DXV blocks to the GPU"] = ("dxv", dxv)
        for name, (mode, paths) in modes.items():
            runs[name] = play(paths, size, args.seconds, mode)
            runs[name]["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak so far, MiB
    print(
        f"{args.layers} layers of {args.source_height}p {args.codec}, headless (EGL, llvmpipe), {args.size}, "
        f"{args.seconds:.0f} s at 30 fps"
    )
    rows = [
        ["decode, ms CPU per layer-frame", *(f"{r['decode']:.1f}" for r in runs.values())],
        ["conversion, ms CPU per layer-frame", *(f"{r['convert']:.1f}" for r in runs.values())],
        ["upload, ms CPU per layer-frame", *(f"{r['upload']:.1f}" for r in runs.values())],
        ["draw (all layers), ms CPU per frame", *(f"{r['draw']:.1f}" for r in runs.values())],
        ["frames drawn", *(str(r["frames"]) for r in runs.values())],
        ["frames dropped", *(str(r["dropped"]) for r in runs.values())],
        ["frame interval p99, ms", *(f"{r['p99']:.1f}" for r in runs.values())],
        ["peak memory (process, so far), MiB", *(f"{r['rss']:.0f}" for r in runs.values())],
    ]
    if args.codec in ("hap", "dxv"):
        cpu = {name: r["decode"] + r["convert"] + r["upload"] for name, r in runs.items()}
        rows.append(["decode + conversion + upload, ms CPU per layer-frame", *(f"{c:.1f}" for c in cpu.values())])
        kind = args.codec.upper()
        blocks = cpu[f"{kind} blocks to the GPU"]
        rows.append([f"{kind} blocks layer's CPU / this column's", *(f"{blocks / c:.2f}" for c in cpu.values())])
    print(table(["measure", *runs], rows))


# --- the real live show: decoder thread and render loop ----------------------------------------------------


def medley(seconds: float, out: Path) -> Path:
    """The bundled music end to end (repeated), `seconds` long, as a wav: a show that outlasts one song."""
    from livejpp.media.decode import AUDIO_RATE, read_audio_file

    music = sorted((ROOT / "tests" / "media" / "music").glob("*.ogg"))
    samples = np.concatenate([read_audio_file(p) for p in music])
    while len(samples) < seconds * AUDIO_RATE:
        samples = np.concatenate([samples, samples])
    song = out / "medley.wav"
    with av.open(str(song), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=AUDIO_RATE)
        pcm = (np.clip(samples[: int(seconds * AUDIO_RATE)], -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            container.mux(packet)
    return song


def show_run(
    lib: Path, extra_videos: list[str], song: Path, seconds: float, frames: str, cuts: bool = False, xvfb: bool = False
) -> dict:
    """One `live` show (LiveShow + ShowWindow, as `livejpp live --headless --frames F --layers N`; with `xvfb`, in a
    window on the X display) on the library's clips: the matcher's layer and one hand-set layer per extra video,
    at half opacity, decoded by the same decoder thread and drawn over it. The matcher plays the main folder's
    clips: held after one forced cut (its picture every frame, the outgoing one only during the crossfade), or
    with `cuts`, cutting on the beats as a show does (each cut's first frame against its beat). The render
    loop's frame intervals (after the warm-up), frames dropped, CPU, and the beat cuts: on the first frame at or
    after their beat, how late."""
    import pyglet

    from livejpp.audio_io import FileSource
    from livejpp.engine.live import LiveShow
    from livejpp.render import window

    warm = 2.0
    show = LiveShow(lib, FileSource(song), size=(1280, 720), fps=30.0, layers=1 + len(extra_videos))
    show.force("tag", "main")  # the matcher plays the main folder's clips; the extra videos are the layers'
    show.set_hold(not cuts)  # held: no cut but the one forced below, the same clip throughout
    for n, video in enumerate(extra_videos, start=2):
        show.set_layer_clip(n, video)
        show.set_layer_opacity(n, 0.5)

    def on_start(_window) -> None:
        if not cuts:
            pyglet.clock.schedule_once(lambda dt: show.next_clip(), 0.5)

    cpu = time.process_time()
    shown = window.ShowWindow(show, show.size, show.fps, show.layers_count, headless=not xvfb, frames=frames)
    shown.open()  # window.run's steps, keeping the window: its frame times are its own
    summary = shown.play(seconds, on_start)
    cpu = time.process_time() - cpu
    times = np.array(shown.frame_stats.frame_times)
    intervals = np.diff(times[times > show.start_time + warm])
    late = intervals[intervals > 1.5 / 30]
    on_beats = [c for c in show.stats.cuts if c["reason"] not in ("opening", "start", "forced")]
    return {
        "p50": 1000 * float(np.percentile(intervals, 50)),
        "p99": 1000 * float(np.percentile(intervals, 99)),
        "max": 1000 * float(intervals.max()),
        "dropped": int(np.sum(np.round(late * 30) - 1)),
        "frames": len(intervals) + 1,
        "cpu": 100 * cpu / summary["seconds"],
        "on_screen": len(show.layers),
        "beat_cuts": len(on_beats),
        "first_frame": sum(c["first_frame"] for c in on_beats),
        "late_max": 1000 * max((c["shown_late"] for c in on_beats), default=float("nan")),
    }


def under_xvfb(command: list[str], size: str) -> list[str]:
    """`command` in a real window with vsync on a virtual X screen of `size` (WxH), as a VJ's laptop runs it."""
    return ["xvfb-run", "-a", "-s", f"-screen 0 {size}x24", *command]


def run_with_code(code: Path, script: str, arguments: str, xvfb: bool) -> subprocess.CompletedProcess:
    """`python -c script TOOLS arguments` in a fresh process (a fresh pyglet) with the livejpp of `code` (this
    tree, or a baseline's exported copy); with `xvfb`, in a window on a virtual X screen of show_run's size."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    command = [sys.executable, "-c", script, str(ROOT / "tools"), arguments]
    if xvfb:
        command = under_xvfb(command, "1280x720")  # show_run's size
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=code)  # cwd first on sys.path


SHOW_IN = """
import json, sys
sys.path.insert(0, sys.argv[1])
import playback_bench
lib, extras, song, seconds, frames, cuts, xvfb = json.loads(sys.argv[2])
import livejpp
result = playback_bench.show_run(lib, extras, song, seconds, frames, cuts, xvfb)
print("RESULT " + json.dumps(result | {"code": livejpp.__file__}))
"""


def show_in(
    code: Path, lib: Path, extras: list[str], song: Path, seconds: float, frames: str, cuts: bool, xvfb: bool = False
) -> dict:
    """show_run in a fresh process (a fresh pyglet) with the livejpp of `code`: this tree, or a baseline's;
    `xvfb`: in a window on a virtual X screen (xvfb-run), as the issue's targets are stated."""
    run = run_with_code(code, SHOW_IN, json.dumps([str(lib), extras, str(song), seconds, frames, cuts, xvfb]), xvfb)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    if run.returncode or not lines:
        raise SystemExit(f"the show with the code of {code} failed:\n{run.stderr[-2000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    if not Path(result.pop("code")).is_relative_to(code):  # the livejpp of another tree: a wrong comparison
        raise SystemExit(f"the show meant to run the code of {code} ran another livejpp")
    return result


def show_library(
    tmp: Path, layers: int, source_height: int, codec: str, seconds: float
) -> tuple[Path, list[str], Path]:
    """What show_run plays, made in `tmp`: a library of the footage at `source_height` lines (its matcher's clips in
    main/, one video per hand-set layer in extra/, played from the sources as they are), the extra videos' names
    for layers 2..`layers`, and a medley song that outlasts `seconds`."""
    from livejpp.index import embed_library
    from livejpp.library.build import build_library
    from livejpp.library.worker import BuildSettings

    (tmp / "made").mkdir()
    (tmp / "lib_in" / "main").mkdir(parents=True)
    (tmp / "lib_in" / "extra").mkdir()
    song = medley(seconds + 5.0, tmp)

    def source(k: int, folder: str) -> Path:
        made = scaled_source(FOOTAGE[k % len(FOOTAGE)], source_height, tmp / "made", seconds=6.0)
        made = {"hap": hap_source, "dxv": dxv_source}[codec](made, tmp / "made") if codec != "h264" else made
        return made.rename(tmp / "lib_in" / folder / made.name)

    for k in range(2):  # the matcher's clips: from a library that plays its sources as they are
        source(k, "main")
    extras = [source(k, "extra").name for k in range(2, layers + 1)]
    lib = tmp / "lib"
    build_library([tmp / "lib_in"], lib, BuildSettings(clip_seconds=3.0, transcode=False), progress=False)
    embed_library(lib, "default")
    return lib, extras, song


def run_show(args: argparse.Namespace, table) -> None:
    """`tools/bench.py live --show --layers N`: the real live show with 2 and N layers of pictures (the matcher's
    and N - 1 hand-set layers), rgb vs gpu frames, held; then N layers cutting on the beats; in one table.
    --codec hap: the sources as HAP (`library build --codec hap` plays them as they are); --baseline REV: each
    run with the code of REV too, just before this tree's."""
    import baseline_code  # tools/, beside this file

    counts = sorted({2, args.layers})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lib, extras, song = show_library(tmp, max(counts), args.source_height, args.codec, args.seconds)
        plans = [(n, frames, False) for n in counts for frames in ("rgb", "gpu")] + [(max(counts), "rgb", True)]
        if args.only:  # e.g. "4 rgb held", "4 rgb cutting": one long run without the others
            plans = [p for p in plans if f"{p[0]} {p[1]} {'cutting' if p[2] else 'held'}" in args.only]
        trees = {"": ROOT}
        if args.baseline:  # today's code in the same harness, each of its runs just before this tree's
            trees = {f"{args.baseline}: ": baseline_code.export(args.baseline, tmp / "baseline-code"), **trees}
        runs = {}
        for n, frames, cuts in plans:
            for label, code in trees.items():
                name = f"{label}{n} layers, {frames}" + (", cutting on beats" if cuts else ", held")
                load = os.getloadavg()[0]
                runs[name] = show_in(code, lib, extras[: n - 1], song, args.seconds, frames, cuts, args.xvfb)
                runs[name] |= {"load": load, "load_after": os.getloadavg()[0]}
                print(name, {k: round(v, 1) for k, v in runs[name].items()}, flush=True)
    print(
        f"the live show (LiveShow + ShowWindow, {'a window on Xvfb' if args.xvfb else 'headless EGL'}, llvmpipe, "
        f"1280x720, 30 fps), {args.source_height}p {args.codec} sources, {args.seconds:.0f} s a run, intervals "
        "after a 2 s warm-up; the matcher's layer and N - 1 hand-set layers at half opacity, all decoded by the "
        "show's decoder thread and drawn"
    )
    rows = [
        [
            name,
            *(f"{r[k]:.1f}" for k in ("p50", "p99", "max")),
            str(r["dropped"]),
            f"{r['cpu']:.0f}",
            f"{r['first_frame']} of {r['beat_cuts']}" if r["beat_cuts"] else "-",
            f"{r['late_max']:.0f}" if r["beat_cuts"] else "-",
            f"{r['load']:.1f} / {r['load_after']:.1f}",
        ]
        for name, r in runs.items()
    ]
    # the machine's load average says how much of it the show had: other work there slows every column
    headers = ["run", "interval p50 ms", "p99 ms", "max ms", "dropped", "CPU %", "beat cuts on their first frame"]
    print(table([*headers, "latest cut ms", "load (1 min) before / after"], rows))
    if args.codec == "h264" and not args.only:  # a chosen run is timed alone
        run_gil(args, table)


def decode_paced(paths: list[Path], frames: str, seconds: float, ready=None) -> int:
    """What the show's decoder thread does for `paths` layers: each layer's picture for the next frame at 30 fps
    (`frames` rgb: converted to RGB at 1280x720 on the CPU; gpu: the planes as decoded). Frames decoded."""
    from livejpp.media.player import ClipFrames

    readers = [ClipFrames(path, (1280, 720)) for path in paths]
    if ready is not None:
        ready.set()
    start, n = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        for reader in readers:
            reader.planes_at(n / 30 % 5.5) if frames == "gpu" else reader.frame_at(n / 30 % 5.5)
        n += 1
        wait = start + n / 30 - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the pace of a 30 fps show
    for reader in readers:
        reader.close()
    return n


def gil_probe(paths: list[Path], frames: str, seconds: float, where: str) -> dict:
    """How late a Python thread that asks for the GIL every millisecond (as the render loop does between GL
    calls) gets it while the decoding runs in a thread of this process, in another process (no GIL shared: only
    the CPU), or not at all. Lateness beyond the 1 ms sleep: p50/p99/max."""
    import threading

    context = get_context("spawn")
    ready = context.Event() if where == "process" else threading.Event()
    if where == "thread":
        worker = threading.Thread(target=decode_paced, args=(paths, frames, seconds + 1.0, ready))
    elif where == "process":
        worker = context.Process(target=decode_paced, args=(paths, frames, seconds + 1.0, ready))
    else:
        worker, _ = None, ready.set()
    if worker is not None:
        worker.start()
    if not ready.wait(120):
        raise RuntimeError("the decoder did not start")
    late, end = [], time.perf_counter() + seconds
    now = time.perf_counter()
    while now < end:
        time.sleep(0.001)
        now, before = time.perf_counter(), now
        late.append(now - before - 0.001)
    if worker is not None:
        worker.join()
    late = np.array(late) * 1000
    return {"p50": float(np.percentile(late, 50)), "p99": float(np.percentile(late, 99)), "max": float(late.max())}


def run_gil(args: argparse.Namespace, table) -> None:
    """`tools/bench.py live --show --layers N` (second table): does decoding in a thread stall the render loop
    through the GIL? The same paced decoding in a thread, in a process, and none, for rgb and gpu frames."""
    counts = sorted({2, args.layers})
    with tempfile.TemporaryDirectory() as tmp:
        paths = [scaled_source(FOOTAGE[k % 4], args.source_height, Path(tmp), 6.0) for k in range(max(counts))]
        rows = []
        for n in counts:
            for frames in ("rgb", "gpu"):
                runs = {
                    where: gil_probe(paths[:n], frames, args.seconds, where) for where in ("none", "process", "thread")
                }
                cells = [f"{r['p50']:.2f} / {r['p99']:.1f} / {r['max']:.0f}" for r in runs.values()]
                rows.append([f"{n} layers, {frames}", *cells])
    print(
        f"a thread asking for the GIL every 1 ms: how late it gets it (ms p50 / p99 / max), {args.source_height}p "
        f"H.264 decoded at 30 fps per layer, {args.seconds:.0f} s a run"
    )
    print(table(["layers, frames", "no decoding", "decoding in a process", "decoding in a thread"], rows))
