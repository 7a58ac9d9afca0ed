"""The nearest-neighbour index over a library's clip embeddings (hnswlib), one per (library, model).

An index file is written beside, then renamed into place; its sidecar JSON names the model
fingerprint and the library state it was built from, so a stale index is never used and a fresh
one is never rebuilt. Silent clips are indexed too: the index is searched with audio, but it holds
pictures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import hnswlib
import numpy as np

from livejpp.errors import LivejppError
from livejpp.library.store import LibraryError, LibraryStore, warn_once
from livejpp.model.card import check_feature_sets, fingerprint, load_card, resolve
from livejpp.model.embed import Embedder
from livejpp.partfiles import part_path, remove_stale_parts

log = logging.getLogger("livejpp.index")

INDEX_DIR = "index"


class IndexMismatch(LivejppError):
    """An index that does not fit the library or the model it is used with."""


@dataclass
class ClipIndex:
    index: hnswlib.Index
    meta: dict
    left_out: int = 0  # clips marked deleted: refused or gone since the index was built

    def keep_only(self, clip_ids: set[int]) -> None:
        """Never hand out a clip that cannot be played (its file refused or gone since the index was built)."""
        for label in self.index.get_ids_list():
            if label not in clip_ids:
                self.index.mark_deleted(label)
                self.left_out += 1

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    def query(self, vectors: np.ndarray, k: int, allowed: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(clip ids [Q, k], distances [Q, k]); k is capped at the number of clips (of `allowed`, the
        only clips wanted when a VJ forces a video or a tag)."""
        k = min(k, self.index.get_current_count() - self.left_out, len(allowed) if allowed is not None else k)
        if k <= 0:
            return np.zeros((len(vectors), 0), np.int64), np.zeros((len(vectors), 0), np.float32)
        self.index.set_ef(max(64, 2 * k))
        if allowed is None:
            labels, distances = self.index.knn_query(np.asarray(vectors, np.float32), k=k)
        else:  # hnswlib calls the filter per candidate, from one thread
            labels, distances = self.index.knn_query(
                np.asarray(vectors, np.float32), k=k, num_threads=1, filter=lambda label: label in allowed
            )
        return labels.astype(np.int64), distances


def space(metric: str) -> str:
    return {"cosine": "cosine", "l2": "l2"}[metric]


def build(vectors: np.ndarray, clip_ids: np.ndarray, metric: str, threads: int = 0) -> hnswlib.Index:
    index = hnswlib.Index(space=space(metric), dim=vectors.shape[1])
    index.init_index(max_elements=max(1, len(vectors)), ef_construction=200, M=16, random_seed=0)
    if threads:
        index.set_num_threads(threads)
    index.add_items(np.asarray(vectors, np.float32), np.asarray(clip_ids, np.int64))
    return index


def paths(library: str | os.PathLike, model_name: str) -> tuple[Path, Path]:
    folder = Path(library) / INDEX_DIR
    return folder / f"{model_name}.hnsw", folder / f"{model_name}.json"


def _remove_stale_parts(folder: Path) -> None:
    """What an embed killed while saving left behind (SIGKILL; other signals clean up themselves)."""
    remove_stale_parts(folder)
    for legacy in folder.glob("*.part"):  # the names older versions left behind
        try:
            legacy.unlink(missing_ok=True)
        except OSError:  # a read-only library
            pass


def save(index: hnswlib.Index, meta: dict, library: str | os.PathLike, model_name: str) -> Path:
    """Index first, sidecar (with the index file's hash, so damage is noticed) last."""
    data_path, meta_path = paths(library, model_name)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(data_path.parent)
    tmp, tmp_meta = part_path(data_path), part_path(meta_path)
    try:  # a SIGTERM (see livejpp.partfiles) or Ctrl-C while saving leaves no part file behind
        index.save_index(str(tmp))
        meta["file_hash"] = file_hash(tmp)
        os.replace(tmp, data_path)
        tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp_meta, meta_path)  # the sidecar last: an index without its sidecar is never trusted
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
        raise
    return data_path


