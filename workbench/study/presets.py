"""Study presets: ``resources/presets/studies/*.toml`` (found through :func:`workbench.resources.path`, so
they ship in wheels and bundles like the experiment presets one folder up)."""

from __future__ import annotations

import difflib
from pathlib import Path

from workbench.config import Problem
from workbench.study.definition import StudyDefinition, StudyError, load_study


def study_presets_dir() -> Path:
    from workbench import resources
    return resources.path("presets", "studies")


def list_study_presets() -> dict[str, Path]:
    """Preset name -> file, sorted by name."""
    d = study_presets_dir()
    return {p.stem: p for p in sorted(d.glob("*.toml"))} if d.is_dir() else {}


def load_study_preset(name: str) -> StudyDefinition:
    presets = list_study_presets()
    if name not in presets:
        hint = difflib.get_close_matches(name, list(presets), n=1)
        msg = (f"no study preset named {name!r}; study presets: {', '.join(presets) or 'none'}"
               + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        raise StudyError([Problem("", msg, msg)])
    return load_study(presets[name])
