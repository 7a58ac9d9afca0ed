"""The compositor in OpenGL (3.3 core): the crossfade shader of shaders/, drawn into a window or,
headless (EGL, no display), into an offscreen one. `render` computes the same mix in numpy;
tests read the pixels back and compare.

Texture slots: 0 and 1 hold the matcher layer's outgoing and incoming pictures (crossfaded), slot 1 + k
the extra layer k (k = 1 .. layers - 1), composited over the matcher's picture in order.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence

import numpy as np

from livejpp.errors import LivejppError
from livejpp.media.compose import BLENDS, LayerDraw
from livejpp.media.hap import CompressedPicture
from livejpp.media.player import Planes, cover_rect, fit_planes
from livejpp.paths import SHADERS

log = logging.getLogger("livejpp")

# glCompressedTexImage2D formats of GL_EXT_texture_compression_s3tc (pyglet names them only in its extensions)
S3TC = {"dxt1": 0x83F0, "dxt5": 0x83F3, "ycocg_dxt5": 0x83F3}  # COMPRESSED_RGB_S3TC_DXT1, _RGBA_S3TC_DXT5


SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast")  # Mesa's CPU renderers


def frames_for(requested: str) -> str:
    """What the decoder hands this GL (the current context's): "gpu" (planes, HAP blocks: the shader converts
    and scales) or "rgb" (converted on the CPU). "auto": gpu on a hardware GL; a software one samples full-size
    textures and converts per pixel on the CPU, slower than the CPU's own conversion (tools/bench.py live)."""
    from pyglet import gl

    renderer = ctypes.cast(gl.glGetString(gl.GL_RENDERER), ctypes.c_char_p).value.decode(errors="replace")
    software = any(name in renderer.lower() for name in SOFTWARE_GL)
    chosen = requested if requested != "auto" else "rgb" if software else "gpu"
    if requested != "auto":
        why = f"--frames {requested}"
    elif software:
        why = "a software GL: converting on the CPU draws faster there"
    else:
        why = "a hardware GL: the CPU only decodes"
    what = "decoded planes to the GPU" if chosen == "gpu" else "RGB converted on the CPU"
    log.info("pictures: %s (GL renderer %s; %s)", what, renderer, why)
    return chosen


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


RGB, PLANES, YCOCG = 0, 1, 2  # how a slot's picture is sampled: RGB texture (HAP's RGB DXT too), Y/U/V, HAP Q
FETCH = {RGB: "fetch_rgb(main, crop{n}, at)", YCOCG: "fetch_ycocg(main, crop{n}, at)"}
FETCH[PLANES] = "fetch_planes(main, u{n}, v{n}, crop{n}, chroma{n}, row_r{n}, row_g{n}, row_b{n}, offset{n}, at)"
OUTGOING_ONLY, INCOMING_ONLY, BOTH = 0, 1, 2  # which of the matcher's pictures a frame samples (MATCHER)


def layer_shader(layers: int, sampled: Sequence[int | None] | None = None, matcher: int = BOTH) -> str:
    """shaders/crossfade.frag for one frame's plan: each slot's picture function reads its textures the way the
    slot holds them (`sampled[slot]`: RGB, PLANES, YCOCG; None: the slot is not drawn), and one blend call per
    extra layer drawn. Written out per plan, not chosen per pixel: llvmpipe runs both sides of every `if` and
    pays for each texture read (measured: 4 RGB layers at 1280x720, 33 ms a frame with every read, 15 ms without).
    GLSL 3.30 cannot index a sampler array with a loop variable, so the loop is written out too."""
    slots = layers + 1
    sampled = list(sampled) if sampled is not None else [RGB] * slots
    uniforms, calls = [f"#define MATCHER {matcher}"], []
    for slot in range(slots):
        main = ("outgoing", "incoming")[slot] if slot < 2 else f"layer{slot - 1}"
        uniforms.append(
            f"uniform sampler2D {main};\nuniform sampler2D u{slot};\nuniform sampler2D v{slot};\n"
            f"uniform vec4 crop{slot};\nuniform vec2 chroma{slot};\n"
            f"uniform vec3 row_r{slot};\nuniform vec3 row_g{slot};\nuniform vec3 row_b{slot};\n"
            f"uniform vec3 offset{slot};"
        )
        if sampled[slot] is not None:
            fetch = FETCH[sampled[slot]].replace("main", main).format(n=slot)
            uniforms.append(f"vec3 picture{slot}(vec2 at) {{\n    return {fetch};\n}}")
    for k in range(1, layers):
        uniforms.append(f"uniform float opacity{k};\nuniform int blend{k};")
        if sampled[k + 1] is not None:
            calls.append(f"    if (opacity{k} > 0.0) c = blended(c, picture{k + 1}(at), opacity{k}, blend{k});")
    text = (SHADERS / "crossfade.frag").read_text()
    return text.replace("// LAYERS: uniforms", "\n".join(uniforms)).replace("    // LAYERS: calls", "\n".join(calls))


