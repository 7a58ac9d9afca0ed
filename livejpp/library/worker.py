"""Turning one video into clips: one decode pass feeds the playback encoders and the features.

Runs in a worker process. It writes each playback clip to a `.part` file and hands the clip's
metadata and features to the builder through `emit`; only the builder touches the manifest, so a
killed worker leaves nothing but a `.part` file that the next run removes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from av.video.reformatter import VideoReformatter

from livejpp.features import FeatureSet, whole_seconds
from livejpp.features.audio import audio_features, is_silent, level_dbfs
from livejpp.features.pretrained import extractor_for
from livejpp.features.visual import VisualFeatures, small_picture
from livejpp.fingerprint import Landmarks
from livejpp.library.fingerprinting import SoundtrackBlocks
from livejpp.media.clips import ClipEncoder, clip_start, keep_tail, playback_size
from livejpp.media.decode import AudioReader, VideoInfo, iter_video_frames
from livejpp.media.hap import HapClipEncoder

log = logging.getLogger("livejpp.library")


@dataclass(frozen=True)
class BuildSettings:
    """How a library cuts and encodes: fixed when it is created, shared by every later add."""

    clip_seconds: float = 10.0
    hop: float | None = None  # None: back to back clips
    playback_height: int = 720
    transcode: bool = True
    features: str = "hand"
    x264_preset: str = "ultrafast"
    crf: int = 23
    codec: str = "h264"  # playback clips: h264 (.mp4) or hap (.mov, DXT1 blocks the GPU takes as they are)
    remux: bool = True  # a source fit to play is copied once as it is and its clips play spans of it (media/remux.py)

    @property
    def step(self) -> float:
        return self.hop or self.clip_seconds


@dataclass(frozen=True)
class VideoJob:
    key: str  # content hash
    info: VideoInfo
    done: frozenset[int]  # clip indices already in the library (a resumed video)
    first_index: int  # where decoding starts (the first missing clip)
    clip_dir: str  # absolute folder for this video's playback clips
    clip_dir_rel: str  # the same, relative to the library
    settings: BuildSettings
    feature_sets: tuple[FeatureSet, ...]
    threads: int = 1
    last_index: int | None = None  # a time range of a long video: stop after this clip (None: to the end)
    copy: str | None = None  # the source's copy in the library (relative): its clips play spans of it, none encoded
    fingerprint: bool = False  # the whole soundtrack is read from 0 s: fingerprint it too (no job of its own)


@dataclass
class ClipResult:
    key: str
    index: int
    start: float
    end: float
    part_path: str | None
    playback: str | None  # relative path once renamed
    width: int
    height: int
    fps: float
    frames: int
    audio: str  # ok | silent | absent
    audio_level: float | None
    features: dict[str, np.ndarray] = field(default_factory=dict)
    playback_start: float | None = None  # where the clip starts in `playback` (None: a file of its own)


@dataclass
class VideoDone:
    key: str
    duration: float
    tail_dropped: float
    note: str | None
    first_index: int = 0  # which range of the video this was (its first clip)
    partial: bool = False  # a range that stopped before the end: duration and tail are the last range's
    landmarks: Landmarks | None = None  # the soundtrack's fingerprint over [0, duration), where the job made it


class _OpenClip:
    def __init__(self, index: int, start: float, job: VideoJob, size: tuple[int, int]):
        self.index = index
        self.start = start
        self.visual = VisualFeatures()
        self.encoder: ClipEncoder | None = None
        self.rel: str | None = job.copy
        if job.settings.transcode and job.copy is None:
            hap = job.settings.codec == "hap"
            name = f"{index:05d}.mov" if hap else f"{index:05d}.mp4"
            self.rel = f"{job.clip_dir_rel}/{name}"
            part = os.path.join(job.clip_dir, f"{name}.part-{os.getpid()}")
            if hap:
                self.encoder = HapClipEncoder(
                    part, start, job.info.fps, size, rotation=job.info.rotation, threads=job.threads
                )
                return
            self.encoder = ClipEncoder(
                part,
                start,
                job.info.fps,
                size,
                rotation=job.info.rotation,
                preset=job.settings.x264_preset,
                crf=job.settings.crf,
                threads=job.threads,
            )


def process_video(job: VideoJob, emit: Callable[[object], None]) -> VideoDone:
    """Decode `job`'s video once from its first pending clip, emitting a ClipResult per clip."""
    info, settings = job.info, job.settings
    step, length = settings.step, settings.clip_seconds
    eps = 0.25 / float(info.fps)
    size = (
        playback_size(info.width, info.height, settings.playback_height)
        if settings.transcode
        else (info.width, info.height)
    )
    os.makedirs(job.clip_dir, exist_ok=True)
    start_time = clip_start(job.first_index, step)
    audio = _audio_from(info, start_time) if info.has_audio else None
    soundtrack = SoundtrackBlocks(audio, forget=False) if audio is not None and job.fingerprint else None
    extra = [
        extractor_for(fs, info.rotation, job.threads) for fs in job.feature_sets if not fs.name.startswith("hand_")
    ]
    scaler = VideoReformatter()
    open_clips: dict[int, _OpenClip] = {}
    next_index = job.first_index
    last_t = start_time
    last_end = start_time  # where the last frame stops showing (a one-frame video shows it for 10 s)
    frames_seen = 0
    try:
        for t, frame in iter_video_frames(info.path, start=start_time, origin=info.start, threads=job.threads):
            frames_seen += 1
            last_end = t + max(1.0 / float(info.fps), _shown_for(frame))
            for index in [i for i, c in open_clips.items() if c.start + length <= t + eps]:
                _finish(open_clips.pop(index), clip_start(index, step) + length, job, audio, extra, emit)
            while clip_start(next_index, step) <= t + eps:
                if next_index not in job.done and (job.last_index is None or next_index <= job.last_index):
                    open_clips[next_index] = _OpenClip(next_index, clip_start(next_index, step), job, size)
                next_index += 1
            if not open_clips:
                last_t = t
                if job.last_index is not None and next_index > job.last_index:
                    break  # the range's last clip is finished: the next range decodes from here
                continue
            small = small_picture(scaler, frame, info.rotation)
            for clip in open_clips.values():
                clip.visual.add(t - clip.start, small)
                if clip.encoder is not None:
                    clip.encoder.add(t, frame)
                for ex in extra:
                    ex.add_frame(clip.index, t - clip.start, frame)
            last_t = t
            if audio is not None:
                keep = min((c.start for c in open_clips.values()), default=t)
                if soundtrack is not None:
                    soundtrack = _fingerprint_until(soundtrack, t, info.path)
                    keep = min(keep, soundtrack.next_start) if soundtrack is not None else keep
                audio.discard_before(keep)
        end_of_video = min(last_end, max(info.duration, last_t + 1.0 / float(info.fps)))
        tail_dropped = 0.0
        for _, clip in sorted(open_clips.items()):
            if keep_tail(clip.start, end_of_video, length, step):
                _finish(clip, end_of_video, job, audio, extra, emit)
            else:
                tail_dropped = max(tail_dropped, end_of_video - clip.start)
                if clip.encoder is not None:
                    clip.encoder.abort()
        open_clips.clear()
        whole = soundtrack is not None and frames_seen
        landmarks = _fingerprint(soundtrack, end_of_video, info.path) if whole else None
    finally:
        for clip in open_clips.values():
            if clip.encoder is not None:
                clip.encoder.abort()
        if audio is not None:
            audio.close()
    note = None
    if frames_seen and end_of_video < info.duration - max(1.0, 0.05 * info.duration):
        note = f"decoding stopped at {end_of_video:.1f} s of {info.duration:.1f} s (truncated or corrupt?)"
    if frames_seen == 0 and job.first_index == 0:
        note = "no frame could be decoded"
    duration = end_of_video if frames_seen else (info.duration if job.first_index > 0 else 0.0)
    partial = job.last_index is not None
    done = VideoDone(job.key, duration, tail_dropped, None if partial else note, job.first_index, partial, landmarks)
    emit(done)
    return done


