"""What a VJ checks on a recorded show in sync (issue 12): where the song starts in the show's own input, and
whether every recorded frame is the song's own video at the song's position. Shared by tests/test_live_sync.py
and tools/bench.py sync (tools/sync_live_bench.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livejpp.media.decode import AUDIO_RATE, read_audio_file
from livejpp.media.player import ClipFrames

SIZE = (320, 180)  # the shows these checks record


def song_start(recording: Path, played: np.ndarray, probe_seconds: float = 4.0) -> float:
    """Seconds into the recording's audio (the show's input, as recorded) at which `played` begins: the peak of
    their cross-correlation (FFT) over the first `probe_seconds` of what was played."""
    heard = read_audio_file(recording)
    probe = played[: int(probe_seconds * AUDIO_RATE)]
    n = 1 << int(np.ceil(np.log2(len(heard) + len(probe))))
    corr = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(probe, n)), n)[: len(heard)]
    return float(np.argmax(corr)) / AUDIO_RATE


@dataclass
class FrameCheck:
    """Recorded frames against the film: the position each showed minus the truth (ms), the frames skipped as
    stamped after a stall, the frames where the film moves and how many of those are its own frame +-1."""

    errors_ms: list[float] = field(default_factory=list)
    stalled: int = 0
    unsynced: list[float] = field(default_factory=list)  # show times of frames out of sync where it should be
    moving: int = 0
    closest: int = 0
    off: list[float] = field(default_factory=list)  # show times of frames whose picture is not the film's


def check_frames(
    film: Path,
    fps: float,
    times: list[float],
    positions: list[float | None],
    frames: list[np.ndarray],
    truth: Callable[[float], float],
    since: float,
    until: float,
) -> FrameCheck:
    """Each recorded frame shown between `since` and `until` (show time): its sync position against truth(t),
    and its picture against the film's frames at truth(t) and one and two frames either side."""
    source_frame = 1 / fps
    near_frames = {k: ClipFrames(film, SIZE) for k in (-2, -1, 0, 1, 2)}
    out = FrameCheck()
    for n, (t, position, picture) in enumerate(zip(times, positions, frames, strict=True)):
        if t < since or t > until:
            continue
        if n and t - times[n - 1] > 0.1:  # after a stall (a dropped frame) the frame is stamped later than drawn
            out.stalled += 1
            continue
        if position is None:
            out.unsynced.append(t)
            continue
        at = truth(t)
        out.errors_ms.append((position - at) * 1000)
        near = {k: near_frames[k].frame_at(max(0.0, at + k * source_frame)).astype(int) for k in near_frames}
        off = {k: np.abs(picture - frame).mean() for k, frame in near.items()}
        if min(off[k] for k in (-1, 0, 1)) >= 8:
            out.off.append(t)
        if np.abs(near[-2] - near[2]).mean() > 6:  # the film moves here: two frames early or late would show
            out.moving += 1
            out.closest += min(off, key=off.get) in (-1, 0, 1)
    return out
