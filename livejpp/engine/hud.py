"""The HUD's text: the show's named values laid out as lines a VJ reads at a glance.

The show lays it out into its per-frame snapshot (engine/live.py ShowFrame.hud_text): the window only
draws it, with its own frame figures ahead of the first line (render/frame_stats.py) and its controls' line.
Kept apart so the text can be tested (and changed) without a GL context.
"""

from __future__ import annotations

from pathlib import Path

HUD_REFRESH = 0.25  # seconds between HUD text updates: laying text out every frame churns memory (measured)


def hud_text(show, controls=None) -> str:
    """The HUD lines for the show as it is now (read at most every HUD_REFRESH seconds)."""
    s = show.stats
    engine = show.engine
    current = show.layers[-1].record if show.layers else None
    latency = s.analysis_latency[-1] * 1000 if s.analysis_latency else 0.0
    clock = engine.clock_state  # published whole at each hop: never half a new grid
    bar_beat = clock.bar_position(show.picture_time()) + 1  # the beat of the pictures on screen
    forced = "  ".join(f"{k}={v}" for k, v in show.forced.items())
    lines = [
        f"analysis {latency:5.1f} ms   stale hops {engine.dropped_hops}",
        f"{clock.bpm:5.1f} BPM {clock.source}/{clock.tracker}  beat {bar_beat}/{clock.beats_per_bar}"
        f"  conf {clock.confidence:.0%}   every {show.bars} bars"
        f"   {'HOLD' if engine.selector.held else ''} {'BLACKOUT' if show.blackout else ''} {forced}"
        + (f"   A/V {clock.av_offset * 1000:+.0f} ms" if clock.av_offset else ""),
    ]
    if current is not None:
        lines.append(f"now  {current.uid}  {Path(current.source).name}")
    if engine.neighbours:
        record = engine.records[engine.neighbours[0][0]]
        lines.append(f"next {record.uid}  {Path(record.source).name}  d={engine.neighbours[0][1]:.3f}")
    hand = show.hand  # layers 2..N, set by hand: their clip, opacity and blend
    if any(layer.record is not None for layer in hand.values()):
        lines.append("   ".join(f"layer {n}: {hand[n].describe()}" for n in sorted(hand)))
    sync = show.sync_line()
    if sync:
        lines.append(sync)
    lines.append(show.sync_state.hud_line(show.picture_time()))  # known-track sync, published whole at each hop
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
