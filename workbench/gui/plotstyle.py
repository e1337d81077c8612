"""How every plot of the window looks: colours, axes, legends, titles -- in one module.

The live panels, the compare view and the reports all style their pyqtgraph plots here:

- :data:`CATEGORICAL` (task families in the live panels), :data:`SESSION_COLORS` (one colour per
  compared session, Okabe-Ito's colour-blind-safe palette) and :data:`FAMILY_COLORS`;
- :func:`plain_axes`: no SI-prefix rescaling ("Loss (x0.001)") on any axis, ever;
- :func:`style_plot`: background, axis, tick, title and legend colours from the palette (light or
  dark; ``light=True``: a white page, as in reports), a faint grid, plain axes;
- :func:`metric_label`: the axis title of a metric ("Accuracy (%)": accuracy is shown in percent in
  every view; its stored values are fractions).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

# Tableau 10, for task families in the live panels: distinguishable on light and dark backgrounds.
CATEGORICAL = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
# Okabe & Ito (2008) colour-blind-safe palette, then a few extra distinct colours: compared sessions.
SESSION_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#8C564B", "#7F7F7F",
                  "#BCBD22", "#17BECF")
# Task families in the compare view's embedding maps (tab10-like, distinct from the session colours' order).
FAMILY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf", "#393b79", "#637939")
PAGE_BG, PAGE_FG = "#ffffff", "#222222"          # reports and "light" exports
AXES = ("left", "bottom", "right", "top")


def session_color(i: int) -> QColor:
    return QColor(SESSION_COLORS[i % len(SESSION_COLORS)])


def family_color(i: int) -> QColor:
    return QColor(FAMILY_COLORS[i % len(FAMILY_COLORS)])


def category_color(i: int) -> QColor:
    return QColor(CATEGORICAL[i % len(CATEGORICAL)])


def family_colors(families) -> dict[str, str]:
    """Task family -> its colour in the live panels: the families in name order through
    :data:`CATEGORICAL`, so the map and the per-task bars give a family the same colour whatever
    the bars' order."""
    return {f: CATEGORICAL[k % len(CATEGORICAL)] for k, f in enumerate(sorted({str(f) for f in families}))}


def palette_colors(widget: QWidget | None = None, light: bool = False) -> tuple[QColor, QColor]:
    """(background, foreground) of plots: the palette's Base and Text colours (full contrast in the
    dark palette too), or a white page."""
    if light:
        return QColor(PAGE_BG), QColor(PAGE_FG)
    if widget is not None:
        pal = widget.palette()
    else:
        app = QApplication.instance()
        pal = app.palette() if app is not None else QPalette()
    return pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)


def plain_axes(plot_item: pg.PlotItem) -> None:
    """No automatic SI prefix on any axis: ticks keep the units of their label."""
    for name in AXES:
        ax = plot_item.getAxis(name)
        ax.enableAutoSIPrefix(False)


def _plot_item(plot) -> pg.PlotItem:
    return plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot


def color_axes(plot_item: pg.PlotItem, fg: QColor) -> None:
    """Axis lines, ticks, tick labels and axis titles in ``fg`` (titles are HTML and keep their own
    colour otherwise: unreadable on the dark palette)."""
    for name in AXES:
        ax = plot_item.getAxis(name)
        ax.setPen(pg.mkPen(fg))
        ax.setTextPen(pg.mkPen(fg))
        if ax.labelText:
            ax.labelStyle = {**ax.labelStyle, "color": fg.name()}
            ax._updateLabel()
    if plot_item.titleLabel is not None and plot_item.titleLabel.text:
        plot_item.titleLabel.setText(plot_item.titleLabel.text, color=fg.name())


def style_legend(legend: pg.LegendItem | None, bg: QColor, fg: QColor) -> None:
    """A legend readable on its plot: text in ``fg`` over a slightly see-through ``bg``."""
    if legend is None:
        return
    back = QColor(bg)
    back.setAlpha(200)
    legend.setBrush(pg.mkBrush(back))
    edge = QColor(fg)
    edge.setAlpha(60)
    legend.setPen(pg.mkPen(edge))
    legend.setLabelTextColor(fg)
    for _sample, label in legend.items:
        label.setText(label.text, color=fg.name())


def style_plot(plot, widget: QWidget | None = None, light: bool = False, grid: bool = True):
    """Background, axes, title and legend in the palette's colours (or a white page); plain axes."""
    item = _plot_item(plot)
    bg, fg = palette_colors(widget if widget is not None else (plot if isinstance(plot, QWidget) else None), light)
    if isinstance(plot, pg.GraphicsView):
        plot.setBackground(bg)
    plain_axes(item)
    color_axes(item, fg)
    style_legend(item.legend, bg, fg)
    if grid:
        item.showGrid(x=True, y=True, alpha=0.2)
    return plot


def style_layout(view: pg.GraphicsLayoutWidget, light: bool = False) -> None:
    """:func:`style_plot` for every plot of a layout widget (the live panels)."""
    bg, fg = palette_colors(view, light)
    view.setBackground(bg)
    for item in view.ci.items:
        if isinstance(item, pg.PlotItem):
            plain_axes(item)
            color_axes(item, fg)
            style_legend(item.legend, bg, fg)
        elif isinstance(item, pg.ColorBarItem):
            for name in ("left", "right"):
                ax = item.getAxis(name) if hasattr(item, "getAxis") else None
                if ax is not None:
                    ax.setPen(pg.mkPen(fg))
                    ax.setTextPen(pg.mkPen(fg))
        elif isinstance(item, pg.LegendItem):
            style_legend(item, bg, fg)
        elif isinstance(item, pg.LabelItem):
            item.setText(item.text, color=fg.name())


def legend_brush(widget: QWidget):
    """The plot background, slightly see-through, behind legend entries."""
    c = QColor(palette_colors(widget)[0])
    c.setAlpha(200)
    return pg.mkBrush(c)


def text_color(widget: QWidget) -> QColor:
    return palette_colors(widget)[1]


def metric_scale(metric: str) -> float:
    """Accuracy is stored as a fraction and shown in percent everywhere."""
    return 100.0 if metric == "accuracy" else 1.0


def metric_label(quantity: str) -> str:
    """The axis title of a quantity: ``Accuracy (%)``, ``MSE``, ``Loss``."""
    return {"loss": "Loss", "accuracy": "Accuracy (%)", "mse": "MSE"}.get(quantity, quantity)


def metric_title(name: str) -> str:
    """``val/accuracy`` -> ``Validation accuracy``."""
    phase, _, what = name.partition("/")
    nice = {"train": "Meta-train", "val": "Validation", "test": "Test"}.get(phase, phase)
    return f"{nice} {what}" if what else name
