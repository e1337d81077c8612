"""Statistics the field reports: mean with a 95% CI, and paired comparisons of
two sessions evaluated on the same seeded episodes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workbench.protocol import mean_ci95  # noqa: F401 (the protocol's CI, defined once)


@dataclass(frozen=True)
class PairedComparison:
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float        # mean of (a - b)
    ci95: float             # 1.96 * std(a - b) / sqrt(n)
    t: float
    p_value: float          # two-sided paired t-test
    p_wilcoxon: float       # two-sided Wilcoxon signed-rank (nan when all differences are 0)


def paired(a, b) -> PairedComparison:
    """Paired comparison of per-episode results on the same episodes (same order)."""
    from scipy import stats        # imported here: the engine uses mean_ci95 and should not pay for scipy

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired results must be two vectors of one length, got {a.shape} and {b.shape}")
    d = a - b
    md, ci = mean_ci95(d)
    if len(d) < 2 or np.allclose(d, d[0]):
        t, p = (0.0, 1.0) if np.allclose(d, 0) else (float("inf") * np.sign(md), 0.0)
    else:
        r = stats.ttest_rel(a, b)
        t, p = float(r.statistic), float(r.pvalue)
    try:
        pw = float(stats.wilcoxon(a, b).pvalue) if np.any(d != 0) else float("nan")
    except ValueError:
        pw = float("nan")
    return PairedComparison(len(d), float(a.mean()), float(b.mean()), md, ci, t, p, pw)


def align(ids_a, values_a, ids_b, values_b):
    """Values of tasks present in both sessions, matched by task id: (ids, a, b)."""
    pos_b = {t: i for i, t in enumerate(ids_b)}
    common = [(i, pos_b[t]) for i, t in enumerate(ids_a) if t in pos_b]
    ids = [ids_a[i] for i, _ in common]
    return ids, np.asarray([values_a[i] for i, _ in common]), np.asarray([values_b[j] for _, j in common])
