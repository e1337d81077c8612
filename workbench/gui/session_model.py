"""One run or session as the panels see it: the model that live events and stored rows both feed.

A live run reaches the window as engine events (:meth:`SessionModel.apply`); a saved session, or
one another process is still writing, as the rows of a :class:`workbench.store.SessionReader`
(:meth:`SessionModel.load`, called again after every ``reader.refresh()``). Both feeds end in the
same state -- the curves with their 95% CI bands, the evaluation the map and the per-task panel
show, the progress, the status -- and the panels and the status bar only observe that state
through the model's signals (:meth:`Panel.observe <workbench.gui.panels.base.Panel.observe>`).
No panel is fed by the window directly, so no rule is written twice:
:func:`validation_points` is what a validation evaluation adds to the curves, for an
``Evaluation`` event as it arrives and for every stored validation evaluation when a session opens.

Qt-free (numpy only): the signals are plain callback lists, so the model is tested without a
display (``tests/test_session_model.py`` feeds one run both ways and compares the states).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from workbench import format as F
from workbench.train import events as E

VAL = "val"


class Signal:
    """A Qt-free signal: ``connect`` a callable, ``emit`` calls every connected one in order."""

    def __init__(self):
        self._slots: list[Callable] = []

    def connect(self, slot: Callable) -> None:
        self._slots.append(slot)

    def disconnect(self, slot: Callable) -> None:
        self._slots = [s for s in self._slots if s != slot]

    def emit(self, *args) -> None:
        for slot in list(self._slots):
            slot(*args)


class Series:
    """A growable (step, wall_time, value) buffer: amortised O(1) append, numpy views out."""

    def __init__(self):
        self._buf = np.empty((3, 64), np.float64)
        self.n = 0

    def append(self, step: float, wall: float, value: float):
        if self.n == self._buf.shape[1]:
            self._buf = np.concatenate([self._buf, np.empty_like(self._buf)], axis=1)
        self._buf[:, self.n] = (step, wall, value)
        self.n += 1

    def replace(self, steps, walls, values):
        steps, walls, values = (np.asarray(a, np.float64) for a in (steps, walls, values))
        self._buf = np.vstack([steps, walls, values]) if len(steps) else np.empty((3, 64), np.float64)
        if self._buf.shape[1] < 64:
            self._buf = np.concatenate([self._buf, np.empty((3, 64 - self._buf.shape[1]))], axis=1)
        self.n = len(steps)

    @property
    def steps(self):
        return self._buf[0, :self.n]

    @property
    def walls(self):
        return self._buf[1, :self.n]

    @property
    def values(self):
        return self._buf[2, :self.n]


def validation_points(ev) -> list[tuple[str, int, float, float, float | None]]:
    """``(curve, step, wall_time, value, ci95)`` that one evaluation adds to the curves: for a
    validation, its metric with the 95% CI of the mean over its episodes (NaN for one episode: that
    point has no band) and its loss (``ci95`` None: the loss curve has no band); none for the final
    test, which the per-task panel and the map show instead."""
    if ev.phase != VAL:
        return []
    return [(f"val/{ev.metric}", int(ev.step), float(ev.wall_time), float(ev.mean), float(ev.ci95)),
            ("val/loss", int(ev.step), float(ev.wall_time), float(ev.loss_mean), None)]


def curves_from_evaluations(evaluations) -> dict[str, tuple[list, list, list, list]]:
    """Curve name -> (steps, walls, values, ci95s) from stored evaluations, by the same rule as
    live events (:func:`validation_points`); ci95s of a curve without a band are None."""
    out: dict[str, tuple[list, list, list, list]] = {}
    for ev in evaluations:
        for name, step, wall, value, ci in validation_points(ev):
            s = out.setdefault(name, ([], [], [], []))
            for col, v in zip(s, (step, wall, value, ci)):
                col.append(v)
    return out


def summary_text(summary: dict) -> str:
    """A finished run's test result (its ``RunFinished.summary``) as one phrase."""
    return F.test_summary(summary.get("metric", ""), summary.get("mean", float("nan")),
                          summary.get("ci95", float("nan")), summary.get("episodes", 0))


