"""The rules that turn a run into what the panels show, written once for live events and stored rows.

A live run reaches the window as engine events; a saved (or still written) session as rows a
:class:`workbench.store.SessionReader` returns. Both carry the same evaluations, so the curves
they add are decided here, once: :func:`validation_points` is what a validation evaluation adds
to the curves (its metric with the 95% CI, and its loss), used for an ``Evaluation`` event as it
arrives and for every stored validation evaluation when a session opens
(:func:`curves_from_evaluations`). Qt-free.
"""

from __future__ import annotations

import math

VAL = "val"


def validation_points(ev) -> list[tuple[str, int, float, float, float]]:
    """``(curve, step, wall_time, value, ci95)`` that one evaluation adds to the curves: for a
    validation, its metric (with the CI of the mean over its episodes) and its loss (no CI); none
    for the final test, which the per-task panel and the map show instead."""
    if ev.phase != VAL:
        return []
    return [(f"val/{ev.metric}", int(ev.step), float(ev.wall_time), float(ev.mean), float(ev.ci95)),
            ("val/loss", int(ev.step), float(ev.wall_time), float(ev.loss_mean), math.nan)]


def curves_from_evaluations(evaluations) -> dict[str, tuple[list, list, list, list]]:
    """Curve name -> (steps, walls, values, ci95s) from stored evaluations, by the same rule as
    live events (:func:`validation_points`)."""
    out: dict[str, tuple[list, list, list, list]] = {}
    for ev in evaluations:
        for name, step, wall, value, ci in validation_points(ev):
            s = out.setdefault(name, ([], [], [], []))
            for col, v in zip(s, (step, wall, value, ci)):
                col.append(v)
    return out
