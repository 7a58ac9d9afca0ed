"""`library embed` and the search index: every clip (silent ones too), rebuilt only when needed;
the shipped default model and what it does."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synth import click_track, tone, write_video

from livejpp import index as clip_index
from livejpp.features import audio as audio_features
from livejpp.features import visual as visual_features
from livejpp.library.build import build_library
from livejpp.library.store import LibraryStore
from livejpp.model.card import ModelError, load_card
from livejpp.model.embed import Embedder

MODELS = Path(__file__).resolve().parent.parent / "models"


def embed_cli(lib, *extra):
    return subprocess.run(
        [sys.executable, "-m", "livejpp", "library", "embed", str(lib), *extra], capture_output=True, text=True
    )


@pytest.fixture
def library(tmp_path, real_library):
    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib, ignore=shutil.ignore_patterns("index"))  # other tests index it
    return lib


def test_every_clip_is_indexed_and_finds_itself(library):
    out = embed_cli(library, "--model", "default")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"index built: 14 clips of {library} under default (cosine, 4-d)"
    with LibraryStore(library) as store:
        clips = store.clips()
        visual = store.features("hand_visual")
    index = clip_index.load(library, "default")
    assert index.meta["count"] == len(clips) == 14  # silent and soundless clips are searchable by their pictures
    vectors = Embedder("default").visual([visual[c.id] for c in clips])
    labels, distances = index.query(vectors, k=1)
    assert np.array_equal(labels[:, 0], [c.id for c in clips])
    assert np.allclose(distances[:, 0], 0, atol=1e-5)


def test_the_index_is_rebuilt_only_when_the_library_or_model_changes(library, tmp_path, media):
    assert "index built" in embed_cli(library, "--model", "default").stdout
    assert "index up to date" in embed_cli(library, "--model", "default").stdout
    renamed_copy = tmp_path / "flower again.mp4"
    shutil.copy(media / "footage" / "mdn_flower.mp4", renamed_copy)
    build_library([renamed_copy], library, None, create=False, progress=False)  # the same video: nothing new
    assert "index up to date" in embed_cli(library, "--model", "default").stdout
    write_video(tmp_path / "new.mp4", seconds=6)
    build_library([tmp_path / "new.mp4"], library, None, create=False, progress=False)
    assert "index built: 15 clips" in embed_cli(library, "--model", "default").stdout
    with LibraryStore(library) as store:
        with store.transaction() as db:  # clips removed (as a future `library remove` would)
            db.execute("DELETE FROM clips WHERE id IN (SELECT id FROM clips ORDER BY id DESC LIMIT 2)")
    assert "index built: 13 clips" in embed_cli(library, "--model", "default").stdout
    model = tmp_path / "default-copy"
    shutil.copytree(MODELS / "default", model)
    card = json.loads((model / "card.json").read_text())
    card["name"] = "default-copy"
    (model / "card.json").write_text(json.dumps(card))
    assert "index built: 13 clips" in embed_cli(library, "--model", str(model)).stdout
    with pytest.raises(clip_index.IndexMismatch, match="built with another model fingerprint"):
        clip_index.load(library, "default-copy", {"model_fingerprint": "0000"})


def test_a_model_for_other_features_is_refused_and_writes_nothing(library, tmp_path):
    model = tmp_path / "effnet-model"
    shutil.copytree(MODELS / "default", model)
    card = json.loads((model / "card.json").read_text())
    card["visual"] = {"feature_set": "effnet", "version": "lite0-1", "dim": 1280}
    (model / "card.json").write_text(json.dumps(card))
    out = embed_cli(library, "--model", str(model))
    assert out.returncode == 1
    assert "needs feature set effnet, which is not there (has hand_audio, hand_visual)" in out.stderr
    assert not (library / "index").exists()


def test_an_unknown_model_is_a_clear_error(library):
    out = embed_cli(library, "--model", "nonesuch")
    assert out.returncode == 1 and "nonesuch: no model there" in out.stderr
    with pytest.raises(ModelError):
        load_card("nonesuch")


def test_the_default_model_is_shipped_checked_and_documented():
    card = load_card("default")
    assert card["preset"] == "rules" and card["split"] == "none"
    assert max(card["export_check"]["max_abs_difference"].values()) <= 1e-5
    assert card["audio"]["feature_set"] == "hand_audio" and card["visual"]["feature_set"] == "hand_visual"
    assert set(card["rules"]) == {"pace", "loudness", "timbre", "punch"}


def test_the_default_model_matches_busy_music_with_busy_pictures():
    """What it promises a VJ: drums find moving, cutting pictures; a held tone finds still ones."""
    embedder = Embedder("default")
    drums = audio_features.audio_features(click_track(140, 10) + tone(220, 10, level=0.05))
    calm = audio_features.audio_features(tone(220, 10, level=0.05) * np.hanning(220500).astype(np.float32))
    rng = np.random.default_rng(0)
    busy, still = visual_features.VisualFeatures(), visual_features.VisualFeatures()
    grey = np.full((90, 160, 3), 90, np.uint8)
    for i in range(250):
        t = i / 25
        frame = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) if (i // 5) % 2 else grey
        busy.add(t, frame)
        still.add(t, grey)
    a = embedder.audio([drums, calm])
    v = embedder.visual([busy.rows(10), still.rows(10)])
    similarity = a @ v.T
    assert similarity[0, 0] > similarity[0, 1]  # drums: busy over still
    assert similarity[1, 1] > similarity[1, 0]  # calm: still over busy
