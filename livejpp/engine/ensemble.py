"""The "auto" tracker: two listeners side by side, the clock follows the one the music bears out.

BeatNet's bar tracker (`beatnet`) finds the bar's one and locks fast, but its learned activation
misreads some music (a chiptune's 127 BPM heard as 169 in 3/4); the autocorrelation clock (`today`)
holds a steady pulse well but has no idea where bars start. Each says how sure it is from what it
hears, so the clock follows BeatNet's grid while the music bears it out, else the pulse's while
that is borne out, else holds. The pulse's grid is judged by BeatNet's activation as well as by its
own onsets: an autocorrelation locks as happily on the off-beat of syncopated music, where a learned
activation has no beats — so the pulse's grid is first put on whichever of its beats and its off-beats
the activation marks (the comb finds the tempo, the activation the beat). The bars go with either grid:
where both hear the same beat, BeatNet's bar; else the bars the music marks on the pulse's own beats (a
`BarCounter` on them: on the truth set 63 % of the cuts on the one against 53 % with BeatNet's bar carried
on), until it knows them the bar BeatNet last heard, carried on.

Measured (tools/bench.py beats, README): on the truth set more cuts on the beat than either alone
and the fastest lock; on the held-out syncopated songs fewer cuts on a beat than `beatnet` (78 % to 82 %)
but a faster lock.
"""

from __future__ import annotations

import dataclasses

from livejpp.engine.bar_counter import SAME_PHASE, SAME_TEMPO, BarCounter
from livejpp.engine.bar_tracker import BarTracker, as_evidence
from livejpp.engine.trackers import HOLD_BELOW, Estimate, TodayTracker, Tracker, _beatnet, rebar
from livejpp.features.audio import AudioAnalyser

#: Back from the pulse to BeatNet only when BeatNet's grid is borne out this much better (confidences 0..1).
BACK_MARGIN = 0.2
#: The pulse's grid moves onto its off-beats when BeatNet's activation is this many times stronger there (and
#: back likewise). Chosen on the 14 checked songs of tools/bench.py beats (1.15, 1.3 and 1.5 alike there: lock
#: 4.3 → 3.9 s median; 1.0 and 2.0 less), then checked on the 13 held-out syncopated songs: on a beat 75 → 78 %,
#: F 61 → 66, CMLt 41 → 46, lock 7.1 → 6.3 s.
OFFBEAT_RATIO = 1.5


