"""A study definition: a base experiment plus seeds, grid axes and an optional search, as TOML.

    [study]
    name = "digits: every learner x 3 seeds"
    seeds = [0, 1, 2]                 # values of train.seed; eval.seed stays the base's for every run
    max_runs = 200                    # more planned runs than this need an explicit confirmation

    [study.grid]                      # the product of every axis
    "learner.name" = ["protonet", "maml"]
    "task.shots" = [1, 5]

    [study.search]                    # optional: trials points drawn from ranges, crossed with the grid
    trials = 8
    seed = 0
    method = "sobol"                  # scrambled Sobol (scipy.stats.qmc), or "random"
    [study.search.space]
    "learner.inner_lr" = { log_uniform = [0.001, 1.0] }
    "learner.meta_lr" = { uniform = [0.0001, 0.01] }
    "learner.inner_steps" = { int = [1, 5] }
    "model.norm" = { choice = ["batch", "none"] }

    [base]                            # the experiment config every run starts from (any config section),
    base_preset = "digits_protonet"   # optionally on top of an experiment preset
    [base.train]
    steps = 100

A *cell* is one combination of axis values (a grid point, times a search trial); each cell runs once
per seed. :func:`plan` lists the runs in a stable order; :func:`validate_study` says what is wrong in
one sentence per bad field. Torch-free.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import math
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from workbench import config as C
from workbench.config import ConfigError, Problem

#: planned runs above which a study needs an explicit confirmation (``--yes``, or a dialog)
DEFAULT_MAX_RUNS = 200
SEARCH_METHODS = ("sobol", "random")
RANGE_KINDS = ("uniform", "log_uniform", "int", "choice")
STUDY_KEYS = ("name", "seeds", "max_runs", "grid", "search", "description")
SEARCH_KEYS = ("trials", "seed", "method", "space")
SEED_KEY = "train.seed"


class StudyError(ConfigError):
    """A study definition that cannot be used; ``problems`` holds one sentence per bad field."""


@dataclass(frozen=True)
class SearchRange:
    """One searched field: ``uniform`` / ``log_uniform`` floats in [low, high], ``int`` in [low, high]
    (both ends included), or one of ``choices``."""

    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple = ()

    def value(self, u: float):
        """The value at ``u`` in [0, 1) (a quasi-random or random coordinate)."""
        u = min(max(float(u), 0.0), math.nextafter(1.0, 0.0))
        if self.kind == "uniform":
            return _round(self.low + u * (self.high - self.low))
        if self.kind == "log_uniform":
            lo, hi = math.log(self.low), math.log(self.high)
            return _round(math.exp(lo + u * (hi - lo)))
        if self.kind == "int":
            return int(self.low) + min(int(u * (int(self.high) - int(self.low) + 1)), int(self.high) - int(self.low))
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def to_dict(self) -> dict:
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        return {self.kind: [self.low, self.high]}


def _round(x: float) -> float:
    """Six significant digits: searched values read well in tables and survive TOML exactly."""
    return float(f"{x:.6g}")


@dataclass
class SearchSpec:
    """A random or quasi-random search: ``trials`` points over ``space``, drawn with its own ``seed``."""

    space: dict[str, SearchRange] = field(default_factory=dict)
    trials: int = 8
    seed: int = 0
    method: str = "sobol"

    def points(self) -> list[dict]:
        """The trial points, in order (same spec, same points)."""
        keys = list(self.space)
        if not keys or self.trials < 1:
            return []
        if self.method == "sobol":
            from scipy.stats import qmc
            with warnings.catch_warnings():      # "balance properties" warning for non-powers of 2
                warnings.simplefilter("ignore")
                u = qmc.Sobol(d=len(keys), scramble=True, seed=self.seed).random(self.trials)
        else:
            import numpy as np
            u = np.random.default_rng(self.seed).random((self.trials, len(keys)))
        return [{k: self.space[k].value(u[i, j]) for j, k in enumerate(keys)} for i in range(self.trials)]

    def to_dict(self) -> dict:
        return {"trials": self.trials, "seed": self.seed, "method": self.method,
                "space": {k: r.to_dict() for k, r in self.space.items()}}


@dataclass
class StudyDefinition:
    """A base experiment config, the seeds (``train.seed`` values), grid axes and an optional search."""

    name: str
    base: C.ExperimentConfig
    seeds: list[int] = field(default_factory=lambda: [0])
    grid: dict[str, list] = field(default_factory=dict)
    search: SearchSpec | None = None
    max_runs: int = DEFAULT_MAX_RUNS
    description: str = ""

    @property
    def axes(self) -> list[str]:
        """Every varied key: grid axes first, then searched fields."""
        return list(self.grid) + [k for k in (self.search.space if self.search else {}) if k not in self.grid]

    def cells(self) -> list[dict]:
        """Every combination of axis values, in order: grid product (last axis fastest) x search trials."""
        keys = list(self.grid)
        grid = [dict(zip(keys, combo)) for combo in itertools.product(*(self.grid[k] for k in keys))]
        trials = self.search.points() if self.search else []
        if not trials:
            return grid
        return [{**g, **t} for g in grid for t in trials]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: ``cell`` (axis key -> value), its ``seed``, the ``overrides`` applied to the
    base config (cell plus ``train.seed``) and the resulting ``config``."""

    run_id: str
    cell_id: str
    cell: dict
    seed: int
    overrides: dict
    config: C.ExperimentConfig


