"""Curve smoothing for display (the file always keeps every raw point)."""

from __future__ import annotations

import numpy as np


def ema(values, weight: float = 0.9) -> np.ndarray:
    """Debiased exponential moving average (what TensorBoard's smoothing slider does).

    acc_i = w * acc_{i-1} + (1 - w) * x_i, divided by 1 - w^(i+1); vectorised with lfilter."""
    from scipy.signal import lfilter

    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return v.copy()
    acc = lfilter([1.0 - weight], [1.0, -weight], v)
    norm = 1.0 - weight ** np.arange(1, len(v) + 1)
    return acc / norm if weight < 1.0 else v.copy()


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
