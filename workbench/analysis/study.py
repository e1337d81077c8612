"""Statistics of a study, computed from its session files alone.

- per cell (one combination of axis values): the final test metric of each seed's run, their mean
  with a 95% CI over seeds (t distribution, n - 1 degrees of freedom), beside the usual per-episode
  CI of the cell's pooled test episodes (1.96 * sd / sqrt(n), :func:`workbench.analysis.stats.mean_ci95`);
- a ranking of cells (direction from the metric: accuracy higher is better, mse lower);
- pairwise comparisons of cells. Every run of a study is tested on the same seeded episodes, so two
  cells whose configs agree on every episode-fixing field (:func:`workbench.config.episode_keys`)
  are compared *paired*: for each seed, the mean over the shared test episodes (matched by task id) of
  the per-episode differences; then a one-sample t-test of those per-seed differences across seeds,
  with the paired effect size d_z = mean / sd of the per-seed differences. In a single-seed study the
  per-episode differences of that seed are tested instead (:func:`workbench.analysis.stats.paired`); in a
  study with several seeds, a pair with fewer than two shared finished seeds is left untested (p nan).
  Cells tested on different episodes (e.g. different shots) are compared by Welch's t-test of their
  per-seed means and Cohen's d with the pooled sd. p-values are Holm-corrected over all comparisons;
- :func:`sensitivity`: the metric against one numeric axis, with a CI band over seeds;
- :func:`to_csv`, :func:`to_markdown`, :func:`to_latex`: the results table.

``record`` is a :class:`workbench.study.record.StudyRecord` (read by duck typing: ``runs``,
``session_path(run)``, ``axes``/``definition()``), so this module does not import the study package.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from workbench import format as F
from workbench.analysis.stats import mean_ci95, paired

ALPHA = 0.05


def higher_is_better(metric: str) -> bool:
    return metric not in ("mse", "loss", "mae")


@dataclass(frozen=True)
class RunResult:
    """One finished run's final test, as read from its session file."""

    run_id: str
    cell_id: str
    seed: int
    session: str
    mean: float
    ci95: float
    per_task: np.ndarray
    task_ids: list
    episode_key: tuple          # the values of the episode-fixing fields (equal: same test episodes)


@dataclass
class CellResult:
    cell_id: str
    label: str
    cell: dict
    seeds: list[int]                    # seeds with a finished run, in order
    finals: list[float]                 # their final test means
    mean: float                         # mean over seeds
    ci95: float                         # 95% CI over seeds (t distribution); nan with one seed
    sd: float                           # sd over seeds (ddof 1)
    episode_mean: float                 # mean over the pooled test episodes of all its runs
    episode_ci95: float                 # the usual per-episode CI of that mean
    n_episodes: int
    runs: list[str]                     # run ids with a finished run
    sessions: list[str]
    missing: list[str] = field(default_factory=list)     # run ids without a finished session
    rank: int = 0                       # 1 = best; 0 = no result
    best: bool = False


@dataclass(frozen=True)
class Comparison:
    """Cell ``a`` against cell ``b``: ``mean_diff`` = a - b (positive: a scored higher)."""

    a: str
    b: str
    paired: bool                # on the same test episodes
    level: str                  # "seeds" (per-seed differences), "episodes" (one seed), "unpaired seeds"
    n: int                      # seeds (or episodes, for level "episodes")
    mean_diff: float
    ci95: float                 # t-based, over the same units as n
    t: float
    p: float
    p_holm: float
    effect_size: float          # d_z (paired) or Cohen's d (unpaired)
    significant: bool           # p_holm < ALPHA


