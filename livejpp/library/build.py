"""Building a library: find videos, hand them to workers, commit each finished clip.

The builder is the only writer of the manifest. A clip becomes part of the library in one step:
its `.part` file is renamed into place and its rows are committed in one transaction. On start,
any file the manifest does not name (left by a killed run) is removed, and videos that were cut
off resume from their first missing clip.
"""

from __future__ import annotations

import concurrent.futures as cf
import fcntl
import hashlib
import json
import logging
import multiprocessing as mp
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from livejpp.errors import LivejppError, describe, disk_full
from livejpp.features.sets import feature_sets_for
from livejpp.fingerprint import Landmarks
from livejpp.library.fingerprinting import (
    FingerprintDone,
    FingerprintJob,
    fingerprint_done,
    run_fingerprint_job,
    same_soundtrack,
    silent,
    start_of,
)
from livejpp.library.store import CLIPS_DIR, LibraryError, LibraryStore, finite_rows, inside_library
from livejpp.library.worker import BuildSettings, ClipResult, VideoDone, VideoJob, process_video
from livejpp.media.clips import plan_clips
from livejpp.media.decode import MediaError, VideoInfo, probe
from livejpp.media.remux import copy_name, copy_video, unfit_to_copy
from livejpp.progress import progress_bar
from livejpp.signals import Terminated

log = logging.getLogger("livejpp.library")

# a video longer than this is split into time ranges of about this length, processed in parallel
SPLIT_SECONDS = float(os.environ.get("LIVEJPP_SPLIT_SECONDS", "300"))

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .webm .mkv .avi .mpg .mpeg .m2v .ts .mts .m2ts .wmv .flv .ogv .3gp .dv .mxf .gif".split()
)


@dataclass
class BuildReport:
    """What a build did: printed at the end, returned to callers and tests."""

    videos_added: int = 0
    videos_resumed: int = 0
    duplicates: list[str] = field(default_factory=list)
    clips_added: int = 0
    seconds_added: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    copied: int = 0  # videos fit to play copied into the library as they are (no playback file per clip)
    fingerprinted: int = 0  # soundtracks fingerprinted for sync this run (silent ones included)
    same_soundtrack: list[tuple[str, str]] = field(default_factory=list)  # (video, the other video)
    wall_seconds: float = 0.0
    interrupted: bool = False
    terminated: bool = False  # by SIGTERM, not Ctrl-C


