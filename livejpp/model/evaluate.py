"""Evaluation: Recall@K with chance beside it, under the original and the stricter protocols,
written as JSON and plots (training curves, R@K against chance, t-SNE by video).

Works on embeddings, so the same code measures an exported model (onnxruntime) and a model
still in training (Keras) for `eval --table`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from livejpp.model.card import ModelError, check_feature_sets, load_card
from livejpp.model.data import PairedFeatures, load, require_finite, split
from livejpp.model.metrics import batched_recall, gallery_recall


def data_fingerprint(data: PairedFeatures) -> str:
    """Identifies the exact set of pairs: evaluation on the training data reuses its split."""
    h = hashlib.blake2b(digest_size=8)
    for array in (data.clip, data.video, np.array(data.audio.shape), np.array(data.visual.shape)):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def measure(ea: np.ndarray, ev: np.ndarray, val: np.ndarray, metric: str, split_name: str) -> dict:
    """The batch protocol on the held-out pairs, and each held-out clip against the whole gallery."""
    protocol = "original" if split_name == "clip" else "video_level"
    return {
        "split": split_name,
        protocol: batched_recall(ea[val], ev[val], metric),
        "gallery": gallery_recall(ea[val], ev[val], ea, ev, val, metric),
    }


def held_out(card: dict, data: PairedFeatures) -> tuple[np.ndarray, str]:
    """The validation part of the model's own split when evaluated on its training data, else everything."""
    trained_on = card.get("data", {}).get("fingerprint")
    if trained_on == data_fingerprint(data) and card.get("split") in ("clip", "video"):
        return split(data, card["split"], card.get("seed", 0))[1], card["split"]
    return np.arange(len(data)), "unseen" if card.get("split") != "none" else "none"


def external_sets(data: PairedFeatures) -> dict:
    from livejpp.features import FeatureSet

    return {
        data.audio_set: FeatureSet(
            data.audio_set, "audio", data.audio.shape[2], data.feature_versions.get(data.audio_set, "npz"), ()
        ),
        data.visual_set: FeatureSet(
            data.visual_set, "visual", data.visual.shape[2], data.feature_versions.get(data.visual_set, "npz"), ()
        ),
    }


def evaluate(model: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike | None = None) -> dict:
    """Measure `model` on `source` (a library or an .npz); write metrics.json and plots into `out`."""
    from livejpp.model.embed import Embedder

    card = load_card(model)
    data = load(source, card["audio"]["feature_set"], card["visual"]["feature_set"])
    check_feature_sets(card, external_sets(data), str(source))
    if data.seconds != card["seconds"]:
        raise ModelError(
            f"{source}: clips hold {data.seconds} s of features, model {card['name']} takes {card['seconds']}"
        )
    embedder = Embedder(model)
    ea, ev = embedder.audio(data.audio), embedder.visual(data.visual)
    require_finite(data, {"audio": ea, "visual": ev})
    val, split_name = held_out(card, data)
    result = {
        "model": card.get("name"),
        "preset": card["preset"],
        "source": str(source),
        **measure(ea, ev, val, card["metric"], split_name),
    }
    if out is not None:
        write_report(result, card, ea[val], ev[val], data.video[val], Path(out))
    return result


# --- reports -----------------------------------------------------------------------------------
def write_report(result: dict, card: dict, ea, ev, video, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    written = [out / "metrics.json"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = [h for h in card.get("history", []) if h.get("loss") is not None]
    if history:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        epochs = [h["epoch"] for h in history]
        ax[0].plot(epochs, [h["loss"] for h in history])
        ax[0].set(title=f"{card['preset']}: training loss", xlabel="epoch", ylabel="loss")
        batch = min(100, card.get("data", {}).get("validation", 100) or 100)
        ax[1].plot(epochs, [h["val_r5"] for h in history], label="validation R@5")
        ax[1].axhline(min(1.0, 5 / batch), color="grey", ls="--", label=f"chance (5 of {batch})")
        ax[1].set(title=f"validation R@5 (batches of {batch})", xlabel="epoch", ylim=(0, 1))
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(out / "training.png", dpi=100)
        plt.close(fig)
        written.append(out / "training.png")

    protocol = (
        next(k for k in ("original", "video_level") if k in result)
        if ("original" in result or "video_level" in result)
        else None
    )
    if protocol:
        r = result[protocol]
        ks = list(r["chance"])
        x = np.arange(len(ks))
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(x - 0.25, [r["audio_to_video"][k] for k in ks], 0.25, label="audio → video")
        ax.bar(x, [r["video_to_audio"][k] for k in ks], 0.25, label="video → audio")
        ax.bar(x + 0.25, [r["chance"][k] for k in ks], 0.25, label="chance", color="grey")
        ax.set_xticks(x, ks)
        ax.set(
            ylim=(0, 1.18), title=f"{card['preset']}: {protocol.replace('_', ' ')} protocol, batches of {r['batch']}"
        )
        ax.legend(loc="upper center", ncol=3, frameon=False)
        fig.tight_layout()
        fig.savefig(out / "recall.png", dpi=100)
        plt.close(fig)
        written.append(out / "recall.png")

    if len(ea) >= 5:
        from sklearn.manifold import TSNE

        both = np.concatenate([ea, ev])
        perplexity = float(min(30, max(2, (len(both) - 1) // 3)))
        xy = TSNE(n_components=2, perplexity=perplexity, random_state=0, init="pca").fit_transform(both)
        fig, ax = plt.subplots(figsize=(5.5, 5))
        colours = np.concatenate([video, video])
        n = len(ea)
        ax.scatter(xy[:n, 0], xy[:n, 1], c=colours[:n], cmap="tab20", marker="o", s=18, label="audio")
        ax.scatter(xy[n:, 0], xy[n:, 1], c=colours[n:], cmap="tab20", marker="^", s=18, label="pictures")
        ax.set(title=f"{card['preset']}: t-SNE of embeddings, colour = video", xticks=[], yticks=[])
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "tsne.png", dpi=100)
        plt.close(fig)
        written.append(out / "tsne.png")
    return written


def format_result(result: dict) -> str:
    held = {
        "clip": "20% of clip pairs (clip split)",
        "video": "whole videos (video split)",
        "unseen": "everything (data the model never saw)",
        "none": "everything (the model was not trained)",
    }
    lines = [
        f"model {result['model']} ({result['preset']}) on {result['source']}; held out: {held[result['split']]}",
        "recall in %, chance in brackets",
    ]
    for protocol in ("original", "video_level"):
        if protocol in result:
            r = result[protocol]
            lines.append(f"{protocol.replace('_', '-')} protocol: random batches of {r['batch']} of {r['pairs']} pairs")
            lines.extend(_rows(r, list(r["chance"])))
    g = result["gallery"]
    lines.append(f"whole gallery: {g['queries']} queries against {g['gallery']} clips")
    lines.extend(_rows(g, list(g["chance"])))
    return "\n".join(lines)


def _rows(r: dict, keys: list[str]) -> list[str]:
    header = "  " + "".ljust(15) + "".join(k.rjust(15) for k in keys)
    out = [header]
    for direction in ("audio_to_video", "video_to_audio"):
        cells = "".join(_cell(r[direction][k], r["chance"][k], k).rjust(15) for k in keys)
        out.append("  " + direction.replace("_to_", " → ").replace("video", "video").ljust(15) + cells)
    return out


def _cell(value: float, chance: float, key: str) -> str:
    if key == "median_rank":
        return f"{value:.0f} ({chance:.0f})"
    return f"{100 * value:.1f} ({100 * chance:.3g})"
