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


# what the form, the study forms and the compare tables call each section
SECTION_TITLES = {"": "Experiment", "data": "Data", "split": "Task split", "task": "Episodes (N-way, K-shot)",
                  "model": "Backbone", "learner": "Meta-learner", "embedding": "Task embedding",
                  "train": "Meta-training", "eval": "Final test"}


def section_title(section: str) -> str:
    """The title of a config section on screen (a plugin's section: its name, capitalised)."""
    return SECTION_TITLES.get(section, section.replace("_", " ").capitalize())


def field_title(fi) -> str:
    """``Meta-learner › Inner learning rate``: a field (a ``config.FieldInfo``) named by its section's
    title and its label, as the form shows it."""
    return f"{section_title(fi.section)} › {fi.label}"


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
