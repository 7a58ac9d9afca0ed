"""The compositor in OpenGL (3.3 core): the crossfade shader of shaders/, drawn into a window or,
headless (EGL, no display), into an offscreen one. `render` computes the same mix in numpy;
tests read the pixels back and compare.

Texture slots: 0 and 1 hold the matcher layer's outgoing and incoming pictures (crossfaded), slot 1 + k
the extra layer k (k = 1 .. layers - 1), composited over the matcher's picture in order.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np

from livejpp.errors import LivejppError
from livejpp.paths import SHADERS
from livejpp.render.compose import BLENDS, LayerDraw


def gl_config():
    from pyglet import gl

    # 8 bits a channel: headless EGL would otherwise pick RGB565 and band every gradient
    return gl.Config(
        red_size=8,
        green_size=8,
        blue_size=8,
        alpha_size=8,
        double_buffer=True,
        major_version=3,
        minor_version=3,
        forward_compatible=True,
    )


def layer_shader(layers: int) -> str:
    """shaders/crossfade.frag with one sampler, opacity and blend uniform and one blend call per extra
    layer: GLSL 3.30 cannot index a sampler array with a loop variable, so the loop is written out."""
    uniforms, calls = [], []
    for k in range(1, layers):
        uniforms.append(f"uniform sampler2D layer{k};\nuniform float opacity{k};\nuniform int blend{k};")
        calls.append(f"    if (opacity{k} > 0.0) c = blended(c, texture(layer{k}, at).rgb, opacity{k}, blend{k});")
    text = (SHADERS / "crossfade.frag").read_text()
    return text.replace("// LAYERS: uniforms", "\n".join(uniforms)).replace("    // LAYERS: calls", "\n".join(calls))


class GLCompositor:
    """The matcher layer (two pictures and the crossfade between them) and `layers - 1` extra layers over
    it, in the current GL context."""

    def __init__(self, width: int, height: int, layers: int = 2):
        from pyglet import gl
        from pyglet.graphics.shader import Shader, ShaderProgram

        units = gl.GLint()
        gl.glGetIntegerv(gl.GL_MAX_TEXTURE_IMAGE_UNITS, ctypes.byref(units))
        if layers < 1 or layers + 1 > units.value:
            raise LivejppError(
                f"cannot draw {layers} layers: this GL has {units.value} texture units, a show of N layers needs N + 1"
            )
        self.width, self.height, self.layers = width, height, layers
        self.program = ShaderProgram(
            Shader((SHADERS / "fullscreen.vert").read_text(), "vertex"),
            Shader(layer_shader(layers), "fragment"),
        )
        self.quad = self.program.vertex_list(
            4, gl.GL_TRIANGLE_STRIP, position=("f", (-1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0))
        )
        self.textures = []
        self.uploaded: set[int] = set()  # slots holding a picture: an empty extra layer draws nothing
        for unit in range(layers + 1):
            tex = gl.GLuint()
            gl.glGenTextures(1, ctypes.byref(tex))
            gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
            gl.glBindTexture(gl.GL_TEXTURE_2D, tex)
            for pname in (gl.GL_TEXTURE_MIN_FILTER, gl.GL_TEXTURE_MAG_FILTER):
                gl.glTexParameteri(gl.GL_TEXTURE_2D, pname, gl.GL_NEAREST)
            for pname in (gl.GL_TEXTURE_WRAP_S, gl.GL_TEXTURE_WRAP_T):
                gl.glTexParameteri(gl.GL_TEXTURE_2D, pname, gl.GL_CLAMP_TO_EDGE)
            gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, gl.GL_RGB8, width, height, 0, gl.GL_RGB, gl.GL_UNSIGNED_BYTE, None)
            self.textures.append(tex)
        self.program.use()
        self.program["outgoing"] = 0
        self.program["incoming"] = 1
        for k in range(1, layers):
            self.program[f"layer{k}"] = 1 + k
            self.program[f"opacity{k}"] = 0.0
            self.program[f"blend{k}"] = 0
        self.program["brightness"] = 1.0
        self.program["blackout"] = 0.0
        self.program["size"] = (float(width), float(height))
        self.transition = 0
        self.effect = 0
        self.amount = 0.5

    def upload(self, slot: int, rgb: np.ndarray) -> None:
        """A picture (uint8 [height, width, 3], top row first) into a slot: 0 outgoing, 1 incoming, 1 + k
        extra layer k."""
        from pyglet import gl

        if not 0 <= slot < len(self.textures):
            raise ValueError(f"no texture slot {slot}: this compositor has {len(self.textures)}")
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"picture is {rgb.shape}, the compositor draws {self.height}x{self.width}")
        data = np.ascontiguousarray(rgb, np.uint8)
        gl.glActiveTexture(gl.GL_TEXTURE0 + slot)
        gl.glBindTexture(gl.GL_TEXTURE_2D, self.textures[slot])
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        gl.glTexSubImage2D(
            gl.GL_TEXTURE_2D,
            0,
            0,
            0,
            self.width,
            self.height,
            gl.GL_RGB,
            gl.GL_UNSIGNED_BYTE,
            data.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte)),
        )
        self.uploaded.add(slot)

    def draw(
        self,
        weight: float,
        brightness: float = 1.0,
        blackout: bool = False,
        viewport: tuple[int, int] | None = None,
        extra: Sequence[LayerDraw] = (),
    ) -> None:
        """The crossfade, then extra[k - 1] drawing slot 1 + k over it, over the whole viewport (the window's
        framebuffer, or the pictures' size). A slot never uploaded, or opacity 0, draws nothing."""
        from pyglet import gl

        if len(extra) > self.layers - 1:
            raise ValueError(f"{len(extra)} extra layers given, this compositor draws {self.layers - 1}")

        gl.glViewport(0, 0, *(viewport or (self.width, self.height)))
        self.program.use()
        self.program["weight"] = float(weight)
        self.program["transition"] = int(self.transition)
        self.program["effect"] = int(self.effect)
        self.program["amount"] = float(self.amount)
        self.program["brightness"] = float(brightness)
        self.program["blackout"] = 1.0 if blackout else 0.0
        for k in range(1, self.layers):
            layer = extra[k - 1] if k <= len(extra) else None
            shown = layer is not None and 1 + k in self.uploaded
            opacity = round(min(1.0, max(0.0, layer.opacity)) * 256) / 256 if shown else 0.0
            self.program[f"opacity{k}"] = float(opacity)
            if shown:
                if layer.blend not in BLENDS:
                    raise ValueError(f"unknown blend {layer.blend!r} (choose from {', '.join(BLENDS)})")
                self.program[f"blend{k}"] = BLENDS.index(layer.blend)
        for unit, tex in enumerate(self.textures):
            gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
            gl.glBindTexture(gl.GL_TEXTURE_2D, tex)
        self.quad.draw(gl.GL_TRIANGLE_STRIP)

    def read_pixels(self) -> np.ndarray:
        """What was drawn, as uint8 [height, width, 3] RGB, top row first."""
        buffer = np.empty((self.height, self.width, 4), np.uint8)
        self.read_bgra_into(buffer)
        return np.ascontiguousarray(buffer[::-1, :, 2::-1])

    def read_bgra_into(self, buffer: np.ndarray) -> None:
        """What was drawn, into a uint8 [height, width, 4] buffer as GL reads it: BGRA, bottom row first.
        BGRA is the framebuffer's own layout (llvmpipe: 0.3 ms at 1280x720, RGBA 1.2 ms): the render
        thread only copies; the recorder flips and converts on its own thread."""
        from pyglet import gl

        if buffer.shape != (self.height, self.width, 4) or buffer.dtype != np.uint8 or not buffer.flags.c_contiguous:
            raise ValueError(f"buffer is {buffer.shape} {buffer.dtype}, not {self.height}x{self.width}x4 uint8")
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        gl.glReadPixels(
            0, 0, self.width, self.height, gl.GL_BGRA, gl.GL_UNSIGNED_BYTE, buffer.ctypes.data_as(ctypes.c_void_p)
        )


def offscreen(width: int, height: int, headless: bool = True, layers: int = 2):
    """A hidden window and its compositor: for tests and machines used only to render."""
    import pyglet

    if headless:
        pyglet.options["headless"] = True
    window = pyglet.window.Window(width, height, visible=False, config=gl_config())
    window.switch_to()
    return window, GLCompositor(width, height, layers)
