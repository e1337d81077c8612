"""The compare view: two or more sessions side by side.

Every session keeps one colour (:func:`workbench.gui.plotstyle.session_color`)
in every plot, table and legend of the view. Shown:

- curves overlaid (any recorded metric, by step or wall time, raw or
  EMA-smoothed), in two panels (training loss and the validation metric by
  default);
- the final test metric of each session with its 95% CI, and a table of only
  the config fields that differ (:func:`workbench.config.diff`);
- for sessions evaluated on the same seeded test episodes, a paired per-task
  comparison: the mean difference A - B with its 95% CI and the p-values of a
  paired t-test and a Wilcoxon signed-rank test
  (:func:`workbench.analysis.stats.paired`), with a scatter of per-task
  results, A against B, around the diagonal; pairs that cannot be compared say
  why;
- the task-embedding map of each final test side by side, coloured by task
  family: the stored 2-D projection (t-SNE, computed when the session closed),
  else a PCA computed on a worker thread.

The numbers come from :mod:`workbench.analysis.compare` (no Qt); this module
only draws them. Each plot exports to PNG, SVG and CSV, each table to CSV, and
the whole view to a one-page HTML report (:mod:`workbench.gui.report`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QMessageBox, QPushButton,
                               QScrollArea, QSizePolicy, QSplitter, QVBoxLayout, QWidget)

from workbench import format as F
from workbench.analysis import compare as AC
from workbench.analysis.projection import project
from workbench.analysis.smoothing import downsample_minmax, ema
from workbench.gui.plot_export import PlotPanel, TablePanel, last_dir, remember_dir
from workbench.gui.report import paired_summary_html, write_view_report
from workbench.gui.plotstyle import (family_color, legend_brush, metric_scale, metric_title, session_color,
                                     style_plot, text_color)

SMOOTH_WEIGHT = 0.8
METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}
MAX_FAMILIES = 12           # more families than this share a grey "other" colour in embedding maps


class LegendStrip(QWidget):
    """A row of colour chips naming the compared sessions."""

    def __init__(self, sessions: list[AC.SessionData], parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        self.labels = []
        for i, s in enumerate(sessions):
            c = session_color(i).name()
            chip = QLabel()
            chip.setFixedSize(14, 14)
            chip.setStyleSheet(f"background: {c}; border-radius: 3px;")
            text = QLabel(f"<b>{F.html_text(s.label)}</b>"
                          + ("" if s.ok else " <span style='color:#d62728'>(cannot be read)</span>"))
            text.setToolTip(s.path if s.ok else s.problem)
            lay.addWidget(chip)
            lay.addWidget(text)
            lay.addSpacing(14)
            self.labels.append(text)
        lay.addStretch(1)


class CompareCurvesPanel(PlotPanel):
    """One metric of every session, overlaid; choice of metric, x axis and smoothing."""

    def __init__(self, sessions: list[AC.SessionData], metric: str, parent=None):
        super().__init__("Curves", parent=parent)
        self.sessions = sessions
        self.csv_data = self._csv
        style_plot(self.plot, self)
        self.metric_box = QComboBox()
        names = AC.curve_names(sessions)
        for n in names:
            self.metric_box.addItem(metric_title(n), n)
        if metric in names:
            self.metric_box.setCurrentIndex(names.index(metric))
        self.x_box = QComboBox()
        self.x_box.addItem("by step", "step")
        self.x_box.addItem("by wall time", "wall")
        self.smooth = QCheckBox("EMA smoothing")
        self.smooth.setToolTip(f"Exponential moving average, weight {SMOOTH_WEIGHT} (debiased, as TensorBoard); "
                               "the raw curve stays visible, faint")
        for w in (self.metric_box, self.x_box, self.smooth):
            self.header.insertWidget(self.header.count() - 1, w)
        self.metric_box.currentIndexChanged.connect(self.redraw)
        self.x_box.currentIndexChanged.connect(self.redraw)
        self.smooth.toggled.connect(self.redraw)
        self.legend = self.plot.getPlotItem().addLegend(offset=(-10, 10), labelTextColor=text_color(self),
                                                        brush=legend_brush(self))
        self.redraw()

    @property
    def metric(self) -> str:
        return self.metric_box.currentData() or ""

    def _xy(self, s: AC.SessionData):
        steps, wall, values = s.curves[self.metric]
        x = np.asarray(wall if self.x_box.currentData() == "wall" else steps, dtype=np.float64)
        return x, np.asarray(values, dtype=np.float64)

    def redraw(self, *_):
        pi = self.plot.getPlotItem()
        pi.clear()
        self.legend.clear()
        name = self.metric
        self.title_label.setText(f"<b>{F.html_text(self.plot_title())}</b>")
        quantity = name.partition("/")[2] or name
        k = metric_scale(quantity)
        pi.setLabel("bottom", "wall time (s)" if self.x_box.currentData() == "wall" else "meta-step", units=None)
        pi.setLabel("left", quantity + (" (%)" if k == 100 else ""), units=None)
        for i, s in enumerate(self.sessions):
            if name not in s.curves:
                continue
            x, y = self._xy(s)
            y = y * k
            if len(x) == 0:
                continue
            c = session_color(i)
            sym = "o" if len(x) <= 40 else None
            if self.smooth.isChecked() and len(y) > 2:
                faint = pg.mkColor(c)
                faint.setAlpha(70)
                pi.plot(*downsample_minmax(x, y), pen=pg.mkPen(faint, width=1))
                pi.plot(*downsample_minmax(x, ema(y, SMOOTH_WEIGHT)), pen=pg.mkPen(c, width=2.5), name=s.label)
            else:
                xd, yd = downsample_minmax(x, y)
                pi.plot(xd, yd, pen=pg.mkPen(c, width=2), symbol=sym, symbolSize=6, symbolBrush=c,
                        symbolPen=None, name=s.label)

    def plot_title(self) -> str:
        return metric_title(self.metric) if self.metric else "Curves"

    def export_title(self) -> str:
        return self.plot_title()

    def _csv(self):
        rows = []
        for s in self.sessions:
            if self.metric in s.curves:
                steps, wall, values = s.curves[self.metric]
                rows += [[s.label, self.metric, int(a), float(b), float(c)] for a, b, c in zip(steps, wall, values)]
        return ["session", "metric", "step", "wall_time", "value"], rows


class PairedPanel(QWidget):
    """Per-task results of session A against session B on the same test episodes."""

    def __init__(self, comparison: AC.Comparison, parent=None):
        super().__init__(parent)
        self.comparison = comparison
        self.pairing: AC.Pairing | None = None
        labels = comparison.labels
        self.a_box, self.b_box = QComboBox(), QComboBox()
        for box in (self.a_box, self.b_box):
            for i, lab in enumerate(labels):
                box.addItem(lab, i)
                box.setItemData(i, session_color(i), Qt.ItemDataRole.DecorationRole)
                box.setItemData(i, lab, Qt.ItemDataRole.ToolTipRole)
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(min(24, max(len(lab) for lab in labels)))
            box.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.b_box.setCurrentIndex(min(1, len(labels) - 1))
        self.panel = PlotPanel("Per-task results, A against B", self._csv)
        style_plot(self.panel.plot, self)
        self.panel.plot.getPlotItem().setAspectLocked(True)
        self.scatter = pg.ScatterPlotItem(size=8, hoverable=True,
                                          tip=lambda x, y, data: f"{data}\nA {x:.3g}   B {y:.3g}")
        self.diagonal = pg.PlotCurveItem(pen=pg.mkPen("#888888", width=1, style=Qt.PenStyle.DashLine))
        self.message = pg.TextItem("", color="#d62728", anchor=(0.5, 0.5))
        pi = self.panel.plot.getPlotItem()
        for it in (self.diagonal, self.scatter, self.message):
            pi.addItem(it)
        self.stats_label = QLabel()
        self.stats_label.setWordWrap(True)
        self.stats_label.setTextFormat(Qt.TextFormat.RichText)
        self.stats_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stats_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        pick = QFormLayout()
        pick.setContentsMargins(4, 0, 4, 0)
        pick.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        pick.addRow("A (x axis):", self.a_box)
        pick.addRow("B (y axis):", self.b_box)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(pick)
        lay.addWidget(self.panel, 1)
        lay.addWidget(self.stats_label)
        self.a_box.currentIndexChanged.connect(self.redraw)
        self.b_box.currentIndexChanged.connect(self.redraw)
        self.redraw()

    def redraw(self, *_):
        i, j = self.a_box.currentData(), self.b_box.currentData()
        cmp = self.comparison
        pr = cmp.pairing(i, j)
        self.pairing = pr
        pi = self.panel.plot.getPlotItem()
        a, b = cmp.sessions[i], cmp.sessions[j]
        metric = a.metric or "result"
        k = metric_scale(metric)
        unit = " (%)" if k == 100 else ""
        pi.setLabel("bottom", F.html_text(f"A: {_short(a.label, 22)}, {metric}{unit}"), units=None,
                    color=session_color(i).name())
        pi.setLabel("left", F.html_text(f"B: {_short(b.label, 18)}, {metric}{unit}"), units=None,
                    color=session_color(j).name())
        if not pr.ok:
            self.scatter.setData([], [])
            self.diagonal.setData([0, 1], [0, 1])
            self.message.setText("Not paired (see below)")
            self.message.setPos(0.5, 0.5)
            pi.setXRange(0, 1)
            pi.setYRange(0, 1)
            self.stats_label.setText(f"<b>Not paired.</b> {F.html_text(pr.reason)}")
            return
        self.message.setText("")
        va, vb = pr.values_a * k, pr.values_b * k
        lo = float(min(va.min(), vb.min()))
        hi = float(max(va.max(), vb.max()))
        pad = 0.03 * (hi - lo or 1.0)
        self.diagonal.setData([lo - pad, hi + pad], [lo - pad, hi + pad])
        higher_better = metric == "accuracy"
        ca, cb, grey = session_color(i), session_color(j), pg.mkColor("#888888")
        brushes = []
        for x, y in zip(va, vb):
            if x == y:
                col = grey
            else:
                col = ca if (x > y) == higher_better else cb
            col = pg.mkColor(col)
            col.setAlpha(150)
            brushes.append(pg.mkBrush(col))
        self.scatter.setData(va, vb, brush=brushes, pen=None, data=list(pr.task_ids))
        pi.setXRange(lo - pad, hi + pad, padding=0)
        pi.setYRange(lo - pad, hi + pad, padding=0)
        self.stats_label.setText(paired_summary_html(metric, pr.stats, ca.name(), cb.name()))

    def _csv(self):
        pr = self.pairing
        if pr is None or not pr.ok:
            return ["task_id", "a", "b", "a_minus_b"], []
        return (["task_id", "a", "b", "a_minus_b"],
                [[t, float(x), float(y), float(x - y)] for t, x, y in zip(pr.task_ids, pr.values_a, pr.values_b)])


def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[:n - 1] + "…"


class _ProjectionSignals(QObject):
    done = Signal(int, object, str)       # session index, (n, 2) array or None, error message


class _ProjectionJob(QRunnable):
    """PCA of one session's final-test embeddings, on the thread pool (never the UI thread)."""

    def __init__(self, index: int, embeddings: np.ndarray):
        super().__init__()
        self.index, self.embeddings = index, embeddings
        self.signals = _ProjectionSignals()

    def run(self):
        try:
            self.signals.done.emit(self.index, project(self.embeddings, "pca"), "")
        except Exception as e:  # reported in the panel, never raised into Qt's thread pool
            self.signals.done.emit(self.index, None, f"projection failed: {e}")