@dataclass
class StudyResults:
    name: str
    metric: str
    higher_is_better: bool
    axes: list[str]
    cells: list[CellResult]
    comparisons: list[Comparison]
    runs: list[RunResult]

    def cell(self, cell_id: str) -> CellResult:
        for c in self.cells:
            if c.cell_id == cell_id:
                return c
        raise KeyError(cell_id)

    @property
    def tested(self) -> int:
        """Comparisons with a p-value: the size of the Holm family."""
        return sum(math.isfinite(c.p) for c in self.comparisons)

    @property
    def best(self) -> CellResult | None:
        return next((c for c in self.cells if c.best), None)

    def ranked(self) -> list[CellResult]:
        return sorted(self.cells, key=lambda c: (c.rank == 0, c.rank, c.cell_id))

    def comparison(self, a: str, b: str) -> Comparison | None:
        """``a`` against ``b`` (sign flipped when stored the other way round)."""
        for c in self.comparisons:
            if (c.a, c.b) == (a, b):
                return c
            if (c.a, c.b) == (b, a):
                return Comparison(a, b, c.paired, c.level, c.n, -c.mean_diff, c.ci95, -c.t, c.p, c.p_holm,
                                  -c.effect_size, c.significant)
        return None

    def vs_best(self, cell_id: str) -> Comparison | None:
        b = self.best
        return None if b is None or b.cell_id == cell_id else self.comparison(cell_id, b.cell_id)


