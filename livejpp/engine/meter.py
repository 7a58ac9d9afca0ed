"""Where the bar starts, and whether it has 3 or 4 beats: a small HMM stepped once per beat.

States (B, k): meter B in {3, 4}, beat k of the bar. Each beat moves k on by one (rarely anywhere
else: a missed or extra beat), and the meter may change only at a bar line. The observation is, per
meter, the beat's downbeat-ness d_B in 0..1 (likelihood d_B for k = 0, 1 − d_B otherwise), from
`BarCues`: how much the harmony and the sound change across the beat, over spans of one beat up to a
bar, and how hard the low band hits on it. P(4/4) = 0.8 and a meter switch 1e-3 per bar are a priori.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

import numpy as np

METERS = (3, 4)
PRIOR_FOUR = 0.8
#: η: a beat goes anywhere but the next position in the bar (a beat the grid missed or added). Of 0.02, 0.005
#: and 0.001, with the beats known on the 27 songs of the truth and held-out sets, 0.005 and 0.001 found the
#: one more often than 0.02 (held-out: 84 % of beats against 78 %); the larger recovers sooner from a slip.
SLIP = 0.005
METER_SWITCH = 1e-3
#: The published bar (metre and beat of the bar) moves only to a state this many times likelier than the one
#: it holds: where the beats all sound alike the posterior wavers, and the one must not wander with it.
MOVE_RATIO = 3.0
#: Each cue is z-scored against its last this many values (beats), so no unit or mix matters.
HISTORY_BEATS = 64
#: Per meter, the spans (beats) over which harmony (chroma) and sound (mel) change are measured: one beat,
#: half a bar and the bar. A bar's one is where both the chord and the texture change, over the bar most.
CHROMA_SPANS = {3: (1, 3), 4: (1, 2, 4)}
MEL_SPANS = {3: (3,), 4: (2, 4)}
#: The cue spans reach this many beats after the beat judged: its downbeat-ness is known this many beats late.
AFTER = max(max(CHROMA_SPANS[m] + MEL_SPANS[m]) for m in METERS)
CHROMA_ALL = sorted({s for m in METERS for s in CHROMA_SPANS[m]})
MEL_ALL = sorted({s for m in METERS for s in MEL_SPANS[m]})


class Meter:
    def __init__(self) -> None:
        self.states = [(b, k) for b in METERS for k in range(b)]
        index = {s: i for i, s in enumerate(self.states)}
        t = np.zeros((len(self.states), len(self.states)))
        for (b, k), i in index.items():
            for k2 in range(b):
                t[i, index[(b, k2)]] = (1 - SLIP) if k2 == (k + 1) % b else SLIP / (b - 1)
            if k == b - 1:  # at the bar line the meter may change
                for other in METERS:
                    if other != b:
                        t[i, index[(other, 0)]] += METER_SWITCH
                        t[i, index[(b, 0)]] -= METER_SWITCH
        self.transition = t
        self._is_one = np.array([k == 0 for _, k in self.states])
        self._four = np.array([b == 4 for b, _ in self.states])
        self.posterior = np.array([(PRIOR_FOUR if b == 4 else 1 - PRIOR_FOUR) / b for b, _ in self.states])
        self._index = {s: i for i, s in enumerate(self.states)}
        self._published: int | None = None  # the state the bar is counted from (index in states)

    def observe(self, downbeatness: Mapping[int, float]) -> None:
        """One beat passed; `downbeatness[B]` (0..1) says how much it sounded like the first beat of a
        bar of B beats."""
        clipped = {b: min(max(float(downbeatness[b]), 0.01), 0.99) for b in METERS}
        d = np.array([clipped[b] for b, _ in self.states])
        p = (self.posterior @ self.transition) * np.where(self._is_one, d, 1 - d)
        self.posterior = p / p.sum()
        if self._published is not None:  # the held state moves on by one beat
            b, k = self.states[self._published]
            self._published = self._index[(b, (k + 1) % b)]
        best = int(np.argmax(self.posterior))
        if self._published is None:  # the first bar is published once one state stands out (no coin-toss)
            if self.posterior[best] >= MOVE_RATIO * float(np.partition(self.posterior, -2)[-2]):
                self._published = best
        elif self.posterior[best] >= MOVE_RATIO * self.posterior[self._published]:
            self._published = best

    def force_one(self) -> None:
        """The last beat observed is the one (the VJ said so): keep the meter's odds, move k to 0."""
        four = float(self.posterior[self._four].sum())
        self.posterior = np.where(self._is_one, np.where(self._four, four, 1 - four), 0.0)
        self._published = self._index[(4 if four >= 0.5 else 3, 0)]

    def skip(self) -> None:
        """One beat passed that says nothing of the bar (the VJ's resync counts on from the one)."""
        self.posterior = self.posterior @ self.transition
        if self._published is not None:
            b, k = self.states[self._published]
            self._published = self._index[(b, (k + 1) % b)]

    @property
    def known(self) -> bool:
        """Whether the music has said where the bar starts (else `position` is only the likeliest guess)."""
        return self._published is not None

    @property
    def beats_per_bar(self) -> int:
        if self._published is None:
            return 4 if self.posterior[self._four].sum() >= 0.5 else 3
        return self.states[self._published][0]

    @property
    def position(self) -> int:
        """Beat of the bar (0 = the one) of the last beat observed."""
        if self._published is None:
            mask = self._four if self.beats_per_bar == 4 else ~self._four
            return self.states[int(np.argmax(np.where(mask, self.posterior, -1.0)))][1]
        return self.states[self._published][1]

    @property
    def confidence(self) -> float:
        return float(self.posterior.max())


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(x, -50.0), 50.0)))


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b) / (math.sqrt(float(a @ a) * float(b @ b)) + 1e-12)


