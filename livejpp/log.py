"""Logging that prints above progress bars instead of through them."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never take the program down
            self.handleError(record)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """`livejpp: message` lines on stderr; -v adds the details, --quiet keeps only problems."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("livejpp: %(message)s"))
    root = logging.getLogger("livejpp")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
