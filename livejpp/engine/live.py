"""`livejpp live`: the show. Three kinds of work on their own threads:

- audio: the device callback (or the file's clock) only delivers samples;
- analysis: at every hop, the engine decides (dropping stale hops when it falls behind);
- decoding: a worker keeps the pictures of the clips on screen ready for the next frame, and the
  first picture of the next candidates decoded ahead, so a cut shows at once;

and the window's thread only uploads the ready pictures and draws (render/window.py).
"""

from __future__ import annotations

import ctypes
import logging
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livejpp.audio_io import Source
from livejpp.engine.engine import Engine, EngineSettings
from livejpp.engine.selector import Cut
from livejpp.render.compose import crossfade_weight
from livejpp.render.player import FramePool

log = logging.getLogger("livejpp.live")


@dataclass
class Layer:
    cut: Cut
    decided_at: float  # wall time the engine decided it
    shown_at: float | None = None  # wall time its first picture was drawn


@dataclass
class ShowStats:
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    dropped: int = 0
    frame_times: list[float] = field(default_factory=list)
    analysis_latency: list[float] = field(default_factory=list)  # newest audio arrival → decision
    cut_latency: list[float] = field(default_factory=list)  # scheduled beat → first picture drawn
    cuts: list[dict] = field(default_factory=list)
    memory: list[tuple[float, float]] = field(default_factory=list)  # (seconds, resident MB)
    missing_pictures: int = 0
    skipped_clips: list[str] = field(default_factory=list)