class BarCues:
    """How much each beat sounds like a bar's first beat, per meter: the chord changes there (chroma
    before vs after, over one beat, half a bar and the bar), the sound changes there (mel spectrum, over
    half a bar and the bar), and the kick or bass hits it (low-band onset). Each cue is z-scored over the
    recent beats and the cues are averaged with equal weights, chosen a priori. With the beats known
    (tools/downbeat_cues.py), a meter fed with them counts the place in the bar right on 77 % of the beats
    of the truth set and 88 % of the held-out songs; fed with BeatNet's downbeat activation, 51 % and 38 %:
    which is why that is not used."""

    def __init__(self) -> None:
        self._chroma: deque[np.ndarray] = deque(maxlen=2 * AFTER)
        self._mel: deque[np.ndarray] = deque(maxlen=2 * AFTER)
        self._low: deque[float] = deque(maxlen=2 * AFTER)
        self._history: dict[str, _Recent] = {}

    def add(self, chroma: np.ndarray, mel: np.ndarray, low_onset: float) -> dict[int, float] | None:
        """One more beat heard whole (its mean chroma and mel spectrum, the low onset on it). Returns the
        downbeat-ness per meter of the beat AFTER - 1 beats before it (None while too few beats are known)."""
        self._chroma.append(np.asarray(chroma, np.float64))
        self._mel.append(np.asarray(mel, np.float64))
        self._low.append(float(low_onset))
        if len(self._chroma) < 2 * AFTER:
            return None
        # sums over any run of beats from one cumulative sum (a bar counted again replays dozens of beats)
        chroma = np.cumsum([np.zeros_like(self._chroma[0]), *self._chroma], axis=0)
        mel = np.cumsum([np.zeros_like(self._mel[0]), *self._mel], axis=0)
        judged = AFTER  # index of the judged beat in the window: AFTER beats before it, AFTER from it on
        cues: dict[str, float] = {"low": self._low[judged]}
        for span in CHROMA_ALL:
            before, after = chroma[judged] - chroma[judged - span], chroma[judged + span] - chroma[judged]
            cues[f"chroma{span}"] = _cosine_distance(before, after)  # of the sums: the same as of the means
        for span in MEL_ALL:
            step = (mel[judged + span] - 2 * mel[judged] + mel[judged - span]) / span
            cues[f"mel{span}"] = math.sqrt(float(step @ step) / len(step))
        z = {name: self._z(name, value) for name, value in cues.items()}
        if any(v is None for v in z.values()):
            return None
        out = {}
        for meter in METERS:
            names = ["low"] + [f"chroma{s}" for s in CHROMA_SPANS[meter]] + [f"mel{s}" for s in MEL_SPANS[meter]]
            out[meter] = _sigmoid(sum(z[n] for n in names) / len(names))  # type: ignore[operator]
        return out

    def restart(self) -> None:
        """A beat could not be summarised (not kept): the spans start again after it; the cues' scales stay."""
        self._chroma.clear()
        self._mel.clear()
        self._low.clear()

    def _z(self, name: str, value: float) -> float | None:
        history = self._history.setdefault(name, _Recent(HISTORY_BEATS))
        history.append(value)
        if history.count < 4:
            return None  # too little history to tell: no opinion
        return (value - history.mean) / (history.std + 1e-3)


class _Recent:
    """The mean and standard deviation of the last `size` values, kept as running sums (a cue is z-scored
    on every beat; a bar counted again replays dozens)."""

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._sum = self._squares = 0.0

    def append(self, value: float) -> None:
        if len(self._values) == self._values.maxlen:
            old = self._values[0]
            self._sum -= old
            self._squares -= old * old
        self._values.append(value)
        self._sum += value
        self._squares += value * value

    @property
    def count(self) -> int:
        return len(self._values)

    @property
    def mean(self) -> float:
        return self._sum / len(self._values)

    @property
    def std(self) -> float:
        return math.sqrt(max(self._squares / len(self._values) - self.mean**2, 0.0))