def evaluation_text(ev) -> str:
    """The log line of one evaluation as it arrives."""
    what = {"val": "validation", "test": "test"}.get(ev.phase, ev.phase)
    return (f"step {ev.step}: {what} {ev.metric} {F.metric_ci(ev.metric, ev.mean, ev.ci95)} "
            f"(95% CI) over {len(ev.per_task)} tasks")


class SessionModel:
    """What the panels show of one run (live) or one session (stored), and the signals that say
    it changed.

    State: ``name``, ``metric`` ("accuracy" or "mse"), ``series`` and ``bands`` (curve name ->
    :class:`Series`; a band holds the 95% CI of a validation curve), ``evaluation`` (the one the
    map and the per-task panel show: the latest, the final test once there is one; a band's CI is
    NaN where an evaluation had one episode), ``step`` and
    ``total_steps``, ``wall`` (seconds since the run started, None for a stored session) and
    ``status`` ("" before anything, "running", then "finished", "cancelled" or "failed"), and
    ``path``, the session file (a live run's once it records; None: not recorded, or nothing).

    Signals: ``reset(name)`` (everything cleared: a new run or session), ``metric_changed(metric)``,
    ``curves_changed(whole)`` (points added; ``whole``: the curves were replaced from stored rows,
    worth drawing at once), ``evaluation_changed(ev)``, ``progress_changed()``, ``status_changed(status)``,
    ``session_changed(path)`` and ``message(level, text)`` (a line for the log).
    """

    def __init__(self):
        self.reset, self.metric_changed, self.curves_changed = Signal(), Signal(), Signal()
        self.evaluation_changed, self.progress_changed = Signal(), Signal()
        self.status_changed, self.message, self.session_changed = Signal(), Signal(), Signal()
        self.path: str | None = None     # the session file shown (a run's, once it records)
        self._clear_state("")

    def _clear_state(self, name: str):
        self.name = name or ""
        self.metric = "accuracy"
        self.series: dict[str, Series] = {}
        self.bands: dict[str, Series] = {}
        self.evaluation = None
        self.step, self.total_steps, self.wall = 0, 0, None
        self.status = ""
        self.source = ""                 # "run" (live events) or "session" (stored rows)
        self._evaluations_seen = -1
        self._final_seen = False

    # -- what the panels read ------------------------------------------------------------------
    def has_curves(self) -> bool:
        return any(s.n for s in self.series.values())

    # -- feeding: common -------------------------------------------------------------------------
    def clear(self, name: str = "", total_steps: int = 0):
        """Forget everything (a new run named ``name`` starts, or nothing is shown)."""
        self._clear_state(name)
        self.total_steps = int(total_steps)
        self.reset.emit(self.name)
        self.progress_changed.emit()
        self.set_path(None)

    def set_path(self, path) -> None:
        """The session file shown (None: none)."""
        path = str(path) if path else None
        if path != self.path:
            self.path = path
            self.session_changed.emit(path)

    def _set_metric(self, metric: str):
        if metric in ("accuracy", "mse") and metric != self.metric:
            self.metric = metric
            self.metric_changed.emit(metric)

    def _set_status(self, status: str):
        if status != self.status:
            self.status = status
            self.status_changed.emit(status)

    def _series(self, table: dict, name: str) -> Series:
        s = table.get(name)
        if s is None:
            s = table[name] = Series()
        return s

    def _add_point(self, name: str, step, wall, value, ci=None):
        self._series(self.series, name).append(step, wall, value)
        if ci is not None:
            self._series(self.bands, name).append(step, wall, ci)

    def _show(self, ev):
        self.evaluation = ev
        self.evaluation_changed.emit(ev)

    # -- feeding: live events ----------------------------------------------------------------------
    def start_run(self, name: str, total_steps: int):
        """A run of the experiment ``name`` starts here: clear, and follow its events."""
        self.clear(name, total_steps)
        self.source = "run"
        self._set_status("running")

    def apply(self, ev) -> None:
        """One engine event of a live run (a :mod:`workbench.train.events` event)."""
        if isinstance(ev, E.RunStarted):
            self._set_metric(ev.metric)
            self.total_steps, self.step = max(1, int(ev.total_steps)), int(ev.start_step)
            self.progress_changed.emit()
            self.message.emit("info", f"Started on {ev.device} ({ev.environment.get('device_name', '')}); split: "
                              + ", ".join(f"{len(v)} {k}" for k, v in ev.split.items() if isinstance(v, list)))
        elif isinstance(ev, E.StepMetrics):
            for name, v in ev.metrics.items():
                self._add_point(name, ev.step, ev.wall_time, float(v))
            self.curves_changed.emit(False)
            self.step, self.wall = int(ev.step), float(ev.wall_time)
            self.progress_changed.emit()
        elif isinstance(ev, E.Evaluation):
            points = validation_points(ev)
            for name, step, wall, value, ci in points:
                self._add_point(name, step, wall, value, ci)
            if points:
                self.curves_changed.emit(False)
            self._show(ev)
            self.message.emit("info", evaluation_text(ev))
        elif isinstance(ev, E.Log):
            self.message.emit(ev.level, ev.message)
        elif isinstance(ev, E.RunFinished):
            self.message.emit("info", f"Finished in {F.duration(ev.wall_time)}: {summary_text(ev.summary)}")
            self.step, self.wall = self.total_steps, float(ev.wall_time)
            self.progress_changed.emit()
            self._set_status("finished")
        elif isinstance(ev, E.RunCancelled):
            self.step, self.wall = min(int(ev.step), self.total_steps or int(ev.step)), float(ev.wall_time)
            self.progress_changed.emit()
            self.message.emit("warning", f"Cancelled at step {ev.step}; the session is kept as 'cancelled'.")
            self._set_status("cancelled")
        elif isinstance(ev, E.RunFailed):
            # the window says why (its log line names the file with the technical details)
            self._set_status("failed")

    # -- feeding: stored rows ----------------------------------------------------------------------
    def open_session(self, reader, name: str = "") -> None:
        """Show a stored session (clears first); :meth:`load` follows a live one's refreshes."""
        self.clear(name or getattr(reader.config, "name", ""))
        self.source = "session"
        self.load(reader)
        self.set_path(reader.path)

    def load(self, reader) -> None:
        """(Re)read a :class:`workbench.store.SessionReader`'s rows: the curves are replaced whole,
        the evaluation shown only changes when the session has new evaluations."""
        names = reader.metric_names()
        try:
            summary = reader.summary()
        except Exception:
            summary = None
        metric = getattr(summary, "metric", "") or ("mse" if any(n.endswith("/mse") for n in names) else "accuracy")
        self._set_metric(metric)
        evals = reader.evaluations()
        from_evals = curves_from_evaluations(evals)      # the live events' rule
        for n in names:
            if n not in from_evals:
                self._series(self.series, n).replace(*reader.metric(n))
        for n, (steps, walls, values, cis) in from_evals.items():
            self._series(self.series, n).replace(steps, walls, values)
            if all(c is not None for c in cis):
                self._series(self.bands, n).replace(steps, walls, cis)
        self.curves_changed.emit(True)
        if len(evals) != self._evaluations_seen:
            self._evaluations_seen = len(evals)
            final = reader.final_test()
            latest = final or (evals[-1] if evals else None)
            if latest is not None:
                self._show(latest)
            if final is not None and not self._final_seen:   # reported vs reproduced, where a recipe applies
                self._final_seen = True
                from workbench.analysis.reported import session_lines
                for line in session_lines(reader.config, final):
                    self.message.emit("info", line)
        self._set_status(reader.status)
        if summary is not None and summary.total_steps:
            self.total_steps = int(summary.total_steps)
            self.step = min(int(summary.steps_done), self.total_steps)
            self.progress_changed.emit()
