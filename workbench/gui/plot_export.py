"""The one export stack of the window: plots to PNG and SVG, tables to CSV.

- :class:`FigureSize` and :func:`export_plot`: a pyqtgraph plot (PlotWidget, PlotItem or
  GraphicsLayoutWidget) written at a size in inches and a resolution in DPI -- publication
  defaults, 6.5 x 4 in at 300 DPI -- with an optional title; the plot is laid out at that size
  for the file (text stays the size it has on screen) and given back its on-screen size after.
- :func:`svg_text` / :func:`write_svg`: Qt's own SVG painter, then every cosmetic ("non-scaling")
  stroke drawn inside a data-scaled group is rewritten in page coordinates (:func:`flatten_svg`), so
  the SVG renders the same in rsvg/Inkscape/cairo (they ignore ``vector-effect``: lines became
  blocks); the PNG is that SVG rasterised, so PNG and SVG always show the same figure.
- :func:`plot_png_bytes` renders a plot to PNG bytes (for the HTML report); :func:`write_csv`
  writes the data behind a plot or table.
- :class:`PlotPanel`: a titled plot with PNG / SVG / CSV buttons (also in its context menu);
  :class:`TablePanel`: a titled table with a CSV button.

Colours and axis styling live in :mod:`workbench.gui.plotstyle`.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401  (registers pg.exporters)
from PySide6.QtCore import QBuffer, QByteArray, QCoreApplication, QIODevice, QRectF, QSettings, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QMenu, QMessageBox,
                               QSizePolicy, QSpinBox, QTableWidget, QTableWidgetItem, QToolButton, QVBoxLayout,
                               QWidget)


CsvData = tuple[list[str], list[list]]
MIN_EXPORT_WIDTH = 1200     # a plot exported at its on-screen size is still at least this many pixels wide
SCREEN_DPI = 96.0           # Qt's logical dots per inch: a widget laid out at w px is w / 96 inches wide


class ExportError(ValueError):
    """An export that could not be written; the message names the file and the reason."""


@dataclass(frozen=True)
class FigureSize:
    """The size of an exported figure: inches and dots per inch (PNG pixels = inches x DPI)."""

    width_in: float = 6.5
    height_in: float = 4.0
    dpi: int = 300

    @property
    def pixels(self) -> tuple[int, int]:
        return int(round(self.width_in * self.dpi)), int(round(self.height_in * self.dpi))

    @property
    def layout_px(self) -> tuple[int, int]:
        """The size, in logical pixels, the plot is laid out at for the file."""
        return int(round(self.width_in * SCREEN_DPI)), int(round(self.height_in * SCREEN_DPI))


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


def figure_size() -> FigureSize:
    """The figure size chosen last (Export > Size and resolution...), or the publication default."""
    s, d = _settings(), FigureSize()
    try:
        return FigureSize(float(s.value("export/width_in", d.width_in)), float(s.value("export/height_in",
                          d.height_in)), int(s.value("export/dpi", d.dpi)))
    except (TypeError, ValueError):
        return d


def set_figure_size(size: FigureSize) -> None:
    s = _settings()
    s.setValue("export/width_in", size.width_in)
    s.setValue("export/height_in", size.height_in)
    s.setValue("export/dpi", size.dpi)


class FigureSizeDialog(QDialog):
    """Width and height (inches) and resolution (DPI) of exported figures."""

    def __init__(self, size: FigureSize, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Figure size and resolution")
        form = QFormLayout(self)
        self.width_in, self.height_in = QDoubleSpinBox(), QDoubleSpinBox()
        for box, v in ((self.width_in, size.width_in), (self.height_in, size.height_in)):
            box.setRange(1.0, 30.0)
            box.setDecimals(2)
            box.setSingleStep(0.25)
            box.setSuffix(" in")
            box.setValue(v)
        self.dpi = QSpinBox()
        self.dpi.setRange(50, 1200)
        self.dpi.setSingleStep(50)
        self.dpi.setSuffix(" DPI")
        self.dpi.setValue(size.dpi)
        form.addRow("Width", self.width_in)
        form.addRow("Height", self.height_in)
        form.addRow("Resolution", self.dpi)
        form.addRow(QLabel("<small>Journals ask for 3.5 in (one column) or 7 in (two columns) "
                           "at 300 DPI or more.</small>"))
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def size_chosen(self) -> FigureSize:
        return FigureSize(self.width_in.value(), self.height_in.value(), self.dpi.value())


def ask_figure_size(parent=None) -> bool:
    """Let the user set the figure size of exports; True when changed."""
    dlg = FigureSizeDialog(figure_size(), parent)
    if dlg.exec() == QDialog.DialogCode.Accepted:
        set_figure_size(dlg.size_chosen())
        return True
    return False


def _view_of(plot):
    """(the widget to lay out, the item or scene to export) of a plot."""
    if isinstance(plot, pg.PlotWidget):
        return plot, plot.getPlotItem()
    if isinstance(plot, pg.GraphicsView):
        return plot, plot.scene()
    views = plot.scene().views() if plot.scene() is not None else []
    return (views[0] if views else None), plot


def _first_plot(plot):
    if isinstance(plot, pg.PlotWidget):
        return plot.getPlotItem()
    if isinstance(plot, pg.GraphicsLayoutWidget):
        return next((it for it in plot.ci.items if isinstance(it, pg.PlotItem)), None)
    return plot if isinstance(plot, pg.PlotItem) else None


def clip_polyline(x, y, rect: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The parts of the polyline (x, y) inside ``rect`` = (x0, x1, y0, y1), as one polyline whose
    pieces are separated by NaN (draw with ``connect="finite"``): each segment cut where it leaves
    the rectangle (Liang-Barsky). A segment with a NaN end is a gap, as in the input."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x0, x1, y0, y1 = rect
    out_x, out_y = [], []
    joined = False                      # the last point written is the end of the previous segment
    for i in range(len(x) - 1):
        ax, ay, bx, by = x[i], y[i], x[i + 1], y[i + 1]
        if not (np.isfinite(ax) and np.isfinite(ay) and np.isfinite(bx) and np.isfinite(by)):
            joined = False
            continue
        dx, dy = bx - ax, by - ay
        t_in, t_out, visible = 0.0, 1.0, True
        for p_, q_ in ((-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)):
            if p_ == 0:
                if q_ < 0:
                    visible = False
                    break
                continue
            t = q_ / p_
            if p_ < 0:
                t_in = max(t_in, t)
            else:
                t_out = min(t_out, t)
            if t_in > t_out:
                visible = False
                break
        if not visible:
            joined = False
            continue
        if not (joined and t_in == 0.0):
            if out_x:
                out_x.append(np.nan)
                out_y.append(np.nan)
            out_x.append(ax + t_in * dx)
            out_y.append(ay + t_in * dy)
        out_x.append(ax + t_out * dx)
        out_y.append(ay + t_out * dy)
        joined = t_out == 1.0
    return np.asarray(out_x, np.float64), np.asarray(out_y, np.float64)


class _ClippedToView:
    """For the time of an export, what each view box shows is cut to its visible range.

    On screen a view box clips its items; Qt's SVG painter (SVG Tiny) writes no clip paths, so a
    zoomed plot's curves ran over the axes, the legend and the title in SVG and PNG files. Lines
    are cut where they leave the range, a CI band is held inside it, scatter points outside it are
    hidden; everything is given back afterwards."""

    def __init__(self, boxes):
        self.boxes = boxes
        self.undo: list[Callable[[], None]] = []

    @staticmethod
    def _rect(vb) -> tuple[float, float, float, float]:
        (x0, x1), (y0, y1) = vb.viewRange()
        return min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)

    def __enter__(self):
        for vb in self.boxes:
            rect = self._rect(vb)
            items = [it for top in vb.addedItems for it in [top, *top.childItems()]]
            banded = {id(c) for it in items if isinstance(it, pg.FillBetweenItem) for c in it.curves}
            for it in items:
                if isinstance(it, pg.PlotCurveItem) and it.xData is not None and len(it.xData) > 1:
                    self._curve(it, rect, band=id(it) in banded)
                elif isinstance(it, pg.ScatterPlotItem) and len(it.data):
                    self._scatter(it, rect)
        return self

    def _curve(self, curve, rect, band: bool):
        x, y = np.asarray(curve.xData, np.float64), np.asarray(curve.yData, np.float64)
        if len(x) != len(y) or curve.opts.get("stepMode"):   # a step curve (histogram): its own shape
            return
        x0, x1, y0, y1 = rect
        finite = np.isfinite(x) & np.isfinite(y)
        if finite.any() and x[finite].min() >= x0 and x[finite].max() <= x1 and \
                y[finite].min() >= y0 and y[finite].max() <= y1:
            return
        if band:        # a band's edge: held inside the range, so the fill between edges stays inside
            keep = (x >= x0) & (x <= x1)
            order = np.argsort(x[finite]) if finite.sum() > 1 else None
            xs = [x0] if order is not None and x[finite].min() < x0 else []
            xs += list(x[keep])
            xs += [x1] if order is not None and x[finite].max() > x1 else []
            xs = np.asarray(xs, np.float64)
            ys = np.interp(xs, x[finite][order], y[finite][order]) if order is not None else y[keep]
            cx, cy = xs, np.clip(ys, y0, y1)
        else:
            cx, cy = clip_polyline(x, y, rect)
        connect = curve.opts.get("connect", "all")
        self.undo.append(lambda c=curve, a=x, b=y, k=connect: c.setData(x=a, y=b, connect=k))
        curve.setData(x=cx, y=cy, connect="finite")

    def _scatter(self, scatter, rect):
        x0, x1, y0, y1 = rect
        d = scatter.data
        inside = (d["x"] >= x0) & (d["x"] <= x1) & (d["y"] >= y0) & (d["y"] <= y1)
        if inside.all():
            return
        visible = d["visible"].copy()
        self.undo.append(lambda s=scatter, v=visible: s.setPointsVisible(v))
        scatter.setPointsVisible(visible & inside)

    def __exit__(self, *exc):
        for fn in reversed(self.undo):
            fn()
        self.undo = []
        return False


class _LaidOut:
    """Lays a plot out at a figure's size (and gives its first plot a title) for the time of an export;
    what each view shows is cut to its visible range (:class:`_ClippedToView`)."""

    def __init__(self, plot, size: FigureSize | None, title: str | None):
        self.plot, self.size, self.title = plot, size, title
        self.widget, self.item = _view_of(plot)
        self.old = None
        self.titled = None

    def _view_boxes(self):
        scene = self.widget.scene() if self.widget is not None else None
        return [it for it in scene.items() if isinstance(it, pg.ViewBox)] if scene is not None else []

    def __enter__(self):
        w = self.widget
        # the views' ranges, given back after the file is written (a report once left the on-screen
        # compare scatter zoomed into a corner)
        boxes = self._view_boxes()
        for vb in boxes:
            vb.prepareForPaint()                # apply an auto-range still pending from new data
        self.ranges = [(vb, vb.viewRange(), list(vb.state["autoRange"])) for vb in boxes]
        if self.size is not None and w is not None:
            self.old = (w.size(), w.minimumSize(), w.maximumSize())
            w.setMinimumSize(0, 0)
            w.setMaximumSize(16_777_215, 16_777_215)
            w.resize(*self.size.layout_px)      # a visible widget gets its resize event at once
            if isinstance(w, pg.GraphicsLayoutWidget):
                w.ci.layout.activate()
        if self.title:
            p = _first_plot(self.plot)
            untitled = p is not None and (p.titleLabel.maximumHeight() == 0 or not (p.titleLabel.text or "").strip())
            if untitled:
                fg = p.getAxis("left").textPen().color().name()
                p.setTitle(self.title, color=fg, size="10pt")
                self.titled = p
        self._settle()
        self.clipped = _ClippedToView([vb for vb, _, _ in self.ranges]).__enter__()
        return self

    def _settle(self):
        """Lay out and paint once off the page: axes size themselves to their tick labels while
        painting, so a plot laid out anew only settles after a first paint (two exports in a row
        would otherwise differ by a few pixels)."""
        w = self.widget
        scene = w.scene() if w is not None else None
        for _ in range(2):
            for item in (scene.items() if scene is not None else []):
                if isinstance(item, (pg.PlotItem, pg.GraphicsLayout)):
                    item.layout.invalidate()
                    item.layout.activate()
            if isinstance(w, pg.GraphicsLayoutWidget):
                w.ci.layout.activate()
            for vb, _, _ in self.ranges:
                vb.prepareForPaint()
            if scene is not None:
                rect = scene.sceneRect()
                scratch = QImage(max(1, int(rect.width())), max(1, int(rect.height())), QImage.Format.Format_ARGB32)
                painter = QPainter(scratch)
                try:
                    scene.render(painter, QRectF(scratch.rect()), rect)
                finally:
                    painter.end()

    def __exit__(self, *exc):
        self.clipped.__exit__(*exc)
        if self.titled is not None:
            self.titled.setTitle(None)
        if self.old is not None:
            size, mn, mx = self.old
            self.widget.setMinimumSize(mn)
            self.widget.setMaximumSize(mx)
            self.widget.resize(size)
            if isinstance(self.widget, pg.GraphicsLayoutWidget):
                self.widget.ci.layout.activate()
        for vb, (xr, yr), auto in self.ranges:
            vb.setRange(xRange=xr, yRange=yr, padding=0)
            vb.enableAutoRange(x=auto[0], y=auto[1])
            vb.prepareForPaint()
        return False


def export_plot(plot, path, width: int | None = None, *, size: FigureSize | None = None,
                title: str | None = None) -> Path:
    """Write ``plot`` to ``path``; the suffix picks PNG or SVG.

    ``size``: lay the plot out at that figure size for the file (PNG: width_in x dpi pixels, the
    DPI recorded in the file); without it the plot is exported as laid out on screen, ``width``
    pixels wide (PNG, at least 1200). ``title``: a title above the (first) plot, in the file only.
    The PNG is the SVG rasterised (Qt's SVG renderer), so the two always show the same figure."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise ExportError(f"cannot export a plot to {path.name!r}: use a .png or .svg file")
    if not path.parent.is_dir():
        raise ExportError(f"cannot write {path}: the folder {path.parent} does not exist")
    with _LaidOut(plot, size, title):
        text, w, h = svg_text(plot, path.stem)
    try:
        if suffix == ".svg":
            path.write_text(text, encoding="utf-8")
        else:
            px_w = size.pixels[0] if size is not None else max(width or 0, MIN_EXPORT_WIDTH)
            image = rasterise_svg(text, w, h, px_w, size.dpi if size is not None else None)
            if not image.save(str(path), "PNG"):
                raise ExportError(f"cannot write {path}: the image could not be saved (is the folder writable?)")
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
    if not path.exists() or path.stat().st_size == 0:
        raise ExportError(f"cannot write {path}: the exporter produced no file (is the folder writable?)")
    return path


def rasterise_svg(text: str, w: int, h: int, px_w: int, dpi: int | None = None) -> QImage:
    """An SVG page of ``w`` x ``h`` units drawn ``px_w`` pixels wide (height by the aspect)."""
    from PySide6.QtSvg import QSvgRenderer
    px_h = max(1, int(round(px_w * h / max(1, w))))
    image = QImage(px_w, px_h, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.white)
    if dpi:
        image.setDotsPerMeterX(int(round(dpi / 0.0254)))
        image.setDotsPerMeterY(int(round(dpi / 0.0254)))
    renderer = QSvgRenderer(QByteArray(text.encode("utf-8")))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    try:
        renderer.render(painter, QRectF(0, 0, px_w, px_h))
    finally:
        painter.end()
    return image


def write_svg(plot, path) -> Path:
    """Write ``plot`` as SVG, as laid out now (see :func:`svg_text`)."""
    text, _, _ = svg_text(plot, Path(path).stem)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
    return Path(path)


def svg_text(plot, title: str = "plot") -> tuple[str, int, int]:
    """The plot as SVG text in page coordinates, and the page's width and height.

    pyqtgraph 0.14's ``SVGExporter`` fails on the closed paths ("... Z") that Qt >= 6.10 writes
    (pyqtgraph issue #3495), so the scene is painted onto a ``QSvgGenerator`` directly; its output
    is then flattened (:func:`flatten_svg`) so that every renderer draws it alike."""
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
        raise ExportError("the plot has not been laid out yet; show it before exporting")
    if background.style() == Qt.BrushStyle.NoBrush:
        background = QBrush(Qt.GlobalColor.white)
    w, h = int(math.ceil(source.width())), int(math.ceil(source.height()))
    gen = QSvgGenerator()
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    gen.setOutputDevice(buf)
    gen.setSize(QSize(w, h))
    gen.setViewBox(QRectF(0, 0, w, h))
    # pyqtgraph's axes replay QPictures recorded at the screen's 96 dpi: at the generator's default
    # 72 dpi they would be drawn at 3/4 size, off their grid
    gen.setResolution(int(SCREEN_DPI))
    gen.setTitle(title)
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
    return flatten_svg(bytes(buf.data()).decode("utf-8")), w, h


_NUM = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR = re.compile(rf"({_NUM}),({_NUM})")
_GROUP = re.compile(r'(<g\b[^>]*?\btransform="matrix\(([^)]*)\)"[^>]*>)(.*?)(</g>)', re.S)
_RECT = re.compile(rf'<rect\b([^>]*?)\bx="({_NUM})"\s+y="({_NUM})"\s+width="({_NUM})"\s+height="({_NUM})"([^>]*)/>')


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def flatten_svg(text: str) -> str:
    """Rewrite groups whose transform scales the page unevenly (a plot's data-to-pixel mapping) so
    that their paths, polylines and rectangles are in page coordinates and the group's transform is
    the identity. Qt writes cosmetic pens as ``vector-effect="non-scaling-stroke"`` under such a
    transform; renderers that ignore it (librsvg, cairosvg, ImageMagick) scale the stroke with the
    data -- a 1 px line became a block hundreds of pixels thick. Groups holding text or images keep
    their transform (scaling those is meant)."""

    def group(m: re.Match) -> str:
        head, matrix, body, tail = m.groups()
        try:
            a, b, c, d, e, f = (float(x) for x in matrix.split(","))
        except ValueError:
            return m.group(0)
        similar = math.isclose(abs(a * d - b * c), 1.0, rel_tol=1e-6) and math.isclose(a * a + b * b, 1.0,
                                                                                          rel_tol=1e-6)
        if similar or "<text" in body or "<image" in body:
            return m.group(0)

        def pt(x: float, y: float) -> tuple[float, float]:
            return a * x + c * y + e, b * x + d * y + f

        def pairs(s: str) -> str:
            return _PAIR.sub(lambda p: ",".join(map(_fmt, pt(float(p.group(1)), float(p.group(2))))), s)

        def rect(r: re.Match) -> str:
            pre, x, y, w, h, post = r.groups()
            x, y, w, h = map(float, (x, y, w, h))
            corners = [pt(x, y), pt(x + w, y), pt(x + w, y + h), pt(x, y + h)]
            d_ = "M" + " L".join(f"{_fmt(px)},{_fmt(py)}" for px, py in corners) + " Z"
            return f'<path{pre}d="{d_}"{post}/>'

        body = re.sub(r'(\sd=")([^"]*)(")', lambda p: p.group(1) + pairs(p.group(2)) + p.group(3), body)
        body = re.sub(r'(\spoints=")([^"]*)(")', lambda p: p.group(1) + pairs(p.group(2)) + p.group(3), body)
        body = _RECT.sub(rect, body)
        head = head.replace(f'matrix({matrix})', "matrix(1,0,0,1,0,0)")
        return head + body + tail

    # every coordinate is on the page now: strokes scale with the page, as text does, in every renderer
    return _GROUP.sub(group, text).replace(' vector-effect="non-scaling-stroke"', "")


def plot_png_bytes(plot, width: int = 900, *, size: FigureSize | None = None) -> bytes:
    """Render ``plot`` to PNG bytes (for embedding in a report); ``size`` lays it out at a figure size."""
    with _LaidOut(plot, size, None):
        text, w, h = svg_text(plot)
    image = rasterise_svg(text, w, h, size.pixels[0] if size is not None else width,
                          size.dpi if size is not None else None)
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    buf.close()
    return bytes(data.data())


def write_csv(path, headers: list[str], rows) -> Path:
    """Write a table (header row, then ``rows`` of plain values) as UTF-8 CSV."""
    path = Path(path)
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(headers)
            w.writerows(rows)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
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
    except (OSError, ValueError, ExportError) as e:
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
        m.addSeparator()
        m.addAction("Figure size and resolution…", lambda: ask_figure_size(self))
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

    def export_title(self) -> str:
        """The title an exported figure carries (the plot's own title, or the panel's)."""
        return self.title

    def export(self, path, size: FigureSize | None = None) -> Path:
        """PNG / SVG of the plot (at ``size``, default: the size chosen last), or CSV of its data, by
        the suffix of ``path``."""
        if Path(path).suffix.lower() == ".csv":
            headers, rows = self.csv_data()
            return write_csv(path, headers, rows)
        return export_plot(self.plot, path, size=size or figure_size(), title=self.export_title())

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
