"""The online beat filter: a forward algorithm over a bar-pointer state space (Krebs, Böck & Widmer
2015, as madmom's `BeatStateSpace` and `RNNBeatTrackingObservationModel`), one frame at a time.

A state is (beat interval n frames, position p in 0..n-1); every frame moves p on by one, and at the
end of a beat the interval may change a little. The activation says where beats are likely. The
posterior gives tempo and phase; `Grid` turns them into a published beat grid, with the guards a
live show needs (no octave or off-beat flips on a whim, a held grid through breakdowns).

Constants are madmom's defaults (tempo range 55–215 BPM, transition λ 100, observation λ 16) or
chosen a priori as the design says; none is fitted to a song.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

MIN_BPM, MAX_BPM = 55.0, 215.0
#: madmom's DBNBeatTrackingProcessor default (λ 100), stated at its 100 fps. A tempo step between neighbouring
#: interval states is 100/fps times larger at a coarser frame rate, so λ scales with fps to keep the cost of
#: one step at a given tempo the same (43 at our 43 fps: 170 BPM's 15/16-frame states stay reachable).
TRANSITION_LAMBDA_AT_100_FPS = 100.0
OBSERVATION_LAMBDA = 16  # madmom default: the first 1/16 of a beat are "beat" states
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 0.7  # log-normal tempo prior (as `tempo_of`), settles the octave at the start
#: Per frame, this share of the posterior is re-spread over the prior: a new tempo can always take over...
RELOCK_EPS = 1e-4
#: ... faster while the onsets no longer fall where the filter expects beats.
RELOCK_EPS_LOST = 1e-2
#: No frame may veto a state: the activation is capped here, so a non-beat state keeps ≥ 1/150 of a beat
#: state's likelihood and one stray hit cannot wipe out the posterior.
MAX_ACTIVATION = 0.9
#: ... and floored here, as a learned activation between beats (madmom's RNN: ~0.01–0.05): a beat that
#: does not sound counts about 2× against its state, not infinitely (music leaves beats out).
MIN_ACTIVATION = 0.03
#: An onset at least this strong (activation) is a beat-like event; without one for GAP_BEATS beats the
#: frames stop being informative (the drums stopped: holding beats guessing from silence).
STRONG, GAP_BEATS = 0.5, 2.0
#: After this long without information, the filter starts again from its prior.
FORGET_SECONDS = 30.0


class RunningMean:
    """The mean of the last `size` values pushed, in O(1) per value."""

    def __init__(self, size: int):
        self._values: deque[float] = deque(maxlen=size)
        self._sum = 0.0

    def push(self, value: float) -> None:
        if self.full:
            self._sum -= self._values[0]
        self._values.append(value)
        self._sum += value

    def clear(self) -> None:
        self._values.clear()
        self._sum = 0.0

    @property
    def full(self) -> bool:
        return len(self._values) == self._values.maxlen

    @property
    def mean(self) -> float:
        return self._sum / len(self._values) if self._values else 0.0


@dataclass(frozen=True)
class FilterOutput:
    """What one frame of the filter says."""

    phase: float  # 0..1, position within the beat (0: on the beat)
    strength: float  # R: 0..1, how concentrated the phase is
    interval: float  # frames per beat (refined between the integer states)
    informative: bool  # this frame's activation was used


class BarPointer:
    """Forward filter over beat interval × position. Vectorised: one frame is a handful of numpy
    operations on ~1 000 floats plus a tempo×tempo mat-vec."""

    def __init__(self, fps: float, min_bpm: float = MIN_BPM, max_bpm: float = MAX_BPM):
        self.fps = fps
        self.intervals = np.arange(round(60.0 * fps / max_bpm), round(60.0 * fps / min_bpm) + 1)
        self.first = np.concatenate([[0], np.cumsum(self.intervals)[:-1]])
        self.last = self.first + self.intervals - 1
        self.tempo_of_state = np.repeat(np.arange(len(self.intervals)), self.intervals)
        positions = np.arange(self.intervals.sum()) - self.first[self.tempo_of_state]
        interval = self.intervals[self.tempo_of_state]
        self.beat_state = positions * OBSERVATION_LAMBDA < interval  # p/n < 1/16
        self._beat_index = np.flatnonzero(self.beat_state)
        angle = 2 * np.pi * positions / interval
        self._phasor = np.exp(1j * angle)
        ratio = self.intervals[None, :] / self.intervals[:, None]
        self.transition_lambda = TRANSITION_LAMBDA_AT_100_FPS * fps / 100.0
        a = np.exp(-self.transition_lambda * np.abs(ratio - 1.0))
        a[a <= np.spacing(1)] = 0.0
        self._transition_t = np.ascontiguousarray((a / a.sum(axis=1, keepdims=True)).T)
        bpm = 60.0 * fps / self.intervals
        tempo_prior = np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
        tempo_prior /= tempo_prior.sum()
        self.prior = tempo_prior[self.tempo_of_state] / interval  # uniform over phase
        self.alpha = self.prior.copy()
        self._window = int(round(2.0 * fps))
        self._fit_short = RunningMean(self._window)  # predictive fit, last 2 s
        self._fit_long = RunningMean(4 * self._window)  # ... and last 8 s
        self.uninformed = 0  # frames since the last informative one
        self.since_strong = 1 << 30  # frames since the last strong onset
        self._interval = float(self.intervals[np.argmax(tempo_prior)])  # the filter's beat interval (frames)
        self._locked = False  # its phase has been concentrated (R ≥ 0.5) since the last reset

    def reset(self) -> None:
        self.alpha = self.prior.copy()
        self._locked = False
        self._fit_short.clear()
        self._fit_long.clear()

    def gate(self, a: float) -> bool:
        """Is this frame (activation `a`) informative? Call once per frame, before `step`."""
        self.since_strong = 0 if a >= STRONG else self.since_strong + 1
        # before its first lock the beat may be as slow as the slowest tempo; after it, it is the filter's own
        return self.since_strong <= GAP_BEATS * (self._interval if self._locked else self.intervals[-1])

    def seed(self, phase: float, interval: float) -> None:
        """Believe a grid (phase 0..1 now, `interval` frames per beat): after a hold, the filter's own
        integer-interval states have drifted from the grid the show kept, so it resumes from that grid."""
        weight = np.exp(-self.transition_lambda * np.abs(self.intervals / interval - 1.0))
        near = np.flatnonzero(weight > 1e-3)
        alpha = np.zeros_like(self.alpha)
        positions = np.round(phase * self.intervals[near]).astype(int) % self.intervals[near]
        alpha[self.first[near] + positions] = weight[near]
        self.alpha = (1.0 - RELOCK_EPS_LOST) * alpha / alpha.sum() + RELOCK_EPS_LOST * self.prior

    def step(self, a: float, informative: bool) -> FilterOutput:
        """Advance one frame with activation `a` (0..1) and return what the posterior now says."""
        a = min(max(a, MIN_ACTIVATION), MAX_ACTIVATION)
        alpha = self.alpha
        new = np.empty_like(alpha)
        new[1:] = alpha[:-1]
        if informative:
            new[self.first] = self._transition_t @ alpha[self.last]
            fit = float(new[self._beat_index].sum()) * a  # how well the prediction meets the onsets
            self._fit_short.push(fit)
            self._fit_long.push(fit)
            lost = self._fit_long.full and self._fit_short.mean < 0.5 * self._fit_long.mean
            eps = RELOCK_EPS_LOST if lost else RELOCK_EPS
            new *= 1.0 - eps
            new += eps * self.prior
            off_beat = (1.0 - a) / (OBSERVATION_LAMBDA - 1)
            new[self._beat_index] *= a / off_beat  # likelihood: a on beat states, (1 - a) / 15 elsewhere
            new *= off_beat
            self.uninformed = 0
        else:  # breakdown: no tempo change, no likelihood, the grid runs on as it was
            new[self.first] = alpha[self.last]
            self.uninformed += 1
            if self.uninformed > FORGET_SECONDS * self.fps:
                self.reset()
                self.uninformed = 0
                new = self.alpha.copy()
        total = new.sum()
        self.alpha = new / total if total > 0 else self.prior.copy()
        return self.output(informative)

    def output(self, informative: bool) -> FilterOutput:
        z = complex(self._phasor @ self.alpha)
        mass = np.add.reduceat(self.alpha, self.first)  # per tempo: its states are contiguous
        best = int(np.argmax(mass))
        near = slice(max(best - 2, 0), best + 3)
        interval = float(self.intervals[near] @ mass[near] / mass[near].sum())
        self._interval = interval
        self._locked = self._locked or abs(z) >= 0.5
        return FilterOutput((math.atan2(z.imag, z.real) / (2 * np.pi)) % 1.0, abs(z), interval, informative)

    def tempo_mass(self, interval: float, tolerance: float = 0.08) -> float:
        """Posterior mass on beat intervals within `tolerance` (relative) of `interval` frames."""
        near = np.abs(self.intervals / interval - 1.0) <= tolerance
        mass = np.bincount(self.tempo_of_state, self.alpha, minlength=len(self.intervals))
        return float(mass[near].sum())


#: Published tempo: the slope of the filter's unwrapped phase over this many seconds (sub-frame accurate:
#: a frame is 2–8 % of a beat, too coarse to extrapolate through a breakdown).
FIT_SECONDS = 4.0
#: A newest phase this far (beats) off the fit means the tempo changed: the fit starts again.
FIT_BREAK = 0.12
#: Confidence: the phase strength smoothed over this long, and decaying with this time without information.
STRENGTH_SECONDS, DECAY_SECONDS = 1.0, 8.0
#: Below this confidence the grid's owner should not trust it.
TRUST = 0.3
#: Off-beat guard: a phase jump larger than this (beats) is taken only once it held OFFBEAT_BEATS beats at
#: strength ≥ OFFBEAT_STRENGTH (or the old grid was not trusted).
OFFBEAT_JUMP, OFFBEAT_BEATS, OFFBEAT_STRENGTH = 0.25, 2.0, 0.6
#: A trusted grid moves only where the filter's phase is at least this concentrated (R).
MOVE_STRENGTH = 0.3
#: A tempo change larger than this (relative) is a jump: it too must hold OFFBEAT_BEATS beats first.
TEMPO_JUMP = 0.06
#: A grid that moved by more than this (beats of phase, relative tempo) is new: not yet guarded.
STABLE_SHIFT, STABLE_TEMPO = 0.1, 0.02
#: Octave guard: half or double the published tempo is taken only after its posterior mass exceeded
#: OCTAVE_MASS for OCTAVE_SECONDS.
OCTAVE_MASS, OCTAVE_SECONDS = 0.7, 4.0


class PhaseFit:
    """Least-squares line through the last `size` (time, unwrapped phase) points: its slope is the tempo."""

    def __init__(self, size: int):
        self._t = np.zeros(size)
        self._phase = np.zeros(size)
        self._count = 0
        self._next = 0

    def __len__(self) -> int:
        return self._count

    def push(self, t: float, phase: float) -> None:
        self._t[self._next], self._phase[self._next] = t, phase
        self._next = (self._next + 1) % len(self._t)
        self._count = min(self._count + 1, len(self._t))

    def clear(self) -> None:
        self._count = self._next = 0

    def restart(self) -> None:
        """Keep only the newest point."""
        newest = (self._next - 1) % len(self._t)
        self._t[0], self._phase[0] = self._t[newest], self._phase[newest]
        self._count, self._next = 1, 1 % len(self._t)

    def line(self, t: float) -> tuple[float, float]:
        """(slope in beats per second, the line's phase at time t)."""
        if self._count == len(self._t):
            x, y = self._t - t, self._phase
        else:
            x, y = self._t[: self._count] - t, self._phase[: self._count]  # filled from 0 since the last restart
        xm, ym = x.mean(), y.mean()
        dx = x - xm
        slope = float(dx @ (y - ym) / (dx @ dx)) if dx @ dx > 0 else 0.0
        return slope, float(ym - slope * xm)


def _wrap(x: float) -> float:
    """x modulo 1 into [-0.5, 0.5)."""
    return (x + 0.5) % 1.0 - 0.5


class Grid:
    """The published beat grid (period, anchor, confidence), fed the filter's output frame by frame."""

    def __init__(self, fps: float):
        self.fps = fps
        self.period: float | None = None
        self.anchor = 0.0
        self.strength = 0.0  # EMA of R over informative frames
        self.informed_at: float | None = None  # time of the last informative frame
        self._fit = PhaseFit(int(FIT_SECONDS * fps))
        self._unwrapped = 0.0
        self._previous_phase: float | None = None
        self._offbeat_since: float | None = None
        self._octave_since: float | None = None
        self._stable_since: float | None = None  # when the grid last moved by more than a nudge

    def confidence(self, now: float) -> float:
        if self.informed_at is None:
            return 0.0
        return self.strength * math.exp(-max(0.0, now - self.informed_at) / DECAY_SECONDS)

    def update(self, t: float, out: FilterOutput, pointer: BarPointer) -> None:
        """Frame at time `t` (seconds, already shifted by the activation's lag)."""
        if not out.informative:  # hold: the grid is extrapolated; the fit cannot bridge the gap
            self._previous_phase = None
            self._fit.clear()
            return
        # the guards protect a grid the show relies on: trusted, and unchanged for OFFBEAT_BEATS beats
        trusted = (
            self.confidence(t) >= TRUST
            and self._stable_since is not None
            and t - self._stable_since >= OFFBEAT_BEATS * (self.period or 0.0)
        )
        self.strength += (out.strength - self.strength) / (STRENGTH_SECONDS * self.fps)
        self.informed_at = t
        period, anchor = self._candidate(t, out)
        if self.period is None:
            self.period, self.anchor, self._stable_since = period, anchor, t
            return
        if trusted and out.strength < MOVE_STRENGTH:  # a diffuse phase says nothing: keep the grid
            return
        ratio = period / self.period
        octave = 2.0 if 1.8 < ratio < 2.2 else 0.5 if 0.45 < ratio < 0.55 else 1.0
        if octave != 1.0:
            if pointer.tempo_mass(out.interval) < OCTAVE_MASS:
                self._octave_since = None
            elif self._octave_since is None:
                self._octave_since = t
            if trusted and (self._octave_since is None or t - self._octave_since < OCTAVE_SECONDS):
                # keep the octave the show is in; the filter's beats still give the phase. At double tempo
                # every other filter beat is an off-beat: take the one nearer the grid
                if octave == 0.5 and abs(_wrap((anchor - self.anchor) / self.period)) > 0.25:
                    anchor += period
                period /= octave
        else:
            self._octave_since = None
        shift = _wrap((anchor - self.anchor) / self.period)
        if period / self.period < 0.75:  # the finer grid has two candidate phases: keep the nearer
            shift = _wrap((anchor - self.anchor) / period)
        if (abs(shift) > OFFBEAT_JUMP or abs(period / self.period - 1.0) > TEMPO_JUMP) and trusted:
            if out.strength < OFFBEAT_STRENGTH or self._offbeat_since is None:
                self._offbeat_since = t if out.strength >= OFFBEAT_STRENGTH else None
                return
            if t - self._offbeat_since < OFFBEAT_BEATS * period:
                return
        self._offbeat_since = None
        if abs(shift) > STABLE_SHIFT or abs(period / self.period - 1.0) > STABLE_TEMPO:
            self._stable_since = t
            if not trusted:  # still locking: the phases before this move belong to another grid
                self._fit.restart()
        self.period, self.anchor = period, anchor

    def _candidate(self, t: float, out: FilterOutput) -> tuple[float, float]:
        """The filter's grid now: tempo from the phase slope when it holds, else from the tempo states."""
        if self._previous_phase is not None:
            self._unwrapped += _wrap(out.phase - self._previous_phase)
        else:
            self._unwrapped = out.phase
        self._previous_phase = out.phase
        self._fit.push(t, self._unwrapped)
        period = out.interval / self.fps
        if self.period is not None and abs(period / self.period - 1.0) <= TEMPO_JUMP:
            period = self.period  # the tempo states are 2–8 % apart: the published tempo is finer until a fit
        if len(self._fit) < self.fps:  # under a second: not enough to fit
            return period, t - out.phase * period
        slope, intercept = self._fit.line(t)
        if abs(intercept - self._unwrapped) > FIT_BREAK or slope <= 0 or abs(1.0 / slope / period - 1.0) > 0.08:
            self._fit.restart()  # the tempo changed: fit only from here on
            return period, t - out.phase * period
        period = 1.0 / slope
        return period, t - (intercept % 1.0) * period
