"""Training curves: meta-train loss and metric, validation loss and metric.

One plot per quantity (loss, then accuracy in percent, or for regression only the loss, which is
the MSE); a line per phase (``train/...`` in blue, ``val/...`` in orange with markers and a shaded
95% confidence band: mean ± 1.96 std / sqrt(n) over the validation episodes). Train curves are
drawn twice: the raw values faintly and a smoothed line on top -- the debiased exponential moving
average of :func:`workbench.analysis.smoothing.ema`, with a free weight (0: off). The x axis is the
meta-step or the wall time since the run started. Fit, zoom box and log-y are visible controls.

The panel observes a :class:`workbench.gui.session_model.SessionModel` (the window's, or one of
its own): the model holds the curves in growable numpy buffers and says when they change; the view
is redrawn at most every
:data:`REDRAW_MS` ms with ``setData``, long curves downsampled for display by
:func:`workbench.analysis.smoothing.downsample_minmax` (peaks survive) and clipped to the visible
range; the CSV export always has every raw point.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel

from workbench.analysis.smoothing import downsample_minmax, ema
from workbench.gui.panels.base import Panel, ViewTools
from workbench.gui.plotstyle import metric_label, metric_scale, plain_axes, style_layout
from workbench.gui.session_model import SessionModel

DEFAULT_SMOOTHING = 0.9
MAX_DISPLAY_POINTS = 2000
PHASE_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
PHASE_NAMES = {"train": "meta-train", "val": "validation", "test": "test"}


REDRAW_MS = 250     # redraw at most 4 times a second: painting holds the GIL the worker needs


def _split(name: str) -> tuple[str, str]:
    phase, _, quantity = name.partition("/")
    return (phase, quantity) if quantity else ("train", phase)


class CurvesPanel(Panel):
    """The main window's live training curves (one run); the compare view overlays sessions in
    :class:`workbench.gui.compare.CompareCurvesPanel`."""

    title = "Curves"
    export_name = "curves"

    def __init__(self, model: SessionModel | None = None, parent=None):
        super().__init__(parent)
        self.task_metric = "accuracy"
        self.model = None

        self.smoothing = QDoubleSpinBox()
        self.smoothing.setRange(0.0, 0.999)
        self.smoothing.setDecimals(3)
        self.smoothing.setSingleStep(0.05)
        self.smoothing.setValue(DEFAULT_SMOOTHING)
        self.smoothing.setSpecialValueText("off")
        self.smoothing.setToolTip("Smoothing of the meta-train curves: the weight of a debiased exponential "
                                  "moving average (0 = off, 0.9 = TensorBoard's default look, 0.99 = heavy); "
                                  "the raw values stay drawn faintly and in the CSV")
        self.show_raw = QCheckBox("Raw")
        self.show_raw.setChecked(True)
        self.show_raw.setToolTip("Also draw the unsmoothed meta-train values")
        self.xaxis = QComboBox()
        self.xaxis.addItems(["Step", "Wall time"])
        self.xaxis.setToolTip("x axis: meta-training step, or seconds since the run started")
        self.tools = ViewTools(lambda: self.plots.values())
        self.controls.addWidget(QLabel("Smoothing"))
        self.controls.addWidget(self.smoothing)
        self.controls.addWidget(self.show_raw)
        self.controls.addWidget(QLabel("x axis"))
        self.controls.addWidget(self.xaxis)
        self.controls.addWidget(self.tools)
        self.finish_controls()

        self.view = pg.GraphicsLayoutWidget()
        self.view.setMinimumSize(200, 160)
        self.body.addWidget(self.view)
        self.plots: dict[str, pg.PlotItem] = {}
        self.items: dict[tuple[str, str], pg.GraphicsObject] = {}
        self.legend: pg.LegendItem | None = None
        self._rebuild()

        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        self._timer.start()
        self.smoothing.valueChanged.connect(lambda *_: self.mark_dirty(True))
        self.xaxis.currentTextChanged.connect(lambda *_: self.mark_dirty(True))
        self.show_raw.toggled.connect(lambda *_: self.mark_dirty(True))
        self.observe(model if model is not None else SessionModel())

    # -- observing the model ------------------------------------------------------
    def observe(self, model: SessionModel):
        """Draw ``model``'s curves from now on (the model says when they change)."""
        self.model = model
        model.reset.connect(lambda name: (self.set_run_name(name), self.clear()))
        model.metric_changed.connect(self.set_metric)
        model.curves_changed.connect(self.mark_dirty)
        self.set_metric(model.metric)
        self.mark_dirty()

    @property
    def series(self):
        """Curve name -> :class:`~workbench.gui.session_model.Series` (the model's)."""
        return self.model.series if self.model is not None else {}

    @property
    def bands(self):
        """Curve name -> the 95% CI of each point (validation curves; the model's)."""
        return self.model.bands if self.model is not None else {}

    def set_metric(self, metric: str):
        """The task metric of the run ("accuracy" or "mse"): names the second plot (regression: the
        loss is the MSE, one plot)."""
        if metric != self.task_metric:
            self.task_metric = metric
            self._rebuild()

    def _quantities(self) -> list[str]:
        """The plots, top to bottom: the loss, then the task metric unless the loss is that metric."""
        return ["loss"] if self.task_metric == "mse" else ["loss", self.task_metric]

    def _shown_quantity(self, quantity: str) -> str | None:
        """The plot a quantity is drawn in (None: not drawn, e.g. MSE beside an MSE loss)."""
        if quantity == "mse" and self.task_metric == "mse":
            return None
        return quantity

    def _rebuild(self):
        self.view.clear()
        self.plots, self.items = {}, {}
        # the legend has a row of its own above the plots: it never hides a curve, and exports carry it
        self.legend = pg.LegendItem(colCount=3, labelTextSize="9pt", horSpacing=18)
        self.view.addItem(self.legend, row=0, col=0)
        for q in self._quantities():
            self._ensure_plot(q)
        for name in self.series:
            q = self._shown_quantity(_split(name)[1])
            if q is not None:
                self._ensure_plot(q)
        self.mark_dirty(True)

    def clear(self):
        """Forget the drawn items (the model's reset: its curves are already empty)."""
        self.set_metric(self.model.metric if self.model is not None else "accuracy")
        self._rebuild()

    def has_data(self) -> bool:
        return self.model is not None and self.model.has_curves()

    def mark_dirty(self, now: bool = False):
        self._dirty = True
        if now:
            self.redraw()

    # -- drawing ----------------------------------------------------------------
    def _ensure_plot(self, quantity: str) -> pg.PlotItem:
        p = self.plots.get(quantity)
        if p is None:
            row = len(self.plots) + 1
            p = self.view.addPlot(row=row, col=0)
            label = metric_label(quantity)
            if quantity == "loss" and self.task_metric == "mse":
                label = "Loss (MSE)"
            p.setLabel("left", label, units=None)
            plain_axes(p)
            p.showGrid(x=True, y=True, alpha=0.25)
            p.setClipToView(True)
            p._log_able = quantity != "accuracy"
            if self.plots:
                p.setXLink(next(iter(self.plots.values())))
            self.plots[quantity] = p
            self._label_x()
            style_layout(self.view)
            self.tools.apply()
        return p

    def _label_x(self):
        wall = self.xaxis.currentText() == "Wall time"
        plots = list(self.plots.values())
        for i, p in enumerate(plots):
            last = i == len(plots) - 1
            p.setLabel("bottom", ("Wall time (s)" if wall else "Meta-training step") if last else None)
            p.getAxis("bottom").setStyle(showValues=True)

    def _item(self, quantity: str, key: str, name: str | None, color: str, raw: bool, markers: bool):
        it = self.items.get((quantity, key))
        if it is None:
            c = QColor(color)
            if raw:
                c.setAlpha(70)
            pen = pg.mkPen(c, width=1 if raw else 2)
            kw = {}
            if markers:
                kw = dict(symbol="o", symbolSize=6, symbolBrush=QColor(color), symbolPen=None)
            it = pg.PlotDataItem(pen=pen, **kw)
            self._ensure_plot(quantity).addItem(it)
            self.items[(quantity, key)] = it
        return it

    def _band(self, quantity: str, name: str, color: str) -> pg.FillBetweenItem:
        key = (quantity, name + "#ci")
        band = self.items.get(key)
        if band is None:
            lo, hi = pg.PlotCurveItem(), pg.PlotCurveItem()
            c = QColor(color)
            c.setAlpha(55)
            band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(c))
            band.curves = (lo, hi)
            plot = self._ensure_plot(quantity)
            plot.addItem(band)
            band.setZValue(-5)
            self.items[key] = band
        return band

    def smoothing_weight(self) -> float | None:
        w = float(self.smoothing.value())
        return w if w > 0 else None

    def redraw(self):
        if not self._dirty:
            return
        self._dirty = False
        self._label_x()
        wall = self.xaxis.currentText() == "Wall time"
        weight = self.smoothing_weight()
        named: set[str] = set()
        banded = {_split(n)[0] for n, b in self.bands.items() if b.n}
        for name, s in sorted(self.series.items()):
            phase, quantity = _split(name)
            shown = self._shown_quantity(quantity)
            if shown is None or (quantity not in ("loss", self.task_metric) and s.n == 0):
                continue
            x = s.walls if wall else s.steps
            k = metric_scale(quantity)
            y = s.values * k
            color = PHASE_COLORS.get(phase, "#7f7f7f")
            few = phase != "train"
            label = PHASE_NAMES.get(phase, phase)
            if phase == "train" and weight is not None:
                label += f" (EMA {weight:g}" + (", raw faint)" if self.show_raw.isChecked() else ")")
            elif phase in banded:
                label += " ± 95% CI"
            # one legend entry per phase, on the top plot
            legend_name = label if (shown == self._quantities()[0] and label not in named) else None
            if legend_name:
                named.add(label)
            it = self._item(shown, name, legend_name, color, raw=False, markers=few)
            if legend_name and self.legend is not None:
                self._rename(it, legend_name)
            if few or weight is None:
                it.setData(*downsample_minmax(x, y, MAX_DISPLAY_POINTS))
                raw_it = self.items.get((shown, name + "#raw"))
                if raw_it is not None:
                    raw_it.setData([], [])
                b = self.bands.get(name)
                if b is not None and b.n == s.n:
                    band = self._band(shown, name, color)
                    ci = np.nan_to_num(b.values * k)         # one episode: no CI, no band there
                    lo = y - ci
                    if quantity in ("mse", "loss"):
                        lo = np.maximum(lo, 0.0)       # an error cannot be negative
                    band.curves[0].setData(x, lo)
                    band.curves[1].setData(x, y + ci)
                continue
            raw_it = self._item(shown, name + "#raw", None, color, raw=True, markers=False)
            if self.show_raw.isChecked():
                raw_it.setData(*downsample_minmax(x, y, MAX_DISPLAY_POINTS))
            else:
                raw_it.setData([], [])
            it.setData(*downsample_minmax(x, ema(y, weight), MAX_DISPLAY_POINTS))

    def _rename(self, item, name: str):
        """Keep an item's legend entry in step with the smoothing and band it shows."""
        legend = self.legend
        for sample, label in legend.items:
            if sample.item is item:
                if label.text != name:
                    label.setText(name, color=label.opts.get("color"))
                return
        item.opts["name"] = name
        legend.addItem(item, name)
        style_layout(self.view)

    def legend_texts(self) -> list[str]:
        """The legend's entries (for tests and exports)."""
        return [label.text for _, label in self.legend.items] if self.legend is not None else []

    def displayed_points(self, name: str) -> int:
        """How many points curve ``name`` shows now (for tests and the benchmark)."""
        q = self._shown_quantity(_split(name)[1])
        it = self.items.get((q, name))
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
        style_layout(self.view)
