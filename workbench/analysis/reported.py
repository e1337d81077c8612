"""Reported vs reproduced: how close a session came to the figure its recipe's paper reported.

A session is held against the recipe (:mod:`workbench.recipes`) of the same learner and data set
whose defining fields it matches best. When it matches all of them and the recipe stores a
reported figure, the gauge states both numbers and whether the reported one lies inside the
run's 95% confidence interval (mean ± 1.96 standard errors over its test episodes). When the
session departs from the recipe, it says which fields differ, by their labels, and does not
judge the figures: a run with another budget or setting is not a reproduction.

Qt- and torch-free: ``workbench show``, the session view and the compare view call it.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench import config as C
from workbench import format as fmt
from workbench import recipes as R


@dataclass(frozen=True)
class Difference:
    key: str
    label: str
    session: object
    recipe: object


@dataclass(frozen=True)
class Gauge:
    recipe: str                         # recipe name (file stem)
    title: str                          # the recipe's config name
    reported: R.Reported | None
    metric: str
    mean: float | None                  # the session's final test mean (None: no final test)
    ci95: float | None
    episodes: int
    differences: tuple[Difference, ...]

    @property
    def matches(self) -> bool:
        return not self.differences

    @property
    def inside(self) -> bool | None:
        """Whether the reported figure lies inside the run's 95% CI; None when that cannot be said
        (the session departs from the recipe, has no final test, or the recipe stores no figure)."""
        if not self.matches or self.reported is None or self.mean is None or self.ci95 is None:
            return None
        if self.reported.metric != self.metric:
            return None
        return abs(self.reported.value - self.mean) <= self.ci95

    def reported_text(self) -> str:
        r = self.reported
        return f"{fmt.metric_ci(r.metric, r.value, r.ci)} ({r.source}, {r.setting})" if r else ""

    def reproduced_text(self) -> str:
        if self.mean is None:
            return "no final test yet"
        return f"{fmt.metric_ci(self.metric, self.mean, self.ci95)} over {self.episodes} episodes"

    def lines(self, max_fields: int = 8) -> list[str]:
        """The gauge in words, one or two lines."""
        if not self.matches:
            shown = [f"{d.label} {_value(d.session)} (recipe {_value(d.recipe)})" for d in self.differences[:max_fields]]
            more = len(self.differences) - len(shown)
            head = (f"Departs from recipe {self.recipe} ({self.title}) in {len(self.differences)} field"
                    f"{'s' if len(self.differences) != 1 else ''}: " + "; ".join(shown)
                    + (f"; and {more} more" if more > 0 else ""))
            tail = (f"Reported {self.reported_text()}; this run ({self.reproduced_text()}) is not a reproduction "
                    f"of it." if self.reported else "The recipe stores no reported figure.")
            return [head + ".", tail]
        first = f"Follows recipe {self.recipe} ({self.title})."
        if self.reported is None:
            return [first, f"Reproduced {self.reproduced_text()}; the recipe stores no reported figure."]
        line = f"Reported {self.reported_text()}; reproduced {self.reproduced_text()}"
        inside = self.inside
        if inside is None:
            return [first, line + "."]
        gap = fmt.metric_diff(self.metric, self.mean - self.reported.value)
        verdict = ("the reported figure lies inside the run's 95% CI" if inside
                   else "the reported figure lies outside the run's 95% CI")
        return [first, f"{line}: {verdict} (reproduced minus reported {gap})."]

    def text(self) -> str:
        return " ".join(self.lines())


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v) if isinstance(v, str) else str(v)


def _label(key: str) -> str:
    try:
        fi = C.field_info(key)
    except KeyError:
        return key
    section = fi.section if fi.section and fi.section not in C.SECTIONS else ""
    return f"{fi.label} [{section}]" if section else fi.label


def closest_recipe(cfg: C.ExperimentConfig, recipes: list | None = None):
    """(recipe, differences) of the recipe of ``cfg``'s learner and data set with the fewest
    differing defining fields, or None when no recipe has that learner and data set."""
    recipes = R.recipes_for(cfg.learner.name, cfg.data.dataset) if recipes is None else recipes
    best, schema = None, None
    for rec in recipes:
        rc = rec.config
        if rc.learner.name != cfg.learner.name or rc.data.dataset != cfg.data.dataset:
            continue
        schema = schema or C.schema()
        diffs = R.differences(cfg, rc, schema)
        key = (len(diffs), rec.name)
        if best is None or key < best[0]:
            best = (key, rec, diffs)
    return None if best is None else (best[1], best[2])


def gauge(cfg: C.ExperimentConfig | None, mean: float | None = None, ci95: float | None = None,
          metric: str = "accuracy", episodes: int = 0, recipes: list | None = None) -> Gauge | None:
    """The gauge of a session with config ``cfg`` and final test ``mean`` ± ``ci95``; None when no
    recipe has its learner and data set."""
    if cfg is None:
        return None
    found = closest_recipe(cfg, recipes)
    if found is None:
        return None
    rec, diffs = found
    return Gauge(rec.name, rec.config.name, rec.reported, metric, mean, ci95, int(episodes),
                 tuple(Difference(k, _label(k), a, b) for k, a, b in diffs))


def gauge_of(cfg, final, recipes: list | None = None) -> Gauge | None:
    """:func:`gauge` from a config and a final-test record (anything with ``mean``, ``ci95``,
    ``metric`` and ``per_task``; ``None`` when the session has no final test)."""
    if final is None:
        return gauge(cfg, recipes=recipes, metric="mse" if cfg is not None and cfg.is_regression else "accuracy")
    return gauge(cfg, float(final.mean), float(final.ci95), final.metric, len(final.per_task), recipes)


def session_lines(cfg, final, recipes: list | None = None) -> list[str]:
    """The gauge's lines for a session (empty when no recipe applies, or the recipes cannot be read)."""
    try:
        g = gauge_of(cfg, final, recipes)
    except (C.ConfigError, OSError):
        return []
    return g.lines() if g is not None else []


def reader_lines(reader) -> list[str]:
    """:func:`session_lines` for an open session reader (``workbench show``); empty when its config
    cannot be read."""
    try:
        cfg = reader.config
        final = reader.final_test()
    except Exception:  # a damaged session: 'show' reports that elsewhere; the gauge stays silent
        return []
    return session_lines(cfg, final)


def compare_rows(sessions, recipes: list | None = None) -> tuple[list[str], list[list[str]]]:
    """A table for the compare view: one row per session (``workbench.analysis.compare.SessionData``)
    with its recipe, the reported figure, the reproduced one and the verdict or the differing fields."""
    head = ["session", "recipe", "reported", "reproduced", "verdict"]
    rows = []
    for s in sessions:
        g = gauge_of(s.config, s.final, recipes) if s.config is not None else None
        if g is None:
            rows.append([s.label, "–", "–", "–", "no recipe for this learner and data set"])
            continue
        rep = fmt.metric_ci(g.reported.metric, g.reported.value, g.reported.ci) if g.reported else "–"
        if not g.matches:
            verdict = "departs: " + ", ".join(d.label for d in g.differences[:6]) + (
                "…" if len(g.differences) > 6 else "")
        elif g.inside is None:
            verdict = "follows the recipe" + ("" if g.reported else "; no reported figure")
        else:
            verdict = "reported inside the 95% CI" if g.inside else "reported outside the 95% CI"
        rows.append([s.label, g.recipe, rep, fmt.metric_ci(g.metric, g.mean, g.ci95) if g.mean is not None else "–",
                     verdict])
    return head, rows
