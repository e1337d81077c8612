"""Training curves: meta-train loss and metric, validation loss and metric.

One plot per quantity (loss, then accuracy or MSE); a line per phase
(``train/...`` in blue, ``val/...`` in orange with markers). Train curves are
drawn twice: the raw values faintly and a smoothed line on top, with the
smoothing named in the panel ("EMA 0.9": the debiased exponential moving
average of :func:`workbench.analysis.smoothing.ema`). The x axis is the
meta-step or the wall time since the run started.

Data live in growable numpy buffers (:class:`Series`); the view is redrawn at
most every 100 ms with ``setData``, long curves downsampled for display by
:func:`workbench.analysis.smoothing.downsample_minmax` (peaks survive) and
clipped to the visible range; the CSV export always has every raw point.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel

from workbench.analysis.smoothing import downsample_minmax, ema
from workbench.gui.panels.export import Panel

SMOOTHING = {"None": None, "EMA 0.6": 0.6, "EMA 0.9": 0.9, "EMA 0.98": 0.98}
DEFAULT_SMOOTHING = "EMA 0.9"
MAX_DISPLAY_POINTS = 2000
PHASE_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}


REDRAW_MS = 250     # redraw at most 4 times a second: painting holds the GIL the worker needs


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


def _split(name: str) -> tuple[str, str]:
    phase, _, quantity = name.partition("/")
    return (phase, quantity) if quantity else ("train", phase)


class CurvesPanel(Panel):
    title = "Curves"
    export_name = "curves"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.series: dict[str, Series] = {}
        self.task_metric = "accuracy"

        self.smoothing = QComboBox()
        self.smoothing.addItems(list(SMOOTHING))
        self.smoothing.setCurrentText(DEFAULT_SMOOTHING)
        self.smoothing.setToolTip("Smoothing of the meta-train curves: debiased exponential moving average "
                                  "with this weight (the raw values stay drawn faintly and in the CSV)")
        self.show_raw = QCheckBox("Raw")
        self.show_raw.setChecked(True)
        self.show_raw.setToolTip("Also draw the unsmoothed meta-train values")
        self.xaxis = QComboBox()
        self.xaxis.addItems(["Step", "Wall time"])
        self.xaxis.setToolTip("x axis: meta-training step, or seconds since the run started")
        for w, label in ((self.smoothing, "Smoothing"), (None, None), (self.xaxis, "x axis")):
            if w is None:
                self.controls.addWidget(self.show_raw)
                continue
            self.controls.addWidget(QLabel(label))
            self.controls.addWidget(w)
        self.finish_controls()

        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.body.addWidget(self.legend)
        self.view = pg.GraphicsLayoutWidget()
        self.body.addWidget(self.view)
        self.plots: dict[str, pg.PlotItem] = {}
        self.items: dict[tuple[str, str], pg.PlotDataItem] = {}
        self._ensure_plot("loss")
        self._ensure_plot(self.task_metric)

        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        self._timer.start()
        for sig in (self.smoothing.currentTextChanged, self.xaxis.currentTextChanged):
            sig.connect(lambda *_: self.mark_dirty(True))
        self.show_raw.toggled.connect(lambda *_: self.mark_dirty(True))

    # -- feeding ----------------------------------------------------------------
    def set_metric(self, metric: str):
        """The task metric of the run ("accuracy" or "mse"): names the second plot."""
        if metric != self.task_metric:
            self.task_metric = metric
            self._rebuild()

    def _rebuild(self):
        self.view.clear()
        self.plots, self.items = {}, {}
        self._ensure_plot("loss")
        self._ensure_plot(self.task_metric)
        for name in self.series:
            self._ensure_plot(_split(name)[1])
        self.mark_dirty(True)

    def add_point(self, name: str, step: float, wall: float, value: float):
        """Append one value of curve ``name`` (e.g. "train/loss", "val/accuracy")."""
        s = self.series.get(name)
        if s is None:
            s = self.series[name] = Series()
        s.append(step, wall, value)
        self._dirty = True

    def add_metrics(self, step: int, wall: float, metrics: dict):
        for name, v in metrics.items():
            self.add_point(name, step, wall, float(v))

    def set_series(self, name: str, steps, walls, values):
        """Replace curve ``name`` with whole arrays (from a session file)."""
        s = self.series.get(name)
        if s is None:
            s = self.series[name] = Series()
        s.replace(steps, walls, values)
        self._dirty = True

    def clear(self):
        self.series.clear()
        self._rebuild()

    def has_data(self) -> bool:
        return any(s.n for s in self.series.values())

    def mark_dirty(self, now: bool = False):
        self._dirty = True
        if now:
            self.redraw()

    # -- drawing ----------------------------------------------------------------
    def _ensure_plot(self, quantity: str) -> pg.PlotItem:
        p = self.plots.get(quantity)
        if p is None:
            row = len(self.plots)
            p = self.view.addPlot(row=row, col=0)
            label = {"loss": "Loss", "accuracy": "Accuracy", "mse": "MSE"}.get(quantity, quantity)
            p.setLabel("left", label)
            p.showGrid(x=True, y=True, alpha=0.25)
            p.setClipToView(True)
            if self.plots:
                p.setXLink(next(iter(self.plots.values())))
            self.plots[quantity] = p
            self._label_x()
        return p

    def _label_x(self):
        wall = self.xaxis.currentText() == "Wall time"
        plots = list(self.plots.values())
        for i, p in enumerate(plots):
            last = i == len(plots) - 1
            p.setLabel("bottom", ("Wall time (s)" if wall else "Meta-training step") if last else None)
            p.getAxis("bottom").setStyle(showValues=True)

    def _item(self, quantity: str, key: str, name: str, color: str, raw: bool, markers: bool):
        it = self.items.get((quantity, key))
        if it is None:
            c = QColor(color)
            if raw:
                c.setAlpha(70)
            pen = pg.mkPen(c, width=1 if raw else 2)
            kw = {}
            if markers:
                kw = dict(symbol="o", symbolSize=6, symbolBrush=QColor(color), symbolPen=None)
            it = pg.PlotDataItem(pen=pen, name=None if raw else name, **kw)
            self._ensure_plot(quantity).addItem(it)
            self.items[(quantity, key)] = it
        return it

    def smoothing_weight(self) -> float | None:
        return SMOOTHING[self.smoothing.currentText()]

    def redraw(self):
        if not self._dirty:
            return
        self._dirty = False
        self._label_x()
        wall = self.xaxis.currentText() == "Wall time"
        weight = self.smoothing_weight()
        for name, s in sorted(self.series.items()):
            phase, quantity = _split(name)
            if quantity not in ("loss", self.task_metric) and s.n == 0:
                continue
            x = s.walls if wall else s.steps
            y = s.values
            color = PHASE_COLORS.get(phase, "#7f7f7f")
            few = phase != "train"
            label = {"train": "meta-train", "val": "validation", "test": "test"}.get(phase, phase)
            if few or weight is None:
                it = self._item(quantity, name, name, color, raw=False, markers=few)
                it.setData(*downsample_minmax(x, y, MAX_DISPLAY_POINTS))
                it.opts["name"] = label
                raw_it = self.items.get((quantity, name + "#raw"))
                if raw_it is not None:
                    raw_it.setData([], [])
                continue
            raw_it = self._item(quantity, name + "#raw", name, color, raw=True, markers=False)
            if self.show_raw.isChecked():
                raw_it.setData(*downsample_minmax(x, y, MAX_DISPLAY_POINTS))
            else:
                raw_it.setData([], [])
            it = self._item(quantity, name, name, color, raw=False, markers=False)
            it.setData(*downsample_minmax(x, ema(y, weight), MAX_DISPLAY_POINTS))
        entries = []
        for phase in sorted({_split(n)[0] for n in self.series if self.series[n].n}, key=lambda x: x != "train"):
            label = {"train": "meta-train", "val": "validation", "test": "test"}.get(phase, phase)
            color = PHASE_COLORS.get(phase, "#7f7f7f")
            if phase == "train" and weight is not None:
                label += f" ({self.smoothing.currentText()}" + (", raw faint)" if self.show_raw.isChecked() else ")")
                mark = "━━"
            else:
                mark = "━●━" if phase != "train" else "━━"
            entries.append(f'<span style="color:{color}">{mark}</span>&nbsp;{label}')
        self.legend.setText("&nbsp;&nbsp;&nbsp;".join(entries))

    def displayed_points(self, name: str) -> int:
        """How many points curve ``name`` shows now (for tests and the benchmark)."""
        it = self.items.get((_split(name)[1], name))
        if it is None or it.xData is None:
            return 0
        return len(it.xData)

    # -- export -------------------------------------------------------------------
    def export_view(self):
        self.redraw()
        return self.view

    def csv_table(self):
        rows = []
        for name, s in sorted(self.series.items()):
            rows += [(name, int(a), f"{b:.6g}", repr(float(c))) for a, b, c in zip(s.steps, s.walls, s.values)]
        return ["curve", "step", "wall_time_s", "value"], rows

    def apply_palette(self):
        from workbench.gui.style import plot_colors
        bg, fg = plot_colors()
        self.view.setBackground(bg)
        for p in self.plots.values():
            for ax in ("left", "bottom"):
                p.getAxis(ax).setPen(fg)
                p.getAxis(ax).setTextPen(fg)