class EmbeddingPanel(PlotPanel):
    """The task-embedding map of one session's final test, points coloured by task family."""

    def __init__(self, index: int, session: AC.SessionData, family_colors: dict, parent=None):
        super().__init__(f"{session.label}: task embeddings", parent=parent)
        self.index, self.session, self.family_colors = index, session, family_colors
        self.csv_data = self._csv
        self.xy: np.ndarray | None = None
        self.method = ""
        style_plot(self.plot, self)
        self.title_label.setText(f"<span style='color:{session_color(index).name()}'>■</span> "
                                 f"<b>{F.html_text(session.label)}</b>")
        pi = self.plot.getPlotItem()
        pi.hideAxis("left")
        pi.hideAxis("bottom")
        pi.showGrid(x=False, y=False)
        self.legend = pi.addLegend(offset=(5, 5), labelTextSize="8pt", labelTextColor=text_color(self),
                                   brush=legend_brush(self))
        self.message = pg.TextItem("", color="#888888", anchor=(0.5, 0.5))
        f = session.final
        if f is not None and getattr(f, "projection", None) is not None and len(f.projection):
            self.set_projection(np.asarray(f.projection), f.projection_method)
        elif f is None or getattr(f, "embeddings", None) is None or not len(f.embeddings):
            self.show_message("no final test" if f is None else "no task embeddings recorded")
        else:
            self.show_message("computing PCA…")

    def needs_projection(self) -> bool:
        f = self.session.final
        return self.xy is None and f is not None and f.embeddings is not None and len(f.embeddings) > 0

    def show_message(self, text: str):
        pi = self.plot.getPlotItem()
        pi.clear()
        pi.addItem(self.message)
        self.message.setText(text)
        self.message.setPos(0, 0)

    def set_projection(self, xy: np.ndarray, method: str):
        self.xy, self.method = np.asarray(xy, dtype=np.float64), method
        f = self.session.final
        pi = self.plot.getPlotItem()
        pi.clear()
        self.legend.clear()
        pi.setTitle(f"{METHOD_NAMES.get(method, method)} of {len(self.xy)} test tasks", size="9pt")
        fams = np.asarray(list(f.families)) if len(f.families) == len(self.xy) else np.asarray(["?"] * len(self.xy))
        metric = self.session.metric
        for fam in sorted(set(fams.tolist()), key=lambda v: (v not in self.family_colors, str(v))):
            m = fams == fam
            col = self.family_colors.get(fam, pg.mkColor("#aaaaaa"))
            data = [f"{t}  ({fam})  {metric} {F.metric_value(metric, float(v))}" for t, v in
                    zip(np.asarray(list(f.task_ids))[m], np.asarray(f.per_task)[m])]
            pi.addItem(pg.ScatterPlotItem(self.xy[m, 0], self.xy[m, 1], size=7, pen=None, brush=pg.mkBrush(col),
                                          name=str(fam), hoverable=True, data=data,
                                          tip=lambda x, y, data: data))

    def _csv(self):
        f = self.session.final
        if self.xy is None or f is None:
            return ["task_id", "family", "x", "y", "result"], []
        return (["task_id", "family", "x", "y", "result"],
                [[t, fam, float(x), float(y), float(v)] for t, fam, (x, y), v in
                 zip(f.task_ids, f.families, self.xy, f.per_task)])


