"""`tools/bench.py scale --part index`: a library of N synthetic clips (feature rows, no video) and what a
million clips cost: `library embed`, the index's size, the engine's start-up and memory, the hop's search
with and without a forced video or tag, recall@10 against brute force, `library info`.

Today's path (every clip record loaded at start-up, every clip's features in memory for the index, the
forced search through hnswlib's Python filter) and the new one are measured side by side in one run; each
measurement runs in a fresh process, so resident memory is that path's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLIP_SECONDS = 10  # the build's default clip length: 10 feature rows per clip and feature set
CLIPS_PER_VIDEO = 24  # a 4-minute music video
TAGS = ("abstract", "city", "faces", "nature", "dance", "retro", "space", "crowd")


def make_library(folder: Path, clips: int, seed: int = 0, first: int = 1) -> Path:
    """A real library (the build's schema and feature sets) with `clips` clips of synthetic features
    (ids from `first`: call again to add clips, as `library add` does), written in large transactions.
    Playback paths name files that are not there: nothing here plays."""
    from livejpp.features.sets import HAND_AUDIO, HAND_VISUAL
    from livejpp.library.store import LibraryStore

    folder.mkdir(parents=True, exist_ok=True)
    with LibraryStore(folder, create=True) as store:
        with store.transaction():
            store.register_feature_set(HAND_AUDIO)
            store.register_feature_set(HAND_VISUAL)
            store.set_meta("settings", json.dumps({"clip_seconds": CLIP_SECONDS, "synthetic": True}))
    db = sqlite3.connect(folder / "library.sqlite", isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    rng = np.random.default_rng(seed)
    last = first + clips - 1
    db.execute("BEGIN")
    db.executemany(
        "INSERT OR IGNORE INTO videos (id, content_hash, path, size, duration, width, height, fps, rotation, codec, "
        "audio_codec, status, added_at) VALUES (?, ?, ?, 1, 240, 1280, 720, 25, 0, 'h264', 'aac', 'done', 0)",
        (
            (v, f"{v:016x}{'0' * 48}", f"/archive/{TAGS[v % len(TAGS)]}/video{v:07d}.mp4")
            for v in range((first - 1) // CLIPS_PER_VIDEO + 1, (last - 1) // CLIPS_PER_VIDEO + 2)
        ),
    )
    db.execute("COMMIT")
    batch = 20_000
    visual_rows = rng.standard_normal((256, CLIP_SECONDS, HAND_VISUAL.dim)).astype(np.float32)
    audio_blob = np.zeros((CLIP_SECONDS, HAND_AUDIO.dim), np.float32).tobytes()
    for start in range(first, last + 1, batch):
        ids = range(start, min(start + batch, last + 1))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO clips (id, video_id, idx, start, end, playback, width, height, fps, frames, audio, "
            "audio_level) VALUES (?, ?, ?, ?, ?, ?, 1280, 720, 25, 250, 'ok', -12)",
            (
                (
                    i,
                    (i - 1) // CLIPS_PER_VIDEO + 1,
                    (i - 1) % CLIPS_PER_VIDEO,
                    10.0 * ((i - 1) % CLIPS_PER_VIDEO),
                    10.0 * ((i - 1) % CLIPS_PER_VIDEO) + CLIP_SECONDS,
                    f"clips/{i:08d}.mp4",
                )
                for i in ids
            ),
        )
        # each clip: a random base picture plus a per-clip offset, so the embeddings spread out
        offsets = rng.standard_normal((len(ids), HAND_VISUAL.dim)).astype(np.float32)
        db.executemany(
            "INSERT INTO features (clip_id, feature_set, seconds, data) VALUES (?, ?, ?, ?)",
            (
                (i, HAND_VISUAL.name, CLIP_SECONDS, (visual_rows[i % 256] + offsets[n]).tobytes())
                for n, i in enumerate(ids)
            ),
        )
        db.executemany(
            "INSERT INTO features (clip_id, feature_set, seconds, data) VALUES (?, ?, ?, ?)",
            ((i, HAND_AUDIO.name, CLIP_SECONDS, audio_blob) for i in ids),
        )
        db.execute("COMMIT")
    db.close()
    return folder


# --- today's path, kept here to measure it beside the new one --------------------------------------------
def old_embed(library: Path, model: str) -> None:
    """The index as it was built before: every clip record and every clip's features in memory at once."""
    import hnswlib

    from livejpp import index as clip_index
    from livejpp.library.store import LibraryStore
    from livejpp.model.card import load_card, resolve
    from livejpp.model.embed import Embedder

    folder = resolve(model)
    card = load_card(folder)
    with LibraryStore(library, readonly=True) as store:
        store.state()
        clips = store.clips()
        features = store.features(card["visual"]["feature_set"])
    ids = np.array([c.id for c in clips if c.id in features], np.int64)
    vectors = Embedder(folder).visual([features[i] for i in ids])
    index = hnswlib.Index(space=clip_index.space(card["metric"]), dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=200, M=16, random_seed=0)  # today's setting
    index.add_items(vectors, ids)
    out = library / "old-index.hnsw"
    index.save_index(str(out))


def old_engine_start(library: Path) -> tuple:
    """What start-up did before: every clip record (and each one's path checked) in a dict."""
    from livejpp import index as clip_index
    from livejpp.features.audio import NAMES
    from livejpp.library.store import LibraryStore
    from livejpp.model.card import resolve
    from livejpp.model.embed import Embedder

    embedder = Embedder(resolve("default"))  # the engine's audio tower, as the engine loads it
    embedder.audio([np.zeros((embedder.seconds, len(NAMES)), np.float32)])
    index, _ = clip_index.open_index(library, resolve("default"))
    with LibraryStore(library, readonly=True) as store:
        records = {c.id: c for c in store.clips()}
        store.load_fingerprints({c.video_id for c in records.values()})
    for label in index.index.get_ids_list():
        if label not in records:
            index.index.mark_deleted(label)
    return index, records


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _search_times(query, vectors: np.ndarray, allowed) -> tuple[float, float]:
    times = []
    for v in vectors:
        started = time.perf_counter()
        query(v[None], allowed)
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def measure(library: Path, path: str, hops: int = 200) -> dict:
    """One path's start-up, memory and hop search (run in its own process: `--measure`)."""
    from livejpp.engine.engine import Engine
    from livejpp.engine.live import matching_clips

    out: dict = {}
    rng = np.random.default_rng(1)
    started = time.monotonic()
    if path == "old":
        index, records = old_engine_start(library)
        out["startup_s"] = time.monotonic() - started
        videos = {r.video_id for r in records.values() if f"/{TAGS[0]}/" in r.source}
        tag = {r.id for r in records.values() if r.video_id in videos}
        video = {r.id for r in records.values() if r.video_id == 1}

        def query(v, allowed):  # the filter exactly as before: a Python call per candidate
            k = 20
            index.index.set_ef(64)
            if allowed is None:
                return index.index.knn_query(v, k=k)
            return index.index.knn_query(v, k=k, num_threads=1, filter=lambda label: label in allowed)
    else:
        engine = Engine(library)
        out["startup_s"] = time.monotonic() - started
        engine.warm_up()
        index = engine.index
        tag, video = matching_clips(engine, tag=TAGS[0]), matching_clips(engine, video="video0000001.mp4")

        def query(v, allowed):
            return index.query(v, 20, allowed)

    out["rss_mb"] = _rss_mb()
    started = time.perf_counter()
    query(rng.standard_normal((1, 4)).astype(np.float32), set(tag))  # a VJ forces a tag: the first search
    out["force_ms"] = (time.perf_counter() - started) * 1e3
    dim = index.meta["dim"] if hasattr(index, "meta") else index.index.dim
    queries = rng.standard_normal((hops, dim)).astype(np.float32)
    query(queries[:1], None)
    out["hop_ms"] = _search_times(query, queries, None)
    query(queries[:1], video)  # the first search of a forced video or tag is `force_ms`
    out["video_ms"] = _search_times(query, queries[: hops // 4], video)
    query(queries[:1], tag)
    out["tag_ms"] = _search_times(query, queries[: max(10, hops // 10)], tag)
    if path == "new":  # recall@10 of the index (unfiltered and forced-tag) against brute force
        hnsw = index.index
        ids = np.asarray(hnsw.get_ids_list(), np.int64)
        items = np.asarray(hnsw.get_items(ids), np.float32)
        q = queries[:100]
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        truth = ids[np.argsort(1 - qn @ items.T, axis=1)[:, :10]]
        found, _ = index.query(q, 10)
        out["recall10"] = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), truth.tolist(), strict=True)])
        )
        allowed_ids = np.fromiter(tag, np.int64)
        allowed_items = np.asarray(hnsw.get_items(allowed_ids), np.float32)
        truth = allowed_ids[np.argsort(1 - qn @ allowed_items.T, axis=1)[:, :10]]
        found, _ = index.query(q, 10, tag)
        out["recall10_tag"] = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), truth.tolist(), strict=True)])
        )
    return out


