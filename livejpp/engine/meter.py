"""Where the bar starts, and whether it has 3 or 4 beats: a small HMM stepped once per beat.

States (B, k): meter B in {3, 4}, beat k of the bar. Each beat moves k on by one (rarely anywhere
else: a missed or extra beat), and the meter may change only at a bar line. The observation is the
beat's downbeat-ness d in 0..1 (likelihood d for k = 0, 1 − d otherwise). Constants are the design's,
chosen a priori: P(4/4) = 0.8, η = 0.02, a meter switch 1e-3 per bar.
"""

from __future__ import annotations

from collections import deque

import numpy as np

METERS = (3, 4)
PRIOR_FOUR = 0.8
SLIP = 0.02  # η: a beat goes anywhere but the next position in the bar
METER_SWITCH = 1e-3
#: Downbeat-ness of the hand-made kind: weights of the z-scored chroma change, low-band onset and
#: loudness step (fixed a priori, as the design says), z-scored over this many beats.
WEIGHTS = (0.5, 0.3, 0.2)
HISTORY_BEATS = 16


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

    def observe(self, downbeatness: float) -> None:
        """One beat passed; `downbeatness` (0..1) says how much it sounded like a bar's first beat."""
        d = float(np.clip(downbeatness, 0.01, 0.99))
        p = (self.posterior @ self.transition) * np.where(self._is_one, d, 1 - d)
        self.posterior = p / p.sum()

    def force_one(self) -> None:
        """The last beat observed is the one (the VJ said so): keep the meter's odds, move k to 0."""
        four = float(self.posterior[self._four].sum())
        self.posterior = np.where(self._is_one, np.where(self._four, four, 1 - four), 0.0)

    @property
    def beats_per_bar(self) -> int:
        return 4 if self.posterior[self._four].sum() >= 0.5 else 3

    @property
    def position(self) -> int:
        """Beat of the bar (0 = the one) of the last beat observed, in the likelier meter."""
        mask = self._four if self.beats_per_bar == 4 else ~self._four
        best = int(np.argmax(np.where(mask, self.posterior, -1.0)))
        return self.states[best][1]

    @property
    def confidence(self) -> float:
        return float(self.posterior.max())


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


class Downbeatness:
    """The hand-made downbeat-ness of a beat: harmony changes, the kick and the bass land, and the
    music gets louder at the bar's one. Each cue is z-scored over the recent beats so no unit matters."""

    def __init__(self) -> None:
        self._cues: deque[np.ndarray] = deque(maxlen=HISTORY_BEATS)

    def __call__(self, chroma_change: float, low_onset: float, loudness_step: float) -> float:
        cue = np.array([chroma_change, low_onset, loudness_step])
        self._cues.append(cue)
        if len(self._cues) < 4:
            return 0.5  # too little history to tell: no opinion
        history = np.array(self._cues)
        z = (cue - history.mean(axis=0)) / (history.std(axis=0) + 1e-3)
        return float(_sigmoid(float(np.dot(WEIGHTS, z))))
