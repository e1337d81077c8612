"""Export helpers shared by the sessions browser, the compare view and the report.

- :data:`SESSION_COLORS` / :func:`session_color`: one colour per compared
  session (Okabe-Ito's colour-blind-safe palette), used for that session in
  every plot, table and legend of a view.
- :func:`export_plot` writes a pyqtgraph plot to PNG or SVG (:func:`write_svg`); :func:`plot_png_bytes`
  renders one to PNG bytes (for the HTML report); :func:`write_csv` writes
  the data behind a panel.
- :class:`PlotPanel`: a titled pyqtgraph plot with PNG / SVG / CSV buttons
  (also in its context menu); :class:`TablePanel`: a titled table with a CSV
  button.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Callable

import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401  (registers pg.exporters)
from PySide6.QtCore import QBuffer, QByteArray, QCoreApplication, QIODevice, QRectF, QSettings, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMenu,
                               QMessageBox, QSizePolicy, QTableWidget, QTableWidgetItem, QToolButton,
                               QVBoxLayout, QWidget)

# Okabe & Ito (2008) colour-blind-safe palette, then a few extra distinct colours.
SESSION_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#8C564B", "#7F7F7F",
                  "#BCBD22", "#17BECF")
# Task families in embedding maps (tab10-like, distinct from the session colours' order).
FAMILY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf", "#393b79", "#637939")

CsvData = tuple[list[str], list[list]]


def session_color(i: int) -> QColor:
    return QColor(SESSION_COLORS[i % len(SESSION_COLORS)])


def family_color(i: int) -> QColor:
    return QColor(FAMILY_COLORS[i % len(FAMILY_COLORS)])


def color_icon(color: QColor, size: int = 12) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(color)
    return QIcon(pm)


def _settings() -> QSettings:
    """The application's QSettings (its organisation and name are set by workbench.gui.app)."""
    if QCoreApplication.organizationName():
        return QSettings()
    return QSettings("workbench", "workbench")


def last_dir() -> str:
    return str(_settings().value("export/last_dir", str(Path.home())))


def remember_dir(path) -> None:
    _settings().setValue("export/last_dir", str(Path(path).parent if Path(path).suffix else Path(path)))


def _plot_item(plot):
    """The scene item to export: a PlotItem, or the scene of a GraphicsLayoutWidget."""
    if isinstance(plot, pg.PlotWidget):
        return plot.getPlotItem()
    if isinstance(plot, pg.GraphicsView):
        return plot.scene()
    return plot


def export_plot(plot, path, width: int | None = None) -> Path:
    """Write ``plot`` (PlotWidget, PlotItem or GraphicsLayoutWidget) to ``path``; the suffix picks PNG or SVG."""
    path = Path(path)
    suffix = path.suffix.lower()
    item = _plot_item(plot)
    if suffix == ".png":
        ex = pg.exporters.ImageExporter(item)
        if width:
            ex.parameters()["width"] = int(width)
        ex.export(str(path))
    elif suffix == ".svg":
        write_svg(plot, path)
    else:
        raise ValueError(f"cannot export a plot to {str(path)!r}: use a .png or .svg file name")
    if not path.exists() or path.stat().st_size == 0:
        raise OSError(f"exporting the plot to {str(path)!r} wrote no file")
    return path


def write_svg(plot, path) -> Path:
    """Write ``plot`` as SVG through Qt's own SVG painter.

    pyqtgraph 0.14's ``SVGExporter`` fails on the closed paths ("... Z") that
    Qt >= 6.10 writes (pyqtgraph issue #3495), so the scene is painted onto a
    ``QSvgGenerator`` directly: vector output, with the plot's background."""
    from PySide6.QtSvg import QSvgGenerator
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    if isinstance(item, pg.GraphicsView):
        scene, source = item.scene(), item.sceneRect()
        background = item.backgroundBrush()
    else:
        scene, source = item.scene(), item.sceneBoundingRect()
        views = scene.views() if scene is not None else []
        background = views[0].backgroundBrush() if views else QBrush(Qt.GlobalColor.white)
    if scene is None or source.isEmpty():
        raise ValueError("the plot has not been laid out yet; show it before exporting")
    w, h = int(math.ceil(source.width())), int(math.ceil(source.height()))
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QSize(w, h))
    gen.setViewBox(QRectF(0, 0, w, h))
    # pyqtgraph's axes replay QPictures recorded at the screen's 96 dpi: at the generator's default
    # 72 dpi they would be drawn at 3/4 size, off their grid
    gen.setResolution(96)
    gen.setTitle(Path(path).stem)
    gen.setDescription("Exported by Meta-Learning Workbench")
    painter = QPainter(gen)
    # export mode: scatter spots are painted as vector paths instead of cached pixmaps
    modes = pg.exporters.ImageExporter(scene if isinstance(item, pg.GraphicsView) else item)
    modes.setExportMode(True, {"antialias": True, "background": background.color(), "painter": painter})
    try:
        painter.fillRect(QRectF(0, 0, w, h), background)
        scene.render(painter, QRectF(0, 0, w, h), source)
    finally:
        modes.setExportMode(False)
        painter.end()
    return Path(path)


def plot_png_bytes(plot, width: int = 900) -> bytes:
    """Render ``plot`` to PNG bytes (for embedding in a report)."""
    ex = pg.exporters.ImageExporter(_plot_item(plot))
    ex.parameters()["width"] = int(width)
    image = ex.export(toBytes=True)
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    buf.close()
    return bytes(data.data())


