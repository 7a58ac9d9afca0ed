"""Where the live show's late frames come from: one show_run (tools/playback_bench.py) with every frame's work
timed and put beside the intervals later than 1.5 frames.

    python tools/late_frames.py [--seconds 120] [--layers 4] [--source-height 1080] [--cutting] [--xvfb]
                                [--baseline REV] [--nice-decoder N] [--save PATH]

Per frame: the snapshot, the pictures (_compose), the overlays (HUD and help), and within them each HUD label
laid out anew (pyglet's text setter); the GL drawing (a glFinish before the swap: llvmpipe rasterises the frame
then), the buffer swap (flip); the wait before the next frame. Besides: every garbage collection (gc.callbacks:
generation, thread, duration), and the CPU of the decoder's and the analysis' Python threads in each interval
(their own, not FFmpeg's threads). The show runs in a fresh process (under xvfb-run with --xvfb), its library
built here first; --nice-decoder N adds a run with the decoder thread N nicer (an experiment)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

PROBE = r"""
import gc, json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import playback_bench
import pyglet
from livejpp.engine.live import LiveShow
from livejpp.render import window

lib, extras, song, seconds, cuts, xvfb, out, nice = json.loads(sys.argv[2])
frames, gcs, layouts, texts = [], [], [], []
current = {}

def on_gc(phase, info, started=[0.0]):
    if phase == "start":
        started[0] = time.monotonic()
    else:
        spent, thread = time.monotonic() - started[0], threading.current_thread().name
        gcs.append((started[0], spent, info["generation"], info["collected"], thread))

gc.callbacks.append(on_gc)

def timed(cls, name, key):
    original = getattr(cls, name)
    def wrapper(*args, **kwargs):
        t0 = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            if threading.current_thread() is threading.main_thread():
                current[key] = current.get(key, 0.0) + time.monotonic() - t0
    setattr(cls, name, wrapper)

timed(LiveShow, "snapshot", "snapshot")
spans = []  # the other threads' work: (kind, start, wall, that thread's CPU)

def spanned(name, kind):
    original = getattr(LiveShow, name)
    def wrapper(show):
        t0, c0 = time.monotonic(), time.thread_time()
        try:
            return original(show)
        finally:
            spans.append((kind, t0, time.monotonic() - t0, time.thread_time() - c0))
    setattr(LiveShow, name, wrapper)

spanned("_decode_once", "decode")
spanned("_analyse_once", "analysis")

if nice:  # the decoder thread (and the codec threads it starts) below the render thread and GL's
    decode = LiveShow._decode
    def niced_decode(show):
        window._background_thread("decoder", nice)
        decode(show)
    LiveShow._decode = niced_decode
timed(window.ShowWindow, "_compose", "compose")
timed(window.ShowWindow, "_draw_overlays", "overlays")

text_property = pyglet.text.DocumentLabel.text
def set_text(label, value):
    t0 = time.monotonic()
    text_property.fset(label, value)
    spent = time.monotonic() - t0
    layouts.append((t0, spent, value.count("\n") + 1, len(value)))
    current["layout"] = current.get("layout", 0.0) + spent
    current["layouts"] = current.get("layouts", 0) + 1
    if len(texts) < 400 and "\n" in value:
        texts.append(value)
pyglet.text.DocumentLabel.text = property(text_property.fget, set_text)

draw_frame = window.ShowWindow.draw_frame
def timed_draw(self):
    global current
    current = {"start": time.monotonic()}
    draw_frame(self)
    current["end"] = time.monotonic()
    frames.append(current)
window.ShowWindow.draw_frame = timed_draw

show_open = window.ShowWindow.open
def open_and_time_flips(self, *args, **kwargs):
    show_open(self, *args, **kwargs)
    kind = type(self.window)
    flip = kind.flip
    def timed_flip(win):
        t0 = time.monotonic()
        pyglet.gl.glFinish()  # llvmpipe draws when the frame is flushed: the drawing's own time, then the swap's
        t1 = time.monotonic()
        flip(win)
        if frames:
            frames[-1]["finish"], frames[-1]["flip"] = t1 - t0, time.monotonic() - t1
            frames[-1]["flipped"] = time.monotonic()
    kind.flip = timed_flip
