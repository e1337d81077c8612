"""The sessions browser: every session file of the workspace in a sortable, filterable table.

Model/view in the Qt way: :class:`SessionTableModel` (a ``QAbstractTableModel``
over :class:`workbench.store.SessionSummary` rows, display strings computed
once per row) behind a :class:`SessionFilterProxy` (sorting by a numeric or
ISO-date key, filtering by words over every column) shown in a ``QTableView``.

Only root attributes are read (:func:`workbench.store.read_summary`), and the
summaries of ended sessions are remembered in a small index file in the
workspace (:class:`workbench.store.index.SummaryIndex`), keyed by each file's modification time and
size, so reopening a workspace of hundreds of sessions reads only what changed
(benchmarks/bench_sessions_browser.py measures both). The browser stays live: a
``QFileSystemWatcher`` on the workspace folder notices new and removed files at
once, and a timer re-reads the summary of every file that changed on disk or
still says "running" (a ``workbench run`` in a terminal, or the GUI's own run),
so its steps, status and final metric update while it is written.

Signals: ``open_requested(str)`` (double-click or Open) and
``compare_requested(list)`` (Compare with two or more rows selected).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import (QAbstractTableModel, QFileSystemWatcher, QModelIndex, QSortFilterProxyModel, Qt,
                            QTimer, Signal)
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QTableView, QVBoxLayout, QWidget)

from workbench import registry
from workbench import store
from workbench import format as F
from workbench.gui import study_sessions as SS
from workbench.gui.panels.base import FlowLayout
from workbench.gui.plot_export import last_dir, remember_dir
from workbench.store.index import SummaryIndex
from workbench.store import export as store_export

COLUMNS = ("Status", "Name", "Dataset", "Learner", "Ways/shots", "Final metric", "Date") + SS.EXTRA_COLUMNS
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
STATUS_COLORS = {"running": "#1f77b4", "finished": "#2ca02c", "failed": "#d62728", "cancelled": "#b8860b",
                 "interrupted": "#e67e22", "damaged": "#d62728"}
REFRESH_MS = 1000          # how often changed and running sessions are re-read


@dataclass(frozen=True)
class Row:
    """One table row: the summary, its display strings and sort keys (computed once)."""

    summary: object             # workbench.store.SessionSummary
    problem: str                # why a damaged file cannot be read ("" otherwise)
    texts: tuple
    keys: tuple
    haystack: str               # lower-case text of every column, for the filter

    @property
    def path(self) -> str:
        return str(self.summary.path)

    @property
    def status(self) -> str:
        return self.summary.status


def _date_text(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(iso or "")


def make_row(s, problem: str = "") -> Row:
    """Display strings and sort keys of one session summary."""
    status = s.status
    if status == "running" and s.total_steps:
        status_text = f"running {s.steps_done}/{s.total_steps}"
    else:
        status_text = status
    if s.dataset in registry.datasets and registry.datasets.get(s.dataset).kind == "regression":         # regression tasks have no classes: K points per task
        ws = f"{s.shots}-shot" if s.shots else ""
    else:
        ws = f"{s.ways}-way {s.shots}-shot" if s.ways else (f"{s.shots}-shot" if s.shots else "")
    mean = s.mean if isinstance(s.mean, (int, float)) else float("nan")
    metric = F.metric_ci(s.metric, mean, s.ci95) if math.isfinite(mean) else "–"
    if math.isfinite(mean) and s.metric and s.metric != "accuracy":
        metric = f"{s.metric} {metric}"
    texts = (status_text, s.name, s.dataset, s.learner, ws, metric, _date_text(s.created))
    keys = (status, s.name.lower(), s.dataset, s.learner, int(s.ways) * 10_000 + int(s.shots),
            mean if math.isfinite(mean) else -math.inf, s.created or "")
    more, more_keys, more_text = SS.extra_cells(s)       # study, tags, note (workbench/gui/study_sessions.py)
    return Row(s, problem, texts + more, keys + more_keys,
               " ".join(texts).lower() + " " + Path(s.path).name.lower() + " " + more_text)


def damaged_row(path, problem: str) -> Row:
    """A row for a file that cannot be read: shown as damaged, with the reason as its tooltip."""
    return make_row(store.damaged_summary(path, problem), problem)


def read_row(path) -> Row:
    try:
        return make_row(store.read_summary(path))
    except store.SessionError as e:
        return damaged_row(path, str(e))
    except OSError as e:
        return damaged_row(path, f"session file {str(path)!r} cannot be read: {e.strerror or e}")


class SessionTableModel(QAbstractTableModel):
    """Rows of session summaries. Updated in place (rows inserted, changed, removed), never reset
    after the first fill, so the selection and scroll position survive live refreshes."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[Row] = []
        self._index: dict[str, int] = {}

    # -- Qt model interface ------------------------------------------------
    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, col = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.texts[col]
        if role == SORT_ROLE:
            return row.keys[col]
        if role == PATH_ROLE:
            return row.path
        if role == Qt.ItemDataRole.ForegroundRole and col == 0:
            return QColor(STATUS_COLORS.get(row.status, "#555555"))
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.problem:
                return f"Damaged: {row.problem}"
            s = row.summary
            tip = f"{row.path}\ncreated {s.created}"
            if s.ended:
                tip += f"\nended {s.ended}"
            if s.total_steps:
                tip += f"\nsteps {s.steps_done}/{s.total_steps}"
            return tip
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (4, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # -- updates -------------------------------------------------------------
    def reset_rows(self, rows: list[Row]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self._index = {r.path: i for i, r in enumerate(self.rows)}
        self.endResetModel()

    def row_of(self, path: str) -> Row | None:
        i = self._index.get(str(path))
        return None if i is None else self.rows[i]

    def update_rows(self, changed: list[Row], removed: set[str]) -> None:
        """Replace rows with the same path, append new ones, drop ``removed`` paths."""
        for path in removed:
            i = self._index.get(path)
            if i is None:
                continue
            self.beginRemoveRows(QModelIndex(), i, i)
            del self.rows[i]
            self.endRemoveRows()
            self._index = {r.path: k for k, r in enumerate(self.rows)}
        new = []
        for r in changed:
            i = self._index.get(r.path)
            if i is None:
                new.append(r)
            elif r != self.rows[i]:
                self.rows[i] = r
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))
        if new:
            n = len(self.rows)
            self.beginInsertRows(QModelIndex(), n, n + len(new) - 1)
            self.rows += new
            for k, r in enumerate(new):
                self._index[r.path] = n + k
            self.endInsertRows()