# --------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------
def t_ci95(values) -> tuple[float, float, float]:
    """(mean, half-width of the 95% CI with the t distribution, sd); CI and sd nan below two values."""
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    if len(v) == 1:
        return float(v[0]), math.nan, math.nan
    from scipy import stats
    sd = float(v.std(ddof=1))
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * sd / math.sqrt(len(v))), sd


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the i-th smallest p times (m - i),
    made monotone, capped at 1."""
    p = np.asarray(pvalues, np.float64)
    m = len(p)
    out = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _one_sample(d) -> tuple[float, float, float, float]:
    """(mean, t-CI, t, p) of differences ``d`` against 0."""
    from scipy import stats
    d = np.asarray(d, np.float64)
    mean, ci, sd = t_ci95(d)
    if len(d) < 2:
        return mean, math.nan, math.nan, math.nan
    if sd == 0:
        return mean, 0.0, (0.0 if mean == 0 else math.copysign(math.inf, mean)), (1.0 if mean == 0 else 0.0)
    r = stats.ttest_1samp(d, 0.0)
    return mean, ci, float(r.statistic), float(r.pvalue)


def _compare(a: list[RunResult], b: list[RunResult], single_seed: bool = False) -> dict | None:
    """The comparison of two cells' finished runs (None when either has none). Per-episode differences of
    one seed are tested only in a single-seed study (``single_seed``): in a study with several seeds, a
    pair left with one shared seed (the others failed or are missing) is reported untested rather than
    judged by a test that ignores seed-to-seed variation."""
    from scipy import stats
    if not a or not b:
        return None
    same_episodes = a[0].episode_key == b[0].episode_key
    by_seed_b = {r.seed: r for r in b}
    pairs = [(r, by_seed_b[r.seed]) for r in a if r.seed in by_seed_b]
    if same_episodes and pairs:
        diffs = []
        for ra, rb in pairs:
            ids, va, vb = _aligned(ra, rb)
            if len(ids):
                diffs.append(float(np.mean(va - vb)))
        if len(diffs) >= 2:
            mean, ci, t, p = _one_sample(diffs)
            sd = float(np.std(diffs, ddof=1))
            dz = mean / sd if sd > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
            return dict(paired=True, level="seeds", n=len(diffs), mean_diff=mean, ci95=ci, t=t, p=p, effect_size=dz)
        if len(diffs) == 1 and not single_seed:
            return dict(paired=True, level="seeds", n=1, mean_diff=diffs[0], ci95=math.nan, t=math.nan, p=math.nan,
                        effect_size=math.nan)
        if len(diffs) == 1:
            ids, va, vb = _aligned(*pairs[0])
            pc = paired(va, vb)
            d = va - vb
            sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
            from scipy import stats as st
            ci = float(st.t.ppf(0.975, len(d) - 1) * sd / math.sqrt(len(d))) if len(d) > 1 else math.nan
            dz = pc.mean_diff / sd if sd > 0 else (0.0 if pc.mean_diff == 0 else math.copysign(math.inf, pc.mean_diff))
            return dict(paired=True, level="episodes", n=pc.n, mean_diff=pc.mean_diff, ci95=ci, t=pc.t,
                        p=pc.p_value, effect_size=dz)
    fa, fb = np.array([r.mean for r in a]), np.array([r.mean for r in b])
    diff = float(fa.mean() - fb.mean())
    if len(fa) < 2 or len(fb) < 2:
        return dict(paired=False, level="unpaired seeds", n=min(len(fa), len(fb)), mean_diff=diff, ci95=math.nan,
                    t=math.nan, p=math.nan, effect_size=math.nan)
    va, vb = fa.var(ddof=1), fb.var(ddof=1)
    se = math.sqrt(va / len(fa) + vb / len(fb))
    if se == 0:
        t, p, ci = (0.0, 1.0, 0.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0, 0.0)
    else:
        r = stats.ttest_ind(fa, fb, equal_var=False)
        t, p = float(r.statistic), float(r.pvalue)
        dof = (va / len(fa) + vb / len(fb)) ** 2 / ((va / len(fa)) ** 2 / (len(fa) - 1) + (vb / len(fb)) ** 2 / (len(fb) - 1))
        ci = float(stats.t.ppf(0.975, dof) * se)
    pooled = math.sqrt(((len(fa) - 1) * va + (len(fb) - 1) * vb) / (len(fa) + len(fb) - 2))
    d = diff / pooled if pooled > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return dict(paired=False, level="unpaired seeds", n=min(len(fa), len(fb)), mean_diff=diff, ci95=ci, t=t, p=p,
                effect_size=d)


def _aligned(ra: RunResult, rb: RunResult):
    from workbench.analysis.stats import align
    return align(ra.task_ids, ra.per_task, rb.task_ids, rb.per_task)


# --------------------------------------------------------------------------
# reading the sessions
# --------------------------------------------------------------------------
def read_run(run_id: str, cell_id: str, seed: int, path) -> RunResult | None:
    """The final test of a finished session, or None (not finished, unreadable, no test)."""
    from workbench import config as C
    from workbench.store import SessionError, SessionReader
    try:
        with SessionReader(path) as r:
            if r.status != "finished":
                return None
            t = r.final_test()
            if t is None:
                return None
            cfg = r.config
            key = tuple(repr(cfg.get(k)) for k in C.episode_keys())
            return RunResult(run_id, cell_id, int(seed), str(path), float(t.mean), float(t.ci95),
                             np.asarray(t.per_task, np.float64), list(t.task_ids), key), t.metric
    except SessionError:
        return None


def aggregate(record) -> StudyResults:
    """Every figure of a study, from its record's session files."""
    from workbench.study.definition import cell_label
    runs: list[RunResult] = []
    metric = getattr(record, "metric", "") or ""
    by_cell: dict[str, list[RunResult]] = {}
    missing: dict[str, list[str]] = {}
    cells: dict[str, dict] = {}
    for e in record.runs:
        cells.setdefault(e.cell_id, e.cell)
        got = read_run(e.run_id, e.cell_id, e.seed, record.session_path(e))
        if got is None:
            missing.setdefault(e.cell_id, []).append(e.run_id)
            continue
        rr, metric = got
        runs.append(rr)
        by_cell.setdefault(e.cell_id, []).append(rr)
    metric = metric or "accuracy"
    up = higher_is_better(metric)
    out_cells = []
    for cid, cell in cells.items():
        rs = sorted(by_cell.get(cid, []), key=lambda r: r.seed)
        finals = [r.mean for r in rs]
        mean, ci, sd = t_ci95(finals)
        pooled = np.concatenate([r.per_task for r in rs]) if rs else np.zeros(0)
        em, eci = mean_ci95(pooled)
        out_cells.append(CellResult(cid, cell_label(cell), dict(cell), [r.seed for r in rs], finals, mean, ci, sd,
                                    em, eci, len(pooled), [r.run_id for r in rs], [r.session for r in rs],
                                    missing.get(cid, [])))
    scored = [c for c in out_cells if c.finals]
    scored.sort(key=lambda c: (-c.mean if up else c.mean, c.cell_id))
    for i, c in enumerate(scored):
        c.rank = i + 1
    if scored:
        scored[0].best = True
    raw = []
    single = len({e.seed for e in record.runs}) <= 1
    for ca, cb in itertools.combinations(out_cells, 2):
        res = _compare(by_cell.get(ca.cell_id, []), by_cell.get(cb.cell_id, []), single)
        if res is not None:
            raw.append((ca.cell_id, cb.cell_id, res))
    ps = [r["p"] for _, _, r in raw]
    finite = [i for i, p in enumerate(ps) if math.isfinite(p)]
    adj = dict(zip(finite, holm([ps[i] for i in finite]))) if finite else {}
    comps = []
    for i, (a, b, r) in enumerate(raw):
        ph = adj.get(i, math.nan)
        comps.append(Comparison(a, b, r["paired"], r["level"], r["n"], r["mean_diff"], r["ci95"], r["t"], r["p"], ph,
                                r["effect_size"], bool(math.isfinite(ph) and ph < ALPHA)))
    try:
        axes = record.definition().axes
    except Exception:  # a record whose definition no longer reads: the cells' keys
        axes = list(dict.fromkeys(k for c in cells.values() for k in c))
    return StudyResults(getattr(record, "name", ""), metric, up, axes, out_cells, comps, runs)


