"""Model presets (Keras): each builds an audio tower and a visual tower into one embedding space.

Imported only by training and export: TensorFlow never loads on the library, render or live path.

- `seed`: the 2019 project's siamese network, faithfully: one subnetwork [1024, 256, 128, 128]
  shared by both modalities (a modality-specific linear input layer where the feature sizes
  differ), dropout rate 0.9, contrastive loss (margin 1) on alternating batches of matching and
  non-matching pairs, batch 16, Adam 1e-4, L1 0.001 + L2 0.01 weight regularisers.
- `seed_tf1`: the same with the other reading of the write-up's "dropout .9": TF 1's
  `tf.nn.dropout(x, 0.9)` takes a *keep* probability, so the 2019 code most likely dropped 10 %.
  With rate 0.9 the network learns nothing here; with rate 0.1 it lands where the 2019 project did.
- `regression`: the project's baseline: four fully connected tanh layers (the last one linear)
  with dropout 0.3 map audio features onto visual features by mean squared error; retrieval by
  nearest visual features.
- `infonce`: ours, aimed at retrieval: separate towers, per-second layers, mean+max temporal
  pooling, unit-length embeddings, symmetric InfoNCE with in-batch negatives and a learned
  temperature; clips from the same video are never used as each other's negatives.
- `rules`: no training: a hand-made correspondence between named hand features (pace, loudness,
  timbre, punch) used for the shipped default model; works on libraries of silent footage.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers


@dataclass(frozen=True)
class Preset:
    name: str
    metric: str  # how embeddings compare: "cosine" or "l2"
    batch: int
    learning_rate: float
    max_epochs: int
    patience: int  # epochs without a better validation R@5 before stopping
    description: str


PRESETS = {
    "seed": Preset("seed", "l2", 16, 1e-4, 300, 25, "2019 siamese network, contrastive loss (faithful)"),
    "seed_tf1": Preset("seed_tf1", "l2", 16, 1e-4, 300, 25, "2019 siamese network, dropout .9 read as TF1 keep_prob"),
    "regression": Preset("regression", "l2", 16, 1e-4, 300, 25, "2019 baseline: audio → visual regression"),
    "infonce": Preset("infonce", "cosine", 256, 1e-3, 300, 25, "separate towers, temporal pooling, InfoNCE"),
    "rules": Preset("rules", "cosine", 0, 0.0, 0, 0, "hand-made correspondence of named features, no training"),
}


def _normaliser(mean: np.ndarray, std: np.ndarray, name: str) -> layers.Layer:
    return layers.Normalization(mean=mean, variance=np.square(std), name=name)


@dataclass
class Towers:
    audio: keras.Model
    visual: keras.Model
    extra: list  # further trainable variables (a learned temperature)
    regularisation: object = None  # () -> scalar tensor: weight penalties, each weight counted once


def build(preset: str, seconds: int, audio_dim: int, visual_dim: int, stats: dict, names: dict | None = None) -> Towers:
    """`stats`: {"audio": (mean, std), "visual": (mean, std)} per feature dimension, baked into the graph."""
    a_in = keras.Input((seconds, audio_dim), name="audio_features")
    v_in = keras.Input((seconds, visual_dim), name="visual_features")
    a = _normaliser(*stats["audio"], "audio_normalise")(a_in)
    v = _normaliser(*stats["visual"], "visual_normalise")(v_in)
    extra: list = []
    regularisation = None
    if preset in ("seed", "seed_tf1"):
        dropout = 0.9 if preset == "seed" else 0.1
        audio_input, visual_input = layers.Dense(256, name="audio_input"), layers.Dense(256, name="visual_input")
        a, v = audio_input(layers.Flatten()(a)), visual_input(layers.Flatten()(v))
        shared = keras.Sequential(name="shared")
        dense = []
        for width in (1024, 256, 128):
            dense.append(layers.Dense(width, activation="relu"))
            shared.add(dense[-1])
            shared.add(layers.Dropout(dropout))
        dense.append(layers.Dense(128))
        shared.add(dense[-1])
        a, v = shared(a), shared(v)
        penalised = [audio_input, visual_input, *dense]  # the shared layers once, not once per modality

        def regularisation():
            kernels = [layer.kernel for layer in penalised]
            return tf.add_n([0.001 * tf.reduce_sum(tf.abs(k)) + 0.01 * tf.reduce_sum(tf.square(k)) for k in kernels])

    elif preset == "regression":
        a = layers.Flatten()(a)
        for i in range(3):
            a = layers.Dense(512, activation="tanh", name=f"regress{i}")(a)
            a = layers.Dropout(0.3)(a)
        a = layers.Dense(seconds * visual_dim, name="regress_out")(a)
        v = layers.Flatten()(v)
    elif preset == "infonce":
        a, v = _tower(a, "audio"), _tower(v, "visual")
        extra.append(tf.Variable(np.log(1 / 0.07), dtype=tf.float32, name="log_inverse_temperature"))
    elif preset == "rules":
        a, v = _rules(a, v, names or {})
    else:
        raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    return Towers(keras.Model(a_in, a, name="audio"), keras.Model(v_in, v, name="visual"), extra, regularisation)


def _tower(x, modality: str):
    x = layers.GaussianNoise(0.1, name=f"{modality}_noise")(x)  # training only; identity when exported
    x = layers.Dense(256, activation="swish", name=f"{modality}_second1")(x)
    x = layers.Dense(256, activation="swish", name=f"{modality}_second2")(x)
    pooled = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    x = layers.Dropout(0.2)(pooled)
    x = layers.Dense(256, activation="swish", name=f"{modality}_clip")(x)
    x = layers.Dense(128, name=f"{modality}_embed")(x)
    return layers.UnitNormalization(name=f"{modality}_unit")(x)


#: The default model's correspondence: each shared axis pairs named audio and visual features (with signs).
RULES = {
    "pace": ({"onset_mean": 1.0, "flux": 1.0}, {"motion_mean": 1.0, "cut_rate": 1.0}),
    "loudness": ({"loudness_db": 1.0}, {"contrast": 1.0, "brightness": 0.5}),
    "timbre": ({"centroid": 1.0, "rolloff": 1.0}, {"colourfulness": 1.0, "edge_density": 1.0}),
    "punch": ({"onset_max": 1.0, "pulse_clarity": 1.0}, {"flash_rate": 1.0, "motion_max": 1.0}),
}


def rule_weights(names: dict) -> tuple[np.ndarray, np.ndarray]:
    """[Da, axes] and [Dv, axes] weight matrices from RULES, averaging each side's features."""
    audio_names, visual_names = list(names["audio"]), list(names["visual"])
    wa = np.zeros((len(audio_names), len(RULES)), np.float32)
    wv = np.zeros((len(visual_names), len(RULES)), np.float32)
    for j, (audio_side, visual_side) in enumerate(RULES.values()):
        for w, side, feature_names in ((wa, audio_side, audio_names), (wv, visual_side, visual_names)):
            for feature, weight in side.items():
                if feature not in feature_names:
                    raise ValueError(f"the rules preset needs hand features; {feature} is missing")
                w[feature_names.index(feature), j] = weight / sum(abs(x) for x in side.values())
    return wa, wv


