"""The results of a study: the table, the sensitivity plot and the pairwise significance matrix.

Numbers come from :mod:`workbench.analysis.study` (no Qt) and read through :mod:`workbench.format`;
this module only draws them:

- the results table, one row per cell, best first: mean ± 95% CI over seeds, the per-episode CI,
  the difference from the best cell and its Holm-corrected p-value; the best cell is bold and
  starred, a cell that differs from it significantly carries a dagger. Selecting cells and pressing
  Compare (or double-clicking one) opens their sessions in the compare view. Exports to CSV,
  Markdown and LaTeX (:func:`workbench.analysis.study.export_table`);
- the sensitivity plot: the metric against one numeric axis, one curve per combination of the
  other axes, with a band of the 95% CI over seeds;
- the significance matrix: each pair of cells, coloured by the Holm-corrected p-value of row minus
  column, signed by the direction of the difference (red: the row scored better, blue: worse), with
  a colour bar; each square says the difference and the p-value.

The figures carry the study's name as their title and the cells' names on their axes and legends,
so an exported PNG or SVG stands alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QMenu,
                               QMessageBox, QPushButton, QSizePolicy, QSplitter, QTableWidget, QTableWidgetItem,
                               QToolButton, QVBoxLayout, QWidget)

from workbench import config as C
from workbench import format as F
from workbench.gui.plot_export import PlotPanel, last_dir, remember_dir
from workbench.gui.plotstyle import metric_label, metric_scale, session_color, style_plot

MAX_COMPARED = 10           # sessions the compare view can tell apart by colour
P_CLIP = 4.0                # -log10 p above this is shown as the colour of 1e-4
P_TICKS = ((4.0, "1e-4"), (3.0, "0.001"), (2.0, "0.01"), (-math.log10(0.05), "0.05"), (0.0, "1"))
BEST_TINT = "#2ca02c"
SIG_COLOR = "#d62728"
TABLE_HEADERS = ("Rank", "Cell", "Seeds", "Mean ± 95% CI over seeds", "Per-episode 95% CI", "vs best",
                 "p (Holm) vs best")


def field_label(key: str) -> str:
    try:
        return C.field_info(key).label
    except KeyError:
        return key


def short_label(cell: dict) -> str:
    """The cell's values only (``maml, 5``); ``base`` for a seeds-only study."""
    def show(v):
        return f"{v:g}" if isinstance(v, float) else str(v)
    return ", ".join(show(v) for v in cell.values()) or "base"


def elastic(label: QLabel) -> QLabel:
    """A label that never widens its column (long study names are cut; the tooltip has them whole)."""
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(0)
    return label


