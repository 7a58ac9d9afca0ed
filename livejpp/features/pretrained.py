"""Pretrained extractors (ONNX, run with onnxruntime): filled in with the converted models."""

from __future__ import annotations

from livejpp.features import FeatureSet


def feature_sets() -> tuple[FeatureSet, ...]:
    raise NotImplementedError


def extractor_for(fs: FeatureSet):
    raise NotImplementedError
