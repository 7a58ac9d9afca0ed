"""Cutting a video into clips and writing each one as a playback-ready file.

Playback files are H.264 with a keyframe every second (or denser), constant frame rate and a size
that fits the playback height, so the player can start any clip, anywhere, at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from livejpp.media.writer import VideoWriter


@dataclass(frozen=True)
class ClipWindow:
    """One clip of a video: its index and its time span in the source."""

    index: int
    start: float
    end: float


def clip_start(index: int, hop: float) -> float:
    return round(index * hop, 6)


def keep_tail(start: float, end_of_video: float, clip_seconds: float, hop: float) -> bool:
    """Whether a clip cut short by the end of the video is kept.

    It is kept when it lasts at least half a clip and shows footage the clip before it did not
    (with overlapping windows, a tail inside the previous clip adds nothing).
    """
    length = end_of_video - start
    if length < clip_seconds / 2:
        return False
    if start == 0:
        return True
    previous_end = start - hop + clip_seconds
    return previous_end < end_of_video - 0.05  # more than a rounding error: a frame or more of new footage


def plan_clips(duration: float, clip_seconds: float, hop: float | None = None) -> list[ClipWindow]:
    """The clips of a video of `duration` seconds (an estimate used for progress and resume)."""
    hop = hop or clip_seconds
    windows = []
    for index in range(int(math.ceil(duration / hop)) + 1):
        start = clip_start(index, hop)
        if start >= duration:
            break
        end = start + clip_seconds
        if end > duration + 1e-6:
            if not keep_tail(start, duration, clip_seconds, hop):
                break
            end = duration
        windows.append(ClipWindow(index, start, end))
    return windows


def playback_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """Fit (width, height) within max_height, never upscale, keep aspect, even sides for 4:2:0."""
    scale = min(1.0, max_height / height)
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


class ClipEncoder:
    """Writes one clip as constant-frame-rate H.264, taking source frames as they come.

    Frames arrive with their source times; each output slot shows the latest source frame at or
    before it, so variable-rate sources become constant-rate clips of the right length.
    """

    def __init__(
        self,
        path: str,
        start: float,
        fps: Fraction,
        size: tuple[int, int],
        rotation: int = 0,
        preset: str = "ultrafast",
        crf: int = 23,
        threads: int = 1,
    ):
        self.path = path
        self.start = start
        self.fps = fps
        self.width, self.height = size
        self.rotation = rotation
        gop = max(1, int(float(fps)))  # 29.97 fps: 29 frames, so never more than a second apart
        options = {
            "preset": preset,
            "crf": str(crf),
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "tune": "fastdecode",
            "movflags": "+faststart",
        }
        self._writer = VideoWriter(path, size, fps, options, threads=threads, in_place=True)  # the build renames it
        self._scaler = VideoReformatter()
        self._held: av.VideoFrame | None = None
        self.frames = 0

    def _slot_time(self, n: int) -> float:
        return self.start + n / float(self.fps)

    def _prepare(self, frame: av.VideoFrame) -> av.VideoFrame:
        if not self.rotation:
            return self._scaler.reformat(frame, width=self.width, height=self.height, format="yuv420p")
        # rotated sources: scale in stored orientation, turn the pixels, then convert for x264
        stored_w, stored_h = (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)
        rgb = self._scaler.reformat(frame, width=stored_w, height=stored_h, format="rgb24").to_ndarray()
        rgb = np.ascontiguousarray(np.rot90(rgb, k=self.rotation // 90))
        return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")

    def _emit(self, frame: av.VideoFrame) -> None:
        self._writer.write(frame, self.frames)  # one frame object may fill several slots
        self.frames += 1

    def add(self, t: float, frame: av.VideoFrame) -> None:
        """Offer the source frame shown from time t on."""
        prepared = self._prepare(frame)
        eps = 0.25 / float(self.fps)
        while self._held is not None and self._slot_time(self.frames) < t - eps:
            self._emit(self._held)
        if self._held is None and self._slot_time(self.frames) < t - eps:
            # the first source frame arrives late: show it from the clip's start
            while self._slot_time(self.frames) < t - eps:
                self._emit(prepared)
        self._held = prepared

    def finish(self, end: float) -> int:
        """Fill the slots up to `end` with the last frame, flush and close; returns frames written."""
        eps = 0.25 / float(self.fps)
        if self._held is not None:
            while self._slot_time(self.frames) < end - eps:
                self._emit(self._held)
        self._close()
        return self.frames

    def _close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self._writer.abort()