def _title(panel: PlotPanel, text: str) -> None:
    """The figure's title: in the panel's header on screen (a long title inside the plot would widen it
    past its column), and above the plot in exported files (:meth:`PlotPanel.export_title`)."""
    panel.figure_title = text
    if not getattr(panel, "_elastic_title", False):     # the title takes the header's free width, no more
        elastic(panel.title_label)
        h = panel.header
        for i in range(h.count()):
            if h.itemAt(i).spacerItem() is not None:
                h.removeItem(h.itemAt(i))
                break
        h.setStretchFactor(panel.title_label, 1)
        panel._elastic_title = True
    panel.title_label.setText(f"<b>{F.html_text(text)}</b>")
    panel.title_label.setToolTip(text)


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------
class ResultsTable(QWidget):
    """The results table with its exports and the Compare button."""

    compare_requested = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.results = None
        self.cell_ids: list[str] = []
        self.headers: list[str] = list(TABLE_HEADERS)
        self.table = QTableWidget(0, len(TABLE_HEADERS))
        self.table.setHorizontalHeaderLabels(TABLE_HEADERS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda idx: self.compare_cells([self.cell_ids[idx.row()]]))
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.RichText)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Open the sessions of the selected cells in the compare view "
                                       "(or double-click a cell to compare its seeds)")
        self.compare_button.clicked.connect(lambda: self.compare_cells(self.selected_cells()))
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setAutoRaise(True)
        self.export_button.setToolTip("Export the table as CSV, Markdown or LaTeX")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        m = QMenu(self.export_button)
        for suffix, text in ((".csv", "Table as CSV…"), (".md", "Table as Markdown…"), (".tex", "Table as LaTeX…")):
            m.addAction(text, lambda s=suffix: self.ask_export(s))
        self.export_button.setMenu(m)
        self.title = elastic(QLabel("<b>Results</b>"))
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title, 1)
        head.addWidget(self.compare_button)
        head.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(2)
        lay.addLayout(head)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.note)
        self._update_buttons()

    def clear(self):
        self.results = None
        self.cell_ids = []
        self.table.setRowCount(0)
        self.note.setText("")
        self.title.setText("<b>Results</b>")
        self._update_buttons()

    def headers_for(self, results) -> list[str]:
        """Rank, one column per axis (by label), then the numbers."""
        axes = [field_label(k) for k in results.axes] or ["Cell"]
        return [TABLE_HEADERS[0]] + axes + list(TABLE_HEADERS[2:])

    def column(self, header: str) -> int:
        return self.headers.index(header)

    def set_results(self, results) -> None:
        from workbench.analysis import study as AS
        self.results = results
        ranked = results.ranked()
        rows = AS.table_rows(results)             # rank, cell, seeds, mean ± CI, episode CI, vs best, p
        self.cell_ids = [c.cell_id for c in ranked]
        self.headers = self.headers_for(results)
        n_axes = max(1, len(results.axes))
        self.title.setText(f"<b>Results: {F.html_text(results.name)}</b> — test {F.html_text(results.metric)}, "
                           f"{'higher' if results.higher_is_better else 'lower'} is better")
        t = self.table
        t.clear()
        t.setColumnCount(len(self.headers))
        t.setHorizontalHeaderLabels(self.headers)
        hh = t.horizontalHeader()
        for j in range(len(self.headers)):
            hh.setSectionResizeMode(j, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(n_axes, QHeaderView.ResizeMode.Stretch)
        t.setRowCount(len(rows))
        bold = QFont(t.font())
        bold.setBold(True)
        mean_col, ep_col, vs_col, p_col = (n_axes + k for k in (2, 3, 4, 5))
        for i, (c, row) in enumerate(zip(ranked, rows)):
            vs = results.vs_best(c.cell_id)
            axis_texts = [short_label({k: c.cell[k]}) if k in c.cell else "" for k in results.axes] or [row[1]]
            texts = [row[0]] + axis_texts + list(row[2:])
            for j, text in enumerate(texts):
                it = QTableWidgetItem(text)
                it.setData(Qt.ItemDataRole.UserRole, c.cell_id)
                it.setToolTip(f"{c.label}\nruns: {', '.join(c.runs) or 'none finished'}"
                              + (f"\nnot finished: {', '.join(c.missing)}" if c.missing else ""))
                if not 1 <= j <= n_axes:
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c.best:
                    it.setFont(bold)
                    if j in (0, mean_col):
                        it.setForeground(QColor(BEST_TINT))
                t.setItem(i, j, it)
            t.item(i, mean_col).setToolTip("final test metric of each seed: "
                                           + ", ".join(F.metric_value(results.metric, v) for v in c.finals))
            t.item(i, ep_col).setToolTip(f"{c.n_episodes} test episodes pooled over the seeds")
            if vs is not None:
                how = "paired on the shared test episodes" if vs.paired else "unpaired"
                effect = f"; effect size {vs.effect_size:.2f}" if math.isfinite(vs.effect_size) else ""
                t.item(i, p_col).setToolTip(f"{how} ({vs.level}, n = {vs.n}); p before correction "
                                            f"{F.p_value(vs.p)}{effect}")
                if vs.significant:
                    t.item(i, p_col).setForeground(QColor(SIG_COLOR))
                    t.item(i, vs_col).setForeground(QColor(SIG_COLOR))
        self.note.setText("<small>" + F.html_text(AS.footnote(results)) + "</small>")
        self._update_buttons()

    def row_texts(self) -> list[dict]:
        """The table as the user reads it: one {header: text} per row, best first."""
        t = self.table
        return [{h: t.item(i, j).text() for j, h in enumerate(self.headers)} for i in range(t.rowCount())]

    def selected_cells(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.cell_ids[r] for r in rows if r < len(self.cell_ids)]

    def select_cells(self, cell_ids) -> None:
        sel = self.table.selectionModel()
        sel.clearSelection()
        for r, cid in enumerate(self.cell_ids):
            if cid in cell_ids:
                sel.select(self.table.model().index(r, 0), sel.SelectionFlag.Select | sel.SelectionFlag.Rows)

    def sessions_of(self, cell_ids) -> list[str]:
        if self.results is None:
            return []
        out = []
        for cid in cell_ids:
            out += self.results.cell(cid).sessions
        return out

    def compare_cells(self, cell_ids) -> None:
        paths = self.sessions_of(cell_ids)
        if len(paths) < 2:
            QMessageBox.information(self, "Compare cells", "Select cells with two or more finished runs between "
                                                           "them (a cell with several seeds compares its seeds).")
            return
        if len(paths) > MAX_COMPARED:
            QMessageBox.information(self, "Compare cells", f"These cells have {len(paths)} finished runs; the "
                                                           f"compare view shows at most {MAX_COMPARED}: select "
                                                           "fewer cells.")
            return
        self.compare_requested.emit(paths)

    def _update_buttons(self, *_):
        self.compare_button.setEnabled(len(self.sessions_of(self.selected_cells())) >= 2)
        self.export_button.setEnabled(self.results is not None)

    def export(self, path) -> Path:
        from workbench.analysis import study as AS
        if self.results is None:
            raise ValueError("there are no results to export yet")
        AS.export_table(self.results, path)
        return Path(path)

    def ask_export(self, suffix: str) -> None:
        from PySide6.QtWidgets import QFileDialog
        if self.results is None:
            return
        name = "".join(ch if ch.isalnum() else "_" for ch in self.results.name.lower()).strip("_") or "study"
        filters = {".csv": "CSV table (*.csv)", ".md": "Markdown table (*.md)", ".tex": "LaTeX table (*.tex)"}
        path, _ = QFileDialog.getSaveFileName(self, "Export the results table",
                                              str(Path(last_dir()) / f"{name}-results{suffix}"), filters[suffix])
        if not path:
            return
        remember_dir(path)
        if not Path(path).suffix:
            path += suffix
        try:
            self.export(path)
        except (OSError, ValueError) as e:
            QMessageBox.warning(self, "Export failed", f"Could not export the table: {e}")


# --------------------------------------------------------------------------
# the sensitivity plot
# --------------------------------------------------------------------------
class SensitivityPanel(PlotPanel):
    """The metric against one numeric axis, a curve per combination of the other axes, CI band."""

    def __init__(self, parent=None):
        super().__init__("Sensitivity", parent=parent)
        self.csv_data = self._csv
        self.results = None
        self.curves = []
        self.axis_box = QComboBox()
        self.axis_box.setToolTip("The numeric axis on the x axis")
        self.axis_box.currentIndexChanged.connect(self.redraw)
        self.header.insertWidget(self.header.count() - 1, self.axis_box)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.layout().addWidget(self.message)
        self.legend = self.plot.getPlotItem().addLegend(offset=(-10, 10))
        self.plot.getPlotItem().getViewBox().setDefaultPadding(0.06)
        style_plot(self.plot, self)
        self.set_results(None)

    def numeric_axes(self, results) -> list[str]:
        out = []
        for key in results.axes:
            values = [c.cell[key] for c in results.cells if key in c.cell]
            if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
                    and len(set(values)) >= 2:
                out.append(key)
        return out

    def set_results(self, results) -> None:
        self.results = results
        self.axis_box.blockSignals(True)
        self.axis_box.clear()
        for key in (self.numeric_axes(results) if results is not None else []):
            self.axis_box.addItem(field_label(key), key)
        self.axis_box.blockSignals(False)
        self.axis_box.setVisible(self.axis_box.count() > 1)
        self.redraw()

    @property
    def axis(self) -> str:
        return self.axis_box.currentData() or ""

    def redraw(self, *_):
        from workbench.analysis import study as AS
        item = self.plot.getPlotItem()
        item.clear()
        self.legend.clear()
        self.curves = []
        r = self.results
        style_plot(self.plot, self)
        if r is None:
            self.message.setText("")
            self.message.hide()
            _title(self, "Sensitivity")
            return
        if not self.axis:
            self.message.setText("No numeric axis in this study: the sensitivity plot needs a field varied over "
                                 "two or more numbers (e.g. the inner learning rate or the shots).")
            self.message.show()
            _title(self, f"{r.name}: no numeric axis")
            return
        self.message.hide()
        try:
            self.curves = AS.sensitivity(r, self.axis)
        except ValueError as e:
            self.message.setText(str(e))
            self.message.show()
            return
        scale, ylabel = metric_scale(r.metric), "Test " + metric_label(r.metric).lower().replace("mse", "MSE")
        xs_all = np.concatenate([c.x for c in self.curves]) if self.curves else np.zeros(0)
        log_x = bool(len(xs_all) and xs_all.min() > 0 and xs_all.max() / xs_all.min() >= 9.99)
        item.setLogMode(x=log_x, y=False)
        for k, c in enumerate(self.curves):
            color = session_color(k)
            mean = c.mean * scale
            ci = np.where(np.isfinite(c.ci95), c.ci95, 0.0) * scale
            ok = np.isfinite(mean)
            x, m, h = c.x[ok], mean[ok], ci[ok]
            if not len(x):
                continue
            band = QColor(color)
            band.setAlpha(60)
            lo = pg.PlotDataItem(x, m - h, pen=pg.mkPen(band))
            hi = pg.PlotDataItem(x, m + h, pen=pg.mkPen(band))
            item.addItem(lo)
            item.addItem(hi)
            item.addItem(pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(band)))
            line = pg.PlotDataItem(x, m, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=7,
                                   symbolBrush=color, symbolPen=pg.mkPen(color),
                                   name=self.group_name(c) or r.metric)
            item.addItem(line)
        xs = sorted(set(float(x) for x in xs_all))
        if log_x:       # ticks at the axis' values, written out (pyqtgraph's log ticks drop the exponent)
            item.getAxis("bottom").setTicks([[(math.log10(x), f"{x:g}") for x in xs], []])
        else:
            item.getAxis("bottom").setTicks(None)
        for name, text in (("bottom", f"{field_label(self.axis)} ({self.axis})" + (", log scale" if log_x else "")),
                           ("left", ylabel)):
            item.setLabel(name, text)
        _title(self, f"{r.name}: {r.metric} against {field_label(self.axis)} (mean ± 95% CI over seeds)")
        if not any(c.group for c in self.curves):
            self.legend.clear()
        style_plot(self.plot, self)
        item.enableAutoRange()

    def group_name(self, curve) -> str:
        """``Algorithm protonet``: the other axes of a curve, by label."""
        if not curve.group or not curve.cell_ids:
            return ""
        cell = self.results.cell(curve.cell_ids[0]).cell
        return ", ".join(f"{field_label(k)} {short_label({k: v})}" for k, v in cell.items() if k != self.axis)

    def default_name(self) -> str:
        base = self.results.name if self.results is not None else "study"
        return "".join(ch if ch.isalnum() else "_" for ch in f"{base} sensitivity".lower()).strip("_")

    def export_title(self) -> str:
        return getattr(self, "figure_title", "") or self.title

    def _csv(self):
        rows = []
        for c in self.curves:
            for i in range(len(c.x)):
                rows.append([c.group, c.cell_ids[i], c.x[i], c.mean[i], c.ci95[i], int(c.n[i])])
        return ["group", "cell_id", self.axis, "mean", "ci95_seeds", "seeds"], rows