class SessionFilterProxy(QSortFilterProxyModel):
    """Sorts by each column's key (``SORT_ROLE``: one type per column, compared by Qt itself);
    keeps the rows whose text contains every word of the filter."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.words: list[str] = []
        self.study = SS.ALL
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def set_filter_text(self, text: str) -> None:
        if hasattr(self, "beginFilterChange"):          # Qt >= 6.9
            self.beginFilterChange()
            self.words = text.lower().split()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.words = text.lower().split()
            self.invalidateFilter()

    def set_study(self, study: str) -> None:
        """Only the runs of one study (its record's path), those outside studies, or all (SS.ALL)."""
        if hasattr(self, "beginFilterChange"):          # Qt >= 6.9
            self.beginFilterChange()
            self.study = study
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.study = study
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row, source_parent):
        if not self.words and self.study == SS.ALL:
            return True
        return SS.accepts(self.sourceModel().rows[source_row], self.words, self.study)



class SessionsBrowser(QWidget):
    """The workspace's sessions: open, compare, delete, export the model, write a report."""

    open_requested = Signal(str)
    compare_requested = Signal(list)

    def __init__(self, workspace: str | Path | None = None, parent=None):
        super().__init__(parent)
        self.workspace = Path(workspace) if workspace is not None else store.workspace_dir()
        self._stamps: dict[str, tuple[int, int]] = {}     # path -> (mtime_ns, size) when last read

        self.model = SessionTableModel(self)
        self.proxy = SessionFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        hh = self.view.horizontalHeader()
        # every column can be dragged wider or narrower (the Name column used to stretch into what the
        # others left and could not be widened); the table scrolls sideways when they do not fit
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(True)
        hh.setMinimumSectionSize(40)
        hh.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        fm = self.fontMetrics()
        for col, sample in ((0, "running 1000/1000"), (1, "Omniglot ProtoNet 5-way 1-shot  "),
                            (2, "miniimagenet"), (3, "protonet  "),
                            (4, "20-way 10-shot"), (5, "accuracy 100.00% ± 10.00%"), (6, "2025-01-01 00:00  ")):
            self.view.setColumnWidth(col, fm.horizontalAdvance(sample) + 24)
        self.view.sortByColumn(6, Qt.SortOrder.DescendingOrder)
        self.view.doubleClicked.connect(self._double_clicked)
        self.view.selectionModel().selectionChanged.connect(self._update_buttons)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter sessions: words matched in any column, e.g. “maml digits finished”")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._filter_changed)

        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Open the selected session in the panels (or double-click a row)")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Compare the selected sessions side by side (select two or more)")
        self.report_button = QPushButton("Report…")
        self.report_button.setToolTip("Write a one-page HTML report of the selected session or comparison")
        self.export_button = QPushButton("Export model…")
        self.export_button.setToolTip("Export the trained model of the selected session to a folder")
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Delete the selected session files (asks first)")
        self.refresh_button = QPushButton("Refresh")
        self.open_button.clicked.connect(self.open_selected)
        self.compare_button.clicked.connect(self.compare_selected)
        self.report_button.clicked.connect(self.report_selected)
        self.export_button.clicked.connect(self.export_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.refresh_button.clicked.connect(self.refresh)
        QShortcut(QKeySequence.StandardKey.Delete, self.view, activated=self.delete_selected)
        QShortcut(QKeySequence(Qt.Key.Key_Return), self.view, activated=self.open_selected)

        self.count_label = QLabel()
        self.folder_label = QLabel()
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.refresh_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.view, 1)
        buttons = FlowLayout()                 # wraps in a narrow dock instead of widening the window
        lay.addLayout(buttons)
        for b in (self.open_button, self.compare_button, self.report_button, self.export_button, self.count_label):
            buttons.addWidget(b)
        buttons.addWidget(self.delete_button, right=True)
        SS.mount(self, top, buttons)       # study picker and Note button (workbench/gui/study_sessions.py)
        lay.addWidget(self.folder_label)
        self.folder_label.setWordWrap(True)
        self.folder_label.setMinimumWidth(0)

        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(lambda _p: self._soon.start())
        self._soon = QTimer(self, singleShot=True, interval=150, timeout=self.refresh)
        self.timer = QTimer(self, interval=REFRESH_MS, timeout=self.refresh)
        self.set_workspace(self.workspace)
        self.timer.start()

    # -- filling -----------------------------------------------------------
    def set_workspace(self, workspace) -> None:
        """Show the sessions of another workspace folder."""
        self.workspace = Path(workspace)
        if self.watcher.directories():
            self.watcher.removePaths(self.watcher.directories())
        if self.workspace.is_dir():
            self.watcher.addPath(str(self.workspace))
        self.folder_label.setText(f"<small>Workspace: {self.workspace}</small>")
        self._stamps.clear()
        self.index = SummaryIndex(self.workspace)
        self.model.reset_rows([])
        self.refresh()

    def _scan(self) -> dict[str, tuple[int, int]]:
        out = {}
        try:
            with os.scandir(self.workspace) as it:
                for e in it:
                    if e.name.endswith(".h5") and not e.name.startswith("."):
                        try:
                            st = e.stat()
                        except OSError:
                            continue
                        out[os.path.join(self.workspace, e.name)] = (st.st_mtime_ns, st.st_size)
        except OSError:
            pass
        out.update(SS.scan(self.workspace))     # the runs of the workspace's studies
        return out

    def refresh(self) -> None:
        """Read new files, files changed on disk and running sessions; drop removed files."""
        seen = self._scan()
        if not self.watcher.directories() and self.workspace.is_dir():
            self.watcher.addPath(str(self.workspace))
        removed = set(self._stamps) - set(seen)
        todo = []
        for path, stamp in seen.items():
            old = self.model.row_of(path)
            if self._stamps.get(path) != stamp or (old is not None and old.status == "running"):
                todo.append(path)
        rows = []
        for p in todo:
            old = self.model.row_of(p)
            cached = None if old is not None and old.status == "running" else self.index.get(p, seen[p])
            if cached is not None:
                rows.append(make_row(cached))
                continue
            row = read_row(p)
            rows.append(row)
            if not row.problem:
                self.index.put(p, seen[p], row.summary)
        self.index.keep_only(seen)
        self.index.save()
        self._stamps = seen
        if not self.model.rows and not removed:
            self.model.reset_rows(rows)
        elif rows or removed:
            self.model.update_rows(rows, removed)
        self._update_count()
        self._update_buttons()

    def _filter_changed(self, text: str) -> None:
        self.proxy.set_filter_text(text)
        self._update_count()

    def _update_count(self) -> None:
        n, shown = self.model.rowCount(), self.proxy.rowCount()
        self.count_label.setText(f"{n} sessions" if n == shown else f"{shown} of {n} sessions shown")

    # -- selection ---------------------------------------------------------
    def selected_paths(self) -> list[str]:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        return [self.proxy.index(r, 0).data(PATH_ROLE) for r in rows]

    def select_paths(self, paths) -> None:
        """Select the rows of ``paths`` (used by tests and by the main window)."""
        want = {str(p) for p in paths}
        sel = self.view.selectionModel()
        sel.clearSelection()
        for r in range(self.proxy.rowCount()):
            idx = self.proxy.index(r, 0)
            if idx.data(PATH_ROLE) in want:
                sel.select(idx, sel.SelectionFlag.Select | sel.SelectionFlag.Rows)

    def _selected_rows(self) -> list[Row]:
        return [r for r in (self.model.row_of(p) for p in self.selected_paths()) if r is not None]

    def _update_buttons(self, *_):
        SS.after_refresh(self)
        rows = self._selected_rows()
        readable = [r for r in rows if r.status != "damaged"]
        self.open_button.setEnabled(len(rows) == 1 and len(readable) == 1)
        self.compare_button.setEnabled(len(readable) >= 2 and len(readable) == len(rows))
        self.report_button.setEnabled(len(readable) >= 1 and len(readable) == len(rows))
        self.export_button.setEnabled(len(readable) == 1 and len(rows) == 1
                                      and readable[0].status in ("finished", "cancelled", "interrupted"))
        self.delete_button.setEnabled(bool(rows))

    # -- actions -----------------------------------------------------------
    def _double_clicked(self, index) -> None:
        self._open(index.data(PATH_ROLE))

    def _open(self, path: str) -> None:
        row = self.model.row_of(path)
        if row is not None and row.status == "damaged":
            QMessageBox.warning(self, "Damaged session", f"This session cannot be opened. {row.problem}")
            return
        self.open_requested.emit(str(path))

    def open_selected(self) -> None:
        paths = self.selected_paths()
        if len(paths) == 1:
            self._open(paths[0])

    def compare_selected(self) -> None:
        rows = self._selected_rows()
        if len(rows) < 2:
            QMessageBox.information(self, "Compare", "Select two or more sessions to compare.")
            return
        bad = [r for r in rows if r.status == "damaged"]
        if bad:
            QMessageBox.warning(self, "Compare", f"{Path(bad[0].path).name} is damaged and cannot be compared.")
            return
        self.compare_requested.emit([r.path for r in rows])

    def delete_selected(self) -> None:
        rows = self._selected_rows()
        if not rows:
            return
        live = [r for r in rows if r.status == "running"]
        if live:
            QMessageBox.warning(self, "Delete sessions",
                                f"{live[0].summary.name} is still being written by a running process; "
                                "stop that run before deleting its session.")
            return
        names = "\n".join(f"  {r.summary.name}  ({Path(r.path).name})" for r in rows[:10])
        more = f"\n  … and {len(rows) - 10} more" if len(rows) > 10 else ""
        what = "this session" if len(rows) == 1 else f"these {len(rows)} sessions"
        answer = QMessageBox.question(self, "Delete sessions",
                                      f"Delete {what}? The files are removed from disk.\n\n{names}{more}",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        errors = []
        for r in rows:
            try:
                store.delete_session(r.path)
            except store.SessionError as e:
                errors.append(str(e))
        self.refresh()
        if errors:
            QMessageBox.warning(self, "Delete sessions", "\n".join(errors))

    def export_selected(self) -> None:
        paths = self.selected_paths()
        if len(paths) != 1:
            return
        folder = QFileDialog.getExistingDirectory(self, "Export the trained model to a folder", last_dir())
        if not folder:
            return
        remember_dir(folder + os.sep)
        try:
            written = export_model(paths[0], folder)
        except (store.SessionError, OSError, ValueError) as e:
            QMessageBox.warning(self, "Export model", str(e))
            return
        QMessageBox.information(self, "Export model", f"The model was exported to:\n{written}")

    def report_selected(self) -> None:
        paths = self.selected_paths()
        if not paths:
            return
        from workbench.gui import compare, report
        default = Path(last_dir()) / ("comparison-report.html" if len(paths) > 1
                                      else f"{Path(paths[0]).stem}-report.html")
        out, _ = QFileDialog.getSaveFileName(self, "Write report", str(default), "HTML report (*.html)")
        if not out:
            return
        remember_dir(out)
        try:
            if len(paths) == 1:
                report.write_session_report(paths[0], out)
            else:
                compare.write_comparison_report(paths, out)
        except (store.SessionError, OSError, ValueError) as e:
            QMessageBox.warning(self, "Report", f"The report could not be written: {e}")
            return
        QMessageBox.information(self, "Report", f"The report was written to:\n{out}")


def export_model(session_path, folder) -> str:
    """Export a session's trained model into ``<folder>/<session file name>-model`` through the store's
    export (safetensors weights, config and metadata TOML, TorchScript where it traces); returns a
    description of what was written."""
    fn = store_export.export_model
    target = Path(folder) / f"{Path(session_path).stem}-model"
    result = fn(session_path, target)
    if isinstance(result, dict):
        text = f"{result.get('folder', target)}\n\nfiles: {', '.join(map(str, result.get('files', [])))}"
        ts = result.get("torchscript")
        if ts and ts != "ok":
            text += f"\nno TorchScript file: {ts}"
        return text
    return str(result)
