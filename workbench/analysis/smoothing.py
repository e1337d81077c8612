"""Curve smoothing for display (the file always keeps every raw point)."""

from __future__ import annotations

import numpy as np


def ema(values, weight: float = 0.9) -> np.ndarray:
    """Debiased exponential moving average (what TensorBoard's smoothing slider does)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.empty_like(v)
    acc, norm = 0.0, 0.0
    for i, x in enumerate(v):
        acc = weight * acc + (1 - weight) * x
        norm = weight * norm + (1 - weight)
        out[i] = acc / norm if norm > 0 else x
    return out


def downsample_minmax(x, y, max_points: int = 4000):
    """Keep the min and max of each bucket so peaks survive when a long curve is drawn."""
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        seg = y[a:b]
        i, j = a + int(np.argmin(seg)), a + int(np.argmax(seg))
        keep += sorted({i, j})
    keep = np.asarray(keep)
    return x[keep], y[keep]
