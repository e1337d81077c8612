"""One place that finds the files in ``resources/`` (presets, icons, styles).

Works from a source checkout (``<repo>/resources``), from an installed package
(``workbench/_resources``, copied there at build time by ``setup.py``) and from
a PyInstaller bundle (``sys._MEIPASS/resources``).

No Qt here: these helpers return paths and text; ``workbench.gui`` turns them
into ``QIcon`` / style sheets. The identity constants below are what the
``.desktop`` file expects of the running application, so that desktops group
the workbench's windows under its launcher and icon::

    app.setApplicationName(resources.APP_NAME)        # X11 WM_CLASS class = StartupWMClass
    app.setApplicationDisplayName(resources.APP_NAME) # window title suffix
    app.setOrganizationName(resources.ORG_NAME)       # QSettings folder
    app.setDesktopFileName(resources.APP_ID)          # Wayland app_id = <APP_ID>.desktop
    app.setWindowIcon(QIcon(str(resources.app_icon_svg()))) # plus the PNG sizes
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Machine name: the .desktop file's name (Wayland app_id) and the icon's theme name.
APP_ID = "meta-learning-workbench"
#: Human name, as menus and title bars show it; also the QApplication's applicationName,
#: hence the X11 WM_CLASS class that the .desktop file's ``StartupWMClass`` matches.
APP_NAME = "Meta-Learning Workbench"
#: Organisation name for QSettings (``~/.config/<ORG_NAME>/<APP_ID>.conf`` on Linux).
ORG_NAME = "Meta-Learning Workbench"

#: The action icons that ship (``resources/icons/<name>.svg``).
ACTION_ICONS = ("run", "stop", "open", "save", "compare", "export")
#: Pixel sizes of the application icon's PNG renditions (``resources/icons/app-<size>.png``).
APP_ICON_SIZES = (16, 32, 48, 64, 128, 256)
#: Style sheets that ship (``resources/styles/<name>.qss``).
STYLES = ("light", "dark")


def root() -> Path:
    """The resources folder: bundle first, then a checkout, then the installed package."""
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "resources", here / "_resources"]
    if hasattr(sys, "_MEIPASS"):
        candidates.insert(0, Path(sys._MEIPASS) / "resources")
    for c in candidates:
        if (c / "presets").is_dir():
            return c
    raise FileNotFoundError("the workbench's resources folder is missing (looked in "
                            + ", ".join(str(c) for c in candidates) + "); reinstall the package")


def path(*parts: str) -> Path:
    """A path inside the resources folder (it need not exist)."""
    return root().joinpath(*parts)


def _existing(p: Path, what: str, known: tuple) -> Path:
    if not p.is_file():
        raise FileNotFoundError(f"no {what} at {p}; the ones that ship are: {', '.join(map(str, known))}")
    return p


def icon_path(name: str) -> Path:
    """The SVG of an action icon (``"run"``, ``"stop"``, ...) or of the app icon (``"app"``)."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise ValueError(f"icon name {name!r} is not a plain name like 'run'")
    return _existing(path("icons", f"{name}.svg"), f"icon named {name!r}", ACTION_ICONS + ("app",))


def app_icon_svg() -> Path:
    """The application icon as SVG (scales to any size)."""
    return icon_path("app")


def app_icon_png(size: int) -> Path:
    """The application icon rendered at ``size`` x ``size`` pixels (one of APP_ICON_SIZES)."""
    if size not in APP_ICON_SIZES:
        raise ValueError(f"no app icon of size {size!r}; sizes that ship: {APP_ICON_SIZES}")
    return _existing(path("icons", f"app-{size}.png"), f"{size}px app icon", APP_ICON_SIZES)


def app_icon_pngs() -> dict[int, Path]:
    """Every PNG rendition of the application icon, by pixel size."""
    return {s: app_icon_png(s) for s in APP_ICON_SIZES}


def style_sheet(name: str) -> str:
    """The text of a Qt style sheet: ``"light"`` or ``"dark"``.

    Icon URLs inside the sheet may be written ``url(@ICONS@/name.svg)``; they are
    replaced here by the icons folder's absolute path, so the sheet works from a
    checkout, an installed package and a bundle alike.
    """
    if name not in STYLES:
        raise ValueError(f"no style sheet named {name!r}; style sheets: {', '.join(STYLES)}")
    p = _existing(path("styles", f"{name}.qss"), f"style sheet named {name!r}", STYLES)
    return p.read_text(encoding="utf-8").replace("@ICONS@", path("icons").as_posix())


def desktop_entry(exec_path: str, icon: str = APP_ID) -> str:
    """The ``.desktop`` file's text with its ``@EXEC@``, ``@TRYEXEC@`` and ``@ICON@`` fields filled in.

    ``exec_path`` is the program to launch (an absolute path to the ``workbench``
    script or to the bundle's binary); ``icon`` an icon theme name or an absolute path.
    A path with spaces or quotes is quoted in ``Exec=`` as the Desktop Entry spec asks.
    """
    template = _existing(path("workbench.desktop"), "desktop file template", ("workbench.desktop",))
    if not exec_path or not exec_path.strip():
        raise ValueError("the desktop entry needs a program to launch, got an empty path")
    quoted = exec_path
    if any(c in exec_path for c in ' \t"\'\\$`<>~|&;*?#()'):
        # inside quotes, " ` $ \\ take a backslash, itself doubled by the file's string escaping
        quoted = '"' + "".join("\\\\" + c if c in '"`$\\' else c for c in exec_path) + '"'
    text = template.read_text(encoding="utf-8")
    return text.replace("@EXEC@", quoted).replace("@TRYEXEC@", exec_path).replace("@ICON@", icon)
