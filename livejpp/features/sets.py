"""The feature sets a library can hold, and which `--features` choice computes which."""

from __future__ import annotations

from livejpp.features import FeatureSet, audio, visual

HAND_AUDIO = FeatureSet("hand_audio", "audio", audio.DIM, "1", audio.NAMES)
HAND_VISUAL = FeatureSet("hand_visual", "visual", visual.DIM, "1", visual.NAMES)

CHOICES = ("hand", "pretrained", "all")


def feature_sets_for(choice: str) -> tuple[FeatureSet, ...]:
    """The feature sets `--features CHOICE` computes."""
    if choice not in CHOICES:
        raise ValueError(f"--features must be one of {', '.join(CHOICES)}, not {choice!r}")
    sets: tuple[FeatureSet, ...] = ()
    if choice in ("hand", "all"):
        sets += (HAND_AUDIO, HAND_VISUAL)
    if choice in ("pretrained", "all"):
        from livejpp.features import pretrained

        sets += pretrained.feature_sets()
    return sets
