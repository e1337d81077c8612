"""What the sessions browser knows about studies, notes, tags and config fields.

The browser (:mod:`workbench.gui.sessions`) calls into here so that this knowledge stays in one place:

- :func:`scan`: the session files of the workspace's studies (``studies/<name>/runs/*.h5``, or the
  sessions folder a record names) with their stamps, and which study, cell and seed each one is;
- :func:`extra_cells`: the browser's Study, Tags and Note columns for a session summary;
- :func:`accepts`: the filter. Every word must match: ``tag:NAME`` one of the session's tags,
  ``study:WORD`` its study's name, ``KEY=VALUE``, ``KEY!=VALUE``, ``KEY<VALUE``, ``KEY<=VALUE``,
  ``KEY>VALUE``, ``KEY>=VALUE`` a config field (``learner.inner_lr>=0.1``, ``task.shots=5``,
  ``learner.name=maml``; the field's label works too when it is one word), any other word the text
  of any column (name, dataset, learner, status, metric, date, study, cell, tags, note, file name);
- :func:`mount`: the study picker (all sessions / outside studies / one study) and the Note button
  that sets a session's note and tags (:func:`workbench.store.set_note`).

Configs are read only when a filter names a field, once per file version (kept in memory by path,
modification time and size).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QMessageBox,
                               QPlainTextEdit, QPushButton, QVBoxLayout)

from workbench import config as C

EXTRA_COLUMNS = ("Study", "Tags", "Note")
ALL, OUTSIDE = "", "\x00outside"
_FIELD_RE = re.compile(r"^([A-Za-z_][\w.]*)(<=|>=|!=|=|<|>)(.*)$")


@dataclass(frozen=True)
class StudyRun:
    """A session file that is a run of a study."""

    study: str              # the study's name
    record: str             # its study.json
    run_id: str
    cell: str               # the cell's label (``learner.name=maml, task.shots=5``)
    seed: int


_runs: dict[str, StudyRun] = {}                 # session path -> its study
_records: dict[str, tuple[int, list]] = {}      # study.json -> (mtime_ns, [(path, StudyRun)])
_configs: dict[str, tuple[tuple, object]] = {}  # session path -> (stamp, config or None)


def study_of(path) -> StudyRun | None:
    return _runs.get(os.path.normpath(str(path)))


def _record_runs(record_path: Path) -> list:
    """[(session path, StudyRun)] of one study record, re-read only when the record changed."""
    try:
        mtime = record_path.stat().st_mtime_ns
    except OSError:
        return []
    key = str(record_path)
    cached = _records.get(key)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    from workbench.study import StudyError, cell_label, open_record
    try:
        rec = open_record(record_path)
    except StudyError:
        return []
    out = [(os.path.normpath(str(rec.session_path(r))), StudyRun(rec.name, key, r.run_id, cell_label(r.cell),
                                                                  r.seed)) for r in rec.runs]
    _records[key] = (mtime, out)
    return out


def scan(workspace) -> dict[str, tuple[int, int]]:
    """{session path: (mtime_ns, size)} of every existing run of the workspace's studies; also
    remembers which study each belongs to (:func:`study_of`)."""
    base = Path(workspace) / "studies"
    out: dict[str, tuple[int, int]] = {}
    try:
        records = [Path(e.path) / "study.json" for e in os.scandir(base) if e.is_dir()]
    except OSError:
        records = []
    seen = set()
    for rp in records:
        for path, run in _record_runs(rp):
            try:
                st = os.stat(path)
            except OSError:
                continue
            _runs[path] = run
            seen.add(path)
            out[path] = (st.st_mtime_ns, st.st_size)
    mine = {str(rp) for rp in records}
    for p in [p for p, run in _runs.items() if p not in seen and (run.record in mine or
                                                                 run.record.startswith(str(base) + os.sep))]:
        del _runs[p]                      # only this workspace's (another browser may show another)
    for k in [k for k in _records if not os.path.exists(k)]:
        del _records[k]
    return out


def extra_cells(summary) -> tuple[tuple, tuple, str]:
    """(texts, sort keys, filter text) of the Study, Tags and Note columns of a session."""
    run = study_of(summary.path)
    study = f"{run.study} · {run.cell} · seed {run.seed}" if run else ""
    tags = tuple(getattr(summary, "tags", ()) or ())
    note = str(getattr(summary, "note", "") or "")
    first_line = note.strip().splitlines()[0] if note.strip() else ""
    texts = (study, " ".join(f"#{t}" for t in tags), first_line)
    keys = ((run.study.lower(), run.cell, run.seed) if run else ("\uffff", "", 0), " ".join(tags).lower(),
            note.lower())
    return texts, keys, " ".join((study, " ".join(tags), note)).lower()


# --------------------------------------------------------------------------
# filtering
# --------------------------------------------------------------------------
def _config_of(path: str):
    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return None
    got = _configs.get(path)
    if got is not None and got[0] == stamp:
        return got[1]
    cfg = None
    try:
        from workbench.store import SessionReader
        with SessionReader(path) as r:
            cfg = r.config
    except Exception:  # a damaged or unreadable session matches no field filter
        cfg = None
    _configs[path] = (stamp, cfg)
    return cfg


def _labels() -> dict[str, str]:
    out = {}
    for fi in C.schema():
        out[fi.key.lower()] = fi.key
        out[fi.name.lower()] = out.get(fi.name.lower(), fi.key)
        lab = fi.label.lower()
        if " " not in lab:
            out.setdefault(lab, fi.key)
    return out


def parse_field_word(word: str):
    """``(key, op, text)`` when ``word`` filters on a config field, else None."""
    m = _FIELD_RE.match(word)
    if not m:
        return None
    name, op, text = m.groups()
    key = _labels().get(name.lower())
    return (key, op, text) if key else None


def _compare(value, op: str, text: str) -> bool:
    if isinstance(value, list):
        shown = ",".join(str(v) for v in value).lower()
        want = text.strip("[]").replace(" ", "").lower()
        return (shown == want) if op == "=" else (shown != want) if op == "!=" else False
    if isinstance(value, bool):
        want = text.lower() in ("1", "true", "yes", "on")
        return (value == want) if op == "=" else (value != want) if op == "!=" else False
    if isinstance(value, (int, float)):
        try:
            x = float(text)
        except ValueError:
            return False
        v = float(value)
        eq = math.isclose(v, x, rel_tol=1e-9, abs_tol=1e-12)
        return {"=": eq, "!=": not eq, "<": v < x, "<=": v <= x or eq, ">": v > x, ">=": v >= x or eq}[op]
    s = str(value).lower()
    return {"=": s == text, "!=": s != text}.get(op, False)


def accepts(row, words: list[str], study: str = ALL) -> bool:
    """Whether a browser row passes the filter words and the chosen study (see the module's doc)."""
    s = row.summary
    run = study_of(s.path)
    if study == OUTSIDE and run is not None:
        return False
    if study not in (ALL, OUTSIDE) and (run is None or run.record != study):
        return False
    tags = {t.lower() for t in (getattr(s, "tags", ()) or ())}
    for w in words:
        if w.startswith("tag:"):
            if w[4:] not in tags:
                return False
            continue
        if w.startswith("study:"):
            if run is None or w[6:] not in run.study.lower():
                return False
            continue
        field = parse_field_word(w)
        if field is not None:
            key, op, text = field
            cfg = _config_of(row.path)
            if cfg is None:
                return False
            try:
                value = cfg.get(key)
            except (KeyError, AttributeError):
                return False
            if not _compare(value, op, text):
                return False
            continue
        if w not in row.haystack:
            return False
    return True


# --------------------------------------------------------------------------
# widgets
# --------------------------------------------------------------------------
class NoteDialog(QDialog):
    """Edit a session's note and tags."""

    def __init__(self, name: str, note: str, tags, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Note and tags — {name}")
        self.note_edit = QPlainTextEdit(note)
        self.note_edit.setPlaceholderText("What this run was for, what you saw…")
        self.tags_edit = QLineEdit(" ".join(tags))
        self.tags_edit.setPlaceholderText("single words separated by spaces, e.g. baseline paper-fig-3")
        form = QFormLayout()
        form.addRow("Note", self.note_edit)
        form.addRow("Tags", self.tags_edit)
        hint = QLabel("<small>Search them in the filter: words of the note, or tag:NAME.</small>")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(hint)
        lay.addWidget(buttons)
        self.resize(520, 300)

    def values(self) -> tuple[str, list[str]]:
        return self.note_edit.toPlainText(), self.tags_edit.text().replace(",", " ").split()


def set_session_note(browser, path: str, note: str, tags: list[str]) -> bool:
    """Write a session's note and tags; False (after saying why, in one sentence) when it cannot."""
    from workbench import store
    try:
        store.set_note(path, note, tags)
    except store.SessionError as e:
        QMessageBox.warning(browser, "Note and tags", str(e))
        return False
    except OSError as e:
        QMessageBox.warning(browser, "Note and tags", f"{path} cannot be changed: {e.strerror or e}")
        return False
    browser.refresh()
    return True


def edit_note(browser) -> None:
    paths = browser.selected_paths()
    if len(paths) != 1:
        return
    row = browser.model.row_of(paths[0])
    if row is None or row.status == "damaged":
        return
    s = row.summary
    dlg = NoteDialog(s.name, getattr(s, "note", "") or "", getattr(s, "tags", ()) or (), browser)
    browser.note_dialog = dlg
    if dlg.exec() == QDialog.DialogCode.Accepted:
        set_session_note(browser, paths[0], *dlg.values())


def fill_studies(box: QComboBox, workspace) -> None:
    """The study picker's entries: all sessions, those outside studies, then each study."""
    current = box.currentData()
    box.blockSignals(True)
    box.clear()
    box.addItem("All sessions", ALL)
    box.addItem("Outside studies", OUTSIDE)
    names = {}
    for path, run in _runs.items():
        names.setdefault(run.record, run.study)
    for record, name in sorted(names.items(), key=lambda kv: kv[1].lower()):
        box.addItem(f"Study: {name}", record)
        box.setItemData(box.count() - 1, record, Qt.ItemDataRole.ToolTipRole)
    i = box.findData(current)
    box.setCurrentIndex(max(0, i))
    box.blockSignals(False)


def mount(browser, top_layout, buttons_layout) -> None:
    """Add the study picker to the browser's top row and the Note button to its buttons."""
    box = QComboBox()
    box.setToolTip("Show every session, those outside studies, or the runs of one study "
                   "(sort by the Study column to group them)")
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(14)
    fill_studies(box, browser.workspace)

    def chosen(_i):
        browser.proxy.set_study(box.currentData() or ALL)
        browser._update_count()
    box.currentIndexChanged.connect(chosen)
    top_layout.insertWidget(1, box)
    note = QPushButton("Note…")
    note.setToolTip("Write a note and tags for the selected session (shown in the table, found by the filter)")
    note.clicked.connect(lambda: edit_note(browser))
    buttons_layout.insertWidget(buttons_layout.indexOf(browser.export_button) + 1, note)
    browser.study_box, browser.note_button = box, note
    fm = browser.fontMetrics()
    first = browser.model.columnCount() - len(EXTRA_COLUMNS)
    for k, sample in enumerate(("A study's name · learner.name=maml · seed 0", "#baseline #fig-3")):
        browser.view.setColumnWidth(first + k, fm.horizontalAdvance(sample) + 24)
    browser.filter_edit.setToolTip(
        "Words matched in any column (name, learner, study, tags, note…); tag:NAME for a tag; study:WORD for "
        "a study; a config field with =, !=, <, <=, >, >= (e.g. learner.inner_lr>=0.1, task.shots=5)")
    browser.filter_edit.setPlaceholderText("Filter: words, tag:NAME, study:WORD, or a field such as task.shots=5")


def after_refresh(browser) -> None:
    """Keep the study picker and the Note button in step with the table (called after each refresh)."""
    box = getattr(browser, "study_box", None)
    if box is not None:
        known = {box.itemData(i) for i in range(2, box.count())}
        if known != {run.record for run in _runs.values()}:
            fill_studies(box, browser.workspace)
    note = getattr(browser, "note_button", None)
    if note is not None:
        rows = browser._selected_rows()
        note.setEnabled(len(rows) == 1 and rows[0].status != "damaged")
