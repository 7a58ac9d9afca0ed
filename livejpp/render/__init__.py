"""Pictures: frame sources for the clips, the compositor, and (for live) the window."""