def write_csv(path, headers: list[str], rows: list[list]) -> Path:
    """Write a table (header row, then ``rows``) as UTF-8 CSV."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)
    return path


def _ask_save(parent, title: str, default_name: str, filters: str) -> str:
    path, _ = QFileDialog.getSaveFileName(parent, title, str(Path(last_dir()) / default_name), filters)
    if path:
        remember_dir(path)
    return path


def _run_export(parent, what: str, fn: Callable[[], object]) -> bool:
    try:
        fn()
        return True
    except (OSError, ValueError) as e:
        QMessageBox.warning(parent, "Export failed", f"Could not export {what}: {e}")
        return False


class PlotPanel(QWidget):
    """A titled pyqtgraph plot with buttons (and context-menu entries) to export it.

    ``csv_data`` returns ``(headers, rows)``: the data drawn in the plot."""

    def __init__(self, title: str, csv_data: Callable[[], CsvData] | None = None, parent=None,
                 plot: pg.GraphicsView | None = None):
        super().__init__(parent)
        self.title = title
        self.csv_data = csv_data or (lambda: ([], []))
        self.plot = plot if plot is not None else pg.PlotWidget()
        self.plot.setMinimumSize(180, 140)
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.title_label = QLabel(f"<b>{title}</b>")
        self.header = QHBoxLayout()
        self.header.setContentsMargins(0, 0, 0, 0)
        self.header.addWidget(self.title_label)
        self.header.addStretch(1)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setToolTip("Export this plot as PNG or SVG, or its data as CSV")
        self.export_button.setAutoRaise(True)
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_button.setMenu(self._export_menu(self.export_button))
        self.header.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(2)
        lay.addLayout(self.header)
        lay.addWidget(self.plot, 1)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)

    def _export_menu(self, parent) -> QMenu:
        m = QMenu(parent)
        for fmt, text in (("png", "Plot as PNG…"), ("svg", "Plot as SVG…"), ("csv", "Data as CSV…")):
            m.addAction(text, lambda f=fmt: self.ask_export(f))
        return m

    def _menu(self, pos):
        self._export_menu(self).exec(self.mapToGlobal(pos))

    def default_name(self) -> str:
        return "".join(c if c.isalnum() else "_" for c in self.title.lower()).strip("_") or "plot"

    def ask_export(self, fmt: str) -> None:
        filters = {"png": "PNG image (*.png)", "svg": "SVG image (*.svg)", "csv": "CSV table (*.csv)"}[fmt]
        path = _ask_save(self, f"Export {self.title}", f"{self.default_name()}.{fmt}", filters)
        if path:
            _run_export(self, self.title, lambda: self.export(path))

    def export(self, path) -> Path:
        """PNG / SVG of the plot, or CSV of its data, by the suffix of ``path``."""
        if Path(path).suffix.lower() == ".csv":
            headers, rows = self.csv_data()
            return write_csv(path, headers, rows)
        return export_plot(self.plot, path)

    def png_bytes(self, width: int = 900) -> bytes:
        return plot_png_bytes(self.plot, width)


class TablePanel(QWidget):
    """A titled read-only table with a CSV export button."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.title = title
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.hide()
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(QLabel(f"<b>{title}</b>"))
        head.addStretch(1)
        b = QToolButton()
        b.setText("CSV")
        b.setAutoRaise(True)
        b.setToolTip("Export this table as CSV")
        b.clicked.connect(self.ask_export)
        head.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(2)
        lay.addLayout(head)
        lay.addWidget(self.note)
        lay.addWidget(self.table, 1)

    def set_table(self, headers: list[str], rows: list[list[str]], colors: dict[str, QColor] | None = None,
                  empty_note: str = "", spans: dict[int, tuple[int, str]] | None = None) -> None:
        """Fill the table; cells whose text is a key of ``colors`` get that colour's chip.

        ``spans`` maps a row to ``(column, text)``: that row shows ``text`` from ``column`` to the last
        column (e.g. why a pair could not be compared); the CSV keeps the plain rows."""
        self.headers, self.rows = list(headers), [list(r) for r in rows]
        t = self.table
        t.clear()
        t.setColumnCount(len(headers))
        t.setRowCount(len(rows))
        t.setHorizontalHeaderLabels(headers)
        colors = colors or {}
        for j, h in enumerate(headers):
            if h in colors:
                t.horizontalHeaderItem(j).setIcon(color_icon(colors[h]))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                it = QTableWidgetItem(str(text))
                it.setToolTip(str(text))
                if text in colors:
                    it.setIcon(color_icon(colors[text]))
                t.setItem(i, j, it)
        t.clearSpans()
        for i, (col, text) in (spans or {}).items():
            it = QTableWidgetItem(text)
            it.setToolTip(text)
            it.setForeground(QColor("#b03a2e"))
            t.setItem(i, col, it)
            t.setSpan(i, col, 1, len(headers) - col)
        self.note.setText(empty_note)
        self.note.setVisible(bool(empty_note) and not rows)

    def ask_export(self) -> None:
        name = "".join(c if c.isalnum() else "_" for c in self.title.lower()).strip("_")
        path = _ask_save(self, f"Export {self.title}", f"{name}.csv", "CSV table (*.csv)")
        if path:
            _run_export(self, self.title, lambda: write_csv(path, self.headers, self.rows))