# --------------------------------------------------------------------------
# sensitivity
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class SensitivityCurve:
    """The metric against ``axis`` for one combination of the other axes (``group``, '' if none):
    x values, mean over seeds, CI over seeds (nan with one seed), seeds per point."""

    axis: str
    group: str
    x: np.ndarray
    mean: np.ndarray
    ci95: np.ndarray
    n: np.ndarray
    cell_ids: list


def sensitivity(results: StudyResults, axis_key: str) -> list[SensitivityCurve]:
    """One curve per combination of the other axes' values; raises ValueError if ``axis_key`` is not a
    numeric axis of the study."""
    cells = [c for c in results.cells if axis_key in c.cell]
    if not cells:
        raise ValueError(f"{axis_key!r} is not an axis of this study (axes: {', '.join(results.axes) or 'none'})")
    if not all(isinstance(c.cell[axis_key], (int, float)) and not isinstance(c.cell[axis_key], bool) for c in cells):
        raise ValueError(f"{axis_key!r} is not a numeric axis; a sensitivity curve needs numbers")
    from workbench.study.definition import cell_label
    groups: dict[str, list[CellResult]] = {}
    for c in cells:
        rest = {k: v for k, v in c.cell.items() if k != axis_key}
        groups.setdefault(cell_label(rest) if rest else "", []).append(c)
    out = []
    for g, cs in groups.items():
        cs = sorted(cs, key=lambda c: c.cell[axis_key])
        out.append(SensitivityCurve(axis_key, g, np.array([float(c.cell[axis_key]) for c in cs]),
                                    np.array([c.mean for c in cs]), np.array([c.ci95 for c in cs]),
                                    np.array([len(c.finals) for c in cs]), [c.cell_id for c in cs]))
    return out


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------
HEADER = ("rank", "cell", "seeds", "mean ± 95% CI over seeds", "per-episode 95% CI", "vs best", "p (Holm)")