class EnsembleTracker:
    """Implements `livejpp.engine.trackers.Tracker` over BeatNet's bar tracker and the pulse clock."""

    name = "auto"

    def __init__(self, bar: BarTracker | None = None, pulse: Tracker | None = None) -> None:
        self.bar: BarTracker = bar if bar is not None else _beatnet()
        self.pulse = pulse if pulse is not None else TodayTracker()
        self.following: Tracker = self.bar
        self._bar: Estimate | None = None  # BeatNet's last grid followed: where the bars start
        self._shift: int | None = None  # following the pulse: beats from its own downbeat to the one kept
        self._half_beat = False  # the pulse's grid is taken half a beat from where its comb put it
        self._per_bar = 4
        self.pulse_bars = BarCounter()  # the bars counted on the pulse's own beats
        self._pulse_grid: tuple[float, float] | None = None  # the grid pulse_bars counts last: (period, anchor)
        self._analyser: AudioAnalyser | None = None
        self.clarity = 0.0

    def advance(self, analyser: AudioAnalyser) -> None:
        self._analyser = analyser
        self.bar.advance(analyser)
        self.pulse.advance(analyser)

    def estimate(self, now: float) -> Estimate | None:
        bar, pulse = self.bar.estimate(now), self.pulse.estimate(now)
        self.clarity = getattr(self.pulse, "clarity", 0.0)
        if pulse is not None:  # the pulse's grid judged by the learned activation too: the off-beat has none
            pulse, contrast = self._on_the_beat(pulse)
            evidence = as_evidence(contrast)
            follow = pulse.confidence >= HOLD_BELOW  # its own lock: the clock keeps its count through a dip
            pulse = dataclasses.replace(pulse, confidence=pulse.confidence * evidence, follow=follow)
            if self._analyser is not None:
                self.pulse_bars.count(self._analyser, pulse.period, pulse.anchor, now)
                self._pulse_grid = (pulse.period, pulse.anchor)
        self.following = self._choose(bar, pulse)
        if self.following is self.bar:
            self._bar, self._shift = bar, None
            return bar
        if pulse is None:
            return None
        if bar is not None and bar.confidence >= HOLD_BELOW and _same_beat(bar, pulse):  # BeatNet's bar
            self._shift = self._beats_to(bar.bar_anchor, pulse)
            self._per_bar = bar.beats_per_bar
        elif self.pulse_bars.known:  # BeatNet hears other beats: the bars the music marks on the pulse's own
            own = self.pulse_bars.bar_anchor(pulse.period, pulse.anchor)
            self._shift, self._per_bar = self._beats_to(own, pulse), self.pulse_bars.beats_per_bar
        elif self._shift is None:  # just switched: the bar BeatNet last heard, carried onto the pulse's grid
            if self._bar is None:
                return pulse
            last = self._bar
            one = rebar(last.bar_anchor, last.period, last.beats_per_bar, pulse.anchor, pulse.period, now)
            self._shift, self._per_bar = self._beats_to(one, pulse), last.beats_per_bar
        # the pulse's own bar runs on continuously through its refinements; the shift keeps BeatNet's one
        one = pulse.bar_anchor + self._shift * pulse.period
        return Estimate(pulse.period, pulse.anchor, one, self._per_bar, pulse.confidence, pulse.follow)

    def _on_the_beat(self, pulse: Estimate) -> tuple[Estimate, float]:
        """The pulse's grid on whichever of its beats and its off-beats the learned activation marks: the
        autocorrelation's comb finds the tempo, but syncopated music (off-beat bass and hats) puts more onset
        on the off-beat, where a learned activation has none. The grid moves half a beat once the activation
        is OFFBEAT_RATIO times stronger there, and back likewise (no flapping between the two), and its
        activation contrast on the grid kept is returned."""
        half = pulse.period / 2
        own = self.bar.contrast_on(pulse.period, pulse.anchor)
        shifted = self.bar.contrast_on(pulse.period, pulse.anchor + half)
        if shifted > OFFBEAT_RATIO * own:
            self._half_beat = True
        elif own > OFFBEAT_RATIO * shifted:
            self._half_beat = False
        if not self._half_beat:
            return pulse, own
        moved = dataclasses.replace(pulse, anchor=pulse.anchor + half, bar_anchor=pulse.bar_anchor + half)
        return moved, shifted

    @staticmethod
    def _beats_to(downbeat: float, pulse: Estimate) -> int:
        """Beats from the pulse's own downbeat to `downbeat` on its grid, within one bar."""
        return round((downbeat - pulse.bar_anchor) / pulse.period) % pulse.beats_per_bar

    def _choose(self, bar: Estimate | None, pulse: Estimate | None) -> Tracker:
        """BeatNet's grid while the music bears it out (it knows the bar); the pulse's when BeatNet's is
        not and the pulse's is, until BeatNet's is borne out BACK_MARGIN better: grids that take turns hop
        by hop would scatter the cuts."""
        bar_sure = bar.confidence if bar is not None else -1.0
        pulse_sure = pulse.confidence if pulse is not None else -1.0
        if self.following is self.bar:
            return self.pulse if bar_sure < HOLD_BELOW <= pulse_sure else self.bar
        if bar_sure >= HOLD_BELOW and (pulse_sure < HOLD_BELOW or bar_sure >= pulse_sure + BACK_MARGIN):
            return self.bar
        return self.pulse

    def resync(self, downbeat: float) -> None:
        self.bar.resync(downbeat)
        self.pulse.resync(downbeat)
        if self._pulse_grid is not None:  # the bars "auto" counts on the pulse's grid, for when it follows that
            self.pulse_bars.resync(downbeat, *self._pulse_grid)


def _same_beat(a: Estimate, b: Estimate) -> bool:
    if abs(a.period / b.period - 1.0) > SAME_TEMPO:
        return False
    shift = (a.anchor - b.anchor) / b.period
    return abs(shift - round(shift)) <= SAME_PHASE