def _rules(a, v, names: dict):
    wa, wv = rule_weights(names)
    axes = len(RULES)
    dense_a = layers.Dense(axes, use_bias=False, trainable=False, name="audio_axes")
    dense_v = layers.Dense(axes, use_bias=False, trainable=False, name="visual_axes")
    a = layers.GlobalAveragePooling1D()(dense_a(a))
    v = layers.GlobalAveragePooling1D()(dense_v(v))
    dense_a.set_weights([wa])
    dense_v.set_weights([wv])
    return layers.UnitNormalization(name="audio_unit")(a), layers.UnitNormalization(name="visual_unit")(v)


# --- losses ------------------------------------------------------------------------------------
def contrastive_loss(ea, ev, same, margin: float = 1.0):
    """Hadsell et al.: matching pairs pulled together, others pushed at least `margin` apart."""
    d = tf.sqrt(tf.reduce_sum(tf.square(ea - ev), axis=1) + 1e-9)
    return tf.reduce_mean(same * tf.square(d) + (1.0 - same) * tf.square(tf.nn.relu(margin - d)))


def infonce_loss(ea, ev, video, log_inverse_temperature):
    """Symmetric InfoNCE over in-batch negatives; other clips of the same video are masked out
    (they share a soundtrack and a look: not negatives)."""
    scale = tf.exp(tf.clip_by_value(log_inverse_temperature, 0.0, np.log(100.0)))
    logits = tf.matmul(ea, ev, transpose_b=True) * scale
    same_video = tf.equal(video[:, None], video[None, :])
    eye = tf.eye(tf.shape(ea)[0], dtype=tf.bool)
    logits = tf.where(tf.logical_and(same_video, tf.logical_not(eye)), tf.fill(tf.shape(logits), -1e9), logits)
    labels = tf.range(tf.shape(ea)[0])
    a2v = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    v2a = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.transpose(logits))
    return tf.reduce_mean(a2v + v2a) / 2
