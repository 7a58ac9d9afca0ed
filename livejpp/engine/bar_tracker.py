"""The bar tracker: a beat activation → the forward filter → a published grid → the bar and meter.

Candidate B of issue 11 ("bar"): over the hand-made onset activation by default, or over any
`ActivationSource` (BeatNet's learned one: "beatnet"). Cheap per call: the filter steps once per new
frame; the meter once per beat, a bar behind (a bar's change of harmony is known a bar later). The bars
are counted at each decision (`estimate`), on the grid as it stands then: where it moved (another tempo,
beats elsewhere), they are counted again on it over the audio kept (`BarCounter`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from livejpp.engine.activation import ONSET_LAG, ActivationSource, OnsetActivation
from livejpp.engine.bar_counter import BarCounter
from livejpp.engine.bar_pointer import FORGET_SECONDS, BarPointer, Grid
from livejpp.engine.trackers import HOLD_BELOW, Estimate
from livejpp.features.audio import FRAME_RATE, AudioAnalyser

#: The contrast (see `BarTracker.contrast`) at which the evidence is full: the beats carry twice the mean
#: activation. At 1 (no more on the beats than anywhere) the confidence is 0, whatever the filter's phase says.
CONTRAST_FULL = 2.0
#: ... measured over at most this many seconds, and only since the grid last moved (a judging window that
#: restarts with the grid: so 4 s are enough, where a fixed window needed 8 to keep noise from fitting one).
CONTRAST_SECONDS = 4.0
#: The onsets' contrast at full evidence (flux is denser than an activation: a mastered metal mix gives 1.3
#: on its beats, noise 1.0 ± 0.1), within ± this many analyser frames of the beat.
ONSET_CONTRAST_FULL, ONSET_FRAMES = 1.5, 1.5
#: ... with the grid as it stood this long before each frame (the show decides its cuts about as far ahead).
PREDICT_SECONDS = 0.25
#: A beat "hits" within ± this many of the activation's frames of its time.
DOWN_FRAMES = 2


def _ratio(values: np.ndarray, on: np.ndarray, floor: float) -> float:
    """Mean of the values on the beats over the mean of all (0 with none on a beat or nothing at all)."""
    mean = float(values.mean())
    return float(values[on].mean()) / mean if on.any() and mean > floor else 0.0


def as_evidence(contrast: float, full: float = CONTRAST_FULL) -> float:
    """A contrast as evidence, 0..1: none at 1 (no more on the beats than anywhere), full at `full`."""
    return min(1.0, max(0.0, (contrast - 1.0) / (full - 1.0)))


class BarTracker:
    """Implements `livejpp.engine.trackers.Tracker` over `source` (default: the hand-made onset activation).
    Named after the source's `name` where it has one ("beatnet"), else "bar"."""

    def __init__(self, source: ActivationSource | None = None):
        self.source: ActivationSource = source if source is not None else OnsetActivation()
        self.name = getattr(self.source, "name", None) or (
            "beatnet" if "beatnet" in type(self.source).__name__.lower() else "bar"
        )
        self.lag = ONSET_LAG if source is None else getattr(self.source, "lag", 0.0)
        self.fps = float(self.source.fps)
        self.pointer = BarPointer(self.fps)
        self.grid = Grid(self.fps)
        self.bars = BarCounter()
        keep = int(CONTRAST_SECONDS * self.fps)
        self._recent: deque[tuple[int, float, float]] = deque(maxlen=keep)  # (frame, beat, down) activations
        self._analyser: AudioAnalyser | None = None
        self._judged_since: float | None = None  # the grid's stable_since when its judging began
        self._grids: deque[tuple[float | None, float]] = deque(maxlen=int(PREDICT_SECONDS * self.fps) + 1)
        self._predicted: deque[tuple[float, float]] = deque(maxlen=keep)  # (activation, on a predicted beat)

    def advance(self, analyser: AudioAnalyser) -> None:
        self._analyser = analyser
        acts = self.source.advance(analyser)
        if acts is None or len(acts.beat) == 0:
            return
        down = acts.down.tolist() if acts.down is not None else [math.nan] * len(acts.beat)
        for i, (a, d) in enumerate(zip(acts.beat.tolist(), down, strict=True)):
            frame = acts.first + i
            t = frame / acts.fps + self.lag
            informative = self.pointer.gate(a)
            g = self.grid
            if informative and g.period is not None and self.pointer.uninformed > self.fps * g.period:
                if g.confidence(t) > 0.0:  # back from a hold: resume from the grid held through it
                    self.pointer.seed(((t - g.anchor) / g.period) % 1.0, g.period * self.fps)
            self._judge(t, a)
            self.grid.update(t, self.pointer.step(a, informative), self.pointer)
            self._recent.append((frame, a, d))
            if self.grid.informed_at is not None and t - self.grid.informed_at > FORGET_SECONDS:
                self._forget()

    def _judge(self, t: float, a: float) -> None:
        """Note whether the frame at `t` (activation `a`) falls on a beat of the grid as it stood
        PREDICT_SECONDS ago."""
        g = self.grid
        if g.stable_since != self._judged_since:  # a new grid: judged on what comes from now on
            self._judged_since = g.stable_since
            self._predicted.clear()
            self._grids.clear()
        self._grids.append((g.period, g.anchor))
        period, anchor = self._grids[0]
        if period is None or len(self._grids) < (self._grids.maxlen or 0):  # not yet PREDICT_SECONDS old
            return
        self._predicted.append((a, float(on_beats(t, period, anchor, DOWN_FRAMES / self.fps))))

    def _down_shares(self) -> Callable[[float], float | None] | None:
        """The learned downbeat share on a beat, over the activations kept (None: the source has no downbeats)."""
        if not self._recent or math.isnan(self._recent[-1][2]):
            return None
        frames, acts, down = np.array(self._recent).T  # once per decision: a recount asks for dozens of beats
        times, within = frames / self.fps + self.lag, DOWN_FRAMES / self.fps
        return lambda beat: down_share(times, acts, down, beat, within)

    def _forget(self) -> None:
        """Long without information (silence, an ambient piece): no opinion until the music is back."""
        self.grid = Grid(self.fps)
        self.bars = BarCounter()

    def contrast(self) -> float:
        """How much more activation fell where the grid had said beats would fall, PREDICT_SECONDS before
        they came, than on all the frames since the grid last moved (at most CONTRAST_SECONDS): music on
        its beat gives several times more; noise, a pad or a grid on the off-beat about as much (1). Judged
        ahead, as the show's cuts are: a grid fitted to what it already heard fits noise too (a filter
        always settles on some phase)."""
        if len(self._predicted) < self.fps:
            return 0.0
        acts, on = np.array(self._predicted).T
        return _ratio(acts, on > 0, 1e-6)

    def contrast_on(self, period: float, anchor: float) -> float:
        """The activation's contrast on another grid's beats (± DOWN_FRAMES) over the last seconds heard:
        how far a grid found some other way (the autocorrelation clock's) is borne out by this one's
        activation. Not biased: that grid was not fitted to this activation."""
        if len(self._recent) < self.fps or period <= 0:
            return 0.0
        frames, acts, _ = np.array(self._recent).T
        return _ratio(acts, on_beats(frames / self.fps + self.lag, period, anchor, DOWN_FRAMES / self.fps), 1e-6)

    def onset_contrast(self, now: float) -> float:
        """The same for the onsets the analyser hears (spectral flux) on the grid's beats over the last
        CONTRAST_SECONDS: a check independent of the activation, which a learned network can hallucinate
        (BeatNet fed pink noise oscillates at ~110 BPM, its activation then fits a grid as music does)."""
        g, analyser = self.grid, self._analyser
        if g.period is None or analyser is None:
            return 0.0
        first, onsets = analyser.frames_since("onset", max(0, math.ceil((now - CONTRAST_SECONDS) * FRAME_RATE)))
        if len(onsets) < FRAME_RATE:
            return 0.0
        t = (first + np.arange(len(onsets))) / FRAME_RATE + ONSET_LAG
        return _ratio(onsets, on_beats(t, g.period, g.anchor, ONSET_FRAMES / FRAME_RATE), 1e-9)

    def evidence(self, now: float) -> float:
        """0..1: how well the music heard bears the grid out, by the weaker of the two contrasts; 0 once
        nothing has marked a beat for GAP_BEATS (a breakdown, silence: the grid is held, not cut on)."""
        if self.pointer.uninformed > 0:
            return 0.0
        return min(as_evidence(self.contrast()), as_evidence(self.onset_contrast(now), ONSET_CONTRAST_FULL))

    def estimate(self, now: float) -> Estimate | None:
        g = self.grid
        if g.period is None or g.informed_at is None:
            return None
        evidence = self.evidence(now)
        if self._analyser is not None:  # on the grid as each decision sees it: a file and a stream alike
            self.bars.count(self._analyser, g.period, g.anchor, now, self._down_shares())
        bar_anchor = self.bars.bar_anchor(g.period, g.anchor)
        held = g.confidence(now)  # the filter's own: its phase concentrated and recently informed
        return Estimate(
            g.period,
            g.anchor,
            g.anchor if bar_anchor is None else bar_anchor,
            self.bars.beats_per_bar,
            held * evidence,
            held >= HOLD_BELOW,
        )

    def resync(self, downbeat: float) -> None:
        """A downbeat falls at `downbeat`: the meter counts the bar from the grid's beat nearest it."""
        if self.grid.period is not None:
            self.bars.resync(downbeat, self.grid.period, self.grid.anchor)


def down_share(times: np.ndarray, beat: np.ndarray, down: np.ndarray, at: float, within: float) -> float | None:
    """A learned downbeat activation's share of the beat activation within `within` seconds of `at` (frames
    at `times`); None where no beat activation is there."""
    near = np.abs(times - at) <= within
    total = float(beat[near].sum())
    return float(down[near].sum()) / total if total > 1e-6 else None


def on_beats(t: np.ndarray | float, period: float, anchor: float, within: float) -> np.ndarray:
    """Whether each time `t` lies within `within` seconds of a beat of the grid (`period`, `anchor`)."""
    return np.abs(((np.asarray(t) - anchor) / period + 0.5) % 1.0 - 0.5) * period <= within
