"""The experiment form, generated from the config schema (:func:`workbench.config.schema`).

No widget is written by hand for a field: each :class:`~workbench.config.FieldInfo`
picks its editor from its type and metadata --

=====================================  ==========================================
field                                  editor
=====================================  ==========================================
``choices``                            QComboBox
``int`` with min/max                   QSpinBox with that range
``float``, narrow range                QDoubleSpinBox (3-4 decimals)
``float``, wide log range (lr's)       line edit, parsed and range-checked
``bool``                               QCheckBox
``kind="path"``                        line edit + file/folder picker, existence checked
``list`` with choices                  a check box per choice
other ``list``                         comma-separated line edit
other ``str``                          line edit
=====================================  ==========================================

-- its help text becomes the tooltip, and ``advanced`` fields fold into an
"Advanced" part of their section. A new learner or hyper-parameter in the
schema appears here with no GUI change.

Every change re-validates: a field's own problem (a bad number, a missing
path) shows under the field; cross-field problems from
:func:`workbench.config.validate` (e.g. protonet on sinusoid regression) show
under the field they name and in the problems area below the form -- fields
named by their on-screen label, never by the config key -- and
:attr:`ExperimentForm.valid` is False, so the window's Run stays disabled.
The form never hands out a config the engine would reject.

Fields that do not apply to the chosen learner, data and backbone
(:meth:`workbench.config.FieldInfo.applies`: inner-loop settings for ProtoNet,
ways for regression) are hidden, and their values never block Run. The data
source itself is checked in the background when it or the episode shape
changes (:mod:`workbench.gui.datacheck`). The experiment's name follows the
dataset, learner and episode shape until the user types one. A spin box or
combo box takes the mouse wheel only when it has the focus, so scrolling the
form never changes a value.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractScrollArea, QAbstractSpinBox, QApplication, QCheckBox, QComboBox,
                               QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QMenu, QScrollArea, QSizePolicy, QSpinBox, QToolButton, QVBoxLayout,
                               QWidget)

from workbench import config as C
from workbench import format as F
from workbench import registry
from workbench.fields import section_title

INT32_MAX = 2**31 - 1


def label_for(fi: C.FieldInfo) -> str:
    """The field's on-screen name, as the config declares it."""
    return fi.label


def is_log_range(fi: C.FieldInfo) -> bool:
    """A float field whose range spans three or more decades (learning rates): a typed number."""
    return fi.min is not None and fi.max is not None and fi.min > 0 and fi.max / fi.min >= 1e3


SHORT_LEARNER_NAMES = {"protonet": "ProtoNet", "matching": "MatchingNet", "metasgd": "Meta-SGD",
                       "fomaml": "FOMAML", "protonet_film": "FiLM ProtoNet"}
DATA_CHECK_DELAY_MS = 400


def auto_name(cfg: C.ExperimentConfig) -> str:
    """The name an experiment gets from its setting: ``Digits MAML 5-way 1-shot``."""
    dspec = registry.datasets.get(cfg.data.dataset)
    data = dspec.label.replace(" (ships)", "")
    lname = cfg.learner.name
    learner = SHORT_LEARNER_NAMES.get(lname) or (registry.learners.get(lname).label if lname in registry.learners
                                                 else lname)
    setting = F.episode_setting(cfg.task.ways, cfg.task.shots, cfg.is_regression)
    if cfg.is_regression:
        setting = f"K={cfg.task.shots}"
    return f"{data} {learner} {setting}".strip()


class WheelGuard(QObject):
    """Only a focused spin box or combo box takes the mouse wheel; otherwise the wheel scrolls the
    form (or does nothing), so scrolling past a field never changes its value."""

    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Wheel and isinstance(obj, (QAbstractSpinBox, QComboBox)) and not obj.hasFocus():
            area = obj.parent()
            while area is not None and not isinstance(area, QAbstractScrollArea):
                area = area.parent()
            if area is not None:
                QApplication.sendEvent(area.verticalScrollBar(), ev)
            return True
        return False


_wheel_guard: WheelGuard | None = None


def guard_wheel(root: QWidget) -> None:
    """Install the :class:`WheelGuard` on every spin box and combo box under ``root``."""
    global _wheel_guard
    if _wheel_guard is None:
        _wheel_guard = WheelGuard(QApplication.instance())
    widgets = root.findChildren(QAbstractSpinBox) + root.findChildren(QComboBox)
    if isinstance(root, (QAbstractSpinBox, QComboBox)):
        widgets.append(root)
    for w in widgets:
        w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        w.removeEventFilter(_wheel_guard)
        w.installEventFilter(_wheel_guard)


