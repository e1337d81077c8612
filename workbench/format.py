"""How numbers and events read, written once for every view: the command line, the store's
commands, the window, the sessions browser, the compare view, reports and study tables.

Qt-free and torch-free. Plain text uses "±" everywhere; :func:`html_text` escapes anything that goes
into rich text or HTML (a p-value shown as "< 1e-4" must not be swallowed as a tag).
"""

from __future__ import annotations

import html
import math


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def metric_value(metric: str, value: float, digits: int = 2) -> str:
    """``74.22%`` for accuracy (stored as a fraction), ``0.0123`` for other metrics, ``–`` for none."""
    if not _finite(value):
        return "–"
    return f"{100 * value:.{digits}f}%" if metric == "accuracy" else f"{value:.4g}"


def metric_ci(metric: str, mean: float, ci95: float | None, digits: int = 2) -> str:
    """``74.22% ± 2.95%``, ``0.0123 ± 0.0021``; the mean alone when there is no CI; ``–`` for none."""
    if not _finite(mean):
        return "–"
    if not _finite(ci95):
        return metric_value(metric, mean, digits)
    if metric == "accuracy":
        return f"{100 * mean:.{digits}f}% ± {100 * ci95:.{digits}f}%"
    return f"{mean:.4g} ± {ci95:.2g}"


def metric_diff(metric: str, value: float) -> str:
    """A difference of two metrics: ``+1.25 pts`` for accuracy, ``-0.0031`` otherwise."""
    if not _finite(value):
        return "–"
    return f"{100 * value:+.2f} pts" if metric == "accuracy" else f"{value:+.4g}"


def test_summary(metric: str, mean: float, ci95: float, episodes: int) -> str:
    """``test accuracy 74.22% ± 2.95% (95% CI, 600 episodes)``."""
    return f"test {metric} {metric_ci(metric, mean, ci95)} (95% CI, {episodes} episodes)"


def p_value(p: float) -> str:
    """``0.0123``, ``< 1e-4`` or ``–`` (plain text: escape it before it goes into rich text)."""
    if not _finite(p):
        return "–"
    return "< 1e-4" if p < 1e-4 else f"{p:.4f}"


def duration(seconds: float) -> str:
    """``1:05`` (m:ss) or ``2:03:04`` (h:mm:ss)."""
    s = max(0, int(round(seconds))) if _finite(seconds) else 0
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def episode_setting(ways: int, shots: int, regression: bool | None = None) -> str:
    """``5-way 1-shot``; ``10-shot`` for regression (ways <= 1) ; ``''`` when unknown."""
    if not shots:
        return ""
    if regression or (regression is None and ways <= 1):
        return f"{shots}-shot"
    return f"{ways}-way {shots}-shot"


def html_text(value) -> str:
    """Any value as text safe inside rich text or HTML."""
    return html.escape(str(value), quote=True)


def event_text(ev) -> tuple[str, str] | None:
    """(level, line) for the events a person reads in a log (CLI and window alike), or None.

    Training metrics and checkpoints are not log lines; validation, warnings, failures and the final
    result are. Failures show their one-sentence message, never the traceback."""
    kind = type(ev).__name__
    if kind == "Log":
        return ev.level, ev.message
    if kind == "Evaluation":
        what = "validation" if ev.phase == "val" else "test"
        return "info", f"step {ev.step}: {what} {ev.metric} {metric_ci(ev.metric, ev.mean, ev.ci95)}"
    if kind == "RunFinished":
        s = ev.summary
        return "info", f"finished in {duration(ev.wall_time)}: " + test_summary(s["metric"], s["mean"], s["ci95"],
                                                                             s["episodes"])
    if kind == "RunFailed":
        return "error", f"failed at step {ev.step}: {ev.message}"
    if kind == "RunCancelled":
        return "warning", f"stopped at step {ev.step}"
    return None
