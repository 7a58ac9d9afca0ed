"""Paired audio/visual features for training and evaluation, from a library or an `.npz` file.

Both sources become one `PairedFeatures`: per-clip, per-second audio [N, T, Da] and visual
[N, T, Dv] features, with the source video of each clip (so validation can hold whole videos out).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livejpp.errors import LivejppError


class DataError(LivejppError):
    """Training or evaluation data that cannot be used."""


@dataclass
class PairedFeatures:
    audio: np.ndarray  # [N, T, Da] float32
    visual: np.ndarray  # [N, T, Dv] float32
    video: np.ndarray  # [N] int: which source video
    clip: np.ndarray  # [N] int: clip id (library clip id, or the file's own)
    source: str
    audio_set: str = "external_audio"
    visual_set: str = "external_visual"
    feature_versions: dict[str, str] = field(default_factory=dict)
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per modality, where known

    def __len__(self) -> int:
        return len(self.clip)

    @property
    def seconds(self) -> int:
        return self.audio.shape[1]

    def subset(self, index: np.ndarray) -> PairedFeatures:
        return PairedFeatures(
            self.audio[index],
            self.visual[index],
            self.video[index],
            self.clip[index],
            self.source,
            self.audio_set,
            self.visual_set,
            self.feature_versions,
            self.names,
        )


def require_finite(data: PairedFeatures, embeddings: dict[str, np.ndarray]) -> None:
    """Stop at NaN or infinite embeddings (a model that diverged): every score would tie, and a
    recall measured on them reads as perfect."""
    for name, x in embeddings.items():
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise DataError(
                f"{data.source}: {name} embeddings of {int(bad.sum())} clips are NaN or infinite "
                f"(first: clip {int(data.clip[np.flatnonzero(bad)[0]])}): the model is broken, nothing measured"
            )


def fit_seconds(x: np.ndarray, seconds: int) -> np.ndarray:
    """[T, D] → [seconds, D]: crop a longer clip, repeat the last second of a shorter one."""
    if len(x) >= seconds:
        return x[:seconds]
    return np.concatenate([x, np.repeat(x[-1:], seconds - len(x), axis=0)])


def load_npz(path: str | os.PathLike) -> PairedFeatures:
    """The external-features format: `audio` [N,T,Da], `visual` [N,T,Dv], `video` [N], `clip` [N]."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable features file ({exc})") from exc
    missing = [k for k in ("audio", "visual", "video", "clip") if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {', '.join(missing)} (needs audio, visual, video, clip)")
    audio, visual = arrays["audio"], arrays["visual"]
    video, clip = arrays["video"].reshape(-1), arrays["clip"].reshape(-1)
    if audio.ndim != 3 or visual.ndim != 3:
        raise DataError(f"{path}: audio and visual must be [N, T, D], got {audio.shape} and {visual.shape}")
    n = {len(audio), len(visual), len(video), len(clip)}
    if len(n) != 1:
        raise DataError(
            f"{path}: lengths differ: audio {len(audio)}, visual {len(visual)}, video {len(video)}, clip {len(clip)}"
        )
    if audio.shape[1] != visual.shape[1]:
        raise DataError(f"{path}: audio has {audio.shape[1]} seconds per clip, visual {visual.shape[1]}")
    for name, x in (("audio", audio), ("visual", visual)):
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{path}: {name} is not numeric ({x.dtype})")
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise DataError(f"{path}: {name} has NaN or infinite values in {len(rows)} clips (first: row {rows[0]})")
    if len(np.unique(clip)) != len(clip):
        raise DataError(f"{path}: clip ids are not unique")
    return PairedFeatures(
        audio.astype(np.float32), visual.astype(np.float32), _as_ids(video), clip.astype(np.int64), str(path)
    )


def _as_ids(values: np.ndarray) -> np.ndarray:
    """Video labels of any type (ints, strings) as small ints."""
    _, ids = np.unique(values, return_inverse=True)
    return ids.astype(np.int64)


def load_library(
    path: str | os.PathLike, audio_set: str = "hand_audio", visual_set: str = "hand_visual", seconds: int | None = None
) -> PairedFeatures:
    """Clips with real music and both feature sets; silent clips never become training pairs."""
    from livejpp.library.store import LibraryStore

    with LibraryStore(path, readonly=True) as store:
        sets = store.feature_sets()
        for name in (audio_set, visual_set):
            if name not in sets:
                raise DataError(f"{path}: library has no feature set {name} (has {', '.join(sets) or 'none'})")
        seconds = seconds or int(round(store.settings().get("clip_seconds", 10)))
        clips = [c for c in store.clips() if c.audio == "ok"]
        audio = store.features(audio_set, [c.id for c in clips])
        visual = store.features(visual_set, [c.id for c in clips])
        versions = {name: sets[name].version for name in (audio_set, visual_set)}
        names = {"audio": sets[audio_set].names, "visual": sets[visual_set].names}
    clips = [c for c in clips if c.id in audio and c.id in visual]
    if not clips:
        raise DataError(f"{path}: no clip has real music (every soundtrack is silent or absent): nothing to pair")
    return PairedFeatures(
        np.stack([fit_seconds(audio[c.id], seconds) for c in clips]).astype(np.float32),
        np.stack([fit_seconds(visual[c.id], seconds) for c in clips]).astype(np.float32),
        np.array([c.video_id for c in clips], np.int64),
        np.array([c.id for c in clips], np.int64),
        str(path),
        audio_set,
        visual_set,
        versions,
        names,
    )


def load(source: str | os.PathLike, audio_set: str = "hand_audio", visual_set: str = "hand_visual") -> PairedFeatures:
    """A library folder or an `.npz` features file."""
    source = Path(source)
    if source.is_dir():
        return load_library(source, audio_set, visual_set)
    if source.suffix == ".npz":
        return load_npz(source)
    raise DataError(f"{source}: neither a library folder nor an .npz features file")


def split(data: PairedFeatures, how: str, seed: int = 0, validation: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices. `clip`: the original project's 80:20 split of pairs;
    `video`: whole videos held out (no video on both sides), what a user with new songs gets."""
    rng = np.random.default_rng(seed)
    n = len(data)
    if how == "clip":
        order = rng.permutation(n)
        n_val = max(1, int(round(validation * n)))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    if how == "video":
        videos = np.unique(data.video)
        if len(videos) < 2:
            raise DataError(f"{data.source}: a video-level split needs at least 2 videos, found {len(videos)}")
        order = rng.permutation(videos)
        held, count = [], 0
        for v in order:  # hold out whole videos until about `validation` of the clips are out
            if count >= validation * n and held:
                break
            held.append(v)
            count += int(np.sum(data.video == v))
        if len(held) == len(videos):
            held = held[:-1]
        is_val = np.isin(data.video, held)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)
    raise DataError(f"split must be 'video' or 'clip', not {how!r}")
