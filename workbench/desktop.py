"""Add the workbench to the desktop's application menu (Linux, freedesktop.org).

    python -m workbench.desktop install      # menu entry + icons for this user
    python -m workbench.desktop uninstall
    python -m workbench.desktop print        # the .desktop text, to install by hand

Writes ``$XDG_DATA_HOME/applications/meta-learning-workbench.desktop`` (default
``~/.local/share``) and the app icon into the hicolor theme
(``icons/hicolor/<size>x<size>/apps/meta-learning-workbench.png`` and
``scalable/apps/....svg``). The entry launches the program that runs this
command: the bundle's binary when frozen, else the ``workbench`` script of the
current environment. No Qt.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from workbench import resources as R


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def launcher() -> Path:
    """The program a menu entry should start."""
    if getattr(sys, "frozen", False):            # PyInstaller bundle: the binary itself
        return Path(sys.executable).resolve()
    beside = Path(sys.executable).parent / ("workbench.exe" if os.name == "nt" else "workbench")
    if beside.is_file():
        return beside
    found = shutil.which("workbench")
    if found:
        return Path(found).resolve()
    raise FileNotFoundError(f"no 'workbench' program next to {sys.executable} or on PATH; "
                            "install the package (pip install .) first")


def targets(base: Path) -> dict[str, Path]:
    icons = base / "icons" / "hicolor"
    t = {"desktop": base / "applications" / f"{R.APP_ID}.desktop",
         "svg": icons / "scalable" / "apps" / f"{R.APP_ID}.svg"}
    for s in R.APP_ICON_SIZES:
        t[f"png{s}"] = icons / f"{s}x{s}" / "apps" / f"{R.APP_ID}.png"
    return t


def install(base: Path, exec_path: Path) -> list[Path]:
    t = targets(base)
    written = []
    for key, dst in t.items():
        dst.parent.mkdir(parents=True, exist_ok=True)
        if key == "desktop":
            dst.write_text(R.desktop_entry(str(exec_path)), encoding="utf-8")
        elif key == "svg":
            shutil.copyfile(R.app_icon_svg(), dst)
        else:
            shutil.copyfile(R.app_icon_png(int(key[3:])), dst)
        written.append(dst)
    for tool in (["update-desktop-database", str(t["desktop"].parent)],
                 ["gtk-update-icon-cache", "-q", "-t", str(base / "icons" / "hicolor")]):
        if shutil.which(tool[0]):                 # optional: refreshes menus sooner
            subprocess.run(tool, capture_output=True, check=False)
    return written


def uninstall(base: Path) -> list[Path]:
    removed = []
    for dst in targets(base).values():
        if dst.is_file():
            dst.unlink()
            removed.append(dst)
    return removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workbench.desktop",
                                 description="Add the workbench to (or remove it from) the application menu.")
    ap.add_argument("action", choices=["install", "uninstall", "print"])
    ap.add_argument("--exec", dest="exec_path", type=Path, help="program to launch (default: this installation's)")
    ap.add_argument("--prefix", type=Path, help="data folder (default: $XDG_DATA_HOME or ~/.local/share)")
    args = ap.parse_args(argv)
    base = args.prefix or data_home()
    try:
        exec_path = args.exec_path.resolve() if args.exec_path else (launcher() if args.action != "uninstall" else None)
        if args.action == "print":
            sys.stdout.write(R.desktop_entry(str(exec_path)))
        elif args.action == "install":
            for p in install(base, exec_path):
                print(f"wrote {p}")
        else:
            gone = uninstall(base)
            print("\n".join(f"removed {p}" for p in gone) or f"nothing of the workbench's under {base}")
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"workbench desktop: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
