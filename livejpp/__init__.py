"""livejpp: live visuals that follow the music, from a library of video clips."""

__version__ = "0.1.0"