def _texture(gl, filtering) -> ctypes.c_uint:
    tex = gl.GLuint()
    gl.glGenTextures(1, ctypes.byref(tex))
    gl.glBindTexture(gl.GL_TEXTURE_2D, tex)
    for pname in (gl.GL_TEXTURE_MIN_FILTER, gl.GL_TEXTURE_MAG_FILTER):
        gl.glTexParameteri(gl.GL_TEXTURE_2D, pname, filtering)
    for pname in (gl.GL_TEXTURE_WRAP_S, gl.GL_TEXTURE_WRAP_T):
        gl.glTexParameteri(gl.GL_TEXTURE_2D, pname, gl.GL_CLAMP_TO_EDGE)
    return tex


class GLCompositor:
    """The matcher layer (two pictures and the crossfade between them) and `layers - 1` extra layers over
    it, in the current GL context. Each slot takes an RGB picture at the output size or a decoder's
    planes (`Planes`), which the shader converts, scales and crops."""

    def __init__(self, width: int, height: int, layers: int = 2, max_texture_size: int | None = None):
        from pyglet import gl
        from pyglet.graphics.shader import Shader

        units, largest = gl.GLint(), gl.GLint()
        gl.glGetIntegerv(gl.GL_MAX_TEXTURE_IMAGE_UNITS, ctypes.byref(units))
        gl.glGetIntegerv(gl.GL_MAX_TEXTURE_SIZE, ctypes.byref(largest))
        if layers < 1 or 3 * (layers + 1) > units.value:
            raise LivejppError(
                f"cannot draw {layers} layers: this GL has {units.value} texture units, "
                "a show of N layers needs 3 (N + 1)"
            )
        # the GL's own limit, or a lower one (tests; a show that keeps textures small)
        self.max_texture_size = min(largest.value, max_texture_size or largest.value)
        self.width, self.height, self.layers = width, height, layers
        self._vertex = Shader((SHADERS / "fullscreen.vert").read_text(), "vertex")
        self._programs: dict[tuple, tuple] = {}  # per plan: its program, quad and the uniform values it holds
        slots = layers + 1
        self.textures = [_texture(gl, gl.GL_NEAREST) for _ in range(slots)]  # RGB(A) at the output size
        for tex in self.textures:
            gl.glBindTexture(gl.GL_TEXTURE_2D, tex)
            gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, gl.GL_RGBA8, width, height, 0, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, None)
        # Y, U, V of each slot, (re)allocated to the planes' sizes; Y and V share the RGB texture's unit
        self.plane_textures = [[_texture(gl, gl.GL_LINEAR) for _ in range(3)] for _ in range(slots)]
        self.plane_shapes: list[tuple | None] = [None] * slots
        self.compressed_textures = [_texture(gl, gl.GL_LINEAR) for _ in range(slots)]  # DXT blocks (HAP)
        self.compressed_shapes: list[tuple | None] = [None] * slots
        self.kind = [0] * slots  # 0 RGB, 1 planes, 2 DXT blocks: what each slot holds now
        self.uploaded: set[int] = set()  # slots holding a picture: an empty extra layer draws nothing
        self._warned_size = False
        self.sampled = [RGB] * slots  # how each slot's picture is sampled (the shader's fetch for it)
        self.values: dict[str, object] = {"outgoing": 0, "incoming": 1}  # every uniform, set on the plan drawn
        for slot in range(slots):
            if slot >= 2:
                self.values[f"layer{slot - 1}"] = slot
            self.values[f"u{slot}"] = slots + 2 * slot
            self.values[f"v{slot}"] = slots + 2 * slot + 1
            self.values[f"crop{slot}"] = (0.0, 0.0, 1.0, 1.0)
        for k in range(1, layers):
            self.values[f"opacity{k}"] = 0.0
            self.values[f"blend{k}"] = 0
        self.values |= {"brightness": 1.0, "blackout": 0.0, "size": (float(width), float(height))}
        self._program_for((BOTH, tuple(self.sampled)))  # today's plan ready before the first frame
        self.transition = 0
        self.effect = 0
        self.amount = 0.5

    def upload(self, slot: int, picture: np.ndarray | Planes | CompressedPicture) -> None:
        """A picture into a slot (0 outgoing, 1 incoming, 1 + k extra layer k): uint8 RGB
        [height, width, 3] at the output size, top row first, a decoder's planes at any size, or
        a HAP frame's DXT blocks at any size."""
        if not 0 <= slot < len(self.textures):
            raise ValueError(f"no texture slot {slot}: this compositor has {len(self.textures)}")
        if isinstance(picture, Planes):
            self._upload_planes(slot, picture)
        elif isinstance(picture, CompressedPicture):
            if not self._upload_compressed(slot, picture):
                return
        else:
            self._upload_rgb(slot, picture)
        self.uploaded.add(slot)

    def _upload_rgb(self, slot: int, rgb: np.ndarray) -> None:
        """RGB, or RGBA (the live decoder's: the texture's own layout, copied as it is; alpha is not drawn)."""
        from pyglet import gl

        if rgb.shape not in ((self.height, self.width, 3), (self.height, self.width, 4)):
            raise ValueError(f"picture is {rgb.shape}, the compositor draws {self.height}x{self.width}")
        data = np.ascontiguousarray(rgb, np.uint8)
        gl.glActiveTexture(gl.GL_TEXTURE0 + slot)
        gl.glBindTexture(gl.GL_TEXTURE_2D, self.textures[slot])
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        gl.glPixelStorei(gl.GL_UNPACK_ROW_LENGTH, 0)
        gl.glTexSubImage2D(
            gl.GL_TEXTURE_2D,
            0,
            0,
            0,
            self.width,
            self.height,
            gl.GL_RGBA if data.shape[2] == 4 else gl.GL_RGB,
            gl.GL_UNSIGNED_BYTE,
            data.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte)),
        )
        self.kind[slot], self.sampled[slot] = 0, RGB
        self.values[f"crop{slot}"] = (0.0, 0.0, 1.0, 1.0)

    def _upload_planes(self, slot: int, planes: Planes) -> None:
        from pyglet import gl

        if max(planes.width, planes.height) > self.max_texture_size:
            if not self._warned_size:
                log.warning(
                    "livejpp: a %dx%d picture is larger than this GL draws (%d): shown at a lower resolution",
                    planes.width,
                    planes.height,
                    self.max_texture_size,
                )
                self._warned_size = True
            planes = fit_planes(planes, self.max_texture_size)
        wide = planes.bits > 8
        shape = (planes.y.shape, planes.u.shape, wide)
        fresh = shape != self.plane_shapes[slot]
        units = (slot, len(self.textures) + 2 * slot, len(self.textures) + 2 * slot + 1)
        for unit, tex, plane in zip(units, self.plane_textures[slot], (planes.y, planes.u, planes.v), strict=True):
            gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
            gl.glBindTexture(gl.GL_TEXTURE_2D, tex)
            gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
            gl.glPixelStorei(gl.GL_UNPACK_ROW_LENGTH, plane.strides[0] // plane.itemsize)
            kind = gl.GL_UNSIGNED_SHORT if wide else gl.GL_UNSIGNED_BYTE
            h, w = plane.shape
            data = ctypes.c_void_p(plane.ctypes.data)
            if fresh:
                fmt = gl.GL_R16 if wide else gl.GL_R8
                gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, fmt, w, h, 0, gl.GL_RED, kind, data)
            else:
                gl.glTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, w, h, gl.GL_RED, kind, data)
        gl.glPixelStorei(gl.GL_UNPACK_ROW_LENGTH, 0)
        self.plane_shapes[slot] = shape
        self.kind[slot] = 1
        matrix, offset = planes.yuv_to_rgb()
        (ch, cw), (h, w) = planes.u.shape, planes.y.shape
        self.sampled[slot] = PLANES
        self.values[f"crop{slot}"] = cover_rect(planes.width, planes.height, self.width, self.height)
        sx, sy = -(-w // cw), -(-h // ch)  # the subsampling (2 or 1 each way)
        self.values[f"chroma{slot}"] = (w / (cw * sx), h / (ch * sy))
        for name, row in zip(("row_r", "row_g", "row_b"), matrix, strict=True):
            self.values[f"{name}{slot}"] = tuple(float(x) for x in row)
        self.values[f"offset{slot}"] = tuple(float(x) for x in offset)

    def _upload_compressed(self, slot: int, picture: CompressedPicture) -> bool:
        """The blocks as they are (the GPU decodes DXT on sampling); the shader crops the 4x4 padding,
        scales, covers and, for HAP Q, turns scaled YCoCg into RGB. False (one line) if too large."""
        from pyglet import gl

        tw, th = picture.texture_size
        if max(tw, th) > self.max_texture_size:
            if not self._warned_size:
                log.warning(
                    "livejpp: a %dx%d HAP picture is larger than this GL draws (%d): not shown",
                    picture.width,
                    picture.height,
                    self.max_texture_size,
                )
                self._warned_size = True
            return False
        gl.glActiveTexture(gl.GL_TEXTURE0 + slot)
        gl.glBindTexture(gl.GL_TEXTURE_2D, self.compressed_textures[slot])
        blocks = np.frombuffer(picture.data, np.uint8)  # a view: no copy of the blocks
        data, shape = ctypes.c_void_p(blocks.ctypes.data), (S3TC[picture.format], tw, th)
        if shape == self.compressed_shapes[slot]:
            gl.glCompressedTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, tw, th, shape[0], blocks.size, data)
        else:
            gl.glCompressedTexImage2D(gl.GL_TEXTURE_2D, 0, shape[0], tw, th, 0, blocks.size, data)
            self.compressed_shapes[slot] = shape
        x, y, w, h = cover_rect(picture.width, picture.height, self.width, self.height)
        fx, fy = picture.width / tw, picture.height / th
        self.kind[slot] = 2
        self.sampled[slot] = YCOCG if picture.format == "ycocg_dxt5" else RGB
        self.values[f"crop{slot}"] = (x * fx, y * fy, w * fx, h * fy)
        return True

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
        self.values |= {
            "weight": float(weight),
            "transition": int(self.transition),
            "effect": int(self.effect),
            "amount": float(self.amount),
            "brightness": float(brightness),
            "blackout": 1.0 if blackout else 0.0,
        }
        sampled = list(self.sampled)
        for k in range(1, self.layers):
            layer = extra[k - 1] if k <= len(extra) else None
            shown = layer is not None and 1 + k in self.uploaded
            opacity = round(min(1.0, max(0.0, layer.opacity)) * 256) / 256 if shown else 0.0
            self.values[f"opacity{k}"] = float(opacity)
            if shown:
                if layer.blend not in BLENDS:
                    raise ValueError(f"unknown blend {layer.blend!r} (choose from {', '.join(BLENDS)})")
                self.values[f"blend{k}"] = BLENDS.index(layer.blend)
            if opacity <= 0.0:
                sampled[1 + k] = None  # drawn as nothing: not read at all
        # outside a crossfade only one of the matcher's pictures is read; a weight the shader rounds to 0 or 1
        # (within 1/512 of it) reads both and draws the same
        matcher = OUTGOING_ONLY if weight <= 0.0 else INCOMING_ONLY if weight >= 1.0 else BOTH
        if matcher == OUTGOING_ONLY:
            sampled[1] = None
        elif matcher == INCOMING_ONLY:
            sampled[0] = None
        program, quad = self._program_for((matcher, tuple(sampled)))
        slots = len(self.textures)
        for slot in range(slots):
            textures = (
                self.plane_textures[slot]
                if self.kind[slot] == 1
                else (self.compressed_textures[slot] if self.kind[slot] == 2 else self.textures[slot],)
            )
            units = (slot, slots + 2 * slot, slots + 2 * slot + 1)[: len(textures)]
            for unit, tex in zip(units, textures, strict=True):
                gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
                gl.glBindTexture(gl.GL_TEXTURE_2D, tex)
        quad.draw(gl.GL_TRIANGLE_STRIP)

    def _program_for(self, plan: tuple) -> tuple:
        """The program drawing `plan` (matcher, sampled per slot), compiled on first use and kept (a show
        meets a handful: crossfading or not, each layer shown or not), its uniforms brought up to date.
        A uniform the plan does not read was optimised out of its program: only the ones it has are set."""
        from pyglet import gl
        from pyglet.graphics.shader import Shader, ShaderProgram

        if plan not in self._programs:
            matcher, sampled = plan
            fragment = Shader(layer_shader(self.layers, sampled, matcher), "fragment")
            program = ShaderProgram(self._vertex, fragment)
            quad = program.vertex_list(
                4, gl.GL_TRIANGLE_STRIP, position=("f", (-1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0))
            )
            self._programs[plan] = (program, quad, {name: None for name in program.uniforms})
        program, quad, held = self._programs[plan]
        program.use()
        for name, value in self.values.items():
            if name in held and held[name] != value:
                program[name] = value
                held[name] = value
        return program, quad

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


def offscreen(width: int, height: int, headless: bool = True, layers: int = 2, max_texture_size: int | None = None):
    """A hidden window and its compositor: for tests and machines used only to render."""
    import pyglet

    if headless:
        pyglet.options["headless"] = True
    window = pyglet.window.Window(width, height, visible=False, config=gl_config())
    window.switch_to()
    return window, GLCompositor(width, height, layers, max_texture_size)
