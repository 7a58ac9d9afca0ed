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

log = logging.getLogger("livejpp.window")
HUD_REFRESH = 0.25  # seconds between HUD text updates


class WindowError(LivejppError):
    """No window (or offscreen surface) to draw the show in."""


class Recorder:
    """What the window shows, at the window's rate, with the input audio: an H.264/AAC mp4."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float):
        import av

        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.part.mp4")
        self.container = av.open(str(self.tmp), "w", format="mp4")
        self.fps = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream("libx264", rate=self.fps)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "ultrafast", "crf": "20"}
        self.frames: queue.Queue = queue.Queue(maxsize=120)
        self.times: list[float] = []  # show time of each recorded frame (what was on screen when)
        self.thread = threading.Thread(target=self._write, daemon=True, name="recorder")
        self.thread.start()

    def add(self, pixels: np.ndarray, show_time: float) -> None:
        """A frame, stamped with the show time it was on screen: when the window runs below its rate
        (a recording at 720p on two cores does), the file keeps time with the audio, not the count."""
        try:
            self.frames.put_nowait((pixels, show_time))
        except queue.Full:
            log.warning("recorder is behind: a frame was not recorded")
            return
        self.times.append(round(show_time, 4))

    def _write(self) -> None:
        import av

        last = -1
        while True:
            item = self.frames.get()
            if item is None:
                return
            pixels, show_time = item
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = last = max(last + 1, int(round(show_time * self.fps)))
            frame.time_base = 1 / self.fps
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def close(self, audio: np.ndarray) -> None:
        import os

        self.frames.put(None)
        self.thread.join()
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        if len(audio):
            _mux_audio(self.tmp, audio)
        os.replace(self.tmp, self.path)


def _mux_audio(video: Path, audio: np.ndarray) -> None:
    """Rewrite the recording with the input audio added (stream copy of the pictures)."""
    import os

    import av

    from livejpp.media.decode import AUDIO_RATE

    out_path = video.with_name(video.name + ".av.mp4")
    with av.open(str(video)) as src, av.open(str(out_path), "w", format="mp4") as out:
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
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio[None, :], np.float32), format="flt", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, 0, Fraction(1, AUDIO_RATE)
        written = 0
        for f in resampler.resample(frame) + resampler.resample(None):
            f.pts, f.time_base = written, Fraction(1, 48000)
            written += f.samples
            for packet in a_out.encode(f):
                out.mux(packet)
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
    compositor = GLCompositor(width, height)
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
    state = {"help": False, "uploaded": {0: -1, 1: -1}, "last": None, "hud_at": -1.0, "learn": None}
    show.hud, show.fullscreen = hud, fullscreen
    bus = controls.bus if controls is not None else CommandBus(show, Presets())
    key_table = keymap.by_symbol(key)
    learnable = keymap.learnable()
    recorder = Recorder(record, (width, height), show.fps) if record else None
    show.keep_audio = recorder is not None

    @window.event
    def on_draw():
        now = time.monotonic()
        stats = show.stats
        if show.quit.is_set():
            pyglet.app.exit()
        if not headless and show.fullscreen != window.fullscreen:
            window.set_fullscreen(show.fullscreen)
        if state["last"] is not None:
            interval = now - state["last"]
            if interval > 1.5 / show.fps:
                stats.dropped += int(round(interval * show.fps)) - 1
                stats.drops.append((show.show_time(), interval * 1000))
        state["last"] = now
        stats.frame_times.append(now)
        outgoing, incoming, weight, newly = show.frame()
        for layer, picture in ((0, outgoing), (1, incoming)):
            if picture is not None and id(picture) != state["uploaded"][layer]:
                compositor.upload(layer, picture)
                state["uploaded"][layer] = id(picture)
        window.clear()
        fb_w, fb_h = window.get_framebuffer_size()
        compositor.transition, compositor.effect, compositor.amount = show.transition, show.effect, show.effect_amount
        if incoming is not None or outgoing is not None:
            # a clip with no picture yet (it waited its longest): the outgoing one stays on screen
            weight = 0.0 if incoming is None else weight if outgoing is not None else 1.0
            compositor.draw(weight, show.brightness, show.blackout, (fb_w, fb_h))
        if recorder is not None:
            recorder.add(compositor.read_pixels(), show.show_time())
        if show.hud:
            if now - state["hud_at"] >= HUD_REFRESH:  # laying text out every frame churns memory (measured)
                hud_label.text = _hud_text(show, controls)
                state["hud_at"] = now
            batch.draw()
        if state["help"]:
            help_label.draw()
        show.drawn(newly, incoming is not None)
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
            state["help"] = not state["help"]
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
    show.start()
    try:
        pyglet.app.run(1.0 / show.fps)
    finally:
        if controls is not None:
            controls.stop()
        show.stop()
        if recorder is not None:
            audio = np.concatenate(show.recorded_audio) if show.recorded_audio else np.zeros(0, np.float32)
            recorder.close(audio)
        window.close()
    summary = show.summary()
    summary["control"] = controls.summary() if controls is not None else {"inputs": bus.summary()}
    if recorder is not None:
        summary["record"] = {"path": str(recorder.path), "frame_show_times": recorder.times}
    return summary


def _resident() -> float:
    from livejpp.engine.live import resident_mb

    return resident_mb()


def _hud_text(show, controls=None) -> str:
    s = show.stats
    engine = show.engine
    current = show.layers[-1].record if show.layers else None
    latency = s.analysis_latency[-1] * 1000 if s.analysis_latency else 0.0
    elapsed = max(1e-3, show.show_time())
    tempo = {"music": "", "tap": " (tap)", "midi": " (MIDI clock)"}[engine.clock.source]
    forced = "  ".join(f"{k}={v}" for k, v in show.forced.items())
    lines = [
        f"{s.frames / elapsed:5.1f} fps   dropped {s.dropped}   analysis {latency:5.1f} ms"
        f"   stale hops {engine.dropped_hops}",
        f"{engine.clock.bpm:5.1f} BPM{tempo}   beat {engine.beat_count}   every {show.bars} bars"
        f"   {'HOLD' if engine.selector.held else ''} {'BLACKOUT' if show.blackout else ''} {forced}",
    ]
    if current is not None:
        lines.append(f"now  {current.uid}  {Path(current.source).name}")
    if engine.neighbours:
        record = engine.records[engine.neighbours[0][0]]
        lines.append(f"next {record.uid}  {Path(record.source).name}  d={engine.neighbours[0][1]:.3f}")
    if show.hearing:
        lines.append(f"HEARING NOTHING: {show.hearing}")
    if show.standby:
        lines.append(f"STANDBY: {show.standby}")
    if show.switching:
        lines.append(f"loading {show.switching} ...")
    control = controls.hud_line() if controls is not None else ""
    if control:
        lines.append(control)
    return "\n".join(lines)
