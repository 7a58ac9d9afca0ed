"""The library manifest: one SQLite file beside the playback clips.

Every change is one transaction, so a build killed at any point leaves the manifest as it was
after the last finished clip. Feature arrays are stored as raw float32 bytes with their shape
in the row (never pickled), and read back with numpy.frombuffer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from livejpp.errors import LivejppError
from livejpp.features import FeatureSet
from livejpp.fingerprint.landmarks import FINGERPRINT_VERSION, Landmarks
from livejpp.fingerprint.store import MemoryHashStore

log = logging.getLogger("livejpp.library")

SCHEMA_VERSION = 2  # 2: clips.playback_start (clips that play a span of one copied source file)
READABLE_VERSIONS = (1, 2)  # a version-1 library reads as is and gains the column when opened to write
MANIFEST = "library.sqlite"
CLIPS_DIR = "clips"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY,
    content_hash TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    duration REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    fps REAL NOT NULL,
    rotation INTEGER NOT NULL,
    codec TEXT NOT NULL,
    audio_codec TEXT,
    status TEXT NOT NULL CHECK (status IN ('partial', 'done')),
    tail_dropped REAL NOT NULL DEFAULT 0,
    note TEXT,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    playback TEXT,
    playback_start REAL,  -- where the clip starts in its playback file (NULL: 0, a file per clip)
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    fps REAL NOT NULL,
    frames INTEGER NOT NULL,
    audio TEXT NOT NULL CHECK (audio IN ('ok', 'silent', 'absent')),
    audio_level REAL,
    UNIQUE (video_id, idx)
);
CREATE TABLE IF NOT EXISTS feature_sets (
    name TEXT PRIMARY KEY,
    modality TEXT NOT NULL CHECK (modality IN ('audio', 'visual')),
    dim INTEGER NOT NULL,
    version TEXT NOT NULL,
    names TEXT NOT NULL,
    mean BLOB,
    std BLOB,
    count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS features (
    clip_id INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    feature_set TEXT NOT NULL REFERENCES feature_sets(name),
    seconds INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (clip_id, feature_set)
);
CREATE TABLE IF NOT EXISTS fingerprints (
    video_id INTEGER PRIMARY KEY REFERENCES videos(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    seconds REAL NOT NULL,
    count INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    frames BLOB NOT NULL,
    note TEXT
);
CREATE TABLE IF NOT EXISTS skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS build_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    level TEXT NOT NULL,
    path TEXT,
    message TEXT NOT NULL
);
"""


class LibraryError(LivejppError):
    """A library that cannot be opened or used as asked."""


class UnsafePath(LibraryError):
    """A clip whose file the manifest places outside the library, or as a URL: never opened."""


UID_HASH_DIGITS = 12  # a clip uid names its video by this many digits of its content hash


@dataclass(frozen=True)
class ClipRecord:
    """A clip as stored: enough to play it and to find its features."""

    id: int
    video_id: int
    video_hash: str
    source: str
    index: int
    start: float
    end: float
    playback: str | None
    audio: str
    playback_start: float = 0.0  # where the clip starts in `playback` (a copied source plays for all its clips)

    def pictures(self, library: str | os.PathLike) -> tuple[str, float, float]:
        """(file, where the clip starts in it, length): its playback clip, or its span of the source.

        A library is shared data, and FFmpeg opens URLs and protocols (`http://`, `concat:`): the
        one place that says where a clip's pictures are is also the one that refuses a playback
        file outside the library folder, and a source that is not an existing local file."""
        length = self.end - self.start
        if self.playback:
            path = inside_library(library, self.playback)
            if path is None:
                raise UnsafePath(f"clip {self.uid}: playback file {self.playback!r} is outside the library: refused")
            return str(path), self.playback_start or 0.0, length
        if "://" in self.source or not os.path.isabs(self.source):
            raise UnsafePath(f"clip {self.uid}: source {self.source!r} is not a local file path: refused")
        if not os.path.isfile(self.source):  # missing, or a device or pipe that would block a reader
            raise UnsafePath(f"clip {self.uid}: source {self.source!r} is not an existing file: refused")
        return self.source, self.start, length

    @property
    def uid(self) -> str:
        """A stable clip name across rebuilds: video content hash and clip number."""
        return f"{self.video_hash[:UID_HASH_DIGITS]}-{self.index:04d}"


