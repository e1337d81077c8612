"""The adaptation view: what the meta-learned model does on one task, step by step.

Pick a task of the session shown (from the list, which holds the tasks of its newest
evaluation with their family and metric, or by clicking a point of the task-embedding
map), or draw a new one with a seed, and press Show. The numbers come from
:func:`workbench.analysis.adaptation.adaptation`, computed OFF the UI thread (a one-thread
QThreadPool; torch is imported there on first use, never at the window's start-up), on
the session's final model or, during a run, on its latest checkpoint.

- Regression: the support points, the query points, the task's true function and the
  prediction before adaptation (step 0) and after each inner step, beside the query and
  support MSE per step.
- Classification: the support images (one row per way), the query images framed green
  where the model is right and red where it is wrong (with the way it predicted), and the
  query accuracy after each step; for metric learners (no steps) the support, query and
  prototype features in 2-D (PCA) instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSpinBox

from workbench import format as F
from workbench.gui.panels.base import Panel, elastic, wrapping
from workbench.gui.plotstyle import CATEGORICAL, color_axes, palette_colors, plain_axes, style_legend, text_color

RIGHT, WRONG = (44, 160, 44), (214, 39, 40)
STEP_COLORMAP = "viridis"


class _Signals(QObject):
    done = Signal(int, object, str)        # generation, AdaptationResult or None, error sentence


class _Job(QRunnable):
    def __init__(self, generation: int, path: str, task, steps, stored=None):
        super().__init__()
        self.generation, self.path, self.task, self.steps, self.stored = generation, path, task, steps, stored
        self.signals = _Signals()
        self.cancelled = False
        self.setAutoDelete(True)

    def run(self):
        from workbench.gui.panels.embedding_map import _lower_this_threads_priority
        _lower_this_threads_priority()
        try:
            from workbench.analysis.adaptation import AdaptationError, adaptation
        except Exception as e:   # torch missing or broken: say so, never take the window down
            self.signals.done.emit(self.generation, None, f"the adaptation view needs the engine ({e})")
            return
        try:
            res = adaptation(self.path, self.task, steps=self.steps, cancel=lambda: self.cancelled,
                             stored_metric=self.stored)
            self.signals.done.emit(self.generation, res, "")
        except AdaptationError as e:
            self.signals.done.emit(self.generation, None, str(e))
        except Exception as e:  # an unexpected failure is one sentence, not a traceback in a dialog
            self.signals.done.emit(self.generation, None,
                                   f"the adaptation could not be computed ({type(e).__name__}: {e})")


def mosaic(images: np.ndarray, rows: int, cols: int, frames=None, pad: int = 2) -> np.ndarray:
    """(rows*cell, cols*cell, 3) uint8: ``images`` (n, C, H, W) in [0, 1] in a grid, row-major, each in
    a ``pad``-pixel frame of its colour in ``frames`` ((n, 3) or None: background grey). Grey images
    are shown with ink dark on white (the loaders store ink as 1.0)."""
    x = np.asarray(images, np.float64)
    n, c, h, w = x.shape
    rgb = np.repeat(1.0 - x, 3, axis=1) if c == 1 else x[:, :3]
    rgb = (np.clip(rgb, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    ch, cw = h + 2 * pad, w + 2 * pad
    out = np.full((rows * ch, cols * cw, 3), 200, np.uint8)
    for i in range(min(n, rows * cols)):
        r, k = divmod(i, cols)
        y0, x0 = r * ch, k * cw
        if frames is not None:
            out[y0:y0 + ch, x0:x0 + cw] = frames[i]
        out[y0 + pad:y0 + pad + h, x0 + pad:x0 + pad + w] = rgb[i]
    return out


class _View(pg.GraphicsLayoutWidget):
    """The plots; a modest size hint, so that in a scrolling tab the panel fits the window's height
    (the layout's height-for-width, which the wrapping caption turns on, adds up size hints)."""

    def sizeHint(self):  # noqa: N802 (Qt naming)
        return QSize(480, 260)


def _step_text(k: int) -> str:
    return "step 0 (unadapted)" if k == 0 else f"after {k} step{'s' if k != 1 else ''}"


class AdaptationPanel(Panel):
    title = "Adaptation"
    export_name = "adaptation"
    computed = Signal()            # a result is drawn (tests and screenshots wait on it)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.task_box = QComboBox()
        self.task_box.setMinimumContentsLength(26)
        self.task_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.task_box.setToolTip("A task of the session's newest evaluation (id · family · its metric), or click "
                                 "a point of the task-embedding map")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        self.seed.setValue(1)
        self.seed.setToolTip("Seed of a new test task: 'Draw' adapts to episode 0 of the meta-test split "
                             "under this seed (a task the evaluation may not have seen)")
        self.draw_button = QPushButton("Draw")
        self.draw_button.setToolTip("Draw a new meta-test task with this seed and show its adaptation")
        self.steps = QSpinBox()
        self.steps.setRange(0, 1000)
        self.steps.setToolTip("Inner steps to adapt with (default: the session's test inner steps)")
        self.steps_label = QLabel("Steps")
        self.shown_step = QComboBox()
        self.shown_step.setToolTip("Which step the query marks and the highlighted curve show")
        self.show_button = QPushButton("Show")
        self.show_button.setToolTip("Adapt the chosen task and show every step (computed in the background)")
        self.status = elastic(QLabel("Open a session or run an experiment, then pick a task"), 80)
        self.status.setProperty("role", "hint")
        for w in (QLabel("Task"), self.task_box, self.show_button, QLabel("or seed"), self.seed, self.draw_button):
            self.controls.addWidget(w)
        self.finish_controls()
        second = QHBoxLayout()
        second.setSpacing(6)
        self.marks_label = QLabel("Marks")
        for w in (self.steps_label, self.steps, self.marks_label, self.shown_step):
            second.addWidget(w)
        second.addWidget(self.status, 1)
        self.body.addLayout(second)

        self.view = _View()
        self.body.addWidget(self.view, 1)
        self.caption = wrapping(QLabel(""))
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        self.caption.setProperty("role", "hint")
        self.body.addWidget(self.caption)

        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._generation = 0
        self._job: _Job | None = None
        self.session_path: str | None = None
        self.result = None
        self.error = ""
        self._plots: list = []
        self._values: dict[str, float] = {}     # task id -> the session's metric for it
        self.follow = None                      # catches up with the window's session (see mount)
        self.show_button.clicked.connect(self.show_selected)
        self.draw_button.clicked.connect(self.draw_new)
        self.shown_step.currentIndexChanged.connect(lambda *_: self._draw())
        self._set_busy(False)

    # -- feeding ------------------------------------------------------------------------------
    def set_session(self, path, steps: int | None = None, reader=None):
        """Show tasks of the session at ``path`` (a finished or live file); ``steps``: the inner steps
        to offer (the session's test inner steps), None to read them from the file; ``reader``: an open
        SessionReader of that file to read through (the window's), instead of opening another."""
        self.session_path = str(path) if path else None
        self.task_box.clear()
        self._values = {}
        if not self.session_path:
            return
        if not Path(self.session_path).exists():
            self.status.setText("waiting for the run's first evaluation (or draw a task with a seed once it "
                                "has a checkpoint)")
            return
        try:
            if reader is not None:
                cfg = reader.config
                self._fill_tasks(reader)
            else:
                from workbench.store import SessionReader
                with SessionReader(self.session_path) as r:
                    cfg = r.config
                    self._fill_tasks(r)
        except Exception as e:   # a damaged or vanished file: one sentence
            self.status.setText(f"cannot read the session: {e}")
            return
        self.set_steps_default(cfg.learner.test_inner_steps if steps is None else steps,
                               has_steps=self._has_steps(cfg))
        self.status.setText("pick a task and press Show" if self.task_box.count() else
                            "no evaluation stored yet: draw a task with a seed")

    @staticmethod
    def _has_steps(cfg) -> bool:
        from workbench import registry
        try:
            spec = registry.learners.get(cfg.learner.name)
        except Exception:
            return True
        return bool(spec.inner_loop or "test_inner_steps" in spec.fields)

    def set_steps_default(self, k: int, has_steps: bool = True):
        self.steps.setValue(int(k))
        self.steps.setVisible(has_steps)
        self.steps_label.setVisible(has_steps)

    def _fill_tasks(self, reader):
        from workbench.analysis.adaptation import session_tasks
        ids, fams, values, where = session_tasks(reader)
        self.set_tasks(ids, fams, values, reader.metric_kind, where)

    def set_tasks(self, task_ids, families, values, metric: str, where: str = ""):
        """The tasks offered: id · family · metric, in the order given."""
        current = self.task_box.currentData()
        self.task_box.blockSignals(True)
        self.task_box.clear()
        self._values = {str(t): float(v) for t, v in zip(task_ids, values)}
        for tid, fam, v in zip(task_ids, families, values):
            self.task_box.addItem(f"{tid} · {fam} · {F.metric_value(metric, float(v), 1)}", tid)
        i = self.task_box.findData(current)
        self.task_box.setCurrentIndex(i if i >= 0 else 0)
        self.task_box.blockSignals(False)
        if where:
            self.task_box.setToolTip(f"Tasks of the {where} (id · family · {metric}); or click a point of the "
                                     f"task-embedding map")

    def pick_task(self, task_id: str):
        """Select ``task_id`` (a click on the map) and show it."""
        self.sync()
        i = self.task_box.findData(task_id)
        if i < 0:
            self.task_box.addItem(task_id, task_id)
            i = self.task_box.count() - 1
        self.task_box.setCurrentIndex(i)
        self.show_selected()

    # -- computing ----------------------------------------------------------------------------
    def sync(self):
        """Catch up with the session the window shows (set by :func:`mount`; a no-op on its own)."""
        if self.follow is not None:
            self.follow()

    def show_selected(self):
        tid = self.task_box.currentData()
        if not tid:
            self.status.setText("no task to show: pick one, or draw one with a seed")
            return
        self.compute(tid)

    def draw_new(self):
        from workbench.analysis.adaptation import TaskRef
        self.compute(TaskRef("test", int(self.seed.value()), 0))

    def compute(self, task):
        """Start computing ``task`` (a task id or TaskRef) off the UI thread; a newer request wins."""
        self.sync()
        if not self.session_path:
            self.status.setText("no session: open one, or run an experiment first")
            return
        if self._job is not None:
            self._job.cancelled = True
        self._generation += 1
        steps = None if self.steps.isHidden() else int(self.steps.value())
        job = _Job(self._generation, self.session_path, task, steps,
                   self._values.get(task if isinstance(task, str) else task.task_id))
        job.signals.done.connect(self._on_done)
        self._job = job
        self._set_busy(True)
        name = task if isinstance(task, str) else task.task_id
        self.status.setText(f"adapting to {name}…")
        self.pool.start(job)

    def _set_busy(self, busy: bool):
        self.show_button.setEnabled(not busy)
        self.draw_button.setEnabled(not busy)

    def _on_done(self, generation: int, res, error: str):
        if generation != self._generation:
            return
        self._job = None
        self._set_busy(False)
        if res is None:
            self.error = error
            self.status.setText(error)
            self.status.setToolTip(error)
            return
        self.error = ""
        self.result = res
        self.shown_step.blockSignals(True)
        self.shown_step.clear()
        for k in res.steps:
            self.shown_step.addItem(_step_text(int(k)) if res.has_steps else "no steps", int(k))
        self.shown_step.setCurrentIndex(len(res.steps) - 1)
        self.shown_step.setVisible(res.has_steps)
        self.marks_label.setVisible(res.has_steps)
        self.shown_step.blockSignals(False)
        self.status.setText(f"{res.task_id} ({res.family}) on the {res.model}")
        self.status.setToolTip(self.status.text())
        self._draw()
        self.computed.emit()

    def wait_idle(self, msecs: int = 30000) -> bool:
        return self.pool.waitForDone(msecs)

    # -- drawing ------------------------------------------------------------------------------
    def _shown_index(self) -> int:
        i = self.shown_step.currentIndex()
        return i if i >= 0 else (len(self.result.steps) - 1 if self.result is not None else 0)

    def _new_plot(self, row, col, title, **kw):
        p = self.view.addPlot(row=row, col=col, title=title, **kw)
        plain_axes(p)
        self._plots.append(p)
        return p

    def _draw(self):
        self.view.clear()
        self._plots = []
        res = self.result
        if res is None:
            self.caption.setText("")
            return
        if res.kind == "regression":
            self._draw_regression(res)
        else:
            self._draw_classification(res)
        self.caption.setText(self._caption(res))
        self.apply_palette()

    def _step_pens(self, res):
        from workbench.gui.style import is_dark
        cmap = pg.colormap.get(STEP_COLORMAP)
        n = len(res.steps)
        lo = 0.3 if is_dark() else 0.0          # viridis starts near black: lift it on a dark background
        return [cmap.map(lo + (0.95 - lo) * i / max(1, n - 1), mode="qcolor") for i in range(n)]

    def _draw_regression(self, res):
        shown = self._shown_index()
        p = self._new_plot(0, 0, f"Task {res.task_id} ({res.family})")
        p.setLabel("bottom", "x")
        p.setLabel("left", "y")
        leg = p.addLegend(offset=(6, 6), labelTextSize="8pt")
        fg = text_color(self)
        if res.grid_true is not None:
            p.plot(res.grid_x, res.grid_true, pen=pg.mkPen(fg, width=2, style=pg.QtCore.Qt.PenStyle.DashLine),
                   name="true function")
        pens = self._step_pens(res)
        for i, k in enumerate(res.steps):
            bold = i == shown or i == 0
            name = _step_text(int(k)) if bold else (f"steps {res.steps[1]}–{res.steps[-2]}" if i == 1 else None)
            p.plot(res.grid_x, res.grid_pred[i], pen=pg.mkPen(pens[i], width=3 if i == shown else 1.5 if bold else 1),
                   name=name)
        p.plot(res.query_x[:, 0], res.query_y[:, 0], pen=None, symbol="o", symbolSize=7, symbolBrush=None,
               symbolPen=pg.mkPen(fg, width=1.5), name=f"query ({len(res.query_y)})")
        p.plot(res.support_x[:, 0], res.support_y[:, 0], pen=None, symbol="o", symbolSize=9,
               symbolBrush=pg.mkBrush(WRONG), symbolPen=pg.mkPen(fg), name=f"support (K={len(res.support_y)})")
        leg.setColumnCount(2)
        lo = float(min(np.min(res.grid_pred), np.min(res.support_y), np.min(res.query_y),
                       np.min(res.grid_true) if res.grid_true is not None else np.inf))
        hi = float(max(np.max(res.grid_pred), np.max(res.support_y), np.max(res.query_y),
                       np.max(res.grid_true) if res.grid_true is not None else -np.inf))
        p.setYRange(lo, hi + 0.6 * (hi - lo), padding=0.03)       # room for the legend above the data
        self._draw_metric_per_step(res, row=0, col=1)
        self.view.ci.layout.setColumnStretchFactor(0, 3)
        self.view.ci.layout.setColumnStretchFactor(1, 2)

    def _draw_metric_per_step(self, res, row, col):
        acc = res.metric == "accuracy"
        p = self._new_plot(row, col, "Query accuracy per step" if acc else "MSE per step")
        p.setLabel("bottom", "inner steps")
        p.setLabel("left", "accuracy (%)" if acc else "MSE")
        p.addLegend(offset=(-6, -6) if acc else (-6, 6), labelTextSize="8pt")   # where the curve is not
        scale = 100.0 if acc else 1.0
        x = res.steps.astype(float)
        p.plot(x, res.query_metric * scale, pen=pg.mkPen(CATEGORICAL[0], width=2), symbol="o", symbolSize=7,
               symbolBrush=CATEGORICAL[0], name="query")
        if not acc:
            p.plot(x, res.support_loss, pen=pg.mkPen(CATEGORICAL[1], width=2), symbol="s", symbolSize=6,
                   symbolBrush=CATEGORICAL[1], name="support (minimised)")
        if np.isfinite(res.stored_metric):
            p.addItem(pg.InfiniteLine(pos=res.stored_metric * scale, angle=0,
                                      pen=pg.mkPen(CATEGORICAL[3], style=pg.QtCore.Qt.PenStyle.DotLine)))
        k = float(res.steps[self._shown_index()])
        p.addItem(pg.InfiniteLine(pos=k, angle=90, pen=pg.mkPen(text_color(self), width=1,
                                                                 style=pg.QtCore.Qt.PenStyle.DashLine)))
        if acc:
            p.setYRange(0, 100, padding=0.02)
        else:
            top = float(np.nanmax(np.concatenate([res.query_metric, res.support_loss])))
            p.setYRange(0, top * 1.35 if top > 0 else 1, padding=0)     # room for the legend
        p.setXRange(-0.3, max(1.0, x[-1]) + 0.3, padding=0)
        return p

    def _image_plot(self, row, col, title):
        p = self._new_plot(row, col, title)
        for ax in ("left", "bottom"):
            p.hideAxis(ax)
        p.invertY(True)
        p.setAspectLocked(True)
        p.setMouseEnabled(False, False)
        p.hideButtons()
        return p

    def _draw_classification(self, res):
        shown = self._shown_index()
        ways = len(res.class_names) or int(res.support_y.max()) + 1
        s_order = np.argsort(res.support_y, kind="stable")
        q_order = np.argsort(res.query_y, kind="stable")
        shots = len(res.support_y) // ways
        queries = len(res.query_y) // ways
        pred = res.query_pred[shown]
        right = pred == res.query_y
        frames = np.array([RIGHT if right[i] else WRONG for i in q_order], np.uint8)
        pad = 2
        _, _, h, w = res.support_x.shape
        cell = w + 2 * pad
        sp = self._image_plot(0, 0, f"Support ({shots} per way)")
        sp.addItem(pg.ImageItem(mosaic(res.support_x[s_order], ways, shots, pad=pad), axisOrder="row-major"))
        when = f" {_step_text(int(res.steps[shown]))}" if res.has_steps else ""
        qp = self._image_plot(0, 1, f"Query{when}: {F.metric_value('accuracy', float(res.query_metric[shown]), 1)} "
                                    f"right")
        qp.addItem(pg.ImageItem(mosaic(res.query_x[q_order], ways, queries, frames, pad=pad), axisOrder="row-major"))
        for plot in (sp, qp):
            for r in range(ways):       # the way numbers in the ways' colours (as in the features plot)
                t = pg.TextItem(html=f'<b style="color:{CATEGORICAL[r % len(CATEGORICAL)]}">{r + 1}</b>',
                                anchor=(1.0, 0.5))
                t.setPos(-2, r * (h + 2 * pad) + (h + 2 * pad) / 2)
                plot.addItem(t)
        for j, i in enumerate(q_order):
            if not right[i]:
                r, k = divmod(j, queries)
                t = pg.TextItem(html=f'<span style="color:#fff; font-size:7pt">{int(pred[i]) + 1}</span>',
                                fill=pg.mkBrush(WRONG), anchor=(1.0, 0.0))
                t.setPos((k + 1) * cell, r * (h + 2 * pad))
                qp.addItem(t)
        for plot, cols in ((sp, shots), (qp, queries)):
            plot.setRange(xRange=(-cell * 0.7, cols * cell), yRange=(0, ways * cell), padding=0.02)
        if res.prototypes_2d is not None:
            self._draw_embedding(res, row=0, col=2)
        else:
            self._draw_metric_per_step(res, row=0, col=2)
        lay = self.view.ci.layout
        lay.setColumnStretchFactor(0, max(1, shots))
        lay.setColumnStretchFactor(1, max(1, queries))
        lay.setColumnStretchFactor(2, max(3, int(0.45 * (shots + queries))))

    def _draw_embedding(self, res, row, col):
        ex = res.explained
        p = self._new_plot(row, col, "Features (PCA)")
        p.setLabel("bottom", f"PC 1 ({100 * ex[0]:.0f}% of variance)")
        p.setLabel("left", f"PC 2 ({100 * ex[1]:.0f}%)")
        p.setAspectLocked(False)
        fg = text_color(self)
        pred = res.query_pred[-1]
        for c in range(len(res.prototypes_2d)):
            col_c = CATEGORICAL[c % len(CATEGORICAL)]
            s = res.support_y == c
            q = res.query_y == c
            wrong = q & (pred != res.query_y)
            p.plot(res.query_2d[q, 0], res.query_2d[q, 1], pen=None, symbol="o", symbolSize=7,
                   symbolBrush=col_c, symbolPen=pg.mkPen(fg, width=0.5))
            if wrong.any():
                p.plot(res.query_2d[wrong, 0], res.query_2d[wrong, 1], pen=None, symbol="o", symbolSize=12,
                       symbolBrush=None, symbolPen=pg.mkPen(WRONG, width=2))
            p.plot(res.support_2d[s, 0], res.support_2d[s, 1], pen=None, symbol="s", symbolSize=6,
                   symbolBrush=None, symbolPen=pg.mkPen(col_c, width=1.5))
            p.plot(res.prototypes_2d[c:c + 1, 0], res.prototypes_2d[c:c + 1, 1], pen=None, symbol="star",
                   symbolSize=18, symbolBrush=col_c, symbolPen=pg.mkPen(fg, width=1.5))

    def _caption(self, res) -> str:
        setting = F.episode_setting(len(res.class_names), len(res.support_y) // max(1, len(res.class_names) or 1),
                                    res.kind == "regression")
        head = f"{res.learner}, {res.model}; task {res.task_id} ({res.family}, {setting}). "
        stored = ("" if not np.isfinite(res.stored_metric) else
                  f" The session's own evaluation recorded {F.metric_value(res.metric, res.stored_metric, 1)} "
                  f"for this task" + (" (dotted line)." if res.prototypes_2d is None else "."))
        if res.has_steps:
            lr = f"{res.inner_lr:g}"
            first, last = (F.metric_value(res.metric, float(v), 1) for v in (res.query_metric[0],
                                                                               res.query_metric[-1]))
            body = (f"Inner steps of learning rate {lr} on the support set, each count from the meta-learned "
                    f"weights: query {res.metric} {first} unadapted (step 0), {last} after {int(res.steps[-1])} "
                    f"steps.{stored}")
        else:
            how = f" ({res.how[0].lower()}{res.how[1:]})" if res.how else ""
            body = (f"No gradient steps{how}: query accuracy {F.metric_value(res.metric, res.final_metric, 1)}."
                    f"{stored} Features: circles are queries, squares the support, stars the class means of the "
                    f"support features (the prototypes Prototypical Networks classify by distance to).")
        if res.kind == "classification":
            body += (" Image rows are the true ways 1–" + str(len(res.class_names)) +
                     "; green frame: predicted right, red frame and number: the way predicted instead"
                     + ("; in the features, colours are the ways (as the row numbers) and red rings mark "
                        "misclassified queries." if res.prototypes_2d is not None else "."))
        else:
            body += " Curves go from dark (step 0) to light (last step); the thick one is the step chosen in Marks."
        notes = " ".join(n[0].upper() + n[1:] + "." for n in res.notes)
        return head + body + (" " + notes if notes else "")

    # -- Panel ----------------------------------------------------------------------------------
    def clear(self):
        self._generation += 1
        self.result = None
        self.session_path = None
        self.task_box.clear()
        self.shown_step.clear()
        self._draw()
        self.status.setText("Open a session or run an experiment, then pick a task")

    def has_data(self) -> bool:
        return self.result is not None

    def plot_count(self) -> int:
        return len(self._plots)

    def export_view(self):
        return self.view

    def csv_table(self):
        res = self.result
        if res is None:
            return ["step", "query_metric", "query_loss", "support_loss"], []
        rows = [(int(k), repr(float(m)), repr(float(lq)), repr(float(ls)))
                for k, m, lq, ls in zip(res.steps, res.query_metric, res.query_loss, res.support_loss)]
        return ["inner_steps", f"query_{res.metric}", "query_loss", "support_loss"], rows

    def apply_palette(self):
        # colours only: plain axes are set when a plot is made (pyqtgraph 0.14 rescales an axis whose
        # label is already shown when its SI prefix is switched off again)
        bg, fg = palette_colors(self.view)
        self.view.setBackground(bg)
        for p in self._plots:
            color_axes(p, fg)
            style_legend(p.legend, bg, fg)


# -- the window's side: one call mounts the panel ----------------------------------------------------
def mount(window) -> AdaptationPanel:
    """Add the Adaptation view to ``window`` as a tab of its centre (beside the curves), follow the
    session the window shows (opened, or being written by a run) and take clicks on the
    task-embedding map."""
    panel = AdaptationPanel()
    if hasattr(window, "add_view"):
        window.add_view(panel, "Adaptation")
        show = lambda: window.views.setCurrentWidget(panel)  # noqa: E731
    else:   # a window without a tabbed centre: a dock of its own
        from PySide6.QtWidgets import QDockWidget
        dock = QDockWidget("Adaptation", window)
        dock.setObjectName("adaptation_dock")
        dock.setWidget(panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        show = lambda: (dock.show(), dock.raise_())  # noqa: E731
    window.adaptation = panel

    state = {"path": None}
    model = getattr(window, "model", None)      # the window's SessionModel (gui/session_model.py)

    def follow():
        path = model.path if model is not None else getattr(window, "session_path", None)
        if path != state["path"]:
            state["path"] = path
            if not path:
                panel.clear()
                return
            reader = getattr(window, "reader", None)
            same = reader is not None and Path(getattr(reader, "path", "")) == Path(path)
            panel.set_session(path, reader=reader if same else None)

    panel.follow = follow
    if model is not None:
        model.session_changed.connect(lambda _path: follow())

        def on_evaluation(ev):
            if model.source == "run" and ev.task_ids:     # a live run's evaluations, as they arrive
                panel.set_tasks(ev.task_ids, ev.families, ev.per_task, ev.metric,
                                f"{'test' if ev.phase == 'test' else 'validation'} evaluation at step {ev.step}")
        model.evaluation_changed.connect(on_evaluation)
    else:   # a window without a model: catch up twice a second
        timer = QTimer(panel)
        timer.setInterval(500)
        timer.timeout.connect(follow)
        timer.start()
    _take_map_clicks(window, panel, show)
    return panel


def _take_map_clicks(window, panel, show):
    emb = getattr(window, "embedding", None)
    if emb is None or not hasattr(emb, "plot"):
        return

    def clicked(ev):
        xy = getattr(emb, "xy", None)
        shown = getattr(emb, "_shown_ev", None) or getattr(emb, "ev", None)
        if xy is None or shown is None or len(xy) != len(shown.task_ids):
            return
        vb = emb.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        pts = np.array([vb.mapViewToScene(pg.QtCore.QPointF(float(a), float(b))).toTuple() for a, b in xy])
        here = np.array(ev.scenePos().toTuple())
        d = np.hypot(*(pts - here).T)
        i = int(d.argmin())
        if d[i] <= 10:
            show()
            panel.pick_task(str(shown.task_ids[i]))

    emb.plot.scene().sigMouseClicked.connect(clicked)


__all__ = ["AdaptationPanel", "mosaic", "mount"]
