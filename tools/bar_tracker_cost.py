#!/usr/bin/env python3
"""What the bar tracker costs per hop (0.5 s of audio), as a live show calls it.

    python tools/bar_tracker_cost.py [SONG ...] [--block 441] [--seconds 60]

Audio arrives in `--block` samples (441 = 20 ms, the live read); after each push the analyser's
frames are fed to the tracker (`advance`), and once per hop it is asked for its grid (`estimate`).
Prints, per song, the tracker's time per hop (p50, p99, max) and, beside it, the analyser's own
time per hop (for scale: the live hop budget of 20 ms p99 covers both and the embedding). Speed is
measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livejpp.engine.trackers import make_tracker  # noqa: E402
from livejpp.features.audio import AudioAnalyser  # noqa: E402
from livejpp.media.decode import AUDIO_RATE, read_audio_file  # noqa: E402

HOP = 0.5
SONGS = ("lmms_Skiessi-C64.ogg", "lmms_CapDan-ReggaeTry.ogg", "Kevin_MacLeod-Vibe_Ace.ogg")


def cost(audio: np.ndarray, block: int, tracker_name: str, clock=time.perf_counter) -> tuple[np.ndarray, np.ndarray]:
    """Per hop: seconds spent in the tracker, and in the analyser's push, by `clock` (wall time by default;
    time.thread_time counts only this thread's CPU time, the fairer measure on a loaded machine)."""
    tracker, analyser = make_tracker(tracker_name), AudioAnalyser(keep_seconds=20)
    hop_samples = int(HOP * AUDIO_RATE)
    tracking, analysing, t_track, t_analyse = [], [], 0.0, 0.0
    for i in range(0, len(audio), block):
        started = clock()
        analyser.push(audio[i : i + block])
        pushed = clock()
        tracker.advance(analyser)
        t_analyse += pushed - started
        t_track += clock() - pushed
        if analyser.samples_in // hop_samples != (analyser.samples_in - len(audio[i : i + block])) // hop_samples:
            started = clock()
            tracker.estimate(analyser.samples_in / AUDIO_RATE)
            tracking.append(t_track + clock() - started)
            analysing.append(t_analyse)
            t_track = t_analyse = 0.0
    return np.array(tracking), np.array(analysing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("songs", nargs="*", default=[str(ROOT / "tests/media/music" / s) for s in SONGS])
    parser.add_argument("--block", type=int, default=441)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tracker", default="bar")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'song':30s} {'clock':6s} {'hops':>5s}  tracker ms/hop p50 / p99 / max   analyser ms/hop p50 / p99")
    for song in args.songs:
        audio = read_audio_file(song, 0.0, args.seconds)
        for label, clock in (("wall", time.perf_counter), ("cpu", time.thread_time)):
            tracking, analysing = cost(audio, args.block, args.tracker, clock)
            t, a = tracking * 1000, analysing * 1000
            print(
                f"{Path(song).name[:30]:30s} {label:6s} {len(t):5d}  {np.median(t):6.2f} / "
                f"{np.percentile(t, 99):6.2f} / {t.max():6.2f}          "
                f"{np.median(a):6.2f} / {np.percentile(a, 99):6.2f}"
            )


if __name__ == "__main__":
    main()