def _fmt_float(v: float) -> str:
    return repr(float(v)) if (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5)) else f"{v:.10g}"


class FieldEditor(QWidget):
    """One field's editor and, under it, the field's problem (hidden when there is none)."""

    changed = Signal()

    def __init__(self, fi: C.FieldInfo, parent=None):
        super().__init__(parent)
        self.fi = fi
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setObjectName("fieldProblem")
        self.error.setStyleSheet("color: #d62728;")
        self.error.hide()
        lay.addWidget(self.error)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setProperty("role", "hint")
        self.hint.hide()
        lay.addWidget(self.hint)
        self.editor = self._make_editor(row)
        tip = fi.help + self._range_hint()
        for w in (self, self.editor):
            w.setToolTip(tip)

    def _range_hint(self) -> str:
        fi = self.fi
        if fi.choices and fi.type is not list:
            return ""
        if fi.min is not None and fi.max is not None:
            return f"\nAllowed: {fi.min:g} to {fi.max:g}"
        return ""

    # -- editors by type --------------------------------------------------------------
    def _make_editor(self, row: QHBoxLayout) -> QWidget:
        fi = self.fi
        if fi.type is list and fi.choices:
            box = QWidget()
            grid = QHBoxLayout(box)
            grid.setContentsMargins(0, 0, 0, 0)
            self.checks = {}
            for c in fi.choices:
                cb = QCheckBox(str(c))
                cb.toggled.connect(self.changed)
                grid.addWidget(cb)
                self.checks[c] = cb
            grid.addStretch(1)
            row.addWidget(box)
            return box
        if fi.choices:
            w = QComboBox()
            w.addItems([str(c) for c in fi.choices])
            w.currentIndexChanged.connect(self.changed)
        elif fi.type is bool:
            w = QCheckBox()
            w.toggled.connect(self.changed)
        elif fi.type is int:
            w = QSpinBox()
            w.setRange(int(fi.min if fi.min is not None else -INT32_MAX),
                       int(min(fi.max if fi.max is not None else INT32_MAX, INT32_MAX)))
            w.setGroupSeparatorShown(fi.max is not None and fi.max >= 100_000)
            w.setAccelerated(True)
            w.valueChanged.connect(self.changed)
        elif fi.type is float and not is_log_range(fi):
            w = QDoubleSpinBox()
            span = (fi.max or 1.0) - (fi.min or 0.0)
            w.setDecimals(3 if span <= 10 else 2)
            w.setRange(fi.min if fi.min is not None else -1e9, fi.max if fi.max is not None else 1e9)
            w.setSingleStep(0.05 if span <= 1 else 0.1)
            w.valueChanged.connect(self.changed)
        else:
            w = QLineEdit()
            if fi.type is float:
                w.setPlaceholderText(f"a number from {fi.min:g} to {fi.max:g}, e.g. 1e-3")
            elif fi.type is list:
                w.setPlaceholderText("comma-separated, e.g. " + ("64, 64" if fi.item_type is int else "a, b, c"))
            elif fi.kind == "path":
                w.setPlaceholderText("file or folder with the data")
            w.textChanged.connect(self.changed)
        w.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        row.addWidget(w, 1)
        if fi.kind == "path":
            self.browse = QToolButton()
            self.browse.setText("Browse…")
            self.browse.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
            menu = QMenu(self.browse)
            menu.addAction("File (zip, csv, pkl, h5)…", lambda: self._pick(folder=False))
            menu.addAction("Folder…", lambda: self._pick(folder=True))
            self.browse.setMenu(menu)
            self.browse.setToolTip("Pick the data file or folder")
            row.addWidget(self.browse)
        return w

    def _pick(self, folder: bool):
        start = self.editor.text().strip() or self.property("last_folder") or str(Path.home())
        if folder:
            fn = QFileDialog.getExistingDirectory(self, "Data folder", start)
        else:
            fn, _ = QFileDialog.getOpenFileName(self, "Data file", start,
                                                "Data files (*.zip *.csv *.pkl *.pickle *.h5 *.hdf5);;All files (*)")
        if fn:
            self.editor.setText(fn)

    # -- values -------------------------------------------------------------------------
    def set_value(self, v):
        fi, w = self.fi, self.editor
        self.blockSignals(True)
        try:
            if fi.type is list and fi.choices:
                for c, cb in self.checks.items():
                    cb.setChecked(c in v)
            elif fi.choices:
                i = w.findText(str(v))
                w.setCurrentIndex(max(0, i))
            elif fi.type is bool:
                w.setChecked(bool(v))
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                w.setValue(v)
            elif fi.type is float:
                w.setText(_fmt_float(v))
            elif fi.type is list:
                w.setText(", ".join(str(x) for x in v))
            else:
                w.setText(str(v))
                w.setCursorPosition(0)          # a long name shows its start
        finally:
            self.blockSignals(False)

    def value(self):
        """(value, problem): the editor's value in the field's type, or a one-sentence problem."""
        fi, w = self.fi, self.editor
        try:
            if fi.type is list and fi.choices:
                v = [c for c, cb in self.checks.items() if cb.isChecked()]
            elif fi.choices:
                v = fi.choices[w.currentIndex()]
            elif fi.type is bool:
                v = w.isChecked()
            elif isinstance(w, QSpinBox):
                v = int(w.value())
            elif isinstance(w, QDoubleSpinBox):
                v = float(w.value())
            elif fi.type in (float, list, int):
                text = w.text()
                if fi.type is not list and not text.strip():
                    return None, "is empty: enter a number"
                v = C.parse_value(fi, text)
                if fi.type is float and not math.isfinite(v):
                    return None, f"{text!r} is not a finite number"
            else:
                v = w.text().strip() if fi.kind == "path" else w.text()
        except C.ConfigError as e:
            return None, _detail(fi.key, e.items[0])
        problem = C.check_value(fi, v)
        return (None, _detail(fi.key, problem)) if problem else (v, None)

    def show_problem(self, text: str | None):
        self.error.setText(text or "")
        self.error.setVisible(bool(text))

    def show_hint(self, text: str | None):
        """A grey note under the field (e.g. "checking the data…")."""
        self.hint.setText(text or "")
        self.hint.setVisible(bool(text))


