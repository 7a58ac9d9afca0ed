"""Measuring the A/V offset: taps along with the beat heard, or a film of the flashes and clicks.

Tap along (`live --calibrate`): the VJ taps on the beats they hear; how late the taps fall after
the beats' room times (engine/latency.py) is the offset the latency model misses.
Flash and click (`live --calibrate loop`): the window flashes white and the default output clicks on
each beat of a fixed 120 BPM grid, each timed to meet in the room (the click's output latency taken
as PortAudio reports it). `livejpp calibrate FILM` finds how far the flashes fall from the clicks, to
within half a frame of the film:
- a film of the screen and the speaker together (a phone: its camera and microphone are in step):
  a flash seen d after its click means the pictures must move d earlier (the display's side);
- the show's own `--record` (`--recorded`): each flash is stamped with the audio time it was drawn
  for, and the sound is what the input heard. A click found d before its flash was heard d earlier
  on the audio clock than the latencies predict: the sound of each audio time is in the room d later
  than they say, so the pictures must move d later (the capture's side).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from livejpp.errors import LivejppError
from livejpp.media.decode import AUDIO_RATE, read_audio_file

log = logging.getLogger("livejpp.calibrate")


#: Taps a calibration takes: 8 beats, two bars.
CALIBRATION_TAPS = 8
#: Taps scattered wider than this (a fraction of a beat, median distance from their median) measure nothing.
MAX_TAP_SPREAD = 0.15


def tap_offset(taps: list[float], beats: list[float], period: float) -> tuple[float, float]:
    """(offset, spread) in seconds: the median of how late each tap falls after its nearest beat
    (negative: early), and the taps' median distance from it. Taps and beats on one clock. A tap is
    matched to the nearest beat, so an offset is only known to within half a beat."""
    grid = np.sort(np.asarray(beats, float))
    if not len(grid):
        raise ValueError("no beats heard yet: the music's beats are what the taps are measured against")
    taps_a = np.asarray(taps, float)
    nearest = grid[np.abs(grid[None, :] - taps_a[:, None]).argmin(axis=1)]
    nearest = nearest + np.round((taps_a - nearest) / period) * period  # past the grid's ends: extended
    errors = taps_a - nearest
    offset = float(np.median(errors))
    return offset, float(np.median(np.abs(errors - offset)))


#: How long each flash stays white, and the click's length (seconds).
FLASH_SECONDS = 0.1
CLICK_SECONDS = 0.01
#: The fixed grid of the flash-and-click loop.
LOOP_BPM = 120.0


class ClickTrack:
    """A click on each beat, out of the default output device, each leaving it when its beat sounds
    in the room. `beats(start, end)`: the beats' room times in [start, end), on the show clock."""

    def __init__(self, beats: Callable[[float, float], list[float]], t0: float, rate: int = 48000):
        import sounddevice as sd

        self.beats, self.t0, self.rate = beats, t0, rate
        n = int(CLICK_SECONDS * rate)
        self.click = (0.8 * np.sin(2 * np.pi * 2000 * np.arange(n) / rate) * np.hanning(n)).astype(np.float32)
        self.played: list[float] = []  # room times of the clicks written
        self.stream = sd.OutputStream(samplerate=rate, channels=1, dtype="float32", callback=self._fill)
        self.stream.start()

    def _fill(self, outdata, frames, time_info, status) -> None:  # PortAudio's thread: cheap
        outdata.fill(0)
        ahead = time_info.outputBufferDacTime - time_info.currentTime  # 0 where the host does not say
        if ahead <= 0:
            ahead = self.stream.latency
        start = time.monotonic() - self.t0 + ahead  # show time the buffer's first sample leaves the device
        for beat in self.beats(start - CLICK_SECONDS, start + frames / self.rate):
            i = int(round((beat - start) * self.rate))
            lo, hi = max(i, 0), min(i + len(self.click), frames)
            if lo < hi:
                outdata[lo:hi, 0] = self.click[lo - i : hi - i]
                if i >= 0:
                    self.played.append(beat)

    def stop(self) -> None:
        self.stream.close()


def _rising(values: np.ndarray, times: np.ndarray, threshold: float, gap: float) -> np.ndarray:
    """Times at which `values` rise through `threshold`, at least `gap` seconds apart."""
    above = values >= threshold
    starts = times[1:][above[1:] & ~above[:-1]]
    kept: list[float] = []
    for t in starts:
        if not kept or t - kept[-1] >= gap:
            kept.append(float(t))
    return np.array(kept)


def flashes(path: str | Path) -> np.ndarray:
    """When the film's picture turns white: its mean brightness rises through the middle of its darkest
    and brightest. The flash began between the last dark frame and the first white one: the middle
    of the two is the estimate, good to half a frame."""
    levels, times = [], []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                levels.append(float(frame.to_ndarray(format="gray").mean()))
                times.append(float(frame.time))
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise LivejppError(f"{path}: no video to find flashes in ({exc})") from None
    levels_a = np.array(levels)
    if len(levels_a) < 2 or levels_a.max() - levels_a.min() < 40:
        raise LivejppError(f"{path}: no flashes in its picture (brightness {levels_a.min():.0f}..{levels_a.max():.0f})")
    times_a = np.array(times)
    half_frame = float(np.median(np.diff(times_a))) / 2
    return _rising(levels_a, times_a, (levels_a.min() + levels_a.max()) / 2, FLASH_SECONDS) - half_frame


def clicks(path: str | Path) -> np.ndarray:
    """Times (s) of the clicks in the film's sound: the envelope rising through a third of its peak."""
    audio = np.abs(read_audio_file(path))
    if not len(audio) or audio.max() <= 1e-4:
        raise LivejppError(f"{path}: no clicks in its sound")
    return _rising(audio, np.arange(len(audio)) / AUDIO_RATE, audio.max() / 3, FLASH_SECONDS)


def flash_click_offset(path: str | Path) -> tuple[float, float, int]:
    """(offset, spread, pairs): how long after its click each flash is seen (median; negative:
    before), their median distance from it, and how many flashes had a click within half a beat."""
    seen, heard = flashes(path), clicks(path)
    half = 30.0 / LOOP_BPM
    pairs = []
    for t in seen:
        nearest = heard[np.argmin(np.abs(heard - t))]
        if abs(t - nearest) < half:
            pairs.append(t - nearest)
    if len(pairs) < 4:
        raise LivejppError(f"{path}: {len(pairs)} flashes with a click near them; needs 4 or more")
    offset = float(np.median(pairs))
    return offset, float(np.median(np.abs(np.array(pairs) - offset))), len(pairs)
