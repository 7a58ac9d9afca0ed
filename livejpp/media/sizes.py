"""The sizes a picture may have: positive; within the GL's limits on screen; even and within x264's
limits in a file. Checked before a show or a render starts, so a bad `--size` is one line, not a
traceback from deep in GL or the encoder."""

from __future__ import annotations

from livejpp.errors import LivejppError

X264_MAX_SIDE = 16384  # libx264 refuses to open beyond this (measured: 16384 opens, 16386 does not)


class SizeError(LivejppError):
    """A picture size that cannot be shown or encoded."""


def parse_size(text: str) -> tuple[int, int]:
    """`WxH` (1280x720) as positive integers."""
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SizeError(f"--size must look like 1280x720, not {text!r}") from None
    if width <= 0 or height <= 0:
        raise SizeError(f"--size {text}: width and height must be positive")
    return width, height


def check_encodable(size: tuple[int, int]) -> None:
    """H.264 (yuv420p) needs even sides, at most X264_MAX_SIDE pixels each."""
    width, height = size
    if width <= 0 or height <= 0:
        raise SizeError(f"{width}x{height}: width and height must be positive")
    if width % 2 or height % 2:
        raise SizeError(f"{width}x{height}: width and height must be even for H.264")
    if max(width, height) > X264_MAX_SIDE:
        raise SizeError(f"{width}x{height}: H.264 (libx264) encodes at most {X264_MAX_SIDE} pixels a side")


def check_drawable(size: tuple[int, int]) -> None:
    """Within this GL's largest texture and viewport (in the current context)."""
    import ctypes

    from pyglet import gl

    texture = gl.GLint()
    gl.glGetIntegerv(gl.GL_MAX_TEXTURE_SIZE, ctypes.byref(texture))
    viewport = (gl.GLint * 2)()
    gl.glGetIntegerv(gl.GL_MAX_VIEWPORT_DIMS, viewport)
    most = (min(texture.value, viewport[0]), min(texture.value, viewport[1]))
    if size[0] > most[0] or size[1] > most[1]:
        raise SizeError(f"{size[0]}x{size[1]}: this OpenGL draws at most {most[0]}x{most[1]}")
