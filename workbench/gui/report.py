"""One-page HTML reports of a session or of a comparison.

The page is self-contained: plots are PNGs embedded as base64 ``data:`` URIs,
numbers and tables are HTML, the session's full config is included as TOML.
Plots are drawn with the same panels the GUI shows, laid out at a figure size
for the file and given back their on-screen size and zoom afterwards; numbers
come from :mod:`workbench.analysis.compare` and :mod:`workbench.format`, never
from the text of a widget, and every value is HTML-escaped.

    write_session_report("run.h5", "run-report.html")
    CompareView(paths).write_report("compare.html")     # or compare.write_comparison_report(paths, out)
"""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path

import numpy as np
import pyqtgraph as pg

from workbench import __version__
from workbench import format as F
from workbench.analysis import compare as AC
from workbench.analysis.projection import project
from workbench.analysis.stats import mean_ci95
from workbench.gui.plot_export import FigureSize, PlotPanel, plot_png_bytes
from workbench.gui.plotstyle import FAMILY_COLORS, SESSION_COLORS, metric_scale, metric_title, style_plot

FIGURE = FigureSize(6.0, 3.7, 160)          # 960 x 592 px: sharp in a browser and when printed
SQUARE = FigureSize(4.5, 4.5, 160)

CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 24px auto; padding: 0 16px; font-size: 14px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 16px; margin: 18px 0 6px; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 4px 0 8px; } th, td { border: 1px solid #ddd; padding: 3px 8px;
        text-align: left; } th { background: #f4f4f4; }
.plots { display: flex; flex-wrap: wrap; gap: 10px; } figure { margin: 0; } figcaption { color: #555; font-size: 12px; }
img { max-width: 100%; border: 1px solid #eee; } .chip { display: inline-block; width: 10px; height: 10px;
      border-radius: 2px; margin-right: 4px; } pre { background: #f7f7f7; padding: 8px; font-size: 12px; }
.note { color: #a33; }
"""


def e(text) -> str:
    return F.html_text(text)


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def figure(png: bytes, caption: str) -> str:
    return f"<figure>{img_tag(png, caption)}<figcaption>{e(caption)}</figcaption></figure>"


def html_table(headers: list[str], rows: list[list], colors: dict[str, str] | None = None) -> str:
    """A plain HTML table; cells whose text is a key of ``colors`` get a colour chip."""
    colors = colors or {}

    def cell(tag, text):
        chip = f'<span class="chip" style="background:{colors[text]}"></span>' if text in colors else ""
        return f"<{tag}>{chip}{e(text)}</{tag}>"
    head = "".join(cell("th", h) for h in headers)
    body = "".join("<tr>" + "".join(cell("td", c) for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{e(title)}</h1><p class='sub'>{e(subtitle)}</p>"]
    for heading, body in sections:
        parts.append(f"<h2>{e(heading)}</h2>{body}")
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(f"<p class='sub'>Written by Meta-Learning Workbench {e(__version__)} on {stamp}.</p></body></html>")
    return "".join(parts)


def _write(out, text: str) -> Path:
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"report file {str(out)!r} should end in .html")
    out.write_text(text, encoding="utf-8")
    return out


def _render(panel: PlotPanel, size: FigureSize = FIGURE) -> bytes:
    """The panel's plot as PNG bytes at ``size``; the on-screen plot keeps its size and zoom."""
    return plot_png_bytes(panel.plot, size=size)


# --------------------------------------------------------------------------
# comparison report
# --------------------------------------------------------------------------
def paired_summary_html(metric: str, st, color_a: str = "", color_b: str = "") -> str:
    """The paired comparison in one paragraph of rich text, every value escaped (a p-value reads
    "< 1e-4", which unescaped would be swallowed as a tag)."""
    h = F.html_text
    lo_ci, hi_ci = st.mean_diff - st.ci95, st.mean_diff + st.ci95
    text = (f"<b>{st.n}</b> shared test tasks. Mean {h(metric)} A − B = <b>{h(F.metric_diff(metric, st.mean_diff))}</b>, "
            f"95% CI [{h(F.metric_diff(metric, lo_ci))}, {h(F.metric_diff(metric, hi_ci))}]; "
            f"paired t-test p = <b>{h(F.p_value(st.p_value))}</b>, Wilcoxon p = {h(F.p_value(st.p_wilcoxon))}. "
            f"{h(AC.verdict(metric, st).capitalize())}.")
    if color_a and color_b:
        text += (f" <span style='color:{color_a}'>●</span> A better, "
                 f"<span style='color:{color_b}'>●</span> B better.")
    return text


def view_report_html(view) -> str:
    """The HTML of a :class:`workbench.gui.compare.CompareView`, as it is drawn now."""
    view.finish_projections()
    cmp = view.comparison
    colors = {s.label: SESSION_COLORS[i % len(SESSION_COLORS)] for i, s in enumerate(cmp.sessions)}
    legend = " ".join(f'<span class="chip" style="background:{colors[s.label]}"></span>{e(s.label)}'
                      f' <small>({e(Path(s.path).name)})</small>&nbsp;&nbsp;' for s in cmp.sessions)
    sections = [("Sessions", f"<p>{legend}</p>")]
    for title, (headers, rows) in cmp.tables().items():
        body = html_table(headers, rows, colors) if rows else "<p>None: the configs are identical.</p>"
        sections.append((title, body))
    curves = "".join(figure(_render(p), p.plot_title()) for p in view.curves)
    sections.append(("Curves", f"<div class='plots'>{curves}</div>"))
    pr = view.paired.pairing
    if pr is not None and pr.ok:
        a, b = cmp.sessions[pr.a], cmp.sessions[pr.b]
        sections.append((f"Per-task results: {a.label} (A) against {b.label} (B)",
                         figure(_render(view.paired.panel, SQUARE),
                                f"{pr.stats.n} shared test tasks; dashed line: equal results")
                         + f"<p>{paired_summary_html(a.metric or 'result', pr.stats)}</p>"))
    elif pr is not None:
        sections.append(("Per-task results", f"<p class='note'>Not paired: {e(pr.reason)}</p>"))
    maps = "".join(figure(_render(p, SQUARE), f"{p.session.label}: {p.method.upper() or 'no'} map of task "
                          "embeddings, coloured by family") for p in view.embeddings if p.xy is not None)
    if maps:
        sections.append(("Task-embedding maps (final test)", f"<div class='plots'>{maps}</div>"))
    return page("Comparison of " + ", ".join(s.label for s in cmp.sessions),
                f"{len(cmp.sessions)} sessions", sections)


def write_view_report(view, out) -> Path:
    return _write(out, view_report_html(view))


# --------------------------------------------------------------------------
# single-session report
# --------------------------------------------------------------------------
def _curve_panel(title: str, session: AC.SessionData, names: list[str]) -> PlotPanel:
    panel = PlotPanel(title)
    style_plot(panel.plot, light=True)
    pi = panel.plot.getPlotItem()
    pi.addLegend(offset=(-10, 10), labelTextColor="#222222", brush=pg.mkBrush(255, 255, 255, 190))
    pi.setLabel("bottom", "meta-step")
    for k, name in enumerate(names):
        steps, _, values = session.curves[name]
        scale = metric_scale(name.partition("/")[2] or name)
        pi.plot(np.asarray(steps, float), np.asarray(values, float) * scale,
                name=metric_title(name) + (" (%)" if scale == 100 else ""),
                pen=pg.mkPen(SESSION_COLORS[k % len(SESSION_COLORS)], width=2),
                symbol="o" if len(steps) <= 40 else None, symbolSize=5,
                symbolBrush=SESSION_COLORS[k % len(SESSION_COLORS)], symbolPen=None)
    return panel


def _per_task_panel(session: AC.SessionData) -> PlotPanel:
    f = session.final
    panel = PlotPanel("Per-task results")
    style_plot(panel.plot, light=True)
    pi = panel.plot.getPlotItem()
    from workbench.gui.panels.per_task import metric_bins
    k = metric_scale(session.metric)
    raw = np.asarray(f.per_task, dtype=np.float64)
    v = raw * k
    counts, edges = np.histogram(v, bins=metric_bins(raw, k, max_bins=20))
    # a stepped, filled curve (pyqtgraph's histogram idiom; BarGraphItem crashes when rendered off-screen)
    pi.plot(edges, counts, stepMode="center", fillLevel=0, brush=pg.mkBrush(0, 114, 178, 160),
            pen=pg.mkPen(SESSION_COLORS[0], width=1))
    mean, ci = mean_ci95(v)
    lo = mean - ci if session.metric == "accuracy" else max(0.0, mean - ci)
    pi.addItem(pg.LinearRegionItem((lo, mean + ci), movable=False, brush=pg.mkBrush(230, 159, 0, 80)))
    pi.addItem(pg.InfiniteLine(mean, angle=90, pen=pg.mkPen("#D55E00", width=2)))
    pi.setLabel("bottom", f"{session.metric}{' (%)' if k == 100 else ''} per test task", units=None)
    pi.setLabel("left", "tasks", units=None)
    return panel


def _embedding_panel(session: AC.SessionData) -> PlotPanel | None:
    f = session.final
    if f is None:
        return None
    if getattr(f, "projection", None) is not None and len(f.projection):
        xy, method = np.asarray(f.projection), f.projection_method
    elif getattr(f, "embeddings", None) is not None and len(f.embeddings):
        xy, method = project(np.asarray(f.embeddings), "pca"), "pca"
    else:
        return None
    panel = PlotPanel(f"Task embeddings ({method.upper()})")
    style_plot(panel.plot, light=True)
    pi = panel.plot.getPlotItem()
    pi.hideAxis("left")
    pi.hideAxis("bottom")
    pi.addLegend(offset=(5, 5), labelTextColor="#222222", brush=pg.mkBrush(255, 255, 255, 190))
    fams = np.asarray(list(f.families)) if len(f.families) == len(xy) else np.asarray(["?"] * len(xy))
    for k, fam in enumerate(sorted(set(fams.tolist()))):
        m = fams == fam
        pi.addItem(pg.ScatterPlotItem(xy[m, 0], xy[m, 1], size=7, pen=None, name=str(fam),
                                      brush=pg.mkBrush(FAMILY_COLORS[k % len(FAMILY_COLORS)]
                                                       if k < 12 else "#aaaaaa")))
    return panel


def session_report_html(path) -> str:
    """The HTML report of one session: key numbers, curves, per-task results, embedding map, config."""
    from workbench.store import SessionReader
    s = AC.load_session(path)
    if not s.ok:
        raise ValueError(s.problem)
    with SessionReader(path) as r:
        env, created, ended, config_toml = r.environment, r.created, r.ended, r.config_toml
        failure = r.failure_message
    cfg, f = s.config, s.final
    facts = [["status", s.status], ["file", Path(s.path).name], ["dataset", cfg.data.dataset],
             ["learner", cfg.learner.name], ["task", f"{cfg.task.ways}-way {cfg.task.shots}-shot, "
                                                     f"{cfg.task.queries} queries per class"],
             ["backbone", cfg.model.backbone], ["meta-training steps", str(cfg.train.steps)],
             ["created", str(created)], ["ended", str(ended or "–")],
             ["device", str(env.get("device_name") or env.get("device", "–")) if isinstance(env, dict) else "–"]]
    if f is not None:
        facts.insert(0, [f"final test {f.metric}", f"{F.metric_ci(f.metric, f.mean, f.ci95)} "
                                                   f"(mean ± 95% CI over {len(f.per_task)} episodes, "
                                                   f"eval seed {cfg.eval.seed})"])
    if failure:
        facts.append(["failure", failure])
    sections = [("Summary", html_table(["", ""], facts))]
    names = list(s.curves)
    plots = []
    train = [n for n in names if n.startswith("train/")]
    val = [n for n in names if not n.startswith("train/")]
    for title, group in (("Meta-training curves", train), ("Validation curves", val)):
        if group:
            plots.append(figure(_render(_curve_panel(title, s, group)), title))
    if f is not None and len(f.per_task):
        plots.append(figure(_render(_per_task_panel(s)),
                            f"Per-task {f.metric} on the final test: histogram, mean (line) and 95% CI (band)"))
        emb = _embedding_panel(s)
        if emb is not None:
            plots.append(figure(_render(emb), "Task embeddings of the final test, coloured by family"))
    if plots:
        sections.append(("Plots", f"<div class='plots'>{''.join(plots)}</div>"))
    if f is not None and len(set(f.families)) > 1:
        fams = np.asarray(list(f.families))
        rows = []
        for fam in sorted(set(fams.tolist())):
            m, ci = mean_ci95(np.asarray(f.per_task)[fams == fam])
            rows.append([fam, str(int((fams == fam).sum())), F.metric_ci(f.metric, m, ci)])
        sections.append(("Per family", html_table(["family", "tasks", f.metric], rows)))
    sections.append(("Config", f"<pre>{e(config_toml)}</pre>"))
    sub = f"{cfg.learner.name} on {cfg.data.dataset}, {cfg.task.ways}-way {cfg.task.shots}-shot"
    return page(s.label, sub, sections)


def write_session_report(path, out) -> Path:
    return _write(out, session_report_html(path))


__all__ = ["write_session_report", "write_view_report", "session_report_html", "view_report_html", "html_table",
           "paired_summary_html"]
