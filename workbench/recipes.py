"""Papers' training recipes as presets, each with the figure its paper reported.

A recipe is a TOML file in ``resources/presets/recipes/``: an experiment config (the sections of
:mod:`workbench.config`) plus two tables of its own, removed before the config is read:

- ``[recipe]``: ``paper`` (citation), ``notes`` (one paragraph: what the paper did), and
  ``deviations`` (a list of sentences: what the paper did that this config cannot express, e.g.
  more ways in meta-training than at test, a learning-rate schedule, a longer fine-tuning);
- ``[reported]`` (optional: left out where no figure is known for sure): ``metric``
  ("accuracy", as a fraction), ``value``, ``ci`` (the paper's 95% interval half-width, or
  absent when the paper gives none), ``source`` (paper and table) and ``setting`` (in words,
  e.g. "Omniglot 5-way 1-shot").

Recipes need ``data.path`` (Omniglot, mini-ImageNet), so they are read as presets the user still
completes (``complete=False``): types are checked, the empty path is not.

Which fields *define* a recipe (:func:`defining_keys`): every config field that applies to it, but
not where the data lie, on which device or how many threads, how often it logs, validates or
checkpoints, or which seeds it uses (a paper's figure is not tied to one seed).

Torch- and Qt-free: the window and ``workbench show`` read it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbench import config as C

#: the recipe's own tables, stripped before the config is read
RECIPE_TABLES = ("recipe", "reported")

#: fields that never make a session depart from a recipe
IGNORED = ("name", "plugins", "data.path", "train.device", "train.threads", "train.log_every",
           "train.eval_every", "train.val_episodes", "train.checkpoint_every", "train.strategy",
           "train.seed", "eval.seed", "split.seed", "train.memory_limit_mb")


@dataclass(frozen=True)
class Reported:
    """A figure a paper reported for a recipe."""

    metric: str                 # "accuracy" (a fraction) or "mse"
    value: float
    ci: float | None            # 95% half-width as the paper gives it, None when it gives none
    source: str                 # paper and table
    setting: str                # e.g. "Omniglot 5-way 1-shot"


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    config: C.ExperimentConfig
    reported: Reported | None
    paper: str = ""
    notes: str = ""
    deviations: tuple[str, ...] = ()


def recipes_dir() -> Path:
    from workbench import resources
    return resources.path("presets", "recipes")


def list_recipes() -> dict[str, Path]:
    """Recipe name (file stem) -> file, sorted by name."""
    d = recipes_dir()
    return {p.stem: p for p in sorted(d.glob("*.toml"))} if d.is_dir() else {}


def _reported(table, where: str) -> Reported | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise C.ConfigError([f"{where}: [reported] must be a table"])
    problems = []
    metric = table.get("metric", "accuracy")
    value, ci = table.get("value"), table.get("ci")
    if metric not in ("accuracy", "mse"):
        problems.append(f"{where}: reported.metric must be 'accuracy' or 'mse', got {metric!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{where}: reported.value must be a number, got {value!r}")
    elif metric == "accuracy" and not 0.0 <= value <= 1.0:
        problems.append(f"{where}: reported.value is an accuracy and must lie in [0, 1] (a fraction), got {value!r}")
    if ci is not None and (isinstance(ci, bool) or not isinstance(ci, (int, float)) or ci < 0):
        problems.append(f"{where}: reported.ci must be a non-negative number, got {ci!r}")
    for key in ("source", "setting"):
        if not isinstance(table.get(key, ""), str) or not table.get(key):
            problems.append(f"{where}: reported.{key} must be non-empty text")
    unknown = set(table) - {"metric", "value", "ci", "source", "setting"}
    if unknown:
        problems.append(f"{where}: unknown field(s) in [reported]: {', '.join(sorted(unknown))}")
    if problems:
        raise C.ConfigError(problems)
    return Reported(metric, float(value), None if ci is None else float(ci), table["source"], table["setting"])


_CACHE: dict = {}      # (path, mtime, size) -> Recipe: reading a config costs a schema walk per field


def read_recipe(name: str) -> Recipe:
    """The recipe ``name`` with its config (to be completed: data.path) and its reported figure.
    The config is a copy: changing it changes no later read."""
    recipes = list_recipes()
    if name not in recipes:
        hint = difflib.get_close_matches(name, list(recipes), n=1)
        raise C.ConfigError([f"no recipe named {name!r}; recipes: {', '.join(recipes) or 'none'}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else "")])
    path = recipes[name]
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    if key in _CACHE:
        r = _CACHE[key]
        return dataclasses.replace(r, config=copy.deepcopy(r.config))
    r = _read(name, path)
    if key is not None:
        _CACHE[key] = r
    return dataclasses.replace(r, config=copy.deepcopy(r.config))


def _read(name: str, path: Path) -> Recipe:
    where = f"recipe {name!r} ({path.name})"
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise C.ConfigError([f"{where} cannot be read: {e}"]) from None
    meta = d.pop("recipe", {})
    if not isinstance(meta, dict) or not isinstance(meta.get("deviations", []), list):
        raise C.ConfigError([f"{where}: [recipe] must be a table whose 'deviations' is a list of sentences"])
    deviations = meta.get("deviations", [])
    reported = _reported(d.pop("reported", None), where)
    try:
        cfg = C.from_dict(d, validate_values=False)
    except C.ConfigError as e:
        raise C.ConfigError([f"{where}: {p}" for p in e.problems]) from None
    return Recipe(name, path, cfg, reported, str(meta.get("paper", "")), str(meta.get("notes", "")),
                  tuple(str(x) for x in deviations))


def load_recipe(name: str) -> tuple[C.ExperimentConfig, Reported | None]:
    """(config, reported figure or None) of the recipe ``name``."""
    r = read_recipe(name)
    return r.config, r.reported


def all_recipes() -> list[Recipe]:
    """Every recipe that reads; one that does not is skipped (``recipe_problems`` says why)."""
    out = []
    for name in list_recipes():
        try:
            out.append(read_recipe(name))
        except C.ConfigError:
            continue
    return out


def recipes_for(learner: str, dataset: str) -> list[Recipe]:
    """The recipes of one learner on one data set. Files are first sorted out by their raw TOML
    (fast), so only the few that match are read as configs (a config read walks the schema)."""
    out = []
    for name, path in list_recipes().items():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        lrn, data = raw.get("learner", {}), raw.get("data", {})
        if not isinstance(lrn, dict) or not isinstance(data, dict):
            continue
        if lrn.get("name", C.LearnerConfig().name) != learner or data.get("dataset", C.DataConfig().dataset) != dataset:
            continue
        try:
            out.append(read_recipe(name))
        except C.ConfigError:
            continue
    return out


def recipe_problems() -> list[str]:
    """One sentence per recipe file that cannot be read."""
    out = []
    for name in list_recipes():
        try:
            read_recipe(name)
        except C.ConfigError as e:
            out += e.problems
    return out


def defining_keys(cfg: C.ExperimentConfig, schema: list | None = None) -> list[str]:
    """The fields of ``cfg`` that define a recipe: those that apply to it, minus :data:`IGNORED`."""
    return [fi.key for fi in (schema or C.schema()) if fi.key not in IGNORED and fi.applies(cfg)]


def differences(session_cfg: C.ExperimentConfig, recipe_cfg: C.ExperimentConfig,
                schema: list | None = None) -> list[tuple[str, object, object]]:
    """(key, session value, recipe value) of every defining field where the two differ. A field
    that applies to one config only counts when its values differ (a field that does not apply
    keeps its default)."""
    schema = schema or C.schema()
    keys = dict.fromkeys(defining_keys(recipe_cfg, schema) + defining_keys(session_cfg, schema))
    out = []
    for key in keys:
        try:
            a, b = session_cfg.get(key), recipe_cfg.get(key)
        except (KeyError, AttributeError):
            continue
        if a != b:
            out.append((key, a, b))
    return out
