"""`livejpp query INPUT`: the clips nearest to and farthest from a piece of music or of video.

Audio input is compared with the library's pictures through the model (audio → video); video input
with the pictures (video → video), as the 2019 project did. Prints a table and writes a contact
sheet: a thumbnail, the name and the distance of each clip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from livejpp import index as clip_index
from livejpp.errors import LivejppError
from livejpp.features.audio import audio_features, is_silent
from livejpp.features.visual import VisualFeatures, small_picture
from livejpp.library.store import LibraryStore
from livejpp.media.decode import AUDIO_RATE, MediaError, iter_video_frames, probe, read_audio_file
from livejpp.model.card import resolve
from livejpp.model.embed import Embedder
from livejpp.model.metrics import scores


class QueryError(LivejppError):
    """A query that cannot be answered."""


@dataclass
class Match:
    rank: int
    clip_id: int
    uid: str
    video: str
    start: float
    distance: float
    thumbnail: np.ndarray | None = None


def input_kind(path: str | os.PathLike) -> str:
    try:
        with av.open(str(path)) as c:
            return "video" if c.streams.video and c.streams.video[0].frames != 1 else "audio"
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(str(path), f"not a readable audio or video file ({exc})") from exc


def visual_rows(path: str | os.PathLike, start: float, seconds: int) -> np.ndarray:
    """Per-second visual features of [start, start + seconds) of a video file."""
    info = probe(path)
    features = VisualFeatures()
    scaler = VideoReformatter()
    for t, frame in iter_video_frames(info.path, start=start, origin=info.start):
        if t >= start + seconds:
            break
        features.add(t - start, small_picture(scaler, frame, info.rotation))
    rows = min(seconds, int(info.duration - start + 0.5))
    if rows < 1:
        raise QueryError(f"{path}: nothing to see after {start:.1f} s")
    return features.rows(rows)


def thumbnail(path: str, base: float, length: float, height: int = 120) -> np.ndarray | None:
    """The middle frame of a clip, `height` pixels high."""
    try:
        with av.open(path) as c:
            stream = c.streams.video[0]
            c.seek(int((base + length / 2) / stream.time_base), stream=stream, backward=True)
            for frame in c.decode(stream):
                if frame.time is None or frame.time >= base + length / 2 - 0.05:
                    width = max(2, int(round(frame.width * height / frame.height / 2)) * 2)
                    return frame.to_ndarray(width=width, height=height, format="rgb24")
    except (av.FFmpegError, OSError, IndexError):
        return None
    return None


def query(
    source: str | os.PathLike,
    library: str | os.PathLike,
    model: str | os.PathLike = "default",
    k: int = 5,
    start: float = 0.0,
    kind: str | None = None,
) -> tuple[str, list[Match], list[Match]]:
    """(kind, nearest k, farthest k) for the window [start, start + model seconds) of `source`."""
    folder = resolve(model)
    embedder = Embedder(folder)
    kind = kind or input_kind(source)
    seconds = embedder.seconds
    if kind == "audio":
        samples = read_audio_file(source, start, start + seconds)
        if len(samples) < AUDIO_RATE:
            raise QueryError(f"{source}: less than a second of audio after {start:.1f} s")
        if is_silent(samples):
            raise QueryError(f"{source}: silent from {start:.1f} s: there is no music to match")
        vector = embedder.audio([audio_features(samples)])
    else:
        vector = embedder.visual([visual_rows(source, start, seconds)])
    index, _ = clip_index.open_index(library, folder)
    with LibraryStore(library, readonly=True) as store:
        records = {c.id: c for c in store.clips()}
    ids = np.array([i for i in index.index.get_ids_list() if i in records], np.int64)
    if not len(ids):
        raise QueryError(f"{library}: no clip of the library can be shown")
    gallery = np.asarray(index.index.get_items(ids), np.float32)
    closeness = scores(vector, gallery, embedder.metric)[0]
    order = np.argsort(-closeness, kind="stable")
    distance = 1 - closeness if embedder.metric == "cosine" else np.sqrt(np.maximum(-closeness, 0))

    def match(rank: int, i: int) -> Match:
        record = records[int(ids[i])]
        path, base, length = record.pictures(library)
        return Match(
            rank,
            record.id,
            record.uid,
            record.source,
            record.start,
            float(distance[i]),
            thumbnail(path, base, length),
        )

    k = min(k, len(ids))
    nearest = [match(r + 1, i) for r, i in enumerate(order[:k])]
    farthest = [match(len(ids) - r, i) for r, i in enumerate(order[::-1][:k])]
    return kind, nearest, farthest


def format_matches(kind: str, source: str, nearest: list[Match], farthest: list[Match]) -> str:
    direction = "audio → video" if kind == "audio" else "video → video"
    lines = [f"{source} ({direction})"]
    for title, matches in (("nearest", nearest), ("farthest", farthest)):
        lines.append(f"{title}:")
        lines.append(f"  {'rank':>4}  {'clip':<18} {'distance':>8}  {'at':>6}  video")
        for m in matches:
            lines.append(f"  {m.rank:>4}  {m.uid:<18} {m.distance:>8.4f}  {m.start:>5.0f}s  {Path(m.video).name}")
    return "\n".join(lines)


def contact_sheet(path: str | os.PathLike, kind: str, source: str, nearest: list[Match], farthest: list[Match]) -> None:
    """Two rows of thumbnails (nearest, farthest) with rank, clip and distance under each."""
    from PIL import Image, ImageDraw, ImageFont

    cell_w, cell_h, text_h, margin = 220, 124, 34, 10
    columns = max(len(nearest), len(farthest), 1)
    width = margin + columns * (cell_w + margin)
    height = 40 + 2 * (24 + cell_h + text_h + margin)
    sheet = Image.new("RGB", (width, height), (18, 18, 18))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    title = ImageFont.load_default(size=16)
    direction = "audio -> video" if kind == "audio" else "video -> video"  # the bundled font has no arrow
    draw.text((margin, 10), f"{Path(source).name}: {direction}", fill=(240, 240, 240), font=title)
    y = 40
    for label, matches in (("nearest", nearest), ("farthest", farthest)):
        draw.text((margin, y), label, fill=(200, 200, 120), font=title)
        y += 24
        for i, m in enumerate(matches):
            x = margin + i * (cell_w + margin)
            if m.thumbnail is not None:
                thumb = Image.fromarray(m.thumbnail)
                thumb.thumbnail((cell_w, cell_h))
                sheet.paste(thumb, (x + (cell_w - thumb.width) // 2, y + (cell_h - thumb.height) // 2))
            draw.text((x, y + cell_h + 2), f"#{m.rank} {m.uid}", fill=(230, 230, 230), font=font)
            draw.text(
                (x, y + cell_h + 17), f"{Path(m.video).name[:22]}  d={m.distance:.3f}", fill=(160, 160, 160), font=font
            )
        y += cell_h + text_h + margin
    out = Path(path)
    tmp = out.with_name(f".{out.name}.part.png")
    sheet.save(tmp, format="PNG")
    os.replace(tmp, out)
