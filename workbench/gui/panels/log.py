"""The run's messages: Log events, validation results, failures, the session path.

A read-only text view (capped at 5,000 lines), warnings and errors coloured.
Failure details (tracebacks) go here, never into a dialog. Exports the view as
PNG and the lines as CSV (time, level, message).
"""

from __future__ import annotations

import datetime as _dt
import html

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QComboBox, QLabel, QPlainTextEdit

from workbench.gui.panels.base import Panel

LEVEL_COLORS = {"warning": "#c98a00", "error": "#d62728"}
MAX_LINES = 5000


class LogPanel(Panel):
    title = "Log"
    export_name = "log"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.level = QComboBox()
        self.level.addItems(["All", "Warnings and errors"])
        self.level.setToolTip("Which messages to show")
        self.controls.addWidget(QLabel("Show"))
        self.controls.addWidget(self.level)
        self.finish_controls()
        self.text = QPlainTextEdit()
        self.text.setObjectName("logView")
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.body.addWidget(self.text)
        self.lines: list[tuple[str, str, str]] = []      # (time, level, message)
        self.level.currentTextChanged.connect(lambda *_: self._rerender())

    def add(self, level: str, message: str, when: str | None = None):
        """Append one message; ``level`` is info, warning or error."""
        when = when or _dt.datetime.now().strftime("%H:%M:%S")
        self.lines.append((when, level, message))
        if len(self.lines) > MAX_LINES:
            del self.lines[: len(self.lines) - MAX_LINES]
        if self._shown(level):
            self._append_html(when, level, message)

    def _shown(self, level: str) -> bool:
        return self.level.currentText() == "All" or level in ("warning", "error")

    def _append_html(self, when: str, level: str, message: str):
        color = LEVEL_COLORS.get(level)
        text = html.escape(message).replace("\n", "<br>")
        tag = "" if level == "info" else f"{level.upper()}: "
        body = f"{html.escape(when)}  {tag}{text}"
        self.text.appendHtml(f'<span style="color:{color}">{body}</span>' if color else body)

    def _rerender(self):
        self.text.clear()
        for when, level, message in self.lines:
            if self._shown(level):
                self._append_html(when, level, message)

    def clear(self):
        self.lines.clear()
        self.text.clear()

    def has_data(self) -> bool:
        return bool(self.lines)

    def line_count(self) -> int:
        return len(self.lines)

    def plain_text(self) -> str:
        return "\n".join(f"{t} {lv} {m}" for t, lv, m in self.lines)

    def csv_table(self):
        return ["time", "level", "message"], list(self.lines)
