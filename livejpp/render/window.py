"""The live window (pyglet, OpenGL 3.3 core): uploads the pictures the decoder has ready, draws the
crossfade shader and the HUD, and takes the keys. Headless (EGL) for tests and render-only machines.
"""

from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from livejpp.errors import LivejppError
from livejpp.render.compose import LayerDraw
from livejpp.render.hud import HUD_REFRESH, hud_text

log = logging.getLogger("livejpp.window")


RECORD_QUEUE = 16  # frames the encoder may be behind (1280x720 BGRA: 3.7 MB each) before the recording drops
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "crf": "20"}  # keeps up at 720p30 on a core
ENCODER_NICENESS = 10  # the render thread comes first: a busy machine slows the recording, not the show


class WindowError(LivejppError):
    """No window (or offscreen surface) to draw the show in."""


class Recorder:
    """What the window shows, at the window's rate, with the input audio: an H.264/AAC mp4.

    The render thread only reads the pixels back (BGRA, bottom row first, into a recycled buffer);
    flipping, colour conversion and x264 run on a lower-priority encoder thread (PyAV releases the
    GIL there). When the encoder falls RECORD_QUEUE frames behind, the recording skips frames (the
    file holds the previous picture longer) and the show keeps its own."""

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fps: float,
        options: dict | None = None,
        queue_frames: int = RECORD_QUEUE,
    ):
        import av

        from livejpp.partfiles import part_path, remove_stale_parts

        self.path = Path(path)
        audio_final = self.path.with_name(self.path.name + ".f32")
        for final in (self.path, audio_final):  # what a killed show's recording left
            remove_stale_parts(self.path.parent, final.name)
        self.tmp = part_path(self.path)
        self.container = av.open(str(self.tmp), "w", format="mp4")
        self.fps = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream("libx264", rate=self.fps)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = dict(options or X264_OPTIONS)
        width, height = size
        self.free: queue.SimpleQueue = queue.SimpleQueue()  # buffers the render thread may read into
        for _ in range(queue_frames):
            self.free.put(np.empty((height, width, 4), np.uint8))
        self.frames: queue.SimpleQueue = queue.SimpleQueue()
        self.times: list[float] = []  # show time of each recorded frame (what was on screen when)
        self.sync_positions: list[float | None] = []  # the video position each showed in sync (None: not)
        self.dropped = 0  # frames shown but not recorded: the encoder was behind
        self.failed: Exception | None = None
        self.audio_path = part_path(audio_final)
        self.audio = open(self.audio_path, "wb")  # noqa: SIM115 - the input audio, on disk: an hour is 300 MB
        self.thread = threading.Thread(target=self._write, daemon=True, name="recorder")
        self.thread.start()

    def add_audio(self, samples: np.ndarray) -> None:
        """Input audio (mono float32 at AUDIO_RATE), kept on disk until the file is closed."""
        if self.failed is not None:
            return
        try:
            self.audio.write(np.ascontiguousarray(samples, np.float32).tobytes())
        except OSError as exc:  # a full disk: the recording stops, the show goes on
            self.failed = exc
            log.warning("recording stopped: %s (the show goes on)", exc)

    def add(self, read_into, show_time: float, sync_position: float | None = None) -> None:
        """A frame: `read_into(buffer)` fills a BGRA buffer (bottom row first, as GL reads it),
        stamped with the show time it was on screen: when the window runs below its rate, the file
        keeps time with the audio, not the count."""
        if self.failed is not None:  # the recording has stopped: no readback for nothing
            return
        try:
            buffer = self.free.get_nowait()
        except queue.Empty:
            if not self.dropped and self.failed is None:
                log.warning("recorder is behind: frames are left out of the recording (the show keeps them)")
            self.dropped += 1
            return
        read_into(buffer)
        self.frames.put((buffer, show_time))
        self.times.append(round(show_time, 4))
        self.sync_positions.append(sync_position)

    def _write(self) -> None:
        import av

        _background_thread("recorder", ENCODER_NICENESS)  # x264's own threads, started from here, inherit both
        last = -1
        while True:
            item = self.frames.get()
            if item is None:
                return
            buffer, show_time = item
            try:
                if self.failed is None:
                    frame = av.VideoFrame.from_ndarray(buffer[::-1], format="bgra")  # flipped as it is copied
                    frame.pts = last = max(last + 1, int(round(show_time * self.fps)))
                    frame.time_base = 1 / self.fps
                    for packet in self.stream.encode(frame):
                        self.container.mux(packet)
            except Exception as exc:  # noqa: BLE001 - whatever stops the recording must not stop its thread
                self.failed = exc
                log.warning("recording stopped: %s (the show goes on)", exc)
            self.free.put(buffer)

    def close(self) -> None:
        import os

        import av

        try:
            self.audio.close()
        except OSError as exc:
            self.failed = self.failed or exc
        self.frames.put(None)
        self.thread.join()
        if self.dropped:
            log.warning("recorder: %d frames shown were left out of %s (encoder behind)", self.dropped, self.path)
        try:
            for packet in self.stream.encode(None) if self.failed is None else ():
                self.container.mux(packet)
            self.container.close()
        except (av.FFmpegError, OSError) as exc:
            self.failed = self.failed or exc
        if self.failed is None and self.audio_path.stat().st_size:
            try:
                _mux_audio(self.tmp, self.audio_path)
            except (av.FFmpegError, OSError) as exc:  # a disk that fills now: the pictures are kept
                self.tmp.with_name(self.tmp.name + ".av.mp4").unlink(missing_ok=True)
                log.warning("recording %s has no sound: %s", self.path, exc)
        self.audio_path.unlink(missing_ok=True)
        if self.failed is not None:
            self.tmp.unlink(missing_ok=True)
            log.warning("no recording written to %s: %s", self.path, self.failed)
            return
        os.replace(self.tmp, self.path)


