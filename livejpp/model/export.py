"""Export trained towers to ONNX (tf2onnx, opset 17), check them, and write the model folder.

The check is part of the export: each ONNX tower must reproduce Keras to 1e-5 on held-out inputs,
or nothing is written. The folder appears in one step (written beside, then renamed).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tensorflow as tf
import tf2onnx

from livejpp import __version__
from livejpp.errors import LivejppError
from livejpp.model.card import CARD, card_for_towers
from livejpp.model.train import embed

TOLERANCE = 1e-5


class ExportError(LivejppError):
    """An ONNX export that does not reproduce the trained model."""


def to_onnx(model, seconds: int, dim: int, path: Path) -> None:
    spec = [tf.TensorSpec([None, seconds, dim], tf.float32, name="features")]
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(path))


def check(model, path: Path, x: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    return float(np.abs(got - embed(model, x)).max())


def export(trained, out: str | os.PathLike, check_audio: np.ndarray, check_visual: np.ndarray, card: dict) -> dict:
    """Write `out`/audio.onnx, visual.onnx, card.json; raise ExportError (writing nothing) on mismatch."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        differences = {}
        for modality, model, x in (
            ("audio", trained.towers.audio, check_audio),
            ("visual", trained.towers.visual, check_visual),
        ):
            path = tmp / f"{modality}.onnx"
            to_onnx(model, x.shape[1], x.shape[2], path)
            differences[modality] = check(model, path, x.astype(np.float32))
            if differences[modality] > TOLERANCE:
                raise ExportError(
                    f"{out}: {modality}.onnx differs from the trained model by {differences[modality]:.1e} "
                    f"(more than {TOLERANCE:g}): not written"
                )
        card = {
            **card_for_towers(trained),
            **card,
            "export_check": {"max_abs_difference": differences, "tolerance": TOLERANCE, "held_out_inputs": len(x)},
            "livejpp_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (tmp / CARD).write_text(json.dumps(card, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        return card
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
