"""`tools/bench.py beats`: the engine's beat-scheduled cuts against true beats, per tracker.

Each song is fed to the real Engine in hops, as render and live do; what is scored is what a show
would do: the beats the engine scheduled ahead (`engine.beats`), the cuts it laid on them, the bar
count it used (a beat is a downbeat where its count is a multiple of the bar), and the analysis time
per hop. The trackers are picked by `EngineSettings(beat_tracker=name)`; a tracker this code does
not have is reported on one line and skipped.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from beats_truth import TOLERANCE, Score, Truth, from_times, load_beats, score  # noqa: E402
from bench import DEFAULT_MEDIA, table  # noqa: E402

from livejpp.media.decode import AUDIO_RATE, read_audio_file  # noqa: E402

BUNDLED = ROOT / "tests" / "media" / "beats"
#: cuts a show lays on the beat grid (not the first picture, not a VJ's forced cut)
BEAT_CUTS = ("bars", "phrase")


class Unavailable(Exception):
    """This tracker cannot run on this code (not merged yet, or its model is missing)."""


@dataclass
class Case:
    name: str
    samples: np.ndarray
    truth: Truth
    changes: list[float] = field(default_factory=list)  # tempo changes (lock is measured again)
    drops: list[float] = field(default_factory=list)  # drops (a cut for each is expected)


@dataclass
class Result:
    score: Score
    hop_seconds: list[float]  # the engine's own analysis time per hop
    push_seconds: list[float]  # the whole push of one hop's audio (a tracker may work per push, not per hop)
    held_cuts: int = 0  # cuts at --max-clip where the grid was not trusted (on the held grid's beats)
    held_on_beat: float = float("nan")  # ... the share of them within 70 ms of a true beat


def real_cases(folder: Path) -> list[Case]:
    """Every NAME.beats in `folder` with its audio beside it (or, for the bundled truth, in tests/media/music)."""
    cases = []
    for beats in sorted(folder.glob("*.beats")):
        audio = [p for p in beats.parent.glob(f"{beats.stem}.*") if p.suffix != ".beats"]
        audio += sorted((ROOT / "tests" / "media" / "music").glob(f"{beats.stem}.*"))
        if not audio:
            print(f"{beats}: no audio beside it, left out")
            continue
        cases.append(Case(beats.stem, read_audio_file(audio[0]), load_beats(beats)))
    return cases


def synthetic_cases() -> list[Case]:
    """Stress cases with exact truth: the slowest and fastest tempi, a waltz, a ramp, a jump, a breakdown."""
    sys.path.insert(0, str(ROOT / "tests"))
    from synth import beat_times, groove

    def case(name, bpm_at, seconds, per_bar=4, quiet=None, changes=(), drops=()):
        beats = beat_times(bpm_at, seconds)
        drums = None if quiet is None else (beats < quiet[0]) | (beats >= quiet[1])  # the pads alone in `quiet`
        audio = groove(beats, seconds, beats_per_bar=per_bar, drums=drums, pads=True)
        return Case(name, audio, from_times(beats, per_bar), list(changes), list(drops))

    ramp = case("synth ramp 100-140", lambda t: 100 + 40 * min(t, 30) / 30, 40)
    jump_beats = beat_times(lambda t: 120 if t < 20 else 135, 40)
    breakdown_beats = beat_times(lambda t: 128, 45)
    quiet = (breakdown_beats[32], breakdown_beats[48])  # 16 beats of pad after 8 bars, then the drop
    return [
        case("synth 60 BPM", lambda t: 60, 40),
        case("synth 200 BPM", lambda t: 200, 40),
        case("synth 3/4 140 BPM", lambda t: 140, 40, per_bar=3),
        ramp,
        case("synth jump 120-135", lambda t: 120 if t < 20 else 135, 40, changes=[jump_beats[jump_beats >= 20][0]]),
        case("synth breakdown 128", lambda t: 128, 45, quiet=quiet, drops=[quiet[1]]),
    ]


def settings_for(name: str):
    from livejpp.engine.engine import EngineSettings

    try:
        return EngineSettings(beat_tracker=name)
    except TypeError:
        if name == "today":
            return EngineSettings()  # code from before the tracker choice: its one clock is today's
        raise Unavailable("EngineSettings has no beat_tracker here") from None


def run_engine(library: Path, tracker: str, case: Case) -> Result:
    """Feed the song to a fresh engine in hops and score what it scheduled."""
    from livejpp.engine.engine import Engine

    try:
        engine = Engine(library, "default", settings_for(tracker))
    except Unavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a tracker that cannot start is reported, not fatal
        raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
    counts: dict[float, tuple[int, int]] = {}  # beat time -> (the engine's beat count, beats per bar)
    on_beat = engine.selector.on_beat

    def record(at, beat, *args, **kwargs):
        per_bar = getattr(engine.clock, "beats_per_bar", engine.selector.settings.beats_per_bar)
        counts[at] = (beat, per_bar)
        return on_beat(at, beat, *args, **kwargs)

    engine.selector.on_beat = record
    block = int(engine.settings.hop * AUDIO_RATE)
    pushes = []
    try:
        for start in range(0, len(case.samples), block):
            started = time.perf_counter()
            engine.push(case.samples[start : start + block])
            pushes.append(time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001
        raise Unavailable(f"{type(exc).__name__} while running: {exc}") from exc
    downbeats = [t for t in engine.beats if t in counts and counts[t][0] % counts[t][1] == 0]
    cuts = [c.time for c in engine.cuts if c.reason in BEAT_CUTS]
    drop_cuts = [c.time for c in engine.cuts if c.reason == "drop"]
    held = np.array([c.time for c in engine.cuts if c.reason == "max"])
    truth = case.truth.until(len(case.samples) / AUDIO_RATE)
    result = score(truth, engine.beats, cuts, downbeats, case.changes, case.drops, drop_cuts)
    held_on_beat = float("nan")
    if len(held) and len(truth.times):
        held_on_beat = 100.0 * float(np.mean(np.abs(held[:, None] - truth.times[None, :]).min(axis=1) <= TOLERANCE))
    return Result(result, [h.seconds for h in engine.hops], pushes, len(held), held_on_beat)


def _num(value: float | None, fmt: str = "{:.0f}", none: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return none
    return fmt.format(value)


def _seconds(values: list[float | None]) -> str:
    return ", ".join(_num(v, "{:.1f}", "never") for v in values) if values else "-"


HEADERS = [
    "song",
    "tracker",
    "BPM",
    "cuts",
    "on beat %",
    "on the one %",
    "max-clip cuts (on beat %)",
    "F",
    "CMLt",
    "AMLt",
    "F from 0 s",
    "downbeat F",
    "lock s",
    "relock s",
    "drop→cut s",
    "hop p50 ms",
    "hop p99 ms",
    "push p99 ms",
]


def row(name: str, tracker: str, bpm: float, result: Result) -> list[str]:
    s = result.score
    hops = np.array(result.hop_seconds) * 1000
    return [
        name,
        tracker,
        f"{bpm:.0f}",
        str(s.cuts),
        _num(s.on_beat),
        _num(s.on_one),
        f"{result.held_cuts} ({_num(result.held_on_beat)})",
        _num(s.f_measure),
        _num(s.cmlt),
        _num(s.amlt),
        _num(s.f_untrimmed),
        _num(s.f_down),
        _num(s.lock, "{:.1f}", "never"),
        _seconds(s.relock),
        _seconds(s.drop_to_cut),
        f"{np.percentile(hops, 50):.1f}" if len(hops) else "-",
        f"{np.percentile(hops, 99):.1f}" if len(hops) else "-",
        f"{np.percentile(result.push_seconds, 99) * 1000:.1f}",
    ]


def overall(label: str, tracker: str, results: list[Result]) -> list[str]:
    """Cuts pooled over the songs; beat measures averaged per song; lock as median (worst)."""
    scores = [r.score for r in results]
    cuts = sum(s.cuts for s in scores)

    def pooled(attr: str) -> float:
        return sum(getattr(s, attr) * s.cuts for s in scores if s.cuts) / cuts if cuts else float("nan")

    def mean(attr: str) -> float:
        values = [getattr(s, attr) for s in scores if not math.isnan(getattr(s, attr))]
        return float(np.mean(values)) if values else float("nan")

    locks = [s.lock for s in scores]
    found = [x for x in locks if x is not None]
    lock = f"{np.median(found):.1f} ({max(found):.1f})" if found else "never"
    if found and len(found) < len(locks):
        lock += f", {len(locks) - len(found)} never"
    relocks = [x for s in scores for x in s.relock]
    drops = [x for s in scores for x in s.drop_to_cut]
    hops = np.concatenate([r.hop_seconds for r in results]) * 1000
    pushes = np.concatenate([r.push_seconds for r in results]) * 1000
    held = sum(r.held_cuts for r in results)
    held_on_beat = sum(r.held_on_beat * r.held_cuts for r in results if r.held_cuts) / held if held else float("nan")
    return [
        label,
        tracker,
        "",
        str(cuts),
        _num(pooled("on_beat")),
        _num(pooled("on_one")),
        f"{held} ({_num(held_on_beat)})",
        _num(mean("f_measure")),
        _num(mean("cmlt")),
        _num(mean("amlt")),
        _num(mean("f_untrimmed")),
        _num(mean("f_down")),
        lock,
        _seconds(relocks),
        _seconds(drops),
        f"{np.percentile(hops, 50):.1f}",
        f"{np.percentile(hops, 99):.1f}",
        f"{np.percentile(pushes, 99):.1f}",
    ]


def build_library(folder: Path) -> Path:
    from bench import build_library as build

    from livejpp.index import embed_library

    lib = folder / "lib"
    if not (lib / "library.sqlite").exists() and not any(lib.glob("*.sqlite")):
        build(DEFAULT_MEDIA, lib, progress=False)
        embed_library(lib, "default")
    return lib


def run(args: argparse.Namespace) -> None:
    sets = args.set or [BUNDLED]
    groups = [(f"real set {folder.name}" if args.set else "bundled truth", real_cases(folder)) for folder in sets]
    real = len(groups)
    if not args.no_synthetic:
        groups.append(("synthetic", synthetic_cases()))
    with tempfile.TemporaryDirectory() as tmp:
        library = args.library or build_library(Path(tmp))
        skipped: set[str] = set()
        pooled: dict[str, list[Result]] = {t: [] for t in args.trackers}  # every real song: the targets
        for number, (label, cases) in enumerate(groups):
            rows, results = [], {t: [] for t in args.trackers}
            for case in cases:
                for tracker in args.trackers:
                    if tracker in skipped:
                        continue
                    try:
                        result = run_engine(library, tracker, case)
                    except Unavailable as exc:
                        print(f"tracker {tracker}: unavailable, skipped ({exc})")
                        skipped.add(tracker)
                        continue
                    results[tracker].append(result)
                    if number < real:
                        pooled[tracker].append(result)
                    rows.append(row(case.name, tracker, case.truth.bpm, result))
                    print(f"  {case.name} / {tracker}: {rows[-1][4]} % on beat, {rows[-1][5]} % on the one", flush=True)
            print(f"\n{label}: {len(cases)} songs; a cut is on a beat within 70 ms")
            print(table(HEADERS, rows))
            totals = [overall(f"all {label}", t, r) for t, r in results.items() if r]
            print(table(HEADERS, totals) + "\n")
        if real > 1:
            songs = sum(len(cases) for _, cases in groups[:real])
            print(f"every real song: {songs} songs of {real} sets, pooled as above")
            print(table(HEADERS, [overall(f"all {songs} real songs", t, r) for t, r in pooled.items() if r]) + "\n")