def _audio_from(info: VideoInfo, start: float) -> AudioReader:
    """The soundtrack read from its beginning and dropped up to `start`: samples are placed by counting from
    the first frame (container timestamps are rounded, to 1 ms in WebM), so a range or a resumed video starting
    here gets the very samples, and features, of one pass over the whole video. Audio decodes fast."""
    audio = AudioReader(info.path, origin=info.start)
    t = 0.0
    while t < start:
        t = min(start, t + 30.0)
        audio.read(t, t)
        audio.discard_before(t)
    return audio


def _fingerprint_until(soundtrack: SoundtrackBlocks, t: float, path: str) -> SoundtrackBlocks | None:
    """The soundtrack's blocks up to `t` fingerprinted; None where that failed: its own job tries again later
    and reports what goes wrong (a fingerprint never costs a video its clips)."""
    try:
        soundtrack.add_until(t)
    except Exception as exc:  # noqa: BLE001 - the fingerprint job reports it
        log.info("%s: fingerprint left to its own job (%s)", path, exc)
        return None
    return soundtrack


def _fingerprint(soundtrack: SoundtrackBlocks, duration: float, path: str) -> Landmarks | None:
    """The whole soundtrack's landmarks, or None (its own job makes them) where a block went past the end
    (timestamps that ran backwards) or the fingerprint failed."""
    if soundtrack.next_start > duration:
        return None
    try:
        return soundtrack.finish(duration)
    except Exception as exc:  # noqa: BLE001 - the fingerprint job reports it
        log.info("%s: fingerprint left to its own job (%s)", path, exc)
        return None