# --------------------------------------------------------------------------
# the significance matrix
# --------------------------------------------------------------------------
def signed_log_p(results, order: list[str]) -> tuple[np.ndarray, list[list]]:
    """The matrix drawn: entry (i, j) = sign(row i - column j) * min(-log10 p_holm, P_CLIP) (nan on the
    diagonal and where a pair has no test), and the comparisons behind it."""
    n = len(order)
    m = np.full((n, n), np.nan)
    comps = [[None] * n for _ in range(n)]
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            if i == j:
                continue
            c = results.comparison(a, b)
            comps[i][j] = c
            if c is not None and math.isfinite(c.p_holm):
                v = min(-math.log10(max(c.p_holm, 1e-300)), P_CLIP)
                m[i, j] = math.copysign(v, c.mean_diff) if c.mean_diff != 0 else 0.0
    return m, comps


class SignificancePanel(PlotPanel):
    """Pairwise comparisons of the cells as a heat map with a colour bar."""

    def __init__(self, parent=None):
        super().__init__("Pairwise significance", parent=parent)
        self.csv_data = self._csv
        self.results = None
        self.order: list[str] = []
        self.matrix = np.zeros((0, 0))
        self.comps: list[list] = []
        self.cmap = pg.colormap.get("CET-D1")
        self.image = pg.ImageItem()
        self.colorbar = None
        self.texts: list[pg.TextItem] = []
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.layout().addWidget(self.message)
        style_plot(self.plot, self, grid=False)
        self.plot.getPlotItem().getViewBox().sigResized.connect(self._resized)
        self.set_results(None)

    def set_results(self, results) -> None:
        self.results = results
        self.redraw()

    def redraw(self, *_):
        item = self.plot.getPlotItem()
        for t in self.texts:
            item.removeItem(t)
        self.texts = []
        item.removeItem(self.image)
        style_plot(self.plot, self, grid=False)
        r = self.results
        if r is None or len([c for c in r.cells if c.finals]) < 2:
            self.order, self.matrix, self.comps = [], np.zeros((0, 0)), []
            self.message.setText("" if r is None else "The matrix needs two or more cells with finished runs.")
            self.message.setVisible(r is not None)
            _title(self, "Pairwise significance")
            return
        self.message.hide()
        self.order = [c.cell_id for c in r.ranked() if c.finals]
        self.matrix, self.comps = signed_log_p(r, self.order)
        n = len(self.order)
        shown = np.where(np.isfinite(self.matrix), self.matrix, 0.0)
        self.image.setImage(shown.T, levels=(-P_CLIP, P_CLIP), autoLevels=False)   # ImageItem: x = column
        self.image.setColorMap(self.cmap)
        self.image.setRect(0, 0, n, n)
        item.addItem(self.image)
        if self.colorbar is None:
            self.colorbar = pg.ColorBarItem(values=(-P_CLIP, P_CLIP), colorMap=self.cmap, interactive=False,
                                            label="p (Holm), red: row better",
                                            colorMapMenu=False)
            self.colorbar.setImageItem(self.image, insert_in=item)
        else:
            self.colorbar.setImageItem(self.image)
        fg = self.palette().color(QPalette.ColorRole.Text)
        bar_axis = self.colorbar.getAxis("right") if hasattr(self.colorbar, "getAxis") else None
        for name in ("left", "right"):
            ax = self.colorbar.getAxis(name)
            ax.setPen(pg.mkPen(fg))
            ax.setTextPen(pg.mkPen(fg))
            if ax.labelText:
                ax.labelStyle = {**ax.labelStyle, "color": fg.name()}
                ax._updateLabel()
        if bar_axis is not None:
            bar_axis.setPen(pg.mkPen(fg))
            bar_axis.setTextPen(pg.mkPen(fg))
            bar_axis.setTicks([[(s * v, text) for v, text in P_TICKS for s in ((1, -1) if v else (1,))]])
        labels = {c.cell_id: short_label(c.cell) for c in r.cells}
        ranks = {c.cell_id: c.rank for c in r.cells}
        left = [(i + 0.5, f"{ranks[cid]}. {labels[cid]}") for i, cid in enumerate(self.order)]
        bottom = [(i + 0.5, str(ranks[cid])) for i, cid in enumerate(self.order)]
        item.getAxis("left").setTicks([left, []])
        item.getAxis("bottom").setTicks([bottom, []])
        item.setLabel("bottom", "column: cell by rank")
        item.setLabel("left", "row")
        item.getViewBox().invertY(True)
        item.showGrid(x=False, y=False)
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() - (1.5 if n > 6 else 0.5)))
        self._text_mode = self.text_mode()
        for i in range(n):
            for j in range(n):
                text = self.square_text(i, j, self._text_mode)
                v = self.matrix[i, j] if math.isfinite(self.matrix[i, j]) else 0.0
                rgba = self.cmap.map((v + P_CLIP) / (2 * P_CLIP), mode="qcolor")
                dark = (0.299 * rgba.red() + 0.587 * rgba.green() + 0.114 * rgba.blue()) < 140
                ti = pg.TextItem(text, color="#ffffff" if dark else "#111111", anchor=(0.5, 0.5))
                ti.setFont(font)
                ti.setPos(j + 0.5, i + 0.5)
                item.addItem(ti)
                self.texts.append(ti)
        item.setXRange(0, n, padding=0)
        item.setYRange(0, n, padding=0)
        item.setMouseEnabled(False, False)
        _title(self, f"{r.name}: pairwise {r.metric} differences (row − column), Holm-corrected")
        style_plot(self.plot, self, grid=False)

    def text_mode(self) -> str:
        """What a square has room for: "full" (difference and p), "p", or "mark" (a dagger if significant)."""
        n = max(1, len(self.order))
        vb = self.plot.getPlotItem().getViewBox()
        side = min(vb.width(), vb.height()) / n if vb.width() > 0 else 100.0
        fm = self.fontMetrics()
        if side >= fm.horizontalAdvance("+12.34 pts") + 8 and side >= 2.6 * fm.height():
            return "full"
        if side >= fm.horizontalAdvance("0.0123 †") + 6:
            return "p"
        return "mark"

    def square_text(self, i: int, j: int, mode: str) -> str:
        if i == j:
            return "—"
        c = self.comps[i][j]
        if c is None:
            return "n/a" if mode != "mark" else ""
        dagger = " †" if c.significant else ""
        if mode == "full":
            return f"{F.metric_diff(self.results.metric, c.mean_diff)}\np {F.p_value(c.p_holm)}{dagger}"
        if mode == "p":
            return F.p_value(c.p_holm) + dagger
        return dagger.strip()

    def _resized(self, *_):
        if self.order and self.text_mode() != getattr(self, "_text_mode", ""):
            self.redraw()

    def default_name(self) -> str:
        base = self.results.name if self.results is not None else "study"
        return "".join(ch if ch.isalnum() else "_" for ch in f"{base} significance".lower()).strip("_")

    def export_title(self) -> str:
        return getattr(self, "figure_title", "") or self.title

    def _csv(self):
        r = self.results
        rows = []
        if r is None:
            return [], []
        for i, a in enumerate(self.order):
            for j, b in enumerate(self.order):
                c = self.comps[i][j] if i != j else None
                if c is not None:
                    rows.append([a, r.cell(a).label, b, r.cell(b).label, c.mean_diff, c.ci95, c.p, c.p_holm,
                                 c.effect_size, int(c.significant), int(c.paired), c.level, c.n])
        return ["row_cell", "row", "column_cell", "column", "mean_diff", "ci95", "p", "p_holm", "effect_size",
                "significant", "paired", "level", "n"], rows