class CompareView(QWidget):
    """Two or more sessions side by side: curves, config differences, final metrics, paired test, maps."""

    def __init__(self, paths: list, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Compare sessions")
        self.paths = [str(p) for p in paths]
        self.comparison = AC.compare(self.paths)
        sessions = self.comparison.sessions
        self.colors = {s.label: session_color(i) for i, s in enumerate(sessions)}
        self._jobs: list[_ProjectionJob] = []

        self.legend = LegendStrip(sessions)
        self.report_button = QPushButton("Report…")
        self.report_button.setToolTip("Write this comparison as a one-page HTML report")
        self.report_button.clicked.connect(self.ask_report)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.legend, 1)
        head.addWidget(self.report_button)

        names = AC.curve_names(sessions)
        val = [n for n in names if n.startswith("val/") and not n.endswith("/loss")]
        self.curves = [CompareCurvesPanel(sessions, "train/loss"),
                       CompareCurvesPanel(sessions, val[0] if val else (names[1] if len(names) > 1 else ""))]
        self.paired = PairedPanel(self.comparison)

        self.metrics_table = TablePanel("Final test metric (mean ± 95% CI)")
        self.config_table = TablePanel("Config fields that differ")
        self.paired_table = TablePanel("Paired per-task comparison (same seeded test episodes)")
        self.recipe_table = TablePanel("Reported vs reproduced (papers' recipes)")
        self._fill_tables()

        families: list[str] = []
        for s in sessions:
            if s.final is not None:
                for fam in s.final.families:
                    if fam not in families:
                        families.append(fam)
        fam_colors = {fam: family_color(k) for k, fam in enumerate(families[:MAX_FAMILIES])}
        self.embeddings = [EmbeddingPanel(i, s, fam_colors) for i, s in enumerate(sessions)]
        maps = QWidget()
        maps_lay = QHBoxLayout(maps)
        maps_lay.setContentsMargins(0, 0, 0, 0)
        for p in self.embeddings:
            p.setMinimumWidth(220)
            maps_lay.addWidget(p)
        maps_scroll = QScrollArea()
        maps_scroll.setWidgetResizable(True)
        maps_scroll.setWidget(maps)
        maps_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        maps_box = QWidget()
        maps_lay2 = QVBoxLayout(maps_box)
        maps_lay2.setContentsMargins(0, 0, 0, 0)
        maps_note = QLabel("<b>Task embeddings of the final test</b>, coloured by task family "
                           "(hover a point for its task, family and result)")
        maps_note.setWordWrap(True)
        maps_note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        maps_lay2.addWidget(maps_note)
        maps_lay2.addWidget(maps_scroll, 1)

        top = QSplitter(Qt.Orientation.Horizontal)
        for w in (*self.curves, self.paired):
            top.addWidget(w)
        tables = QSplitter(Qt.Orientation.Vertical)
        for w in (self.metrics_table, self.config_table, self.paired_table, self.recipe_table):
            tables.addWidget(w)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(tables)
        bottom.addWidget(maps_box)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(bottom)
        main.setStretchFactor(0, 1)
        main.setStretchFactor(1, 1)
        top.setSizes([400, 400, 400])
        bottom.setSizes([700, 560])
        lay = QVBoxLayout(self)
        lay.addLayout(head)
        lay.addWidget(main, 1)
        self._start_projections()

    # -- tables --------------------------------------------------------------
    def _fill_tables(self):
        cmp = self.comparison
        h, rows = AC.metrics_table(cmp.sessions)
        self.metrics_table.set_table(h, rows, self.colors)
        h, rows = AC.config_table(cmp.sessions)
        self.config_table.set_table(h, rows, self.colors, empty_note="The configs are identical.")
        h, rows = AC.paired_table(cmp.sessions, cmp.pairings)
        spans = {k: (2, f"Not paired: {p.reason}") for k, p in enumerate(cmp.pairings) if not p.ok}
        self.paired_table.set_table(h, rows, self.colors, spans=spans)
        from workbench.analysis.reported import compare_rows     # the recipes' reported figures
        self.recipe_table.set_table(*compare_rows(cmp.sessions), self.colors)

    # -- embedding maps off the UI thread --------------------------------------
    def _start_projections(self):
        pool = QThreadPool.globalInstance()
        for p in self.embeddings:
            if p.needs_projection():
                job = _ProjectionJob(p.index, np.asarray(p.session.final.embeddings))
                job.setAutoDelete(False)
                job.signals.done.connect(self._projection_done)
                self._jobs.append(job)
                pool.start(job)

    def _projection_done(self, index: int, xy, error: str):
        panel = self.embeddings[index]
        if xy is None:
            panel.show_message(error)
        elif panel.xy is None:
            panel.set_projection(xy, "pca")

    def projections_pending(self) -> bool:
        return any(p.needs_projection() for p in self.embeddings)

    def finish_projections(self) -> None:
        """Compute any projection still missing right here (for reports written without waiting)."""
        for p in self.embeddings:
            if p.needs_projection():
                p.set_projection(project(np.asarray(p.session.final.embeddings), "pca"), "pca")

    # -- report ------------------------------------------------------------------
    def write_report(self, path) -> Path:
        return write_view_report(self, path)

    def ask_report(self):
        out, _ = QFileDialog.getSaveFileName(self, "Write comparison report",
                                             str(Path(last_dir()) / "comparison-report.html"),
                                             "HTML report (*.html)")
        if not out:
            return
        remember_dir(out)
        try:
            self.write_report(out)
        except (OSError, ValueError) as e:
            QMessageBox.warning(self, "Report", f"The report could not be written: {e}")
            return
        QMessageBox.information(self, "Report", f"The report was written to:\n{out}")


def write_comparison_report(paths, out) -> Path:
    """Build a compare view off-screen and write its report."""
    view = CompareView(list(paths))
    try:
        view.resize(1400, 900)
        return write_view_report(view, out)
    finally:
        view.deleteLater()
