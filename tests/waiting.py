"""Waiting in tests: for a state or a log line, with a deadline, never a fixed sleep."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable


def wait_until(condition: Callable, timeout: float, what: str):
    """The first true value of `condition()`, checked every 50 ms; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not so after {timeout} s")
        time.sleep(0.05)
    return value


class Watched:
    """A running command (text pipes for stdout and stderr) whose output is read as it comes,
    so a test can wait for the log line that says it is ready."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self.changed = threading.Condition()
        self.ended = 0  # pipes at their end: 2 when the command has exited
        self.readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((proc.stdout, self.out), (proc.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self.changed:
                lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.ended += 1
            self.changed.notify_all()

    def wait_for(self, text: str, after: int = 0, timeout: float = 60) -> int:
        """How many stderr lines there are up to the first one after line `after` that holds `text`."""

        def found():
            return next((i + 1 for i in range(after, len(self.err)) if text in self.err[i]), None)

        with self.changed:
            self.changed.wait_for(lambda: found() or self.ended == 2, timeout)
            seen = found()
        if seen is None:
            state = f"exited with {self.proc.poll()}" if self.proc.poll() is not None else f"not after {timeout} s"
            raise AssertionError(f"no line with {text!r} ({state}):\n{''.join(self.err)}")
        return seen

    def communicate(self, timeout: float = 90) -> tuple[str, str]:
        """Like Popen.communicate: waits for the end and gives all of stdout and stderr."""
        self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return "".join(self.out), "".join(self.err)