def cell_label(cell: dict) -> str:
    """``learner.name=maml, task.shots=1`` (``base`` for the one cell of a seeds-only study)."""
    return ", ".join(f"{k}={_show(v)}" for k, v in cell.items()) or "base"


def _show(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _cell_id(i: int) -> str:
    return f"c{i:03d}"


def _run_id(cell_id: str, seed: int) -> str:
    return f"{cell_id}-seed{seed}"


def count_runs(defn: StudyDefinition) -> int:
    """Planned runs, without building any config."""
    n = 1
    for values in defn.grid.values():
        n *= len(values)
    if defn.search and defn.search.space:
        n *= max(0, defn.search.trials)
    return n * len(defn.seeds)


def needs_confirmation(defn: StudyDefinition) -> str | None:
    """A sentence asking to confirm a study of more than ``max_runs`` runs, else None."""
    n = count_runs(defn)
    if n > defn.max_runs:
        return (f"this study plans {n} runs, more than its limit of {defn.max_runs} (study.max_runs): "
                f"confirm to launch them all (workbench study run --yes), or make the study smaller")
    return None


def _fields() -> dict:
    """key -> FieldInfo, built once per call site (config.schema() rebuilds the list every time)."""
    return {fi.key: fi for fi in C.schema()}


def _config_for(base: C.ExperimentConfig, overrides: dict, name: str, fields: dict | None = None) -> C.ExperimentConfig:
    fields = fields if fields is not None else _fields()
    cfg = copy.deepcopy(base)
    for key, v in overrides.items():
        fi = fields.get(key)
        cfg.set(key, _coerce(fi, copy.deepcopy(v)) if fi is not None else copy.deepcopy(v))
    cfg.name = name
    return cfg


def plan(defn: StudyDefinition) -> list[PlannedRun]:
    """Every run of the study, cell by cell, seed by seed. Raises :class:`StudyError` if the definition
    is not valid (see :func:`validate_study`; the run-count limit is not checked here)."""
    problems = validate_study(defn, confirmed=True)
    if problems:
        raise StudyError(problems)
    return _plan(defn)


def _plan(defn: StudyDefinition) -> list[PlannedRun]:
    out = []
    fields = _fields()
    for i, cell in enumerate(defn.cells()):
        cid = _cell_id(i)
        for seed in defn.seeds:
            overrides = {**cell, SEED_KEY: int(seed)}
            rid = _run_id(cid, seed)
            cfg = _config_for(defn.base, overrides, f"{defn.name}: {cell_label(cell)}, seed {seed}", fields)
            out.append(PlannedRun(rid, cid, dict(cell), int(seed), overrides, cfg))
    return out


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def _p(key: str, detail: str) -> Problem:
    return Problem(key, f"{key}: {detail}", detail)




def _unknown_key(where: str, key: str, known: list[str]) -> Problem:
    hint = difflib.get_close_matches(key, known, n=1)
    return _p(f"{where}.{key}" if where else key,
              "unknown " + ("field" if where.startswith("study.") and where != "study" else "key")
              + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def _check_axis_key(where: str, key: str, keys: list[str]) -> Problem | None:
    if key == SEED_KEY:
        return _p(f"{where}.{key}", "seeds are given by study.seeds, not by an axis on train.seed "
                                    "(the seeds would be given twice)")
    if key == "eval.seed":
        return _p(f"{where}.{key}", "every run of a study is tested on the same episodes (one eval.seed), "
                                    "so paired comparisons hold; set eval.seed in [base] instead")
    if key == "name":
        return _p(f"{where}.{key}", "run names are made by the study; vary a config field instead")
    if key not in keys:
        hint = difflib.get_close_matches(key, keys, n=1)
        return _p(f"{where}.{key}", "not a config field" + (f" (did you mean {hint[0]!r}?)" if hint else
                                                             "; 'workbench config' prints every field"))
    return None


def validate_study(defn, *, confirmed: bool = False) -> list[Problem]:
    """Everything wrong with a study, one :class:`Problem` per bad field: ``defn`` is a
    :class:`StudyDefinition` or the dict read from its TOML. ``confirmed=False`` also reports a study
    of more than ``max_runs`` runs (launch it with an explicit confirmation)."""
    if isinstance(defn, dict):
        try:
            defn = study_from_dict(defn)
        except StudyError as e:
            return e.items
    problems: list[Problem] = []
    fields = _fields()
    keys = list(fields)
    if not isinstance(defn.name, str) or not defn.name.strip():
        problems.append(_p("study.name", "is empty: give the study a short name"))
    seeds = defn.seeds
    if not isinstance(seeds, list) or not seeds:
        problems.append(_p("study.seeds", "give at least one seed, e.g. seeds = [0, 1, 2]"))
        seeds = []
    elif any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        problems.append(_p("study.seeds", f"{seeds!r}: every seed must be a whole number"))
    elif any(s < 0 or s > 2**31 - 1 for s in seeds):
        problems.append(_p("study.seeds", f"{seeds!r}: every seed must be between 0 and {2**31 - 1}"))
    elif len(set(seeds)) != len(seeds):
        problems.append(_p("study.seeds", f"{seeds!r}: each seed at most once"))
    if isinstance(defn.max_runs, bool) or not isinstance(defn.max_runs, int) or defn.max_runs < 1:
        problems.append(_p("study.max_runs", f"{defn.max_runs!r}: must be a whole number of at least 1"))
    axis_ok = True
    for key, values in defn.grid.items():
        where = f"study.grid.{key}"
        if (p := _check_axis_key("study.grid", key, keys)):
            problems.append(p)
            axis_ok = False
            continue
        if not isinstance(values, list):
            problems.append(_p(where, f"{values!r}: an axis is a list of values, e.g. [1, 5]"))
            axis_ok = False
        elif not values:
            problems.append(_p(where, "is empty: give at least one value (or remove the axis)"))
            axis_ok = False
        elif len({repr(v) for v in values}) != len(values):
            problems.append(_p(where, f"{values!r}: each value at most once (a repeated value repeats runs)"))
            axis_ok = False
        else:
            fi = fields[key]
            for v in values:
                bad = C.check_value(fi, _coerce(fi, v), ranges=True)
                if bad:
                    problems.append(_p(where, f"{v!r}: {bad.detail}" if bad.detail else bad.message))
                    axis_ok = False
                    break
    s = defn.search
    if s is not None:
        if isinstance(s.trials, bool) or not isinstance(s.trials, int) or s.trials < 1:
            problems.append(_p("study.search.trials", f"{s.trials!r}: must be a whole number of at least 1"))
            axis_ok = False
        if isinstance(s.seed, bool) or not isinstance(s.seed, int) or s.seed < 0:
            problems.append(_p("study.search.seed", f"{s.seed!r}: must be a whole number of at least 0"))
            axis_ok = False
        if s.method not in SEARCH_METHODS:
            problems.append(_p("study.search.method", f"{s.method!r}: must be one of {', '.join(SEARCH_METHODS)}"))
            axis_ok = False
        if not s.space:
            problems.append(_p("study.search.space", "is empty: name at least one field and its range"))
            axis_ok = False
        for key, r in s.space.items():
            where = f"study.search.space.{key}"
            if (p := _check_axis_key("study.search.space", key, keys)):
                problems.append(p)
                axis_ok = False
                continue
            if key in defn.grid:
                problems.append(_p(where, "is both a grid axis and a searched field; keep one"))
                axis_ok = False
                continue
            if (msg := _range_problem(fields[key], r)):
                problems.append(_p(where, msg))
                axis_ok = False
    if problems or not axis_ok:
        return problems
    n = count_runs(defn)
    if not confirmed and n > defn.max_runs:
        problems.append(_p("study.max_runs", needs_confirmation(defn)))
    if n > 100_000:
        return problems + [_p("study", f"plans {n} runs: far too many to check or run; make it smaller")]
    runs = _plan(defn) if seeds else []
    seen: set[str] = set()
    applies = {k: False for k in defn.axes}
    first_seed = seeds[0] if seeds else None
    for run in runs:
        if run.seed != first_seed:      # runs of one cell differ only in train.seed (checked above)
            continue
        for k in applies:
            if not applies[k] and fields[k].applies(run.config):
                applies[k] = True
        for pr in C.validate(run.config):
            if pr.key in run.cell:
                key, msg = f"study.grid.{pr.key}" if pr.key in defn.grid else f"study.search.space.{pr.key}", \
                    pr.detail or pr.message
                msg = f"{run.cell[pr.key]!r}: {msg}" if pr.detail else msg
            else:
                key, msg = f"base.{pr.key}" if pr.key else "base", pr.message
                if run.cell:
                    msg += f" (in cell {cell_label(run.cell)})"
            if (key, msg) not in seen and key not in {q.key for q in problems}:
                seen.add((key, msg))
                problems.append(Problem(key, f"{key}: {msg}", msg))
    for k, used in applies.items():
        if not used and runs:
            where = f"study.grid.{k}" if k in defn.grid else f"study.search.space.{k}"
            problems.append(_p(where, f"the runs ignore this field ({_why_ignored(defn, runs[0].config)}): "
                                      "varying it would repeat the same run"))
    return problems


def _why_ignored(defn, cfg) -> str:
    return f"{cfg.learner.name} on {cfg.data.dataset} with the {C.resolved_backbone(cfg)} backbone does not read it"


def _coerce(fi, v):
    if fi.type is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def _range_problem(fi, r: SearchRange) -> str | None:
    if r.kind not in RANGE_KINDS:
        return f"range kind {r.kind!r} is not one of {', '.join(RANGE_KINDS)}"
    if r.kind == "choice":
        if not r.choices:
            return "choice is empty: give at least one value"
        for v in r.choices:
            bad = C.check_value(fi, _coerce(fi, v), ranges=True)
            if bad:
                return f"choice {v!r}: {bad.detail or bad.message}"
        return None
    if fi.type not in (int, float):
        return f"{r.kind} needs a numeric field; {fi.key} takes {fi.type.__name__}: use choice = [...]"
    nums = (r.low, r.high)
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in nums):
        return f"{r.kind} = [{r.low!r}, {r.high!r}]: give two finite numbers [low, high]"
    if r.kind == "int" and (fi.type is not int or any(isinstance(x, float) for x in nums)):
        return ("int ranges are for whole-number fields, with whole-number ends" if fi.type is int else
                f"{fi.key} takes a number: use uniform or log_uniform")
    if fi.type is int and r.kind != "int":
        return f"{fi.key} takes a whole number: use int = [low, high]"
    if r.low >= r.high:
        return f"{r.kind} = [{r.low:g}, {r.high:g}]: low must be below high"
    if r.kind == "log_uniform" and r.low <= 0:
        return f"log_uniform = [{r.low:g}, {r.high:g}]: both ends must be above 0"
    for x in nums:
        bad = C.check_value(fi, _coerce(fi, x), ranges=True)
        if bad:
            return f"end {x:g}: {bad.detail or bad.message}"
    return None


# --------------------------------------------------------------------------
# TOML
# --------------------------------------------------------------------------
def _parse_range(key: str, value) -> SearchRange:
    if not isinstance(value, dict) or len(value) != 1:
        raise StudyError([_p(f"study.search.space.{key}", f"{value!r}: write one range, e.g. "
                                                           "{ log_uniform = [0.001, 1.0] } or { choice = [1, 5] }")])
    (kind, arg), = value.items()
    if kind not in RANGE_KINDS:
        hint = difflib.get_close_matches(kind, RANGE_KINDS, n=1)
        raise StudyError([_p(f"study.search.space.{key}", f"unknown range kind {kind!r}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else f"; use {', '.join(RANGE_KINDS)}"))])
    if not isinstance(arg, list):
        raise StudyError([_p(f"study.search.space.{key}", f"{kind} = {arg!r}: must be a list")])
    if kind == "choice":
        return SearchRange("choice", choices=tuple(arg))
    if len(arg) != 2:
        raise StudyError([_p(f"study.search.space.{key}", f"{kind} = {arg!r}: give [low, high]")])
    return SearchRange(kind, arg[0], arg[1])


def study_from_dict(d: dict) -> StudyDefinition:
    """A definition from the dict read from TOML. Raises :class:`StudyError` for structural problems
    (unknown keys, wrong types, a base config that cannot be read); values are checked by
    :func:`validate_study`."""
    problems: list[Problem] = []
    if not isinstance(d, dict):
        raise StudyError([Problem("", "a study must be a TOML table", "a study must be a TOML table")])
    for k in d:
        if k not in ("study", "base"):
            problems.append(_unknown_key("", k, ["study", "base"]))
    st = d.get("study")
    if not isinstance(st, dict):
        problems.append(_p("study", "missing: a study needs a [study] table with at least name and seeds"))
        raise StudyError(problems)
    for k in st:
        if k not in STUDY_KEYS:
            problems.append(_unknown_key("study", k, list(STUDY_KEYS)))
    grid = st.get("grid", {})
    if not isinstance(grid, dict):
        problems.append(_p("study.grid", f"{grid!r}: must be a table of axes, e.g. \"task.shots\" = [1, 5]"))
        grid = {}
    search = None
    sd = st.get("search")
    if sd is not None:
        if not isinstance(sd, dict):
            problems.append(_p("study.search", "must be a table with trials, seed, method and space"))
        else:
            for k in sd:
                if k not in SEARCH_KEYS:
                    problems.append(_unknown_key("study.search", k, list(SEARCH_KEYS)))
            space = {}
            sp = sd.get("space", {})
            if not isinstance(sp, dict):
                problems.append(_p("study.search.space", "must be a table of field = { kind = [...] }"))
                sp = {}
            for key, v in sp.items():
                try:
                    space[key] = _parse_range(key, v)
                except StudyError as e:
                    problems += e.items
            search = SearchSpec(space, sd.get("trials", 8), sd.get("seed", 0), sd.get("method", "sobol"))
    base = _base_from(d.get("base", {}), problems)
    if problems:
        raise StudyError(problems)
    grid = {k: list(v) if isinstance(v, tuple) else v for k, v in grid.items()}
    return StudyDefinition(name=st.get("name", ""), base=base, seeds=st.get("seeds", [0]), grid=grid,
                           search=search, max_runs=st.get("max_runs", DEFAULT_MAX_RUNS),
                           description=st.get("description", ""))


def _base_from(bd, problems: list) -> C.ExperimentConfig | None:
    if not isinstance(bd, dict):
        problems.append(_p("base", "must be a table: the experiment config every run starts from"))
        return None
    bd = dict(bd)
    preset = bd.pop("base_preset", None)
    try:
        if preset is not None:
            if not isinstance(preset, str):
                problems.append(_p("base.base_preset", f"{preset!r}: must be a preset name"))
                return None
            start = C.to_dict(C.load_preset(preset, complete=False))
            for k, v in bd.items():
                if isinstance(v, dict) and isinstance(start.get(k), dict):
                    start[k].update(v)
                else:
                    start[k] = v
            bd = start
        return C.from_dict(bd, validate_values=False)
    except ConfigError as e:
        for it in e.items:
            key = f"base.{it.key}" if it.key else "base"
            msg = it.message if it.message.startswith(("unknown", "no preset")) or not it.key else it.message
            problems.append(Problem(key, f"base: {msg}", it.detail or msg))
        return None


def study_from_toml(text: str, *, source: str = "study") -> StudyDefinition:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise StudyError([Problem("", f"{source} is not valid TOML: {e}", f"not valid TOML: {e}")]) from None
    return study_from_dict(d)


def load_study(path) -> StudyDefinition:
    """Read a study TOML file (structure checked; call :func:`validate_study` for the values)."""
    p = Path(path)
    if not p.is_file():
        what = "is a folder, expected a .toml file" if p.is_dir() else "does not exist"
        raise StudyError([Problem("", f"study file {str(p)!r} {what}", what)])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError([Problem("", f"study file {str(p)!r} cannot be read: {e}", str(e))]) from None
    return study_from_toml(text, source=f"study file {str(p)!r}")


def study_to_dict(defn: StudyDefinition) -> dict:
    st: dict[str, Any] = {"name": defn.name}
    if defn.description:
        st["description"] = defn.description
    st["seeds"] = list(defn.seeds)
    st["max_runs"] = defn.max_runs
    st["grid"] = {k: list(v) for k, v in defn.grid.items()}
    if defn.search is not None:
        st["search"] = defn.search.to_dict()
    base = C.to_dict(defn.base)
    return {"study": st, "base": base}


def study_to_toml(defn: StudyDefinition) -> str:
    """The definition as TOML (the base config written in full, so the file stands alone)."""
    return tomli_w.dumps(study_to_dict(defn))


def replace_study(defn: StudyDefinition, **changes) -> StudyDefinition:
    return dataclasses.replace(defn, **changes)