def _shown_for(frame) -> float:
    """How long the container says a frame is shown (0 when it does not say)."""
    if frame.duration and frame.time_base:
        return float(frame.duration * frame.time_base)
    return 0.0


def _finish(clip: _OpenClip, end: float, job: VideoJob, audio: AudioReader | None, extra, emit) -> None:
    seconds = whole_seconds(end - clip.start)
    frames = round((end - clip.start) * float(job.info.fps)) if job.copy else 0  # as many as a clip file would show
    if clip.encoder is not None:
        frames = clip.encoder.finish(end)
    features: dict[str, np.ndarray] = {}
    wanted = {fs.name for fs in job.feature_sets}
    if "hand_visual" in wanted:
        features["hand_visual"] = clip.visual.rows(seconds)
    status, level = "absent", None
    if audio is not None:
        samples = audio.read(clip.start, end)
        level = level_dbfs(samples)
        if is_silent(samples):
            status = "silent"
        else:
            status = "ok"
            if "hand_audio" in wanted:
                features["hand_audio"] = audio_features(samples)[:seconds]
            for ex in extra:
                if ex.feature_set.modality == "audio":
                    features[ex.feature_set.name] = ex.audio_rows(samples, seconds)
    for ex in extra:
        if ex.feature_set.modality == "visual":
            features[ex.feature_set.name] = ex.visual_rows(clip.index, seconds)
    width, height = (clip.encoder.width, clip.encoder.height) if clip.encoder else (job.info.width, job.info.height)
    emit(
        ClipResult(
            key=job.key,
            index=clip.index,
            start=clip.start,
            end=end,
            part_path=clip.encoder.path if clip.encoder else None,
            playback=clip.rel,
            width=width,
            height=height,
            fps=float(job.info.fps),
            frames=frames,
            audio=status,
            audio_level=None if level is None or not np.isfinite(level) else float(level),
            features=features,
            playback_start=clip.start if job.copy else None,
        )
    )