def _background_thread(name: str, niceness: int) -> None:
    """Name this thread for the OS (top -H, the benchmark) and lower its CPU priority. Linux: both are
    per thread, and threads started from it inherit them; elsewhere it runs as it is."""
    import ctypes
    import os

    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + niceness)
    except (AttributeError, OSError):
        pass


def _mux_audio(video: Path, audio: Path) -> None:
    """Rewrite the recording with the input audio (raw mono float32 at AUDIO_RATE) added: the pictures
    by stream copy, the audio encoded a minute at a time (an hour's show would need gigabytes at once)."""
    import os

    import av

    from livejpp.media.decode import AUDIO_RATE

    out_path = video.with_name(video.name + ".av.mp4")
    with av.open(str(video)) as src, av.open(str(out_path), "w", format="mp4") as out, open(audio, "rb") as pcm:
        v_in = src.streams.video[0]
        v_out = out.add_stream_from_template(v_in)
        a_out = out.add_stream("aac", rate=48000)
        a_out.layout = "stereo"
        for packet in src.demux(v_in):
            if packet.dts is None:
                continue
            packet.stream = v_out
            out.mux(packet)
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        read, written = 0, 0
        while True:
            chunk = np.frombuffer(pcm.read(60 * AUDIO_RATE * 4), np.float32)
            if len(chunk):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk[None, :]), format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, read, Fraction(1, AUDIO_RATE)
                read += len(chunk)
            for f in resampler.resample(frame if len(chunk) else None):
                f.pts, f.time_base = written, Fraction(1, 48000)
                written += f.samples
                for packet in a_out.encode(f):
                    out.mux(packet)
            if not len(chunk):
                break
        for packet in a_out.encode(None):
            out.mux(packet)
    os.replace(out_path, video)


