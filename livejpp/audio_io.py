"""Audio in for `live`: a capture device (sounddevice), or a file played as if it were live.

The device callback only copies the block it is given into a queue: resampling to the analysis
rate happens on the reader's side. A device that is missing or vanishes is retried every second and
picked up when it appears; until then the source delivers nothing, says why in `problem`, and the
show goes on.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path

import av
import numpy as np

from livejpp.errors import LivejppError
from livejpp.media.decode import AUDIO_RATE, read_audio_file

log = logging.getLogger("livejpp.audio")
CAPTURE_RATE = 48000
STALLED_AFTER = 2.0  # seconds an open stream may go without a block before it counts as stopped


def list_devices() -> list[dict]:
    import sounddevice as sd

    return [
        {
            "index": i,
            "name": d["name"],
            "inputs": d["max_input_channels"],
            "outputs": d["max_output_channels"],
            "rate": d["default_samplerate"],
        }
        for i, d in enumerate(sd.query_devices())
    ]


def device_fingerprint() -> tuple:
    """What changes when a capture device appears: ALSA's device files (a card plugged in), a sound
    server's socket (PulseAudio or PipeWire started). Cheap enough to look at every second."""
    try:
        cards = tuple(sorted(os.listdir("/dev/snd")))
    except OSError:
        cards = ()
    runtime = os.environ.get("PULSE_RUNTIME_PATH") or os.path.join(
        os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{getattr(os, 'getuid', lambda: 0)()}"), "pulse"
    )
    sockets = (os.path.join(runtime, "native"), os.environ.get("PULSE_SERVER", "").removeprefix("unix:"))
    return cards, tuple(os.path.exists(path) for path in sockets if path)


class Source:
    """Something that delivers mono float32 audio at AUDIO_RATE, in blocks, with their arrival time."""

    problem: str = ""  # why it delivers nothing (no device, device "X" not found, file unreadable); "" if it can
    opening: bool = False  # still trying to open for the first time: no verdict on what it hears yet
    latency: float = 0.0  # seconds from the sound in the room to its arrival, as the device reports it

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read(self) -> tuple[np.ndarray, float]:
        """All audio delivered since the last read, and the wall time the newest sample arrived."""
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        return False


class FileSource(Source):
    """A song released on the wall clock, as a live input would deliver it (and, with `play`, heard
    through the default output device)."""

    def __init__(self, path: str | Path, play: bool = False):
        self.path = str(path)
        try:
            self.samples = read_audio_file(path)
        except LivejppError as exc:  # a damaged song: the show goes on with clips chosen without audio
            self.samples = np.zeros(0, np.float32)
            self.problem = f"cannot read {path}: {getattr(exc, 'reason', exc)}"
        if not len(self.samples) and not self.problem:
            self.problem = f"cannot read {path}: no audio in it"
        self.play = play
        self._started = 0.0
        self._given = 0
        self._stream = None

    def start(self) -> None:
        self._started = time.monotonic()
        if self.play and len(self.samples):
            try:
                import sounddevice as sd

                self._stream = sd.OutputStream(samplerate=AUDIO_RATE, channels=1, dtype="float32")
                self._stream.start()
                threading.Thread(target=self._feed_output, daemon=True, name="audio-out").start()
            except Exception as exc:  # noqa: BLE001 - no output device: play silently on the clock
                log.warning("no audio output (%s): playing %s silently on the wall clock", exc, self.path)
                self._stream = None

    def _feed_output(self) -> None:
        block = 1024
        for i in range(0, len(self.samples), block):
            if self._stream is None:
                return
            self._stream.write(self.samples[i : i + block, None])

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def read(self) -> tuple[np.ndarray, float]:
        now = time.monotonic()
        due = min(len(self.samples), int((now - self._started) * AUDIO_RATE))
        out = self.samples[self._given : due]
        self._given = due
        return out, now

    @property
    def finished(self) -> bool:
        """Played to its end (a song that cannot be read never ends the show: it runs until quit)."""
        return bool(len(self.samples)) and self._given >= len(self.samples)


