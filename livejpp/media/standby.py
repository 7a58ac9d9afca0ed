"""The standby picture: what the screen shows when no clip can play. A generated test card (colour
bars over a gradient, the name in block letters), never black, so a VJ and the audience can see that
the show is alive and the library is what failed."""

from __future__ import annotations

import numpy as np

# 5×7 block letters for the name, one string of rows per letter ('#' lit)
GLYPHS = {
    "l": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
    "i": ["..#..", ".....", "..#..", "..#..", "..#..", "..#..", "..#.."],
    "v": ["#...#", "#...#", "#...#", "#...#", ".#.#.", ".#.#.", "..#.."],
    "e": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
    "j": ["....#", "....#", "....#", "....#", "#...#", "#...#", ".###."],
    "p": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
}
BARS = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]


def standby_picture(size: tuple[int, int], text: str = "livejpp") -> np.ndarray:
    """An RGB uint8 picture of `size` (width, height): bars on top, a grey ramp below, the name on a
    dark band in the middle."""
    width, height = size
    picture = np.empty((height, width, 3), np.uint8)
    columns = np.minimum(np.arange(width) * len(BARS) // max(width, 1), len(BARS) - 1)
    picture[:] = np.array(BARS, np.uint8)[columns][None]
    ramp = np.linspace(40, 235, width).astype(np.uint8)
    picture[height * 3 // 4 :] = ramp[None, :, None]
    letters = [GLYPHS[c] for c in text if c in GLYPHS]
    cell = max(1, min(height // 5 // 7, width * 4 // 5 // (6 * max(len(letters), 1))))  # pixels per dot
    text_w, text_h = (6 * len(letters) - 1) * cell, 7 * cell
    x0, y0 = (width - text_w) // 2, (height - text_h) // 2
    picture[max(0, y0 - cell) : y0 + text_h + cell] = 24
    for n, glyph in enumerate(letters):
        for row, line in enumerate(glyph):
            for col, dot in enumerate(line):
                if dot == "#":
                    x, y = x0 + (n * 6 + col) * cell, y0 + row * cell
                    picture[y : y + cell, x : x + cell] = 240
    return picture
