"""The workbench window: the experiment form, Run/Stop, and the live panels.

Layout: the experiment form docks on the left (the sessions browser tabs
beside it), the centre is a tab widget whose first tab is the curves (other
views add a tab with :meth:`MainWindow.add_view`), the task-embedding map and
the per-task results dock on the right and the log at the bottom. Every dock
can be moved, floated or closed (View menu), and the layout is kept in
QSettings with the window geometry, the last folders and the recent sessions.
Every part can shrink (scroll areas, wrapping control rows, splitters), so the
window is usable at 1280x720 and every control reachable at 1024x768.

The window feeds one :class:`~workbench.gui.session_model.SessionModel`, and
the panels, the log and the status bar observe it: during a run the model gets
batches of engine events from :class:`~workbench.gui.worker.RunWorker`; for a
saved session the rows of a :class:`workbench.store.SessionReader`, and for a
session another process is still writing (``workbench run`` in a terminal) the
window polls ``reader.refresh()`` once a second and the model reads the rows
again, so the panels grow live. No panel is fed by the window directly.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QLabel,
                               QMainWindow, QMessageBox, QProgressBar, QScrollArea, QTabWidget, QTextBrowser,
                               QVBoxLayout, QWidget)

from workbench import config as C
from workbench import format as F
from workbench import registry
from workbench.gui import style
from workbench.gui.form import ExperimentForm, guard_wheel
from workbench.gui.panels import CurvesPanel, EmbeddingMapPanel, LogPanel, PerTaskPanel
from workbench.gui.panels.base import elastic
from workbench.gui.session_model import SessionModel, summary_text
from workbench.gui.sessions import SessionsBrowser
from workbench.gui.worker import RunWorker, warm_up
from workbench.train import events as E

MAX_RECENT = 10
SESSION_POLL_MS = 1000
APP_TITLE = "Meta-Learning Workbench"
DOCS_URL = "https://github.com/meta-learning-workbench/workbench/tree/main/docs"


class ViewTabs(QTabWidget):
    """The centre's tabs. A view added with :meth:`add_scrolled` sits in a scroll area, so a view
    wider or taller than the window scrolls instead of widening the window; ``indexOf``,
    ``widget`` and ``setCurrentWidget`` speak of the views themselves, not their scroll areas."""

    def add_scrolled(self, widget: QWidget, title: str) -> int:
        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setFrameShape(QScrollArea.Shape.NoFrame)
        area.setWidget(widget)
        area.setObjectName(f"{title}_scroll")
        return self.addTab(area, title)

    def widget(self, index: int):
        w = super().widget(index)
        return w.widget() if isinstance(w, QScrollArea) and w.objectName().endswith("_scroll") else w

    def indexOf(self, widget) -> int:  # noqa: N802 (Qt naming)
        for i in range(self.count()):
            if self.widget(i) is widget or super().widget(i) is widget:
                return i
        return -1

    def setCurrentWidget(self, widget) -> None:  # noqa: N802
        i = self.indexOf(widget)
        if i >= 0:
            self.setCurrentIndex(i)

    def currentWidget(self):  # noqa: N802
        return self.widget(self.currentIndex())


class MainWindow(QMainWindow):
    """The workbench's main window."""

    run_finished = Signal(object)      # the terminal event of a run started here (or None)

    def __init__(self, cfg: C.ExperimentConfig | None = None, settings: QSettings | None = None, parent=None):
        super().__init__(parent)
        self.settings = settings or QSettings()
        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(style.app_icon())
        self.setDockNestingEnabled(True)
        self.setObjectName("MainWindow")

        self.worker = RunWorker(self)
        self.worker.started.connect(self._on_run_started)
        self.worker.events.connect(self._on_events)
        self.worker.finished.connect(self._on_run_ended)
        self.reader = None
        self.session_path: Path | None = None
        self.compare_windows: list[QWidget] = []
        self.error_box: QMessageBox | None = None
        self.last_terminal = None
        self._close_after_stop = False
        self._run_t0 = 0.0
        self._first_step = None
        self._poll = QTimer(self)
        self._poll.setInterval(SESSION_POLL_MS)
        self._poll.timeout.connect(self._poll_session)

        self.form = ExperimentForm(cfg or C.default_config())
        self.model = SessionModel()         # what the panels show: fed by a run's events or a session's rows
        self.curves = CurvesPanel(self.model)
        self.embedding = EmbeddingMapPanel()
        self.per_task = PerTaskPanel()
        self.log = LogPanel()
        for panel in (self.embedding, self.per_task):
            panel.observe(self.model)
        self.model.message.connect(self.log.add)
        self.model.progress_changed.connect(self._on_progress)
        self.views = ViewTabs()
        self.views.setDocumentMode(True)
        self.views.setObjectName("views")
        self.views.addTab(self.curves, "Curves")
        self.setCentralWidget(self.views)
        self.form_dock = self._dock("Experiment", self.form, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.embedding_dock = self._dock("Task embeddings", self.embedding, Qt.DockWidgetArea.RightDockWidgetArea)
        self.per_task_dock = self._dock("Per-task results", self.per_task, Qt.DockWidgetArea.RightDockWidgetArea)
        self.splitDockWidget(self.embedding_dock, self.per_task_dock, Qt.Orientation.Vertical)
        self.log_dock = self._dock("Log", self.log, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.sessions = None
        self.sessions_dock = None
        self._mount_sessions_browser()
        from workbench.gui.studies import install as mount_studies
        self.studies = mount_studies(self)      # the Studies tab (workbench/gui/studies.py)

        self._make_actions()
        self._make_menus()
        from workbench.gui.panels.adaptation import mount as mount_adaptation
        mount_adaptation(self)      # the Adaptation tab (workbench/gui/panels/adaptation.py)
        self._make_status_bar()
        self.form.validity_changed.connect(self._on_validity_changed)
        self.form.changed.connect(self._on_form_changed)
        guard_wheel(self)
        self._update_actions()
        self._title()
        self._restore_settings()
        self.log.add("info", "Ready: press Run (Ctrl+R) to train the experiment in the form.")
        warm_up()
        self.worker.warm()          # start the engine process while the user reads the form

    # -- construction ------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(title.replace(" ", "_").lower() + "_dock")
        d.setWidget(widget)
        self.addDockWidget(area, d)
        return d

    def add_view(self, widget: QWidget, title: str) -> int:
        """Add a view as a tab of the centre (after the curves); returns its tab index. The view
        scrolls when it needs more room than the window has."""
        guard_wheel(widget)
        return self.views.add_scrolled(widget, title)

    def _mount_sessions_browser(self):
        self.sessions = SessionsBrowser()
        self.sessions.open_requested.connect(self.open_session)
        self.sessions.compare_requested.connect(self.open_compare)
        self.sessions_dock = self._dock("Sessions", self.sessions, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(self.form_dock, self.sessions_dock)
        self.form_dock.raise_()

    def _action(self, text, slot, shortcut=None, icon=None, tip=None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcuts(shortcut if isinstance(shortcut, list) else [shortcut])
        if icon:
            a.setIcon(style.icon(icon))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _make_actions(self):
        SK = QKeySequence.StandardKey
        self.act_run = self._action("&Run", self.run, QKeySequence("Ctrl+R"), "run",
                                    "Train the experiment in the form (Ctrl+R)")
        self.act_stop = self._action("&Stop", self.stop, [QKeySequence("Esc"), QKeySequence("Ctrl+.")], "stop",
                                     "Stop the run after the current meta-step (Esc)")
        self.act_open = self._action("&Open…", self.open_dialog, QKeySequence(SK.Open), "open",
                                     "Open a session (.h5) or an experiment config (.toml) (Ctrl+O)")
        self.act_save = self._action("&Save Config…", self.save_config_dialog, QKeySequence(SK.Save), "save",
                                     "Save the experiment in the form as a TOML file (Ctrl+S)")
        self.act_compare = self._action("&Compare Sessions…", self.compare_dialog, None, "compare",
                                        "Compare two or more session files side by side")
        self.act_quit = self._action("&Quit", self.close, QKeySequence("Ctrl+Q"), tip="Quit the workbench")
        self.act_quit.setMenuRole(QAction.MenuRole.QuitRole)

    def _make_menus(self):
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        m.addAction(self.act_save)
        m.addSeparator()
        m.addAction(self.act_quit)
        e = mb.addMenu("&Experiment")
        self.presets_menu = e.addMenu("&Presets")
        for name, path in C.list_presets().items():
            self.presets_menu.addAction(name.replace("_", " "), lambda n=name: self.load_preset(n))
        e.addSeparator()
        e.addAction(self.act_run)
        e.addAction(self.act_stop)
        e.addSeparator()
        e.addAction(self.act_compare)
        v = mb.addMenu("&View")
        for d in (self.form_dock, self.sessions_dock, self.embedding_dock, self.per_task_dock, self.log_dock):
            if d is not None:
                v.addAction(d.toggleViewAction())
        v.addSeparator()
        theme = v.addMenu("&Appearance")
        group = QActionGroup(self)
        current = str(self.settings.value("appearance/scheme", "auto"))
        for key, label in (("auto", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
            a = theme.addAction(label, lambda k=key: self.set_scheme(k))
            a.setCheckable(True)
            a.setChecked(key == current)
            group.addAction(a)
        h = mb.addMenu("&Help")
        self.act_docs = h.addAction("&Documentation", self.show_docs)
        self.act_docs.setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))
        h.addAction("&Keyboard Shortcuts", self.show_shortcuts)
        h.addAction("&Data Layouts", self.show_data_layouts)
        h.addSeparator()
        h.addAction("&About", self._about)

        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.act_run, self.act_stop, None, self.act_open, self.act_save, None, self.act_compare):
            if a is None:
                tb.addSeparator()
            else:
                tb.addAction(a)

    def _make_status_bar(self):
        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m steps")
        self.progress.setTextVisible(True)
        self.progress.setMinimumWidth(self.fontMetrics().horizontalAdvance("0" * 28))
        self.rate_label = QLabel("")            # a fixed width: its text never widens the window
        self.rate_label.setFixedWidth(self.fontMetrics().horizontalAdvance("0.0 steps/s · 00:00 left") + 12)
        self.session_label = elastic(QLabel(""))
        self.session_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        sb.addWidget(self.session_label, 1)
        sb.addPermanentWidget(self.rate_label)
        sb.addPermanentWidget(self.progress)

    # -- run ----------------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.worker.is_running()

    def _on_validity_changed(self, valid: bool):
        self._update_actions()

    def _on_form_changed(self):
        if not self.is_running() and self.reader is None:
            self._title()

    def _update_actions(self):
        running = self.is_running()
        self.act_run.setEnabled(not running and self.form.valid)
        self.act_stop.setEnabled(running and not self.worker.cancel_requested)
        self.act_open.setEnabled(not running)
        self.presets_menu.setEnabled(not running)
        self.form.set_read_only(running)
        tip = "Train the experiment in the form (Ctrl+R)" if self.form.valid else \
            "The experiment has problems (see below the form): " + "; ".join(self.form.problems[:2])
        self.act_run.setToolTip(tip)

    def _title(self, text: str | None = None):
        """The window title: what the window shows (a session, or the experiment in the form)."""
        if text is None:
            text = self.form.current_config()[0].name
        self.setWindowTitle(f"{text} — {APP_TITLE}" if text else APP_TITLE)

    def run(self):
        """Start training the experiment in the form (Ctrl+R)."""
        if self.is_running():
            return
        cfg = self.form.config()
        if cfg is None:
            self.statusBar().showMessage("The experiment has problems; see below the form.", 5000)
            return
        self._close_reader()
        from workbench.store import new_session_path
        path = new_session_path(cfg)
        if registry.datasets.get(cfg.data.dataset).needs_path:
            self.settings.setValue(f"data/path/{cfg.data.dataset}", cfg.data.path)
        self.statusBar().clearMessage()
        self.last_terminal = None
        self._first_step = None
        self._run_t0 = time.perf_counter()
        self.model.start_run(cfg.name, cfg.train.steps)
        self.rate_label.setText("starting…")
        self.log.add("info", f"Run: {cfg.name}: {cfg.learner.name} on {cfg.data.dataset}, "
                             f"{F.episode_setting(cfg.task.ways, cfg.task.shots, cfg.is_regression)}, "
                             f"{cfg.train.steps} steps")
        self.worker.start(cfg, path)
        self._update_actions()

    def stop(self):
        """Stop the run after the current meta-step (Esc, Ctrl+.)."""
        if not self.is_running() or self.worker.cancel_requested:
            return
        self.worker.stop()
        self.rate_label.setText("stopping…")
        self.log.add("info", "Stop requested: the run ends after the current meta-step.")
        self._update_actions()

    def _on_run_started(self, path):
        self.session_path = path
        self.model.set_path(path)
        if path is not None:
            self.session_label.setText(f"Session: {path}")
            self.log.add("info", f"Recording the session to {path}")
        else:
            self.session_label.setText("Not recorded")
        self._title(f"{self.form.current_config()[0].name} (running)")

    def _on_events(self, batch: list):
        for ev in batch:
            self._apply_event(ev)

    def _apply_event(self, ev):
        """One engine event of the run: into the model (which the panels observe); the window itself
        only says what a finish or a failure means to the user."""
        self.model.apply(ev)
        if isinstance(ev, E.RunFinished):
            self.statusBar().showMessage(f"Finished: {summary_text(ev.summary)}", 15000)
        elif isinstance(ev, E.RunFailed):
            where = self._write_detail(ev.detail) if ev.detail else None
            self.log.add("error", f"The run failed at step {ev.step}: {ev.message}"
                         + (f" (technical details: {where})" if where else ""))
            self._error_dialog("The run failed", ev.message, ev.detail)

    def _on_progress(self):
        """The model's progress changed: the progress bar, and the rate (a live run) or the status (a
        stored session) beside it."""
        m = self.model
        self.progress.setRange(0, max(1, m.total_steps))
        self.progress.setValue(min(m.step, self.progress.maximum()))
        if m.source == "session":
            if m.total_steps:
                self.rate_label.setText(f"{m.status} at step {m.step}" if m.status != "finished" else "finished")
            return
        if m.source != "run" or m.wall is None or m.status != "running":
            return
        step, wall = m.step, m.wall
        if self._first_step is None:
            self._first_step = (step, wall)
            self.rate_label.setText(f"step {step}")
            return
        s0, w0 = self._first_step
        if wall > w0 and step > s0:
            rate = (step - s0) / (wall - w0)
            left = (self.progress.maximum() - step) / rate
            self.rate_label.setText(f"{rate:.1f} steps/s · {F.duration(left)} left")

    def _on_run_ended(self, terminal):
        self.last_terminal = terminal
        if isinstance(terminal, E.RunFinished):
            self.rate_label.setText(f"done in {F.duration(terminal.wall_time)}")
        elif isinstance(terminal, E.RunCancelled):
            self.rate_label.setText(f"cancelled at step {terminal.step}")
        elif isinstance(terminal, E.RunFailed):
            self.rate_label.setText("failed")
        else:
            self.rate_label.setText("ended")
        if self.session_path is not None:
            self._add_recent(self.session_path)
            self.sessions.refresh()
        status = {E.RunFinished: "finished", E.RunCancelled: "cancelled", E.RunFailed: "failed"}.get(
            type(terminal), "ended")
        self._title(f"{self.form.current_config()[0].name} ({status})")
        self._update_actions()
        self.run_finished.emit(terminal)
        if self._close_after_stop:
            self.close()

    def _write_detail(self, detail: str) -> str | None:
        """Technical details (a traceback) go to a log file in the workspace, never to the log panel;
        returns the file's path, or None when it cannot be written."""
        try:
            from workbench.store import workspace_dir
            folder = Path(workspace_dir()) / "logs"
            folder.mkdir(parents=True, exist_ok=True)
            stem = Path(self.session_path).stem if self.session_path is not None else "run"
            out = folder / f"{stem}.log"
            with out.open("a", encoding="utf-8") as fh:
                fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{detail.rstrip()}\n")
            return str(out)
        except OSError:
            return None

    def _error_dialog(self, title: str, message: str, detail: str = ""):
        """One sentence for the user; technical details, where there are any, behind "Show Details"."""
        box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, self)
        if detail:
            box.setDetailedText(detail.rstrip())
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()          # not exec(): the window keeps running its event loop
        self.error_box = box

    # -- sessions -----------------------------------------------------------------------------------
    def open_session(self, path) -> bool:
        """Show a finished or live session file in the panels; a live one keeps updating."""
        path = str(path)
        if self.is_running():
            QMessageBox.information(self, "A run is in progress",
                                    "Stop the current run before opening a session into the panels.")
            return False
        from workbench.store import SessionError, SessionReader
        try:
            reader = SessionReader(path)
        except SessionError as e:
            self._error_dialog("Cannot open the session", str(e))
            return False
        except OSError as e:
            self._error_dialog("Cannot open the session", f"{path} cannot be read: {e}")
            return False
        self._close_reader()
        self.reader = reader
        self.session_path = Path(path)
        self._reset_status()
        try:
            self.form.set_config(reader.config)
        except Exception as e:
            self.log.add("warning", f"the session's config could not be shown in the form: {e}")
        name = getattr(reader.config, "name", Path(path).stem)
        self.model.open_session(reader, name)
        self._title(f"{name} ({reader.status})")
        self.session_label.setText(f"Session: {path}")
        self.log.add("info", f"Opened session {path} (status {reader.status})")
        if reader.status == "failed" and getattr(reader, "failure_message", ""):
            self.log.add("error", f"This run failed: {reader.failure_message}")
        if reader.status == "running":
            self.log.add("info", "The session is being written by another process; the panels follow it live.")
            self._poll.start()
        self._add_recent(path)
        self.settings.setValue("folders/sessions", str(Path(path).parent))
        return True

    def _poll_session(self):
        r = self.reader
        if r is None:
            self._poll.stop()
            return
        try:
            changed = r.refresh()
        except Exception as e:
            self._poll.stop()
            self.log.add("warning", f"stopped following {r.path}: {e}")
            return
        if changed:
            self.model.load(r)
        if r.status != "running":
            self._poll.stop()
            self.model.load(r)
            self.log.add("info", f"The session ended: status {r.status}")
            self._title(f"{r.config.name} ({r.status})")

    def _close_reader(self):
        self._poll.stop()
        if self.reader is not None:
            try:
                self.reader.close()
            except Exception:
                pass
            self.reader = None

    def _reset_status(self):
        """Forget what the status bar said about the previous run or session."""
        self.statusBar().clearMessage()
        self.rate_label.setText("")
        self.session_label.setText("")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    def _show_form_experiment(self):
        """The window shows the experiment in the form, no session: panels, status and title reset."""
        self._close_reader()
        self._reset_status()
        self.session_path = None
        self.model.clear("")
        self._title()

    def open_compare(self, paths: list):
        """Open a compare window for two or more sessions (from the sessions browser or the dialog)."""
        from workbench.gui import compare as mod
        paths = [str(p) for p in paths]
        if len(paths) < 2:
            QMessageBox.information(self, "Compare sessions", "Select two or more sessions to compare.")
            return
        try:
            view = mod.CompareView(paths)
        except Exception as e:
            self._error_dialog("Cannot compare these sessions", str(e))
            return
        view.setParent(self, Qt.WindowType.Window)
        view.setWindowTitle(f"Compare {len(paths)} sessions — {APP_TITLE}")
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.destroyed.connect(lambda *_, v=view: self.compare_windows.remove(v) if v in self.compare_windows
                               else None)
        self.compare_windows.append(view)
        view.resize(1200, 800)
        view.show()

    def compare_dialog(self):
        start = str(self.settings.value("folders/sessions", "") or self._workspace())
        paths, _ = QFileDialog.getOpenFileNames(self, "Sessions to compare", start, "Sessions (*.h5)")
        if paths:
            self.open_compare(paths)

    def _workspace(self) -> str:
        try:
            from workbench.store import workspace_dir
            return str(workspace_dir())
        except Exception:
            return str(Path.home())

    # -- files ---------------------------------------------------------------------------------------
    def open_dialog(self):
        start = str(self.settings.value("folders/sessions", "") or self._workspace())
        fn, _ = QFileDialog.getOpenFileName(self, "Open a session or a config", start,
                                            "Sessions and configs (*.h5 *.toml);;Sessions (*.h5);;"
                                            "Configs (*.toml);;All files (*)")
        if fn:
            self.open_path(fn)

    def open_path(self, fn: str) -> bool:
        """Open a .toml config into the form, anything else as a session."""
        if fn.lower().endswith(".toml"):
            return self.load_config(fn)
        return self.open_session(fn)

    def load_config(self, fn: str) -> bool:
        try:
            cfg = C.load(fn, complete=False)
            needs = self._complete_data_path(cfg)
            if not needs:
                C.check(cfg)
        except C.ConfigError as e:
            self._error_dialog("Cannot open the config", "\n".join(e.problems))
            return False
        if self.is_running():
            self.form.set_config(cfg)
        else:
            self._show_form_experiment()
            self.form.set_config(cfg)
            self._title()
        self.settings.setValue("folders/configs", str(Path(fn).parent))
        self.log.add("info", f"Loaded config {fn}" + (f"; {needs}" if needs else ""))
        return True

    def load_preset(self, name: str) -> bool:
        """Load a preset into the form. A preset that reads its data from a path (Omniglot) keeps the
        path the form has for that data set, or one used before, or asks for it; without one it
        still loads and says what it needs."""
        try:
            cfg = C.load_preset(name, complete=False)
            needs = self._complete_data_path(cfg)
            if not needs:
                C.check(cfg)
        except C.ConfigError as e:
            self._error_dialog("Cannot load the preset", "\n".join(e.problems))
            return False
        self._show_form_experiment()
        self.form.set_config(cfg)
        self._title()
        self.log.add("info", f"Loaded preset {name.replace('_', ' ')}" + (f"; {needs}" if needs else ""))
        if needs:
            self.statusBar().showMessage(needs[0].upper() + needs[1:], 15000)
        return True

    def _complete_data_path(self, cfg: C.ExperimentConfig) -> str:
        """Fill an empty data.path of a data set that needs one: the form's path for the same data
        set, else the one used last for it, else the user's choice. Returns what is still needed
        ("" when the path is set)."""
        spec = registry.datasets.get(cfg.data.dataset)
        if not spec.needs_path or cfg.data.path.strip():
            return ""
        current = self.form.current_config()[0].data
        candidates = [current.path if current.dataset == cfg.data.dataset else "",
                      str(self.settings.value(f"data/path/{cfg.data.dataset}", "") or "")]
        for c in candidates:
            if c.strip() and Path(c).expanduser().exists():
                cfg.data.path = c
                return ""
        chosen = self.ask_data_path(spec)
        if chosen:
            cfg.data.path = chosen
            return ""
        return (f"it needs the {spec.label} data: pick its file or folder with Browse next to "
                f"Path in the Data section")

    def ask_data_path(self, spec) -> str:
        """Ask for the file or folder of a data set (tests patch this)."""
        box = QMessageBox(QMessageBox.Icon.Question, "This experiment needs data",
                          f"This experiment reads the {spec.label} data from a file or folder you give"
                          + (f" ({spec.help})" if spec.help else "") + ". Pick it now?",
                          QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel, self)
        if box.exec() != QMessageBox.StandardButton.Open:
            return ""
        start = str(self.settings.value("folders/data", "") or Path.home())
        fn, _ = QFileDialog.getOpenFileName(self, f"{spec.label} data", start,
                                            "Data files (*.zip *.csv *.pkl *.pickle *.h5 *.hdf5);;All files (*)")
        if fn:
            self.settings.setValue("folders/data", str(Path(fn).parent))
        return fn

    def save_config_dialog(self):
        cfg, problems = self.form.current_config()
        start = Path(str(self.settings.value("folders/configs", "") or Path.home())) / \
            (("".join(c if c.isalnum() else "_" for c in cfg.name).strip("_") or "experiment") + ".toml")
        fn, _ = QFileDialog.getSaveFileName(self, "Save the experiment config", str(start), "TOML config (*.toml)")
        if fn:
            self.save_config(fn)

    def save_config(self, fn: str) -> bool:
        """Save the form's config as TOML (only a valid config: what is saved always loads)."""
        cfg = self.form.config()
        if cfg is None:
            self._error_dialog("Cannot save the config", "the experiment has problems: "
                               + "; ".join(self.form.problems))
            return False
        if not fn.lower().endswith(".toml"):
            fn += ".toml"
        try:
            C.save(cfg, fn)
        except OSError as e:
            self._error_dialog("Cannot save the config", f"{fn} cannot be written: {e.strerror or e}")
            return False
        self.settings.setValue("folders/configs", str(Path(fn).parent))
        self.statusBar().showMessage(f"Saved {fn}", 5000)
        return True

    # -- recent sessions, settings ------------------------------------------------------------------
    def recent_sessions(self) -> list[str]:
        v = self.settings.value("recent/sessions", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def _add_recent(self, path):
        path = str(path)
        items = [p for p in self.recent_sessions() if p != path]
        self.settings.setValue("recent/sessions", [path] + items[: MAX_RECENT - 1])

    def _fill_recent_menu(self):
        self.recent_menu.clear()
        items = [p for p in self.recent_sessions() if Path(p).exists()]
        for p in items:
            self.recent_menu.addAction(Path(p).name, lambda p=p: self.open_session(p)).setToolTip(p)
        if not items:
            self.recent_menu.addAction("(no recent sessions)").setEnabled(False)

    def _restore_settings(self):
        geo = self.settings.value("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        else:
            screen = QApplication.primaryScreen()
            avail = screen.availableGeometry() if screen is not None else None
            if avail is not None and avail.width() > 0:
                self.resize(min(1500, int(avail.width() * 0.9)), min(950, int(avail.height() * 0.9)))
            else:
                self.resize(1400, 900)
            self._docks_sized = False        # sized to the window when it is first shown
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
            self._docks_sized = True

    def size_docks(self):
        """The default dock layout for the window's size: the form a quarter, the maps a third."""
        w, h = self.width(), self.height()
        self.resizeDocks([self.form_dock, self.embedding_dock], [max(280, int(w * 0.23)), max(340, int(w * 0.32))],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [max(90, int(h * 0.18))], Qt.Orientation.Vertical)
        self._docks_sized = True

    def showEvent(self, ev):
        super().showEvent(ev)
        if not getattr(self, "_docks_sized", True):
            QTimer.singleShot(0, self, self.size_docks)     # not called once the window is gone

    def _save_settings(self):
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def set_scheme(self, scheme: str):
        self.settings.setValue("appearance/scheme", scheme)
        app = QApplication.instance()
        style.apply_style(app, scheme)
        for p in (self.curves, self.embedding, self.per_task):
            p.apply_palette()
        for w in self.compare_windows:
            if hasattr(w, "apply_palette"):
                w.apply_palette()

    def show_docs(self):
        """Open the documentation: the docs folder next to the program when it ships, else online."""
        import workbench
        local = Path(workbench.__file__).resolve().parent.parent / "docs"
        url = QUrl.fromLocalFile(str(local / "quickstart.md")) if (local / "quickstart.md").exists() \
            else QUrl(DOCS_URL)
        if not QDesktopServices.openUrl(url):
            self._info_dialog("Documentation", f"<p>The documentation is at <a href='{F.html_text(url.toString())}'>"
                                               f"{F.html_text(url.toString())}</a>.</p>")

    def shortcuts_html(self) -> str:
        rows = []
        for a in (self.act_run, self.act_stop, self.act_open, self.act_save, self.act_compare, self.act_quit,
                  self.act_docs):
            keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in a.shortcuts())
            if keys:
                rows.append(f"<tr><td><b>{F.html_text(keys)}</b></td><td>{F.html_text(a.text().replace('&', ''))}"
                            "</td></tr>")
        rows.append("<tr><td><b>Mouse wheel</b></td><td>zoom a plot around the pointer; in the form, change a "
                    "value only after clicking the field</td></tr>")
        rows.append("<tr><td><b>Drag</b></td><td>pan a plot (or zoom a box: the Zoom box button)</td></tr>")
        return "<table cellpadding='3'>" + "".join(rows) + "</table>"

    def data_layouts_html(self) -> str:
        parts = []
        for name, spec in registry.datasets.all().items():
            what = "a path you give" if spec.needs_path else "ships with the program or is generated"
            parts.append(f"<p><b>{F.html_text(spec.label)}</b> (<code>{F.html_text(name)}</code>, {what})"
                         + (f": {F.html_text(spec.help)}" if spec.help else "") + "</p>")
        return "".join(parts)

    def show_shortcuts(self):
        self._info_dialog("Keyboard shortcuts", self.shortcuts_html())

    def show_data_layouts(self):
        self._info_dialog("Data layouts", self.data_layouts_html())

    def _info_dialog(self, title: str, html_body: str):
        dlg = QDialog(self)
        dlg.setWindowTitle(title)
        lay = QVBoxLayout(dlg)
        text = QTextBrowser()
        text.setOpenExternalLinks(True)
        text.setHtml(html_body)
        lay.addWidget(text)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(dlg.reject)
        lay.addWidget(bb)
        dlg.resize(560, 420)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        self.info_box = dlg

    def _about(self):
        import workbench
        QMessageBox.about(self, f"About {APP_TITLE}",
                          f"<b>{APP_TITLE}</b> {workbench.__version__}<p>Build, run and compare meta-learning "
                          "experiments (MAML, ProtoNet, ...) and watch them train.</p>")

    # -- closing ---------------------------------------------------------------------------------------
    def confirm_stop_and_close(self) -> bool:
        """Ask whether to stop the running experiment and close (tests patch this)."""
        answer = QMessageBox.question(
            self, "A run is in progress",
            "An experiment is still training. Stop it and close? The session is kept, marked as cancelled.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event):
        if self.is_running():
            if not self._close_after_stop:
                if not self.confirm_stop_and_close():
                    event.ignore()
                    return
                self._close_after_stop = True
                self.stop()
                self.statusBar().showMessage("Stopping the run, then closing…")
            event.ignore()          # closes again from _on_run_ended once the worker has ended
            return
        self._save_settings()
        self._close_reader()
        self.worker.shutdown()      # nothing is left running: the engine process ends here
        from workbench.gui.datacheck import DataChecker
        DataChecker.shutdown()
        self.embedding.wait_idle(10000)
        for w in list(self.compare_windows):
            w.close()
        super().closeEvent(event)
