"""Layers set by hand over the matcher's picture: which clip each plays, how opaque, how it blends.

Layer 1 is the automatic matcher (its crossfade); layers 2..N are the VJ's, each a clip looping from
when it was set. The live show (bus commands `layer N clip|opacity|blend`) and `render --layer` name
their clips the same way: a clip's uid, or a video's file name (its first clip).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livejpp.library.store import UID_HASH_DIGITS, ClipRecord
from livejpp.media.compose import BLENDS, LayerDraw

MAX_LAYERS = 4  # the matcher's layer and three by hand: 3 (N + 1) texture units, 15 of a GL 3.3's 16
HAND_LAYERS = range(2, MAX_LAYERS + 1)  # the numbers a hand-set layer can have


@dataclass(frozen=True)
class HandLayer:
    """One hand-set layer, replaced whole on each change (the window's snapshot never sees half a change)."""

    record: ClipRecord | None = None  # None: the layer is empty and draws nothing
    library: Path | None = None  # the library the clip belongs to (a switch keeps it playing)
    opacity: float = 1.0
    blend: str = "alpha"
    set_at: float = 0.0  # audio time the clip was set: it plays from its start there, looping

    @property
    def draw(self) -> LayerDraw:
        return LayerDraw(self.opacity, self.blend)

    @property
    def clip(self) -> str:
        return self.record.uid if self.record is not None else ""

    def describe(self) -> str:
        """The HUD's words for it: clip, video, opacity, blend."""
        if self.record is None:
            return "empty"
        return f"{self.record.uid} {Path(self.record.source).name} {self.opacity:.0%} {self.blend}"


def find_clip(engine, name: str) -> ClipRecord:
    """The clip a layer names: a clip uid, or a video's file name (any case; a unique part of one
    will do), which plays that video's first clip. Raises ValueError naming what is not there."""
    wanted = name.strip()
    by_name = engine.video_names
    exact = [vid for vid, n in by_name.items() if n.lower() == wanted.lower()]
    partial = exact or [vid for vid, n in by_name.items() if wanted.lower() in n.lower()]
    if len(partial) == 1:
        return engine.records.of_video(partial[0])[0]
    if len(partial) > 1:
        names = ", ".join(sorted(by_name[v] for v in partial))
        raise ValueError(f"{wanted!r} names several videos ({names}): give the whole file name or a clip uid")
    record = _clip_by_uid(engine, wanted)
    if record is not None:
        return record
    raise ValueError(f"no clip or video named {wanted!r} in {engine.library}")


def _clip_by_uid(engine, uid: str) -> ClipRecord | None:
    """The clip a uid names, found through its video (video hash prefix, then clip number): a million-clip
    library is never walked clip by clip (seconds), only its videos' hashes (milliseconds)."""
    prefix, dash, _ = uid.rpartition("-")
    if not dash or len(prefix) != UID_HASH_DIGITS:
        return None
    for vid in [v for v, h in engine.video_hashes.items() if h[:UID_HASH_DIGITS] == prefix]:
        for record in engine.records.of_video(vid):
            if record.uid == uid:
                return record
    return None


@dataclass(frozen=True)
class LayerSpec:
    """`render --layer N:CLIP:OPACITY:BLEND`, checked (the clip is found once the library is open)."""

    number: int
    clip: str
    opacity: float = 1.0
    blend: str = "alpha"


def check_number(number: int, count: int = MAX_LAYERS) -> None:
    """A hand-set layer's number: 2..count (layer 1 is the matcher's). Raises ValueError."""
    if number not in HAND_LAYERS or number > count:
        if count < 2:
            raise ValueError(f"layer {number}: this show draws only the matcher's layer (--layers 1)")
        if count == 2 and number in HAND_LAYERS:
            raise ValueError(f"layer {number}: this show has one hand-set layer, 2 (--layers 2)")
        raise ValueError(f"layer {number}: hand-set layers are 2..{count} (layer 1 is the matcher's)")


def parse_layer_spec(text: str) -> LayerSpec:
    """'2:earth.mp4:0.5:add' (opacity and blend may be left out: 1, alpha). Raises ValueError naming the problem."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 4 or not parts[1].strip():
        raise ValueError(f"--layer {text!r}: expected N:CLIP_OR_VIDEO[:OPACITY[:BLEND]]")
    try:
        number = int(parts[0])
    except ValueError:
        raise ValueError(f"--layer {text!r}: the layer number {parts[0]!r} is not a whole number") from None
    opacity = 1.0
    if len(parts) > 2:
        try:
            opacity = float(parts[2])
        except ValueError:
            opacity = float("nan")
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"--layer {text!r}: opacity {parts[2]!r} is not a number 0..1")
    blend = parts[3].strip().lower() if len(parts) > 3 else "alpha"
    if blend not in BLENDS:
        raise ValueError(f"--layer {text!r}: unknown blend {blend!r} (choose from {', '.join(BLENDS)})")
    try:
        check_number(number)
    except ValueError as exc:
        raise ValueError(f"--layer {text!r}: {exc}") from None
    return LayerSpec(number, parts[1].strip(), opacity, blend)