def _in_process(args: list[str], timeout: float) -> dict:
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, __file__, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout / 60:.0f} min"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.setdefault("wall_s", time.monotonic() - started)
    return result


def _timed(what: str, library: Path, timeout: float) -> dict:
    return _in_process(["--step", what, str(library)], timeout)


def step(what: str, library: Path) -> dict:
    started = time.monotonic()
    if what == "old-embed":
        old_embed(library, "default")
    elif what == "new-embed":
        from livejpp.index import embed_library

        embed_library(library, "default", force=True)
    elif what == "info":
        from livejpp.library.store import LibraryStore

        with LibraryStore(library, readonly=True) as store:
            store.summary()
    elif what in ("old", "new"):
        return measure(library, what)
    return {"seconds": time.monotonic() - started, "rss_mb": _rss_mb()}


def run(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in str(getattr(args, "sizes", "10000,100000")).split(",") if s]
    work = Path(getattr(args, "work", "") or "/tmp/livejpp-scale")
    timeout = float(getattr(args, "timeout", 600))
    rows = []
    for n in sizes:
        library = work / f"lib{n}"
        started = time.monotonic()
        made = None  # kept from an earlier run
        if not (library / "library.sqlite").is_file():
            make_library(library, n)
            made = time.monotonic() - started
        old_embed_r = _timed("old-embed", library, timeout)
        new_embed_r = _timed("new-embed", library, timeout)
        index_file = library / "index" / "default.hnsw"
        info = _timed("info", library, timeout)
        old = _timed("old", library, timeout)
        new = _timed("new", library, timeout)
        rows.append(
            (n, made, old_embed_r, new_embed_r, index_file.stat().st_size if index_file.exists() else 0, info, old, new)
        )
        print(f"# {n} clips measured ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    print(table(rows))
    return 0


def _cell(result: dict, key: str, fmt: str) -> str:
    if "error" in result:
        return result["error"]
    value = result.get(key)
    if value is None:
        return "-"
    return "/".join(fmt.format(v) for v in value) if isinstance(value, list | tuple) else fmt.format(value)


def table(rows) -> str:
    lines = [
        "| clips | synthetic library written | `library embed` today / new | index file | `library info` "
        "| start-up today / new | resident memory today / new | hop p50/p99 ms today / new "
        "| forced video p50/p99 ms today / new | forced tag (1/8) p50/p99 ms today / new "
        "| first search after forcing a tag ms today / new | recall@10 / forced tag |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, made, oe, ne, size, info, old, new in rows:
        written = "kept" if made is None else f"{made:.1f} s"
        lines.append(
            f"| {n:,} | {written} | {_cell(oe, 'seconds', '{:.1f}')} s / {_cell(ne, 'seconds', '{:.1f}')} s "
            f"| {size / 1e6:.0f} MB | {_cell(info, 'seconds', '{:.2f}')} s "
            f"| {_cell(old, 'startup_s', '{:.2f}')} s / {_cell(new, 'startup_s', '{:.2f}')} s "
            f"| {_cell(old, 'rss_mb', '{:.0f}')} MB / {_cell(new, 'rss_mb', '{:.0f}')} MB "
            f"| {_cell(old, 'hop_ms', '{:.2f}')} / {_cell(new, 'hop_ms', '{:.2f}')} "
            f"| {_cell(old, 'video_ms', '{:.2f}')} / {_cell(new, 'video_ms', '{:.2f}')} "
            f"| {_cell(old, 'tag_ms', '{:.2f}')} / {_cell(new, 'tag_ms', '{:.2f}')} "
            f"| {_cell(old, 'force_ms', '{:.1f}')} / {_cell(new, 'force_ms', '{:.1f}')} "
            f"| {_cell(new, 'recall10', '{:.3f}')} / {_cell(new, 'recall10_tag', '{:.3f}')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--step")
    parser.add_argument("library", nargs="?")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--work", default="/tmp/livejpp-scale")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, Path(args.library))))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
