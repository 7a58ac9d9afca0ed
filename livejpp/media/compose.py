"""The compositor in numpy: what the window's shaders draw, computed on the CPU for `render`.

A transition mixes the outgoing and incoming pictures with weight w = (t - cut) / crossfade, clamped
to [0, 1], in 8-bit fixed point (w quantised to 1/256), as shaders/crossfade.frag does. Extra layers
then go over that picture one by one (`blend`), each result rounded to 8 bits, as the shader does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


BLENDS = ("alpha", "add", "screen", "multiply")


@dataclass(frozen=True)
class LayerDraw:
    """How one extra layer is drawn over the layers below it: its opacity (0..1) and blend mode (BLENDS)."""

    opacity: float
    blend: str


def blend(base: np.ndarray, top: np.ndarray, opacity: float, mode: str) -> np.ndarray:
    """`top` over `base` (uint8 RGB) with `opacity` (quantised to 1/256) and a blend mode, rounded to uint8
    as shaders/crossfade.frag does: result = base + (mode(base, top) - base) * opacity."""
    if mode not in BLENDS:
        raise ValueError(f"unknown blend {mode!r} (choose from {', '.join(BLENDS)})")
    o = np.float32(round(min(1.0, max(0.0, opacity)) * 256) / 256)
    if o == 0:
        return base
    b = base.astype(np.float32) / np.float32(255)
    t = top.astype(np.float32) / np.float32(255)
    if mode == "add":
        r = np.minimum(b + t, np.float32(1))
    elif mode == "screen":
        r = 1 - (1 - b) * (1 - t)
    elif mode == "multiply":
        r = b * t
    else:
        r = t
    out = np.clip(b + (r - b) * o, 0, 1)
    return np.floor(out * np.float32(255) + np.float32(0.5)).astype(np.uint8)


def composite(base: np.ndarray, layers: Sequence[tuple[np.ndarray | None, LayerDraw]]) -> np.ndarray:
    """The extra layers over the matcher's picture, in order; a layer with no picture draws nothing."""
    for picture, draw in layers:
        if picture is not None:
            base = blend(base, picture, draw.opacity, draw.blend)
    return base
