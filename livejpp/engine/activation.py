"""Beat activations: per frame, how likely a beat (and a downbeat) falls there, for the bar tracker.

Any source fills the same `Activations`: the hand-made `OnsetActivation` here, or a learned one (BeatNet).
The tracker never looks at audio itself, so the two candidates differ only in what they hear.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from livejpp.features.audio import FRAME_RATE, HOP, SILENCE_DBFS, AudioAnalyser

#: The onset of a beat shows in the frames centred this long before it: a frame's window (±46 ms) rises
#: as soon as the hit enters it. Measured once on the synthetic grooves of tests/synth.py (with no lag,
#: the scheduled beats came 27–30 ms early at 100–120 BPM): a property of the analysis, not of a song.
#: Added to the frame times. A source may bring its own as `lag` (seconds); else 0.
ONSET_LAG = 0.03


@dataclass(frozen=True)
class Activations:
    fps: float  # frames per second of this activation
    first: int  # frame index of beat[0] (frame k is centred at k / fps seconds)
    beat: np.ndarray  # [n] float32 0..1, P(any beat) per frame
    # [n] float32 0..1, P(downbeat) per frame, None if the source has none. It only stands in for the bar until
    # the music's changes of harmony and bass say where it starts (engine/meter.py BarCues measured far better).
    down: np.ndarray | None


class ActivationSource(Protocol):
    fps: float

    def advance(self, analyser: AudioAnalyser) -> Activations | None:
        """The frames completed since the last call (None: none)."""
        ...


#: The low band's share of the onset: it keeps loud off-beat hats from pulling the phase (the synthetic
#: off-beat case flips to the off-beat at 0), but real kicks and basses also land off the beat (double
#: kicks, one-drop reggae). The one constant chosen on real data: of {0.5 (the design), 0.25, 0}, measured
#: on the 14 songs of the truth set, 0.25 gave the most cuts on a true beat (77.8 % mean per song, against
#: 73.1 % at 0.5 and 78.7 % at 0, where the off-beat case fails); the bench should confirm it on more.
LOW_BAND_SHARE = 0.25
#: Onsets are measured against their mean over the previous 0.5 s (a steady texture is no beat).
MEAN_FRAMES = 21
#: ... and scaled by the median of their per-second maxima over the last 8 s (the typical beat's onset), so a
#: quiet song beats as clearly as a loud one. (A 95th percentile, as first designed, misses the beats of
#: sparse music: at 60 BPM a beat's onset fills under 5 % of the frames.)
SCALE_BLOCK, SCALE_BLOCKS = 43, 8
#: ... and never below half of what the onsets were over the last 30 s (the 75th percentile of its per-second
#: maxima): in a breakdown the pads' swells stay weak beside the drums just heard, and never pass for beats,
#: while drums coming back are strong at once. Relative, so a dense mastered mix (metal: per-second maxima
#: ~2 mel-dB) and a sparse synthetic one (~30) are judged alike.
LONG_BLOCKS, LONG_PERCENTILE, LONG_SHARE = 30, 75, 0.5
#: The scale is never below this (mel-dB rise above its local mean): dither-level wobbles are not onsets.
SCALE_FLOOR = 1.0
#: Frames quieter than this (dBFS over the last LEVEL_HOPS hops, 0.5 s) carry no beat: silence or hiss.
LEVEL_FLOOR_DBFS = SILENCE_DBFS
LEVEL_HOPS = 22


class OnsetActivation:
    """The hand-made activation: the full-band onset plus a share of the low-band one (kick and bass
    mark the beat; hats, loud as they may be, sit on the off-beat). Causal: each frame uses only the past.

    Frames that carry no beat information (silence, pads, hiss) come out weak or 0, which the tracker's
    information gate reads as "hold the grid".
    """

    fps = FRAME_RATE

    def __init__(self) -> None:
        self._reset(0)

    def _reset(self, frame: int) -> None:
        self._next = frame  # absolute index of the next frame to emit
        self._history = np.zeros(MEAN_FRAMES, np.float32)  # o of the frames before _next
        self._maxima: deque[float] = deque(maxlen=SCALE_BLOCKS)  # max rise of each of the last blocks
        self._long: deque[float] = deque(maxlen=LONG_BLOCKS)  # ... and of the last 30
        self._block_max = 0.0  # ... of the block in progress
        self._scale = 0.0

    def advance(self, analyser: AudioAnalyser) -> Activations | None:
        first, onset = analyser.frames_since("onset", self._next)
        _, onset_low = analyser.frames_since("onset_low", self._next)
        if len(onset) == 0:
            return None
        if first != self._next:  # frames forgotten before we read them (a stalled reader): start afresh
            self._reset(first)
        o = (1.0 - LOW_BAND_SHARE) * onset + LOW_BAND_SHARE * onset_low
        padded = np.concatenate([self._history, o])
        # per frame the same 21 values summed the same way, however the frames arrived
        local_mean = np.convolve(padded, np.full(MEAN_FRAMES, 1.0 / MEAN_FRAMES), "valid")[:-1]
        rise = np.maximum(0.0, o - local_mean).astype(np.float32)
        self._history = padded[-MEAN_FRAMES:]
        beat = np.zeros(len(o), np.float32)
        start = 0
        while start < len(o):  # the scale changes only at SCALE_BLOCK boundaries (absolute frames): chunk by them
            k = first + start
            stop = min(len(o), start + SCALE_BLOCK - k % SCALE_BLOCK)
            beat[start:stop] = np.clip(rise[start:stop] / max(self._scale, SCALE_FLOOR), 0.0, 1.0)
            self._block_max = max(self._block_max, float(rise[start:stop].max()))
            if (first + stop) % SCALE_BLOCK == 0:
                self._maxima.append(self._block_max)
                self._long.append(self._block_max)
                self._block_max = 0.0
                long_term = LONG_SHARE * float(np.percentile(self._long, LONG_PERCENTILE))
                self._scale = max(float(np.median(self._maxima)), long_term)
            start = stop
        beat[self._quiet(analyser, first, len(o))] = 0.0
        self._next = first + len(o)
        return Activations(self.fps, first, beat, None)

    @staticmethod
    def _quiet(analyser: AudioAnalyser, first: int, count: int) -> np.ndarray:
        """Per frame: the LEVEL_HOPS hops of audio up to the end of its window lie below LEVEL_FLOOR_DBFS.
        Summed hop by hop on the absolute hop grid, so the result does not depend on the block sizes."""
        end = min((first + count + 1) * HOP, analyser.samples_in // HOP * HOP)  # frame k ends at (k + 2) hops
        start = (first + 2 - LEVEL_HOPS) * HOP
        if end - start < LEVEL_HOPS * HOP:
            return np.zeros(count, bool)
        try:
            audio = analyser.samples(start, end).astype(np.float64)
        except ValueError:  # the older audio is forgotten: judge by what is kept
            return np.zeros(count, bool)
        energy = np.square(audio).reshape(-1, HOP).sum(axis=1)
        windows = np.convolve(energy, np.ones(LEVEL_HOPS), "valid")
        quiet = windows / (LEVEL_HOPS * HOP) < 10.0 ** (LEVEL_FLOOR_DBFS / 10.0)
        return np.concatenate([quiet, np.zeros(count - len(quiet), bool)])[:count]
