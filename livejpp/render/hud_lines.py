"""The HUD's text as one label per line, laid out a line at a time: a frame never pays for the whole text.

Laying a multiline label out again costs every line's glyphs on the frame the text changes (the render thread's
time, whatever changed); here each line is its own label, stacked where the multiline label put its lines (the
same pixels), and each frame lays out at most one line that differs from the text wanted. A change of N lines
(or N lines taken away) is shown whole within N frames; lines that did not change cost nothing.
"""

from __future__ import annotations


class HudLines:
    """Single-line labels stacked from `top` down (a long line wraps within `width`, as the multiline label's did)."""

    def __init__(self, x: int, top: int, width: int, font_size: float, color: tuple[int, ...], batch) -> None:
        import pyglet

        self._make = lambda text, y: pyglet.text.Label(
            text,
            x=x,
            y=y,
            anchor_y="top",
            multiline=True,  # for wrapping within the width: each label holds one line of the text
            width=width,
            font_size=font_size,
            color=color,
            batch=batch,
        )
        self.top = top
        blank = self._make(" ", top)  # an empty line takes a line's height in a multiline label: this one's
        self.blank_height = blank.content_height
        blank.delete()
        self.labels: list = []
        self.shown: list[str] = []  # each label's line
        self.wanted: list[str] = []

    def want(self, text: str) -> None:
        """The text to show: laid out by the next frames' step(), a changed line each."""
        self.wanted = text.split("\n") if text else []

    def step(self) -> bool:
        """Bring one line of the HUD to the text wanted: lay out the first line that differs, or else take away
        the last label of a line no longer wanted. At most one line changes on screen; True if one did."""
        wanted, shown, labels = self.wanted, self.shown, self.labels
        changed = next((n for n, line in enumerate(wanted) if n >= len(shown) or shown[n] != line), None)
        if changed is None:
            if len(labels) <= len(wanted):
                return False
            labels.pop().delete()  # nothing below it moves
            shown.pop()
            return True
        line = wanted[changed]
        if changed < len(labels):
            labels[changed].text = line
            shown[changed] = line
        else:
            labels.append(self._make(line, self.top))
            shown.append(line)
        self._stack()
        return True

    def _stack(self) -> None:
        """Each label just below the one above (moving a label is a translation, not a layout)."""
        y = self.top
        for label, line in zip(self.labels, self.shown, strict=True):
            if label.y != y:
                label.y = y
            y -= label.content_height if line else self.blank_height

    @property
    def text(self) -> str:
        """What the labels show now (lines joined)."""
        return "\n".join(self.shown)

    @property
    def settled(self) -> bool:
        """Everything wanted is shown."""
        return self.shown == self.wanted
