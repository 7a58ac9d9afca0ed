"""The live recorder: the render thread hands a frame over and goes on; when the encoder cannot keep
up, the RECORDING leaves frames out (each kept frame still at its show time), never the show."""

import time

import av
import numpy as np

from livejpp.render.window import Recorder


def test_a_slow_encoder_leaves_frames_out_of_the_recording_not_the_show(tmp_path):
    size, fps = (320, 180), 30
    # x264's slowest preset, two frames of room: the encoder falls behind at once, for real
    recorder = Recorder(tmp_path / "show.mp4", size, fps, options={"preset": "placebo"}, queue_frames=2)
    handed_over = []

    def picture(i):
        def read_into(buffer):
            buffer[:] = 0
            buffer[:90, : 5 * i + 5, 0] = 255  # a blue bar (BGRA) in the lower half (GL reads the bottom row first)

        return read_into

    for i in range(60):
        t0 = time.perf_counter()
        recorder.add(picture(i), i / fps)
        handed_over.append(time.perf_counter() - t0)
    recorder.close()

    assert recorder.dropped > 0  # the encoder was behind: the recording left frames out ...
    # ... and the show did not wait for it: placebo takes far longer a frame (a busy machine may delay one hand-over)
    assert np.median(handed_over) < 0.01 and max(handed_over) < 0.5
    with av.open(str(tmp_path / "show.mp4")) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert len(frames) == len(recorder.times) == 60 - recorder.dropped
    assert np.allclose([t for t, _ in frames], recorder.times, atol=1e-3)  # each at the time it was shown
    for t, rgb in frames:  # the picture of that time, the right way up
        width = 5 * round(t * fps) + 5
        bar, rest = rgb[92:, : width - 2], rgb[92:, width + 2 :]
        assert bar[..., 2].mean() > 200 and bar[..., :2].mean() < 50  # blue, the right way up, at that time
        assert rest.mean() < 50 and rgb[:88].mean() < 50


def test_a_recording_onto_a_full_disk_stops_with_one_line_and_the_show_goes_on(real_library, media, tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib)
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], check=True)
    try:
        out = subprocess.run(
            [
                sys.executable, "-m", "livejpp", "live", "--library", str(lib), "--headless", "--size", "320x180",
                "--play", str(media / "music" / "lmms_Skiessi-C64.ogg"), "--silent", "--duration", "6",
                "--osc-port", "0", "--record", str(full / "show.mp4"), "--stats", str(tmp_path / "stats.json"),
            ],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        left = sorted(p.name for p in full.iterdir())
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert out.returncode == 0, out.stderr  # the show went on, to its end
    assert "Traceback" not in out.stderr
    stopped = [line for line in out.stderr.splitlines() if "recording stopped" in line]
    assert len(stopped) == 1 and "No space left on device" in stopped[0]
    assert "livejpp: no recording written to" in out.stderr
    assert left == []  # no half-written file left behind
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames_drawn"] > 100


def test_a_recording_where_nothing_can_be_written_is_refused_before_the_show(real_library, media, tmp_path):
    import shutil
    import subprocess
    import sys

    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib)  # the show indexes it
    out = subprocess.run(
        [
            sys.executable, "-m", "livejpp", "live", "--library", str(lib), "--headless",
            "--size", "320x180", "--play", str(media / "music" / "lmms_Skiessi-C64.ogg"), "--silent",
            "--osc-port", "0", "--record", str(tmp_path / "no-such-folder" / "show.mp4"),
        ],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"livejpp: error: {tmp_path / 'no-such-folder' / 'show.mp4'}")
