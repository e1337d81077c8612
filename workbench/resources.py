"""One place that finds the files in ``resources/`` (presets, icons, styles).

Works from a source checkout (``<repo>/resources``), from an installed package
(``workbench/_resources``, mapped at build time) and from a bundle
(``sys._MEIPASS/resources``).
"""

from __future__ import annotations

import sys
from pathlib import Path


def root() -> Path:
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "resources", here / "_resources"]
    if hasattr(sys, "_MEIPASS"):
        candidates.insert(0, Path(sys._MEIPASS) / "resources")
    for c in candidates:
        if (c / "presets").is_dir():
            return c
    raise FileNotFoundError("the workbench's resources folder is missing; reinstall the package")


def path(*parts: str) -> Path:
    return root().joinpath(*parts)
