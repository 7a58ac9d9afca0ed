"""Progress in a log or CI output: plain lines every few seconds, never a bar's carriage returns."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from livejpp.progress import LINE_EVERY

LINE = re.compile(r"livejpp: building: (\d+)/(\d+) clips \((\d+) %\)(, [\d.]+ clips/s, (ETA|in) [\d:]+)?(, videos .*)?")


def test_a_build_to_a_pipe_prints_a_few_plain_progress_lines(small_footage, tmp_path):
    started = time.monotonic()
    videos = [str(small_footage / name) for name in ("tree.avi", "earth.mp4")]
    done = subprocess.run(
        [sys.executable, "-m", "livejpp", "library", "build", *videos, "--out", str(tmp_path / "lib")],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        check=True,
    )
    elapsed = time.monotonic() - started
    assert "\r" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "building:" in line]
    assert 2 <= len(lines) <= 2 + elapsed / LINE_EVERY, done.stderr  # one when it starts, one when it ends
    assert all(LINE.fullmatch(line) for line in lines), lines
    first, last = LINE.fullmatch(lines[0]), LINE.fullmatch(lines[-1])
    total = int(first[2])
    assert total >= 2 and first[1] == "0"
    assert (last[1], last[2], last[3], last[5]) == (str(total), str(total), "100", "in")  # done/total and the rate
    assert last[6] == ", videos 2/2"
