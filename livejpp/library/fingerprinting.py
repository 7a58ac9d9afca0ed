"""A library video's soundtrack fingerprint (known-track sync, issue 12): one job per video, apart from its clips.

Apart, because a resumed video decodes only from its first missing clip while a fingerprint needs the
whole soundtrack, and because a library built before fingerprints existed gains them without its clips
being made again. The soundtrack is read in BLOCK_SECONDS blocks, so an hour-long concert never sits in
memory; the result goes back to the builder, which stores it in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livejpp.errors import describe
from livejpp.fingerprint import Landmarks, MemoryHashStore, fingerprint_blocks
from livejpp.fingerprint.landmarks import FRAME_SECONDS
from livejpp.fingerprint.match import decide
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
        starts = np.arange(0.0, job.duration, BLOCK_SECONDS)

        def blocks():
            for start in starts:
                yield reader.read(start, min(start + BLOCK_SECONDS, job.duration))
                reader.discard_before(start + BLOCK_SECONDS)

        landmarks = fingerprint_blocks(blocks())
    finally:
        reader.close()
    if len(landmarks.hashes) < MIN_HASHES_PER_SECOND * job.duration:
        return silent(job.key, job.video_id, job.duration)
    return FingerprintDone(job.key, job.video_id, landmarks, job.duration, None)


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
