"""Export helpers shared by the panels, and the :class:`Panel` base class.

A panel exports three ways, chosen by the file suffix:

- ``.png``: the plot scene through pyqtgraph's ``ImageExporter`` (at least
  1200 pixels wide, so a small dock still gives a usable figure);
- ``.svg``: the same scene through ``SVGExporter`` (vector, for papers);
- ``.csv``: the numbers behind the panel (every raw point, never the
  downsampled display copy).

Widgets without a plot scene (the log) export PNG with ``QWidget.grab()``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QFileDialog, QLabel, QSizePolicy, QHBoxLayout, QMenu, QMessageBox, QToolButton, QVBoxLayout,
                               QWidget)

EXPORT_FILTERS = {".png": "PNG image (*.png)", ".svg": "SVG vector image (*.svg)",
                  ".csv": "CSV table of the data (*.csv)"}
MIN_EXPORT_WIDTH = 1200


class ExportError(RuntimeError):
    """An export that could not be written; the message names the file and the reason."""


def export_view(view, path: str | Path, width: int | None = None) -> Path:
    """Write a pyqtgraph view (GraphicsLayoutWidget / PlotWidget) as PNG or SVG, by the suffix of ``path``."""
    import pyqtgraph.exporters as pgx

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            ex = pgx.ImageExporter(view.scene())
            w = int(ex.parameters()["width"])
            ex.parameters()["width"] = max(width or 0, w, MIN_EXPORT_WIDTH)   # the height keeps the aspect
            ex.parameters()["antialias"] = True
            ex.export(str(path))
        elif suffix == ".svg":
            try:   # Qt's own SVG painter: pyqtgraph 0.14's SVGExporter fails on Qt >= 6.10 paths
                from workbench.gui.plot_export import write_svg
            except ImportError:
                pgx.SVGExporter(view.scene()).export(str(path))
            else:
                write_svg(view, path)
        else:
            raise ExportError(f"cannot export a plot to {path.name!r}: use a .png or .svg file")
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
    if not path.exists():
        raise ExportError(f"cannot write {path}: the exporter produced no file (is the folder writable?)")
    return path


def write_csv(path: str | Path, header: list[str], rows) -> Path:
    """Write ``rows`` (iterables of plain values) under ``header`` as CSV."""
    path = Path(path)
    try:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for r in rows:
                w.writerow(r)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
    return path


class Panel(QWidget):
    """Base of the live panels: a row of controls, the view, and an Export button.

    Subclasses fill ``self.controls`` (a QHBoxLayout) and ``self.body`` (a
    QVBoxLayout), and implement :meth:`export_view`, :meth:`csv_table`,
    :meth:`clear` and :meth:`has_data`.
    """

    title = "Panel"
    export_name = "panel"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.last_export_dir = ""
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.setSpacing(4)
        self.controls = QHBoxLayout()
        self.controls.setSpacing(6)
        outer.addLayout(self.controls)
        self.body = QVBoxLayout()
        self.body.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(self.body, 1)
        self.export_button = QToolButton(self)
        self.export_button.setText("Export")
        self.export_button.setToolTip(f"Export the {self.title.lower()} panel as PNG or SVG, or its data as CSV")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        from workbench.gui.style import icon
        self.export_button.setIcon(icon("export"))
        menu = QMenu(self.export_button)
        for suffix, label in ((".png", "Image (PNG)…"), (".svg", "Vector image (SVG)…"), (".csv", "Data (CSV)…")):
            act = QAction(label, menu)
            act.triggered.connect(lambda _=False, s=suffix: self.export_dialog(s))
            menu.addAction(act)
        self.export_button.setMenu(menu)

    def finish_controls(self):
        """Put the Export button at the right end of the control row."""
        self.controls.addStretch(1)
        self.controls.addWidget(self.export_button)

    # -- what subclasses provide ------------------------------------------------
    def export_view(self):
        """The pyqtgraph view to export as an image; None: grab the widget."""
        return None

    def csv_table(self) -> tuple[list[str], list]:
        raise NotImplementedError

    def clear(self):
        raise NotImplementedError

    def has_data(self) -> bool:
        raise NotImplementedError

    # -- export -----------------------------------------------------------------
    def export(self, path: str | Path) -> Path:
        """Export to ``path``: PNG/SVG image of the panel or CSV of its data, by suffix."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in EXPORT_FILTERS:
            raise ExportError(f"cannot export to {path.name!r}: use a .png, .svg or .csv file")
        if not path.parent.is_dir():
            raise ExportError(f"cannot write {path}: the folder {path.parent} does not exist")
        if suffix == ".csv":
            header, rows = self.csv_table()
            return write_csv(path, header, rows)
        view = self.export_view()
        if view is not None:
            return export_view(view, path)
        if suffix == ".svg":
            raise ExportError(f"the {self.title.lower()} panel has no vector form; export PNG or CSV")
        pix = self.grab()
        if not pix.save(str(path), "PNG"):
            raise ExportError(f"cannot write {path}")
        return path

    def export_dialog(self, suffix: str):
        start = str(Path(self.last_export_dir or Path.home()) / f"{self.export_name}{suffix}")
        fn, _ = QFileDialog.getSaveFileName(self, f"Export {self.title}", start, EXPORT_FILTERS[suffix])
        if not fn:
            return
        if not fn.lower().endswith(suffix):
            fn += suffix
        try:
            self.export(fn)
            self.last_export_dir = str(Path(fn).parent)
        except ExportError as e:
            QMessageBox.warning(self, "Export failed", str(e))

    # -- palette changes (light/dark) reach the plots ---------------------------------
    def changeEvent(self, ev):
        if ev.type() == QEvent.Type.PaletteChange:
            self.apply_palette()
        super().changeEvent(ev)

    def apply_palette(self):
        pass


def elastic(label: QLabel, min_width: int = 0) -> QLabel:
    """A status label whose text never widens its dock or the window: long text is cut at
    the panel's edge instead (a finished run's long status once pushed the window past the
    screen)."""
    label.setSizePolicy(QSizePolicy.Policy.Ignored, label.sizePolicy().verticalPolicy())
    label.setMinimumWidth(min_width)
    return label
