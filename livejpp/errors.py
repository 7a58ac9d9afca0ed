"""The one base class for problems a user can act on: the CLI prints them as one line, no traceback."""


class LivejppError(Exception):
    """A clear, one-line reason why livejpp cannot do what was asked."""
