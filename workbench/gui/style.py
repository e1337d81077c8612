"""Look and feel: Fusion style with a light or dark palette that follows the system.

Qt 6.5+ reports the desktop's colour scheme through ``QStyleHints.colorScheme()``
and signals changes; :func:`apply_style` picks the matching palette, the small
style sheet in ``resources/styles/<light|dark>.qss`` (when it ships), and the
pyqtgraph background/foreground colours, and follows later changes.

Icons come from ``resources/icons/<name>.svg``; where one is missing, a
standard icon of the current QStyle stands in. Nothing here uses fixed pixel
sizes for text, so the window scales on high-DPI screens.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QStyle

from workbench import resources

_FALLBACK_ICONS = {
    "run": QStyle.StandardPixmap.SP_MediaPlay,
    "stop": QStyle.StandardPixmap.SP_MediaStop,
    "open": QStyle.StandardPixmap.SP_DialogOpenButton,
    "save": QStyle.StandardPixmap.SP_DialogSaveButton,
    "compare": QStyle.StandardPixmap.SP_FileDialogDetailedView,
    "export": QStyle.StandardPixmap.SP_DriveFDIcon,
    "app": QStyle.StandardPixmap.SP_ComputerIcon,
}


def icon(name: str) -> QIcon:
    """An action icon from resources/icons, or a standard QStyle icon when it is missing."""
    try:
        p = resources.path("icons", f"{name}.svg")
        if p.is_file():
            ic = QIcon(str(p))
            if not ic.isNull():
                return ic
    except (FileNotFoundError, ValueError):
        pass
    app = QApplication.instance()
    sp = _FALLBACK_ICONS.get(name, QStyle.StandardPixmap.SP_FileIcon)
    return app.style().standardIcon(sp) if app is not None else QIcon()


def app_icon() -> QIcon:
    """The application icon: the SVG plus every PNG size that ships."""
    ic = QIcon()
    try:
        root = resources.path("icons")
        svg = root / "app.svg"
        if svg.is_file():
            ic.addFile(str(svg))
        for png in sorted(root.glob("app-*.png")):
            ic.addFile(str(png))
    except FileNotFoundError:
        pass
    return ic if not ic.isNull() else icon("app")


def light_palette() -> QPalette:
    return QApplication.style().standardPalette() if QApplication.instance() else QPalette()


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 32, 36), QColor(42, 45, 50), QColor(230, 232, 236)
    disabled = QColor(128, 132, 140)
    roles = {
        QPalette.ColorRole.Window: window, QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base, QPalette.ColorRole.AlternateBase: QColor(38, 41, 46),
        QPalette.ColorRole.ToolTipBase: QColor(47, 50, 56), QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: disabled, QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: window, QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90), QPalette.ColorRole.Link: QColor(120, 170, 240),
        QPalette.ColorRole.Highlight: QColor(61, 110, 180), QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Light: QColor(70, 74, 82), QPalette.ColorRole.Midlight: QColor(56, 60, 66),
        QPalette.ColorRole.Mid: QColor(48, 51, 56), QPalette.ColorRole.Dark: QColor(22, 24, 27),
        QPalette.ColorRole.Shadow: QColor(10, 10, 10),
    }
    for role, c in roles.items():
        p.setColor(role, c)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


def system_is_dark() -> bool:
    """True when the desktop asks for a dark scheme (Qt 6.5+), else False."""
    app = QApplication.instance()
    if app is None:
        return False
    hints = app.styleHints()
    scheme = getattr(hints, "colorScheme", None)
    if scheme is None:
        return False
    return scheme() == Qt.ColorScheme.Dark


_current = {"dark": False, "following": False}


def is_dark() -> bool:
    """Whether the dark palette is in use."""
    return _current["dark"]


def plot_colors() -> tuple[QColor, QColor]:
    """(background, foreground) for pyqtgraph plots under the current palette."""
    pal = QApplication.instance().palette() if QApplication.instance() else QPalette()
    return pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)


def apply_style(app: QApplication, scheme: str = "auto") -> None:
    """Fusion + a light or dark palette; ``scheme`` is "auto" (follow the system), "light" or "dark"."""
    import pyqtgraph as pg

    app.setStyle("Fusion")
    dark = system_is_dark() if scheme == "auto" else scheme == "dark"
    _current["dark"] = dark
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    try:
        app.setStyleSheet(resources.style_sheet("dark" if dark else "light"))
    except (AttributeError, FileNotFoundError, ValueError):
        app.setStyleSheet("")
    bg, fg = plot_colors()
    # live plots draw without antialiasing (several times cheaper per repaint, and repaints hold
    # the GIL the training worker needs); exports switch it on for the file
    pg.setConfigOptions(background=bg, foreground=fg, antialias=False)
    _current["scheme"] = scheme
    if not _current["following"]:
        hints = app.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(_scheme_changed)
            _current["following"] = True


def _scheme_changed(*_):
    app = QApplication.instance()
    if app is not None and _current.get("scheme") == "auto":
        apply_style(app, "auto")
