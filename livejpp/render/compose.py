"""The compositor in numpy: what the window's shaders draw, computed on the CPU for `render`.

A transition mixes the outgoing and incoming pictures with weight w = (t - cut) / crossfade, clamped
to [0, 1], in 8-bit fixed point (w quantised to 1/256), as shaders/crossfade.frag does.
"""

from __future__ import annotations

import numpy as np

TRANSITIONS = ("crossfade", "dip", "wipe")
EFFECTS = ("none", "mirror", "invert", "pixelate")


def crossfade_weight(t: float, cut_time: float, crossfade: float) -> float:
    if crossfade <= 0:
        return 1.0
    return float(min(1.0, max(0.0, (t - cut_time) / crossfade)))


def transition(outgoing: np.ndarray, incoming: np.ndarray, weight: float, kind: str = "crossfade") -> np.ndarray:
    """The picture between two clips at `weight`, for uint8 RGB pictures."""
    if kind == "crossfade":
        return mix(outgoing, incoming, weight)
    w = round(min(1.0, max(0.0, weight)) * 256) / 256
    if kind == "dip":
        picture, factor = (outgoing, 1 - 2 * w) if w < 0.5 else (incoming, 2 * w - 1)
        return np.round(picture.astype(np.float32) * np.float32(factor)).astype(np.uint8)
    if kind == "wipe":
        out = outgoing.copy()
        columns = (np.arange(out.shape[1]) + 0.5) / out.shape[1] < w
        out[:, columns] = incoming[:, columns]
        return out
    raise ValueError(f"unknown transition {kind!r} (choose from {', '.join(TRANSITIONS)})")


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
