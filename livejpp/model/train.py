"""Training a preset on paired features: deterministic, with progress and early stopping.

Validation R@5 (the original protocol: random batches of 100 held-out pairs) is measured after
every epoch; training stops when it has not improved for the preset's patience and the best
weights are kept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from livejpp.model import presets
from livejpp.model.data import DataError, PairedFeatures
from livejpp.model.metrics import batched_recall
from livejpp.progress import progress_bar

log = logging.getLogger("livejpp.train")

#: Fewer training pairs than this make no meaningful model: validation recall is measured on
#: batches of 100 held-out pairs, and a few pairs are memorised, not learned. Training goes on
#: (a smoke test may want it) with a one-line warning.
MIN_PAIRS = 100


@dataclass
class Trained:
    preset: presets.Preset
    towers: presets.Towers
    stats: dict
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation over clips and seconds (constant dims get std 1)."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def embed(model: keras.Model, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    return np.concatenate([model(x[i : i + batch], training=False).numpy() for i in range(0, len(x), batch)])


def validation_r5(towers: presets.Towers, data: PairedFeatures, metric: str) -> float:
    ea, ev = embed(towers.audio, data.audio), embed(towers.visual, data.visual)
    result = batched_recall(ea, ev, metric, n_batches=20, seed=0)
    return (result["audio_to_video"]["R@5"] + result["video_to_audio"]["R@5"]) / 2


def train(
    preset_name: str,
    train_data: PairedFeatures,
    val_data: PairedFeatures,
    seed: int = 0,
    max_epochs: int | None = None,
    progress: bool = True,
    names: dict | None = None,
) -> Trained:
    """Train `preset_name` on `train_data`, stopping early on `val_data`'s R@5 plateau."""
    if preset_name not in presets.PRESETS:
        raise DataError(f"unknown preset {preset_name!r} (choose from {', '.join(presets.PRESETS)})")
    preset = presets.PRESETS[preset_name]
    if len(train_data) < 2:
        raise DataError(f"{train_data.source}: {len(train_data)} training pairs; at least 2 are needed")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    stats = {"audio": feature_stats(train_data.audio), "visual": feature_stats(train_data.visual)}
    towers = presets.build(
        preset_name, train_data.seconds, train_data.audio.shape[2], train_data.visual.shape[2], stats, names
    )
    result = Trained(preset, towers, stats)
    epochs = preset.max_epochs if max_epochs is None else min(max_epochs, preset.max_epochs)
    started = time.monotonic()
    if epochs > 0 and len(train_data) < MIN_PAIRS:
        log.warning(
            "%s: %d training pairs are too few for a meaningful model (at least %d); "
            "the model is written, but expect it to match at chance",
            train_data.source,
            len(train_data),
            MIN_PAIRS,
        )
    if epochs == 0:
        result.history.append({"epoch": 0, "loss": None, "val_r5": validation_r5(towers, val_data, preset.metric)})
        result.seconds = time.monotonic() - started
        return result

    variables = (
        towers.audio.trainable_variables
        + [v for v in towers.visual.trainable_variables if all(v is not w for w in towers.audio.trainable_variables)]
        + towers.extra
    )
    optimizer = (
        keras.optimizers.AdamW(preset.learning_rate, weight_decay=1e-4)
        if preset_name == "infonce"
        else keras.optimizers.Adam(preset.learning_rate)
    )
    optimizer.build(variables)

    audio_all = tf.constant(train_data.audio)
    visual_all = tf.constant(train_data.visual)
    video_all = tf.constant(train_data.video)

    def step(a, v, other_v, video, matching):
        with tf.GradientTape() as tape:
            ea = towers.audio(a, training=True)
            if preset_name in ("seed", "seed_tf1"):
                # alternating batches: matching pairs, then the same audio against other clips' pictures
                ev = towers.visual(tf.cond(matching > 0, lambda: v, lambda: other_v), training=True)
                loss = presets.contrastive_loss(ea, ev, tf.cast(matching, tf.float32))
            elif preset_name == "regression":
                ev = towers.visual(v, training=False)
                loss = tf.reduce_mean(tf.square(ea - ev))
            else:
                ev = towers.visual(v, training=True)
                loss = presets.infonce_loss(ea, ev, video, towers.extra[0])
            total = loss + towers.regularisation() if towers.regularisation is not None else loss
        optimizer.apply_gradients(zip(tape.gradient(total, variables), variables, strict=True))
        return loss

    @tf.function(jit_compile=True)
    def run_epoch(order, other):
        """One epoch inside the graph: no Python between the steps of a batch-16 preset."""
        losses = tf.TensorArray(tf.float32, size=tf.shape(order)[0])
        for i in tf.range(tf.shape(order)[0]):
            idx, oth = order[i], other[i]
            loss = step(
                tf.gather(audio_all, idx),
                tf.gather(visual_all, idx),
                tf.gather(visual_all, oth),
                tf.gather(video_all, idx),
                1 - i % 2,
            )
            losses = losses.write(i, loss)
        return tf.reduce_mean(losses.stack())

    rng = np.random.default_rng(seed)
    n = len(train_data)
    batch = min(preset.batch, n)
    n_batches = n // batch
    best, best_weights, waited = -1.0, None, 0
    bar = progress_bar(range(1, epochs + 1), desc=f"training {preset_name}", unit="epoch", enabled=progress)
    for epoch in bar:
        order = rng.permutation(n)[: n_batches * batch].reshape(n_batches, batch)
        other = (order + rng.integers(1, n, order.shape)) % n  # another clip's pictures for every audio
        epoch_loss = float(run_epoch(tf.constant(order, tf.int32), tf.constant(other, tf.int32)))
        if not np.isfinite(epoch_loss):
            raise DataError(
                f"{train_data.source}: training diverged (loss {epoch_loss} at epoch {epoch}): no model written"
            )
        r5 = validation_r5(towers, val_data, preset.metric)
        result.history.append({"epoch": epoch, "loss": epoch_loss, "val_r5": r5})
        bar.set_postfix_str(f"loss {epoch_loss:.4f}, val R@5 {r5:.3f} (best {max(best, r5):.3f})")
        if r5 > best + 1e-4:
            best, waited, result.best_epoch = r5, 0, epoch
            best_weights = [w.numpy() for w in variables]
        else:
            waited += 1
            if waited >= preset.patience:
                log.info("validation R@5 has not improved for %d epochs: stopping at epoch %d", waited, epoch)
                break
    bar.close()
    for var, value in zip(variables, best_weights, strict=True):
        var.assign(value)
    result.seconds = time.monotonic() - started
    return result