def _detail(key: str, problem: C.Problem) -> str:
    """A problem without its "key = value:" prefix: the form shows the field's label beside it."""
    if problem.detail and problem.detail != problem.message:
        return problem.detail
    text = problem.message
    if key and text.startswith(key):
        rest = text[len(key):]
        if rest.startswith(" = "):
            cut = rest.find(": ")
            return rest[cut + 2:] if cut >= 0 else rest[3:]
        if rest.startswith(": ") or rest.startswith(" "):
            return rest.lstrip(": ").lstrip()
    return text


class _Advanced(QWidget):
    """A collapsible "Advanced" part of a section."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.toggle = QToolButton()
        self.toggle.setText("Advanced")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.body = QWidget()
        self.form = QFormLayout(self.body)
        self.form.setContentsMargins(12, 0, 0, 0)
        self.body.hide()
        lay.addWidget(self.toggle)
        lay.addWidget(self.body)
        self.toggle.toggled.connect(self.set_open)

    def set_open(self, on: bool):
        self.toggle.setChecked(on)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.body.setVisible(on)


class ExperimentForm(QWidget):
    """Edits an :class:`~workbench.config.ExperimentConfig`; emits ``changed`` and ``validity_changed``.

    ``check_data``: check the data source in a background process when it or the episode shape
    changes (on in the window; tests of the form alone may leave it off)."""

    changed = Signal()
    validity_changed = Signal(bool)
    data_checked = Signal()             # a background data check has answered (tests wait on it)

    def __init__(self, cfg: C.ExperimentConfig | None = None, parent=None, check_data: bool = True):
        super().__init__(parent)
        self.schema = C.schema()
        self.editors: dict[str, FieldEditor] = {}
        self.groups: dict[str, QGroupBox] = {}
        self.advanced: dict[str, _Advanced] = {}
        self._base = cfg or C.default_config()
        self._valid = False
        self.problems: list[str] = []               # one sentence per problem, fields named by label
        self.field_problems: dict[str, list[str]] = {}
        self._loading = False
        self.name_follows = True                    # the name follows the setting until the user types one
        self._last_auto = None
        self.checker = None
        self._data_key = None                       # what the last data check was about
        self._data_problem: tuple[str, str] = ("", "")
        self._data_checking = False
        self._check_timer = QTimer(self, singleShot=True, interval=DATA_CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self._start_data_check)
        if check_data:
            from workbench.gui.datacheck import DataChecker
            self.checker = DataChecker(self)
            self.checker.checked.connect(self._on_data_checked)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll = scroll
        inner = QWidget()
        self._inner = QVBoxLayout(inner)
        scroll.setWidget(inner)
        outer.addWidget(scroll, 1)
        self.problem_box = QLabel()
        self.problem_box.setObjectName("problems")
        self.problem_box.setWordWrap(True)
        self.problem_box.setTextFormat(Qt.TextFormat.RichText)
        self.problem_box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem_box.setContentsMargins(6, 4, 6, 4)
        self.problem_box.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        outer.addWidget(self.problem_box)

        for fi in self.schema:
            self._add_field(fi)
        for sec, adv in self.advanced.items():
            self.groups[sec].layout().addRow(adv)
        self._inner.addStretch(1)
        name_editor = self.editors.get("name")
        if name_editor is not None and isinstance(name_editor.editor, QLineEdit):
            name_editor.editor.textEdited.connect(self._name_edited)
        guard_wheel(self)
        if self.checker is not None:
            # the experiment the window opens with is not checked at start-up (a process reading the
            # data would compete with the engine process starting); what is loaded or edited later is
            from workbench.gui.datacheck import check_key
            self._data_key = check_key(self._base)
        self.set_config(self._base)
        self.setMinimumWidth(260)

    def _group(self, section: str) -> QGroupBox:
        g = self.groups.get(section)
        if g is None:
            g = QGroupBox(section_title(section))
            form = QFormLayout(g)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
            self._inner.addWidget(g)
            self.groups[section] = g
        return g

    def _add_field(self, fi: C.FieldInfo):
        ed = FieldEditor(fi)
        ed.setObjectName(fi.key)
        ed.changed.connect(self._on_changed)
        self.editors[fi.key] = ed
        label = QLabel(label_for(fi))
        label.setToolTip(fi.help)
        label.setBuddy(ed.editor)
        group = self._group(fi.section)
        if fi.advanced:
            adv = self.advanced.get(fi.section)
            if adv is None:
                adv = self.advanced[fi.section] = _Advanced()
            adv.form.addRow(label, ed)
            ed.row_layout = adv.form
        else:
            group.layout().addRow(label, ed)
            ed.row_layout = group.layout()
        ed.label = label

    # -- config in and out ------------------------------------------------------------------
    def set_config(self, cfg: C.ExperimentConfig):
        """Show ``cfg`` in the form (a preset, a loaded TOML file, a session's config). Its name is
        kept, and follows later changes of the setting until the user types a name."""
        self._base = copy.deepcopy(cfg)
        self._loading = True
        try:
            for key, ed in self.editors.items():
                ed.set_value(cfg.get(key))
        finally:
            self._loading = False
        self.name_follows = True
        self._last_auto = self._setting_key(cfg)
        self._on_changed()

    def _name_edited(self, *_):
        self.name_follows = False

    @staticmethod
    def _setting_key(cfg: C.ExperimentConfig) -> tuple:
        return (cfg.data.dataset, cfg.learner.name, cfg.task.ways, cfg.task.shots)

    def _collect(self) -> tuple[C.ExperimentConfig, dict[str, str]]:
        """The config the editors show, and each applying field's own problem."""
        cfg = copy.deepcopy(self._base)
        own: dict[str, str] = {}
        for key, ed in self.editors.items():
            v, problem = ed.value()
            if problem:
                own[key] = problem
                continue
            cfg.set(key, v)
        # a field that does not apply to this experiment never blocks it (its old value stays)
        own = {k: p for k, p in own.items() if self.editors[k].fi.applies(cfg)}
        return cfg, own

    def _all_problems(self, cfg: C.ExperimentConfig, own: dict[str, str]) -> dict[str, list[str]]:
        """Field key ('' for the whole experiment) -> problems, in the words shown under the field."""
        shown: dict[str, list[str]] = {k: [p] for k, p in own.items()}
        if not own:
            for p in C.validate(cfg):
                key = p.key if p.key in self.editors else ""
                shown.setdefault(key, []).append(_detail(key, p) if key else p.message)
            d = cfg.data
            if not shown and registry.datasets.get(d.dataset).needs_path:
                path = Path(d.path).expanduser()
                if not path.exists():
                    shown.setdefault("data.path", []).append(
                        f"no such file or folder: {d.path}; pick the {registry.datasets.get(d.dataset).label} "
                        "data with Browse")
            if not shown:
                key, problem = self._data_problem
                from workbench.gui.datacheck import check_key
                if problem and self._data_key == check_key(cfg):
                    shown.setdefault(key if key in self.editors else "data.path", []).append(problem)
        return shown

    def sentence(self, key: str, problem: str) -> str:
        """A problem as one sentence that names its field by the label the form shows."""
        if not key:
            return problem
        fi = self.editors[key].fi
        section = section_title(fi.section)
        return f"{fi.label} ({section}): {problem}" if fi.section else f"{fi.label}: {problem}"

    def current_config(self) -> tuple[C.ExperimentConfig, list[str]]:
        """The config the form shows now, and its problems (empty when it can run)."""
        cfg, own = self._collect()
        shown = self._all_problems(cfg, own)
        return cfg, [self.sentence(k, p) for k, ps in shown.items() for p in ps]

    def config(self) -> C.ExperimentConfig | None:
        """The config to run, or None while the form has problems."""
        cfg, problems = self.current_config()
        if problems:
            return None
        return C.check(cfg)

    @property
    def valid(self) -> bool:
        return self._valid

    def editor(self, key: str) -> QWidget:
        """The input widget of field ``key`` (for tests and shortcuts)."""
        return self.editors[key].editor

    # -- validation -----------------------------------------------------------------------
    def _on_changed(self):
        if self._loading:
            return
        cfg, own = self._collect()
        self._follow_name(cfg)
        self._update_relevance(cfg)
        shown = self._all_problems(cfg, own)
        self.field_problems = shown
        self.problems = [self.sentence(k, p) for k, ps in shown.items() for p in ps]
        for key, ed in self.editors.items():
            ed.show_problem("\n".join(shown.get(key, [])) or None)
            if shown.get(key) and ed.fi.advanced:
                self.advanced[ed.fi.section].set_open(True)
        if self.problems:
            items = "".join(f"<li>{F.html_text(p)}</li>" for p in self.problems)
            self.problem_box.setText(f"<b>Cannot run yet:</b><ul style='margin:0'>{items}</ul>")
            self.problem_box.setStyleSheet("QLabel#problems { color: #d62728; }")
        elif self._data_checking:
            self.problem_box.setText("Ready to run (checking the data in the background…).")
            self.problem_box.setStyleSheet("")
        else:
            self.problem_box.setText("Ready to run.")
            self.problem_box.setStyleSheet("")
        valid = not self.problems
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)
        self._schedule_data_check(cfg)
        self.changed.emit()

    def _follow_name(self, cfg: C.ExperimentConfig):
        """A name the user has not typed follows the dataset, learner and episode shape."""
        key = self._setting_key(cfg)
        if self.name_follows and key != self._last_auto:
            self._last_auto = key
            name = auto_name(cfg)
            ed = self.editors.get("name")
            if ed is not None and ed.value()[0] != name:
                ed.set_value(name)
            cfg.name = name

    def _update_relevance(self, cfg: C.ExperimentConfig):
        """Hide the fields the chosen learner, data and backbone do not use (the config's knowledge:
        FieldInfo.applies), and a group or "Advanced" part left with nothing to show."""
        visible_in: dict[int, bool] = {}
        for ed in self.editors.values():
            on = bool(ed.fi.applies(cfg))
            ed.row_layout.setRowVisible(ed, on)
            ed.setEnabled(on)
            visible_in[id(ed.row_layout)] = visible_in.get(id(ed.row_layout), False) or on
        for sec, adv in self.advanced.items():
            adv.setVisible(visible_in.get(id(adv.form), False))
        for sec, g in self.groups.items():
            lay = g.layout()
            any_on = visible_in.get(id(lay), False) or (sec in self.advanced and self.advanced[sec].isVisibleTo(g))
            g.setVisible(any_on)

    def set_read_only(self, ro: bool):
        """Lock the form while a run uses it."""
        for g in self.groups.values():
            g.setEnabled(not ro)

    # -- the data source, checked in the background ------------------------------------------
    def _schedule_data_check(self, cfg: C.ExperimentConfig):
        if self.checker is None:
            return
        from workbench.gui.datacheck import check_key
        key = check_key(cfg)
        if key is None or key == self._data_key or key == self.checker.pending:
            return
        d = cfg.data
        spec = registry.datasets.get(d.dataset)
        if spec.needs_path and (not d.path.strip() or not Path(d.path).expanduser().exists()):
            return                                   # said already: no such file
        self._check_cfg = copy.deepcopy(cfg)
        self._check_timer.start()

    def _start_data_check(self):
        from workbench.gui.datacheck import check_key
        cfg = self._check_cfg
        self._data_checking = True
        self.editors["data.dataset"].show_hint("checking the data…")
        self.checker.submit(check_key(cfg), cfg)

    def _on_data_checked(self, key, field: str, problem: str):
        if self.checker is None or key != self.checker.pending:
            return                                   # an answer about a setting since changed
        self.checker.pending = None
        self._data_checking = False
        self._data_key = key
        self._data_problem = (field, problem)
        self.editors["data.dataset"].show_hint(None)
        self._on_changed()
        self.data_checked.emit()

    def data_check_idle(self) -> bool:
        """No data check is waiting or running (tests)."""
        return not self._check_timer.isActive() and (self.checker is None or self.checker.pending is None)


def _esc(s: str) -> str:
    return F.html_text(s)
