"""SIGTERM (a `kill`, a service manager stopping livejpp) ends a command as Ctrl-C does, so every
`finally`/`except` that removes half-written files or checkpoints the library runs for it too."""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so cleanup runs as for Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signal.Signals(signum).name)


def stop_cleanly_on_sigterm() -> None:
    """Install the handler (main thread only: Python delivers signals there)."""
    signal.signal(signal.SIGTERM, _raise_terminated)
