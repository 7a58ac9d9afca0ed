"""Running a model with onnxruntime: per-second features in, one embedding per clip or window out."""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np

from livejpp.model.card import load_card, resolve
from livejpp.model.data import fit_seconds


class Embedder:
    """The two towers of a model folder. Inputs are raw per-second features; the normalisation
    the model was trained with is inside the graph."""

    def __init__(self, model: str | os.PathLike, threads: int = 1):
        self.folder = resolve(model)
        self.card = load_card(self.folder)
        self.threads = threads
        self.seconds = int(self.card["seconds"])
        self.metric = self.card["metric"]
        self.dim = int(self.card["embedding_dim"])

    def _session(self, modality: str):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(self.folder / f"{modality}.onnx"), options, providers=["CPUExecutionProvider"])

    @cached_property
    def _audio(self):
        return self._session("audio")

    @cached_property
    def _visual(self):
        return self._session("visual")

    def _run(self, session, features, batch: int = 512) -> np.ndarray:
        x = np.stack([fit_seconds(np.asarray(f, np.float32), self.seconds) for f in features])
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])

    def audio(self, features) -> np.ndarray:
        """[N, E] from N arrays of per-second audio features ([T, Da] each, or one [N, T, Da] array)."""
        return self._run(self._audio, features)

    def visual(self, features) -> np.ndarray:
        return self._run(self._visual, features)
