"""Per-task results of one evaluation: the distribution and a bar per family.

Left: a histogram of the metric (accuracy or MSE) over the evaluated tasks,
with the mean as a line and its 95% confidence interval
(1.96 * std / sqrt(n), :func:`workbench.analysis.stats.mean_ci95`) as a
shaded band. Right: the mean per task family (alphabet, function family,
source) as horizontal bars with 95% CI error bars, sortable by name, mean or task count, each
family in the colour the task-embedding map gives it.

Accuracy over an episode of N ways and Q queries per class moves in steps of
1/(N x Q), so the histogram's bins are whole multiples of that step, centred on
the values that can occur (:func:`metric_bins`): no comb of empty bins. An MSE
and its error bars never go below zero.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox, QLabel

from workbench import format as F
from workbench.analysis.stats import mean_ci95
from workbench.gui.panels.base import Panel, wrapping
from workbench.gui.plotstyle import CATEGORICAL, family_colors, metric_scale, plain_axes, style_layout

SORTS = ("Family name", "Mean, high first", "Mean, low first", "Task count")
MAX_NAME = 14                # family names longer than this are cut (with "…") beside the bars
MAX_BINS = 30
MAX_RESOLUTION = 2000        # steps finer than 1/2000 are treated as a continuous metric


def value_resolution(values) -> int | None:
    """The smallest n such that every value is a multiple of 1/n (accuracy over N x Q queries moves
    in steps of 1/(N x Q)), or None for a continuous metric."""
    v = np.asarray(values, np.float64)
    if len(v) == 0 or not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 1:
        return None
    for n in range(1, MAX_RESOLUTION + 1):
        if np.all(np.abs(v * n - np.round(v * n)) < 1e-6 * n):
            return n
    return None


def metric_bins(values, scale: float = 1.0, max_bins: int = MAX_BINS) -> np.ndarray:
    """Histogram edges for ``values``: for a metric of resolution 1/n, each bin holds the same whole
    number of possible values and is centred on them; otherwise at most ``max_bins`` equal bins."""
    v = np.asarray(values, np.float64)
    n = value_resolution(v)
    if n is None:
        lo, hi = float(np.min(v)), float(np.max(v))
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        bins = min(max_bins, max(5, int(np.sqrt(len(v))) + 1))
        return np.linspace(lo, hi, bins + 1) * scale
    k_lo, k_hi = int(round(v.min() * n)), int(round(v.max() * n))
    levels = k_hi - k_lo + 1
    # as many bins as a histogram of len(v) values can fill (about sqrt(n)), each a whole number of levels
    target = min(max_bins, max(5, int(np.sqrt(len(v))) + 1))
    per_bin = max(1, int(np.ceil(levels / target)))
    n_bins = int(np.ceil(levels / per_bin))
    start = k_lo - 0.5 - (n_bins * per_bin - levels) / 2.0
    edges = start + per_bin * np.arange(n_bins + 1)
    return edges / n * scale


class PerTaskPanel(Panel):
    title = "Per-task results"
    export_name = "per_task"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.ev = None
        self.sort = QComboBox()
        self.sort.addItems(list(SORTS))
        self.sort.setToolTip("Order of the family bars")
        self.summary = wrapping(QLabel("No evaluation yet"))
        self.summary.setProperty("role", "metric")
        self.body.addWidget(self.summary)
        self.controls.addWidget(QLabel("Sort families by"))
        self.controls.addWidget(self.sort)
        self.finish_controls()

        self.view = pg.GraphicsLayoutWidget()
        self.view.setMinimumSize(200, 140)
        self.hist = self.view.addPlot(row=0, col=0)
        self.fam = self.view.addPlot(row=0, col=1)
        self.view.ci.layout.setColumnStretchFactor(0, 3)
        self.view.ci.layout.setColumnStretchFactor(1, 3)     # the family names take a share of their own
        self.hist.setLabel("left", "Tasks", units=None)
        self.fam.showGrid(x=True, alpha=0.25)
        self.hist.showGrid(y=True, alpha=0.25)
        for p in (self.hist, self.fam):
            plain_axes(p)
        self.tick_step, self.tick_names, self.hist_edges = 1, [], None
        self.error_bottom = np.zeros(0)
        self.fam.getViewBox().sigResized.connect(lambda *_: self._family_ticks() if self.ev is not None else None)
        self.body.addWidget(self.view)
        self.ev = None
        self.family_rows: list[tuple[str, float, float, int]] = []   # (family, mean, ci95, n) in display order
        self.bars: pg.BarGraphItem | None = None
        self.hist_bars: pg.BarGraphItem | None = None
        self.sort.currentTextChanged.connect(lambda *_: self._draw_families())

    def set_evaluation(self, ev):
        """Show one evaluation (an Evaluation event or a stored EvaluationRecord)."""
        if ev is None or len(ev.per_task) == 0:
            return
        self.ev = ev
        self._draw_hist()
        self._draw_families()

    def clear(self):
        self.ev = None
        self.family_rows = []
        self.hist.clear()
        self.fam.clear()
        self.bars = self.hist_bars = None
        self.summary.setText("No evaluation yet")

    def has_data(self) -> bool:
        return self.bars is not None and len(self.family_rows) > 0

    def bar_count(self) -> int:
        return len(self.family_rows) if self.bars is not None else 0

    # -- drawing ------------------------------------------------------------------
    def _scale(self) -> float:
        return metric_scale(self.ev.metric)

    def _draw_hist(self):
        ev, k = self.ev, self._scale()
        raw = np.asarray(ev.per_task, np.float64)
        v = raw * k
        mean, ci = mean_ci95(v)
        self.hist.clear()
        edges = metric_bins(raw, k)
        counts, edges = np.histogram(v, bins=edges)
        self.hist_edges = edges
        self.hist_bars = pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts,
                                         brush=pg.mkBrush(CATEGORICAL[0]), pen=pg.mkPen(0, 0, 0, 80))
        self.hist.addItem(self.hist_bars)
        lo = max(0.0, mean - ci) if ev.metric != "accuracy" else mean - ci
        band = pg.LinearRegionItem(values=(lo, mean + ci), movable=False,
                                   brush=pg.mkBrush(214, 39, 40, 60), pen=pg.mkPen(None))
        self.hist.addItem(band)
        line = pg.InfiniteLine(pos=mean, angle=90, pen=pg.mkPen("#d62728", width=2),
                               label=f"mean {F.metric_value(ev.metric, float(np.mean(raw)), 1)}",
                               labelOpts={"position": 0.92, "color": "#d62728"})
        self.hist.addItem(line)
        unit = " (%)" if k == 100 else ""
        what = {"val": "validation", "test": "test"}.get(ev.phase, ev.phase)
        self.hist.setLabel("bottom", f"{ev.metric}{unit} per {what} task", units=None)
        self.hist.setXRange(float(edges[0]), float(edges[-1]), padding=0.02)
        m, c = mean_ci95(ev.per_task)
        text = (f"{what} {ev.metric} {F.metric_ci(ev.metric, m, c)} "
                f"(95% CI, {len(v)} tasks, step {ev.step})")
        self.summary.setText(text)
        self.summary.setToolTip(text)

    def _family_stats(self) -> list[tuple[str, float, float, int]]:
        fams = np.asarray(self.ev.families, dtype=object)
        v = np.asarray(self.ev.per_task, np.float64) * self._scale()
        rows = []
        for f in sorted(set(fams)):
            m, c = mean_ci95(v[fams == f])
            rows.append((str(f), m, c, int(np.sum(fams == f))))
        order = self.sort.currentText()
        if order == "Mean, high first":
            rows.sort(key=lambda r: -r[1])
        elif order == "Mean, low first":
            rows.sort(key=lambda r: r[1])
        elif order == "Task count":
            rows.sort(key=lambda r: -r[3])
        return rows

    def _draw_families(self):
        """A horizontal bar per family, top to bottom in the chosen order, its name on the left where
        it can be read at any width; a family has the colour it has in the task-embedding map."""
        if self.ev is None:
            return
        self.fam.clear()
        rows = self.family_rows = self._family_stats()
        y = np.arange(len(rows), dtype=float)
        means = np.array([r[1] for r in rows])
        cis = np.array([r[2] for r in rows])
        nonneg = self.ev.metric != "accuracy"
        below = np.minimum(cis, np.maximum(means, 0.0)) if nonneg else cis      # an MSE's CI stops at zero
        self.error_bottom = means - below
        colors = family_colors(self.ev.families)
        brushes = [pg.mkBrush(colors[r[0]]) for r in rows]
        self.bars = pg.BarGraphItem(x0=np.zeros(len(rows)), y=y, width=means, height=0.7, brushes=brushes,
                                    pen=pg.mkPen(0, 0, 0, 80))
        self.fam.addItem(self.bars)
        self.fam.addItem(pg.ErrorBarItem(x=means, y=y, right=cis, left=below, beam=0.25,
                                         pen=pg.mkPen(QColor("#444444") if not _dark() else QColor("#dddddd"),
                                                      width=1.5)))
        overall, _ = mean_ci95(np.asarray(self.ev.per_task) * self._scale())
        self.fam.addItem(pg.InfiniteLine(pos=overall, angle=90, pen=pg.mkPen("#d62728", width=1,
                                                                                style=pg.QtCore.Qt.PenStyle.DashLine)))
        unit = " (%)" if self._scale() == 100 else ""
        self.fam.setLabel("bottom", f"mean{unit} ± 95% CI", units=None)
        self.fam.setLabel("left", f"family ({len(rows)})", units=None)
        self.fam.getViewBox().invertY(True)           # the first family of the order on top
        lo = float(np.min(self.error_bottom)) if len(rows) else 0.0
        hi = float(np.max(means + cis)) if len(rows) else 1.0
        self.fam.setXRange(min(0.0, lo), hi * 1.05 if hi > 0 else 1.0)
        self.fam.setYRange(-0.6, len(rows) - 0.4, padding=0)
        self._family_ticks()

    def _family_ticks(self):
        """Family names beside the bars, never overlapping: cut to :data:`MAX_NAME` characters, and
        only every k-th name shown when the rows are lower than a line of text (every name, in full,
        with its mean, in the axis' tooltip)."""
        rows = self.family_rows
        if not rows:
            self.tick_step = 1
            return
        from PySide6.QtGui import QFontMetrics
        axis = self.fam.getAxis("left")
        fm = QFontMetrics(axis.style.get("tickFont") or self.font())
        height = max(40.0, float(self.fam.getViewBox().height()))
        per_row = height / len(rows)
        step = 1
        while per_row * step < fm.height() + 2 and step < len(rows):
            step += 1
        names = [r[0] if len(r[0]) <= MAX_NAME else r[0][:MAX_NAME - 1] + "…" for r in rows]
        self.tick_step = step
        self.tick_names = [names[i] for i in range(0, len(rows), step)]
        axis.setTicks([[(i, names[i]) for i in range(0, len(rows), step)], []])
        axis.setToolTip("\n".join(f"{r[0]}: {F.metric_ci(self.ev.metric, r[1] / self._scale(), r[2] / self._scale())}"
                                   f" ({r[3]} tasks)" for r in rows))

    # -- export -------------------------------------------------------------------
    def export_view(self):
        return self.view

    def csv_table(self):
        if self.ev is None:
            return ["task_id", "family", "metric", "loss"], []
        ev = self.ev
        loss = getattr(ev, "per_task_loss", None)
        rows = [(tid, fam, repr(float(ev.per_task[i])), repr(float(loss[i])) if loss is not None else "")
                for i, (tid, fam) in enumerate(zip(ev.task_ids, ev.families))]
        return ["task_id", "family", ev.metric, "loss"], rows

    def apply_palette(self):
        style_layout(self.view)
        if self.ev is not None:
            self._draw_families()


def _dark() -> bool:
    from workbench.gui.style import is_dark
    return is_dark()
