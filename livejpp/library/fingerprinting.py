"""A library video's soundtrack fingerprint (known-track sync, issue 12): made by the video's own job where that
job reads the whole soundtrack anyway (a new video in one piece: decoded once, for its clips' features and its
fingerprint alike), else by a job of its own, apart from its clips.

Apart, because a resumed video or a range of a long one decodes only from its first clip while a fingerprint
needs the whole soundtrack, and because a library built before fingerprints existed gains them without its
clips being made again. The soundtrack is read in BLOCK_SECONDS blocks, so an hour-long concert never sits in
memory; the result goes back to the builder, which stores it in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livejpp.errors import describe
from livejpp.fingerprint import Landmarks, MemoryHashStore
from livejpp.fingerprint.landmarks import FRAME_SECONDS
from livejpp.fingerprint.match import decide
from livejpp.fingerprint.stream import BlockFingerprint
from livejpp.media.decode import AudioReader

BLOCK_SECONDS = 30.0
MIN_HASHES_PER_SECOND = 2.0  # below this a soundtrack is hiss or a hum (music gives ~90 per second)
SILENT = "silent soundtrack"
DUPLICATE_SECONDS = 10.0  # how much of a new video's start is looked up among the others


@dataclass(frozen=True)
class FingerprintJob:
    key: str  # the video's content hash
    video_id: int
    path: str  # the source file, as found by this build
    origin: float  # the container's start time: fingerprint frame 0 is the clips' time 0
    duration: float  # seconds of video: audio after the last picture cannot be synced to


@dataclass(frozen=True)
class FingerprintDone:
    key: str
    video_id: int
    landmarks: Landmarks
    seconds: float
    note: str | None


def fingerprint_video(job: FingerprintJob) -> FingerprintDone:
    """The soundtrack's landmarks over [0, duration), or none and the note SILENT when it has no music."""
    reader = AudioReader(job.path, start=0.0, origin=job.origin)
    try:
        landmarks = SoundtrackBlocks(reader, forget=True).finish(job.duration)
    finally:
        reader.close()
    return fingerprint_done(job.key, job.video_id, landmarks, job.duration)


def fingerprint_done(key: str, video_id: int, landmarks: Landmarks, seconds: float) -> FingerprintDone:
    """What is stored for a soundtrack with these landmarks: a silent row where they are too few for music."""
    if len(landmarks.hashes) < MIN_HASHES_PER_SECOND * seconds:
        return silent(key, video_id, seconds)
    return FingerprintDone(key, video_id, landmarks, seconds, None)


class SoundtrackBlocks:
    """A soundtrack fingerprinted from 0 s on in the BLOCK_SECONDS blocks fingerprint_video has always read.

    fingerprint_video reads them all and lets the reader forget each; a video's worker hands over each block
    once its pictures are past it, from the reader its clips read their audio from (it forgets what neither
    needs: `next_start` on is kept)."""

    def __init__(self, reader: AudioReader, forget: bool):
        self.reader, self.forget = reader, forget
        self.next_start = 0.0
        self._fingerprint = BlockFingerprint()

    def add_until(self, t: float) -> None:
        """Every whole block that ends by `t` (the video goes on at least that long: no block is cut later)."""
        while self.next_start + BLOCK_SECONDS <= t:
            self._add(self.next_start + BLOCK_SECONDS)

    def finish(self, duration: float) -> Landmarks:
        """The landmarks of [0, duration): the blocks left, the last one cut at `duration`."""
        while self.next_start < duration:
            self._add(min(self.next_start + BLOCK_SECONDS, duration))
        return self._fingerprint.finish()

    def _add(self, end: float) -> None:
        self._fingerprint.push(self.reader.read(self.next_start, end))
        self.next_start += BLOCK_SECONDS
        if self.forget:
            self.reader.discard_before(self.next_start)


def run_fingerprint_job(job: FingerprintJob) -> FingerprintDone | str:
    """A worker's entry (a local process or a cluster task): the fingerprint, or the one-line reason there is none."""
    try:
        return fingerprint_video(job)
    except Exception as exc:  # noqa: BLE001 - reported by the builder, the build goes on
        return describe(exc)


def silent(key: str, video_id: int, seconds: float) -> FingerprintDone:
    """The row of a soundtrack without music: stored (count 0) so that no later build tries again."""
    empty = Landmarks(np.zeros(0, np.uint32), np.zeros(0), np.zeros(0, np.int64))
    return FingerprintDone(key, video_id, empty, seconds, SILENT)


def start_of(landmarks: Landmarks, seconds: float = DUPLICATE_SECONDS) -> Landmarks:
    """The landmarks anchored in the first `seconds`: what the duplicate check looks up."""
    keep = landmarks.t < seconds / FRAME_SECONDS
    return Landmarks(landmarks.hashes[keep], landmarks.t[keep], landmarks.pair[keep])


def same_soundtrack(store: MemoryHashStore, video_id: int, start: Landmarks) -> int | None:
    """Another video of `store` that confidently holds the start of `video_id`'s soundtrack (the vote the live
    match makes, at normal speed), or None. Two such videos are fine for sync: it picks one."""
    hits = store.lookup(start.hashes)
    other = hits.video != video_id
    if not other.any():
        return None
    query = hits.query[other]
    match = decide(
        hits.frame[other] - start.t[query], hits.video[other], np.zeros(len(query), np.int64), start.pair[query], (1.0,)
    )
    return match.video if match.confident else None
