"""Writing video files: H.264 (yuv420p) in mp4, with AAC stereo sound, through PyAV. The one place that
does it: the library's playback clips, `livejpp render` and the live show's recording all write here.

A file is written beside its final place (livejpp.partfiles) and renamed into place when complete, so
nothing is left half-written; a place that cannot be written or a size x264 refuses is one line naming
the file, raised before any work is done.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from livejpp.errors import LivejppError
from livejpp.media.sizes import SizeError, check_encodable
from livejpp.partfiles import part_path, remove_stale_parts

AUDIO_RATE_OUT = 48000  # the files' sound: AAC, stereo, 48 kHz
AUDIO_LAYOUTS = {1: "mono", 2: "stereo"}


class WriterError(LivejppError):
    """A video file that cannot be written where or as asked."""


def check_writable(out: Path) -> None:
    """Fail before the work, not at the final rename: the output must be a file in an existing, writable folder."""
    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise WriterError(f"{out}: is a folder; give the video a file name (like {out / 'video.mp4'})")
    if not folder.is_dir():
        raise WriterError(f"{out}: cannot write here (no folder {folder})")
    if not os.access(folder, os.W_OK):
        raise WriterError(f"{out}: cannot write here (folder {folder} is not writable)")


class AudioTrack:
    """AAC stereo at 48 kHz in a container being written: float samples in at any rate (mono or stereo),
    resampled when they differ, stamped by the samples written (the sound starts with the file)."""

    def __init__(self, container):
        self.container = container
        self.stream = container.add_stream("aac", rate=AUDIO_RATE_OUT)
        self.stream.layout = "stereo"
        self.resampler: av.AudioResampler | None = None
        self.read = 0  # samples taken, at their own rate
        self.written = 0  # samples encoded, at AUDIO_RATE_OUT

    def write(self, samples: np.ndarray, rate: int) -> None:
        """`samples`: float32, (channels, n) planar."""
        samples = np.ascontiguousarray(samples, np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=AUDIO_LAYOUTS[len(samples)])
        frame.sample_rate, frame.pts, frame.time_base = rate, self.read, Fraction(1, rate)
        self.read += frame.samples
        if (rate, len(samples)) == (AUDIO_RATE_OUT, 2):
            self._encode([frame])
            return
        if self.resampler is None:
            self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE_OUT)
        self._encode(self.resampler.resample(frame))

    def _encode(self, frames: Iterable[av.AudioFrame]) -> None:
        for frame in frames:
            frame.pts, frame.time_base = self.written, Fraction(1, AUDIO_RATE_OUT)
            self.written += frame.samples
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def finish(self) -> None:
        if self.resampler is not None:
            self._encode(self.resampler.resample(None))
        for packet in self.stream.encode(None):
            self.container.mux(packet)


class VideoWriter:
    """One H.264/mp4 file: open it (checked at once), write pictures with their frame numbers (pts, in
    1/fps), sound if asked for, then `close` (renamed into place) or `abort` (nothing left behind).

    `in_place`: write straight to `path` (the caller names its own part file, as the library build does)."""

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fps: float | Fraction,
        options: dict[str, str],
        audio: bool = False,
        threads: int | None = None,
        in_place: bool = False,
    ):
        self.path = Path(path)
        try:
            check_encodable(size)
        except SizeError as exc:
            raise WriterError(f"{self.path}: {exc}") from None
        self.fps = fps if isinstance(fps, (int, Fraction)) else Fraction(fps).limit_denominator(1001)
        self.width, self.height = size
        self.tmp = self.path if in_place else self._start_part()
        try:  # created now (PyAV opens the file only at the first frame), so an unwritable place fails at once
            self.tmp.touch()
            self.container = av.open(str(self.tmp), "w", format="mp4")
        except (av.FFmpegError, OSError) as exc:
            with contextlib.suppress(OSError):  # a read-only folder refuses even removing what is not there
                self.tmp.unlink(missing_ok=True)
            raise WriterError(f"{self.path}: cannot write here ({getattr(exc, 'strerror', None) or exc})") from exc
        self.stream = self.container.add_stream("libx264", rate=self.fps)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = dict(options)
        if threads is not None:
            self.stream.codec_context.thread_count = threads
        self.time_base = 1 / Fraction(self.fps)
        self.audio = AudioTrack(self.container) if audio else None

    def _start_part(self) -> Path:
        """The hidden file the video is written into (what a killed writer left of it is removed)."""
        check_writable(self.path)
        remove_stale_parts(self.path.parent if str(self.path.parent) else Path("."), self.path.name)
        return part_path(self.path)

    def write(self, picture: np.ndarray | av.VideoFrame, pts: int, pixels: str = "rgb24") -> None:
        """A picture (an av.VideoFrame, or an array of `pixels`: rgb24 or bgra, top row first) shown
        from frame `pts` on. The encoder keeps its own reference: one frame may be written again."""
        frame = picture if isinstance(picture, av.VideoFrame) else av.VideoFrame.from_ndarray(picture, format=pixels)
        frame.pts = pts
        frame.time_base = self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def finish_video(self) -> None:
        """No more pictures: the encoder's last ones are written (the sound may still follow)."""
        for packet in self.stream.encode(None):
            self.container.mux(packet)

    def close(self, flushed: bool = False, commit: bool = True) -> Path:
        """Flush, close and (`commit`) rename into place; the final path. Without `commit` the closed
        file stays at `tmp` for more work (the recording's sound: `add_audio`) until `commit()`."""
        if not flushed:
            self.finish_video()
        if self.audio is not None:
            self.audio.finish()
        self.container.close()
        if commit:
            self.commit()
        return self.path

    def commit(self) -> None:
        if self.tmp != self.path:
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Closed and removed: nothing of it is left."""
        try:
            self.container.close()
        except (av.FFmpegError, OSError):
            pass
        self.tmp.unlink(missing_ok=True)


def add_audio(video: Path, pcm: Path, rate: int) -> None:
    """Rewrite a finished video with sound added (raw mono float32 at `rate`, on disk): the pictures by
    stream copy, the sound encoded a minute at a time (an hour's show would need gigabytes at once)."""
    out_path = video.with_name(video.name + ".av.mp4")
    try:
        with av.open(str(video)) as src, av.open(str(out_path), "w", format="mp4") as out, open(pcm, "rb") as raw:
            v_in = src.streams.video[0]
            v_out = out.add_stream_from_template(v_in)
            track = AudioTrack(out)
            for packet in src.demux(v_in):
                if packet.dts is None:
                    continue
                packet.stream = v_out
                out.mux(packet)
            while len(chunk := np.frombuffer(raw.read(60 * rate * 4), np.float32)):
                track.write(chunk[None, :], rate)
            track.finish()
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    os.replace(out_path, video)
