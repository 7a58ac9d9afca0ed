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


# A forced video or tag allows this many clips or fewer: they are searched exactly, by numpy over their
# vectors (read from the index once per restriction). hnswlib's filter is a Python call per candidate and
# walks most of the graph when few labels pass (measured: tools/scale_index_bench.py); above this it is
# used, as most candidates pass then.
EXACT_UP_TO = 100_000


@dataclass
class ClipIndex:
    index: hnswlib.Index
    meta: dict
    left_out: int = 0  # clips marked deleted: refused or gone since the index was built
    _allowed: tuple = (None, None, None)  # (the allowed set last searched, its ids, their vectors)

    _labels: np.ndarray | None = None  # the labels handed out (not marked deleted), read once

    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = np.asarray(self.index.get_ids_list(), np.int64)
        return self._labels

    def keep_only(self, clip_ids) -> None:
        """Never hand out a clip that cannot be played (its file refused or gone since the index was built)."""
        keep = clip_ids if isinstance(clip_ids, np.ndarray) else np.fromiter(clip_ids, np.int64)
        labels = self.labels()
        gone = ~np.isin(labels, keep)
        for label in labels[gone].tolist():
            self.index.mark_deleted(label)
            self.left_out += 1
        self._labels = labels[~gone]

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    def query(self, vectors: np.ndarray, k: int, allowed: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(clip ids [Q, k], distances [Q, k]); k is capped at the number of clips (of `allowed`, the
        only clips wanted when a VJ forces a video or a tag)."""
        k = min(k, self.index.get_current_count() - self.left_out, len(allowed) if allowed is not None else k)
        if k <= 0:
            return np.zeros((len(vectors), 0), np.int64), np.zeros((len(vectors), 0), np.float32)
        vectors = np.asarray(vectors, np.float32)
        if allowed is not None and len(allowed) <= EXACT_UP_TO:
            return self._exact(vectors, k, allowed)
        self.index.set_ef(max(64, 2 * k))
        if allowed is None:
            labels, distances = self.index.knn_query(vectors, k=k)
        else:  # hnswlib calls the filter per candidate, from one thread
            labels, distances = self.index.knn_query(vectors, k=k, num_threads=1, filter=lambda label: label in allowed)
        return labels.astype(np.int64), distances

    def _exact(self, vectors: np.ndarray, k: int, allowed: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """The true nearest `allowed` clips, with hnswlib's distances (cosine: 1 - dot of unit vectors;
        l2: squared). The allowed clips' vectors are read once per restriction, not per hop."""
        if self._allowed[0] is not allowed:
            ids = np.fromiter(allowed, np.int64, len(allowed))
            ids = np.sort(ids[np.isin(ids, self.labels())])
            items = np.asarray(self.index.get_items(ids), np.float32).reshape(len(ids), self.meta["dim"])
            self._allowed = (allowed, ids, items)
        _, ids, items = self._allowed
        k = min(k, len(ids))
        if self.metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            distances = 1.0 - (vectors / np.maximum(norms, 1e-30)) @ items.T
        else:
            distances = (vectors * vectors).sum(1)[:, None] - 2 * vectors @ items.T + (items * items).sum(1)[None]
        if k <= 0:
            return np.zeros((len(vectors), 0), np.int64), np.zeros((len(vectors), 0), np.float32)
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(distances, nearest, 1).argsort(axis=1, kind="stable")
        nearest = np.take_along_axis(nearest, order, 1)
        return ids[nearest], np.take_along_axis(distances, nearest, 1).astype(np.float32)


def space(metric: str) -> str:
    return {"cosine": "cosine", "l2": "l2"}[metric]


def new_index(metric: str, dim: int, max_elements: int) -> hnswlib.Index:
    index = hnswlib.Index(space=space(metric), dim=dim)
    # ef_construction 100, not 200: 0.58x the build time at the same recall@10 (measured on 50,000 random
    # cosine vectors, searched at ef 64: 4-d 6.4 s → 3.7 s, recall 1.000 both; 32-d 13.3 s → 7.8 s, 0.888 → 0.883)
    index.init_index(max_elements=max(1, max_elements), ef_construction=100, M=16, random_seed=0)
    return index


def build(vectors: np.ndarray, clip_ids: np.ndarray, metric: str, threads: int = 0) -> hnswlib.Index:
    index = new_index(metric, vectors.shape[1], len(vectors))
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


def _embed_rows(store: LibraryStore, embedder: Embedder, feature_set: str, after: int = 0):
    """(clip ids, embeddings) of the clips with ids above `after`, streamed from SQLite in batches: a
    million clips' features are never all in memory. NaN or infinite embeddings are left out (hnswlib
    would hand them out as matches), one line each."""
    for ids, rows in store.iter_features(feature_set, after=after):
        if not len(ids):
            continue
        vectors = embedder.visual(rows)
        good = np.isfinite(vectors).all(axis=1)
        for clip_id in ids[~good].tolist():
            warn_once(f"{store.root}: clip {store.clip_uid(clip_id)}: its embedding is NaN or infinite: not indexed")
        yield ids[good], vectors[good]


