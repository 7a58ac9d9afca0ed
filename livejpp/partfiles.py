"""Half-written files: named after the process writing them, removed on signals and by the next run.

A file is written as `.NAME.part-PID` beside its final place and renamed into place when complete.
A SIGTERM (livejpp.signals) or Ctrl-C ends the writer through the ordinary exception path (its `except` removes the
part); a SIGKILL cannot be caught, so the next writer of the same folder removes parts whose process
is gone.
"""

from __future__ import annotations

import os
from pathlib import Path

_SUFFIX = ".part-"


def part_path(final: Path) -> Path:
    """Where `final` is written before it is complete (hidden, tagged with this process)."""
    return final.with_name(f".{final.name}{_SUFFIX}{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(folder: Path, name: str = "*") -> list[Path]:
    """Remove part files of `name` in `folder` whose writing process no longer runs; returns them."""
    removed = []
    for part in folder.glob(f".{name}{_SUFFIX}*"):
        pid = part.name.rsplit(_SUFFIX, 1)[1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            try:
                part.unlink(missing_ok=True)
            except OSError:  # a read-only library: its leftovers stay, and they harm nothing
                continue
            removed.append(part)
    return removed
