"""The bar tracker: a beat activation → the forward filter → a published grid → the bar and meter.

Candidate B of issue 11 ("bar"): over the hand-made onset activation by default, or over any
`ActivationSource` (BeatNet's learned one: "beatnet"). Cheap per call: the filter steps once per new
frame; the meter once per beat, one beat behind (a beat's harmony change is known at the next beat).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from livejpp.engine.activation import ActivationSource, OnsetActivation
from livejpp.engine.bar_pointer import FORGET_SECONDS, BarPointer, Grid
from livejpp.engine.meter import Downbeatness, Meter
from livejpp.engine.trackers import HOLD_BELOW, Estimate
from livejpp.features.audio import FRAME_RATE, AudioAnalyser

#: The onset of a beat shows in the frames centred this long before it: a frame's window (±46 ms) rises
#: as soon as the hit enters it. Measured once on the synthetic grooves of tests/synth.py (with no lag,
#: the scheduled beats came 27–30 ms early at 100–120 BPM): a property of the analysis, not of a song.
#: Added to the frame times. A source may bring its own as `lag` (seconds); else 0.
ONSET_LAG = 0.03
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
#: Downbeat-ness from a learned `down` activation: its share of the beat activation within ± this
#: many frames of the beat.
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
        self.meter = Meter()
        self.downbeatness = Downbeatness()
        self._beat: float | None = None  # the last beat the meter has seen (seconds)
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
        down = acts.down if acts.down is not None else np.full(len(acts.beat), np.nan, np.float32)
        for i, (a, d) in enumerate(zip(acts.beat.tolist(), down.tolist(), strict=True)):
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
            else:  # frame by frame, so that the block sizes the audio came in make no difference
                self._count_beats(analyser, frame / acts.fps)

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

    def _forget(self) -> None:
        """Long without information (silence, an ambient piece): no opinion until the music is back."""
        self.grid = Grid(self.fps)
        self.meter = Meter()
        self.downbeatness = Downbeatness()
        self._beat = None

    def _count_beats(self, analyser: AudioAnalyser, heard: float) -> None:
        """Step the meter over each beat whose following beat has been heard by `heard` (the centre of
        the newest frame: the harmony change of a beat is known only then)."""
        period = self.grid.period
        if period is None or self.grid.informed_at is None:
            return
        beat = self._next_beat(self._beat + 0.5 * period if self._beat is not None else heard - 2 * period)
        while beat + period <= heard:
            self.meter.observe(self._downbeatness(analyser, beat, period))
            self._beat = beat
            beat = self._next_beat(beat + 0.5 * period)

    def _next_beat(self, t: float) -> float:
        g = self.grid
        return g.anchor + math.ceil((t - g.anchor) / g.period - 1e-9) * g.period

    def _downbeatness(self, analyser: AudioAnalyser, beat: float, period: float) -> float:
        downs = [(a, d) for f, a, d in self._recent if abs(f / self.fps + self.lag - beat) <= DOWN_FRAMES / self.fps]
        if downs and not np.isnan(downs[0][1]):
            beats, down = np.array(downs).T.sum(axis=1)
            return float(down / beats) if beats > 1e-6 else 0.5
        before = _frame_range(beat - period, beat)
        after = _frame_range(beat, beat + period)
        first, chroma = analyser.frames_since("chroma", before[0])
        _, mel = analyser.frames_since("mel_db", before[0])
        _, low = analyser.frames_since("onset_low", before[0])
        if first > before[0] or after[1] - first > len(chroma):
            return 0.5  # forgotten or not yet heard: no opinion
        a = slice(before[0] - first, before[1] - first)
        b = slice(after[0] - first, after[1] - first)
        c1, c2 = chroma[a].mean(axis=0), chroma[b].mean(axis=0)
        change = 1.0 - float(c1 @ c2) / (np.linalg.norm(c1) * np.linalg.norm(c2) + 1e-12)
        hit = int(round((beat - self.lag) * FRAME_RATE)) - first
        low_onset = float(low[max(hit - DOWN_FRAMES, 0) : hit + DOWN_FRAMES + 1].max(initial=0.0))
        step = float(mel[b].mean() - mel[a].mean())
        return self.downbeatness(change, low_onset, step)

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
        if self._beat is None:
            bar_anchor = g.anchor
        else:  # the beat the meter saw last, moved onto the current grid, minus its place in the bar
            last = g.anchor + round((self._beat - g.anchor) / g.period) * g.period
            bar_anchor = last - self.meter.position * g.period
        held = g.confidence(now)  # the filter's own: its phase concentrated and recently informed
        return Estimate(g.period, g.anchor, bar_anchor, self.meter.beats_per_bar, held * evidence, held >= HOLD_BELOW)

    def resync(self, downbeat: float) -> None:
        """A downbeat falls at `downbeat`: the meter counts the bar from the grid's beat nearest it."""
        g = self.grid
        if g.period is None:
            return
        nearest = g.anchor + round((downbeat - g.anchor) / g.period) * g.period
        if self._beat is None:
            self._beat = nearest
        ahead = round((self._beat - nearest) / g.period)  # beats from the one to the last beat seen
        self.meter.force_one()
        for _ in range(ahead % self.meter.beats_per_bar):
            self.meter.skip()


def on_beats(t: np.ndarray | float, period: float, anchor: float, within: float) -> np.ndarray:
    """Whether each time `t` lies within `within` seconds of a beat of the grid (`period`, `anchor`)."""
    return np.abs(((np.asarray(t) - anchor) / period + 0.5) % 1.0 - 0.5) * period <= within


def _frame_range(start: float, end: float) -> tuple[int, int]:
    """Analyser frames centred in [start, end) seconds."""
    return int(math.ceil(start * FRAME_RATE - 1e-9)), int(math.ceil(end * FRAME_RATE - 1e-9))