def run(
    show,
    duration: float | None = None,
    fullscreen: bool = False,
    screen: int | None = None,
    headless: bool = False,
    record: str | Path | None = None,
    hud: bool = True,
    on_start=None,
    controls=None,
) -> dict:
    """Open the window and run the show until quit, `duration`, or the end of a played file.
    `on_start(window)` runs once the window exists (scripted shows and tests send keys through it).
    `controls` (control.inputs.Controls) brings OSC and MIDI; keys go through its bus either way."""
    import time

    import pyglet

    from livejpp.control import keys as keymap
    from livejpp.control.commands import CommandBus
    from livejpp.control.mapping import Presets

    if headless:
        pyglet.options["headless"] = True
    width, height = show.size
    from livejpp.engine.render import check_writable
    from livejpp.render.sizes import SizeError, check_drawable, check_encodable

    if record:  # before the window opens: one line, not a failed recording
        check_encodable(show.size)
        check_writable(Path(record))
    try:
        from pyglet.window import key  # its import opens the display

        from livejpp.render.gl import GLCompositor, gl_config

        screens = pyglet.display.get_display().get_screens()
        chosen = screens[screen] if screen is not None and screen < len(screens) else None
        window = pyglet.window.Window(
            width,
            height,
            caption="livejpp",
            config=gl_config(),
            fullscreen=fullscreen,
            screen=chosen,
            vsync=not headless,
            visible=not headless,
        )
    except Exception as exc:  # noqa: BLE001 - pyglet raises its own kinds: no display, no GL config
        hint = "" if headless else "; without a display, run with --headless"
        raise WindowError(f"cannot open the show's window ({exc}){hint}") from exc
    try:
        check_drawable(show.size)
    except SizeError:
        window.close()
        raise
    compositor = GLCompositor(width, height, layers=show.layers_count)  # too many for this GL: one line
    batch = pyglet.graphics.Batch()
    hud_label = pyglet.text.Label(
        "",
        x=12,
        y=height - 12,
        anchor_y="top",
        multiline=True,
        width=width - 24,
        font_size=12,
        color=(255, 255, 255, 230),
        batch=batch,
    )
    help_label = pyglet.text.Label(
        keymap.help_text(),
        x=width // 2,
        y=height // 2,
        anchor_x="center",
        anchor_y="center",
        multiline=True,
        width=560,
        font_size=12,
        color=(255, 255, 180, 255),
    )
    state = {"uploaded": dict.fromkeys(range(show.layers_count + 1), -1), "last": None, "hud_at": -1.0, "learn": None}
    bus = controls.bus if controls is not None else CommandBus(show, Presets())
    bus.run("hud", hud, "cli")  # the start-up flags are commands too: in the event log like any other
    bus.run("fullscreen", fullscreen, "cli")
    key_table = keymap.by_symbol(key)
    learnable = keymap.learnable()
    recorder: Recorder | None = None

    @window.event
    def on_draw():
        now = time.monotonic()
        stats = show.stats
        if show.quit.is_set():
            pyglet.app.exit()
        if state["last"] is not None:
            interval = now - state["last"]
            if interval > 1.5 / show.fps:
                stats.dropped += int(round(interval * show.fps)) - 1
                stats.drops.append((show.show_time(), interval * 1000))
        state["last"] = now
        stats.frame_times.append(now)
        shot = show.snapshot()
        if not headless and shot.fullscreen != window.fullscreen:
            window.set_fullscreen(shot.fullscreen)
        extra = [picture for picture, _ in shot.extra]  # layers 2..N in slots 2..N
        for layer, picture in enumerate((shot.outgoing, shot.incoming, *extra)):
            if picture is not None and id(picture) != state["uploaded"][layer]:
                compositor.upload(layer, picture)
                state["uploaded"][layer] = id(picture)
        window.clear()
        fb_w, fb_h = window.get_framebuffer_size()
        compositor.transition, compositor.effect, compositor.amount = shot.transition, shot.effect, shot.effect_amount
        if shot.incoming is not None or shot.outgoing is not None:
            # a clip with no picture yet (it waited its longest): the outgoing one stays on screen
            weight = 0.0 if shot.incoming is None else shot.weight if shot.outgoing is not None else 1.0
            # a layer with no picture (empty, or not decoded yet) draws nothing, not the picture it had before
            draws = [draw if picture is not None else LayerDraw(0.0, draw.blend) for picture, draw in shot.extra]
            compositor.draw(weight, shot.brightness, shot.blackout, (fb_w, fb_h), draws)
        if recorder is not None:
            # stamped with the audio time it shows (the file's audio is the input's): the recording keeps
            # the cuts on their beats whatever the room's latencies (engine/latency.py)
            recorder.add(compositor.read_bgra_into, shot.picture_time, shot.sync_position)
        if shot.hud:
            if now - state["hud_at"] >= HUD_REFRESH:  # laying text out every frame churns memory (measured)
                hud_label.text = hud_text(show, controls)
                state["hud_at"] = now
            batch.draw()
        if shot.help:
            help_label.draw()
        show.drawn(list(shot.newly), shot.incoming is not None)
        stats.frames += 1

    def learn(step: int) -> None:
        """The learn key (step 0: on/off) and left/right while learning (step ±1: another command)."""
        if controls is None or controls.learner is None:
            bus.refuse("keys", "MIDI learn needs --learn FILE (and --midi-in)")
            return
        if step == 0 and state["learn"] is not None:
            state["learn"] = None
            bus.run("learn", "", "keys")
            return
        state["learn"] = ((state["learn"] or 0) + step) % len(learnable)
        bus.run("learn", learnable[state["learn"]], "keys")

    @window.event
    def on_key_press(symbol, modifiers):
        received = time.monotonic()
        if symbol == key.QUESTION or (symbol == key.SLASH and modifiers & key.MOD_SHIFT):
            bus.run("help", None, "keys", received)
        elif symbol == key.L:
            learn(0)
        elif state["learn"] is not None and symbol in (key.LEFT, key.RIGHT):
            learn(1 if symbol == key.RIGHT else -1)
        elif symbol in key_table:
            entry = key_table[symbol]
            if entry.cycle:
                bus.cycle(entry.command, "keys", received)
            elif entry.steps is not None:
                bus.step(entry.command, entry.steps, "keys", received)
            else:
                bus.run(entry.command, entry.value, "keys", received)
        return pyglet.event.EVENT_HANDLED

    def check_end(dt):
        show.stats.memory.append((round(show.show_time(), 1), round(_resident(), 1)))
        if getattr(show.source, "finished", False):
            pyglet.clock.schedule_once(lambda dt: pyglet.app.exit(), 0.5)

    pyglet.clock.schedule_interval(check_end, 1.0)
    if duration:
        pyglet.clock.schedule_once(lambda dt: pyglet.app.exit(), duration)
    if on_start is not None:
        on_start(window)
    if controls is not None:
        try:
            controls.start()  # a MIDI system that cannot be reached stops here, before the show starts
        except Exception:
            controls.stop()
            window.close()
            raise
    try:
        if record:  # made here, so a show that fails to start leaves no recording behind
            recorder = Recorder(record, (width, height), show.fps)
            show.keep_audio = recorder.add_audio
        show.start()
        pyglet.app.run(1.0 / show.fps)
    finally:
        if controls is not None:
            controls.stop()
        show.stop()
        show.keep_audio = None  # an analysis thread still finishing its hop writes no more audio
        if recorder is not None:
            recorder.close()
        window.close()
    summary = show.summary()
    summary["control"] = controls.summary() if controls is not None else {"inputs": bus.summary()}
    if recorder is not None:
        summary["record"] = {
            "path": str(recorder.path),
            "frame_show_times": recorder.times,
            "sync_positions": recorder.sync_positions,
            "frames_left_out": recorder.dropped,
        }
    return summary


def _resident() -> float:
    from livejpp.engine.live import resident_mb

    return resident_mb()
