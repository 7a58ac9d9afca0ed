"""Per-second features of audio and pictures: the common language of library, render and live."""

from dataclasses import dataclass


def whole_seconds(duration: float) -> int:
    """How many per-second rows a span has: a last partial second counts from half a second on."""
    whole = int(duration + 1e-6)
    return whole + (1 if duration - whole >= 0.5 - 1e-6 else 0)


@dataclass(frozen=True)
class FeatureSet:
    """A named kind of per-second vector, as recorded in a library: models are tied to these."""

    name: str
    modality: str  # "audio" or "visual"
    dim: int
    version: str
    names: tuple[str, ...]
