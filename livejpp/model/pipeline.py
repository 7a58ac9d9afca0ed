"""`livejpp train` and `livejpp eval --table`: data → training → export → measurement.

TensorFlow is imported here (through train and export); nothing on the live path imports this.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from livejpp.model.data import DataError, PairedFeatures, load, require_finite, split
from livejpp.model.evaluate import data_fingerprint, measure

# TensorFlow's C++ start-up chatter is not for users (Python errors still surface as exceptions)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly() -> None:
    """TensorFlow prints start-up lines from C++ before any log level applies: silence fd 2 while
    it loads (an import error still raises, with its message, once stderr is back)."""
    import sys

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


log = logging.getLogger("livejpp.train")

FEATURES = {"hand": ("hand_audio", "hand_visual"), "pretrained": ("musicnn", "effnet")}


def feature_card(data: PairedFeatures) -> dict:
    return {
        "seconds": data.seconds,
        "audio": {
            "feature_set": data.audio_set,
            "version": data.feature_versions.get(data.audio_set, "npz"),
            "dim": int(data.audio.shape[2]),
        },
        "visual": {
            "feature_set": data.visual_set,
            "version": data.feature_versions.get(data.visual_set, "npz"),
            "dim": int(data.visual.shape[2]),
        },
    }


def train_model(
    source: str | os.PathLike,
    preset: str,
    out: str | os.PathLike,
    split_how: str = "video",
    seed: int = 0,
    features: str = "hand",
    max_epochs: int | None = None,
    progress: bool = True,
) -> dict:
    """Train `preset` on `source`, export it to `out` (checked), and return its card."""
    _import_tensorflow_quietly()
    from livejpp.model.export import export
    from livejpp.model.train import embed, train

    data = load(source, *FEATURES[features])
    if preset == "rules":
        train_idx, val_idx, split_how = np.arange(len(data)), np.arange(len(data)), "none"
    else:
        train_idx, val_idx = split(data, split_how, seed)
        if len(val_idx) == 0 or len(train_idx) < 2:
            raise DataError(f"{source}: too few pairs to split ({len(data)})")
    log.info(
        "%s: %d pairs from %d videos; %d to train, %d held out (%s split)",
        source,
        len(data),
        len(np.unique(data.video)),
        len(train_idx),
        len(val_idx),
        split_how,
    )
    trained = train(preset, data.subset(train_idx), data.subset(val_idx), seed, max_epochs, progress, data.names)
    ea, ev = embed(trained.towers.audio, data.audio), embed(trained.towers.visual, data.visual)
    require_finite(data, {"audio": ea, "visual": ev})
    metrics = measure(ea, ev, val_idx, trained.preset.metric, split_how)
    held = data.subset(val_idx[:256])
    card = {
        "name": Path(out).name,
        **feature_card(data),
        "split": split_how,
        "seed": seed,
        "data": {
            "source": str(source),
            "pairs": len(data),
            "videos": int(len(np.unique(data.video))),
            "train": int(len(train_idx)),
            "validation": int(len(val_idx)),
            "fingerprint": data_fingerprint(data),
        },
        "metrics": metrics,
    }
    return export(trained, out, held.audio, held.visual, card)


def table(
    source: str | os.PathLike,
    presets_: tuple[str, ...] = ("seed", "seed_tf1", "regression", "infonce"),
    seed: int = 0,
    features: str = "hand",
    max_epochs: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Every preset on both splits: the original protocol (clip split), the video-level one and the gallery."""
    _import_tensorflow_quietly()
    from livejpp.model.train import embed, train

    data = load(source, *FEATURES[features])
    rows = []
    for preset in presets_:
        row: dict = {"preset": preset}
        for split_how in ("clip", "video"):
            train_idx, val_idx = split(data, split_how, seed)
            trained = train(
                preset, data.subset(train_idx), data.subset(val_idx), seed, max_epochs, progress, data.names
            )
            ea, ev = embed(trained.towers.audio, data.audio), embed(trained.towers.visual, data.visual)
            require_finite(data, {"audio": ea, "visual": ev})
            m = measure(ea, ev, val_idx, trained.preset.metric, split_how)
            row.update(
                {k: v for k, v in m.items() if k != "split"}
                if split_how == "clip"
                else {"video_level": m["video_level"], "gallery": m["gallery"]}
            )
            row[f"seconds_{split_how}"] = round(trained.seconds, 1)
            row[f"epochs_{split_how}"] = len(trained.history)
        rows.append(row)
    return rows


def format_table(rows: list[dict], source: str) -> str:
    """Presets side by side; chance in the last row."""
    cols = (
        [("original", k) for k in ("R@1", "R@5", "R@10", "R@25")]
        + [("video_level", k) for k in ("R@1", "R@5", "R@10", "R@25")]
        + [("gallery", k) for k in ("R@1", "R@5", "R@10", "median_rank")]
    )
    head1 = (
        "original protocol (clip split, random batches)".ljust(36)
        + " | "
        + "video-level split (random batches)".ljust(36)
        + " | "
        + "whole gallery (video split)"
    )
    lines = [f"{source}: recall in % (median rank in clips), each direction in turn", " " * 12 + head1]
    lines.append("preset".ljust(12) + " ".join(f"{p[:3]} {k}".rjust(8) for p, k in cols) + "   train s")
    for direction in ("audio_to_video", "video_to_audio"):
        lines.append(direction.replace("_to_", " → "))
        for row in rows:
            cells = []
            for protocol, key in cols:
                value = row[protocol][direction][key]
                cells.append(f"{value:.0f}".rjust(8) if key == "median_rank" else f"{100 * value:.1f}".rjust(8))
            seconds = f"{row.get('seconds_clip', 0):.0f}+{row.get('seconds_video', 0):.0f}"
            lines.append(f"  {row['preset']}".ljust(12) + " ".join(cells) + f"   {seconds}")
    chance = []
    for protocol, key in cols:
        value = rows[0][protocol]["chance"][key]
        chance.append(f"{value:.0f}".rjust(8) if key == "median_rank" else f"{100 * value:.1f}".rjust(8))
    lines.append("  chance".ljust(12) + " ".join(chance))
    b = rows[0]
    lines.append(
        f"batches of {b['original']['batch']} (clip split), {b['video_level']['batch']} (video split); "
        f"gallery {b['gallery']['gallery']} clips, {b['gallery']['queries']} held-out queries"
    )
    return "\n".join(lines)
