"""`livejpp render SONG`: a music video stitched from the library, the song's audio muxed in.

The song is fed to the engine in hops exactly as live audio would be; the cuts it decides are then
drawn by the numpy compositor (the same transitions the window's shaders draw) and encoded as H.264/AAC.
Nothing is left half-written: the video and the cut list are written beside and renamed into place.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np

from livejpp.engine.engine import Engine, EngineSettings
from livejpp.engine.layers import LayerSpec, find_clip, parse_layer_spec
from livejpp.engine.selector import Cut
from livejpp.engine.sync import SyncEvent, SyncLock, SyncMode, SyncTracker
from livejpp.engine.sync_cuts import sync_spans, with_sync
from livejpp.engine.trackers import make_tracker
from livejpp.errors import LivejppError
from livejpp.features.audio import is_silent
from livejpp.library.store import ClipRecord
from livejpp.media.compose import TRANSITIONS, LayerDraw, composite, crossfade_weight, transition
from livejpp.media.decode import AUDIO_RATE, DecodedFrames, Downmixer, MediaError, read_audio_file
from livejpp.media.player import FramePool
from livejpp.media.sizes import check_encodable
from livejpp.media.standby import standby_picture
from livejpp.media.writer import AUDIO_RATE_OUT, VideoWriter, check_writable
from livejpp.partfiles import part_path
from livejpp.progress import progress_bar

log = logging.getLogger("livejpp.render")


class RenderError(LivejppError):
    """A render that cannot be made as asked."""


@dataclass
class RenderResult:
    video: Path
    cut_list_json: Path
    cut_list_csv: Path
    song_seconds: float
    wall_seconds: float
    frames: int
    cuts: list[dict]
    beats: list[float]
    bpm: float


@dataclass
class SyncRun:
    """What the sync tracker made of the song: its events and its lock after every hop (hop time, lock)."""

    events: list[SyncEvent]
    locks: list[tuple[float, SyncLock | None]]


def analyse(
    song: str | Path,
    library: str | Path,
    model: str | Path,
    settings: EngineSettings,
    sync: SyncMode = "auto",
    layers: list[LayerSpec] | tuple[LayerSpec, ...] = (),
) -> tuple[Engine, float, SyncRun]:
    """Run the engine over the song as if it were live; returns the engine (its cuts, beats, hops) and
    the sync tracker's run over its per-hop matches. The `layers`' clips are checked first: a name that is
    not in the library fails before the analysis, not after it."""
    samples = read_audio_file(song)
    duration = len(samples) / AUDIO_RATE
    engine = Engine(library, model, settings)
    _layer_clips(engine, layers)
    engine.selector.check = _clip_file_check(engine)
    if duration < engine.window:
        raise RenderError(f"{song}: {duration:.1f} s long; a song needs at least one {engine.window} s window")
    if is_silent(samples):
        raise RenderError(f"{song}: silent (below -60 dBFS): there is no music to match")
    engine.set_matching(sync != "off")
    block = int(settings.hop * AUDIO_RATE)
    tracker, run = SyncTracker(sync), SyncRun([], [])
    for start in range(0, len(samples), block):
        hops = len(engine.hops)
        engine.push(samples[start : start + block])
        for _ in engine.hops[hops:]:  # one per block: the match is the newest hop's
            # weak matches count too; the hop's level tells a quiet passage of the song from other music
            now, verified = engine.match_time, engine.verify(tracker.verifying)
            event = tracker.update(engine.heard, now, now, level_db=engine.hop_level_db, verified=verified)
            run.events += [event] if event else []
            run.locks.append((engine.match_time, tracker.lock))
    if not engine.cuts and engine.selector.broken:
        raise RenderError(f"{engine.library}: every clip file the music chose is missing; nothing to show")
    return engine, duration, run


def _in_sync(engine: Engine, cuts: list[Cut], run: SyncRun, duration: float) -> list[Cut]:
    """Where the song is a library video's soundtrack, that video at the song's position (sync_cuts.py)."""
    spans = sync_spans(run.events, run.locks, engine.beats, engine.settings.match_window, duration)
    clips_of = {video: engine.records.of_video(video) for video in {span.lock.video for span in spans}}
    return with_sync(cuts, spans, clips_of, duration)


def _clip_file_check(engine: Engine) -> Callable[[int], bool]:
    """Whether a clip's file is there, asked when the clip is first a candidate: a clip whose file is gone
    is not chosen (the next candidates are), with one line each, and the render goes on."""

    def present(clip_id: int) -> bool:
        path = engine.records[clip_id].pictures(engine.library)[0]
        if os.path.isfile(path):
            return True
        log.warning("%s: clip file is missing; using the next candidates", path)
        return False

    return present


def _layer_specs(texts: list[str] | tuple[str, ...]) -> list[LayerSpec]:
    """The --layer specs, checked, in the order they are drawn (by layer number); one line per problem."""
    try:
        specs = sorted((parse_layer_spec(text) for text in texts), key=lambda s: s.number)
    except ValueError as exc:
        raise RenderError(str(exc)) from None
    numbers = [s.number for s in specs]
    for n in sorted(set(numbers)):
        if numbers.count(n) > 1:
            raise RenderError(f"--layer: layer {n} is given {numbers.count(n)} times")
    return specs


def _layer_clips(engine: Engine, specs: list[LayerSpec]) -> list[tuple[ClipRecord, LayerDraw]]:
    """Each layer's clip in the library, and how it is drawn."""
    out = []
    for spec in specs:
        try:
            out.append((find_clip(engine, spec.clip), LayerDraw(spec.opacity, spec.blend)))
        except ValueError as exc:
            raise RenderError(f"--layer {spec.number}: {exc}") from None
    return out


