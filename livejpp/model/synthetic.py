"""A synthetic-correspondence features set: audio and pictures that share a hidden cause.

For benchmarks and tests, where real paired footage is scarce: each clip's audio and visual
features are noisy nonlinear views of one latent vector, and clips of the same video share part of
it (a video has a style). A model that learns the correspondence retrieves far above chance; one
that does not, sits at chance. Written in the external-features format (`.npz`).
"""

from __future__ import annotations

import os

import numpy as np

from livejpp.features import audio as audio_features
from livejpp.features import visual as visual_features


def make(
    videos: int = 200,
    clips_per_video: int = 10,
    seconds: int = 10,
    seed: int = 0,
    noise: float = 3.0,
    audio_dim: int = audio_features.DIM,
    visual_dim: int = visual_features.DIM,
    latent: int = 16,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = videos * clips_per_video
    style = rng.standard_normal((videos, 8))
    mix = rng.standard_normal((8, latent)) / np.sqrt(8)
    video = np.repeat(np.arange(videos), clips_per_video)
    z = 0.6 * style[video] @ mix + 0.8 * rng.standard_normal((n, latent))
    z_t = z[:, None, :] + 0.3 * rng.standard_normal((n, seconds, latent))
    wa = rng.standard_normal((latent, audio_dim)) / np.sqrt(latent)
    wv = rng.standard_normal((latent, visual_dim)) / np.sqrt(latent)
    audio = 3.0 * np.tanh(z_t @ wa) + noise * rng.standard_normal((n, seconds, audio_dim))
    visual = 2.0 * np.tanh(z_t @ wv) + noise * rng.standard_normal((n, seconds, visual_dim))
    return {
        "audio": audio.astype(np.float32),
        "visual": visual.astype(np.float32),
        "video": video.astype(np.int64),
        "clip": np.arange(n, dtype=np.int64),
    }


def write(path: str | os.PathLike, **kwargs) -> None:
    np.savez_compressed(path, **make(**kwargs))