def table_rows(results: StudyResults) -> list[tuple[str, ...]]:
    """The results table as text cells (every number through :mod:`workbench.format`), best first;
    the best cell's rank carries a ``*``, a significant difference from the best a ``†``."""
    m = results.metric
    rows = []
    for c in results.ranked():
        vs = results.vs_best(c.cell_id)
        rank = (f"{c.rank}*" if c.best else str(c.rank)) if c.rank else "–"
        seeds = f"{len(c.finals)}" + (f" ({len(c.missing)} missing)" if c.missing else "")
        if vs is None:
            diff, p = ("best" if c.best else "–"), "–"
        else:
            diff = F.metric_diff(m, vs.mean_diff)
            p = F.p_value(vs.p_holm) + (" †" if vs.significant else "")
        rows.append((rank, c.label, seeds, F.metric_ci(m, c.mean, c.ci95), F.metric_ci(m, c.episode_mean,
                                                                                      c.episode_ci95), diff, p))
    return rows


def footnote(results: StudyResults) -> str:
    direction = "higher" if results.higher_is_better else "lower"
    return (f"{results.metric}, {direction} is better. * best cell; † differs from the best at p < {ALPHA:g} after "
            f"Holm correction over {results.tested} comparisons (paired on the shared test episodes: "
            f"per-seed mean differences, t-test across seeds).")


def to_text(results: StudyResults) -> str:
    """The table for a terminal, columns aligned."""
    lines = [HEADER] + table_rows(results)
    widths = [max(len(r[i]) for r in lines) for i in range(len(HEADER))]
    body = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)
    return body + "\n" + footnote(results)


def to_markdown(results: StudyResults) -> str:
    def esc(s):
        return s.replace("|", "\\|")
    out = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in table_rows(results)]
    return "\n".join(out) + "\n\n" + footnote(results) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "†": r"$^\dagger$",
          "–": "--", "<": r"$<$", "*": r"$^*$"}


def _latex(s: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in s)


def to_latex(results: StudyResults) -> str:
    cols = "rl" + "r" * (len(HEADER) - 2)
    out = [r"\begin{tabular}{" + cols + "}", r"\hline", " & ".join(_latex(h) for h in HEADER) + r" \\", r"\hline"]
    out += [" & ".join(_latex(c) for c in r) + r" \\" for r in table_rows(results)]
    out += [r"\hline", r"\end{tabular}", "% " + footnote(results)]
    return "\n".join(out) + "\n"