class DeviceSource(Source):
    """Capture from a sounddevice input (name, index, or None for the default); reconnects."""

    def __init__(self, device: str | int | None = None, rate: int = CAPTURE_RATE):
        self.device = device
        self.rate = rate
        self._blocks: queue.Queue = queue.Queue(maxsize=1000)
        self._stream = None
        self._stop = threading.Event()
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        self._last_arrival = self._last_block = time.monotonic()
        self.dropped_blocks = 0
        self.opens = 0  # 1 on a clean run; more when the device vanished and came back
        self.open_failures = 0  # tries that found no device to open
        self.problem = ""
        self.opening = True  # until the first try to open has succeeded or failed
        self._devices_seen = device_fingerprint()  # PortAudio listed the devices at import
        try:  # PortAudio starts here, on the caller's thread, before the show logs: while it starts,
            import sounddevice  # noqa: F401 - sounddevice silences stderr, and lines logged then are lost
        except Exception as exc:  # noqa: BLE001 - no PortAudio library: the first try says so
            log.debug("sounddevice not available: %s", exc)

    def _callback(self, indata, frames, time_info, status) -> None:  # the audio thread: copy, nothing else
        self._last_block = time.monotonic()
        try:
            self._blocks.put_nowait((indata.copy(), time.monotonic()))
        except queue.Full:
            self.dropped_blocks += 1

    def _open(self) -> None:
        import sounddevice as sd

        self._stream = sd.InputStream(
            device=self.device,
            samplerate=self.rate,
            channels=1,
            dtype="float32",
            callback=self._callback,
            blocksize=512,
        )
        self._stream.start()
        self._last_block = time.monotonic()
        self.problem = ""
        log.info("capturing from %s at %d Hz", self._stream.device, self.rate)

    @property
    def latency(self) -> float:
        """The capture stream's input latency as PortAudio reports it (0 while no device is open)."""
        stream = self._stream
        try:
            return float(stream.latency) if stream is not None else 0.0
        except Exception:  # noqa: BLE001 - a stream closing under us reports nothing
            return 0.0

    def _why_not(self, exc: Exception) -> str:
        """What the VJ should know about a failed open, in a few words."""
        import sounddevice as sd

        try:
            inputs = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
        except Exception:  # noqa: BLE001 - PortAudio without any device may fail to list them
            inputs = []
        if self.device is None:
            return "no capture device" if not inputs else f"the default capture device cannot be opened ({exc})"
        if isinstance(exc, ValueError) or not inputs:  # sounddevice: "No input device matching ..."
            return f'device "{self.device}" not found' + ("" if inputs else " (no capture device at all)")
        return f'device "{self.device}" cannot be opened ({exc})'

    def _rescan(self) -> None:
        """PortAudio lists devices once, when it starts: restart it when a device may have appeared
        (a card plugged in, a sound server started), so it is found. Only then: sounddevice silences
        stderr while PortAudio starts, and the show's log lines would be lost meanwhile."""
        import sounddevice as sd

        seen = device_fingerprint()
        if seen == self._devices_seen:
            return
        self._devices_seen = seen
        try:
            sd._terminate()
            sd._initialize()
        except Exception as exc:  # noqa: BLE001 - the next try says what is wrong
            log.debug("audio devices not rescanned: %s", exc)

    def start(self) -> None:
        threading.Thread(target=self._watch, daemon=True, name="audio-watch").start()

    def _watch(self) -> None:
        """Open the device; when it stops or vanishes, retry every second until it is back."""
        while not self._stop.is_set():
            if self._stream is None or not self._stream.active or self._stalled():
                if self._stream is not None:
                    log.warning("audio device %s stopped: reconnecting", self.device)
                    self._close()
                try:
                    self._open()
                    self.opens += 1
                except Exception as exc:  # noqa: BLE001 - PortAudio raises several kinds
                    self._close()
                    self.open_failures += 1
                    self.problem = self._why_not(exc)  # the show says it once (engine/live.py)
                    log.debug("audio device %s not available: %s", self.device, exc)
                    self._rescan()
                self.opening = False
            self._stop.wait(1.0)

    def _stalled(self) -> bool:
        """An open stream that delivers nothing: its sound server went away and PortAudio still calls the
        stream active (seen with PulseAudio's `pactl exit` under load). A silent device still delivers blocks."""
        return time.monotonic() - self._last_block > STALLED_AFTER

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a vanished device may fail; it is gone anyway
                pass

    def stop(self) -> None:
        self._stop.set()
        self._close()

    def read(self) -> tuple[np.ndarray, float]:
        parts = []
        while True:
            try:
                block, arrival = self._blocks.get_nowait()
            except queue.Empty:
                break
            self._last_arrival = arrival
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T, np.float32), format="fltp", layout="mono")
            frame.sample_rate = self.rate
            parts += [f.to_ndarray()[0] for f in self._resampler.resample(frame)]
        samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return samples, self._last_arrival
