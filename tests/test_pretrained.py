"""The shipped pretrained extractors: ONNX agrees with the original frameworks, and they describe
real media sensibly, with onnxruntime alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from livejpp.features import pretrained
from livejpp.library.build import build_library
from livejpp.library.store import LibraryStore
from livejpp.library.worker import BuildSettings
from livejpp.media.decode import read_audio_file

MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.mark.parametrize(
    "folder,outputs",
    [("musicnn_msd", ("embedding", "logits")), ("efficientnet_lite0", ("features", "logits"))],
)
def test_shipped_onnx_agrees_with_the_original_framework(folder, outputs):
    reference = np.load(MODELS / folder / "reference.npz")
    session = pretrained.session(f"models/{folder}")
    got = session.run(None, {session.get_inputs()[0].name: reference["input"]})
    for name, value in zip(outputs, got, strict=True):
        assert np.abs(value - reference[name]).max() <= 1e-4, name
    card = json.loads((MODELS / folder / "card.json").read_text())
    assert card["check"]["max_abs_difference_onnx_vs_" + ("tensorflow" if "musicnn" in folder else "pytorch")] <= 1e-4
    assert (MODELS / folder / card["licence"].split("see ")[1]).is_file()


def test_musicnn_front_end_reproduces_the_reference_input(media):
    audio = read_audio_file(media / "music" / "Kevin_MacLeod-Vibe_Ace.ogg", start=10.0, end=16.0)
    reference = np.load(MODELS / "musicnn_msd" / "reference.npz")["input"][0]
    assert np.abs(pretrained.musicnn_logmel(audio)[: pretrained.MUSICNN_FRAMES] - reference).max() < 1e-4


def test_musicnn_tags_real_music_plausibly(media):
    card = json.loads((MODELS / "musicnn_msd" / "card.json").read_text())
    session = pretrained.session(pretrained.MUSICNN_DIR)

    def top_tags(name):
        audio = read_audio_file(media / "music" / name, start=20.0, end=23.1)
        x = pretrained.musicnn_logmel(audio)[None, : pretrained.MUSICNN_FRAMES]
        logits = session.run(None, {session.get_inputs()[0].name: x})[1][0]
        return [card["tags"][i] for i in np.argsort(-logits)[:5]]

    assert "ambient" in top_tags("sintel_trailer_audio.ogg")  # an orchestral film score
    assert "electronic" in top_tags("lmms_Skiessi-C64.ogg")  # chiptune


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_library_with_all_features(tmp_path, media):
    lib = tmp_path / "lib"
    build_library(
        [media / "av" / "big_buck_bunny_0_30.webm", media / "footage" / "tree.avi"],
        lib,
        BuildSettings(features="all"),
        jobs=2,
        progress=False,
    )
    with LibraryStore(lib) as store:
        clips = {c.id: c for c in store.clips()}
        effnet, musicnn = store.features("effnet"), store.features("musicnn")
        assert set(effnet) == set(clips)
        assert set(musicnn) == {i for i, c in clips.items() if c.audio == "ok"}
        for clip_id, rows in effnet.items():
            c = clips[clip_id]
            assert rows.shape == (round(c.end - c.start), 1280) and np.isfinite(rows).all()
        assert all(r.shape[1] == 200 and np.isfinite(r).all() for r in musicnn.values())
        bunny = [effnet[i].mean(axis=0) for i, c in clips.items() if "bunny" in c.source]
        tree = [effnet[i].mean(axis=0) for i, c in clips.items() if "tree" in c.source]
    # pictures of the same film resemble each other more than they resemble the tree
    assert cosine(bunny[0], bunny[1]) > cosine(bunny[0], tree[0]) + 0.05
    assert cosine(tree[0], tree[1]) > cosine(tree[0], bunny[0]) + 0.05


def test_a_missing_model_is_a_clear_error_before_any_work(tmp_path, media):
    env = {**os.environ, "LIVEJPP_MODELS": str(tmp_path / "no-models")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "livejpp",
            "library",
            "build",
            str(media / "footage" / "tree.avi"),
            "--out",
            str(tmp_path / "lib"),
            "--features",
            "pretrained",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"livejpp: error: {tmp_path / 'no-models' / 'musicnn_msd' / 'model.onnx'}: pretrained model missing "
        "(convert it with tools/convert_pretrained.py)"
    )
    assert not (tmp_path / "lib").exists()
