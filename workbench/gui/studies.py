"""The Studies view: define a study, launch it, watch its runs, read its results.

A *study* (:mod:`workbench.study`) is a base experiment, fields to vary and seeds; its runs are
ordinary session files and its record a ``study.json`` in the workspace's ``studies/`` folder.
This view is only a face on the engine's study code:

- the definition form is built from the config schema (:func:`workbench.config.schema`): a
  table of (field, values) rows -- one value sets the field for every run, several values make it
  an axis of the grid --, the seeds, the backend (a local process pool or Ray) and the workers.
  Every change is validated with :func:`workbench.study.validate_study` (debounced); the problems
  show under the form by on-screen label, one sentence each, and Launch stays disabled;
- launching writes the record (:func:`workbench.study.create_record`) and calls
  :func:`workbench.study.runner.run_study` on a Python thread (the runs themselves train in worker
  processes); its :class:`~workbench.study.runner.StudyUpdate` events cross into the UI thread
  through a :class:`queue.Queue` drained on a timer, so no widget is touched off the UI thread;
- the runs grid shows each run's status, progress and current metric; Stop asks the runner to
  stop (runs in progress end "cancelled" and resume from their last checkpoint), Resume continues
  a stopped or killed study, a double-click opens a run into the window's panels;
- the results (:mod:`workbench.gui.study_results`) come from :func:`workbench.analysis.study.aggregate`,
  computed off the UI thread once runs have finished.

:func:`install` adds the view as a "Studies" tab of the main window.
"""

from __future__ import annotations

import dataclasses
import json
import math
import queue
import threading
import tomllib
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QEvent, QObject, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QComboBox, QFileDialog, QFormLayout, QFrame,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox, QPushButton,
                               QScrollArea, QSizePolicy, QSpinBox, QSplitter, QStyle, QStyledItemDelegate,
                               QStyleOptionProgressBar, QTableWidget, QTableWidgetItem, QTabWidget, QToolButton,
                               QVBoxLayout, QWidget)

from workbench import config as C
from workbench import format as F
from workbench import study as S
from workbench.fields import field_title
from workbench.study import runner as SR

POLL_MS = 100                   # how often the runner's updates are taken from the queue
VALIDATE_MS = 250               # debounce of the live validation
HIDDEN_KEYS = ("name", "plugins", "schema_version", S.definition.SEED_KEY, "eval.seed")
STATUS_COLORS = {"planned": "#7f7f7f", "queued": "#7f7f7f", "running": "#1f77b4", "finished": "#2ca02c",
                 "failed": "#d62728", "cancelled": "#b8860b", "interrupted": "#e67e22", "damaged": "#d62728"}
RUN_COLUMNS = ("Run", "Cell", "Seed", "Status", "Progress", "Metric")
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1
RUN_ROLE = Qt.ItemDataRole.UserRole + 2


def _import_ray_here() -> None:
    """Import Ray on the UI thread, with a wait cursor, before a study's thread uses it: imported first
    on the study's thread while the UI thread ran Qt's event loop, the two threads once waited on each
    other's lock for ever. A missing or broken Ray is left for the runner to report in one sentence."""
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        import ray  # noqa: F401
    except Exception:
        pass
    finally:
        QApplication.restoreOverrideCursor()


# --------------------------------------------------------------------------
# fields and values (no widgets)
# --------------------------------------------------------------------------
def axis_fields() -> list[C.FieldInfo]:
    """The config fields a study can set or vary, in form order (seeds and the test seed have their own
    rules, the run name is made by the study)."""
    return [fi for fi in C.schema() if fi.key not in HIDDEN_KEYS]




