"""The compositor in numpy: what the window's shaders draw, computed on the CPU for `render`.

A crossfade mixes the outgoing and incoming pictures with weight w = (t - cut) / crossfade, clamped
to [0, 1], linear, in 8-bit fixed point (w quantised to 1/256).
"""

from __future__ import annotations

import numpy as np


def crossfade_weight(t: float, cut_time: float, crossfade: float) -> float:
    if crossfade <= 0:
        return 1.0
    return float(min(1.0, max(0.0, (t - cut_time) / crossfade)))


def mix(outgoing: np.ndarray, incoming: np.ndarray, weight: float) -> np.ndarray:
    """(1 - w) * outgoing + w * incoming, rounded, for uint8 RGB pictures."""
    if weight >= 1.0:
        return incoming
    if weight <= 0.0:
        return outgoing
    w = int(round(weight * 256))
    out = outgoing.astype(np.uint16) * (256 - w)
    out += incoming.astype(np.uint16) * w
    out += 128
    return (out >> 8).astype(np.uint8)
