"""The matching engine: audio analysis in hops, the beat clock, the selector; served to render and live."""
