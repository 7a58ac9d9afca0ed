"""`python tools/downbeat_cues.py DIR [DIR ...]`: how well each source of downbeat evidence finds the bar's
one when the beats are known exactly (the .beats files of a truth set, tools/beats_data.py).

Per song, every true beat is summarised as the live bar counter does (engine/bar_counter.py) and a meter
(engine/meter.py) is stepped over it, fed either with the music's own cues (`BarCues`: changes of harmony and
sound across the beat, the kick on it) or with BeatNet's downbeat share (its P(downbeat) over its P(beat)
within ±2 frames, as the bar tracker used it before). Scored: the share of beats, once the meter has
published a bar, on which it counts the beat's place in the bar as the truth does (a wrong bar scores 0).
This separates the bar from the beat: the bench (tools/bench.py beats) scores both together, through the
tracker's own beats.

A third column runs the live bar counter itself (engine/bar_counter.py, as the trackers count bars: each
0.5 s hop, 20 s of audio kept, bars recounted when the grid moves) on the true beats as a grid (the period of the
last 8 s of true beats, anchored on the newest): the bars a show would count if its beat grid were exact. Scored
on every true beat from the first bar it gives on (provisional bars included: a show cuts on them too). The gap
between it and the trackers' own figures (tools/bench.py beats) is what the beat grid costs the one; the gap to
the first column, what counting live (the start, recounts, 20 s of audio) costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from beats_truth import load_beats  # noqa: E402
from bench import table  # noqa: E402

from livejpp.engine.bar_counter import BarCounter, beat_summary  # noqa: E402
from livejpp.engine.bar_tracker import DOWN_FRAMES, down_share  # noqa: E402
from livejpp.engine.meter import AFTER, BarCues, Meter  # noqa: E402
from livejpp.features.audio import AudioAnalyser  # noqa: E402
from livejpp.features.beatnet import BeatNetActivation  # noqa: E402
from livejpp.media.decode import AUDIO_RATE, read_audio_file  # noqa: E402

SECONDS = 180.0  # of each song
HOP = 0.5  # seconds of audio a live show pushes at a time (EngineSettings.hop)
KEEP = 20.0  # seconds of audio the engine's analyser keeps
GRID_SECONDS = 8.0  # the exact grid's period: the median beat of the true beats this far back


def score(song: Path, beats: Path) -> tuple[int, float, float]:
    """(beats scored, % right with the music's cues, % right with BeatNet's downbeat share); NaN: none scored."""
    truth = load_beats(beats)
    samples = read_audio_file(song)[: int(SECONDS * AUDIO_RATE)]
    analyser = AudioAnalyser(keep_seconds=None)
    analyser.push(samples)
    analyser.finish()
    acts = BeatNetActivation().advance(analyser)
    frame_times = (acts.first + np.arange(len(acts.beat))) / acts.fps + BeatNetActivation.lag
    times, positions = truth.times, truth.positions
    keep = times < len(samples) / AUDIO_RATE - 1.0
    times, positions = times[keep], positions[keep]
    cues, by_cues, by_beatnet = BarCues(), Meter(), Meter()
    right: dict[str, list[bool]] = {"cues": [], "beatnet": []}
    for i in range(len(times) - 1):
        summary = beat_summary(analyser, float(times[i]), float(times[i + 1] - times[i]))
        judged = cues.add(*summary) if summary is not None else None
        if judged is not None:
            j = i - (AFTER - 1)  # the beat the cues judge
            by_cues.observe(judged)
            if by_cues.known:
                right["cues"].append(by_cues.position == positions[j] - 1)
        share = down_share(frame_times, acts.beat, acts.down, float(times[i]), DOWN_FRAMES / acts.fps)
        share = 0.5 if share is None else share  # no beat activation there: no opinion
        by_beatnet.observe({3: share, 4: share})
        if by_beatnet.known:
            right["beatnet"].append(by_beatnet.position == positions[i] - 1)

    def percent(values: list[bool]) -> float:
        return 100.0 * float(np.mean(values)) if values else float("nan")

    return len(right["cues"]), percent(right["cues"]), percent(right["beatnet"])


def live_on_true_grid(song: Path, beats: Path) -> float:
    """% of true beats whose place in the bar the live bar counter, fed the true beats as its grid, gives right."""
    truth = load_beats(beats)
    samples = read_audio_file(song)[: int(SECONDS * AUDIO_RATE)]
    analyser, counter = AudioAnalyser(keep_seconds=KEEP), BarCounter()
    times, positions = truth.times, truth.positions
    block = int(HOP * AUDIO_RATE)
    right: list[bool] = []
    for start in range(0, len(samples), block):
        analyser.push(samples[start : start + block])
        now = (start + block) / AUDIO_RATE
        heard = times[(times <= now) & (times >= now - GRID_SECONDS)]
        if len(heard) < 2:
            continue
        period, anchor = float(np.median(np.diff(heard))), float(heard[-1])
        counter.count(analyser, period, anchor, now)
        downbeat = counter.bar_anchor(period, anchor)
        if downbeat is None:
            continue
        coming = (times >= now) & (times < now + HOP)  # the beats a show decides now
        for beat, position in zip(times[coming], positions[coming], strict=True):
            right.append(round((beat - downbeat) / period) % counter.beats_per_bar == position - 1)
    return 100.0 * float(np.mean(right)) if right else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path, help="folders of songs with their .beats")
    args = parser.parse_args()
    for folder in args.sets:
        rows, cues_all, beatnet_all, live_all = [], [], [], []
        for beats in sorted(folder.glob("*.beats")):
            song = next((p for p in beats.parent.glob(beats.stem + ".*") if p.suffix in (".ogg", ".flac")), None)
            if song is None:
                continue
            n, cues, beatnet = score(song, beats)
            cues_all.append(cues)
            beatnet_all.append(beatnet)
            live = live_on_true_grid(song, beats)
            live_all.append(live)
            rows.append([beats.stem, str(n), f"{cues:.0f}", f"{beatnet:.0f}", f"{live:.0f}"])
        means = [f"{np.nanmean(values):.0f}" for values in (cues_all, beatnet_all, live_all)]
        rows.append([f"mean of {len(rows)} songs", "", *means])
        print(f"\n{folder}: beats whose place in the bar the meter counts as the truth does, %")
        print(table(["song", "beats", "music's cues", "BeatNet downbeat", "live counter, true grid"], rows))


if __name__ == "__main__":
    main()
