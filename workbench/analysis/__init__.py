"""Analysis: projections, statistics, smoothing (no Qt)."""
