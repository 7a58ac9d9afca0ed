"""Beat ground truth: read and write `.beats` files, check them against their audio, score a clock.

A `.beats` file has one line per beat, "time<TAB>beat-in-bar" (seconds; 1 = the bar's first beat),
the format mir_eval and the beat-tracking datasets use. Dev tooling for the bench and the tests,
never imported by the show.

The score says what a VJ sees: the share of beat-scheduled cuts that land within 70 ms of a true
beat, the share that land on a bar's first beat, and how long the clock takes to lock; beside them
the standard beat-tracking measures (F-measure, CMLt, AMLt, downbeat F, from mir_eval).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: A cut or a beat this close to a true beat is on it (the usual beat-tracking tolerance).
TOLERANCE = 0.07
#: A clock has locked once this many consecutive scheduled beats are on true beats.
LOCK_BEATS = 4


@dataclass(frozen=True)
class Truth:
    times: np.ndarray  # [n] seconds, increasing
    positions: np.ndarray  # [n] beat in bar, 1 = the one

    @property
    def downbeats(self) -> np.ndarray:
        return self.times[self.positions == 1]

    @property
    def beats_per_bar(self) -> int:
        return int(self.positions.max()) if len(self.positions) else 0

    @property
    def bpm(self) -> float:
        """The median tempo (a tempo map's typical value)."""
        return 60.0 / float(np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0

    def until(self, end: float) -> Truth:
        keep = self.times <= end
        return Truth(self.times[keep], self.positions[keep])


def parse_beats(text: str, name: str = "<beats>") -> Truth:
    """Parse "time<TAB>beat-in-bar" lines (blank lines and # comments allowed); ValueError names the line."""
    times, positions = [], []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError("expected two fields")
            time, position = float(parts[0]), int(parts[1])
            if not np.isfinite(time) or time < 0 or position < 1:
                raise ValueError("time must be >= 0 and beat-in-bar >= 1")
        except ValueError as exc:
            raise ValueError(f"{name}:{number}: {line!r}: {exc}") from None
        if times and time <= times[-1]:
            raise ValueError(f"{name}:{number}: {line!r}: times must increase")
        times.append(time)
        positions.append(position)
    return Truth(np.array(times, np.float64), np.array(positions, np.int64))


def load_beats(path: str | Path) -> Truth:
    return parse_beats(Path(path).read_text(), str(path))


def format_beats(truth: Truth) -> str:
    return "".join(f"{t:.6f}\t{p}\n" for t, p in zip(truth.times, truth.positions, strict=True))


def write_beats(path: str | Path, truth: Truth) -> None:
    Path(path).write_text(format_beats(truth))


def grid(bpm: float, end: float, beats_per_bar: int = 4, start: float = 0.0) -> Truth:
    """A constant-tempo grid from `start` (a downbeat) up to `end` seconds."""
    return from_times(np.arange(start, end + 1e-9, 60.0 / bpm), beats_per_bar)


def from_times(times: Sequence[float] | np.ndarray, beats_per_bar: int = 4, first: int = 1) -> Truth:
    """Beat times with the bar counted from the first (which is beat `first` of its bar)."""
    times = np.asarray(times, np.float64)
    return Truth(times, (np.arange(len(times)) + first - 1) % beats_per_bar + 1)


def phase_score(samples: np.ndarray, times: np.ndarray) -> float:
    """How much stronger the onsets are at the annotated beats than half a beat later (> 1: the
    annotation holds; about 1 or below: it is off-beat or unrelated). Each beat takes the strongest
    onset frame within ±1 frame, so a beat between two frames is not missed."""
    from livejpp.features.audio import FRAME_RATE, AudioAnalyser

    analyser = AudioAnalyser(keep_seconds=None)
    analyser.push(samples)
    analyser.finish()
    env = analyser.onset_envelope(0.0, analyser.seconds)
    times = np.asarray(times, np.float64)
    if len(times) < 2 or not len(env):
        return 0.0
    half = np.concatenate([np.diff(times), [times[-1] - times[-2]]]) / 2

    def strength(at: np.ndarray) -> float:
        frames = np.round(at * FRAME_RATE).astype(int)
        frames = frames[(frames >= 1) & (frames < len(env) - 1)]
        if not len(frames):
            return 0.0
        return float(np.max([env[frames - 1], env[frames], env[frames + 1]], axis=0).mean())

    off = strength(times + half)
    return strength(times) / off if off > 0 else float("inf")


@dataclass(frozen=True)
class Score:
    cuts: int
    on_beat: float  # % of cuts within TOLERANCE of a true beat
    on_one: float  # % of cuts within TOLERANCE of a true downbeat
    f_measure: float  # beat F-measure (%), first 5 s left out as is standard
    cmlt: float
    amlt: float
    f_untrimmed: float  # the same from 0 s (lock time counts live)
    f_down: float  # downbeat F-measure (%), nan when the clock gives no downbeats
    lock: float | None  # seconds from the start to lock (None: never)
    relock: list[float | None]  # seconds from each tempo change to lock again
    drop_to_cut: list[float | None]  # seconds from each drop to the first "drop" cut after it


def nearest(truth_times: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest true beat to each time, and the absolute distance to it."""
    times = np.asarray(times, np.float64)
    if not len(truth_times):
        return np.zeros(len(times), int), np.full(len(times), np.inf)
    right = np.clip(np.searchsorted(truth_times, times), 0, len(truth_times) - 1)
    left = np.clip(right - 1, 0, len(truth_times) - 1)
    pick = np.where(np.abs(truth_times[left] - times) <= np.abs(truth_times[right] - times), left, right)
    return pick, np.abs(truth_times[pick] - times)


def lock_time(truth: Truth, beats: np.ndarray, after: float = 0.0) -> float | None:
    """Seconds from `after` to the first scheduled beat that starts a run of LOCK_BEATS consecutive
    scheduled beats all on true beats (None: never)."""
    beats = np.asarray(beats, np.float64)
    beats = beats[beats >= after]
    _, distance = nearest(truth.times, beats)
    run = 0
    for i, ok in enumerate(distance <= TOLERANCE):
        run = run + 1 if ok else 0
        if run == LOCK_BEATS:
            return float(beats[i - LOCK_BEATS + 1] - after)
    return None


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else float("nan")


def score(
    truth: Truth,
    beats: Sequence[float] | np.ndarray,
    cuts: Sequence[float] | np.ndarray,
    downbeats: Sequence[float] | np.ndarray | None = None,
    changes: Sequence[float] = (),
    drops: Sequence[float] = (),
    drop_cuts: Sequence[float] = (),
) -> Score:
    """Score the beats a clock scheduled and the cuts laid on them against the truth.

    `changes`: times of tempo changes (lock is measured again after each); `drops`: times of drops
    (a sudden rise in energy), `drop_cuts`: the times of the cuts made for a drop."""
    import mir_eval

    beats = np.asarray(beats, np.float64)
    cuts = np.asarray(cuts, np.float64)
    pick, distance = nearest(truth.times, cuts)
    on = distance <= TOLERANCE
    on_one = on & (truth.positions[pick] == 1) if len(cuts) else on

    def f(ref: np.ndarray, est: np.ndarray, trim: bool = True) -> float:
        if trim:
            ref, est = mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(est)
        if not len(ref):
            return float("nan")
        return 100.0 * mir_eval.beat.f_measure(ref, est, f_measure_threshold=TOLERANCE) if len(est) else 0.0

    ref = mir_eval.beat.trim_beats(truth.times)
    est = mir_eval.beat.trim_beats(beats)
    cmlt = amlt = 0.0
    if len(ref) > 1 and len(est) > 1:
        _, cmlt, _, amlt = mir_eval.beat.continuity(ref, est)
    down = f(truth.downbeats, np.asarray(downbeats, np.float64)) if downbeats is not None else float("nan")
    drop_to_cut = []
    for drop in drops:
        after = [c - drop for c in drop_cuts if c >= drop - TOLERANCE]
        drop_to_cut.append(min(after) if after else None)
    return Score(
        cuts=len(cuts),
        on_beat=_percent(int(on.sum()), len(cuts)),
        on_one=_percent(int(on_one.sum()), len(cuts)),
        f_measure=f(truth.times, beats),
        cmlt=100.0 * cmlt,
        amlt=100.0 * amlt,
        f_untrimmed=f(truth.times, beats, trim=False),
        f_down=down,
        lock=lock_time(truth, beats),
        relock=[lock_time(truth, beats, after=c) for c in changes],
        drop_to_cut=drop_to_cut,
    )