def inside_library(library: str | os.PathLike, relative: str) -> Path | None:
    """Where a playback file named in the manifest lies, links followed; None if that is outside the
    library folder (`../`, an absolute path, a link out) or a URL."""
    root = Path(library).resolve()
    path = (root / relative).resolve()
    return path if "://" not in relative and path.is_relative_to(root) else None


_warned: set[str] = set()  # one line per problem per process, however often a library is opened


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def finite_rows(rows: np.ndarray, what: str) -> np.ndarray:
    """Features as stored: NaN or infinite values (an extractor that divided by zero) become 0 with
    one line naming the clip, so the clip is kept and no index or model is poisoned by it."""
    rows = np.asarray(rows, np.float32)
    bad = ~np.isfinite(rows)
    if bad.any():
        log.warning("%s: %d NaN or infinite feature values set to 0", what, int(bad.sum()))
        rows = np.where(bad, np.float32(0), rows)
    return rows


def _damaged(method: Callable) -> Callable:
    """SQLite's "database disk image is malformed" (or "file is not a database") as one line that
    says how to recover, instead of a traceback in every command."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise
            raise LibraryError(
                f"{self.root / MANIFEST}: the manifest is damaged ({exc}); rebuild the library from the same "
                f"sources into a new folder: livejpp library build SOURCES --out NEW_LIBRARY"
            ) from None

    return wrapper


def _open_readonly(path: Path, threads: bool = False) -> sqlite3.Connection:
    """Read without writing a byte. A WAL library in a folder we may not write (a locked stick, a
    read-only share) cannot get its shared-memory file: read it as immutable then. `threads`: used from
    several threads (the caller serialises them)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=not threads)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as exc:
        db.close()
        log.debug("%s: read-only open failed (%s): reading it as immutable", path, exc)
    return sqlite3.connect(
        uri + "&immutable=1", uri=True, timeout=30, isolation_level=None, check_same_thread=not threads
    )


