"""Progress of every long command (build, render, train): a bar on a terminal, plain lines elsewhere.

A bar redraws itself with '\\r' several times a second; in a log file or CI output each redraw is one
more line, thousands for one build. Where stderr is not a terminal the same progress comes as a log
line when it starts, every few seconds, and when it ends:
`livejpp: building: 120/500 clips (24 %), 3.1 clips/s, ETA 2:03, videos 4/17`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm import tqdm

LINE_EVERY = 5.0  # seconds between plain progress lines

log = logging.getLogger("livejpp.progress")


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    unit: str,
    total: int | None = None,
    enabled: bool = True,
    leave: bool = True,
):
    """What counts the work: a tqdm bar (a terminal), plain lines (a pipe or file), or nothing (disabled)."""
    if enabled and not sys.stderr.isatty():
        return Lines(iterable, desc=desc, unit=unit, total=total)
    return tqdm(iterable, desc=desc, unit=unit, total=total, disable=not enabled, leave=leave, dynamic_ncols=True)


class Lines:
    """The part of tqdm's interface livejpp uses (iterate, update, set_postfix_str, close), as log lines."""

    def __init__(self, iterable: Iterable | None, *, desc: str, unit: str, total: int | None):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.n, self.postfix, self.closed = 0, "", False
        self.started = self.shown = time.monotonic()
        self._show(started=True)

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.shown >= LINE_EVERY:
            self._show()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._show(finished=True)

    def _show(self, started: bool = False, finished: bool = False) -> None:
        self.shown = now = time.monotonic()
        elapsed = now - self.started
        parts = [f"{self.n}/{self.total} {self.unit}s" if self.total is not None else f"{self.n} {self.unit}s"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        if not started and elapsed > 0:
            rate = self.n / elapsed
            parts.append(f"{rate:.3g} {self.unit}s/s")
            if finished:
                parts.append(f"in {tqdm.format_interval(elapsed)}")
            elif self.total and rate > 0:
                parts.append(f"ETA {tqdm.format_interval((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        log.info("%s: %s", self.desc, ", ".join(parts))
