"""Model cards: what a model was trained on and how to feed it, and the check that a library fits.

A model folder holds `audio.onnx`, `visual.onnx` and `card.json`. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from livejpp.errors import LivejppError
from livejpp.paths import MODELS_ROOT

CARD = "card.json"


class ModelError(LivejppError):
    """A model that cannot be found, read, or used with this data."""


def resolve(name: str | os.PathLike) -> Path:
    """A model folder by path, or by name under models/."""
    path = Path(name)
    for candidate in (path, MODELS_ROOT / path.name):
        if (candidate / CARD).is_file():
            return candidate
    raise ModelError(f"{name}: no model there (a folder with audio.onnx, visual.onnx and {CARD})")


def load_card(folder: str | os.PathLike) -> dict:
    folder = resolve(folder)
    try:
        card = json.loads((folder / CARD).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{folder / CARD}: unreadable model card ({exc})") from exc
    for key in ("preset", "metric", "seconds", "audio", "visual", "embedding_dim"):
        if key not in card:
            raise ModelError(f"{folder / CARD}: model card lacks {key!r}")
    return card


def fingerprint(folder: str | os.PathLike) -> str:
    """Changes whenever either tower or the card changes: indexes are rebuilt on a new model."""
    folder = resolve(folder)
    h = hashlib.blake2b(digest_size=8)
    for name in ("audio.onnx", "visual.onnx", CARD):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def check_feature_sets(card: dict, available: dict, where: str, modalities=("audio", "visual")) -> None:
    """The library (or file) must hold the feature sets, versions and sizes the model was trained on."""
    for modality in modalities:
        want = card[modality]
        have = available.get(want["feature_set"])
        if have is None:
            raise ModelError(
                f"{where}: model {card.get('name', '?')} needs feature set {want['feature_set']}, "
                f"which is not there (has {', '.join(sorted(available)) or 'none'})"
            )
        if (have.dim, have.version) != (want["dim"], want["version"]):
            raise ModelError(
                f"{where}: feature set {want['feature_set']} is v{have.version} ({have.dim}-d) there, "
                f"model {card.get('name', '?')} was trained on v{want['version']} ({want['dim']}-d)"
            )


def card_for_towers(trained) -> dict:
    """The part of a card that comes from training itself."""
    return {
        "preset": trained.preset.name,
        "description": trained.preset.description,
        "metric": trained.preset.metric,
        "embedding_dim": int(trained.towers.audio.output_shape[-1]),
        "normalisation": {
            m: {"mean": trained.stats[m][0].tolist(), "std": trained.stats[m][1].tolist()} for m in ("audio", "visual")
        },
        "history": trained.history,
        "best_epoch": trained.best_epoch,
        "training_seconds": round(trained.seconds, 2),
    }
