"""The :class:`Panel` base class of the live panels, and the helpers they share.

A panel is a row of controls, the view, and an Export button; it exports three ways, chosen
by the file suffix, through the window's one export stack (:mod:`workbench.gui.plot_export`):

- ``.png``: the plot scene laid out at the figure size chosen in the Export menu (publication
  default 6.5 x 4 in at 300 DPI), titled with the run's name and the panel's title;
- ``.svg``: the same figure as vector graphics (renders alike in Inkscape, rsvg and cairo);
- ``.csv``: the numbers behind the panel (every raw point, never the downsampled display copy).

Widgets without a plot scene (the log) export PNG with ``QWidget.grab()``.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QLayout, QMenu, QMessageBox,
                               QSizePolicy, QToolButton, QVBoxLayout, QWidget, QWidgetItem)

from workbench.gui.plot_export import ExportError, FigureSize, ask_figure_size, export_plot, figure_size, write_csv

EXPORT_FILTERS = {".png": "PNG image (*.png)", ".svg": "SVG vector image (*.svg)",
                  ".csv": "CSV table of the data (*.csv)"}

__all__ = ["EXPORT_FILTERS", "ExportError", "FlowLayout", "Panel", "ViewTools", "elastic", "wrapping"]


class FlowLayout(QLayout):
    """A row of controls that wraps onto the next line when the panel is narrow, instead of making
    the panel (and the window) at least as wide as all of them; the last widget added with
    ``right=True`` (the Export button) sits at the right end of the last line."""

    def __init__(self, parent=None, spacing: int = 6):
        super().__init__(parent)
        self._items: list = []
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    # QBoxLayout-like API, so panels fill it the same way
    def addWidget(self, w, stretch: int = 0, right: bool = False):   # noqa: N802 (Qt naming)
        self.addChildWidget(w)
        item = QWidgetItem(w)
        item.right = right
        self._items.append(item)
        self.invalidate()

    def insertWidget(self, index: int, w, stretch: int = 0):  # noqa: N802
        self.addChildWidget(w)
        item = QWidgetItem(w)
        item.right = False
        self._items.insert(max(0, min(index, len(self._items))) if index >= 0 else len(self._items), item)
        self.invalidate()

    def indexOf(self, w) -> int:  # noqa: N802
        return next((i for i, it in enumerate(self._items) if it.widget() is w), -1)

    def addStretch(self, stretch: int = 0):  # noqa: N802
        pass

    def addSpacing(self, size: int):  # noqa: N802
        pass

    def addItem(self, item):  # noqa: N802
        item.right = False
        self._items.append(item)

    def count(self):
        return len(self._items)

    def itemAt(self, i):  # noqa: N802
        return self._items[i] if 0 <= i < len(self._items) else None

    def takeAt(self, i):  # noqa: N802
        return self._items.pop(i) if 0 <= i < len(self._items) else None

    def expandingDirections(self):  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self):  # noqa: N802
        return True

    def heightForWidth(self, width):  # noqa: N802
        return self._place(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect):  # noqa: N802
        super().setGeometry(rect)
        self._place(rect, apply=True)

    def sizeHint(self):  # noqa: N802
        w = sum(it.sizeHint().width() + self.spacing() for it in self._items if not it.isEmpty())
        h = max((it.sizeHint().height() for it in self._items), default=0)
        return QSize(w, h)

    def minimumSize(self):  # noqa: N802
        s = QSize()
        for it in self._items:
            s = s.expandedTo(it.minimumSize())
        return s

    def _place(self, rect: QRect, apply: bool) -> int:
        x, y, line_h = rect.x(), rect.y(), 0
        sp = self.spacing()
        items = [it for it in self._items if not it.isEmpty()]
        rows: list[list] = [[]]
        for it in items:
            hint = it.sizeHint()
            if rows[-1] and x + hint.width() > rect.right() + 1:
                x, y, line_h = rect.x(), y + line_h + sp, 0
                rows.append([])
            rows[-1].append((it, QPoint(x, y), hint))
            x += hint.width() + sp
            line_h = max(line_h, hint.height())
        if apply:
            for row in rows:
                if not row:
                    continue
                h = max(hint.height() for _, _, hint in row)
                shift = 0
                last, pos, hint = row[-1]
                if getattr(last, "right", False):
                    shift = rect.right() + 1 - (pos.x() + hint.width())
                for it, pos, hint in row:
                    dx = shift if it is last else 0
                    it.setGeometry(QRect(QPoint(pos.x() + dx, pos.y() + (h - hint.height()) // 2), hint))
        return y + line_h - rect.y()


class Panel(QWidget):
    """Base of the live panels: a row of controls, the view, and an Export button.

    Subclasses fill ``self.controls`` (a QHBoxLayout) and ``self.body`` (a QVBoxLayout), and
    implement :meth:`export_view`, :meth:`csv_table`, :meth:`clear` and :meth:`has_data`."""

    title = "Panel"
    export_name = "panel"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.last_export_dir = ""
        self.run_name = ""              # the run or session shown: exported figures carry it
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.setSpacing(4)
        self.controls = FlowLayout()
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
        menu.addSeparator()
        menu.addAction("Figure size and resolution…", lambda: ask_figure_size(self))
        self.export_button.setMenu(menu)

    def finish_controls(self):
        """Put the Export button at the right end of the control row."""
        self.controls.addWidget(self.export_button, right=True)

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

    # -- observing a session model -----------------------------------------------
    def observe(self, model) -> None:
        """Show what ``model`` (a :class:`workbench.gui.session_model.SessionModel`) shows: cleared
        and renamed when it resets, and, for a panel that shows one evaluation, the evaluation it
        shows. The window feeds the model, never the panels."""
        model.reset.connect(lambda name: (self.set_run_name(name), self.clear()))
        model.evaluation_changed.connect(self.set_evaluation)

    def set_evaluation(self, ev) -> None:
        """Show one evaluation (an Evaluation event or a stored EvaluationRecord); panels that do
        not show evaluations ignore it."""

    # -- export -----------------------------------------------------------------
    def set_run_name(self, name: str):
        self.run_name = name or ""

    def export_title(self) -> str:
        """The title of an exported figure: the run's name and what the panel shows."""
        return f"{self.run_name} — {self.title}" if self.run_name else self.title

    def export(self, path: str | Path, size: FigureSize | None = None) -> Path:
        """Export to ``path``: PNG/SVG image of the panel (at ``size``, default: the size chosen
        last) or CSV of its data, by suffix."""
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
            return export_plot(view, path, size=size or figure_size(), title=self.export_title())
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


