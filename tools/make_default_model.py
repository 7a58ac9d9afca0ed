#!/usr/bin/env python3
"""Make the shipped default model (models/default): the `rules` preset, no training.

It pairs named hand features on four axes a VJ would recognise, each a z-score averaged over the
clip, compared by cosine:

    pace      onsets, spectral flux        ↔  motion, cut rate
    loudness  loudness                     ↔  contrast, brightness
    timbre    spectral centroid, roll-off  ↔  colourfulness, edge density
    punch     strongest onset, pulse       ↔  flashes, peak motion

The z-scores use statistics of real media: audio from the bundled music tracks and soundtracks,
pictures from the bundled footage. It needs no soundtrack in the library (it only embeds
pictures there), so a library of silent loops works with it out of the box.

    .venv/bin/python tools/make_default_model.py        # needs the train extra (TensorFlow, tf2onnx)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livejpp.features import audio as audio_features  # noqa: E402
from livejpp.library.build import build_library  # noqa: E402
from livejpp.library.store import LibraryStore  # noqa: E402
from livejpp.media.decode import read_audio_file  # noqa: E402
from livejpp.model.data import load_library  # noqa: E402
from livejpp.model.pipeline import feature_card  # noqa: E402

MEDIA = ROOT / "tests" / "media"
OUT = ROOT / "models" / "default"


def main() -> None:
    from livejpp.model import presets
    from livejpp.model.evaluate import data_fingerprint, measure
    from livejpp.model.export import export
    from livejpp.model.train import Trained, embed, feature_stats

    music = [read_audio_file(p) for p in sorted((MEDIA / "music").iterdir())]
    audio_rows = np.concatenate([audio_features.audio_features(m) for m in music])
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        build_library([MEDIA / "av", MEDIA / "footage"], lib, progress=False)
        with LibraryStore(lib) as store:
            visual_rows = np.concatenate(list(store.features("hand_visual").values()))
            soundtracks = np.concatenate(list(store.features("hand_audio").values()))
        pairs = load_library(lib)
    audio_rows = np.concatenate([audio_rows, soundtracks])
    stats = {"audio": feature_stats(audio_rows[None]), "visual": feature_stats(visual_rows[None])}
    towers = presets.build("rules", pairs.seconds, pairs.audio.shape[2], pairs.visual.shape[2], stats, pairs.names)
    trained = Trained(presets.PRESETS["rules"], towers, stats)
    everything = np.arange(len(pairs))
    metrics = measure(
        embed(towers.audio, pairs.audio), embed(towers.visual, pairs.visual), everything, "cosine", "none"
    )
    card = {
        "name": "default",
        **feature_card(pairs),
        "split": "none",
        "seed": 0,
        "data": {
            "source": "no training; normalisation statistics from the bundled media",
            "audio_statistics": f"{len(audio_rows)} seconds: tests/media/music and the soundtracks of tests/media/av",
            "visual_statistics": f"{len(visual_rows)} seconds: tests/media/av and tests/media/footage",
            "pairs": len(pairs),
            "fingerprint": data_fingerprint(pairs),
        },
        "rules": {axis: {"audio": a, "visual": v} for axis, (a, v) in presets.RULES.items()},
        "metrics": metrics,
        "made_by": "tools/make_default_model.py",
    }
    card = export(trained, OUT, pairs.audio, pairs.visual, card)
    print(f"wrote {OUT}: export check {card['export_check']['max_abs_difference']}")


if __name__ == "__main__":
    main()
