"""Comparing sessions side by side: the numbers behind the compare view and the report.

No Qt here: the GUI's compare view (``workbench.gui.compare``) and the HTML
report (``workbench.gui.report``) draw what this module computes.

- :func:`load_session` reads what a comparison needs from one session file
  (config, curves, final test evaluation); a file that cannot be read becomes a
  :class:`SessionData` whose ``problem`` says why, so one bad file does not
  spoil a comparison.
- :func:`config_differences` lists only the config fields that differ
  (:func:`workbench.config.diff` over every pair).
- :func:`pair` compares two sessions task by task when both were evaluated on
  the same seeded test episodes. The evaluation protocol seeds the test
  episodes with ``eval.seed``: two sessions with the same seed, data set, class
  split and N-way K-shot setting saw exactly the same tasks, so the per-task
  results are paired samples and a paired t-test on their differences
  (:func:`workbench.analysis.stats.paired`) is far more sensitive than
  comparing two independent means with their CIs. Tasks are matched by task
  id (:func:`workbench.analysis.stats.align`). Sessions that cannot be paired
  get a one-sentence reason instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench import config as C
from workbench.analysis.stats import PairedComparison, align, paired
from workbench import format as F
from workbench.fields import field_title

# Config fields that decide which test episodes a session is evaluated on, as the config declares
# them (``fixes_episodes``). Two sessions whose values agree on all of these (and on the metric) saw
# the same seeded test tasks.
PAIRING_KEYS = C.episode_keys()


@dataclass(frozen=True)
class SessionData:
    """What a comparison needs from one session, read once."""

    path: str
    label: str                          # short, unique within a comparison (see :func:`unique_labels`)
    status: str
    config: C.ExperimentConfig | None
    metric: str                         # "accuracy" or "mse" ("" when unknown)
    final: object | None                # workbench.store.EvaluationRecord of the final test, or None
    curves: dict = field(default_factory=dict)   # name -> (steps, wall_time, values)
    problem: str = ""                   # why the file could not be read ("" when it could)

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def n_tasks(self) -> int:
        return 0 if self.final is None else len(self.final.per_task)


def _base_label(path: str, cfg) -> str:
    if cfg is not None and cfg.name:
        return str(cfg.name)
    return Path(path).stem


def unique_labels(paths: list[str], configs: list) -> list[str]:
    """One short label per session: its config name, made unique with the learner, then a number."""
    labels = [_base_label(p, c) for p, c in zip(paths, configs)]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} ({c.learner.name})" if c is not None else lab for lab, c in zip(labels, configs)]
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        k = seen.get(lab, 0) + 1
        seen[lab] = k
        out.append(lab if k == 1 else f"{lab} #{k}")
    return out


def load_session(path, label: str = "") -> SessionData:
    """Read config, curves and the final test evaluation of one session file."""
    from workbench.store import SessionError, SessionReader
    path = str(path)
    try:
        with SessionReader(path) as r:
            cfg = r.config
            curves = {name: r.metric(name) for name in r.metric_names()}
            final = r.final_test()
            status = r.status
            metric = final.metric if final is not None else ("mse" if cfg.is_regression else "accuracy")
    except SessionError as e:
        return SessionData(path, label or Path(path).stem, "damaged", None, "", None, {}, str(e))
    except OSError as e:
        return SessionData(path, label or Path(path).stem, "damaged", None, "", None, {},
                           f"session file {path!r} cannot be read: {e.strerror or e}")
    return SessionData(path, label or _base_label(path, cfg), status, cfg, metric, final, curves)


def load_sessions(paths) -> list[SessionData]:
    """:func:`load_session` for each path, with labels made unique."""
    data = [load_session(p) for p in paths]
    labels = unique_labels([d.path for d in data], [d.config for d in data])
    return [SessionData(d.path, lab, d.status, d.config, d.metric, d.final, d.curves, d.problem)
            for d, lab in zip(data, labels)]


# --------------------------------------------------------------------------
# config differences
# --------------------------------------------------------------------------
def config_differences(configs: list) -> list[tuple[str, list]]:
    """Fields whose value is not the same in every config: ``(key, [value per config])`` in form order.

    ``None`` entries (unreadable sessions) are skipped when finding differences
    and shown as ``None`` in the rows."""
    good = [c for c in configs if c is not None]
    if len(good) < 2:
        return []
    keys = set()
    for c in good[1:]:
        keys |= {k for k, _, _ in C.diff(good[0], c)}
    return [(fi.key, [None if c is None else c.get(fi.key) for c in configs])
            for fi in C.schema() if fi.key in keys]


# --------------------------------------------------------------------------
# paired per-task comparison
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Pairing:
    """Per-task comparison of sessions ``a`` and ``b`` (indices into the compared list)."""

    a: int
    b: int
    reason: str                         # "" when paired, else why not (one sentence)
    task_ids: list = field(default_factory=list)
    values_a: np.ndarray = field(default_factory=lambda: np.zeros(0))
    values_b: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stats: PairedComparison | None = None

    @property
    def ok(self) -> bool:
        return self.stats is not None


def _fmt_value(v) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def pairing_problem(a: SessionData, b: SessionData) -> str:
    """Why sessions ``a`` and ``b`` cannot be compared task by task ("" if they can)."""
    for s in (a, b):
        if not s.ok:
            return f"{s.label} cannot be read: {s.problem}"
        if s.final is None:
            return f"{s.label} has no final test evaluation (status {s.status})"
    if a.metric != b.metric:
        return f"{a.label} reports {a.metric} and {b.label} reports {b.metric}"
    for key in PAIRING_KEYS:
        va, vb = a.config.get(key), b.config.get(key)
        if va != vb:
            return (f"different test episodes: {key} is {_fmt_value(va)} in {a.label} "
                    f"and {_fmt_value(vb)} in {b.label}")
    if a.config.data.dataset == "multimodal" and a.config.data.families != b.config.data.families:
        return "different test episodes: data.families differ"
    return ""


def pair(sessions: list[SessionData], i: int, j: int) -> Pairing:
    """Paired comparison of session ``i`` (A) against session ``j`` (B): differences are A - B."""
    a, b = sessions[i], sessions[j]
    reason = pairing_problem(a, b)
    if reason:
        return Pairing(i, j, reason)
    fa, fb = a.final, b.final
    ids, va, vb = align(list(fa.task_ids), np.asarray(fa.per_task), list(fb.task_ids), np.asarray(fb.per_task))
    if len(ids) < 2:
        return Pairing(i, j, f"{a.label} and {b.label} share {len(ids)} test task ids; at least 2 are needed")
    return Pairing(i, j, "", list(ids), va.astype(np.float64), vb.astype(np.float64), paired(va, vb))


def all_pairings(sessions: list[SessionData]) -> list[Pairing]:
    """:func:`pair` for every pair ``i < j``."""
    return [pair(sessions, i, j) for i in range(len(sessions)) for j in range(i + 1, len(sessions))]


# --------------------------------------------------------------------------
# tables (plain strings, for the view, CSV export and the report)
# --------------------------------------------------------------------------
def metrics_table(sessions: list[SessionData]) -> tuple[list[str], list[list[str]]]:
    """Final test metric of each session with its 95% CI (the field's protocol)."""
    headers = ["session", "status", "learner", "final test", "episodes", "eval seed", "steps"]
    rows = []
    for s in sessions:
        if not s.ok:
            rows.append([s.label, "damaged", "–", "–", "–", "–", "–"])
            continue
        f = s.final
        steps = max((int(c[0][-1]) for c in s.curves.values() if len(c[0])), default=0)
        rows.append([s.label, s.status, s.config.learner.name,
                     f"{s.metric} {F.metric_ci(s.metric, f.mean, f.ci95)}" if f is not None else "no final test",
                     str(len(f.per_task)) if f is not None else "0", str(s.config.eval.seed), str(steps)])
    return headers, rows


def config_table(sessions: list[SessionData]) -> tuple[list[str], list[list[str]]]:
    """Only the config fields that differ, one column per session: the field as the form names it
    (``Meta-learner › Inner learning rate``), its config key, then its value in each session."""
    headers = ["field", "key"] + [s.label for s in sessions]
    rows = [[field_title(C.field_info(key)), key] + ["–" if v is None else str(v) for v in values]
            for key, values in config_differences([s.config for s in sessions])]
    return headers, rows


def paired_table(sessions: list[SessionData], pairings: list[Pairing]) -> tuple[list[str], list[list[str]]]:
    """One row per pair: A, B, tasks, mean A, mean B, mean difference A - B with its 95% CI, p-values."""
    headers = ["A", "B", "tasks", "mean A", "mean B", "A − B", "95% CI of A − B", "p (paired t)", "p (Wilcoxon)",
               "note"]
    rows = []
    for pr in pairings:
        a, b = sessions[pr.a], sessions[pr.b]
        if not pr.ok:
            rows.append([a.label, b.label, "–", "–", "–", "–", "–", "–", "–", pr.reason])
            continue
        st, m = pr.stats, a.metric
        lo, hi = st.mean_diff - st.ci95, st.mean_diff + st.ci95
        rows.append([a.label, b.label, str(st.n), F.metric_ci(m, st.mean_a, float("nan")),
                     F.metric_ci(m, st.mean_b, float("nan")), F.metric_diff(m, st.mean_diff),
                     f"[{F.metric_diff(m, lo)}, {F.metric_diff(m, hi)}]", F.p_value(st.p_value),
                     F.p_value(st.p_wilcoxon), verdict(m, st)])
    return headers, rows


def verdict(metric: str, st: PairedComparison, alpha: float = 0.05) -> str:
    """A plain sentence on a paired result at level ``alpha``."""
    if not (st.p_value < alpha):
        return f"no significant difference (p ≥ {alpha:g})"
    better_a = st.mean_diff > 0 if metric == "accuracy" else st.mean_diff < 0
    return f"{'A' if better_a else 'B'} is better (p < {alpha:g})"


def curve_names(sessions: list[SessionData]) -> list[str]:
    """Every metric curve of any session, in first-seen order (train curves first)."""
    names: list[str] = []
    for s in sessions:
        for n in s.curves:
            if n not in names:
                names.append(n)
    return sorted(names, key=lambda n: (not n.startswith("train/"), names.index(n)))


@dataclass
class Comparison:
    """Everything the compare view and the comparison report show."""

    sessions: list[SessionData]
    pairings: list[Pairing]

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.sessions]

    def pairing(self, i: int, j: int) -> Pairing:
        for p in self.pairings:
            if (p.a, p.b) == (i, j):
                return p
        if i == j:
            return Pairing(i, j, "a session cannot be paired with itself")
        return pair(self.sessions, i, j)

    def tables(self) -> dict[str, tuple[list[str], list[list[str]]]]:
        return {"Final test metrics (mean ± 95% CI)": metrics_table(self.sessions),
                "Config fields that differ": config_table(self.sessions),
                "Paired per-task comparison": paired_table(self.sessions, self.pairings)}


def compare(paths) -> Comparison:
    """Load the sessions at ``paths`` and pair every two of them."""
    paths = [str(p) for p in paths]
    if len(paths) < 2:
        raise ValueError(f"a comparison needs at least 2 sessions, got {len(paths)}")
    sessions = load_sessions(paths)
    return Comparison(sessions, all_pairings(sessions))

