"""Per-task results of one evaluation: the distribution and a bar per family.

Left: a histogram of the metric (accuracy or MSE) over the evaluated tasks,
with the mean as a line and its 95% confidence interval
(1.96 * std / sqrt(n), :func:`workbench.analysis.stats.mean_ci95`) as a
shaded band. Right: the mean per task family (alphabet, function family,
source) as bars with 95% CI error bars, sortable by name, mean or task count.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox, QLabel

from workbench.analysis.stats import mean_ci95
from workbench.gui.panels.embedding_map import format_metric
from workbench.gui.panels.export import Panel, elastic
from workbench.gui.style import CATEGORICAL

SORTS = ("Family name", "Mean, high first", "Mean, low first", "Task count")


class PerTaskPanel(Panel):
    title = "Per-task results"
    export_name = "per_task"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sort = QComboBox()
        self.sort.addItems(list(SORTS))
        self.sort.setToolTip("Order of the family bars")
        self.summary = elastic(QLabel("No evaluation yet"), 260)
        self.summary.setProperty("role", "metric")
        self.controls.addWidget(self.summary, 1)
        self.controls.addWidget(QLabel("Sort families by"))
        self.controls.addWidget(self.sort)
        self.finish_controls()

        self.view = pg.GraphicsLayoutWidget()
        self.hist = self.view.addPlot(row=0, col=0)
        self.fam = self.view.addPlot(row=0, col=1)
        self.view.ci.layout.setColumnStretchFactor(0, 3)
        self.view.ci.layout.setColumnStretchFactor(1, 2)
        self.hist.setLabel("left", "Tasks")
        self.fam.showGrid(y=True, alpha=0.25)
        self.fam.getAxis("bottom").enableAutoSIPrefix(False)
        self.hist.showGrid(y=True, alpha=0.25)
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
        return 100.0 if self.ev.metric == "accuracy" else 1.0

    def _draw_hist(self):
        ev, k = self.ev, self._scale()
        v = np.asarray(ev.per_task, np.float64) * k
        mean, ci = mean_ci95(v)
        self.hist.clear()
        lo, hi = float(np.min(v)), float(np.max(v))
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(v, bins=min(30, max(5, int(np.sqrt(len(v))) + 1)), range=(lo, hi))
        self.hist_bars = pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts,
                                         brush=pg.mkBrush(CATEGORICAL[0]), pen=pg.mkPen(0, 0, 0, 80))
        self.hist.addItem(self.hist_bars)
        band = pg.LinearRegionItem(values=(mean - ci, mean + ci), movable=False,
                                   brush=pg.mkBrush(214, 39, 40, 60), pen=pg.mkPen(None))
        self.hist.addItem(band)
        line = pg.InfiniteLine(pos=mean, angle=90, pen=pg.mkPen("#d62728", width=2),
                               label=f"mean {mean:.4g}", labelOpts={"position": 0.92, "color": "#d62728"})
        self.hist.addItem(line)
        unit = " (%)" if k == 100 else ""
        what = {"val": "validation", "test": "test"}.get(ev.phase, ev.phase)
        self.hist.setLabel("bottom", f"{ev.metric}{unit} per {what} task")
        m, c = mean_ci95(ev.per_task)
        self.summary.setText(f"{what} {ev.metric} {format_metric(ev.metric, m)} ± {format_metric(ev.metric, c)} "
                             f"(95% CI, {len(v)} tasks, step {ev.step})")

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
        if self.ev is None:
            return
        self.fam.clear()
        rows = self.family_rows = self._family_stats()
        x = np.arange(len(rows), dtype=float)
        means = np.array([r[1] for r in rows])
        cis = np.array([r[2] for r in rows])
        brushes = [pg.mkBrush(CATEGORICAL[i % len(CATEGORICAL)]) for i in range(len(rows))]
        self.bars = pg.BarGraphItem(x=x, height=means, width=0.7, brushes=brushes, pen=pg.mkPen(0, 0, 0, 80))
        self.fam.addItem(self.bars)
        self.fam.addItem(pg.ErrorBarItem(x=x, y=means, height=2 * cis, beam=0.25,
                                         pen=pg.mkPen(QColor("#444444") if not _dark() else QColor("#dddddd"),
                                                      width=1.5)))
        overall, _ = mean_ci95(np.asarray(self.ev.per_task) * self._scale())
        self.fam.addItem(pg.InfiniteLine(pos=overall, angle=0, pen=pg.mkPen("#d62728", width=1,
                                                                               style=pg.QtCore.Qt.PenStyle.DashLine)))
        names = [r[0] if len(r[0]) <= 14 else r[0][:13] + "…" for r in rows]
        step = max(1, len(rows) // 12)   # keep tick labels readable with many families (alphabets)
        self.fam.getAxis("bottom").setTicks([[(i, names[i]) for i in range(0, len(rows), step)], []])
        unit = " (%)" if self._scale() == 100 else ""
        self.fam.setLabel("left", f"mean {self.ev.metric}{unit} ± 95% CI")
        self.fam.setLabel("bottom", f"family ({len(rows)})")
        lo = float(np.min(means - cis)) if len(rows) else 0.0
        self.fam.setYRange(min(0.0, lo), float(np.max(means + cis)) * 1.05 if len(rows) else 1.0)
        self.fam.setXRange(-0.6, len(rows) - 0.4)

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
        from workbench.gui.style import plot_colors
        self.view.setBackground(plot_colors()[0])
        if self.ev is not None:
            self._draw_families()


def _dark() -> bool:
    from workbench.gui.style import is_dark
    return is_dark()
