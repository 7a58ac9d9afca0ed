"""Section changes heard as they happen: a drop, the drums coming in, the band kicking in.

The engine's window (10 s) keeps describing the breakdown for seconds after the drop; a VJ cuts at
once. This compares the last 2 s of the current section with what came before them in it (at most
8 s), from the per-second rows the engine computes anyway: a sudden rise in loudness, or a rise in
onset strength (new percussion) with the loudness rising too, is a change. Only causal data is used,
and only within the current section, so one change is reported once.

The constants are chosen a priori (what a listener calls "it kicked in"), not fitted to a song:
6 dB is twice the amplitude; onset strength doubling with 3 dB more is drums entering a pad.
"""

from __future__ import annotations

import numpy as np

from livejpp.features.audio import NAMES, SILENCE_DBFS, AudioAnalyser

LOUDNESS = NAMES.index("loudness_db")
ONSET = NAMES.index("onset_mean")

RECENT_SECONDS = 2  # what is new
MIN_BEFORE_SECONDS = 4  # at least this much of the section before it, to compare with
RISE_DB = 6.0  # loudness of the recent seconds over those before: a change on its own
ONSET_RATIO = 2.0  # onset strength over that before ...
ONSET_RISE_DB = 3.0  # ... with at least this rise in loudness: a change too
ONSET_FLOOR = 0.5  # dB per frame: onset strength below this is steady sound (pads), not rhythm
SLICE = 0.25  # seconds: how finely the change is placed in the recent seconds


def energy_db(levels_db: np.ndarray) -> float:
    """The level of several spans together (their mean power), in dB."""
    return float(10 * np.log10(np.mean(10 ** (np.asarray(levels_db, np.float64) / 10)) + 1e-20))


class SectionDetector:
    """Feed it each hop's per-second rows; it returns the time of a change when it hears one."""

    def __init__(self) -> None:
        self.start = 0.0  # where the current section began (seconds)
        self.changes: list[float] = []

    def update(self, analyser: AudioAnalyser, rows: np.ndarray, now: float) -> float | None:
        """`rows` are the per-second rows of [now - len(rows), now). Returns the change's time or None."""
        first = now - len(rows)
        usable = rows[max(0, int(np.ceil(self.start - first - 1e-9))) :]  # only the current section
        if len(usable) < RECENT_SECONDS + MIN_BEFORE_SECONDS:
            return None
        before, recent = usable[:-RECENT_SECONDS], usable[-RECENT_SECONDS:]
        before_db, recent_db = energy_db(before[:, LOUDNESS]), energy_db(recent[:, LOUDNESS])
        if before_db <= SILENCE_DBFS or recent_db <= SILENCE_DBFS:
            return None  # music starting after silence is a start, not a change within the music
        rise = recent_db - before_db
        onsets = (max(recent[:, ONSET].mean(), ONSET_FLOOR)) / max(before[:, ONSET].mean(), ONSET_FLOOR)
        if rise < RISE_DB and not (onsets >= ONSET_RATIO and rise >= ONSET_RISE_DB):
            return None
        at = self._place(analyser, now, (before_db + recent_db) / 2)
        self.start = at
        self.changes.append(at)
        return at

    @staticmethod
    def _place(analyser: AudioAnalyser, now: float, threshold_db: float) -> float:
        """The start of the first short slice of the recent seconds louder than halfway up the rise."""
        t = now - RECENT_SECONDS - 1
        while t < now - SLICE / 2:
            if analyser.row(t, t + SLICE)[LOUDNESS] >= threshold_db:
                return t
            t += SLICE
        return now - RECENT_SECONDS
