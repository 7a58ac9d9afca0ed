"""Training, export and evaluation with TensorFlow: the presets learn, exports are checked,
the same seed gives the same model, and eval reports what training measured."""

import json
import logging
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from livejpp.model import synthetic
from livejpp.model.card import ModelError, load_card
from livejpp.model.pipeline import train_model

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "features.npz"
    synthetic.write(path, videos=40, clips_per_video=6, seconds=4, seed=3)
    return path


def run_onnx(folder, modality, x):
    session = ort.InferenceSession(str(folder / f"{modality}.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def infonce(features, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "syn"
    card = train_model(features, "infonce", out, "video", seed=0, max_epochs=12, progress=False)
    return out, card


def test_infonce_learns_the_correspondence(infonce):
    out, card = infonce
    r = card["metrics"]["video_level"]
    assert r["audio_to_video"]["R@5"] > 4 * r["chance"]["R@5"]
    assert r["video_to_audio"]["R@5"] > 4 * r["chance"]["R@5"]
    assert card["split"] == "video" and card["data"]["validation"] > 0
    assert len(card["history"]) == 12 and card["history"][-1]["loss"] < card["history"][0]["loss"]


def test_export_reproduces_keras_and_the_card_says_how_to_feed_it(infonce, features):
    out, card = infonce
    assert max(card["export_check"]["max_abs_difference"].values()) <= 1e-5
    assert card["audio"] == {"feature_set": "external_audio", "version": "npz", "dim": 64}
    assert card["seconds"] == 4 and card["metric"] == "cosine" and card["embedding_dim"] == 128
    x = np.load(features)["audio"][:3]
    e = run_onnx(out, "audio", x)
    assert e.shape == (3, 128) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)


def test_same_seed_same_model_other_seed_other_model(features, tmp_path, infonce):
    again = train_model(features, "infonce", tmp_path / "again", "video", seed=0, max_epochs=12, progress=False)
    other = train_model(features, "infonce", tmp_path / "other", "video", seed=1, max_epochs=12, progress=False)
    x = np.load(features)["visual"][:8]
    first = run_onnx(infonce[0], "visual", x)
    assert np.array_equal(run_onnx(tmp_path / "again", "visual", x), first)
    assert not np.allclose(run_onnx(tmp_path / "other", "visual", x), first, atol=1e-3)
    assert again["history"] == infonce[1]["history"]
    assert other["history"] != infonce[1]["history"]


@pytest.mark.parametrize("preset,metric", [("seed", "l2"), ("regression", "l2")])
def test_the_2019_presets_train_and_export(features, tmp_path, preset, metric):
    card = train_model(features, preset, tmp_path / preset, "clip", seed=0, max_epochs=3, progress=False)
    assert card["preset"] == preset and card["metric"] == metric and card["split"] == "clip"
    assert "original" in card["metrics"] and card["metrics"]["original"]["batch"] == 48
    assert max(card["export_check"]["max_abs_difference"].values()) <= 1e-5
    assert (tmp_path / preset / "audio.onnx").is_file()


def test_a_failed_export_check_writes_nothing(features, tmp_path, monkeypatch):
    from livejpp.model import export

    monkeypatch.setattr(export, "TOLERANCE", 0.0)  # an exporter that drifts cannot be caused on demand
    with pytest.raises(export.ExportError, match="differs from the trained model"):
        train_model(features, "infonce", tmp_path / "model", "video", max_epochs=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_features_file_writes_no_model(tmp_path, features):
    arrays = dict(np.load(features))
    arrays["visual"][5, 0, 0] = np.inf
    np.savez(tmp_path / "bad.npz", **arrays)
    out = subprocess.run(
        [sys.executable, "-m", "livejpp", "train", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "m"), "-q"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip().endswith("visual has NaN or infinite values in 1 clips (first: row 5)")
    assert not (tmp_path / "m").exists()


def test_eval_reproduces_training_figures_and_writes_plots(infonce, features, tmp_path):
    out, card = infonce
    result = subprocess.run(
        [sys.executable, "-m", "livejpp", "eval", str(out), str(features), "--out", str(tmp_path / "report")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "held out: whole videos (video split)" in result and "(10.4)" in result  # batches of the 48 held-out pairs
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["video_level"] == card["metrics"]["video_level"]  # onnxruntime and Keras agree
    for png in ("training.png", "recall.png", "tsne.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_eval_refuses_data_the_model_was_not_trained_for(infonce, tmp_path):
    np.savez(tmp_path / "other.npz", **synthetic.make(videos=5, clips_per_video=4, seconds=4, audio_dim=32))
    with pytest.raises(
        ModelError, match="external_audio is vnpz \\(32-d\\) there, model syn was trained on vnpz \\(64-d\\)"
    ):
        from livejpp.model.evaluate import evaluate

        evaluate(infonce[0], tmp_path / "other.npz")
    assert load_card(infonce[0])["name"] == "syn"


def test_eval_table_prints_presets_side_by_side(features):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "livejpp",
            "eval",
            "--table",
            str(features),
            "--presets",
            "regression",
            "infonce",
            "--max-epochs",
            "2",
            "-q",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert any(line.strip().startswith("regression") for line in lines)
    assert any(line.strip().startswith("infonce") for line in lines)
    chance = next(line for line in lines if line.strip().startswith("chance")).split()
    assert chance[1:5] == ["2.1", "10.4", "20.8", "52.1"]  # batches of 48 held-out pairs (clip split)


def test_training_on_a_handful_of_pairs_warns_in_one_line(tmp_path, caplog):
    from livejpp.model.train import MIN_PAIRS

    synthetic.write(tmp_path / "five.npz", videos=5, clips_per_video=1, seconds=4, seed=0)
    with caplog.at_level(logging.WARNING, logger="livejpp.train"):
        train_model(tmp_path / "five.npz", "infonce", tmp_path / "tiny", max_epochs=1, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "livejpp.train"]
    assert warnings == [
        f"{tmp_path / 'five.npz'}: 4 training pairs are too few for a meaningful model (at least {MIN_PAIRS}); "
        "the model is written, but expect it to match at chance"
    ]
