"""`tools/bench.py live --layers N --source-height H`: what playing N layers costs per frame, today's path
(each picture scaled and converted to RGB on the CPU, uploaded at output size) and the GPU-ready path (the
decoder's planes uploaded as they are; the shader converts, scales and crops), side by side in one run.

Headless EGL (llvmpipe) at the show's size, paced at 30 fps: per layer and frame, the CPU time of decode,
conversion and upload; frames dropped (a frame later than 1.5 intervals); frame-interval p99; peak memory.
The sources are the bundled footage scaled to H lines (H.264, in a temp dir); with --codec hap, also the same
frames as HAP (DXT1, livejpp/media/hap.py) in a third column: demux + Snappy as "decode", the DXT blocks
uploaded as they are (no conversion)."""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FOOTAGE = [ROOT / "tests/media/av/big_buck_bunny_0_30.webm", ROOT / "tests/media/footage/earth.mp4"]
FOOTAGE += [ROOT / "tests/media/footage/mdn_bug.mp4", ROOT / "tests/media/footage/cityCC0.mpg"]


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


def play(sources: list[Path], size: tuple[int, int], seconds: float, mode: str) -> dict:
    """One paced playback of all layers; per-stage CPU milliseconds per layer and frame, drops, p99."""
    from pyglet import gl as pgl

    from livejpp.media.hap import HapFrames
    from livejpp.render.compose import LayerDraw
    from livejpp.render.gl import offscreen
    from livejpp.render.player import ClipFrames, cover, planes_of

    window, compositor = offscreen(*size, layers=max(2, len(sources)))
    readers = [HapFrames(path) if mode == "hap" else ClipFrames(path, size) for path in sources]
    stages = {"decode": [], "convert": [], "upload": []}
    draws = []
    intervals, last, fps = [], None, 30.0
    start = time.monotonic()
    frame_no = 0
    while (now := time.monotonic()) - start < seconds:
        t = frame_no / fps
        for layer, reader in enumerate(readers):
            c0 = time.process_time()
            chosen = reader.picture_at(t % 9.5) if mode == "hap" else reader._chosen(t % 9.5)
            c1 = time.process_time()
            if mode == "hap":
                picture = chosen  # the DXT blocks as they are
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
    if args.codec == "hap":
        cpu = {name: r["decode"] + r["convert"] + r["upload"] for name, r in runs.items()}
        rows.append(["decode + conversion + upload, ms CPU per layer-frame", *(f"{c:.1f}" for c in cpu.values())])
        hap = cpu["HAP blocks to the GPU"]
        rows.append(["HAP layer's CPU / this column's", *(f"{hap / c:.2f}" for c in cpu.values())])
    print(table(["measure", *runs], rows))
