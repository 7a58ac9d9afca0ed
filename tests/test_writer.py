"""The one video writer (media/writer.py): what it writes, read back with PyAV, and the one line it says
for a place it cannot write or a size x264 refuses (before: PyAV's own errors, naming neither the file
nor the problem: `FileNotFoundError [Errno 2]` and `ExternalError ... avcodec_open2("libx264", ...)`)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from test_files_and_faults import _mount, small_disk

from livejpp.media.writer import AUDIO_RATE_OUT, VideoWriter, WriterError, add_audio

FAST = {"preset": "ultrafast", "crf": "20"}


def left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_video_with_sound_is_written_whole_and_renamed_into_place(tmp_path):
    out = tmp_path / "v.mp4"
    writer = VideoWriter(out, (64, 48), 10, FAST, audio=True)
    assert not out.exists() and len(left(tmp_path)) == 1  # written beside, hidden, until complete
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((48, 64, 4), np.uint8)
    blue[..., 0] = 255  # BGRA: blue first
    for n in range(10):
        writer.write(red, n) if n < 5 else writer.write(blue, n, "bgra")
    writer.finish_video()
    t = np.arange(AUDIO_RATE_OUT) / AUDIO_RATE_OUT
    writer.audio.write(np.stack([np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32), AUDIO_RATE_OUT)
    assert writer.close(flushed=True) == out and left(tmp_path) == ["v.mp4"]
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert c.streams.audio[0].sample_rate == AUDIO_RATE_OUT and c.streams.audio[0].channels == 2
    assert len(frames) == 10 and frames[0].shape == (48, 64, 3)
    assert frames[2][..., 0].mean() > 200 and frames[7][..., 2].mean() > 200 and frames[7][..., 0].mean() < 50


def test_sound_added_later_is_resampled_to_the_files_rate(tmp_path):
    out = tmp_path / "show.mp4"
    writer = VideoWriter(out, (32, 32), 30, FAST)
    for n in range(60):
        writer.write(np.full((32, 32, 3), n * 4, np.uint8), n)
    writer.close(commit=False)
    pcm = tmp_path / "sound.f32"
    pcm.write_bytes(np.full(2 * 22050, 0.25, np.float32).tobytes())  # 2 s of mono at 22.05 kHz
    add_audio(writer.tmp, pcm, 22050)
    writer.commit()
    with av.open(str(out)) as c:
        sound = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == 60  # the pictures, copied over
    assert abs(sound.shape[1] / AUDIO_RATE_OUT - 2.0) < 0.05 and sound.shape[0] == 2


def test_a_place_it_cannot_write_or_a_size_x264_refuses_is_one_line(tmp_path):
    missing = tmp_path / "no" / "v.mp4"
    with pytest.raises(WriterError) as no_folder:
        VideoWriter(missing, (64, 48), 30, FAST)
    assert str(no_folder.value) == f"{missing}: cannot write here (no folder {tmp_path / 'no'})"
    with pytest.raises(WriterError) as odd:
        VideoWriter(tmp_path / "odd.mp4", (65, 63), 30, FAST)
    assert str(odd.value) == f"{tmp_path / 'odd.mp4'}: 65x63: width and height must be even for H.264"
    assert left(tmp_path) == []  # nothing half-made
    read_only = tmp_path / "ro"
    with small_disk(read_only, "1m"):
        _mount("-o", "remount,ro", str(read_only))
        with pytest.raises(WriterError) as refused:
            VideoWriter(read_only / "v.mp4", (64, 48), 30, FAST, in_place=True)  # the build's way: no checks first
    assert str(refused.value).startswith(f"{read_only / 'v.mp4'}: cannot write here (")


def test_an_aborted_video_leaves_nothing(tmp_path):
    writer = VideoWriter(tmp_path / "v.mp4", (64, 48), 30, FAST, audio=True)
    writer.write(np.zeros((48, 64, 3), np.uint8), 0)
    writer.abort()
    assert left(tmp_path) == []
