"""The engine's known-track match (issue 12): every hop it says which library video the music in the room
is, and where in it, from the library's stored fingerprints; music that is not in the library never matches."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import degrade
import numpy as np
import pytest

from livejpp.engine.engine import Engine
from livejpp.media.decode import AUDIO_RATE, read_audio_file

MEDIA = Path(__file__).parent / "media"
BLOCK = 1024  # what a sound card hands over at a time
TOLERANCE = 0.05  # seconds


def play(engine: Engine, audio: np.ndarray, on_hop=None) -> None:
    """Push audio block by block; `on_hop(engine)` after each block that completed a hop."""
    for i in range(0, len(audio), BLOCK):
        hops = len(engine.hops)
        engine.push(audio[i : i + BLOCK])
        if on_hop is not None and len(engine.hops) > hops:
            on_hop(engine)


def video_id(engine: Engine, name: str) -> int:
    return next(vid for vid, n in engine.video_names.items() if n == name)


@pytest.mark.parametrize(("name", "start"), [("big_buck_bunny_0_30.webm", 4.0), ("sintel_clip.mp4", 1.0)])
def test_a_library_videos_own_soundtrack_in_a_noisy_room_is_named_at_its_position(real_library, name, start):
    """The soundtrack from `start` s, under pink room noise at 10 dB SNR: within 5 s of audio the engine names
    the video, and from then on every match puts engine time t at `start + t` in the video (+-50 ms)."""
    engine = Engine(real_library[0])
    audio = degrade.room_noise(read_audio_file(MEDIA / "av" / name)[int(start * AUDIO_RATE) :], 10.0)
    wanted = video_id(engine, name)
    seen: list[tuple[float, int | None, float | None]] = []

    def check(engine: Engine) -> None:
        m = engine.match
        seen.append((engine.hops[-1].time, m and m.video, m and m.position_at(engine.match_time) - engine.match_time))

    play(engine, audio, check)
    matched = [(t, video, offset) for t, video, offset in seen if video is not None]
    assert matched and matched[0][0] <= 5.0, seen
    assert all(video == wanted for _, video, _ in matched), seen
    assert all(abs(offset - start) <= TOLERANCE for _, _, offset in matched), seen
    assert len(matched) >= 0.6 * len([t for t, _, _ in seen if t > matched[0][0]])  # it keeps matching
    assert [h.sync_video for h in engine.hops] == [video for _, video, _ in seen]


@pytest.mark.parametrize("song", ["lmms_Skiessi-C64.ogg", "Kevin_MacLeod-Vibe_Ace.ogg"])
def test_a_song_that_is_not_in_the_library_never_matches(real_library, song):
    engine = Engine(real_library[0])
    audio = read_audio_file(MEDIA / "music" / song)[: int(60 * AUDIO_RATE)]
    play(engine, audio)
    assert len(engine.hops) >= 60
    assert [h.time for h in engine.hops if h.sync_video is not None] == []
    assert engine.match is None


def test_a_library_switch_forgets_the_match_and_a_model_switch_keeps_it(real_library, tmp_path):
    """The same library (a model switch): the match goes on at once. Another library: its video ids mean
    other videos, so it listens afresh, and its matches are placed on the show's time, not its own."""
    audio = read_audio_file(MEDIA / "av" / "big_buck_bunny_0_30.webm")
    first = Engine(real_library[0])
    play(first, audio[: 8 * AUDIO_RATE])
    assert first.match is not None
    same = Engine(real_library[0])
    same.carry_over(first)
    play(same, audio[8 * AUDIO_RATE : int(8.5 * AUDIO_RATE)])
    assert same.hops[-1].sync_video == first.match.video  # no new 5 s of listening
    other_lib = tmp_path / "other"
    shutil.copytree(real_library[0], other_lib)
    other = Engine(other_lib)
    other.carry_over(same)
    assert other.match is None and other.matcher is not same.matcher  # the old match named the old ids
    play(other, audio[int(8.5 * AUDIO_RATE) : 16 * AUDIO_RATE])
    m = other.match
    assert m is not None and other.video_names[m.video] == "big_buck_bunny_0_30.webm"
    assert abs(m.position_at(other.match_time) - other.match_time) <= TOLERANCE  # engine time = video time here
    assert other.match_time - 2.5 <= m.heard_until <= other.match_time  # when the song was last heard, engine time


def test_a_library_without_fingerprints_matches_nothing_and_costs_nothing(real_library, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib)
    with sqlite3.connect(lib / "library.sqlite") as db:
        db.execute("DELETE FROM fingerprints")
    engine = Engine(lib)
    assert engine.fingerprints is None and engine.matcher is None
    play(engine, read_audio_file(MEDIA / "av" / "sintel_clip.mp4"))
    assert engine.match is None and all(h.sync_video is None for h in engine.hops)


def test_matching_is_off_while_sync_is_off_and_back_at_the_right_time_when_it_is_on(real_library):
    """Sync off (the VJ turned it off): the engine matches nothing (a 10,000-song library costs up to 16 ms a
    hop). Back on mid-song: it names the song again within 5 s of listening, at the song's position."""
    audio = read_audio_file(MEDIA / "av" / "big_buck_bunny_0_30.webm")
    engine = Engine(real_library[0])
    engine.set_matching(False)
    play(engine, audio[: 10 * AUDIO_RATE])
    assert engine.matcher is None and engine.match is None and all(h.sync_video is None for h in engine.hops)
    engine.set_matching(True)
    matched: list[tuple[float, float]] = []
    play(
        engine,
        audio[10 * AUDIO_RATE : 20 * AUDIO_RATE],
        lambda e: e.match and matched.append((e.match_time, e.match.position_at(e.match_time))),
    )
    assert matched and matched[0][0] <= 15.0 + 0.6, matched
    assert all(abs(position - t) <= TOLERANCE for t, position in matched), matched  # engine time = video time
