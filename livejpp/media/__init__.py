"""Reading video and audio with PyAV, and writing playback clips."""