def _split_items(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_values(fi: C.FieldInfo, text: str) -> list:
    """The comma-separated values typed for ``fi``, in the field's type. Raises ValueError with one
    sentence (without the field's name) for text that is not a list of such values."""
    t = text.strip()
    if not t:
        return []
    if fi.type is list:
        try:
            values = tomllib.loads(f"v = [{t}]")["v"]
        except tomllib.TOMLDecodeError:
            example = "[64, 64], [128, 64]" if fi.item_type is int else '["sine", "line"], ["tanh"]'
            raise ValueError(f"write each value as a list in brackets, e.g. {example}") from None
        if not all(isinstance(v, list) for v in values):
            raise ValueError("each value is itself a list here: write it in brackets, e.g. [64, 64]")
        return values
    out = []
    for s in _split_items(t):
        if fi.type is str:
            out.append(s.strip("'\""))
            continue
        try:
            out.append(C.parse_value(fi, s))
        except C.ConfigError:
            what = {bool: "true or false", int: "a whole number", float: "a number"}.get(fi.type, "a value")
            raise ValueError(f"{s!r} is not {what}") from None
        if fi.type is float and not math.isfinite(out[-1]):
            raise ValueError(f"{s!r} is not a finite number")
    return out


def values_text(fi: C.FieldInfo, values: list) -> str:
    """The inverse of :func:`parse_values`: values as the user would type them."""
    def one(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(v) if (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5)) else f"{v:.10g}"
        if isinstance(v, list):
            return json.dumps(v)
        return str(v)
    return ", ".join(one(v) for v in values)


def parse_seeds(text: str) -> list[int]:
    """``0, 1, 2`` or ranges ``0-4`` (both ends included). Raises ValueError with one sentence."""
    out: list[int] = []
    for s in _split_items(text):
        a, sep, b = s.partition("-")
        try:
            if sep and a.strip():
                lo, hi = int(a), int(b)
                if hi < lo or hi - lo > 10_000:
                    raise ValueError
                out += list(range(lo, hi + 1))
            else:
                out.append(int(s))
        except ValueError:
            raise ValueError(f"{s!r} is not a whole number or a range such as 0-4") from None
    return out


def config_summary(cfg: C.ExperimentConfig) -> str:
    """``ProtoNet on digits, 3-way 5-shot, 300 steps, 600 test episodes``."""
    from workbench import registry
    lspec = registry.learners.get(cfg.learner.name) if cfg.learner.name in registry.learners else None
    label = getattr(lspec, "label", "") or cfg.learner.name
    setting = F.episode_setting(cfg.task.ways, cfg.task.shots, cfg.is_regression)
    return f"{label} on {cfg.data.dataset}, {setting}, {cfg.train.steps} steps, {cfg.eval.episodes} test episodes"


def problem_sentence(p, titles: dict[str, str]) -> str:
    """A study :class:`~workbench.config.Problem` as the form shows it: the on-screen name first."""
    key, detail = p.key, (p.detail or p.message)
    for prefix, where in (("study.grid.", "Varied field"), ("study.search.space.", "Searched field"),
                          ("base.", "Base experiment")):
        if key.startswith(prefix):
            k = key[len(prefix):]
            title = titles.get(k, k)
            if where == "Base experiment" and k in titles:
                detail = detail.split(": ", 1)[1] if detail.startswith(k) and ": " in detail else detail
                return f"{title}: {detail}"
            return f"{where} {title}: {detail}"
    names = {"study.seeds": "Seeds", "study.name": "Study name", "study.max_runs": "Run limit", "study": "Study",
             "base": "Base experiment", "": "Study"}
    return f"{names.get(key, key)}: {detail}"


def seed_problems(seeds: list[int]) -> list:
    """The study's rules for seeds (as :func:`workbench.study.validate_study` states them), checked
    without planning a run per seed."""
    top = 2**31 - 1
    if not seeds:
        return [C.Problem("study.seeds", "", "give at least one seed, e.g. 0, 1, 2")]
    if any(s < 0 or s > top for s in seeds):
        return [C.Problem("study.seeds", "", f"every seed must be between 0 and {top}")]
    seen: set[int] = set()
    for s in seeds:
        if s in seen:
            return [C.Problem("study.seeds", "", f"each seed at most once ({s} is repeated)")]
        seen.add(s)
    return []


def check_definition(defn: S.StudyDefinition) -> tuple[list, str | None, int]:
    """(problems, the confirmation question for a study above its run limit or None, planned runs).

    The seeds change no rule a config must follow, so the cells are checked with the first seed only:
    :func:`~workbench.study.validate_study` plans and validates every run, and one seed's worth of runs
    is what decides whether the study is valid."""
    try:
        problems = seed_problems(list(defn.seeds))
        if not problems:
            problems = S.validate_study(dataclasses.replace(defn, seeds=list(defn.seeds[:1])), confirmed=True)
        return problems, S.needs_confirmation(defn), S.count_runs(defn)
    except Exception as e:  # the engine's validation failing must not reach the user as a traceback
        return [C.Problem("", "", f"the study cannot be checked: {type(e).__name__}: {e}")], None, 0


# --------------------------------------------------------------------------
# the definition form
# --------------------------------------------------------------------------
class AxisRow(QWidget):
    """One (field, values) row of the definition: a field picker and a values editor."""

    changed = Signal()
    remove_requested = Signal(object)

    def __init__(self, fields: list[C.FieldInfo], key: str = "", text: str = "", parent=None):
        super().__init__(parent)
        self.fields = fields
        self.field_box = QComboBox()
        self.field_box.setMaxVisibleItems(25)
        for fi in fields:
            self.field_box.addItem(field_title(fi), fi.key)
            self.field_box.setItemData(self.field_box.count() - 1, f"{fi.key}: {fi.help}",
                                       Qt.ItemDataRole.ToolTipRole)
        self.values_edit = QLineEdit(text)
        self.values_edit.setClearButtonEnabled(True)
        self.remove_button = QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip("Remove this field from the study")
        self.error = QLabel()
        self.error.setObjectName("fieldProblem")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d62728;")
        self.error.hide()
        self.problem = ""
        if key:
            self.set_key(key)
        self._update_hint()
        self.field_box.currentIndexChanged.connect(self._field_changed)
        self.values_edit.textChanged.connect(self.changed)
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        self.field_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.field_box.setMinimumContentsLength(12)
        top.addWidget(self.field_box, 5)
        top.addWidget(self.values_edit, 4)
        top.addWidget(self.remove_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addLayout(top)
        lay.addWidget(self.error)

    @property
    def field(self) -> C.FieldInfo:
        return self.fields[max(0, self.field_box.currentIndex())]

    @property
    def key(self) -> str:
        return self.field.key

    def set_key(self, key: str) -> None:
        i = self.field_box.findData(key)
        if i >= 0:
            self.field_box.setCurrentIndex(i)

    def _field_changed(self):
        self._update_hint()
        self.changed.emit()

    def _update_hint(self):
        fi = self.field
        if fi.type is list:
            hint = "[64, 64], [128, 64]" if fi.item_type is int else '["sine", "line"], ["tanh"]'
        elif fi.choices:
            hint = ", ".join(map(str, fi.choices[:4]))
        elif fi.type is bool:
            hint = "true, false"
        elif fi.type is float:
            hint = "0.1, 0.01, 0.001"
        else:
            hint = "1, 5"
        self.values_edit.setPlaceholderText(f"one value sets it, several vary it: {hint}")
        rng = f"\nAllowed: {fi.min:g} to {fi.max:g}" if fi.min is not None and fi.max is not None else ""
        choices = f"\nChoices: {', '.join(map(str, fi.choices))}" if fi.choices else ""
        self.values_edit.setToolTip(f"{fi.help}{rng}{choices}")
        self.field_box.setToolTip(f"{fi.key}: {fi.help}")

    def values(self) -> list:
        return parse_values(self.field, self.values_edit.text())

    def show_problem(self, text: str) -> None:
        self.problem = text
        self.error.setText(text)
        self.error.setVisible(bool(text))


class StudyForm(QWidget):
    """The study definition: name, base experiment, fields to set or vary, seeds, backend, workers.

    :meth:`definition` gives ``(StudyDefinition or None, problems)``; ``changed`` fires on every edit
    and ``validated`` after each (debounced) validation."""

    changed = Signal()
    validated = Signal()

    def __init__(self, base_config: Callable[[], C.ExperimentConfig] | None = None, parent=None):
        super().__init__(parent)
        self._base_provider = base_config
        self._loaded_base: C.ExperimentConfig | None = None
        self.fields = axis_fields()
        self.titles = {fi.key: fi.label for fi in self.fields}
        self.rows: list[AxisRow] = []
        self.problems: list[str] = []
        self.definition_cache = None
        self.confirm_message: str | None = None
        self._search = None                 # a loaded study's search, kept as it was (the form has no editor)
        self._max_runs = S.definition.DEFAULT_MAX_RUNS
        self._description = ""

        self.name_edit = QLineEdit("My study")
        self.name_edit.setToolTip("A short name: it names the study's folder, its runs and its exports")
        self.base_box = QComboBox()
        self.base_box.setToolTip("The experiment every run starts from")
        self._fill_base_box()
        self.base_label = QLabel()
        self.base_label.setWordWrap(True)
        self.base_label.setTextFormat(Qt.TextFormat.RichText)

        self.rows_box = QVBoxLayout()
        self.rows_box.setContentsMargins(0, 0, 0, 0)
        self.rows_box.setSpacing(4)
        self.add_button = QPushButton("Add field")
        self.add_button.setToolTip("Set or vary another config field")
        self.add_button.clicked.connect(lambda: self.add_row())
        fields_group = QGroupBox("Fields to set or vary")
        fl = QVBoxLayout(fields_group)
        note = QLabel("<small>One value sets the field for every run; several values make it an axis: "
                      "the study runs every combination of the axes' values (a cell) once per seed.</small>")
        note.setWordWrap(True)
        fl.addWidget(note)
        fl.addLayout(self.rows_box)
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_button)
        add_row.addStretch(1)
        fl.addLayout(add_row)

        self.seeds_edit = QLineEdit("0, 1, 2")
        self.seeds_edit.setToolTip("Values of the run seed (model initialisation and training tasks); every run "
                                   "is tested on the same episodes (one test seed), so cells compare pairwise")
        self.seeds_edit.setPlaceholderText("e.g. 0, 1, 2 or 0-4")
        self.backend_box = QComboBox()
        self.backend_box.addItem("Local: worker processes on this machine", "local")
        self.backend_box.addItem("Ray: tasks on a Ray cluster", "ray")
        self.address_edit = QLineEdit()
        self.address_edit.setPlaceholderText("empty: a local Ray instance; or auto, ray://head:10001")
        self.address_edit.setToolTip("The Ray cluster's address (the runs' sessions must be on storage every "
                                     "node can write; see docs/ray.md)")
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(0, 512)
        self.workers_spin.setSpecialValueText("auto")
        self.workers_spin.setToolTip("Runs at the same time (auto: the cores divided by each run's torch threads)")

        run_group = QGroupBox("Seeds and execution")
        rl = QFormLayout(run_group)
        rl.addRow("Seeds", self.seeds_edit)
        rl.addRow("Backend", self.backend_box)
        self.address_row_label = QLabel("Ray address")
        rl.addRow(self.address_row_label, self.address_edit)
        rl.addRow("Workers", self.workers_spin)

        self.search_label = QLabel()
        self.search_label.setWordWrap(True)
        self.search_label.setTextFormat(Qt.TextFormat.RichText)
        self.search_label.hide()
        self.drop_search = QPushButton("Drop the search")
        self.drop_search.setToolTip("Run the grid alone, without the loaded study's search trials")
        self.drop_search.clicked.connect(self._drop_search)
        self.drop_search.hide()
        self.count_label = QLabel()
        self.count_label.setWordWrap(True)
        self.problems_label = QLabel()
        self.problems_label.setObjectName("studyProblems")
        self.problems_label.setWordWrap(True)
        self.problems_label.setTextFormat(Qt.TextFormat.RichText)
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label.hide()

        head = QFormLayout()
        head.addRow("Name", self.name_edit)
        head.addRow("Base experiment", self.base_box)
        head.addRow("", self.base_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(head)
        lay.addWidget(fields_group)
        lay.addWidget(run_group)
        search_row = QHBoxLayout()
        search_row.addWidget(self.search_label, 1)
        search_row.addWidget(self.drop_search)
        lay.addLayout(search_row)
        lay.addWidget(self.count_label)
        lay.addWidget(self.problems_label)
        lay.addStretch(1)

        self._generation = 0
        self.checking = False
        self._checks: queue.Queue = queue.Queue()
        self._check_timer = QTimer(self, interval=50, timeout=self._take_checks)
        self._timer = QTimer(self, singleShot=True, interval=VALIDATE_MS, timeout=self.validate_later)
        for sig in (self.name_edit.textChanged, self.seeds_edit.textChanged, self.base_box.currentIndexChanged,
                    self.backend_box.currentIndexChanged, self.workers_spin.valueChanged,
                    self.address_edit.textChanged):
            sig.connect(self._on_changed)
        self.add_row("learner.name", "protonet, maml")
        self._update_backend()
        self.validate_now()

    # -- base experiment ---------------------------------------------------------------
    def _fill_base_box(self):
        self.base_box.blockSignals(True)
        self.base_box.clear()
        if self._loaded_base is not None:
            self.base_box.addItem("The study's own base experiment", "loaded")
        if self._base_provider is not None:
            self.base_box.addItem("The experiment in the form", "form")
        for name in C.list_presets():
            self.base_box.addItem(f"Preset: {name.replace('_', ' ')}", f"preset:{name}")
        self.base_box.blockSignals(False)

    def refresh_base(self):
        """The experiment in the window's form changed: re-validate if the study starts from it."""
        if self.base_box.currentData() == "form":
            self._on_changed()

    def base_config(self) -> tuple[C.ExperimentConfig | None, str]:
        """(the chosen base experiment, or None and why not)."""
        what = self.base_box.currentData() or ""
        try:
            if what == "loaded" and self._loaded_base is not None:
                return C.replace(self._loaded_base, validate_values=False), ""
            if what == "form" and self._base_provider is not None:
                return C.replace(self._base_provider(), validate_values=False), ""
            if what.startswith("preset:"):
                return C.load_preset(what.split(":", 1)[1], complete=False), ""
        except C.ConfigError as e:
            return None, e.problems[0] if e.problems else "the base experiment cannot be read"
        return C.default_config(), ""

    # -- rows ---------------------------------------------------------------------------
    def add_row(self, key: str = "", text: str = "") -> AxisRow:
        if not key:
            used = {r.key for r in self.rows}
            key = next((k for k in ("learner.name", "task.shots", "learner.inner_lr", "learner.meta_lr")
                        if k not in used), self.fields[0].key)
        row = AxisRow(self.fields, key, text)
        row.changed.connect(self._on_changed)
        row.remove_requested.connect(self.remove_row)
        self.rows.append(row)
        self.rows_box.addWidget(row)
        self._on_changed()
        return row

    def remove_row(self, row: AxisRow):
        if row in self.rows:
            self.rows.remove(row)
            self.rows_box.removeWidget(row)
            row.hide()
            row.deleteLater()
            self._on_changed()

    def clear_rows(self):
        for r in list(self.rows):
            self.rows.remove(r)
            self.rows_box.removeWidget(r)
            r.hide()
            r.deleteLater()

    # -- definition -------------------------------------------------------------------
    def backend(self) -> str:
        return self.backend_box.currentData()

    def workers(self) -> int | None:
        return self.workers_spin.value() or None

    def address(self) -> str | None:
        return self.address_edit.text().strip() or None

    def _update_backend(self):
        ray = self.backend() == "ray"
        self.address_edit.setVisible(ray)
        self.address_row_label.setVisible(ray)

    def _on_changed(self, *_):
        self._update_backend()
        self._timer.start()
        self.changed.emit()

    def definition(self) -> tuple[S.StudyDefinition | None, list[str]]:
        """The study in the form, or None and the problems found before it could be built. Problems of a
        built definition (:func:`validate_study`) are in :attr:`problems` after :meth:`validate_now`."""
        problems: list[str] = []
        base, why = self.base_config()
        if base is None:
            problems.append(f"Base experiment: {why}")
        try:
            seeds = parse_seeds(self.seeds_edit.text())
        except ValueError as e:
            problems.append(f"Seeds: {e}")
            seeds = []
        fixed, grid = {}, {}
        for row in self.rows:
            row.show_problem("")
        seen: dict[str, AxisRow] = {}
        for row in self.rows:
            fi = row.field
            if fi.key in seen:
                msg = "is listed twice: keep one row per field"
                row.show_problem(msg)
                problems.append(f"{fi.label}: {msg}")
                continue
            seen[fi.key] = row
            try:
                values = row.values()
            except ValueError as e:
                row.show_problem(str(e))
                problems.append(f"{fi.label}: {e}")
                continue
            if not values:
                msg = "has no values: type one value to set it, several to vary it (or remove the row)"
                row.show_problem(msg)
                problems.append(f"{fi.label}: {msg}")
            elif len(values) == 1:
                fixed[fi.key] = values[0]
            else:
                grid[fi.key] = values
        if problems:
            return None, problems
        if fixed:
            try:
                base = C.replace(base, validate_values=False, **fixed)
            except C.ConfigError as e:
                return None, [problem_sentence(p, self.titles) for p in e.items]
        search = self._search
        if search is not None:          # the grid wins over a searched field of the same name
            search = dataclasses.replace(search, space={k: v for k, v in search.space.items() if k not in grid})
        return S.StudyDefinition(name=self.name_edit.text().strip(), base=base, seeds=seeds, grid=grid,
                                 search=search, max_runs=self._max_runs, description=self._description), []

    def _show_search(self):
        s = self._search
        if s is None or not s.space:
            self.search_label.hide()
            self.drop_search.hide()
            return
        fields = ", ".join(self.titles.get(k, k) for k in s.space)
        self.search_label.setText(f"<small>Also searches {s.trials} {F.html_text(s.method)} trial"
                                  f"{'s' if s.trials != 1 else ''} (seed {s.seed}) over: {F.html_text(fields)}"
                                  " — kept as loaded; edit the study's TOML to change it.</small>")
        self.search_label.show()
        self.drop_search.show()

    def _drop_search(self):
        self._search = None
        self._show_search()
        self._on_changed()

    def validate_now(self) -> list[str]:
        """Validate the study in the form here and now; show the problems under it and under the rows
        they name (edits are validated on a worker thread instead, see :meth:`validate_later`)."""
        self._timer.stop()
        self._generation += 1
        defn, problems = self.definition()
        checked = check_definition(defn) if defn is not None else None
        self._apply(defn, problems, checked)
        return self.problems

    def validate_later(self) -> None:
        """Validate off the UI thread (a large grid takes a while to plan and check); the newest edit wins."""
        self._generation += 1
        gen = self._generation
        defn, problems = self.definition()
        if defn is None:
            self._apply(None, problems, None)
            return
        self.checking = True
        self.count_label.setText("Checking the study…")
        self.problems = ["the study is being checked"]
        self.definition_cache = None
        self.validated.emit()

        def work():
            self._checks.put((gen, defn, check_definition(defn)))
        threading.Thread(target=work, name="study-check", daemon=True).start()
        self._check_timer.start()

    def _take_checks(self):
        while True:
            try:
                gen, defn, checked = self._checks.get_nowait()
            except queue.Empty:
                return
            if gen == self._generation:
                self._check_timer.stop()
                self._apply(defn, [], checked)

    def _apply(self, defn, problems: list[str], checked):
        self.checking = False
        self.confirm_message = None
        rows = {r.key: r for r in self.rows}
        if defn is not None and checked is not None:
            items, self.confirm_message, n = checked
            problems = [problem_sentence(p, self.titles) for p in items]
            for p in items:
                for prefix in ("study.grid.", "base."):
                    k = p.key[len(prefix):] if p.key.startswith(prefix) else None
                    if k in rows and not rows[k].problem:
                        rows[k].show_problem(problem_sentence(p, self.titles).split(": ", 1)[-1])
            base_text = config_summary(defn.base)
            cells = max(1, n // max(1, len(defn.seeds)))
            text = f"<b>{n} run{'s' if n != 1 else ''}</b>: {cells} cell{'s' if cells != 1 else ''} × " \
                   f"{len(defn.seeds)} seed{'s' if len(defn.seeds) != 1 else ''}"
            if self.confirm_message:
                text += f" — more than the limit of {defn.max_runs}: you will be asked before they start"
            self.count_label.setText(text)
        else:
            base, _ = self.base_config()
            base_text = config_summary(base) if base is not None else ""
            self.count_label.setText("")
        self.base_label.setText(f"<small>{F.html_text(base_text)}</small>")
        self.problems = problems
        self.definition_cache = defn if not problems else None
        if problems:
            self.problems_label.setText("<span style='color:#d62728'>" + "<br>".join(
                "• " + F.html_text(p) for p in problems[:12]) + (f"<br>… and {len(problems) - 12} more"
                                                                 if len(problems) > 12 else "") + "</span>")
        self.problems_label.setVisible(bool(problems))
        self.validated.emit()

    @property
    def valid(self) -> bool:
        return not self.checking and not self.problems and self.definition_cache is not None

    # -- loading a definition --------------------------------------------------------
    def set_definition(self, defn: S.StudyDefinition) -> None:
        """Show a study's definition (its base experiment becomes the "study's own" base)."""
        self._loaded_base = defn.base
        self._search = defn.search
        self._max_runs = defn.max_runs
        self._description = defn.description
        self._show_search()
        self._fill_base_box()
        self.base_box.setCurrentIndex(0)
        self.name_edit.setText(defn.name)
        self.seeds_edit.setText(", ".join(map(str, defn.seeds)))
        self.clear_rows()
        by_key = {fi.key: fi for fi in self.fields}
        for key, values in defn.grid.items():
            if key in by_key:
                self.add_row(key, values_text(by_key[key], values))
        self.validate_now()

    def set_read_only(self, ro: bool) -> None:
        for w in (self.name_edit, self.base_box, self.seeds_edit, self.backend_box, self.address_edit,
                  self.workers_spin, self.add_button, self.drop_search):
            w.setEnabled(not ro)
        for r in self.rows:
            r.setEnabled(not ro)


# --------------------------------------------------------------------------
# the runs grid
# --------------------------------------------------------------------------
class ProgressDelegate(QStyledItemDelegate):
    """Draws a progress bar from a cell's ``(step, total)``."""

    def paint(self, painter, option, index):
        v = index.data(PROGRESS_ROLE)
        if not v:
            return super().paint(painter, option, index)
        step, total = v
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(option.rect.adjusted(3, 3, -3, -3))
        bar.minimum, bar.maximum = 0, max(1, int(total))
        bar.progress = min(int(step), bar.maximum)
        bar.text = f"{int(step)} / {int(total)}" if total else ""
        bar.textVisible = True
        bar.state = option.state
        bar.palette = option.palette
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)


class RunsGrid(QTableWidget):
    """One row per planned run: id, cell, seed, status, progress, current metric."""

    def __init__(self, parent=None):
        super().__init__(0, len(RUN_COLUMNS), parent)
        self.setHorizontalHeaderLabels(RUN_COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        self.setItemDelegateForColumn(4, ProgressDelegate(self))
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        fm = self.fontMetrics()
        for col, sample in ((0, "c000-seed00"), (2, "Seed "), (3, "interrupted "), (4, "10000 / 10000  "),
                            (5, "val 100.00% ")):
            self.setColumnWidth(col, fm.horizontalAdvance(sample) + 24)
        self.rows: dict[str, int] = {}
        self.metric_name = "accuracy"
        self.paths: dict[str, str] = {}
        self.statuses: dict[str, str] = {}

    def set_record(self, record) -> None:
        """One row per run of ``record`` with the status the record last saw."""
        self.setRowCount(0)
        self.rows.clear()
        self.paths.clear()
        self.statuses.clear()
        self.metric_name = record.metric or "accuracy"
        self.setRowCount(len(record.runs))
        for i, r in enumerate(record.runs):
            self.rows[r.run_id] = i
            self.paths[r.run_id] = str(record.session_path(r))
            items = (r.run_id, S.cell_label(r.cell), str(r.seed), "", "", "")
            for j, text in enumerate(items):
                it = QTableWidgetItem(text)
                it.setData(RUN_ROLE, r.run_id)
                if j in (2, 5):
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(i, j, it)
            self.item(i, 1).setToolTip(S.cell_label(r.cell))
            self._set_status(i, r.run_id, r.status, r.message)
            if r.status != "planned":
                self._progress_from_file(i, self.paths[r.run_id])
            if r.status == "finished":
                self.item(i, 5).setText(F.metric_value(self.metric_name, r.mean if r.mean is not None else math.nan))

    def _progress_from_file(self, i: int, path: str) -> None:
        """The steps a run that has ended got through, from its session file's summary."""
        try:
            from workbench.store import read_summary
            s = read_summary(path)
        except Exception:  # no file yet, or a damaged one: the status column says so
            return
        if s.total_steps:
            self.item(i, 4).setData(PROGRESS_ROLE, (s.steps_done, s.total_steps))

    def _set_status(self, i: int, run_id: str, status: str, message: str = ""):
        it = self.item(i, 3)
        it.setText(status)
        it.setForeground(QColor(STATUS_COLORS.get(status, "#555555")))
        it.setToolTip(message or status)
        self.statuses[run_id] = status

    def apply(self, u) -> None:
        """Show a :class:`~workbench.study.runner.StudyUpdate`."""
        i = self.rows.get(u.run_id)
        if i is None:
            return
        self._set_status(i, u.run_id, u.status, u.message)
        if u.session_path:
            self.paths[u.run_id] = u.session_path
        if u.metric:
            self.metric_name = u.metric
        prog = self.item(i, 4)
        if u.total_steps:
            prog.setData(PROGRESS_ROLE, (u.step, u.total_steps))
        elif u.status not in ("planned", "queued", "running"):
            self._progress_from_file(i, self.paths.get(u.run_id, ""))
        prog.setToolTip(f"step {u.step} of {u.total_steps}" if u.total_steps else "")
        mean = u.mean if isinstance(u.mean, (int, float)) else math.nan
        if math.isfinite(mean):
            prefix = "" if u.status == "finished" else "val "
            self.item(i, 5).setText(prefix + F.metric_value(self.metric_name, mean))
            self.item(i, 5).setToolTip("final test metric" if u.status == "finished" else
                                       "latest validation metric")

    def selected_run_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        return [self.item(r, 0).data(RUN_ROLE) for r in rows if self.item(r, 0) is not None]

    def count(self, *statuses) -> int:
        return sum(s in statuses for s in self.statuses.values())


# --------------------------------------------------------------------------
# running a study off the UI thread
# --------------------------------------------------------------------------
class StudyJob:
    """``run_study`` on a Python thread; what happens goes into :attr:`queue` as ``("record", record)``
    (a new study's record, written first), ``("update", StudyUpdate)``, ``("done", record)`` or
    ``("error", sentence)``. ``record`` is an existing study's record, or None with ``definition``
    and ``workspace`` for a new one (planning a large study takes a while: not on the UI thread)."""

    def __init__(self, record, backend: str, workers: int | None, address: str | None, definition=None,
                 workspace=None, retry_failed: bool = False):
        self.record = record
        self.definition, self.workspace = definition, workspace
        self.queue: queue.Queue = queue.Queue()
        self.cancel_event = threading.Event()
        self._args = dict(backend=backend, workers=workers, address=address)
        if retry_failed:
            self._args["retry_failed"] = True
        self.thread = threading.Thread(target=self._main, name="study-runner", daemon=True)

    def start(self):
        self.thread.start()

    def _main(self):
        try:
            if self.record is None:
                self.record = S.create_record(self.definition, workspace=self.workspace)
                self.queue.put(("record", self.record))
            rec = SR.run_study(self.record, on_update=lambda u: self.queue.put(("update", u)),
                               cancel=self.cancel_event.is_set, **self._args)
            self.queue.put(("done", rec))
        except S.StudyError as e:
            self.queue.put(("error", e.problems[0] if e.problems else str(e)))
        except Exception as e:  # anything else still ends as one sentence in the view, never a traceback
            self.queue.put(("error", f"the study stopped unexpectedly: {type(e).__name__}: {e}"))

    def stop(self):
        self.cancel_event.set()

    def is_alive(self) -> bool:
        return self.thread.is_alive()


class _AggregateJob:
    """``aggregate(record)`` on a Python thread; ``("results", results)`` or ``("results-error", text)``."""

    def __init__(self, record, out: queue.Queue):
        self.record, self.out = record, out
        self.thread = threading.Thread(target=self._main, name="study-aggregate", daemon=True)
        self.thread.start()

    def _main(self):
        try:
            from workbench.analysis import study as AS
            self.out.put(("results", self.record, AS.aggregate(self.record)))
        except Exception as e:  # unreadable sessions, too few runs...: said in the results area
            msg = e.problems[0] if getattr(e, "problems", None) else f"{type(e).__name__}: {e}"
            self.out.put(("results-error", self.record, msg))


# --------------------------------------------------------------------------
# the view
# --------------------------------------------------------------------------
class StudiesView(QWidget):
    """Define, launch, watch and read studies.

    Signals: ``open_session_requested(str)`` (a run into the window's panels) and
    ``compare_requested(list)`` (the sessions of the selected cells, into the compare view)."""

    open_session_requested = Signal(str)
    compare_requested = Signal(list)
    results_ready = Signal()
    study_ended = Signal(str)          # the record's path

    def __init__(self, base_config: Callable[[], C.ExperimentConfig] | None = None, workspace=None, parent=None):
        super().__init__(parent)
        self.workspace = Path(workspace) if workspace is not None else None
        self.record = None
        self.job: StudyJob | None = None
        self.results = None
        self._results_queue: queue.Queue = queue.Queue()
        self._aggregating = None
        self.last_error = ""

        self.form = StudyForm(base_config)
        self.form.validated.connect(self._update_actions)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.form)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.launch_button = QPushButton("Launch study")
        self.launch_button.setToolTip("Write the study's record and start its runs")
        self.launch_button.clicked.connect(self.launch)
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open a study definition (.toml) or a study's record (study.json)")
        self.open_button.clicked.connect(self.open_dialog)
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save the study in the form as a TOML file (workbench study run FILE)")
        self.save_button.clicked.connect(self.save_dialog)
        self.presets_box = QComboBox()
        self.presets_box.setToolTip("Start from a study preset")
        self._fill_presets()
        self.presets_box.activated.connect(self._preset_chosen)
        left_buttons = QHBoxLayout()
        left_buttons.addWidget(self.presets_box, 1)
        left_buttons.addWidget(self.open_button)
        left_buttons.addWidget(self.save_button)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Study definition</b>")
        ll.addWidget(title)
        ll.addLayout(left_buttons)
        ll.addWidget(scroll, 1)
        ll.addWidget(self.launch_button)

        # the runs
        self.studies_box = QComboBox()
        self.studies_box.setToolTip("The workspace's studies: pick one to watch it, resume it or read its results")
        self.studies_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.studies_box.setMinimumContentsLength(14)
        self.studies_box.activated.connect(self._study_chosen)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the study: runs in progress end as cancelled and resume later from "
                                    "their last checkpoint; queued runs stay planned")
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the study: finished runs are kept, interrupted runs resume, "
                                      "unstarted runs start")
        self.resume_button.clicked.connect(self.resume)
        self.open_run_button = QPushButton("Open run")
        self.open_run_button.setToolTip("Open the selected run into the training panels (or double-click it)")
        self.open_run_button.clicked.connect(self.open_selected_run)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        self.grid = RunsGrid()
        self.grid.doubleClicked.connect(lambda idx: self.open_run(self.grid.item(idx.row(), 0).data(RUN_ROLE)))
        self.grid.itemSelectionChanged.connect(self._update_actions)
        runs_head = QHBoxLayout()
        runs_head.addWidget(QLabel("<b>Runs</b>"))
        runs_head.addWidget(self.studies_box, 1)
        for b in (self.stop_button, self.resume_button, self.open_run_button):
            runs_head.addWidget(b)
        runs = QWidget()
        rl = QVBoxLayout(runs)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(runs_head)
        rl.addWidget(self.status_label)
        rl.addWidget(self.grid, 1)

        from workbench.gui.study_results import StudyResultsPanel
        self.results_panel = StudyResultsPanel()
        self.results_panel.compare_requested.connect(self.compare_requested)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(runs)
        right.addWidget(self.results_panel)
        right.setStretchFactor(0, 1)
        right.setStretchFactor(1, 3)
        self.right_splitter = right
        self._sized = False
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([460, 1000])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.splitter)

        self.timer = QTimer(self, interval=POLL_MS, timeout=self._drain)
        self.refresh_studies()
        self._update_actions()

    def showEvent(self, ev):
        super().showEvent(ev)
        if not self._sized and self.height() > 200:    # first shown: a quarter for the runs, the rest results
            self._sized = True
            h = self.right_splitter.height()
            self.right_splitter.setSizes([int(h * 0.27), int(h * 0.73)])
            rh = int(h * 0.73)
            self.results_panel.splitter.setSizes([int(rh * 0.4), int(rh * 0.6)])

    # -- helpers ------------------------------------------------------------------------
    def _store_workspace(self):
        if self.workspace is not None:
            return self.workspace
        from workbench.store import workspace_dir
        return workspace_dir()

    def _fill_presets(self):
        self.presets_box.clear()
        self.presets_box.addItem("Study presets…", "")
        try:
            names = list(S.list_study_presets()) if hasattr(S, "list_study_presets") else []
        except Exception:
            names = []
        if not names:
            try:
                from workbench.study import presets as SP
                names = list(SP.list_study_presets())
            except Exception:
                names = []
        for n in names:
            self.presets_box.addItem(str(n).replace("_", " "), n)
        self.presets_box.setEnabled(bool(names))

    def refresh_studies(self, select: str | None = None):
        """Fill the list of the workspace's studies (``select``: the record path to show as current)."""
        try:
            studies = S.list_studies(self._store_workspace())
        except Exception:
            studies = []
        self.studies_box.blockSignals(True)
        self.studies_box.clear()
        self.studies_box.addItem("(no study open)" if not studies else "Studies in the workspace…", "")
        for r in studies:
            c = r.counts()
            done = c.get("finished", 0)
            self.studies_box.addItem(f"{r.name} — {done}/{len(r.runs)} finished ({r.created[:16].replace('T', ' ')})",
                                     str(r.path))
        if select:
            i = self.studies_box.findData(str(select))
            if i >= 0:
                self.studies_box.setCurrentIndex(i)
        self.studies_box.blockSignals(False)

    def is_running(self) -> bool:
        return self.job is not None and self.job.is_alive()

    def _say(self, text: str, error: bool = False):
        color = "#d62728" if error else ""
        html = F.html_text(text)
        self.status_label.setToolTip(text)
        self.status_label.setText(f"<span style='color:{color}'>{html}</span>" if color else html)
        if error:
            self.last_error = text

    def _update_actions(self, *_):
        running = self.is_running()
        self.launch_button.setEnabled(not running and self.form.valid)
        tip = "Write the study's record and start its runs" if self.form.valid else \
            "The study has problems (see under the form)"
        self.launch_button.setToolTip(tip)
        self.stop_button.setEnabled(running and not self.job.cancel_event.is_set())
        unfinished = self.record is not None and any(r.status != "finished" for r in self.record.runs)
        self.resume_button.setEnabled(not running and unfinished)
        self.open_run_button.setEnabled(len(self.grid.selected_run_ids()) == 1)
        self.studies_box.setEnabled(not running)
        self.open_button.setEnabled(not running)
        self.presets_box.setEnabled(not running and self.presets_box.count() > 1)
        self.form.set_read_only(running)

    # -- launching -------------------------------------------------------------------
    def confirm_many_runs(self, message: str) -> bool:
        """Ask before a study larger than its limit starts (tests replace this)."""
        answer = QMessageBox.question(self, "A large study", message[0].upper() + message[1:] + ".",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def launch(self) -> bool:
        """Write the study's record and start it; False (and a sentence under the form) if it cannot."""
        if self.is_running():
            return False
        problems = self.form.validate_now()
        defn = self.form.definition_cache
        if problems or defn is None:
            self._say("The study has problems; see under the form.", error=True)
            return False
        if self.form.confirm_message and not self.confirm_many_runs(self.form.confirm_message):
            self._say("Not launched.")
            return False
        try:
            workspace = self._store_workspace()
        except Exception as e:  # the workspace folder cannot be created
            self._say(f"the study could not be created: {e}", error=True)
            return False
        self._start(None, "Started", defn, workspace)
        return True

    def resume(self) -> bool:
        """Continue the shown study: finished runs are kept, the others continue or start."""
        if self.is_running() or self.record is None:
            return False
        try:
            record = S.open_record(self.record.path)
            record.refresh()
        except S.StudyError as e:
            self._say(e.problems[0], error=True)
            return False
        failed = sum(r.status == "failed" for r in record.runs)
        retry = bool(failed) and self.ask_retry_failed(failed)
        if not retry and all(r.status in ("finished", "failed") for r in record.runs):
            self._say("Nothing to resume: every run has finished or failed.")
            return False
        self._start(record, "Resumed", retry_failed=retry)
        return True

    def ask_retry_failed(self, n: int) -> bool:
        """Whether a resume also runs the failed runs again (their old files are kept aside)."""
        answer = QMessageBox.question(self, "Failed runs",
                                      f"{n} run{'s' if n != 1 else ''} of this study failed. Run "
                                      f"{'them' if n != 1 else 'it'} again as well? (The failed session files "
                                      "are kept beside the new ones.)",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _start(self, record, verb: str, definition=None, workspace=None, retry_failed: bool = False):
        self.record = record
        self.results = None
        self.results_panel.clear("The results appear here once runs have finished.")
        self.last_error = ""
        backend = self.form.backend()
        self._where = "a local pool of worker processes" if backend == "local" else "Ray"
        self._verb = verb
        if record is not None:
            self._show_started(record)
        else:
            self.grid.setRowCount(0)
            self._say(f"Planning {definition.name}: {S.count_runs(definition)} runs…")
        if backend == "ray":
            _import_ray_here()
        self.job = StudyJob(record, backend, self.form.workers(), self.form.address(), definition, workspace,
                            retry_failed)
        self.job.start()
        self.timer.start()
        self._update_actions()

    def _show_started(self, record):
        self.record = record
        self.grid.set_record(record)
        self._say(f"{self._verb} {record.name}: {len(record.runs)} runs on {self._where}; "
                  f"the record is {record.path}")
        self.refresh_studies(select=str(record.path))

    def stop(self):
        """Ask the runner to stop after the runs' current meta-steps."""
        if self.is_running() and not self.job.cancel_event.is_set():
            self.job.stop()
            self._say("Stopping: the runs in progress end after their current meta-step…")
            self._update_actions()

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait for the study's thread to end (tests, closing the window); True if it ended."""
        if self.job is None:
            return True
        self.job.thread.join(timeout)
        self._drain()
        return not self.job.is_alive()

    # -- updates -------------------------------------------------------------------
    def _drain(self):
        job = self.job
        ended = None
        while job is not None:
            try:
                item = job.queue.get_nowait()
            except queue.Empty:
                break
            if item[0] == "update":
                self.grid.apply(item[1])
            elif item[0] == "record":
                self._show_started(item[1])
            else:
                ended = item
        while True:
            try:
                kind, record, payload = self._results_queue.get_nowait()
            except queue.Empty:
                break
            self._aggregating = None
            if record is not self.record:
                continue
            if kind == "results":
                self.results = payload
                self.results_panel.set_results(payload, record)
                self.results_ready.emit()
            else:
                self.results = None
                self.results_panel.clear(f"No results yet: {payload}")
        if ended is not None:
            self._ended(*ended)
        elif (job is None or not job.is_alive()) and self._aggregating is None:
            self.timer.stop()
        self._update_actions()

    def _ended(self, kind, payload):
        if kind == "error":
            self._say(payload, error=True)
        else:
            self.record = payload
            self.grid.set_record(payload)
            c = payload.counts()
            parts = [f"{c[s]} {s}" for s in ("finished", "failed", "cancelled", "interrupted", "planned")
                     if c.get(s)]
            self._say(f"{payload.name}: " + ", ".join(parts) + ".")
        self.refresh_studies(select=str(self.record.path) if self.record is not None else None)
        self.compute_results()
        if self.record is not None:
            self.study_ended.emit(str(self.record.path))

    def compute_results(self):
        """Aggregate the shown study's finished runs off the UI thread (the panel says when)."""
        if self.record is None:
            return
        if not any(r.status == "finished" for r in self.record.runs):
            self.results_panel.clear("No run has finished yet: the results appear here when some have.")
            return
        self.results_panel.clear("Computing the results…")
        self._aggregating = _AggregateJob(self.record, self._results_queue)
        self.timer.start()

    # -- opening studies and runs ---------------------------------------------------
    def _study_chosen(self, index: int):
        path = self.studies_box.itemData(index)
        if path:
            self.show_study(path)

    def show_study(self, path) -> bool:
        """Show a study's record: its definition in the form, its runs in the grid, its results."""
        if self.is_running():
            return False
        try:
            record = S.open_record(path)
            record.refresh()
            defn = record.definition()
        except S.StudyError as e:
            self._say(e.problems[0] if e.problems else str(e), error=True)
            return False
        except Exception as e:  # a session that cannot be read while refreshing
            self._say(f"the study at {path} cannot be read: {e}", error=True)
            return False
        self.record = record
        self.form.set_definition(defn)
        self.grid.set_record(record)
        c = record.counts()
        parts = [f"{c[s]} {s}" for s in ("finished", "running", "failed", "cancelled", "interrupted", "planned")
                 if c.get(s)]
        self._say(f"{record.name}: " + ", ".join(parts) + f". Record: {record.path}")
        self.refresh_studies(select=str(record.path))
        self.compute_results()
        self._update_actions()
        return True

    def open_run(self, run_id: str):
        path = self.grid.paths.get(run_id)
        if not path:
            return
        if not Path(path).exists():
            self._say(f"run {run_id} has not started yet: it has no session file", error=True)
            return
        self.open_session_requested.emit(path)

    def open_selected_run(self):
        ids = self.grid.selected_run_ids()
        if len(ids) == 1:
            self.open_run(ids[0])

    def _preset_chosen(self, index: int):
        name = self.presets_box.itemData(index)
        self.presets_box.setCurrentIndex(0)
        if not name:
            return
        try:
            loader = getattr(S, "load_study_preset", None)
            if loader is None:
                from workbench.study.presets import load_study_preset as loader
            defn = loader(name)
        except S.StudyError as e:
            self._say(e.problems[0], error=True)
            return
        self.form.set_definition(defn)

    def open_dialog(self):
        from workbench.gui.plot_export import last_dir, remember_dir
        fn, _ = QFileDialog.getOpenFileName(self, "Open a study", last_dir(),
                                            "Studies (*.toml study.json);;All files (*)")
        if fn:
            remember_dir(fn)
            self.open_path(fn)

    def open_path(self, fn: str) -> bool:
        """A study TOML into the form, or a ``study.json`` (or its folder) as the shown study."""
        p = Path(fn)
        if p.is_dir() or p.name == "study.json":
            return self.show_study(p)
        try:
            defn = S.load_study(p)
        except S.StudyError as e:
            self._say(e.problems[0], error=True)
            return False
        known = {fi.key for fi in self.form.fields}
        lost = [k for k in defn.grid if k not in known]
        self.form.set_definition(defn)
        if lost:
            problems = [problem_sentence(q, self.form.titles) for q in check_definition(defn)[0]
                        if any(q.key.endswith("." + k) for k in lost)]
            self._say(f"{p.name} has problems: " + "; ".join(problems or [f"{k} cannot be varied here"
                                                                           for k in lost]), error=True)
            return False
        self._say(f"Loaded {p}")
        return True

    def save_dialog(self):
        from workbench.gui.plot_export import last_dir, remember_dir
        defn = self.form.definition_cache
        if defn is None:
            self._say("The study has problems; see under the form.", error=True)
            return
        name = "".join(c if c.isalnum() else "_" for c in defn.name).strip("_") or "study"
        fn, _ = QFileDialog.getSaveFileName(self, "Save the study", str(Path(last_dir()) / f"{name}.toml"),
                                            "Study (*.toml)")
        if fn:
            remember_dir(fn)
            self.save(fn)

    def save(self, fn) -> bool:
        defn = self.form.definition_cache
        if defn is None:
            return False
        try:
            Path(fn).write_text(S.study_to_toml(defn), encoding="utf-8")
        except OSError as e:
            self._say(f"{fn} cannot be written: {e.strerror or e}", error=True)
            return False
        self._say(f"Saved {fn}")
        return True

    # -- closing -----------------------------------------------------------------------
    def confirm_stop_and_close(self) -> bool:
        answer = QMessageBox.question(
            self, "A study is running",
            "A study is still running. Stop it and close? Finished runs are kept; the others resume later.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop a running study and wait for its thread (the window is closing)."""
        if self.is_running():
            self.job.stop()
            self.wait(timeout)
        self.timer.stop()


# --------------------------------------------------------------------------
# the main window's tab
# --------------------------------------------------------------------------
class _WindowHooks(QObject):
    """The Studies tab's side of the main window: docks out of the way while it shows, and a running
    study stopped (after asking) before the window closes."""

    def __init__(self, window, tabs: QTabWidget, view: StudiesView):
        super().__init__(window)
        self.window, self.tabs, self.view = window, tabs, view
        self.hidden: list = []
        tabs.currentChanged.connect(self._tab_changed)
        window.installEventFilter(self)

    def _tab_changed(self, index: int):
        from PySide6.QtWidgets import QDockWidget
        if self.tabs.widget(index) is self.view:
            self.hidden = [d for d in self.window.findChildren(QDockWidget)
                           if d.isVisibleTo(self.window) and not d.isFloating()]
            for d in self.hidden:
                d.hide()
            self.view.form.refresh_base()
        else:
            for d in self.hidden:
                d.show()
            self.hidden = []

    def eventFilter(self, obj, event):
        if obj is self.window and event.type() == QEvent.Type.Close:
            if self.view.is_running():
                if not self.view.confirm_stop_and_close():
                    event.ignore()
                    return True
                self.view.shutdown()
            self.tabs.setCurrentIndex(0)        # the docks come back before the window saves its layout
        return False


def install(window) -> StudiesView:
    """Add the Studies tab to ``window`` (a :class:`~workbench.gui.main_window.MainWindow`): a tab of its
    central views (beside the curves); the view starts from the window's experiment form, opens runs into
    its panels and cells into its compare view. While the tab shows, the docks step aside."""
    def base():
        return window.form.current_config()[0]
    view = StudiesView(base_config=base)
    if isinstance(getattr(window, "views", None), QTabWidget) and hasattr(window, "add_view"):
        tabs = window.views
        window.add_view(view, "Studies")
    else:                                   # a window without central tabs: make them
        tabs = QTabWidget()
        tabs.setObjectName("central_tabs")
        tabs.setDocumentMode(True)
        central = window.takeCentralWidget()
        tabs.addTab(central, "Training")
        tabs.addTab(view, "Studies")
        window.setCentralWidget(tabs)

    def open_run(path):
        tabs.setCurrentIndex(0)
        window.open_session(path)
    view.open_session_requested.connect(open_run)
    view.compare_requested.connect(window.open_compare)
    window.form.changed.connect(view.form.refresh_base)
    window.studies_tabs = tabs
    window._studies_hooks = _WindowHooks(window, tabs, view)
    return view