class LibraryStore:
    """Read and write one library folder's manifest; `readonly` for the commands that only read
    (info, query, render, live, eval), which then also work on a write-protected library."""

    @_damaged
    def __init__(self, root: str | os.PathLike, create: bool = False, readonly: bool = False):
        self.root = Path(root)
        self.readonly = readonly
        path = self.root / MANIFEST
        if not path.exists():
            if not create:
                raise LibraryError(f"{self.root}: not a livejpp library (no {MANIFEST})")
            self.root.mkdir(parents=True, exist_ok=True)
        if readonly:
            self.db = _open_readonly(path)
            version = self.get_meta("schema_version")
            if version is None:
                raise LibraryError(f"{path}: manifest has no schema version")
            _check_version(path, version)
            self.record_sql = _record_sql(self._has_column("clips", "playback_start"))
            return
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # what a killed run left in the WAL
        except sqlite3.OperationalError as exc:
            self.db.close()
            if "readonly" not in str(exc) and "read-only" not in str(exc):
                raise
            raise LibraryError(f"{self.root}: the library is read-only ({exc}); this command writes to it") from None
        if create:
            self.db.executescript(_SCHEMA)  # idempotent DDL; executescript commits on its own
        with self.transaction():
            version = self.get_meta("schema_version")
            if version is None:
                if not create:
                    raise LibraryError(f"{path}: manifest has no schema version")
                self.set_meta("schema_version", str(SCHEMA_VERSION))
                self.set_meta("created_at", str(time.time()))
            elif _check_version(path, version) < SCHEMA_VERSION:
                if not self._has_column("clips", "playback_start"):
                    self.db.execute("ALTER TABLE clips ADD COLUMN playback_start REAL")
                self.set_meta("schema_version", str(SCHEMA_VERSION))
        if not self._has_table("fingerprints"):  # a library made before the table existed gains it (idempotent DDL)
            self.db.executescript(_SCHEMA)
        self.record_sql = _record_sql(True)

    def close(self) -> None:
        """Close, moving what the WAL holds into the manifest: a library copied without its
        `-wal` file (or after a killed build) then loses nothing."""
        if not self.readonly:
            try:
                self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits for a reader
            except sqlite3.DatabaseError as exc:  # busy with a reader, or damaged: the WAL is kept
                log.debug("%s: no checkpoint on close (%s)", self.root, exc)
        self.db.close()

    def __enter__(self) -> LibraryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _has_column(self, table: str, column: str) -> bool:
        return any(row[1] == column for row in self.db.execute(f"PRAGMA table_info({table})"))

    def _has_table(self, name: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
            is not None
        )

    # --- settings -------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @_damaged
    def settings(self) -> dict:
        raw = self.get_meta("settings")
        return json.loads(raw) if raw else {}

    # --- feature sets ---------------------------------------------------------------------
    def register_feature_set(self, fs: FeatureSet) -> None:
        row = self.db.execute("SELECT dim, version FROM feature_sets WHERE name = ?", (fs.name,)).fetchone()
        if row is None:
            self.db.execute(
                "INSERT INTO feature_sets (name, modality, dim, version, names) VALUES (?, ?, ?, ?, ?)",
                (fs.name, fs.modality, fs.dim, fs.version, json.dumps(fs.names)),
            )
        elif (row[0], row[1]) != (fs.dim, fs.version):
            raise LibraryError(
                f"{self.root}: feature set {fs.name} is version {row[1]} ({row[0]}-d) here, "
                f"this livejpp computes version {fs.version} ({fs.dim}-d); rebuild the library"
            )

    @_damaged
    def feature_sets(self) -> dict[str, FeatureSet]:
        rows = self.db.execute("SELECT name, modality, dim, version, names FROM feature_sets ORDER BY name")
        return {r[0]: FeatureSet(r[0], r[1], r[2], r[3], tuple(json.loads(r[4]))) for r in rows}

    @_damaged
    def normalisation(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        row = self.db.execute("SELECT dim, mean, std FROM feature_sets WHERE name = ?", (name,)).fetchone()
        if row is None or row[1] is None:
            return None
        return np.frombuffer(row[1], np.float32).copy(), np.frombuffer(row[2], np.float32).copy()

    @_damaged
    def update_normalisation(self) -> None:
        """Mean and standard deviation per dimension over every stored second (one transaction)."""
        with self.transaction():
            for name, fs in self.feature_sets().items():
                total = np.zeros(fs.dim, np.float64)
                total_sq = np.zeros(fs.dim, np.float64)
                count = 0
                for rows in self.features(name).values():
                    x = rows.astype(np.float64)
                    total += x.sum(axis=0)
                    total_sq += (x * x).sum(axis=0)
                    count += len(x)
                if count == 0:
                    mean, std = None, None
                else:
                    m = total / count
                    s = np.sqrt(np.maximum(total_sq / count - m * m, 0.0))
                    s[s < 1e-6] = 1.0
                    mean, std = m.astype(np.float32).tobytes(), s.astype(np.float32).tobytes()
                self.db.execute(
                    "UPDATE feature_sets SET mean = ?, std = ?, count = ? WHERE name = ?",
                    (mean, std, count, name),
                )

    # --- videos and clips -----------------------------------------------------------------
    @_damaged
    def video_by_hash(self, content_hash: str) -> sqlite3.Row | None:
        cur = self.db.execute("SELECT * FROM videos WHERE content_hash = ?", (content_hash,))
        cur.row_factory = sqlite3.Row
        return cur.fetchone()

    @_damaged
    def done_clip_indices(self, video_id: int) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT idx FROM clips WHERE video_id = ?", (video_id,))}

    @_damaged
    def clip_files(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT playback FROM clips WHERE playback IS NOT NULL")}

    @_damaged
    def all_clips(self) -> list[ClipRecord]:
        """Every clip row, its file paths unchecked (`library info --check` reports them all)."""
        rows = self.db.execute(self.record_sql + " ORDER BY c.video_id, c.idx")
        return [ClipRecord(*r) for r in rows]

    def clips(self) -> list[ClipRecord]:
        """The clips whose pictures may be opened: one line for each that is refused (see pictures)."""
        kept = []
        for record in self.all_clips():
            try:
                record.pictures(self.root)
            except UnsafePath as exc:
                warn_once(f"{self.root}: {exc}")
                continue
            kept.append(record)
        return kept

    @_damaged
    def refused_clip_ids(self) -> set[int]:
        """The clips `clips()` leaves out, found without reading every record or touching the disk per
        clip: SQL picks the suspects (a playback path that is absolute, climbs with `..` or is a URL; a
        source-played clip), `ClipRecord.pictures` judges each (one line per refused clip)."""
        rows = self.db.execute(
            self.record_sql + " WHERE c.playback IS NULL OR c.playback LIKE '/%' OR c.playback LIKE '%..%' "
            "OR c.playback LIKE '%://%'"
        )
        refused, sources_ok = set(), set()  # a source plays for all its clips: checked once per video
        for row in rows:
            record = ClipRecord(*row)
            if record.playback is None and record.video_id in sources_ok:
                continue
            try:
                record.pictures(self.root)
            except UnsafePath as exc:
                warn_once(f"{self.root}: {exc}")
                refused.add(record.id)
            else:
                if record.playback is None:
                    sources_ok.add(record.video_id)
        return refused

    @_damaged
    def clip_table(self) -> ClipTable:
        """The clips that may play (as `clips()`), read lazily: ids and video ids now, records when asked."""
        ids = np.fromiter((r[0] for r in self.db.execute("SELECT id FROM clips")), np.int64)
        video_ids = np.fromiter((r[0] for r in self.db.execute("SELECT video_id FROM clips")), np.int64)
        refused = self.refused_clip_ids()
        if refused:
            keep = ~np.isin(ids, np.fromiter(refused, np.int64, len(refused)))
            ids, video_ids = ids[keep], video_ids[keep]
        return ClipTable(self.root, ids, video_ids, self.record_sql)

    @_damaged
    def clip_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM clips").fetchone()[0])

    @_damaged
    def max_clip_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM clips").fetchone()[0])

    @_damaged
    def video_paths(self) -> dict[int, str]:
        """Every video's source path by id (one row per video, not per clip)."""
        return dict(self.db.execute("SELECT id, path FROM videos"))

    @_damaged
    def video_codecs(self) -> set[str]:
        """The codecs of the sources' videos (a show prepares for the ones it will play as blocks)."""
        return {row[0] for row in self.db.execute("SELECT DISTINCT codec FROM videos")}

    @_damaged
    def video_hashes(self) -> dict[int, str]:
        """Every video's content hash by id (a clip uid names its video by the hash's first digits)."""
        return dict(self.db.execute("SELECT id, content_hash FROM videos"))

    @_damaged
    def iter_features(
        self, name: str, batch: int = 4096, after: int = 0
    ) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """(clip ids, their [seconds, dim] rows) in batches: a million clips' features never all in
        memory at once. Rows of the wrong size or with NaN or infinite values are left out as in `features`."""
        fs = self.feature_sets().get(name)
        if fs is None:
            raise LibraryError(f"{self.root}: no feature set named {name}")
        rows = self.db.execute(
            "SELECT clip_id, seconds, data FROM features WHERE feature_set = ? AND clip_id > ? ORDER BY clip_id",
            (name, after),
        )
        while chunk := rows.fetchmany(batch):
            ids, arrays = [], []
            for clip_id, seconds, blob in chunk:
                if not isinstance(blob, bytes) or seconds < 1 or len(blob) != seconds * fs.dim * 4:
                    size = len(blob) if isinstance(blob, bytes) else 0
                    self._bad_feature_row(name, clip_id, f"are {size} bytes, not {seconds} × {fs.dim} float32")
                    continue
                x = np.frombuffer(blob, np.float32).reshape(seconds, fs.dim)
                if not np.isfinite(x).all():
                    self._bad_feature_row(name, clip_id, "have NaN or infinite values")
                    continue
                ids.append(clip_id)
                arrays.append(x)
            yield np.asarray(ids, np.int64), arrays

    def _bad_feature_row(self, name: str, clip_id: int, problem: str) -> None:
        warn_once(f"{self.root}: clip {self.clip_uid(clip_id)}: {name} features {problem}: clip skipped")

    def clip_uid(self, clip_id: int) -> str:
        """A clip's stable name (ClipRecord.uid) from its id alone."""
        row = self.db.execute(
            "SELECT v.content_hash, c.idx FROM clips c JOIN videos v ON v.id = c.video_id WHERE c.id = ?", (clip_id,)
        ).fetchone()
        return f"{row[0][:12]}-{row[1]:04d}" if row else f"#{clip_id}"

    @_damaged
    def features(self, name: str, clip_ids: list[int] | None = None) -> dict[int, np.ndarray]:
        """Per-second features [seconds, dim] for each clip that has them. A row of the wrong size or
        with NaN or infinite values (a damaged or hand-edited library) is left out with one line: one
        such row would otherwise crash every command, or poison an index or a model."""
        fs = self.feature_sets().get(name)
        if fs is None:
            raise LibraryError(f"{self.root}: no feature set named {name}")
        rows = self.db.execute(
            "SELECT f.clip_id, f.seconds, f.data, v.content_hash, c.idx FROM features f "
            "JOIN clips c ON c.id = f.clip_id JOIN videos v ON v.id = c.video_id WHERE f.feature_set = ?",
            (name,),
        )
        wanted = set(clip_ids) if clip_ids is not None else None
        found = {}
        for clip_id, seconds, blob, video_hash, index in rows:
            if wanted is not None and clip_id not in wanted:
                continue
            uid = f"{video_hash[:12]}-{index:04d}"
            if not isinstance(blob, bytes) or seconds < 1 or len(blob) != seconds * fs.dim * 4:
                size = len(blob) if isinstance(blob, bytes) else 0
                warn_once(
                    f"{self.root}: clip {uid}: {name} features are {size} bytes, not {seconds} × {fs.dim} "
                    f"float32: clip skipped"
                )
                continue
            x = np.frombuffer(blob, np.float32).reshape(seconds, fs.dim)
            if not np.isfinite(x).all():
                warn_once(f"{self.root}: clip {uid}: {name} features have NaN or infinite values: clip skipped")
                continue
            found[clip_id] = x
        return found

    @_damaged
    def state(self, upto: int | None = None) -> str:
        """Changes whenever a clip or a feature set is added or removed: derived indexes go stale.
        `upto`: the state of the clips with ids up to it only (an index built then can be extended)."""
        h = hashlib.blake2b(digest_size=8)
        where = "" if upto is None else f" WHERE id <= {int(upto)}"
        # one pass in SQLite, not a million rows through Python (2 s of a 1M library's start-up): the count,
        # the newest id and a sum of per-row mixes change when a clip is added, removed or renumbered
        mix = "(id * 2654435761 + video_id * 40503 + idx * 9973) % 4294967296"
        mixed = f"SELECT count(*), max(id), sum({mix}) FROM clips{where}"
        h.update(repr(tuple(self.db.execute(mixed).fetchone())).encode())
        for row in self.db.execute("SELECT name, version, dim FROM feature_sets ORDER BY name"):
            h.update(repr(row).encode())
        return h.hexdigest()

    # --- fingerprints (known-track sync) --------------------------------------------------------
    # One row per video: its landmark hashes and anchor frames as raw little-endian uint32 blobs, so a video
    # has its fingerprint or not (a killed build resumes trivially) and an hour of audio is ~2.6 MB, not
    # 326k SQLite rows. A library built before the table existed (read-only: no table) has none.
    @_damaged
    def fingerprinted_video_ids(self) -> set[int]:
        """Videos with a fingerprint row of this livejpp's version (silent soundtracks included: not retried)."""
        if not self._has_table("fingerprints"):
            return set()
        rows = self.db.execute("SELECT video_id FROM fingerprints WHERE version = ?", (FINGERPRINT_VERSION,))
        return {r[0] for r in rows}

    def save_fingerprint(self, video_id: int, landmarks: Landmarks, seconds: float, note: str | None = None) -> None:
        """Store one video's landmarks (replacing an older version's), in one transaction."""
        frames = np.rint(np.asarray(landmarks.t, np.float64)).astype("<u4")
        order = np.argsort(frames, kind="stable")
        hashes = np.asarray(landmarks.hashes).astype("<u4")[order]
        row = (
            video_id,
            FINGERPRINT_VERSION,
            float(seconds),
            len(hashes),
            hashes.tobytes(),
            frames[order].tobytes(),
            note,
        )
        sql = (
            "INSERT OR REPLACE INTO fingerprints (video_id, version, seconds, count, hashes, frames, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        if self.db.in_transaction:
            self.db.execute(sql, row)
        else:
            with self.transaction() as db:
                db.execute(sql, row)

    @_damaged
    def load_fingerprints(self, videos: set[int] | None = None) -> MemoryHashStore | None:
        """Every finished video's hashes (only `videos`, if given) in one store sorted by hash; None when no
        video has any. A row of the wrong size (a damaged or hand-edited library) is left out with one line."""
        if not self._has_table("fingerprints"):
            return None
        rows = self.db.execute(
            "SELECT f.video_id, f.version, f.count, f.hashes, f.frames, v.path FROM fingerprints f "
            "JOIN videos v ON v.id = f.video_id WHERE v.status = 'done' AND f.count > 0 ORDER BY f.video_id"
        )
        hashes, ids, frames, stale = [], [], [], 0
        for video_id, version, count, hash_blob, frame_blob, path in rows:
            if videos is not None and video_id not in videos:
                continue
            if version != FINGERPRINT_VERSION:
                stale += 1
                continue
            if not (isinstance(hash_blob, bytes) and isinstance(frame_blob, bytes)) or not (
                len(hash_blob) == len(frame_blob) == 4 * count
            ):
                warn_once(f"{self.root}: {path}: fingerprint row is not {count} hashes and frames: left out")
                continue
            hashes.append(np.frombuffer(hash_blob, "<u4"))
            frames.append(np.frombuffer(frame_blob, "<u4"))
            ids.append(np.full(count, video_id, np.uint32))
        if stale:
            warn_once(
                f"{self.root}: {stale} videos have fingerprints of another livejpp version: not used for sync "
                f"(`livejpp library add {self.root} THEIR_FILES` makes them again)"
            )
        if not hashes:
            return None
        all_hashes = np.concatenate(hashes)
        order = np.argsort(all_hashes, kind="stable")
        return MemoryHashStore.from_sorted(
            all_hashes[order].astype(np.uint32),
            np.concatenate(ids)[order],
            np.concatenate(frames)[order].astype(np.uint32),
        )

    def log(self, level: str, message: str, path: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO build_log (at, level, path, message) VALUES (?, ?, ?, ?)", (time.time(), level, path, message)
        )

    @_damaged
    def recent_log(self, n: int) -> list[dict]:
        rows = self.db.execute(
            "SELECT at, level, path, message FROM build_log ORDER BY id DESC LIMIT ?", (n,)
        ).fetchall()
        return [
            {"at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)), "level": level, "path": path, "message": m}
            for at, level, path, m in reversed(rows)
        ]

    def record_skip(self, path: str, reason: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO skipped (path, reason, at) VALUES (?, ?, ?)", (path, reason, time.time())
        )

    def clear_skip(self, path: str) -> None:
        self.db.execute("DELETE FROM skipped WHERE path = ?", (path,))

    @_damaged
    def summary(self) -> dict:
        """What `library info` prints and a build ends with."""
        q = self.db.execute
        videos, partial = q("SELECT COUNT(*), COALESCE(SUM(status = 'partial'), 0) FROM videos").fetchone()
        clips, footage = q("SELECT COUNT(*), COALESCE(SUM(end - start), 0) FROM clips").fetchone()
        audio = dict(q("SELECT audio, COUNT(*) FROM clips GROUP BY audio").fetchall())
        tails = q("SELECT COUNT(*) FROM videos WHERE tail_dropped > 0").fetchone()[0]
        skipped = q("SELECT path, reason FROM skipped ORDER BY path").fetchall()
        fingerprints = {"done": 0, "silent": 0}
        if self._has_table("fingerprints"):
            fingerprints = dict(
                zip(
                    ("done", "silent"),
                    q(
                        "SELECT COALESCE(SUM(count > 0), 0), COALESCE(SUM(count = 0), 0) FROM fingerprints "
                        "WHERE version = ?",
                        (FINGERPRINT_VERSION,),
                    ).fetchone(),
                    strict=True,
                )
            )
        with_sound = q("SELECT COUNT(*) FROM videos WHERE audio_codec IS NOT NULL").fetchone()[0]
        sets = {
            name: {"modality": fs.modality, "dim": fs.dim, "version": fs.version}
            for name, fs in self.feature_sets().items()
        }
        return {
            "library": str(self.root),
            "schema_version": SCHEMA_VERSION,
            "settings": self.settings(),
            "videos": videos,
            "videos_unfinished": partial,
            "clips": clips,
            "footage_hours": footage / 3600.0,
            "clips_with_music": audio.get("ok", 0),
            "clips_silent": audio.get("silent", 0),
            "clips_without_audio": audio.get("absent", 0),
            "tails_dropped": tails,
            "videos_fingerprinted": fingerprints["done"],
            "videos_soundtrack_silent": fingerprints["silent"],
            "videos_without_audio": videos - with_sound,
            "feature_sets": sets,
            "skipped": [{"path": p, "reason": r} for p, r in skipped],
            "disk_bytes": disk_usage(self.root),
        }


def disk_usage(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def source_matches(source: str, video: str = "", tag: str = "") -> bool:
    """Whether a source file's name contains `video` and one of its folders is named `tag` (both
    case-insensitive; VJs sort loops into folders: abstract/, city/, faces/)."""
    path = Path(source)
    if video and video.lower() not in path.name.lower():
        return False
    return not tag or tag.lower() in (part.lower() for part in path.parent.parts)


def _check_version(path: Path, version: str) -> int:
    if int(version) not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise LibraryError(f"{path}: schema version {version}, this livejpp reads {readable}")
    return int(version)


def _record_sql(has_playback_start: bool) -> str:
    """What a ClipRecord is read from; a version-1 library opened read-only has no playback_start (all 0)."""
    start = "COALESCE(c.playback_start, 0)" if has_playback_start else "0"
    return (
        f"SELECT c.id, c.video_id, v.content_hash, v.path, c.idx, c.start, c.end, c.playback, c.audio, {start} "
        "FROM clips c JOIN videos v ON v.id = c.video_id"
    )


class ClipTable(Mapping):
    """The clips that may play, as a read-only mapping id → ClipRecord that reads a record from SQLite
    only when asked: a million-clip library starts in seconds and holds two int64 arrays, not a
    million Python objects. Records asked for are kept (the show asks for a few hundred; a record is
    the same object each time it is asked for). Which clips may play is decided from the manifest's
    text at start-up (see `LibraryStore.refused_clip_ids`); `ClipRecord.pictures` checks each again,
    links followed, when it is opened."""

    def __init__(self, root: Path, ids: np.ndarray, video_ids: np.ndarray, record_sql: str):
        self.root = root
        self.record_sql = record_sql
        order = np.argsort(ids, kind="stable")
        self.ids, self.video_ids = ids[order], video_ids[order]
        self._cache: dict[int, ClipRecord] = {}
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __contains__(self, clip_id: object) -> bool:
        if not isinstance(clip_id, (int, np.integer)):
            return False
        i = int(np.searchsorted(self.ids, clip_id))
        return i < len(self.ids) and int(self.ids[i]) == clip_id

    def __getitem__(self, clip_id: int) -> ClipRecord:
        record = self._cache.get(clip_id)
        if record is not None:
            return record
        if clip_id not in self:
            raise KeyError(clip_id)
        with self._lock:  # the live show asks from its decoder and render threads
            if self._db is None:
                self._db = _open_readonly(self.root / MANIFEST, threads=True)
                self._db.execute("PRAGMA query_only = ON")
            row = self._db.execute(self.record_sql + " WHERE c.id = ?", (int(clip_id),)).fetchone()
        if row is None:  # removed since start-up (a build running beside the show)
            raise KeyError(clip_id)
        return self._cache.setdefault(int(clip_id), ClipRecord(*row))

    def values(self) -> Iterator[ClipRecord]:  # type: ignore[override]
        """Every record, streamed in id order (render's whole-library passes); not kept."""
        db = _open_readonly(self.root / MANIFEST)
        try:
            for row in db.execute(self.record_sql + " ORDER BY c.id"):
                if row[0] in self:
                    yield self._cache.get(row[0]) or ClipRecord(*row)
        finally:
            db.close()

    def items(self) -> Iterator[tuple[int, ClipRecord]]:  # type: ignore[override]
        return ((r.id, r) for r in self.values())

    def of_video(self, video_id: int) -> list[ClipRecord]:
        """A video's clips in time order (a sync lock plays them back to back): read as any record is."""
        return sorted((self[int(c)] for c in self.ids[self.video_ids == video_id]), key=lambda r: r.start)

    def video_of(self, clip_id: int) -> int:
        return int(self.video_ids[np.searchsorted(self.ids, clip_id)])

    def matching(self, videos: dict[int, str], video: str = "", tag: str = "") -> set[int]:
        """The clips of the videos (id → source path) whose source matches (`source_matches`)."""
        wanted = [vid for vid, source in videos.items() if source_matches(source, video, tag)]
        return set(self.ids[np.isin(self.video_ids, wanted)].tolist())

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