class ViewTools(QWidget):
    """Visible controls for what pyqtgraph hides in its right-click menu: fit the data, drag to zoom
    a box (or to pan), and a logarithmic y axis."""

    def __init__(self, plots, log_y: bool = True, parent=None):
        super().__init__(parent)
        self._plots = plots                     # a callable giving the current PlotItems
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.fit = QToolButton()
        self.fit.setText("Fit")
        self.fit.setToolTip("Zoom out to show all the data")
        self.fit.clicked.connect(self.fit_all)
        self.zoom = QToolButton()
        self.zoom.setText("Zoom box")
        self.zoom.setCheckable(True)
        self.zoom.setToolTip("On: drag a box to zoom into it. Off: drag to pan. The mouse wheel zooms "
                             "around the pointer either way.")
        self.zoom.toggled.connect(self._mouse_mode)
        lay.addWidget(self.fit)
        lay.addWidget(self.zoom)
        self.log_y = None
        if log_y:
            self.log_y = QCheckBox("Log y")
            self.log_y.setToolTip("Logarithmic y axis (loss and MSE; accuracy stays linear)")
            self.log_y.toggled.connect(lambda *_: self.apply())
            lay.addWidget(self.log_y)

    def plots(self) -> list[pg.PlotItem]:
        return list(self._plots())

    def fit_all(self):
        for p in self.plots():
            p.enableAutoRange()
            p.autoRange()

    def _mouse_mode(self, on: bool):
        for p in self.plots():
            p.getViewBox().setMouseMode(pg.ViewBox.RectMode if on else pg.ViewBox.PanMode)

    def apply(self, log_able=lambda p: True):
        """Apply the current choices to the plots (after they were rebuilt)."""
        self._mouse_mode(self.zoom.isChecked())
        if self.log_y is not None:
            for p in self.plots():
                p.setLogMode(x=False, y=self.log_y.isChecked() and self.log_able(p))

    def log_able(self, p) -> bool:
        return getattr(p, "_log_able", True)


def elastic(label: QLabel, min_width: int = 0) -> QLabel:
    """A status label whose text never widens its dock or the window: long text is cut at
    the panel's edge instead (a finished run's long status once pushed the window past the
    screen); the whole text stays in its tooltip."""
    label.setSizePolicy(QSizePolicy.Policy.Ignored, label.sizePolicy().verticalPolicy())
    label.setMinimumWidth(min_width)
    return label


def wrapping(label: QLabel) -> QLabel:
    """A status line that wraps onto more lines instead of being cut or widening the window."""
    label.setWordWrap(True)
    sp = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    sp.setHeightForWidth(True)
    label.setSizePolicy(sp)
    label.setMinimumWidth(0)
    return label
