"""Start the workbench window: ``workbench`` (no arguments) or ``workbench gui [SESSION ...]``.

Creates the QApplication with the program's name, organisation (the QSettings
folder), desktop file name and icon, applies the Fusion style with a light or
dark palette following the system (or the choice kept in the settings), and
opens :class:`~workbench.gui.main_window.MainWindow` with the default
experiment ready: pressing Run trains at once.
"""

from __future__ import annotations

import sys

from workbench import resources

APP_NAME = getattr(resources, "APP_NAME", "Meta-Learning Workbench")
APP_ID = getattr(resources, "APP_ID", "meta-learning-workbench")
ORG_NAME = getattr(resources, "ORG_NAME", "Meta-Learning Workbench")


def make_app(argv: list[str] | None = None):
    """The QApplication (created once), named and styled."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from workbench.gui import style

    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(style.app_icon())
    scheme = str(QSettings().value("appearance/scheme", "auto"))
    style.apply_style(app, scheme if scheme in ("auto", "light", "dark") else "auto")
    return app


def main(args=None) -> int:
    """Open the main window (and any session files named in ``args.session``); run the event loop."""
    app = make_app()
    from workbench.gui.main_window import MainWindow

    win = MainWindow()
    win.show()
    for path in getattr(args, "session", None) or []:
        if str(path).lower().endswith(".toml"):
            win.load_config(str(path))
        else:
            win.open_session(str(path))
    code = app.exec()
    dispose(win)
    return code


def dispose(widget) -> None:
    """Delete a window's C++ side now (deferred delete, delivered at once), while Python is whole.

    Left to interpreter shutdown, pyqtgraph's Python overrides can be called from
    half-destroyed graphics items and crash the process on exit."""
    import shiboken6
    from PySide6.QtCore import QCoreApplication, QEvent

    if widget is not None and shiboken6.isValid(widget):
        widget.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()
