"""Counting bars on a beat grid: each beat heard whole is summarised for the bar cues, and the meter is
stepped over the beat they judge (a bar behind: a bar's change of harmony is known a bar later). A grid
first found, or one that moved (another tempo, beats elsewhere), is counted over the audio kept: the bar is
known at once, and never carried over from another grid's beats.

The bar tracker counts on its own grid; "auto" also counts on the pulse's grid, for when it follows that.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from livejpp.engine.activation import ONSET_LAG
from livejpp.engine.meter import AFTER, BarCues, Meter
from livejpp.features.audio import FRAME_RATE, AudioAnalyser

#: The low-band onset of a beat is its strongest within ± this many analyser frames of the beat.
HIT_FRAMES = 2

#: Two grids are the same beat when their periods differ by less than this (relative) and their beats by less
#: than this share of a beat; a grid that moved further from the beats counted is a new grid, whose bars are
#: counted again over the audio kept (see `BarCounter.count`; "auto" compares its two listeners' grids so).
SAME_TEMPO, SAME_PHASE = 0.04, 0.15
#: ... from this far back: the engine's analyser keeps 20 s of a stream (a file and a stream count alike).
RECOUNT_SECONDS = 16.0

#: A beat heard whole, for the bar cues: its mean chroma and mel spectrum, and the low-band onset on it.
BeatSummary = tuple[np.ndarray, np.ndarray, float]


class BarCounter:
    """Where the bars of one beat grid start, and how many beats they have (the meter), from the music."""

    def __init__(self) -> None:
        self.meter = Meter()
        self.cues = BarCues()
        self._heard: deque[float] = deque(maxlen=AFTER)  # the newest beats summarised (seconds): [0] is judged
        self._counted: float | None = None  # the newest beat summarised (or found not kept)
        self._beat: float | None = None  # the last beat the meter has seen (seconds): AFTER - 1 beats behind
        self._period: float | None = None  # the period the beats were counted at since the grid last moved
        #: until the music says where the bar starts, every fourth beat counted: bars that keep starting where
        #: they started (a click track never says)
        self._provisional: float | None = None
        self._counted_beats = 0
        #: ... or, where the source has a learned downbeat activation, the bar it suggests: worse than the music's
        #: cues once they speak (tools/downbeat_cues.py), better than a guess before they do (a bar or two in)
        self.learned = Meter()
        self._learned_beat: float | None = None

    def count(
        self,
        analyser: AudioAnalyser,
        period: float,
        anchor: float,
        heard: float,
        learned: Callable[[float], float | None] | None = None,
    ) -> None:
        """Summarise each beat of the grid (`period`, `anchor`) heard whole by `heard` (seconds, and no later
        than the analyser's frames reach), and step the meter over each beat the cues judge. `learned(beat)`:
        a learned activation's downbeat share on the beat (None: it has none there)."""
        first, kept = analyser.frames_since("chroma", 0)
        heard = min(heard, (first + len(kept)) / FRAME_RATE)
        if self._moved(period, anchor):
            self._recount()
        self._period = period
        counted = self._counted
        start = counted + 0.5 * period if counted is not None else heard - RECOUNT_SECONDS  # a new grid: what is kept
        beat = _next_beat(period, anchor, start)
        if counted is None and self._provisional is not None:  # a recount keeps the provisional bar where it was
            self._counted_beats = round((beat - self._provisional) / period) % self.meter.beats_per_bar
        while beat + period <= heard:
            self._counted = beat
            if self._counted_beats % self.meter.beats_per_bar == 0:
                self._provisional = beat
            self._counted_beats += 1
            share = learned(beat) if learned is not None else None
            if share is not None:
                self.learned.observe({3: share, 4: share})
                self._learned_beat = beat
            summary = beat_summary(analyser, beat, period)
            if summary is None:  # before the stream, or forgotten: the bar cues start again after it
                self.cues.restart()
                self._heard.clear()
            else:
                judged = self.cues.add(*summary)
                self._heard.append(beat)
                if judged is not None:
                    self.meter.observe(judged)
                    self._beat = self._heard[0]
            beat = _next_beat(period, anchor, beat + 0.5 * period)

    def _moved(self, period: float, anchor: float) -> bool:
        """Whether the grid is not the one the beats were counted on: another tempo, or beats elsewhere."""
        if self._counted is None or self._period is None:
            return False
        if abs(period / self._period - 1.0) > SAME_TEMPO:
            return True
        phase = (self._counted - anchor) / period
        return abs(phase - round(phase)) > SAME_PHASE

    def _recount(self) -> None:
        """A new grid: the bars are counted again, on its beats, over the audio kept (RECOUNT_SECONDS). Without
        this the meter would judge the new grid's beats with a history of the old one's (an intro followed at a
        wrong tempo filled it with wrong bars for as long again); restarting without the history kept measured
        worse still (the bar unknown for bars after each change)."""
        self.meter, self.cues, self.learned = Meter(), BarCues(), Meter()
        self._heard.clear()
        self._counted = self._beat = self._learned_beat = None

    def bar_anchor(self, period: float, anchor: float) -> float | None:
        """A downbeat on the grid (`period`, `anchor`): the beat the meter saw last, moved onto the grid,
        minus its place in the bar; until the music says where the bar starts, the learned activation's bar,
        or a provisional one that stays put. None before any beat was counted."""
        speaking = self._speaking()
        if speaking is not None:
            beat, meter = speaking
            return anchor + round((beat - anchor) / period) * period - meter.position * period
        if self._provisional is None:
            return None
        return anchor + round((self._provisional - anchor) / period) * period

    @property
    def known(self) -> bool:
        """Whether the music has said where the bar starts (else the bar is provisional)."""
        return self._beat is not None and self.meter.known

    @property
    def beats_per_bar(self) -> int:
        """The meter of the bar `bar_anchor` counts."""
        speaking = self._speaking()
        return (speaking[1] if speaking is not None else self.meter).beats_per_bar

    def _speaking(self) -> tuple[float, Meter] | None:
        """The meter the bar is counted by and the last beat it saw: the music's cues once they know the bar,
        else the learned activation's once it does; None: neither yet (the provisional bar)."""
        if self.known:
            return self._beat, self.meter
        if self._learned_beat is not None and self.learned.known:
            return self._learned_beat, self.learned
        return None

    def resync(self, downbeat: float, period: float, anchor: float) -> None:
        """A downbeat falls at `downbeat` (the VJ says so): the bar counts from the grid's beat nearest it."""
        nearest = anchor + round((downbeat - anchor) / period) * period
        if self._beat is None:
            self._beat = nearest
        ahead = round((self._beat - nearest) / period)  # beats from the one to the last beat seen
        self.meter.force_one()
        for _ in range(ahead % self.meter.beats_per_bar):
            self.meter.skip()


def _next_beat(period: float, anchor: float, t: float) -> float:
    """The grid's first beat at or after `t`."""
    return anchor + math.ceil((t - anchor) / period - 1e-9) * period


def beat_summary(analyser: AudioAnalyser, beat: float, period: float) -> BeatSummary | None:
    """The beat's mean chroma and mel spectrum over [beat, beat + period) and the low onset on it; None
    where those frames are not kept (before the stream's start, or forgotten)."""
    start, stop = _frame_range(beat, beat + period)
    first, chroma = analyser.frames_since("chroma", start)
    _, mel = analyser.frames_since("mel_db", start)
    _, low = analyser.frames_since("onset_low", start)
    stop = max(stop, start + 1)
    if start < 0 or first > start or stop - first > len(chroma):
        return None
    span = slice(start - first, stop - first)
    hit = int(round((beat - ONSET_LAG) * FRAME_RATE)) - first  # the onset shows ONSET_LAG before the beat
    low_onset = float(low[max(hit - HIT_FRAMES, 0) : hit + HIT_FRAMES + 1].max(initial=0.0))
    return chroma[span].mean(axis=0), mel[span].mean(axis=0), low_onset


def _frame_range(start: float, end: float) -> tuple[int, int]:
    """Analyser frames centred in [start, end) seconds."""
    return int(math.ceil(start * FRAME_RATE - 1e-9)), int(math.ceil(end * FRAME_RATE - 1e-9))
