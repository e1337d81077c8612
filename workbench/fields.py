"""How a config field is declared: type (from the annotation), default, help, range or choices, label,
when it applies, and whether it fixes the test episodes.

Built-in sections (:mod:`workbench.config`) and plugins' own options use the same :func:`F`, so a
plugin's fields are validated and shown in the form exactly like the built-in ones. Torch- and Qt-free.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Callable

# top-level names of the experiment config; a plugin's options section may not take one of them
SECTIONS = ("data", "split", "task", "model", "learner", "embedding", "train", "eval")
TOP_LEVEL = ("name", "plugins", "schema_version")


def reserved_sections() -> tuple[str, ...]:
    return SECTIONS + TOP_LEVEL


def F(default: Any, help: str, *, choices: tuple | Callable[[], tuple] | None = None, min: float | None = None,
      max: float | None = None, kind: str | None = None, advanced: bool = False, label: str = "",
      applies: Callable[[Any], bool] | None = None, fixes_episodes: bool = False):
    """A config field with its metadata.

    - ``choices``: allowed values, or a function returning them (for names that plugins extend);
    - ``label``: the field's name on screen (default: its name, capitalised);
    - ``applies(cfg)``: whether the experiment ``cfg`` uses this field (default: always); a field that
      does not apply is hidden in the form and its range is not checked;
    - ``fixes_episodes``: the field decides which test episodes a run is scored on (two sessions that
      agree on all such fields were tested on the same seeded tasks and can be compared pairwise).
    """
    meta = {"help": help, "choices": choices, "min": min, "max": max, "kind": kind, "advanced": advanced,
            "label": label, "applies": applies, "fixes_episodes": fixes_episodes}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)