def _extend(index: ClipIndex, store: LibraryStore, embedder: Embedder, feature_set: str) -> int:
    """Add the clips added since the index was built (ids above its `clips_upto`): hnswlib's add_items
    on the loaded graph, grown with resize_index. Returns how many were added."""
    added = 0
    for ids, vectors in _embed_rows(store, embedder, feature_set, after=index.meta["clips_upto"]):
        needed = index.index.get_current_count() + len(ids)
        if needed > index.index.get_max_elements():
            index.index.resize_index(max(needed, int(index.index.get_max_elements() * 1.25)))
        index.index.add_items(vectors, ids)
        added += len(ids)
    return added


def open_index(
    library: str | os.PathLike, model: str | os.PathLike, force: bool = False, must_save: bool = False
) -> tuple[ClipIndex, bool]:
    """The index of `library` under `model` and whether it was (re)built now. A stale or damaged
    index is rebuilt, or extended where only clips were added since (`library add`: the clips with
    higher ids); where the library cannot be written (a read-only stick) the new one is used from
    memory and a line says so, unless `must_save` (`library embed`)."""
    folder = resolve(model)
    card = load_card(folder)
    model_name = folder.name
    feature_set = card["visual"]["feature_set"]
    expect = {"model_fingerprint": fingerprint(folder)}
    started = time.monotonic()
    with LibraryStore(library, readonly=True) as store:
        check_feature_sets(card, store.feature_sets(), str(library), modalities=("visual",))
        expect["library_state"] = store.state()
        index_folder = paths(library, model_name)[0].parent
        if index_folder.is_dir():
            _remove_stale_parts(index_folder)
        meta = read_meta(library, model_name)
        fits = not force and meta is not None and meta.get("model_fingerprint") == expect["model_fingerprint"]
        if fits and meta.get("library_state") == expect["library_state"]:
            try:
                index = load(library, model_name, expect)
                log.debug("%s: index for %s is up to date (%d clips)", library, model_name, meta["count"])
                return index, False
            except IndexMismatch as exc:
                log.warning("%s: rebuilding it", exc)
        embedder = Embedder(folder)
        index = None
        upto = store.max_clip_id()
        if fits and "clips_upto" in meta and store.state(upto=meta["clips_upto"]) == meta["library_state"]:
            try:  # only clips were added since: extend it
                index = load(library, model_name, {"model_fingerprint": expect["model_fingerprint"]})
                added = _extend(index, store, embedder, feature_set)
                log.debug("%s: %d clips added to the index for %s", library, added, model_name)
            except IndexMismatch as exc:
                log.warning("%s: rebuilding it", exc)
                index = None
        if index is None:
            if not store.max_clip_id():
                raise LibraryError(f"{library}: the library has no clips to index")
            hnsw = None
            for ids, vectors in _embed_rows(store, embedder, feature_set):
                if hnsw is None:
                    hnsw = new_index(card["metric"], vectors.shape[1], store.clip_count())
                hnsw.add_items(vectors, ids)
            if hnsw is None or not hnsw.get_current_count():
                raise LibraryError(f"{library}: no clip has usable {feature_set} features to index")
            index = ClipIndex(hnsw, {})
    count = index.index.get_current_count()
    index.meta = {
        **expect,
        "model": model_name,
        "metric": card["metric"],
        "dim": int(index.index.dim),
        "count": int(count),
        "clips_upto": upto,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.monotonic() - started, 3),
    }
    try:
        save(index.index, index.meta, library, model_name)
    except OSError as exc:
        if must_save:
            raise LibraryError(f"{library}: cannot write the index ({exc.strerror or exc})") from None
        log.warning("%s: cannot save the index (%s): using it from memory", library, exc.strerror or exc)
    log.debug("%s: indexed %d clips under %s in %.2f s", library, count, model_name, index.meta["seconds"])
    return index, True


def update_saved_indexes(library: str | os.PathLike) -> None:
    """After `library add`: each saved index of a model found here is extended with the new clips (or
    rebuilt where it must be), so the next show starts at once. A model not found is left to its next use."""
    folder = Path(library) / INDEX_DIR
    for sidecar in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            model = resolve(sidecar.stem)
            if fingerprint(model) != (read_meta(library, sidecar.stem) or {}).get("model_fingerprint"):
                continue  # another model now goes by that name: rebuilt when it is used
            index, changed = open_index(library, model)
        except LivejppError as exc:
            log.debug("%s: index %s not updated (%s)", library, sidecar.stem, exc)
            continue
        if changed:
            log.info("%s: index for %s updated: %d clips", library, sidecar.stem, index.meta["count"])


def embed_library(library: str | os.PathLike, model: str | os.PathLike, force: bool = False) -> tuple[dict, bool]:
    """Build (or confirm) the saved index of `library` under `model`: its metadata, and whether it was rebuilt."""
    index, rebuilt = open_index(library, model, force, must_save=True)
    return index.meta, rebuilt