def find_videos(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named directly are all tried; folders are searched recursively for video extensions."""
    found: list[Path] = []
    missing: list[tuple[str, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS))
        elif path.exists():
            found.append(path)
        else:
            missing.append((str(path), "no such file or folder"))
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique, missing


def content_hash(path: Path) -> str:
    """blake2b of the whole file: the same video under another name is recognised."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()[:32]


class _Lock:
    """One build per library at a time (a second one fails at once with a clear message)."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self._file = open(root / ".lock", "w")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._file.close()
            raise LibraryError(f"{root}: another build is writing to this library") from exc

    def release(self) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def _remove_orphans(store: LibraryStore) -> int:
    """Delete clip files the manifest does not name: what a killed run left half-done."""
    known = store.clip_files()
    clips_root = store.root / CLIPS_DIR
    removed = 0
    if not clips_root.exists():
        return 0
    for f in clips_root.rglob("*"):
        if f.is_file() and f.relative_to(store.root).as_posix() not in known:
            f.unlink()
            removed += 1
    for d in sorted((d for d in clips_root.rglob("*") if d.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return removed


def _check_settings(store: LibraryStore, settings: BuildSettings | None) -> BuildSettings:
    """A library keeps the settings it was created with; a build asking for others is refused."""
    stored = store.settings()
    if not stored:
        settings = settings or BuildSettings()
        with store.transaction():
            store.set_meta("settings", json.dumps(asdict(settings)))
        return settings
    existing = BuildSettings(**stored)
    if settings is not None and settings != existing:
        diff = ", ".join(
            f"{k}={getattr(existing, k)!r} (asked {getattr(settings, k)!r})"
            for k in stored
            if getattr(existing, k) != getattr(settings, k)
        )
        raise LibraryError(
            f"{store.root}: library was built with other settings: {diff}; use `library add` or a new --out"
        )
    return existing


def build_library(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    settings: BuildSettings | None = None,
    jobs: int | None = None,
    progress: bool = True,
    create: bool = True,
    cluster: str | None = None,
) -> BuildReport:
    """Add the videos in `inputs` to the library at `out` (created if `create`), resuming any
    unfinished work. `settings=None` uses the library's own. `cluster`: a Dask scheduler address
    that runs the per-video work (the driver still writes the library alone)."""
    root = Path(out)
    if settings is not None:
        feature_sets_for(settings.features)  # a missing extractor fails here, before anything is written
    if not create and not (root / "library.sqlite").exists():
        raise LibraryError(f"{root}: not a livejpp library (no library.sqlite)")
    lock = _Lock(root)
    try:
        with LibraryStore(root, create=create) as store:
            builder = _Builder(store, _check_settings(store, settings), jobs or os.cpu_count() or 1, progress)
            builder.cluster = cluster
            return builder.run(inputs)
    finally:
        lock.release()


class _Builder:
    def __init__(self, store: LibraryStore, settings: BuildSettings, jobs: int, progress: bool):
        self.store = store
        self.settings = settings
        self.jobs = max(1, jobs)
        self.progress = progress
        self.report = BuildReport()
        self.cluster: str | None = None  # a Dask scheduler address: per-video work runs there
        self.ranges_left: dict[str, int] = {}  # a long video split into time ranges: ranges still running
        self.failed_keys: set[str] = set()
        self.final_done: dict[str, VideoDone] = {}  # a range failed: the video stays partial (the next run resumes it)
        self.work_seconds = 0.0  # time the cluster's tasks spent working (the engine's overhead is the rest)
        self.feature_sets = feature_sets_for(settings.features)
        self.video_ids: dict[str, int] = {}
        self.paths: dict[str, str] = {}
        self.clip_counts: dict[str, int] = {}
        self.bar = None
        self.videos_total = 0
        self.videos_done = 0
        self.origins: dict[str, float] = {}  # a video's container start time (its fingerprint's frame 0)
        self.fingerprint_jobs: list[FingerprintJob] = []  # waiting to run
        self.fingerprint_units: set[str] = set()  # videos whose fingerprint the progress bar counts, not yet done
        self.new_fingerprints: dict[int, Landmarks] = {}  # video id -> its first seconds' landmarks (duplicate check)

    # --- planning ------------------------------------------------------------------------
    def _skip(self, path: str, reason: str) -> None:
        log.warning("skipped %s: %s", path, reason)
        self.report.skipped.append((path, reason))
        with self.store.transaction():
            self.store.record_skip(path, reason)
            self.store.log("warning", f"skipped: {reason}", path)

    def _plan(self, inputs: Iterable[str | os.PathLike]) -> list[VideoJob]:
        files, missing = find_videos(inputs)
        for path, reason in missing:
            self._skip(path, reason)
        jobs: list[VideoJob] = []
        seen: set[str] = set()
        fingerprinted = self.store.fingerprinted_video_ids()
        many = self.progress and len(files) >= 20
        for path in progress_bar(files, desc="probing", unit="file", enabled=many, leave=False):
            try:
                info = probe(path)
            except MediaError as exc:
                self._skip(exc.path, exc.reason)
                continue
            try:
                key = content_hash(path)
            except OSError as exc:
                self._skip(str(path), f"cannot read ({exc.strerror})")
                continue
            if key in seen:
                self.report.duplicates.append(str(path))
                log.info("%s: same content as another input, added once", path)
                continue
            seen.add(key)
            row = self.store.video_by_hash(key)
            if row is not None and row["status"] == "done" and self._forget_missing_files(row["id"], path):
                row = self.store.video_by_hash(key)  # now partial: resumed below
            if row is not None and row["status"] == "done":
                self.report.duplicates.append(str(path))
                log.info("%s: already in the library", path)
                if row["audio_codec"] is not None and row["id"] not in fingerprinted:  # built before fingerprints
                    self.paths[key] = str(path)
                    self.fingerprint_units.add(key)
                    self._queue_fingerprint(key, row["id"], info.start, row["duration"])
                continue
            planned = plan_clips(info.duration, self.settings.clip_seconds, self.settings.hop)
            if not planned:
                half = self.settings.clip_seconds / 2
                self._skip(
                    str(path),
                    f"shorter than half a clip ({info.duration:.1f} s < {half:g} s): no clips",
                )
                continue
            done = set()
            if row is not None:
                done = self.store.done_clip_indices(row["id"])
                self.video_ids[key] = row["id"]
                self.report.videos_resumed += 1
                log.info("%s: resuming after %d finished clips", path, len(done))
            self.paths[key] = str(path)
            self.origins[key] = info.start
            if info.has_audio:
                self.fingerprint_units.add(key)
            self.clip_counts[key] = max(1, sum(c.index not in done for c in planned))
            jobs.extend(
                self._ranges(
                    VideoJob(
                        key=key,
                        info=info,
                        done=frozenset(done),
                        first_index=min(
                            (c.index for c in planned if c.index not in done), default=max(done, default=-1) + 1
                        ),
                        clip_dir=str(self.store.root / CLIPS_DIR / key[:16]),
                        clip_dir_rel=f"{CLIPS_DIR}/{key[:16]}",
                        settings=self.settings,
                        feature_sets=self.feature_sets,
                        threads=max(1, (os.cpu_count() or 1) // self.jobs),
                        copy=self._playback_copy(key, info),
                        fingerprint=info.has_audio and not done,  # read whole from 0 s: fingerprinted as it goes
                    ),
                    [c.index for c in planned if c.index not in done],
                )
            )
        return jobs

    def _playback_copy(self, key: str, info: VideoInfo) -> str | None:
        """The library's copy of a source fit to play (made here, by the driver: a stream copy reads the file
        about as fast as its content hash did, and a cluster's workers need not see the library), or None
        when its clips get a playback file each. A resumed video keeps the copy its first clips play."""
        s = self.settings
        if not (s.transcode and s.remux) or unfit_to_copy(info, s.playback_height, s.codec):
            return None
        rel = f"{CLIPS_DIR}/{key[:16]}/{copy_name(info)}"
        if rel in self.store.clip_files() and (self.store.root / rel).is_file():
            return rel  # named in the manifest: the orphan sweep at start kept it
        part = self.store.root / f"{rel}.part-{os.getpid()}"
        part.parent.mkdir(parents=True, exist_ok=True)
        if not copy_video(info.path, str(part)):
            return None
        os.replace(part, self.store.root / rel)  # unnamed until a clip commits: a killed build's sweep removes it
        self.report.copied += 1
        return rel

    def _ranges(self, job: VideoJob, pending: list[int]) -> list[VideoJob]:
        """A long video as several time ranges, each a job (its own core or worker); the last runs to the end.
        Each range seeks to its first clip as a resumed video does, so its clips are the one-job clips."""
        per_range = max(1, round(SPLIT_SECONDS / self.settings.step))
        if len(pending) <= per_range:
            return [job]
        firsts = pending[::per_range]
        self.ranges_left[job.key] = len(firsts)
        return [
            replace(job, first_index=first, last_index=None if after is None else after - 1, fingerprint=False)
            for first, after in zip(firsts, [*firsts[1:], None], strict=True)
        ]

    def _forget_missing_files(self, video_id: int, path: Path) -> int:
        """Clips whose playback file is gone (deleted, a half-copied stick) or lies outside the
        library: their rows go and the video resumes, so the build makes them again."""
        rows = self.store.db.execute(
            "SELECT id, playback FROM clips WHERE video_id = ? AND playback IS NOT NULL", (video_id,)
        ).fetchall()
        gone = [(i,) for i, pb in rows if not (inside := inside_library(self.store.root, pb)) or not inside.is_file()]
        if gone:
            with self.store.transaction() as db:
                db.executemany("DELETE FROM clips WHERE id = ?", gone)
                db.execute("UPDATE videos SET status = 'partial' WHERE id = ?", (video_id,))
            log.warning("%s: %d clip files missing from the library: making them again", path, len(gone))
        return len(gone)

    # --- committing ----------------------------------------------------------------------
    def _ensure_video(self, job: VideoJob) -> int:
        if job.key in self.video_ids:
            return self.video_ids[job.key]
        info = job.info
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO videos (content_hash, path, size, duration, width, height, fps, rotation, codec, "
                "audio_codec, status, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'partial', ?)",
                (
                    job.key,
                    info.path,
                    os.path.getsize(info.path),
                    info.duration,
                    info.width,
                    info.height,
                    float(info.fps),
                    info.rotation,
                    info.codec,
                    info.audio_codec,
                    time.time(),
                ),
            )
            self.video_ids[job.key] = cur.lastrowid
        return self.video_ids[job.key]

    def _commit_clip(self, clip: ClipResult) -> None:
        video_id = self.video_ids.get(clip.key)
        if video_id is None:  # a late clip of a video already reported as failed
            if clip.part_path is not None and os.path.exists(clip.part_path):
                os.remove(clip.part_path)
            return
        with self.store.transaction() as db:
            if clip.part_path is not None:
                os.replace(clip.part_path, self.store.root / clip.playback)
            cur = db.execute(
                "INSERT OR REPLACE INTO clips (video_id, idx, start, end, playback, playback_start, width, height, "
                "fps, frames, audio, audio_level) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    video_id,
                    clip.index,
                    clip.start,
                    clip.end,
                    clip.playback,
                    clip.playback_start,
                    clip.width,
                    clip.height,
                    clip.fps,
                    clip.frames,
                    clip.audio,
                    clip.audio_level,
                ),
            )
            for name, rows in clip.features.items():
                rows = finite_rows(rows, f"{self.paths[clip.key]} clip {clip.index} ({name})")
                db.execute(
                    "INSERT OR REPLACE INTO features (clip_id, feature_set, seconds, data) VALUES (?, ?, ?, ?)",
                    (cur.lastrowid, name, rows.shape[0], rows.tobytes()),
                )
        self.report.clips_added += 1
        self.report.seconds_added += clip.end - clip.start
        if self.bar is not None:
            self.bar.update(1)

    def _commit_video(self, done: VideoDone) -> None:
        path = self.paths[done.key]
        video_id = self.video_ids[done.key]
        with self.store.transaction() as db:
            clips = db.execute("SELECT COUNT(*) FROM clips WHERE video_id = ?", (video_id,)).fetchone()[0]
            if clips == 0:
                db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
            else:
                db.execute(
                    "UPDATE videos SET status = 'done', duration = ?, tail_dropped = ?, note = ? WHERE id = ?",
                    (done.duration, done.tail_dropped, done.note, video_id),
                )
                self.store.clear_skip(path)
                self.store.log("info", f"added: {clips} clip{'s' if clips != 1 else ''}", path)
        if clips == 0:
            self._skip(path, done.note or "no clip could be made")
            self._fingerprint_resolved(done.key)
        else:
            self.report.videos_added += 1
            if done.note:
                log.warning("%s: %s", path, done.note)
                self.report.notes.append((path, done.note))
            if done.key in self.fingerprint_units:
                self._queue_fingerprint(done.key, video_id, self.origins[done.key], done.duration, done.landmarks)
        self._video_finished()

    # --- fingerprints (a job per video with music, after its clips) ----------------------------
    def _queue_fingerprint(
        self, key: str, video_id: int, origin: float, duration: float, landmarks: Landmarks | None = None
    ) -> None:
        """A job for a finished video whose clips have music (its `landmarks` stored at once where its own job
        made them); a silent row at once for one without."""
        audio = dict(
            self.store.db.execute(
                "SELECT audio, COUNT(*) FROM clips WHERE video_id = ? GROUP BY audio", (video_id,)
            ).fetchall()
        )
        if audio.get("ok") and landmarks is not None:
            self._save_fingerprint(fingerprint_done(key, video_id, landmarks, duration))
        elif audio.get("ok"):
            self.fingerprint_jobs.append(FingerprintJob(key, video_id, self.paths[key], origin, duration))
        elif audio.get("silent"):
            self._save_fingerprint(silent(key, video_id, duration))
        else:
            self._fingerprint_resolved(key)  # an audio stream that never decoded: nothing to fingerprint

    def _save_fingerprint(self, done: FingerprintDone) -> None:
        path = self.paths.get(done.key)
        count = len(done.landmarks.hashes)
        with self.store.transaction():
            self.store.save_fingerprint(done.video_id, done.landmarks, done.seconds, done.note)
            self.store.log("info", f"fingerprint: {done.note or f'{count} hashes'}", path)
        if count:
            self.new_fingerprints[done.video_id] = start_of(done.landmarks)
            self.report.fingerprinted += 1
        self._fingerprint_resolved(done.key)

    def _fingerprint_failed(self, job: FingerprintJob, reason: str) -> None:
        """The clips stay; sync will not know this video until a later build fingerprints it."""
        note = f"no fingerprint for sync ({reason})"
        log.warning("%s: %s", job.path, note)
        self.report.notes.append((job.path, note))
        self._fingerprint_resolved(job.key)

    def _fingerprint_resolved(self, key: str) -> None:
        if key in self.fingerprint_units:
            self.fingerprint_units.discard(key)
            if self.bar is not None:
                self.bar.update(1)

    def _run_fingerprints_here(self) -> None:
        while self.fingerprint_jobs:
            job = self.fingerprint_jobs.pop(0)
            self._take_fingerprint(run_fingerprint_job(job), job)

    def _report_same_soundtracks(self) -> None:
        """One line per pair of videos with the same soundtrack (a song in the library twice): sync picks one."""
        if not self.new_fingerprints:
            return
        store = self.store.load_fingerprints()
        if store is None:
            return
        paths = dict(self.store.db.execute("SELECT id, path FROM videos").fetchall())
        said: set[frozenset[int]] = set()
        for video_id, start in self.new_fingerprints.items():
            other = same_soundtrack(store, video_id, start)
            if other is None or frozenset((video_id, other)) in said:
                continue
            said.add(frozenset((video_id, other)))
            path, other_path = paths[video_id], paths[other]
            note = f"same soundtrack as {Path(other_path).name} (sync will pick one)"
            log.info("%s: %s", path, note)
            self.report.same_soundtrack.append((path, other_path))
            with self.store.transaction():
                self.store.log("info", note, path)

    def _video_failed(self, key: str, reason: str) -> None:
        if key in self.failed_keys:
            return  # another range of the same video: said once
        if key in self.ranges_left:
            self.failed_keys.add(key)
        path = self.paths[key]
        video_id = self.video_ids.get(key)
        if video_id is not None:
            with self.store.transaction() as db:
                if not db.execute("SELECT 1 FROM clips WHERE video_id = ?", (video_id,)).fetchone():
                    db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
                    del self.video_ids[key]
        self._skip(path, reason)
        self._fingerprint_resolved(key)
        self._video_finished()

    def _last_range(self, done: VideoDone) -> bool:
        """True once every range of the video is in (and none failed); the last range's VideoDone is kept."""
        if done.key not in self.ranges_left:
            return True
        self.ranges_left[done.key] -= 1
        if not done.partial:
            self.final_done[done.key] = done
        if self.ranges_left[done.key] > 0 or done.key in self.failed_keys:
            return False
        del self.ranges_left[done.key]
        done = self.final_done.pop(done.key)
        self._commit_video(done)
        return False

    def _video_finished(self) -> None:
        self.videos_done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"videos {self.videos_done}/{self.videos_total}")

    def _handle(self, message: object) -> None:
        if isinstance(message, ClipResult):
            self._commit_clip(message)
        elif isinstance(message, VideoDone) and self._last_range(message):
            self._commit_video(message)
        elif isinstance(message, FingerprintDone):
            self._save_fingerprint(message)

    # --- running -------------------------------------------------------------------------
    def run(self, inputs: Iterable[str | os.PathLike]) -> BuildReport:
        try:
            return self._run(inputs)
        except (sqlite3.OperationalError, OSError) as exc:
            if not disk_full(exc):
                raise
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise LibraryError(
                f"{self.store.root}: disk is full writing the manifest ({reason}); finished clips are kept: "
                "free some space and run the same command again to resume"
            ) from None

    def _run(self, inputs: Iterable[str | os.PathLike]) -> BuildReport:
        started = time.monotonic()
        removed = _remove_orphans(self.store)
        if removed:
            log.info("removed %d unfinished clip files left by an interrupted build", removed)
        with self.store.transaction():
            for fs in self.feature_sets:
                self.store.register_feature_set(fs)
        jobs = self._plan(inputs)
        for job in jobs:
            self._ensure_video(job)
        self.videos_total = len({job.key for job in jobs})
        # a video's fingerprint counts as one more clip: a bar that stood at 100 % while soundtracks are read lies
        total = sum(self.clip_counts[j.key] for j in jobs) + len(self.fingerprint_units)
        self.bar = progress_bar(total=total, unit="clip", desc="building", enabled=self.progress and total > 0)
        self.bar.set_postfix_str(f"videos 0/{self.videos_total}")
        try:
            if self.cluster:
                self._run_cluster(jobs)
            elif self.jobs == 1 or len(jobs) + len(self.fingerprint_jobs) <= 1:
                self._run_here(jobs)
            else:
                self._run_pool(jobs)
            self._report_same_soundtracks()
        except KeyboardInterrupt as exc:
            self.report.interrupted = True
            self.report.terminated = isinstance(exc, Terminated)
            log.warning("interrupted: finished clips are kept; run the same command again to resume")
        finally:
            self.bar.close()
            self.bar = None
        # not in `finally`: after a failed manifest write (a full disk) these writes would fail too
        if not self.report.interrupted:
            _remove_orphans(self.store)  # a failed video's source copy, which no clip came to name
        self.store.update_normalisation()
        self.report.wall_seconds = time.monotonic() - started
        r = self.report
        with self.store.transaction():
            self.store.log(
                "info",
                f"build {'interrupted' if r.interrupted else 'finished'}: {r.videos_added} videos, "
                f"{r.clips_added} clips, {r.seconds_added:.0f} s of footage in {r.wall_seconds:.1f} s, "
                f"{len(r.skipped)} skipped, {len(r.duplicates)} already in",
            )
        return self.report

    def _run_here(self, jobs: list[VideoJob]) -> None:
        self._run_fingerprints_here()  # videos already in the library, built before fingerprints
        for job in jobs:
            try:
                process_video(job, self._handle)
            except MediaError as exc:
                self._video_failed(job.key, exc.reason)
            except sqlite3.Error:
                raise  # the manifest, not the video, failed: the build cannot go on
            except Exception as exc:  # noqa: BLE001 - one bad video must not stop the build
                self._video_failed(job.key, describe(exc))
            self._run_fingerprints_here()

    def _run_cluster(self, jobs: list[VideoJob]) -> None:
        """Each video a Dask task, and each soundtrack's fingerprint another once its video is in (seconds of
        audio decoding per video: on the driver they were the one part of the build that did not spread over
        the cluster); results commit here in the order they finish.

        A worker that dies takes the blame for every task it held, the one that killed it and the next one
        waiting beside it (Dask keeps more tasks on a worker than it has threads): both reach the scheduler's
        allowed failures together. So a video given up on (KilledWorker) runs again alone, once the rest is in:
        only a video whose worker still dies then is skipped."""
        from distributed import CancelledError, as_completed
        from distributed.scheduler import KilledWorker

        from livejpp.library import cluster

        client = cluster.connect(self.cluster)
        try:
            token = cluster.mark_shared(self.store.root)
            root = str(self.store.root.resolve())
            tasks: dict = {}  # pending future -> its job (a finished one is dropped: workers free its result)
            finished = as_completed(loop=client.loop)

            def submit(job: VideoJob | FingerprintJob, suffix: str = ""):
                if isinstance(job, FingerprintJob):
                    key = f"livejpp-fingerprint-{job.key}-{token}{suffix}"
                    return client.submit(run_fingerprint_job, job, key=key, retries=0)
                key = f"livejpp-{job.key}-{job.first_index}-{token}{suffix}"
                return client.submit(cluster.run_video, job, root, token, key=key, retries=0)

            def take(future, job: VideoJob | FingerprintJob, alone: bool) -> bool:
                """Commit a finished task; False when its worker died and it should run again alone."""
                try:
                    result = future.result()
                except KilledWorker as exc:
                    if not alone:
                        return False
                    deaths = exc.allowed_failures + 1
                    self._cluster_task_failed(job, f"its worker died {deaths} times running it alone on the cluster")
                    return True
                except CancelledError:
                    raise LivejppError(
                        f"--cluster {self.cluster}: the scheduler went away; finished videos are kept: run the same "
                        "command again to resume"
                    ) from None
                except Exception as exc:  # noqa: BLE001 - one failed task must not stop the build
                    self._cluster_task_failed(job, describe(exc))
                    return True
                finally:
                    future.release()
                if isinstance(job, FingerprintJob):
                    self._take_fingerprint(result, job)
                else:
                    self._take_cluster_result(result, job)
                return True

            waiting: list[VideoJob | FingerprintJob] = list(jobs)
            while waiting or self.fingerprint_jobs:
                # all at once; then each whose worker died, alone, once the rest is in: nothing beside it to share
                # the blame; then the fingerprints of the videos that went through alone, and so on
                for job in [*waiting, *self.fingerprint_jobs]:
                    future = submit(job)
                    tasks[future] = job
                    finished.add(future)
                waiting, self.fingerprint_jobs = [], []
                for future in finished:
                    job = tasks.pop(future)
                    if not take(future, job, alone=False):
                        waiting.append(job)
                    for queued in self.fingerprint_jobs:  # as videos come in (and for those built before them)
                        fresh = submit(queued)
                        tasks[fresh] = queued
                        finished.add(fresh)
                    self.fingerprint_jobs = []
                for job in waiting:
                    take(submit(job, "-alone"), job, alone=True)
                waiting = []
        finally:
            client.close()

    def _cluster_task_failed(self, job: VideoJob | FingerprintJob, reason: str) -> None:
        if isinstance(job, FingerprintJob):
            self._fingerprint_failed(job, reason)
        else:
            self._video_failed(job.key, reason)

    def _take_fingerprint(self, result: FingerprintDone | str, job: FingerprintJob) -> None:
        if isinstance(result, FingerprintDone):
            self._save_fingerprint(result)
        else:
            self._fingerprint_failed(job, result)

    def _take_cluster_result(self, result, job: VideoJob) -> None:
        """Commit what a cluster task sent back, as a local worker's messages."""
        from livejpp.library import cluster

        self.work_seconds += result.work_seconds
        cluster.write_returned(result, job.clip_dir)
        for message in result.messages:
            self._handle(message)
        if result.error is not None:
            self._video_failed(job.key, result.error)

    def _run_pool(self, jobs: list[VideoJob]) -> None:
        ctx = mp.get_context("spawn")
        messages = ctx.Queue()
        with cf.ProcessPoolExecutor(
            max_workers=self.jobs, mp_context=ctx, initializer=_init_worker, initargs=(messages, os.getpid())
        ) as pool:
            fingerprints: dict[cf.Future, FingerprintJob] = {}

            def start_fingerprints() -> None:
                while self.fingerprint_jobs:
                    job = self.fingerprint_jobs.pop(0)
                    fingerprints[pool.submit(run_fingerprint_job, job)] = job

            start_fingerprints()  # videos already in the library, built before fingerprints
            futures = {pool.submit(_run_job, job): job for job in jobs}
            finished: set[tuple[str, int]] = set()  # (video, first clip of its range)
            try:
                while len(finished) < len(jobs) or fingerprints:
                    try:
                        message = messages.get(timeout=0.2)
                    except queue.Empty:
                        message = None
                    if message is not None:
                        self._handle(message)
                        if isinstance(message, VideoDone):
                            finished.add((message.key, message.first_index))
                            start_fingerprints()
                        continue
                    for future in [f for f in fingerprints if f.done()]:
                        job = fingerprints.pop(future)
                        result = future.exception() or future.result()
                        failure = None if isinstance(result, FingerprintDone | str) else describe(result)
                        self._take_fingerprint(failure or result, job)
                    for future, job in futures.items():
                        if (job.key, job.first_index) in finished or not future.done():
                            continue
                        error = future.exception() or future.result()
                        if error is None:
                            continue  # done; its VideoDone is still on the queue
                        finished.add((job.key, job.first_index))
                        self._video_failed(job.key, error if isinstance(error, str) else describe(error))
            except BaseException:
                # workers blocked writing to the queue nobody reads would keep the pool from ever closing
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise


_messages = None


def _init_worker(messages, parent: int) -> None:
    """Keep the message queue, and end this worker when the builder dies (killed builds leave
    no orphan still decoding)."""
    global _messages
    _messages = messages

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _run_job(job: VideoJob) -> str | None:
    """Worker entry: None when the video went through, else the reason it failed."""
    try:
        process_video(job, _messages.put)
    except MediaError as exc:
        return exc.reason
    except Exception as exc:  # noqa: BLE001 - reported by the builder, the build goes on
        return describe(exc)
    return None
