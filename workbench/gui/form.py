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
under the field they name and in the problems area below the form, and
:attr:`ExperimentForm.valid` is False, so the window's Run stays disabled.
The form never hands out a config the engine would reject.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QMenu, QScrollArea, QSizePolicy, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from workbench import config as C
from workbench import registry

SECTION_TITLES = {"": "Experiment", "data": "Data", "split": "Task split", "task": "Episodes (N-way, K-shot)",
                  "model": "Backbone", "learner": "Meta-learner", "embedding": "Task embedding",
                  "train": "Meta-training", "eval": "Final test"}
INT32_MAX = 2**31 - 1


def label_for(fi: C.FieldInfo) -> str:
    """The field's on-screen name, as the config declares it."""
    return fi.label


def is_log_range(fi: C.FieldInfo) -> bool:
    """A float field whose range spans three or more decades (learning rates): a typed number."""
    return fi.min is not None and fi.max is not None and fi.min > 0 and fi.max / fi.min >= 1e3


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
                    return None, f"{fi.key} is empty: enter a number"
                v = C.parse_value(fi, text)
                if fi.type is float and not math.isfinite(v):
                    return None, f"{fi.key} = {text!r}: must be a finite number"
            else:
                v = w.text().strip() if fi.kind == "path" else w.text()
        except C.ConfigError as e:
            return None, e.problems[0]
        problem = C.check_value(fi, v)
        return (None, problem.message) if problem else (v, None)

    def show_problem(self, text: str | None):
        self.error.setText(text or "")
        self.error.setVisible(bool(text))


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
    """Edits an :class:`~workbench.config.ExperimentConfig`; emits ``changed`` and ``validity_changed``."""

    changed = Signal()
    validity_changed = Signal(bool)

    def __init__(self, cfg: C.ExperimentConfig | None = None, parent=None):
        super().__init__(parent)
        self.schema = C.schema()
        self.editors: dict[str, FieldEditor] = {}
        self.groups: dict[str, QGroupBox] = {}
        self.advanced: dict[str, _Advanced] = {}
        self._base = cfg or C.default_config()
        self._valid = False
        self.problems: list[str] = []
        self._loading = False

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
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
        outer.addWidget(self.problem_box)

        for fi in self.schema:
            self._add_field(fi)
        for sec, adv in self.advanced.items():
            self.groups[sec].layout().addRow(adv)
        self._inner.addStretch(1)
        self.set_config(self._base)

    def _group(self, section: str) -> QGroupBox:
        g = self.groups.get(section)
        if g is None:
            g = QGroupBox(SECTION_TITLES.get(section, section.capitalize()))
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
        else:
            group.layout().addRow(label, ed)
        ed.label = label

    # -- config in and out ------------------------------------------------------------------
    def set_config(self, cfg: C.ExperimentConfig):
        """Show ``cfg`` in the form (a preset, a loaded TOML file, a session's config)."""
        self._base = copy.deepcopy(cfg)
        self._loading = True
        try:
            for key, ed in self.editors.items():
                ed.set_value(cfg.get(key))
        finally:
            self._loading = False
        self._on_changed()

    def current_config(self) -> tuple[C.ExperimentConfig, list[str]]:
        """The config the form shows now, and its problems (empty when it can run)."""
        cfg = copy.deepcopy(self._base)
        field_problems: dict[str, str] = {}
        for key, ed in self.editors.items():
            v, problem = ed.value()
            if problem:
                field_problems[key] = problem
                continue
            cfg.set(key, v)
        problems = list(field_problems.values())
        if not problems:
            problems = [p.message for p in C.validate(cfg)]
            d = cfg.data
            if not problems and registry.datasets.get(d.dataset).needs_path:
                p = Path(d.path).expanduser()
                if not p.exists():
                    problems.append(f"data.path = {d.path!r}: no such file or folder; pick the {d.dataset} data "
                                    "with Browse")
        return cfg, problems

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
        cfg, problems = self.current_config()
        self.problems = problems
        self._update_relevance(cfg)
        shown: dict[str, list[str]] = {}
        for p in problems:
            key = self._key_of(p)
            if key:
                shown.setdefault(key, []).append(p)
        for key, ed in self.editors.items():
            ed.show_problem("\n".join(shown.get(key, [])) or None)
            if shown.get(key) and ed.fi.advanced:
                self.advanced[ed.fi.section].set_open(True)
        if problems:
            items = "".join(f"<li>{_esc(p)}</li>" for p in problems)
            self.problem_box.setText(f"<b>Cannot run yet:</b><ul style='margin:0'>{items}</ul>")
            self.problem_box.setStyleSheet("QLabel#problems { color: #d62728; }")
        else:
            self.problem_box.setText("Ready to run.")
            self.problem_box.setStyleSheet("")
        valid = not problems
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)
        self.changed.emit()

    def _key_of(self, problem: str) -> str | None:
        best = None
        for key in self.editors:
            if problem.startswith(key) and problem[len(key):len(key) + 1] in (" ", ":", ""):
                if best is None or len(key) > len(best):
                    best = key
        return best

    def _update_relevance(self, cfg: C.ExperimentConfig):
        """Grey out fields the chosen dataset does not use."""
        for ed in self.editors.values():       # what applies is the config's knowledge (FieldInfo.applies)
            ed.setEnabled(ed.fi.applies(cfg))

    def set_read_only(self, ro: bool):
        """Lock the form while a run uses it."""
        for g in self.groups.values():
            g.setEnabled(not ro)


def _esc(s: str) -> str:
    import html
    return html.escape(s)