def cut_rows(engine: Engine, cuts: list[Cut]) -> list[dict]:
    rows = []
    for cut in cuts:
        record = engine.records[cut.clip]
        rows.append(
            {
                "time": round(cut.time, 4),
                "clip": record.uid,
                "clip_id": cut.clip,
                "video": record.source,
                "source_time": round(record.start + cut.offset, 4),
                "offset": cut.offset,
                "distance": round(cut.distance, 6),
                "beat": cut.beat,
                "crossfade": round(cut.crossfade, 4),
                "reason": cut.reason,
                "rate": cut.extra.get("rate", 1.0),  # source seconds per second: a song in sync at its speed
            }
        )
    return rows


def _write_atomically(path: Path, text: str) -> None:
    tmp = part_path(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def render(
    song: str | Path,
    library: str | Path,
    out: str | Path,
    model: str | Path = "default",
    size: tuple[int, int] = (1280, 720),
    fps: int = 30,
    settings: EngineSettings | None = None,
    progress: bool = True,
    crf: int = 21,
    preset: str = "veryfast",
    transition: str = "crossfade",
    sync: SyncMode = "auto",
    layers: list[str] | tuple[str, ...] = (),
) -> RenderResult:
    """`layers`: `N:CLIP:OPACITY:BLEND` specs (see layers.parse_layer_spec), drawn over the cuts in order of N."""
    out = Path(out)
    check_writable(out)
    if transition not in TRANSITIONS:
        raise RenderError(f"unknown transition {transition!r} (choose from {', '.join(TRANSITIONS)})")
    specs = _layer_specs(layers)
    check_encodable(size)
    started = time.monotonic()
    settings = settings or EngineSettings()
    make_tracker(settings.beat_tracker)  # a tracker this build lacks fails before the work, in one line
    options = {"preset": preset, "crf": str(crf), "g": str(2 * fps), "movflags": "+faststart"}
    writer = VideoWriter(out, size, fps, options, audio=True)  # opened now, so an unwritable place fails at once
    try:  # a SIGTERM (see livejpp.partfiles) or Ctrl-C anywhere below leaves no part file behind
        engine, duration, run = analyse(song, library, model, settings, sync, specs)
        extra = _layer_clips(engine, specs)
        cuts = list(engine.cuts)
        if not cuts:
            raise RenderError(f"{song}: no clip matched (is the library empty?)")
        cuts[0] = replace(cuts[0], time=0.0, crossfade=0.0)  # a file can show its first clip from the first frame
        cuts = _in_sync(engine, cuts, run, duration)
        rows = cut_rows(engine, cuts)
        frames = _encode(song, engine, cuts, writer, duration, progress, transition, extra)
        writer.close(flushed=True)
    except BaseException:
        writer.abort()
        raise
    stem = out.with_suffix("")
    json_path, csv_path = Path(f"{stem}.cuts.json"), Path(f"{stem}.cuts.csv")
    meta = {
        "song": str(song),
        "library": str(library),
        "model": str(model),
        "bpm": round(engine.clock.bpm, 2),
        "size": list(size),
        "fps": fps,
        "settings": settings.selector.as_dict(),
        "beat_tracker": settings.beat_tracker,
        "sections": [round(t, 3) for t in engine.sections],  # section changes heard (drops)
        "cuts": rows,
    }
    _write_atomically(json_path, json.dumps(meta, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    _write_atomically(csv_path, buffer.getvalue())
    return RenderResult(
        out, json_path, csv_path, duration, time.monotonic() - started, frames, rows, engine.beats, engine.clock.bpm
    )


def _encode(
    song,
    engine: Engine,
    cuts: list[Cut],
    writer: VideoWriter,
    duration: float,
    progress: bool,
    kind: str,
    layers: list[tuple[ClipRecord, LayerDraw]] = (),
) -> int:
    size, fps = (writer.width, writer.height), writer.fps
    n_frames = int(np.ceil(duration * fps))
    times = [c.time for c in cuts]
    pool = FramePool(size)

    def clip_picture(record: ClipRecord, clip_time: float, what: str, instead: str) -> np.ndarray | None:
        """The clip's picture `clip_time` seconds in (looping); None, said in one line with what the caller
        does `instead`, when it cannot play: one damaged clip must not cost the whole render."""
        try:
            path_, base, length = record.pictures(engine.library)
            return pool.get(path_, base, length).frame_at(clip_time % max(length, 1e-3))
        except Exception as exc:  # noqa: BLE001 - any decoder or file error: the render goes on
            log.warning("%s %s cannot play (%s): %s", what, record.uid, exc, instead)
            return None

    broken: set[int] = set()
    held: list[np.ndarray] = []  # the last picture that decoded

    def picture(cut: Cut, t: float) -> np.ndarray:
        """The cut's clip at `t`; a clip that turns out damaged mid-render holds the picture before it."""
        if cut.clip not in broken:
            clip_t = cut.offset + (t - cut.time) * cut.extra.get("rate", 1.0)
            frame = clip_picture(engine.records[cut.clip], clip_t, "clip", "the picture before it is held")
            if frame is not None:
                held[:] = [frame]
                return frame
            broken.add(cut.clip)
        return held[0] if held else standby_picture(size)

    hand = list(layers)

    def layer_picture(i: int, t: float) -> np.ndarray | None:
        """Layer i's clip at `t`, looping from the start; a clip that cannot play leaves its layer empty."""
        record, draw = hand[i]
        if record is None:
            return None
        frame = clip_picture(record, t, "layer clip", "the layer is left out")
        if frame is None:
            hand[i] = (None, draw)
        return frame

    try:
        for n in progress_bar(range(n_frames), desc="rendering", unit="frame", enabled=progress, leave=False):
            t = n / fps
            i = bisect.bisect_right(times, t) - 1
            cut = cuts[max(i, 0)]
            rgb = picture(cut, t)
            w = crossfade_weight(t, cut.time, cut.crossfade)
            if i > 0 and w < 1.0:
                rgb = transition(picture(cuts[i - 1], t), rgb, w, kind)
            if hand:  # the same math as the window's shader (tests/test_layers.py)
                rgb = composite(rgb, [(layer_picture(k, t), draw) for k, (_, draw) in enumerate(hand)])
            writer.write(rgb, n)
        writer.finish_video()
    finally:
        pool.close()
    _mux_audio(song, writer, duration)
    return n_frames


def _mux_audio(song, writer: VideoWriter, duration: float) -> None:
    """The song itself, resampled to 48 kHz stereo AAC, trimmed to its decoded length."""
    try:
        source = av.open(str(song))
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(str(song), f"not a readable audio file ({exc})") from exc
    downmix = Downmixer("stereo", AUDIO_RATE_OUT)
    limit = int(duration * AUDIO_RATE_OUT)
    with source:
        for frame in DecodedFrames(source, source.streams.audio[0]):
            frame.pts = None
            for samples in downmix.resample(frame):
                if writer.audio.written >= limit:
                    break
                writer.audio.write(samples, AUDIO_RATE_OUT)