def read_meta(library: str | os.PathLike, model_name: str) -> dict | None:
    data_path, meta_path = paths(library, model_name)
    if not (data_path.is_file() and meta_path.is_file()):
        return None
    try:
        return json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def file_hash(path: Path) -> str:
    digest = hashlib.blake2b()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def load(library: str | os.PathLike, model_name: str, expect: dict | None = None) -> ClipIndex:
    """The index of `model_name` for this library; `expect` (model fingerprint, library state) must match.
    A damaged index file (its hash differs from the sidecar's, or hnswlib cannot read it) is an IndexMismatch."""
    meta = read_meta(library, model_name)
    if meta is None:
        raise IndexMismatch(
            f"{library}: no index for model {model_name} (run: livejpp library embed {library} --model {model_name})"
        )
    for key, value in (expect or {}).items():
        if meta.get(key) != value:
            raise IndexMismatch(
                f"{library}: the index for {model_name} was built with another {key.replace('_', ' ')} "
                f"(run: livejpp library embed {library} --model {model_name})"
            )
    data_path = paths(library, model_name)[0]
    damaged = IndexMismatch(
        f"{data_path}: the index file is damaged (run: livejpp library embed {library} --model {model_name} --force)"
    )
    try:
        if "file_hash" in meta and file_hash(data_path) != meta["file_hash"]:
            raise damaged
        index = hnswlib.Index(space=space(meta["metric"]), dim=meta["dim"])
        index.load_index(str(data_path), max_elements=meta["count"])
    except (OSError, RuntimeError, ValueError, KeyError, MemoryError) as exc:
        raise damaged from exc
    return ClipIndex(index, meta)


def _finite(vectors: np.ndarray, ids: np.ndarray, records: dict, library) -> tuple[np.ndarray, np.ndarray]:
    """Leave out clips whose embedding is NaN or infinite: hnswlib would hand them out as matches."""
    good = np.isfinite(vectors).all(axis=1)
    for clip_id in ids[~good]:
        warn_once(f"{library}: clip {records[int(clip_id)].uid}: its embedding is NaN or infinite: not indexed")
    return vectors[good], ids[good]


def open_index(
    library: str | os.PathLike, model: str | os.PathLike, force: bool = False, must_save: bool = False
) -> tuple[ClipIndex, bool]:
    """The index of `library` under `model` and whether it was (re)built now. A stale or damaged
    index is rebuilt; where the library cannot be written (a read-only stick) the new one is used
    from memory and a line says so, unless `must_save` (`library embed`)."""
    folder = resolve(model)
    card = load_card(folder)
    model_name = folder.name
    expect = {"model_fingerprint": fingerprint(folder)}
    with LibraryStore(library, readonly=True) as store:
        check_feature_sets(card, store.feature_sets(), str(library), modalities=("visual",))
        expect["library_state"] = store.state()
        index_folder = paths(library, model_name)[0].parent
        if index_folder.is_dir():
            _remove_stale_parts(index_folder)
        meta = read_meta(library, model_name)
        if not force and meta is not None and all(meta.get(k) == v for k, v in expect.items()):
            try:
                index = load(library, model_name, expect)
                log.debug("%s: index for %s is up to date (%d clips)", library, model_name, meta["count"])
                return index, False
            except IndexMismatch as exc:
                log.warning("%s: rebuilding it", exc)
        clips = store.clips()
        if not clips:
            raise LibraryError(f"{library}: the library has no clips to index")
        features = store.features(card["visual"]["feature_set"])
    started = time.monotonic()
    ids = np.array([c.id for c in clips if c.id in features], np.int64)
    if not len(ids):
        raise LibraryError(f"{library}: no clip has usable {card['visual']['feature_set']} features to index")
    vectors = Embedder(folder).visual([features[i] for i in ids])
    vectors, ids = _finite(vectors, ids, {c.id: c for c in clips}, library)
    index = build(vectors, ids, card["metric"])
    meta = {
        **expect,
        "model": model_name,
        "metric": card["metric"],
        "dim": int(vectors.shape[1]),
        "count": int(len(ids)),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.monotonic() - started, 3),
    }
    try:
        save(index, meta, library, model_name)
    except OSError as exc:
        if must_save:
            raise LibraryError(f"{library}: cannot write the index ({exc.strerror or exc})") from None
        log.warning("%s: cannot save the index (%s): using it from memory", library, exc.strerror or exc)
    log.debug("%s: indexed %d clips under %s in %.2f s", library, len(ids), model_name, meta["seconds"])
    return ClipIndex(index, meta), True


def embed_library(library: str | os.PathLike, model: str | os.PathLike, force: bool = False) -> tuple[dict, bool]:
    """Build (or confirm) the saved index of `library` under `model`: its metadata, and whether it was rebuilt."""
    index, rebuilt = open_index(library, model, force, must_save=True)
    return index.meta, rebuilt