def bound_heap_growth() -> None:
    """Keep big picture buffers out of glibc's heap. Decoded and converted frames (megabytes each,
    allocated on one thread, freed on another) otherwise raise malloc's dynamic mmap threshold and
    fragment the heap: a 5-minute show grew 120 MB with it, and stays flat without it (measured)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 128 * 1024)


def resident_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


class LiveShow:
    """The state the window draws, fed by the analysis and decoding threads."""

    def __init__(
        self,
        library: str | Path,
        source: Source,
        model: str | Path = "default",
        settings: EngineSettings | None = None,
        size: tuple[int, int] = (1280, 720),
        fps: float = 30.0,
    ):
        bound_heap_growth()
        self.engine = Engine(library, model, settings)
        self.source = source
        self.size = size
        self.fps = fps
        self.stats = ShowStats()
        self.lock = threading.Lock()
        self.layers: list[Layer] = []  # [outgoing, incoming] at most
        self.pending: list[Layer] = []  # decided, waiting for their beat
        self.pictures: dict[int, tuple[int, np.ndarray]] = {}  # clip → (serial, picture for the next frame)
        self.blackout = False
        self.brightness = 1.0
        self.transition = 0  # index into compose.TRANSITIONS
        self.effect = 0  # index into compose.EFFECTS
        self.effect_amount = 0.5
        self.crossfade_beats = self.engine.settings.selector.crossfade_beats
        self.stop_event = threading.Event()
        self.audio_seen = 0.0  # seconds of audio analysed
        self.keep_audio = False  # set by the window when recording: the input audio goes into the file
        self.recorded_audio: list[np.ndarray] = []
        self._serial = 0
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0

    # --- clocks --------------------------------------------------------------------------------
    def show_time(self) -> float:
        """Seconds since the show started: the audio clock's time base."""
        return time.monotonic() - self._t0

    # --- threads -------------------------------------------------------------------------------
    def start(self) -> None:
        self._t0 = time.monotonic()
        self.source.start()
        for target, name in ((self._analyse, "analysis"), (self._decode, "decoder")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self.source.stop()

    def _analyse(self) -> None:
        hop = self.engine.settings.hop
        while not self.stop_event.wait(hop / 4):
            samples, arrival = self.source.read()
            if not len(samples):
                continue
            if self.keep_audio:
                self.recorded_audio.append(samples)
            cuts = self.engine.push(samples, latest_only=True)
            decided = time.monotonic()
            if len(self.engine.hops) and self.engine.hops[-1].time > self.audio_seen:
                self.stats.analysis_latency.append(decided - arrival)
                self.audio_seen = self.engine.hops[-1].time
            with self.lock:
                for cut in cuts:
                    self.pending.append(Layer(cut, decided))

    def _decode(self) -> None:
        """Pictures for the next frame of every clip on screen; candidates' first pictures ahead."""
        pool = FramePool(self.size, keep=8)
        period = 1.0 / self.fps
        try:
            while not self.stop_event.wait(period / 3):
                t = self.show_time() + period
                with self.lock:
                    wanted = [(layer.cut, t - layer.cut.time) for layer in self.layers + self.pending[:1]]
                for cut, elapsed in wanted:
                    self._prepare(pool, cut.clip, cut.offset + max(elapsed, 0.0))
                candidates = [clip for clip, _ in self.engine.neighbours[:3]]
                for clip in candidates:  # the likely next cuts: first picture ready
                    self._prepare(pool, clip, self.engine.selector.resume_at.get(clip, 0.0), cache_only=True)
                keep = {cut.clip for cut, _ in wanted} | set(candidates)
                for clip in [c for c in self.pictures if c not in keep]:  # memory stays bounded
                    self.pictures.pop(clip, None)
        finally:
            pool.close()

    def _prepare(self, pool: FramePool, clip: int, clip_time: float, cache_only: bool = False) -> None:
        record = self.engine.records.get(clip)
        if record is None or record.uid in self.stats.skipped_clips:
            return
        path, base, length = record.pictures(self.engine.library)
        try:
            picture = pool.get(clip, path, base, length).frame_at(clip_time % max(length, 1e-3))
        except Exception as exc:  # noqa: BLE001 - a missing or corrupt clip is skipped, the show goes on
            log.warning("skipping clip %s: %s", record.uid, exc)
            self.stats.skipped_clips.append(record.uid)
            return
        if cache_only and clip in self.pictures:
            return
        self._serial += 1
        self.pictures[clip] = (self._serial, picture)

    # --- what the window asks each frame -------------------------------------------------------
    def frame(self) -> tuple[np.ndarray | None, np.ndarray | None, float, list[Layer]]:
        """(outgoing picture, incoming picture, crossfade weight, layers newly on screen)."""
        now = self.show_time()
        newly = []
        with self.lock:
            while self.pending and self.pending[0].cut.time <= now:
                layer = self.pending.pop(0)
                if self.engine.records[layer.cut.clip].uid in self.stats.skipped_clips:
                    continue
                self.layers = (self.layers + [layer])[-2:]
                newly.append(layer)
            layers = list(self.layers)
        if not layers:
            return None, None, 1.0, newly
        incoming = layers[-1]
        weight = crossfade_weight(now, incoming.cut.time, incoming.cut.crossfade) if len(layers) > 1 else 1.0
        a = self.pictures.get(layers[0].cut.clip) if len(layers) > 1 else None
        b = self.pictures.get(incoming.cut.clip)
        if b is None:
            self.stats.missing_pictures += 1
        return (a[1] if a else None), (b[1] if b else None), weight, newly

    def drawn(self, layers: list[Layer], has_picture: bool) -> None:
        now = time.monotonic()
        for layer in layers:
            layer.shown_at = now
            self.stats.cut_latency.append(max(0.0, self.show_time() - layer.cut.time))
            beats = np.array(self.engine.beats) if self.engine.beats else np.array([layer.cut.time])
            self.stats.cuts.append(
                {
                    "time": round(layer.cut.time, 4),
                    "clip": self.engine.records[layer.cut.clip].uid,
                    "offset": layer.cut.offset,
                    "crossfade": round(layer.cut.crossfade, 4),
                    "reason": layer.cut.reason,
                    "beat_offset": round(float(np.min(np.abs(beats - layer.cut.time))), 4),
                    "shown_late": round(self.stats.cut_latency[-1], 4),
                    "picture_ready": has_picture,
                }
            )

    # --- controls (keys now; OSC and MIDI later go through the same methods) --------------------
    def next_clip(self) -> None:
        now = self.show_time()
        cut = self.engine.selector.on_beat(
            now, self.engine.beat_count, self.engine.clock.period, self.engine.neighbours, force=True
        )
        if cut is not None:
            with self.lock:
                self.pending.insert(0, Layer(cut, time.monotonic()))

    def toggle_hold(self) -> bool:
        self.engine.selector.held = not self.engine.selector.held
        return self.engine.selector.held

    def tap(self) -> None:
        self.engine.clock.tap(self.show_time())

    def set_crossfade(self, beats: float) -> None:
        from dataclasses import replace

        self.crossfade_beats = max(0.0, beats)
        selector = self.engine.selector
        selector.settings = replace(selector.settings, crossfade_beats=self.crossfade_beats)

    def summary(self) -> dict:
        s = self.stats
        elapsed = time.monotonic() - s.started

        def q(xs, p):
            return round(float(np.percentile(xs, p)) * 1000, 2) if len(xs) else None

        return {
            "seconds": round(elapsed, 2),
            "frames_drawn": s.frames,
            "frames_dropped": s.dropped,
            "fps": round(s.frames / elapsed, 2) if elapsed else 0.0,
            "frame_interval_ms": {"p50": q(np.diff(s.frame_times), 50), "p99": q(np.diff(s.frame_times), 99)},
            "analysis_latency_ms": {
                "p50": q(s.analysis_latency, 50),
                "p99": q(s.analysis_latency, 99),
                "hops": len(s.analysis_latency),
                "dropped_hops": self.engine.dropped_hops,
            },
            "cut_latency_ms": {"p50": q(s.cut_latency, 50), "max": q(s.cut_latency, 100)},
            "cuts": s.cuts,
            "bpm": round(self.engine.clock.bpm, 2),
            "missing_pictures": s.missing_pictures,
            "audio": {
                "device_opens": getattr(self.source, "opens", None),
                "dropped_blocks": getattr(self.source, "dropped_blocks", None),
                "seconds_analysed": round(self.engine.analyser.seconds, 2),
            },
            "skipped_clips": s.skipped_clips,
            "memory_mb": {
                "peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
                "over_time": s.memory,
            },
        }
