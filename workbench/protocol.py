"""The field's evaluation protocol, in the one place both the engine and the analysis read it.

Few-shot results are reported as the mean over many test episodes (600 or more) with a 95%
confidence interval of 1.96 standard deviations of the per-episode metric over the square root
of the number of episodes. Torch- and Qt-free, below both ``train`` (which computes it during a
run) and ``analysis`` (which recomputes it from session files).
"""

from __future__ import annotations

import math

import numpy as np

EPISODES = 600          # the field's customary number of test episodes


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 1.96 * std / sqrt(n) (the field's 95% confidence interval)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), 0.0
    return float(v.mean()), float(1.96 * v.std(ddof=1) / math.sqrt(len(v)))
