"""The one base class for problems a user can act on (the CLI prints them as one line, no traceback), and the
one line that names a failure of one video's work in a build's summary."""

from __future__ import annotations

import errno
import sqlite3


class LivejppError(Exception):
    """A clear, one-line reason why livejpp cannot do what was asked."""


def disk_full(exc: BaseException) -> bool:
    """SQLite's or the system's way of saying there is no space left."""
    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def describe(exc: BaseException) -> str:
    """An unexpected failure of one video's work, in one line for the build's summary."""
    if isinstance(exc, OSError) and disk_full(exc):  # the same reason for every file: counted once in the summary
        return f"{exc.strerror} writing its clips (free some space and run again to resume)"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
