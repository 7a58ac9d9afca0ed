"""`render SONG` in sync: where the song is a library video's soundtrack, the render shows that video at
the song's position (issue 12, sync12-design.md §4.5).

The engine's per-hop match drives a SyncTracker (engine/sync.py), hop by hop as the audio arrives.
Offline there is no latency, so a locked span starts where the song met the video (at most one match
window before the lock, and not before the video's start) and, when the lock is left, ends on the
first beat after the last hop that agreed with it.
A span is drawn with its final line (the fit over its last 20 s: exact for a song at one speed) as cuts
into the video's own clips, back to back: a video's clips are its consecutive pieces, so a boundary is
seamless (no crossfade). The engine's content cuts inside a span are dropped; after it, the content clip
that was playing resumes where it would be.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from livejpp.engine.selector import Cut
from livejpp.engine.sync import SyncEvent, SyncLock
from livejpp.library.store import ClipRecord

EPSILON = 1e-3  # seconds: the end of a span or a clip reached by adding up floats
HALF_FRAME = 0.02  # seconds: a position this close to a clip's start is that start (no 2 ms cut before it)


@dataclass(frozen=True)
class SyncSpan:
    begin: float
    end: float
    lock: SyncLock  # the span's final line


def sync_spans(
    events: list[SyncEvent], locks: list[tuple[float, SyncLock | None]], beats: list[float], window: float, end: float
) -> list[SyncSpan]:
    """The locked spans of a song from the tracker's events and its lock after every hop (hop time, lock)."""
    spans: list[SyncSpan] = []
    boundary = 0.0  # the last moment the previous span's line was heard to hold
    for i, event in enumerate(events):
        if event.lock is None:
            continue
        until = events[i + 1].at if i + 1 < len(events) else float("inf")
        final = [lock for t, lock in locks if event.at <= t < until and lock is not None][-1]
        starts_at = final.start - final.position / final.rate  # where the video's first frame falls
        begin = max(boundary, starts_at - HALF_FRAME, event.at - window, 0.0)
        if spans and spans[-1].end > begin:
            spans[-1] = replace(spans[-1], end=begin)
        span_end = end
        if i + 1 < len(events) and events[i + 1].lock is None:  # left: on the first beat after the last agreement
            after = bisect.bisect_right(beats, final.start)
            span_end = min(beats[after] if after < len(beats) else end, end)
        spans.append(SyncSpan(begin, span_end, final))
        boundary = final.start
    return [s for s in spans if s.end > s.begin]


def clip_cuts(span: SyncSpan, clips: list[ClipRecord], crossfade: float) -> list[Cut]:
    """The span as cuts into the locked video's clips (sorted by start), each at the span's rate. Before the
    first clip its first picture waits; in a gap (a tail the build dropped) and after the last clip the
    last picture before it holds, until the next clip starts."""
    lock, cuts, t = span.lock, [], span.begin
    starts = [c.start for c in clips]
    while t < span.end - EPSILON and clips:
        position = lock.position_at(t)
        i = bisect.bisect_right(starts, position + HALF_FRAME) - 1
        extra = {"rate": lock.rate, "video_position": round(position, 4)}
        fade = crossfade if not cuts else 0.0
        if i < 0:
            cuts.append(Cut(t, clips[0].id, 0.0, fade, 0.0, -1, "sync", {**extra, "rate": 0.0}))
            t += (clips[0].start - position) / lock.rate
        elif position < clips[i].end - HALF_FRAME:
            clip = clips[i]
            cuts.append(Cut(t, clip.id, max(0.0, position - clip.start), fade, 0.0, -1, "sync", extra))
            t += (clip.end - position) / lock.rate
        else:
            clip, following = clips[i], starts[i + 1] if i + 1 < len(clips) else float("inf")
            cuts.append(Cut(t, clip.id, clip.end - clip.start - EPSILON, fade, 0.0, -1, "sync", {**extra, "rate": 0.0}))
            t += (following - position) / lock.rate
    return cuts


def clip_at(clips: list[ClipRecord], position: float) -> tuple[ClipRecord, float]:
    """The locked video's clip (of `clips`, sorted by start) and its clip time at video `position`, by the
    rules of clip_cuts: before the first clip its first picture, in a gap or after the last clip the last
    picture before it (the live show follows the lock frame by frame with this)."""
    i = bisect.bisect_right([c.start for c in clips], position + HALF_FRAME) - 1
    if i < 0:
        return clips[0], 0.0
    clip = clips[i]
    if position < clip.end - HALF_FRAME:
        return clip, max(0.0, position - clip.start)
    return clip, clip.end - clip.start - EPSILON


def with_sync(
    content: list[Cut], spans: list[SyncSpan], clips_of: dict[int, list[ClipRecord]], end: float
) -> list[Cut]:
    """The engine's content cuts (sorted by time) with the locked spans drawn in sync instead."""
    drawn = [s for s in spans if clips_of.get(s.lock.video)]
    cuts = [c for c in content if not any(s.begin <= c.time < s.end for s in drawn)]
    fade = next((c.crossfade for c in reversed(content) if c.crossfade > 0), 0.0)  # the selector's crossfade
    for i, span in enumerate(drawn):
        after_another = i > 0 and drawn[i - 1].end >= span.begin - EPSILON  # one song mixed into the next
        cuts += clip_cuts(span, clips_of[span.lock.video], fade if span.begin > 0 and not after_another else 0.0)
        followed = i + 1 < len(drawn) and drawn[i + 1].begin <= span.end + EPSILON
        playing = [c for c in content if c.time < span.end]
        if playing and span.end < end - 1e-6 and not followed:  # the content clip that would be playing now
            was = playing[-1]
            offset = was.offset + (span.end - was.time)
            cuts.append(replace(was, time=span.end, offset=offset, crossfade=fade, reason="sync end"))
    return sorted(cuts, key=lambda c: c.time)
