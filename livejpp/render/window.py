"""The live window (pyglet, OpenGL 3.3 core): uploads the pictures the decoder has ready, draws the
crossfade shader and the HUD, and takes the keys. Headless (EGL) for tests and render-only machines.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import numpy as np

from livejpp.errors import LivejppError
from livejpp.media.compose import LayerDraw
from livejpp.render.frame_stats import FrameStats
from livejpp.render.hud_lines import HudLines

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
        from livejpp.media.writer import VideoWriter
        from livejpp.partfiles import part_path, remove_stale_parts

        self.path = Path(path)
        audio_final = self.path.with_name(self.path.name + ".f32")
        remove_stale_parts(self.path.parent, audio_final.name)  # what a killed show's recording left
        self.writer = VideoWriter(self.path, size, fps, options or X264_OPTIONS)  # and its video's
        self.fps = self.writer.fps
        width, height = size
        self.free: queue.SimpleQueue = queue.SimpleQueue()  # buffers the render thread may read into
        for _ in range(queue_frames):
            self.free.put(np.empty((height, width, 4), np.uint8))
        self.frames: queue.SimpleQueue = queue.SimpleQueue()
        self.times: list[float] = []  # show time of each recorded frame (what was on screen when)
        self.sync_positions: list[float | None] = []  # the video position each showed in sync (None: not)
        self.dropped = 0  # frames shown but not recorded: the encoder was behind
        self.failed: Exception | None = None
        self._failing = threading.Lock()  # the encoder thread and the audio thread may both fail
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
            self._stop(exc)

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

    def _stop(self, exc: Exception) -> None:
        """The recording stops (said once: the sound and the pictures meet a full disk at the same moment)."""
        with self._failing:
            if self.failed is None:
                self.failed = exc
                log.warning("recording stopped: %s (the show goes on)", exc)

    def _write(self) -> None:
        _background_thread("recorder", ENCODER_NICENESS)  # x264's own threads, started from here, inherit both
        last = -1
        while True:
            item = self.frames.get()
            if item is None:
                return
            buffer, show_time = item
            try:
                if self.failed is None:
                    last = max(last + 1, int(round(show_time * self.fps)))
                    self.writer.write(buffer[::-1], last, "bgra")  # flipped as it is copied
            except Exception as exc:  # noqa: BLE001 - whatever stops the recording must not stop its thread
                self._stop(exc)
            self.free.put(buffer)

    def close(self) -> None:
        import av

        from livejpp.media.decode import AUDIO_RATE
        from livejpp.media.writer import add_audio

        try:
            self.audio.close()
        except OSError as exc:
            self.failed = self.failed or exc
        self.frames.put(None)
        self.thread.join()
        if self.dropped:
            log.warning("recorder: %d frames shown were left out of %s (encoder behind)", self.dropped, self.path)
        try:
            if self.failed is None:
                self.writer.close(commit=False)  # the sound is added before it is renamed into place
        except (av.FFmpegError, OSError) as exc:
            self.failed = exc
        if self.failed is None and self.audio_path.stat().st_size:
            try:
                add_audio(self.writer.tmp, self.audio_path, AUDIO_RATE)
            except (av.FFmpegError, OSError) as exc:  # a disk that fills now: the pictures are kept
                log.warning("recording %s has no sound: %s", self.path, exc)
        self.audio_path.unlink(missing_ok=True)
        if self.failed is not None:
            self.writer.abort()
            log.warning("no recording written to %s: %s", self.path, self.failed)
            return
        self.writer.commit()


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


class ShowWindow:
    """The show's window: draws each frame from the show's frozen snapshot (engine/live.py ShowFrame)
    and its own GL state (the HUD's text is in the snapshot too), and hands keys to the command bus.

    Data flows one way: it reads no show attribute; it asks for the snapshot and decides from it alone (what to
    draw, when to close), counts its own frames (render/frame_stats.py), and sends the show one message back,
    `show.drawn` (what the frame showed). Besides, it starts and stops the show, and adds its figures to the
    show's summary at the end."""

    def __init__(
        self,
        show,
        size: tuple[int, int],
        fps: float,
        layers: int,
        controls=None,
        headless: bool = False,
        frames: str = "rgb",
        max_texture: int | None = None,
    ):
        """`size`, `fps`, `layers`: the show's, fixed for its run; `frames` auto|rgb|gpu: what the decoder hands
        this GL (gl.frames_for, decided once the GL exists); `max_texture`: a lower texture limit than the GL's."""
        from livejpp.control.commands import CommandBus
        from livejpp.control.mapping import Presets

        self.show = show
        self.size, self.fps, self.layers = size, fps, layers
        self.frame_stats = FrameStats(fps)
        self.ending = False  # the played file has ended: the window closes shortly
        self.controls = controls
        self.headless = headless
        self.frames, self.max_texture = frames, max_texture
        self.bus = controls.bus if controls is not None else CommandBus(show, Presets())
        self.recorder: Recorder | None = None
        self.uploaded: dict[int, object] = {}  # per slot: the picture its texture holds
        self.hud_from: str | None = None  # the show's HUD text the labels were last given
        self.learning: int | None = None  # index into keymap.learnable() while the learn key is on

    # --- opening ----------------------------------------------------------------------------------
    def open(self, fullscreen: bool = False, screen: int | None = None) -> None:
        """The pyglet window (or headless EGL surface) at the show's size, its compositor and labels."""
        import pyglet

        if self.headless:
            pyglet.options["headless"] = True
        self.window = self._make_window(fullscreen, screen)
        from livejpp.media.sizes import SizeError, check_drawable

        try:
            check_drawable(self.size)
        except SizeError:
            self.window.close()
            raise
        self._make_compositor()
        self.window.push_handlers(on_draw=self.draw_frame, on_key_press=self.on_key_press)

    def _make_window(self, fullscreen: bool, screen: int | None):
        import pyglet

        width, height = self.size
        try:
            from livejpp.render.gl import gl_config

            screens = pyglet.display.get_display().get_screens()  # importing pyglet.window opens the display
            chosen = screens[screen] if screen is not None and screen < len(screens) else None
            return pyglet.window.Window(
                width,
                height,
                caption="livejpp",
                config=gl_config(),
                fullscreen=fullscreen,
                screen=chosen,
                vsync=not self.headless,
                visible=not self.headless,
            )
        except Exception as exc:  # noqa: BLE001 - pyglet raises its own kinds: no display, no GL config
            hint = "" if self.headless else "; without a display, run with --headless"
            raise WindowError(f"cannot open the show's window ({exc}){hint}") from exc

    def _make_compositor(self) -> None:
        import pyglet
        from pyglet.window import key

        from livejpp.control import keys as keymap
        from livejpp.render.gl import GLCompositor

        width, height = self.size
        # too many layers for this GL: one line
        self.compositor = GLCompositor(width, height, self.layers, max_texture_size=self.max_texture)
        self.batch = pyglet.graphics.Batch()
        self.hud_lines = HudLines(12, height - 12, width - 24, 12, (255, 255, 255, 230), self.batch)
        self.help_label = pyglet.text.Label(
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
        self.key = key
        self.key_table = keymap.by_symbol(key)
        self.learnable = keymap.learnable()

    # --- each frame -------------------------------------------------------------------------------
    def draw_frame(self) -> None:
        """One frame: the snapshot, timing, the pictures (_compose), the HUD and help, then the show is told."""
        now = time.monotonic()
        shot = self.show.snapshot()
        self._close_when(shot)
        self.frame_stats.count(now, shot.show_time)
        if not self.headless and shot.fullscreen != self.window.fullscreen:
            self.window.set_fullscreen(shot.fullscreen)
        self._compose(shot)
        self._draw_overlays(shot)
        self.show.drawn(list(shot.newly), shot.incoming is not None)  # the one message back

    def _close_when(self, shot) -> None:
        """Quit closes after this frame; the end of a played file half a second later (its last beat shows)."""
        import pyglet

        if shot.closing:
            pyglet.app.exit()
        elif shot.ended and not self.ending:
            self.ending = True
            pyglet.clock.schedule_once(lambda dt: pyglet.app.exit(), 0.5)

    def _compose(self, shot) -> None:
        """Upload the snapshot's new pictures, draw them with its settings, and record what was drawn."""
        compositor, window, recorder = self.compositor, self.window, self.recorder
        extra = [picture for picture, _ in shot.extra]  # layers 2..N in slots 2..N
        for layer, picture in enumerate((shot.outgoing, shot.incoming, *extra)):
            if picture is not None and picture is not self.uploaded.get(layer):  # held: an id is reused once freed
                compositor.upload(layer, picture)
                self.uploaded[layer] = picture
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

    def _draw_overlays(self, shot) -> None:
        if shot.hud:
            # the show lays its text out anew (a new string) every HUD_REFRESH, the one throttle: the controls'
            # line is read then too (an OSC fader changes it every frame)
            if shot.hud_text is not self.hud_from:
                self.hud_from = shot.hud_text
                control = self.controls.hud_line() if self.controls is not None else ""
                figures = self.frame_stats.hud_figures(shot.show_time)  # the window's own: fps, dropped
                self.hud_lines.want(figures + shot.hud_text + (f"\n{control}" if control else ""))
            self.hud_lines.step()  # one changed line a frame at most: no frame lays the whole text out
            self.batch.draw()
        if shot.help:
            self.help_label.draw()

    # --- keys -------------------------------------------------------------------------------------
    def on_key_press(self, symbol: int, modifiers: int):
        """Every key is a command on the bus (control/keys.py says which)."""
        import pyglet

        key, received = self.key, time.monotonic()
        if symbol == key.QUESTION or (symbol == key.SLASH and modifiers & key.MOD_SHIFT):
            self.bus.run("help", None, "keys", received)
        elif symbol == key.L:
            self.learn(0)
        elif self.learning is not None and symbol in (key.LEFT, key.RIGHT):
            self.learn(1 if symbol == key.RIGHT else -1)
        elif symbol in self.key_table:
            self._key_command(self.key_table[symbol], received)
        return pyglet.event.EVENT_HANDLED

    def _key_command(self, entry, received: float) -> None:
        bus = self.bus
        if entry.cycle:
            bus.cycle(entry.command, "keys", received)
        elif entry.steps is not None:
            bus.step(entry.command, entry.steps, "keys", received)
        else:
            bus.run(entry.command, entry.value, "keys", received)

    def learn(self, step: int) -> None:
        """The learn key (step 0: on/off) and left/right while learning (step ±1: another command)."""
        controls, bus = self.controls, self.bus
        if controls is None or controls.learner is None:
            bus.refuse("keys", "MIDI learn needs --learn FILE (and --midi-in)")
            return
        if step == 0 and self.learning is not None:
            self.learning = None
            bus.run("learn", "", "keys")
            return
        self.learning = ((self.learning or 0) + step) % len(self.learnable)
        bus.run("learn", self.learnable[self.learning], "keys")

    # --- running ----------------------------------------------------------------------------------
    def start_recorder(self, record: str | Path | None) -> None:
        """Made once the show is about to start, so a show that fails to start leaves no recording behind."""
        if record:
            self.recorder = Recorder(record, self.size, self.fps)

    def stop_recorder(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def play(self, duration: float | None = None, on_start=None, record: str | Path | None = None) -> dict:
        """Run the show until quit, `duration`, or the end of a played file; its summary."""
        import pyglet

        from livejpp.render.gl import frames_for

        if duration:
            pyglet.clock.schedule_once(lambda dt: pyglet.app.exit(), duration)
        if on_start is not None:
            on_start(self.window)
        self._start_controls()
        try:
            self.start_recorder(record)
            keep_audio = self.recorder.add_audio if self.recorder is not None else None  # the file's sound
            self.show.start(frames_for(self.frames), self.compositor.max_texture_size, keep_audio)
            pyglet.app.run(1.0 / self.fps)
        finally:
            if self.controls is not None:
                self.controls.stop()
            self.show.stop()  # and no more audio to the recorder
            self.stop_recorder()
            self.window.close()
        return self.summary()

    def _start_controls(self) -> None:
        if self.controls is None:
            return
        try:
            self.controls.start()  # a MIDI system that cannot be reached stops here, before the show starts
        except Exception:
            self.controls.stop()
            self.window.close()
            raise

    def summary(self) -> dict:
        """The show's summary with this window's own figures: frames, drops, memory (the --stats keys)."""
        summary = self.show.summary()
        summary |= self.frame_stats.report(summary["seconds"])
        controls, recorder = self.controls, self.recorder
        summary["control"] = controls.summary() if controls is not None else {"inputs": self.bus.summary()}
        if recorder is not None:
            summary["record"] = {
                "path": str(recorder.path),
                "frame_show_times": recorder.times,
                "sync_positions": recorder.sync_positions,
                "frames_left_out": recorder.dropped,
            }
        return summary


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
    frames: str = "rgb",
    max_texture: int | None = None,
) -> dict:
    """Open the window and run the show until quit, `duration`, or the end of a played file.
    `frames` auto|rgb|gpu: what the decoder hands the GL (gl.frames_for); `max_texture`: a lower texture limit.
    `on_start(window)` runs once the window exists (scripted shows and tests send keys through it).
    `controls` (control.inputs.Controls) brings OSC and MIDI; keys go through its bus either way."""
    from livejpp.media.sizes import check_encodable
    from livejpp.media.writer import check_writable

    if record:  # before the window opens: one line, not a failed recording
        check_encodable(show.size)
        check_writable(Path(record))
    window = ShowWindow(show, show.size, show.fps, show.layers_count, controls, headless, frames, max_texture)
    window.open(fullscreen, screen)
    window.bus.run("hud", hud, "cli")  # the start-up flags are commands too: in the event log like any other
    window.bus.run("fullscreen", fullscreen, "cli")
    return window.play(duration, on_start, record)
