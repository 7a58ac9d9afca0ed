"""Beat activations: per frame, how likely a beat (and a downbeat) falls there, for the bar tracker.

Any source fills the same `Activations`: the hand-made `OnsetActivation` here, or a learned one (BeatNet).
The tracker never looks at audio itself, so the two candidates differ only in what they hear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from livejpp.features.audio import AudioAnalyser


@dataclass(frozen=True)
class Activations:
    fps: float  # frames per second of this activation
    first: int  # frame index of beat[0] (frame k is centred at k / fps seconds)
    beat: np.ndarray  # [n] float32 0..1, P(any beat) per frame
    down: np.ndarray | None  # [n] float32 0..1, P(downbeat) per frame, None if the source has none


class ActivationSource(Protocol):
    fps: float

    def advance(self, analyser: AudioAnalyser) -> Activations | None:
        """The frames completed since the last call (None: none)."""
        ...
