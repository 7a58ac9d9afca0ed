"""A library of many clips: the index grows with `library add`, a forced search stays exact, the engine
starts without reading every clip (synthetic feature rows: tools/scale_index_bench.py)."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from livejpp import index as clip_index
from livejpp.engine.engine import Engine
from livejpp.engine.live import matching_clips
from livejpp.media.decode import read_audio_file
from livejpp.model.card import resolve
from tools.scale_index_bench import CLIPS_PER_VIDEO, TAGS, make_library

MUSIC = Path(__file__).parent / "media" / "music" / "Kevin_MacLeod-Vibe_Ace.ogg"
MODEL = resolve("default")


def _neighbours(index: clip_index.ClipIndex, queries: np.ndarray, k: int = 10) -> list[set[int]]:
    labels, _ = index.query(queries, k)
    return [set(row) for row in labels.tolist()]


def _brute_force(index: clip_index.ClipIndex, queries: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    items = np.asarray(index.index.get_items(allowed), np.float32)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return allowed[np.argsort(1 - q @ items.T, axis=1, kind="stable")[:, :k]]


@pytest.fixture
def queries() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((30, 4)).astype(np.float32)


def test_library_add_extends_the_index_to_what_a_full_rebuild_finds(tmp_path, queries, caplog):
    library = make_library(tmp_path / "lib", 3000)
    first, rebuilt = clip_index.open_index(library, MODEL, must_save=True)
    assert rebuilt and first.meta["count"] == 3000
    make_library(library, 2000, seed=1, first=3001)  # what `library add` appends
    with caplog.at_level(logging.DEBUG, logger="livejpp.index"):
        grown, rebuilt = clip_index.open_index(library, MODEL, must_save=True)
    assert rebuilt and grown.meta["count"] == 5000
    assert "2000 clips added to the index" in caplog.text  # extended, not rebuilt from every clip
    again, rebuilt = clip_index.open_index(library, MODEL)
    assert not rebuilt and again.meta["count"] == 5000  # saved: up to date now
    full, _ = clip_index.open_index(library, MODEL, force=True)
    assert _neighbours(grown, queries) == _neighbours(full, queries)
    labels, _ = grown.query(queries, 5000)
    assert set(labels[0].tolist()) == set(range(1, 5001))


def test_library_add_leaves_the_saved_index_up_to_date(tmp_path, caplog):
    library = make_library(tmp_path / "lib", 1000)
    clip_index.embed_library(library, MODEL)
    make_library(library, 300, seed=1, first=1001)
    with caplog.at_level(logging.DEBUG, logger="livejpp.index"):
        clip_index.update_saved_indexes(library)  # what `library add` does once its clips are in
    assert "300 clips added to the index" in caplog.text
    index, rebuilt = clip_index.open_index(library, MODEL)
    assert not rebuilt and index.meta["count"] == 1300  # the next show starts without indexing


def test_an_index_from_before_extension_existed_is_rebuilt_on_add(tmp_path):
    library = make_library(tmp_path / "lib", 500)
    clip_index.open_index(library, MODEL, must_save=True)
    sidecar = clip_index.paths(library, MODEL.name)[1]
    meta = json.loads(sidecar.read_text())
    del meta["clips_upto"]  # as older versions wrote it
    sidecar.write_text(json.dumps(meta))
    assert not clip_index.open_index(library, MODEL)[1]  # still up to date: used as it is
    make_library(library, 100, seed=1, first=501)
    index, rebuilt = clip_index.open_index(library, MODEL, must_save=True)
    assert rebuilt and index.meta["count"] == 600


def test_a_removed_clip_makes_a_full_rebuild_not_an_extension(tmp_path, caplog):
    library = make_library(tmp_path / "lib", 500)
    clip_index.open_index(library, MODEL, must_save=True)
    db = sqlite3.connect(library / "library.sqlite")
    db.execute("DELETE FROM features WHERE clip_id = 7")
    db.execute("DELETE FROM clips WHERE id = 7")
    db.commit()
    db.close()
    make_library(library, 100, seed=1, first=501)
    with caplog.at_level(logging.DEBUG, logger="livejpp.index"):
        index, rebuilt = clip_index.open_index(library, MODEL, must_save=True)
    assert rebuilt and index.meta["count"] == 599 and "added to the index" not in caplog.text
    labels, _ = index.query(np.ones((1, 4), np.float32), 599)
    assert 7 not in labels[0].tolist()


@pytest.mark.parametrize("exact_up_to", [None, 10])  # numpy over the allowed clips; hnswlib's filter
def test_a_forced_search_returns_only_allowed_clips_and_the_true_nearest(tmp_path, queries, monkeypatch, exact_up_to):
    if exact_up_to is not None:
        monkeypatch.setattr(clip_index, "EXACT_UP_TO", exact_up_to)
    library = make_library(tmp_path / "lib", 4000)
    index, _ = clip_index.open_index(library, MODEL, must_save=True)
    video = set(range(CLIPS_PER_VIDEO + 1, 2 * CLIPS_PER_VIDEO + 1))  # the clips of one video
    tag = {c for c in range(1, 4001) if ((c - 1) // CLIPS_PER_VIDEO + 1) % len(TAGS) == 3}
    for allowed in (video, tag):
        labels, distances = index.query(queries, 10, allowed)
        assert labels.shape == (len(queries), 10) and set(labels.ravel().tolist()) <= allowed
        truth = _brute_force(index, queries, np.array(sorted(allowed)), 10)
        hits = np.mean([len(set(a) & set(b)) for a, b in zip(labels.tolist(), truth.tolist(), strict=True)])
        assert hits >= 9.9, f"{hits} of the 10 true nearest allowed clips"
        assert (np.diff(distances, axis=1) >= -1e-6).all()  # closest first
    labels, _ = index.query(queries, 50, {5, 6})  # fewer allowed than asked for
    assert labels.shape == (len(queries), 2) and set(labels.ravel().tolist()) == {5, 6}


def test_a_library_of_20000_clips_starts_and_answers_a_hop(tmp_path):
    library = make_library(tmp_path / "lib", 20_000)
    engine = Engine(library)
    assert len(engine.records) == 20_000 and 20_000 in engine.records and 20_001 not in engine.records
    engine.push(read_audio_file(MUSIC, 0, 12))
    assert engine.hops and engine.hops[-1].neighbours and engine.cuts
    clip = engine.cuts[0].clip
    assert engine.records[clip].playback == f"clips/{clip:08d}.mp4"  # its record, read when asked for
    tag = matching_clips(engine, tag=TAGS[2])
    assert tag == {c for c in range(1, 20_001) if ((c - 1) // CLIPS_PER_VIDEO + 1) % len(TAGS) == 2}
    engine.restrict(tag)
    assert {c for c, _ in engine.neighbours} <= tag and len(engine.neighbours) == engine.settings.neighbours


def test_clip_records_are_read_from_the_show_threads(tmp_path):
    """The live show asks for records from its decoder, analysis and control threads."""
    from concurrent.futures import ThreadPoolExecutor

    from livejpp.library.store import LibraryStore

    library = make_library(tmp_path / "lib", 100)
    with LibraryStore(library, readonly=True) as store:
        records = store.clip_table()
    assert records[1].playback == "clips/00000001.mp4"  # read in this thread first
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda clip: records[clip].playback, range(2, 100)))
    assert found == [f"clips/{c:08d}.mp4" for c in range(2, 100)]
    assert records[1] is records[1]  # the same record each time: the show compares them
