"""Controls: keys, OSC and MIDI steer the show through one command bus (commands.py)."""