# --------------------------------------------------------------------------
# the three together
# --------------------------------------------------------------------------
class StudyResultsPanel(QWidget):
    """Table above, sensitivity and significance side by side below."""

    compare_requested = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.record = None
        self.results = None
        self.table = ResultsTable()
        self.table.compare_requested.connect(self.compare_requested)
        self.sensitivity = SensitivityPanel()
        self.significance = SignificancePanel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.sensitivity)
        plots.addWidget(self.significance)
        plots.setSizes([500, 500])
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(plots)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        self.splitter = split
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.message)
        lay.addWidget(split, 1)
        self.clear("")

    def clear(self, message: str = "") -> None:
        self.results = None
        self.table.clear()
        self.sensitivity.set_results(None)
        self.significance.set_results(None)
        self.message.setText(F.html_text(message))
        self.message.setVisible(bool(message))

    def set_results(self, results, record=None) -> None:
        self.results, self.record = results, record
        self.message.hide()
        self.table.set_results(results)
        self.sensitivity.set_results(results)
        self.significance.set_results(results)

    def changeEvent(self, ev):
        super().changeEvent(ev)
        from PySide6.QtCore import QEvent
        if ev.type() == QEvent.Type.PaletteChange and self.results is not None:
            self.sensitivity.redraw()
            self.significance.redraw()
