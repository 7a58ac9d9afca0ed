"""Retrieval metrics: Recall@K, median rank, and the chance level beside each of them."""

from __future__ import annotations

import numpy as np

BATCH_KS = (1, 5, 10, 25)
GALLERY_KS = (1, 5, 10)


def scores(queries: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    """[Q, G] similarity, higher is closer: cosine, or negative squared Euclidean distance."""
    if metric == "cosine":
        q = queries / (np.linalg.norm(queries, axis=1, keepdims=True) + 1e-12)
        g = gallery / (np.linalg.norm(gallery, axis=1, keepdims=True) + 1e-12)
        return q @ g.T
    if metric == "l2":
        return -(np.sum(queries**2, axis=1)[:, None] - 2 * queries @ gallery.T + np.sum(gallery**2, axis=1)[None, :])
    raise ValueError(f"unknown metric {metric!r}")


def ranks(queries: np.ndarray, gallery: np.ndarray, targets: np.ndarray, metric: str) -> np.ndarray:
    """Per query: [clips strictly closer than the true match, clips exactly as close] — ties are
    broken at random, so a model that cannot tell clips apart scores chance, not zero or perfect."""
    s = scores(queries, gallery, metric)
    true = s[np.arange(len(queries)), targets]
    greater = np.sum(s > true[:, None], axis=1)
    ties = np.sum(s == true[:, None], axis=1) - 1
    return np.stack([greater, ties], axis=1)


def recall(r: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """Expected R@K: the true match sits uniformly among its ties."""
    greater, ties = r[:, 0].astype(float), r[:, 1].astype(float)
    return {f"R@{k}": float(np.mean(np.clip((k - greater) / (ties + 1), 0.0, 1.0))) for k in ks}


def median_rank(r: np.ndarray) -> float:
    """1 = first; a tie counts as the middle of its run."""
    return float(np.median(r[:, 0] + r[:, 1] / 2) + 1)


def batched_recall(
    audio: np.ndarray,
    visual: np.ndarray,
    metric: str,
    batch: int = 100,
    n_batches: int = 50,
    seed: int = 0,
    ks: tuple[int, ...] = BATCH_KS,
) -> dict:
    """The original project's protocol: random batches of `batch` pairs, R@K within each batch,
    both directions, averaged over batches. Chance R@K is K / batch."""
    rng = np.random.default_rng(seed)
    n = len(audio)
    size = min(batch, n)
    a2v, v2a = [], []
    for _ in range(n_batches if n > size else 1):
        idx = rng.choice(n, size, replace=False)
        target = np.arange(size)
        a2v.append(ranks(audio[idx], visual[idx], target, metric))
        v2a.append(ranks(visual[idx], audio[idx], target, metric))
    return {
        "batch": size,
        "pairs": n,
        "audio_to_video": recall(np.concatenate(a2v), ks),
        "video_to_audio": recall(np.concatenate(v2a), ks),
        "chance": {f"R@{k}": min(1.0, k / size) for k in ks},
    }


def gallery_recall(
    query_audio: np.ndarray,
    query_visual: np.ndarray,
    gallery_audio: np.ndarray,
    gallery_visual: np.ndarray,
    targets: np.ndarray,
    metric: str,
    ks: tuple[int, ...] = GALLERY_KS,
) -> dict:
    """Each held-out clip against the whole gallery: R@K and median rank (1 = first), with chance."""
    n = len(gallery_visual)
    a2v = ranks(query_audio, gallery_visual, targets, metric)
    v2a = ranks(query_visual, gallery_audio, targets, metric)
    return {
        "gallery": n,
        "queries": len(query_audio),
        "audio_to_video": {**recall(a2v, ks), "median_rank": median_rank(a2v)},
        "video_to_audio": {**recall(v2a, ks), "median_rank": median_rank(v2a)},
        "chance": {**{f"R@{k}": min(1.0, k / n) for k in ks}, "median_rank": (n + 1) / 2},
    }
