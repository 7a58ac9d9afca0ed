"""Counting bars on a beat grid: each beat heard whole is summarised for the bar cues, and the meter is
stepped over the beat they judge (a bar behind: a bar's change of harmony is known a bar later). A grid
first found, or one that moved (another tempo, beats elsewhere), is counted over the audio kept: the bar is
known at once, and never carried over from another grid's beats; a grid left lately and come back to takes
its own count back.

The bar tracker counts on its own grid; "auto" also counts on the pulse's grid, for when it follows that.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

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
#: The counts of the grids last left are kept (their meter, cues and beats): a tracker that leaves its grid for a
#: moment (another tempo for a hop or two, half a beat off, the other listener's grid) and comes back takes that
#: count back, and catches up over the beats it missed (kept while no older than RECOUNT_SECONDS), instead of
#: counting the bars again from nothing. On the real songs of tools/bench.py beats, about 60 % of the grid moves
#: went back to a grid left moments before.
SHELVED_GRIDS = 3

#: A beat heard whole, for the bar cues: its mean chroma and mel spectrum, and the low-band onset on it.
BeatSummary = tuple[np.ndarray, np.ndarray, float]


@dataclass
class GridCount:
    """The bars counted on one beat grid: the meter stepped over its beats, the cues it was fed, its beats."""

    meter: Meter = field(default_factory=Meter)
    cues: BarCues = field(default_factory=BarCues)
    #: where the source has a learned downbeat activation, the bar it suggests: worse than the music's cues
    #: once they speak (tools/downbeat_cues.py), better than a guess before they do (a bar or two in)
    learned: Meter = field(default_factory=Meter)
    heard: deque[float] = field(default_factory=lambda: deque(maxlen=AFTER))  # the newest beats summarised: [0] judged
    counted: float | None = None  # the newest beat summarised (or found not kept), seconds
    beat: float | None = None  # the last beat the meter has seen (seconds): AFTER - 1 beats behind
    learned_beat: float | None = None
    period: float | None = None  # the grid's period as last counted

    def moved(self, period: float, anchor: float) -> bool:
        """Whether (`period`, `anchor`) is not this grid: another tempo, or beats elsewhere."""
        if self.counted is None or self.period is None:
            return False
        if abs(period / self.period - 1.0) > SAME_TEMPO:
            return True
        phase = (self.counted - anchor) / period
        return abs(phase - round(phase)) > SAME_PHASE


class BarCounter:
    """Where the bars of one beat grid start, and how many beats they have (the meter), from the music."""

    def __init__(self) -> None:
        self._grid = GridCount()  # the count on the grid counted now
        self._shelf: deque[GridCount] = deque(maxlen=SHELVED_GRIDS)  # the grids left last, the newest first
        #: until the music says where the bar starts, every fourth beat counted: bars that keep starting where
        #: they started (a click track never says), on whichever grid
        self._provisional: float | None = None
        self._counted_beats = 0
        #: a VJ's resync stands: a grid refined by a fraction of a beat (the same tempo) keeps the bar counted on
        #: the grid it leaves instead of counting it from the music again, until the tempo moves
        self._told = False

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
        moved = self._grid.moved(period, anchor)
        told = None  # the VJ's bar, as the count of the grid left has it, for a new count on the refined grid
        if moved:
            told = self._told_one(period)
            if self._regrid(period, anchor, heard):  # a new count: the VJ's bar carried, or another tempo ends it
                self._told = told is not None
            else:
                told = None  # a count taken back was left after the VJ spoke: it has the VJ's bar
        g = self._grid
        g.period = period
        # a new grid is counted over the audio kept
        start = g.counted + 0.5 * period if g.counted is not None else heard - RECOUNT_SECONDS
        beat = _next_beat(period, anchor, start)
        if moved and self._provisional is not None:  # on another grid, the provisional bar stays where it was
            self._counted_beats = round((beat - self._provisional) / period) % g.meter.beats_per_bar
        while beat + period <= heard:
            g.counted = beat
            if self._counted_beats % g.meter.beats_per_bar == 0:
                self._provisional = beat
            self._counted_beats += 1
            share = learned(beat) if learned is not None else None
            if share is not None:
                g.learned.observe({3: share, 4: share})
                g.learned_beat = beat
            summary = beat_summary(analyser, beat, period)
            if summary is None:  # before the stream, or forgotten: the bar cues start again after it
                g.cues.restart()
                g.heard.clear()
            else:
                judged = g.cues.add(*summary)
                g.heard.append(beat)
                if judged is not None:
                    g.meter.observe(judged)
                    g.beat = g.heard[0]
            beat = _next_beat(period, anchor, beat + 0.5 * period)
        if told is not None:
            self._force_one(told, period, anchor)

    def _told_one(self, period: float) -> float | None:
        """While a VJ's resync stands, a downbeat of the count now, for a grid of the same tempo (`period`); None
        for another tempo (another song, or the tempo misread: a new count there ends the resync)."""
        g = self._grid
        if not self._told or g.period is None or g.beat is None or abs(period / g.period - 1.0) > SAME_TEMPO:
            return None
        return g.beat - g.meter.position * g.period

    def _regrid(self, period: float, anchor: float, heard: float) -> bool:
        """The grid moved (another tempo, beats elsewhere): back to a grid left lately, whose count carries on
        over the beats it missed, or else a new count, on the new grid's beats, over the audio kept
        (RECOUNT_SECONDS). Without the new count the meter would judge the new grid's beats with a history of
        the old one's (an intro followed at a wrong tempo filled it with wrong bars for as long again);
        restarting without the history kept measured worse still (the bar unknown for bars after each change).
        Carrying the bar over to the new count instead (where the tempo stays) measured worse on the real songs
        (tools/bench.py beats, on the one 56 -> 54 %): only a VJ's resync is carried so (`_told_one`). Returns
        whether the count is a new one."""
        recent = [g for g in self._shelf if g.counted is not None and g.counted >= heard - RECOUNT_SECONDS]
        back = next((g for g in recent if not g.moved(period, anchor)), None)
        if back is not None:
            self._shelf.remove(back)
        self._shelf.appendleft(self._grid)
        self._grid = back if back is not None else GridCount()
        return back is None

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
        return self._grid.beat is not None and self._grid.meter.known

    @property
    def beats_per_bar(self) -> int:
        """The meter of the bar `bar_anchor` counts."""
        speaking = self._speaking()
        return (speaking[1] if speaking is not None else self._grid.meter).beats_per_bar

    def _speaking(self) -> tuple[float, Meter] | None:
        """The meter the bar is counted by and the last beat it saw: the music's cues once they know the bar,
        else the learned activation's once it does; None: neither yet (the provisional bar)."""
        g = self._grid
        if self.known:
            return g.beat, g.meter
        if g.learned_beat is not None and g.learned.known:
            return g.learned_beat, g.learned
        return None

    def resync(self, downbeat: float, period: float, anchor: float) -> None:
        """A downbeat falls at `downbeat` (the VJ says so): the bar counts from the grid's beat nearest it, and
        stays there through refinements of the grid (counts from before it are not taken back)."""
        self._told = True
        self._shelf.clear()
        self._force_one(downbeat, period, anchor)

    def _force_one(self, downbeat: float, period: float, anchor: float) -> None:
        """The count now has its one on the grid's beat nearest `downbeat`."""
        g = self._grid
        nearest = anchor + round((downbeat - anchor) / period) * period
        if g.beat is None:
            g.beat = nearest
        ahead = round((g.beat - nearest) / period)  # beats from the one to the last beat seen
        g.meter.force_one()
        for _ in range(ahead % g.meter.beats_per_bar):
            g.meter.skip()


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
