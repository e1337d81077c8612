"""The task-embedding map: one point per evaluated task, in 2-D.

Each evaluation stores an embedding vector per task (see
:mod:`workbench.embeddings`); this panel projects them to the plane with
t-SNE (default), PCA or UMAP through
:func:`workbench.analysis.projection.project`, always OFF the UI thread (a
one-thread QThreadPool; t-SNE over 600 tasks takes seconds). While a
projection runs, newer evaluations wait as "pending" and only the latest is
projected next, so a fast run never piles up work.

Points are coloured by task family (alphabet, function family, source) with a
legend; when every task has the same family (the bundled digits), they are
coloured by their accuracy (or MSE) instead, with a colour bar. Hovering a
point shows its task id, family and metric. The family-affinity heat map has
its own colour bar. Where UMAP's optional package is missing, the panel says so
in full, with the command that installs it, and keeps the map it had.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel

from workbench import format as F
from workbench.gui.panels.base import Panel, wrapping
from workbench.gui.plotstyle import family_colors, metric_scale, style_layout

METHODS = {"t-SNE": "tsne", "PCA": "pca", "UMAP": "umap"}


def family_structure(embeddings, families) -> dict | None:
    """How well the embedding recovers the task families (issue: task embeddings), off the UI
    thread: k-NN family accuracy, silhouette, and the family affinity matrix; None with fewer
    than two families of at least two tasks each."""
    from threadpoolctl import threadpool_limits

    from workbench.analysis.recovery import RecoveryError, affinity_matrix, recovery_scores
    fams = np.asarray(families, dtype=object)
    kinds, counts = np.unique(fams.astype(str), return_counts=True)
    if (counts >= 2).sum() < 2:
        return None
    try:
        with threadpool_limits(limits=1):
            scores = recovery_scores(embeddings, fams, folds=int(min(5, counts.min())) if counts.min() >= 2 else 2)
            names, aff = affinity_matrix(embeddings, fams)
    except (RecoveryError, ValueError):
        return None
    return {"knn": scores["knn_accuracy"], "silhouette": scores["silhouette"],
            "chance": float((counts / counts.sum()).max()), "families": list(names), "affinity": aff}


class _JobSignals(QObject):
    done = Signal(int, object, str, object, str)   # generation, (n, 2) array or None, error, evaluation, method


def _lower_this_threads_priority(niceness: int = 10) -> None:
    """Let the training process win the CPU over a map being drawn: on Linux a thread has a
    niceness of its own (setpriority on its thread id). Elsewhere, or if refused, nothing."""
    import os
    import threading
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


class _ProjectJob(QRunnable):
    def __init__(self, generation: int, ev, method: str, seed: int = 0):
        super().__init__()
        self.generation, self.ev, self.method, self.seed = generation, ev, method, seed
        self.embeddings = np.asarray(ev.embeddings, np.float32)
        self.signals = _JobSignals()
        self.setAutoDelete(True)

    def run(self):
        from workbench.analysis.projection import MissingExtra, project
        _lower_this_threads_priority()
        try:
            xy = project(self.embeddings, self.method, self.seed, threads=1)
            self.signals.done.emit(self.generation, (xy, family_structure(self.embeddings, self.ev.families)),
                                   "", self.ev, self.method)
        except MissingExtra as e:
            self.signals.done.emit(self.generation, None, str(e), self.ev, self.method)
        except Exception as e:  # a projection that fails must not take the window down
            self.signals.done.emit(self.generation, None, f"{self.method} projection failed: {e}", self.ev,
                                   self.method)


def umap_missing() -> str:
    """Why UMAP cannot run here, in full with the install command, or "" when it can (looked up
    without importing it: importing umap takes seconds)."""
    import importlib.util

    from workbench.extras import MissingExtra
    if importlib.util.find_spec("umap") is not None:
        return ""
    return str(MissingExtra("umap", "umap-learn", "UMAP projections of task embeddings"))


class EmbeddingMapPanel(Panel):
    title = "Task embeddings"
    export_name = "task_embeddings"
    projected = Signal()          # a new map is drawn (tests and screenshots wait on it)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.method = QComboBox()
        self.method.addItems(list(METHODS))
        self.umap_problem = umap_missing()
        self.method.setToolTip("How the task embeddings are projected to 2-D: t-SNE (neighbourhoods), "
                               "PCA (linear, fast) or UMAP" + (f" -- {self.umap_problem}" if self.umap_problem
                                                               else ""))
        if self.umap_problem:
            self.method.setItemText(2, "UMAP (not installed)")
            self.method.setItemData(2, self.umap_problem, pg.QtCore.Qt.ItemDataRole.ToolTipRole)
        self.color_by = QComboBox()
        self.color_by.addItems(["Auto", "Family", "Metric"])
        self.color_by.setToolTip("Colour points by task family, or by the task's accuracy/MSE "
                                 "(Auto: family when there are several, else the metric)")
        self.status = wrapping(QLabel("No evaluation yet"))
        self.status.setProperty("role", "hint")
        self.controls.addWidget(QLabel("Projection"))
        self.controls.addWidget(self.method)
        self.controls.addWidget(QLabel("Colour"))
        self.controls.addWidget(self.color_by)
        self.show_affinity = QCheckBox("Affinity")
        self.show_affinity.setToolTip("Show the task-affinity matrix beside the map: mean cosine similarity "
                                      "between the embeddings of each pair of families")
        self.controls.addWidget(self.show_affinity)
        self.finish_controls()
        self.scores = wrapping(QLabel(""))
        self.scores.setProperty("role", "hint")
        self.scores.setToolTip("How well the embedding separates task families, computed on the tasks shown: "
                               "accuracy of a 5-nearest-neighbour family classifier under cross-validation "
                               "(against always guessing the commonest family) and the silhouette score")

        self.view = pg.GraphicsLayoutWidget()
        self.view.setMinimumSize(200, 160)
        self.plot = self.view.addPlot(row=0, col=0)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(False)
        # the family legend sits beside the map in a wide panel, under it otherwise; never over its points
        self.legend = pg.LegendItem(colCount=4, labelTextSize="9pt", horSpacing=14)
        self.view.addItem(self.legend, row=1, col=0)
        self._legend_at = (1, 0)
        self.colorbar = None
        self.affinity_bar = None
        self.body.addWidget(self.status)
        self.body.addWidget(self.view, 1)
        self.body.addWidget(self.scores)
        self.structure: dict | None = None
        self.affinity_plot = None
        self.show_affinity.toggled.connect(lambda *_: self._draw_affinity())

        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._generation = 0
        self._running = False
        self._pending = False
        self.ev = None                  # the newest evaluation given
        self._shown_ev = None           # the evaluation the map shows (may lag while projecting)
        self.xy: np.ndarray | None = None
        self._xy_method = ""
        self.scatters: list[pg.ScatterPlotItem] = []
        self.method.currentTextChanged.connect(lambda *_: self._request())
        self.color_by.currentTextChanged.connect(lambda *_: self._draw())

    # -- feeding ----------------------------------------------------------------
    def set_evaluation(self, ev):
        """Show the tasks of one evaluation (an Evaluation event or a stored EvaluationRecord)."""
        if ev is None or getattr(ev, "embeddings", None) is None or len(ev.embeddings) == 0:
            if ev is not None and self.ev is None:
                self.status.setText(f"{ev.phase} evaluation at step {ev.step} has no task embeddings "
                                    "(embedding.method = none)")
            return
        self.ev = ev
        stored = getattr(ev, "projection", None)
        method = self._method_key()
        if stored is not None and getattr(ev, "projection_method", "") == method and not self._running:
            self._generation += 1
            self._shown_ev = ev
            self.structure = family_structure(np.asarray(ev.embeddings, np.float32), ev.families)
            self._show(np.asarray(stored), method)
            return
        self._request()

    def _method_key(self) -> str:
        return METHODS[self.method.currentText().replace(" (not installed)", "")]

    def _request(self):
        if self.ev is None:
            return
        if self._method_key() == "umap" and self.umap_problem:
            shown = {v: k for k, v in METHODS.items()}.get(self._xy_method, "")
            self.status.setText(self.umap_problem + (f". The map still shows {shown}." if shown else "."))
            return
        self._generation += 1
        if self._running:
            self._pending = True
            return
        self._start()

    def _start(self):
        method = self._method_key()
        self._running, self._pending = True, False
        ev = self.ev
        self.status.setText(f"computing {self.method.currentText()} of {len(ev.embeddings)} tasks…")
        self._started_at = time.perf_counter()
        job = _ProjectJob(self._generation, ev, method)
        job.signals.done.connect(self._on_done)      # a bound slot: disconnected when the panel goes
        self._job_signals = job.signals
        self.pool.start(job)

    def _on_done(self, generation: int, xy, error: str, ev, method: str):
        self._running = False
        cleared = self.ev is None
        if isinstance(xy, tuple):
            xy, structure = xy
            if not cleared:
                self.structure = structure
        if xy is None:
            self.status.setText(error)
        elif not cleared:
            # always show the newest finished map, even when a newer evaluation is waiting:
            # with projections slower than evaluations, the map still moves on
            self._shown_ev = ev
            self._show(xy, method)
        if self._pending and not cleared:
            # keep the projection thread's duty cycle at or below a third, so that a run with
            # frequent evaluations is not slowed by back-to-back t-SNE jobs on a small CPU
            took = time.perf_counter() - getattr(self, "_started_at", time.perf_counter())
            QTimer.singleShot(int(max(200, 2000 * took)), self._start_if_pending)

    def _start_if_pending(self):
        if self._pending and not self._running and self.ev is not None:
            self._start()

    def _show(self, xy: np.ndarray, method: str):
        self.xy, self._xy_method = xy, method
        self._draw()
        self._show_structure()
        self.projected.emit()

    def wait_idle(self, msecs: int = 30000) -> bool:
        """Block until no projection runs (closing, tests)."""
        return self.pool.waitForDone(msecs)

    def clear(self):
        self._generation += 1
        self.ev, self.xy, self._shown_ev = None, None, None
        self.structure = None
        self._pending = False
        self._draw()
        self._show_structure()
        self.status.setText("No evaluation yet")

    def has_data(self) -> bool:
        return self.point_count() > 0

    def point_count(self) -> int:
        return sum(len(s.data) for s in self.scatters)

    # -- drawing ------------------------------------------------------------------
    def point_text(self, i: int) -> str:
        """The hover text of task ``i``: id, family and metric."""
        ev = self._shown_ev
        return (f"task {ev.task_ids[i]}\nfamily {ev.families[i]}\n"
                f"{ev.metric} {F.metric_value(ev.metric, float(ev.per_task[i]), 1)}")

    def _tip(self, x, y, data):
        try:
            return self.point_text(int(data))
        except (TypeError, ValueError, IndexError):
            return ""

    def _color_mode(self) -> str:
        mode = self.color_by.currentText()
        if mode == "Auto":
            return "family" if len(set(self._shown_ev.families)) > 1 else "metric"
        return mode.lower()

    def _draw(self):
        for s in self.scatters:
            self.plot.removeItem(s)
        self.scatters = []
        self.legend.clear()
        if self.colorbar is not None:
            self.view.removeItem(self.colorbar)
            self.colorbar = None
        ev, xy = self._shown_ev, self.xy
        if ev is None or xy is None or len(xy) != len(ev.families):
            return
        families = np.asarray(ev.families, dtype=object)
        values = np.asarray(ev.per_task, np.float64)
        common = dict(size=9, hoverable=True, tip=self._tip, hoverSize=13, hoverPen=pg.mkPen("w", width=2))
        if self._color_mode() == "family":
            colors = family_colors(families)
            for fam in sorted(set(families)):
                idx = np.flatnonzero(families == fam)
                s = pg.ScatterPlotItem(x=xy[idx, 0], y=xy[idx, 1], data=idx, name=str(fam),
                                       brush=pg.mkBrush(colors[str(fam)]),
                                       pen=pg.mkPen(0, 0, 0, 90), **common)
                self.plot.addItem(s)
                self.legend.addItem(s, str(fam))
                self.scatters.append(s)
        else:
            cmap = pg.colormap.get("viridis")
            lo, hi = (float(np.nanmin(values)), float(np.nanmax(values))) if len(values) else (0.0, 1.0)
            if hi <= lo:
                hi = lo + 1e-9
            brushes = [pg.mkBrush(c) for c in cmap.map((values - lo) / (hi - lo), mode="qcolor")]
            s = pg.ScatterPlotItem(x=xy[:, 0], y=xy[:, 1], data=np.arange(len(xy)), brush=brushes,
                                   pen=pg.mkPen(0, 0, 0, 90), name=f"{len(xy)} tasks ({families[0]})", **common)
            self.plot.addItem(s)
            self.legend.addItem(s, f"{len(xy)} tasks ({families[0]})")
            self.scatters.append(s)
            scale = metric_scale(ev.metric)
            self.colorbar = pg.ColorBarItem(values=(lo * scale, hi * scale), colorMap=cmap, interactive=False,
                                            label=f"{ev.metric}" + (" (%)" if scale == 100 else ""),
                                            width=14)
            self.view.addItem(self.colorbar, row=0, col=1)
        name = {v: k for k, v in METHODS.items()}.get(self._xy_method, self._xy_method)
        phase = {"val": "validation", "test": "test"}.get(ev.phase, ev.phase)
        self.status.setText(f"{name} of {len(xy)} {phase} tasks at step {ev.step} "
                            f"({getattr(ev, 'embedding_method', '')} embedding)"
                            + (" · updating…" if self._running or self._pending else ""))
        self.plot.setTitle(None)
        self.plot.autoRange(padding=0.06)          # the dots' size inside the frame
        self._legend_columns()

    def _legend_columns(self):
        """Where the legend goes and how many columns it has. In a panel much wider than tall (a dock
        at 1280x720) a legend under the map left the map a strip; there it sits to the right of the
        map, one column while its rows fit the height. Otherwise under the map, as many columns as fit
        the width (a legend wider than the panel was cut). Beside the affinity plot or a colour bar it
        always goes under."""
        n = len(self.legend.items)
        if not n:
            return
        widest = max(label.boundingRect().width() for _, label in self.legend.items) + 40
        row_h = max(label.boundingRect().height() for _, label in self.legend.items) + 4
        w, h = max(1, self.view.width() - 20), max(1, self.view.height() - 20)
        rows_fit = max(1, int(h // row_h))
        side = (self.affinity_plot is None and self.colorbar is None and w > 1.5 * h
                and w - widest * -(-n // rows_fit) >= 0.5 * w)
        at = (0, 4) if side else (1, 0)          # (column 4: after the colour bar and the affinity plot)
        if at != self._legend_at:
            self.view.removeItem(self.legend)
            self.view.addItem(self.legend, row=at[0], col=at[1])
            self._legend_at = at
        if side:
            self.legend.setColumnCount(-(-n // rows_fit))
        else:
            self.legend.setColumnCount(max(1, min(n, int(w // widest))))

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        if self.legend.items:
            self._legend_columns()

    def _show_structure(self):
        st = self.structure
        if st is None:
            self.scores.setText("Family recovery: needs two or more task families" if self._shown_ev is not None
                                else "")
        else:
            self.scores.setText(f"Family recovery over {len(st['families'])} families: k-NN accuracy "
                                f"{100 * st['knn']:.1f}% (commonest-family guess {100 * st['chance']:.1f}%), "
                                f"silhouette {st['silhouette']:+.2f}")
        self._draw_affinity()

    def _draw_affinity(self):
        if self.affinity_plot is not None:
            self.view.removeItem(self.affinity_plot)
            self.affinity_plot = None
        if self.affinity_bar is not None:
            self.view.removeItem(self.affinity_bar)
            self.affinity_bar = None
        st = self.structure
        if not self.show_affinity.isChecked() or st is None:
            return
        names, aff = st["families"], np.asarray(st["affinity"], np.float64)
        p = self.view.addPlot(row=0, col=2, title="family affinity (mean cosine)")
        img = pg.ImageItem(aff.T)
        cmap = pg.colormap.get("viridis")
        img.setColorMap(cmap)
        p.addItem(img)
        lo_, hi_ = float(aff.min()), float(aff.max())
        bar = pg.ColorBarItem(values=(lo_, hi_ if hi_ > lo_ else lo_ + 1e-6), colorMap=cmap, interactive=False,
                              label="mean cosine similarity", width=12)
        bar.setImageItem(img)
        self.view.addItem(bar, row=0, col=3)
        self.affinity_bar = bar
        ticks = [(i + 0.5, str(n)) for i, n in enumerate(names)]
        p.getAxis("bottom").setTicks([ticks])
        p.getAxis("left").setTicks([ticks])
        p.invertY(True)
        p.setAspectLocked(True)
        p.setMouseEnabled(False, False)
        lo, hi = float(aff.min()), float(aff.max())
        for i in range(len(names)):
            for j in range(len(names)):
                bright = hi > lo and (aff[i, j] - lo) / (hi - lo) > 0.6     # viridis turns yellow
                t = pg.TextItem(f"{aff[i, j]:.2f}", color="k" if bright else "w", anchor=(0.5, 0.5))
                t.setPos(j + 0.5, i + 0.5)
                p.addItem(t)
        self.affinity_plot = p
        self._legend_columns()

    # -- export -------------------------------------------------------------------
    def export_view(self):
        return self.view

    def csv_table(self):
        rows = []
        ev = self._shown_ev
        if ev is not None and self.xy is not None:
            for i, (tid, fam) in enumerate(zip(ev.task_ids, ev.families)):
                rows.append((tid, fam, repr(float(ev.per_task[i])), f"{self.xy[i, 0]:.6g}",
                             f"{self.xy[i, 1]:.6g}"))
        metric = ev.metric if ev is not None else "metric"
        return ["task_id", "family", metric, f"{self._xy_method or 'x'}_1", f"{self._xy_method or 'x'}_2"], rows

    def apply_palette(self):
        style_layout(self.view)