def to_csv(results: StudyResults) -> str:
    """Machine-readable: one row per cell with raw numbers (fractions for accuracy), axes as columns."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "best", "cell_id", "cell"] + results.axes
               + ["seeds", "mean", "ci95_seeds", "sd_seeds", "episode_mean", "episode_ci95", "episodes",
                  "diff_vs_best", "p_vs_best", "p_holm_vs_best", "effect_size_vs_best", "metric"])
    for c in results.ranked():
        vs = results.vs_best(c.cell_id)
        w.writerow([c.rank or "", int(c.best), c.cell_id, c.label] + [c.cell.get(k, "") for k in results.axes]
                   + [len(c.finals), _num(c.mean), _num(c.ci95), _num(c.sd), _num(c.episode_mean),
                      _num(c.episode_ci95), c.n_episodes]
                   + ([_num(vs.mean_diff), _num(vs.p), _num(vs.p_holm), _num(vs.effect_size)] if vs else
                      ["", "", "", ""]) + [results.metric])
    return buf.getvalue()


def _num(x) -> str:
    return repr(float(x)) if x is not None and math.isfinite(x) else ""


def export_table(results: StudyResults, path) -> str:
    """Write the table as CSV, Markdown or LaTeX, or the ranking figure as SVG, chosen by the suffix (.csv, .md,
    .tex, .svg); returns the format."""
    from pathlib import Path
    p = Path(path)
    kinds = {".csv": to_csv, ".md": to_markdown, ".markdown": to_markdown, ".tex": to_latex, ".svg": to_svg}
    if p.suffix.lower() not in kinds:
        raise ValueError(f"table file {str(p)!r}: the name must end in .csv, .md or .tex (.svg: the figure)")
    p.write_text(kinds[p.suffix.lower()](results), encoding="utf-8")
    return p.suffix.lower().lstrip(".")


# --------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------
def to_svg(results: StudyResults, title: str | None = None) -> str:
    """The ranking as an SVG figure (no plotting library): one row per cell, best first; a bar to the
    mean over seeds, the 95% CI over seeds as a whisker, each seed's final metric as a dot; the best cell
    in another colour, cells that differ from it significantly (Holm) marked †."""
    from workbench.format import html_text as esc
    cells = [c for c in results.ranked() if c.finals]
    m = results.metric
    row_h, left, right, top = 22, 250, 150, 46
    width = 820
    plot_w = width - left - right
    height = top + row_h * max(1, len(cells)) + 44
    vals = [v for c in cells for v in c.finals] + [c.mean + (c.ci95 if math.isfinite(c.ci95) else 0) for c in cells]
    lows = [c.mean - (c.ci95 if math.isfinite(c.ci95) else 0) for c in cells]
    hi = max(vals, default=1.0)
    lo = min(min(lows, default=0.0), min((v for c in cells for v in c.finals), default=0.0))
    if m == "accuracy":
        lo, hi = max(0.0, math.floor(lo * 10) / 10), min(1.0, math.ceil(hi * 10) / 10)
    else:
        lo = 0.0
        hi = hi * 1.05 if hi > 0 else 1.0
    if hi <= lo:
        hi = lo + 1.0

    def x(v):
        return left + (v - lo) / (hi - lo) * plot_w
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">'
           f'{esc(title or results.name)}</text>',
           f'<text x="{width / 2}" y="36" text-anchor="middle" fill="#555">{esc(m)} '
           f'({"higher" if results.higher_is_better else "lower"} is better): mean over seeds, 95% CI over seeds '
           f'(t), dots = seeds</text>']
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / 4)) if span > 0 else 1.0
    for mult in (1, 2, 2.5, 5, 10):                 # 4 to 10 round ticks
        if span / (step * mult) <= 8:
            step *= mult
            break
    ticks = [lo + i * step for i in range(int(span / step + 1e-9) + 1)]
    for v in ticks:
        xx = x(v)
        out.append(f'<line x1="{xx:.1f}" y1="{top - 4}" x2="{xx:.1f}" y2="{top + row_h * len(cells)}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + row_h * len(cells) + 16}" text-anchor="middle" fill="#555">'
                   f'{esc(F.metric_value(m, v, 0 if m == "accuracy" else 2))}</text>')
    for i, c in enumerate(cells):
        y = top + i * row_h
        cy = y + row_h / 2
        vs = results.vs_best(c.cell_id)
        mark = " *" if c.best else (" †" if vs is not None and vs.significant else "")
        colour = "#d08c00" if c.best else "#4a78b5"
        out.append(f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end">{esc(c.label)}{esc(mark)}</text>')
        out.append(f'<rect x="{x(lo):.1f}" y="{y + 4}" width="{max(0.0, x(c.mean) - x(lo)):.1f}" '
                   f'height="{row_h - 8}" fill="{colour}" fill-opacity="0.35"/>')
        if math.isfinite(c.ci95):
            a, b = x(max(lo, c.mean - c.ci95)), x(min(hi, c.mean + c.ci95))
            out.append(f'<line x1="{a:.1f}" y1="{cy:.1f}" x2="{b:.1f}" y2="{cy:.1f}" stroke="{colour}" '
                       f'stroke-width="2"/>')
            for e in (a, b):
                out.append(f'<line x1="{e:.1f}" y1="{cy - 5:.1f}" x2="{e:.1f}" y2="{cy + 5:.1f}" '
                           f'stroke="{colour}" stroke-width="2"/>')
        for v in c.finals:
            out.append(f'<circle cx="{x(v):.1f}" cy="{cy:.1f}" r="3" fill="black" fill-opacity="0.7"/>')
        out.append(f'<text x="{width - right + 8}" y="{cy + 4:.1f}">{esc(F.metric_ci(m, c.mean, c.ci95))}</text>')
    out.append(f'<text x="{left}" y="{height - 8}" fill="#555">* best; † differs from the best, p &lt; {ALPHA:g} '
               f'(paired, Holm over {results.tested} comparisons)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


_COLOURS = ("#4a78b5", "#d08c00", "#3a9a5b", "#c0504d", "#8064a2", "#4bacc6", "#7f7f7f", "#9bbb59")


def sensitivity_svg(results: StudyResults, axis_key: str, title: str | None = None) -> str:
    """The sensitivity curves of :func:`sensitivity` as an SVG figure: mean over seeds against the axis
    (log scale when the values are positive and span a factor of 20 or more), the 95% CI over seeds as
    a band, one colour per combination of the other axes."""
    from workbench.format import html_text as esc
    curves = sensitivity(results, axis_key)
    m = results.metric
    width, height, left, right, top, bottom = 760, 420, 80, 200, 50, 50
    pw, ph = width - left - right, height - top - bottom
    xs = np.concatenate([c.x for c in curves])
    log_x = bool(np.all(xs > 0) and xs.max() / xs.min() >= 20)
    tx = np.log10 if log_x else (lambda v: np.asarray(v, float))
    x0, x1 = float(tx(xs.min())), float(tx(xs.max()))
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    los = np.concatenate([c.mean - np.nan_to_num(c.ci95) for c in curves])
    his = np.concatenate([c.mean + np.nan_to_num(c.ci95) for c in curves])
    y0, y1 = float(np.nanmin(los)), float(np.nanmax(his))
    pad = (y1 - y0) * 0.05 or abs(y1) * 0.05 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    if m != "accuracy":
        y0 = max(0.0, y0)

    def px(v):
        return left + (float(tx(v)) - x0) / (x1 - x0) * pw

    def py(v):
        return top + ph - (float(v) - y0) / (y1 - y0) * ph
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left + pw / 2}" y="20" text-anchor="middle" font-size="14">{esc(title or results.name)}</text>',
           f'<text x="{left + pw / 2}" y="36" text-anchor="middle" fill="#555">{esc(m)} against {esc(axis_key)}: '
           f'mean over seeds, band = 95% CI over seeds (t)</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for v in sorted(set(xs.tolist())):
        out.append(f'<line x1="{px(v):.1f}" y1="{top}" x2="{px(v):.1f}" y2="{top + ph}" stroke="#eee"/>')
        out.append(f'<text x="{px(v):.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#555">{v:g}</text>')
    for i in range(6):
        v = y0 + (y1 - y0) * i / 5
        out.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + pw}" y2="{py(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end" fill="#555">'
                   f'{esc(F.metric_value(m, v, 1))}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">{esc(axis_key)}'
               f'{" (log scale)" if log_x else ""}</text>')
    for k, c in enumerate(curves):
        col = _COLOURS[k % len(_COLOURS)]
        ok = np.isfinite(c.mean)
        xsk, mk, ck = c.x[ok], c.mean[ok], np.nan_to_num(c.ci95[ok])
        if len(xsk) == 0:
            continue
        if np.any(ck > 0):
            hi_b, lo_b = np.clip(mk + ck, y0, y1), np.clip(mk - ck, y0, y1)       # the band inside the frame
            upper = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xsk, hi_b))
            lower = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xsk[::-1], lo_b[::-1]))
            out.append(f'<polygon points="{upper} {lower}" fill="{col}" fill-opacity="0.18" stroke="none"/>')
        pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xsk, mk))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2"/>')
        for a, b in zip(xsk, mk):
            out.append(f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="3" fill="{col}"/>')
        ly = top + 14 + 18 * k
        out.append(f'<line x1="{left + pw + 12}" y1="{ly - 4}" x2="{left + pw + 32}" y2="{ly - 4}" stroke="{col}" '
                   f'stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 38}" y="{ly}">{esc(c.group or "all cells")}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
