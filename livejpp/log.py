"""Logging that prints above progress bars instead of through them."""

from __future__ import annotations

import logging
import re
import sys

from tqdm import tqdm

#: C0 and C1 control characters and Unicode line breaks: a file name holding them could forge or
#: wipe lines of the output (`x.mp4\nlivejpp: added 1000 clips`, a terminal escape).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """`text` on one line, control characters written as escapes (\\n, \\x1b); other characters kept."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), m.group().encode("unicode_escape").decode()), text)


class _OneLineFormatter(logging.Formatter):
    """Each message one line, whatever the file names in it hold (tracebacks at -vv stay as they are)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


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
    handler.setFormatter(_OneLineFormatter("livejpp: %(message)s"))
    root = logging.getLogger("livejpp")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