window.ShowWindow.open = open_and_time_flips

result = playback_bench.show_run(lib, extras, song, seconds, "rgb", cuts, xvfb)
gc.callbacks.remove(on_gc)
records = {"result": result, "frames": frames, "gcs": gcs, "layouts": layouts, "texts": texts, "spans": spans}
json.dump(records, open(out, "w"))
"""


def probe(
    code: Path, lib: Path, extras: list[str], song: Path, seconds: float, cuts: bool, xvfb: bool, nice: int = 0
) -> dict:
    """The instrumented show in a fresh process with the livejpp of `code`; its records."""
    from playback_bench import run_with_code

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.json"
        arguments = json.dumps([str(lib), extras, str(song), seconds, cuts, xvfb, str(out), nice])
        run = run_with_code(code, PROBE, arguments, xvfb)
        if run.returncode or not out.exists():
            raise SystemExit(f"the probed show failed:\n{run.stderr[-3000:]}")
        return json.loads(out.read_text())


def ms(values, q: float | None = None) -> str:
    values = np.asarray(values, float) * 1000
    if not len(values):
        return "-"
    return f"{np.percentile(values, q) if q is not None else values.max():.1f}"


def cpu_in(spans: list, kind: str, start: float, end: float) -> float:
    """CPU seconds that `kind` of work spent between start and end (a span's CPU spread over its wall time)."""
    total = 0.0
    for k, t0, wall, cpu in spans:
        if k == kind and t0 < end and t0 + wall > start:
            total += cpu * (min(end, t0 + wall) - max(start, t0)) / max(wall, 1e-9)
    return total


def report(records: dict, table) -> None:
    """Per-stage times, then each late interval beside what its frames did."""
    frames, gcs, layouts = records["frames"], records["gcs"], np.array(records["layouts"] or np.zeros((0, 4)))
    spans = records.get("spans", [])
    warm = frames[0]["start"] + 2.0
    frames = [f for f in frames if f["start"] > warm and "end" in f]
    gcs = [g for g in gcs if g[0] > warm]
    print({k: round(v, 1) if isinstance(v, float) else v for k, v in records["result"].items()})
    draw = [f["end"] - f["start"] for f in frames]
    rows = [
        [name, str(len(v)), ms(v, 50), ms(v, 99), ms(v)]
        for name, v in [
            ("snapshot", [f.get("snapshot", 0) for f in frames]),
            ("compose (upload, draw)", [f.get("compose", 0) for f in frames]),
            ("overlays (HUD, help)", [f.get("overlays", 0) for f in frames]),
            ("draw_frame, all", draw),
            ("glFinish before the swap (GL drawing)", [f.get("finish", 0) for f in frames]),
            ("flip (swap)", [f.get("flip", 0) for f in frames]),
            ("label text laid out, per call", layouts[:, 1] if len(layouts) else []),
            *[(f"gc generation {g}", [x[1] for x in gcs if x[2] == g]) for g in (0, 1, 2)],
        ]
    ]
    print(table(["stage, per frame (ms)", "count", "p50", "p99", "max"], rows))
    if len(layouts):
        lines = layouts[:, 2]
        print(f"labels laid out: {len(layouts)}, lines each p50 {np.median(lines):.0f} max {lines.max():.0f}")
    late = []
    for before, frame in zip(frames, frames[1:], strict=False):
        interval = frame["start"] - before["start"]
        if interval <= 1.5 / 30:
            continue
        flipped = before.get("flipped", before["end"])
        in_gap = [g for g in gcs if before["start"] <= g[0] < frame["start"]]
        work = {kind: cpu_in(spans, kind, before["start"], frame["start"]) for kind in ("decode", "analysis")}
        late.append(
            [
                f"{1000 * interval:.0f}",
                f"{1000 * (before['end'] - before['start']):.0f}",
                f"{1000 * before.get('snapshot', 0):.0f} / {1000 * before.get('compose', 0):.0f} / "
                f"{1000 * before.get('overlays', 0):.0f}",
                f"{1000 * before.get('layout', 0):.0f} ({before.get('layouts', 0)})",
                f"{1000 * before.get('finish', 0):.0f} / {1000 * before.get('flip', 0):.0f}",
                f"{1000 * (frame['start'] - flipped):.0f}",
                f"{1000 * work['decode']:.0f} / {1000 * work['analysis']:.0f}",
                " ".join(f"g{g[2]}:{1000 * g[1]:.0f}ms@{g[4][:8]}" for g in in_gap) or "-",
            ]
        )
    print(f"{len(late)} late intervals (> 50 ms) of {len(frames) - 1}; the frame before each:")
    headers = ["interval ms", "draw ms", "snap / compose / overlays", "HUD layout ms (calls)", "glFinish / flip ms"]
    print(table([*headers, "then waited ms", "decoder / analysis CPU ms", "gc in the interval"], late))
    every = [
        [kind, *(f"{1000 * cpu_in(spans, kind, a['start'], b['start']):.1f}" for a, b in pairs)]
        for kind in ("decode", "analysis")
        for pairs in [list(zip(frames, frames[1:], strict=False))[:: max(1, len(frames) // 400)]]
    ]
    shares = {row[0]: np.array(row[1:], float) for row in every}
    print(
        "per interval (all frames), CPU ms of the decoder p50/p99: "
        f"{np.percentile(shares['decode'], 50):.1f} / {np.percentile(shares['decode'], 99):.1f}; "
        f"analysis p50/p99: {np.percentile(shares['analysis'], 50):.1f} / {np.percentile(shares['analysis'], 99):.1f}"
    )
    hud_frames = [f for f in frames if f.get("layouts")]
    if hud_frames:
        d = [f["end"] - f["start"] for f in hud_frames]
        rest = [f["end"] - f["start"] for f in frames if not f.get("layouts")]
        print(f"draw_frame with a HUD layout: p50 {ms(d, 50)} max {ms(d)}; without: p50 {ms(rest, 50)} max {ms(rest)}")
    if records["texts"]:
        print("a HUD text as laid out:\n" + records["texts"][len(records["texts"]) // 2])


def main() -> None:
    import baseline_code
    import bench
    import playback_bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--source-height", type=int, default=1080)
    parser.add_argument("--cutting", action="store_true", help="cutting on the beats (default: held)")
    parser.add_argument("--xvfb", action="store_true", help="in a window on Xvfb (default: headless EGL)")
    parser.add_argument("--baseline", metavar="REV", help="the same show with the code of git REV first")
    parser.add_argument("--nice-decoder", type=int, default=0, help="and a run with the decoder thread this much nicer")
    parser.add_argument("--save", type=Path, help="also keep each run's raw records (JSON): PATH.0.json, ...")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        made = playback_bench.show_library(Path(tmp), args.layers, args.source_height, "h264", args.seconds)
        lib, extras, song = made
        runs = [("this tree", ROOT, 0)]
        if args.baseline:  # the code of REV first, then this tree's, on the same library
            runs.insert(0, (args.baseline, baseline_code.export(args.baseline, Path(tmp) / "baseline-code"), 0))
        if args.nice_decoder:
            runs.append((f"this tree, decoder thread nice +{args.nice_decoder}", ROOT, args.nice_decoder))
        for k, (name, code, nice) in enumerate(runs):
            load = os.getloadavg()[0]
            records = probe(code, lib, extras, song, args.seconds, args.cutting, args.xvfb, nice)
            print(f"\n=== {name}: load (1 min) before / after: {load:.1f} / {os.getloadavg()[0]:.1f}")
            if args.save:
                args.save.with_suffix(f".{k}.json").write_text(json.dumps(records))
            report(records, bench.table)


if __name__ == "__main__":
    main()
