"""The live panels on their own, fed with engine events through a session model (the way the window
feeds them): data in, plots and exports out."""

import dataclasses
import struct

import numpy as np
import pytest

from workbench.store.fake import fake_evaluation
import pyqtgraph as pg

from workbench.gui.panels import CurvesPanel, EmbeddingMapPanel, LogPanel, PerTaskPanel
from workbench.train import events as E


def metrics(p, step, wall, values):
    """One StepMetrics event into the model ``p`` (a CurvesPanel) observes."""
    p.model.apply(E.StepMetrics(step, wall, values))


def validation(p, step, wall, mean, ci95, loss, metric="accuracy"):
    """One validation Evaluation event (one-task arrays: only its mean, CI and loss matter here)."""
    p.model.apply(E.Evaluation(step=step, wall_time=wall, phase="val", metric=metric, mean=mean, ci95=ci95,
                               loss_mean=loss, per_task=np.array([mean]), per_task_loss=np.array([loss]),
                               task_ids=("t0",), families=("f",)))


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def evaluation():
    return fake_evaluation(np.random.default_rng(0), step=50, phase="val", metric="accuracy", n=40, dim=8, wall=1.0)


def test_curves_smooth_downsample_and_export(app, qtbot, tmp_path):
    p = CurvesPanel()
    qtbot.addWidget(p)
    p.resize(700, 500)
    p.show()
    rng = np.random.default_rng(0)
    n = 20_000
    for s in range(1, n + 1):
        metrics(p, s, s * 0.01, {"train/loss": float(np.exp(-s / 5000) + 0.1 * rng.random())})
    validation(p, n, n * 0.01, 0.8, 0.05, 0.5)
    p.redraw()
    shown = p.displayed_points("train/loss")
    assert 0 < shown <= 2000                         # downsampled for display ...
    header, rows = p.csv_table()
    assert sum(r[0] == "train/loss" for r in rows) == n  # ... never in the data
    smooth = p.items[("loss", "train/loss")].yData
    raw = p.items[("loss", "train/loss#raw")].yData
    assert np.std(np.diff(smooth)) < np.std(np.diff(raw))        # EMA 0.9 really smooths
    assert p.smoothing.value() == 0.9 and any("EMA 0.9" in t for t in p.legend_texts())
    p.xaxis.setCurrentText("Wall time")
    assert p.items[("loss", "train/loss")].xData.max() == pytest.approx(n * 0.01, rel=1e-3)
    out = p.export(tmp_path / "curves.png")
    w, h = png_size(out)
    assert w >= 1200 and h > 300 and out.stat().st_size > 10_000
    svg = p.export(tmp_path / "curves.svg").read_text()
    assert "<svg" in svg and "Loss" in svg
    lines = p.export(tmp_path / "c.csv").read_text().splitlines()
    assert lines[0] == "curve,step,wall_time_s,value"
    assert sum(line.startswith("train/loss,") for line in lines) == n          # every raw point, not the display
    assert lines[1].split(",")[:2] == ["train/loss", "1"]


def test_embedding_map_projects_off_the_ui_thread_and_hovers(app, qtbot, tmp_path, evaluation):
    p = EmbeddingMapPanel()
    qtbot.addWidget(p)
    p.resize(600, 450)
    p.show()
    with qtbot.waitSignal(p.projected, timeout=30_000):
        p.set_evaluation(evaluation)
        assert p.point_count() == 0 and "computing" in p.status.text()   # not computed on this thread
    assert p.point_count() == 40
    assert len(p.scatters) == 3                                          # one per family, with a legend
    assert {s.name() for s in p.scatters} == {"sine", "line", "quadratic"}
    i = 7
    text = p.point_text(i)
    assert evaluation.task_ids[i] in text and evaluation.families[i] in text and "%" in text
    spot = p.scatters[0].points()[0]
    assert p._tip(0, 0, spot.data()) == p.point_text(int(spot.data()))
    with qtbot.waitSignal(p.projected, timeout=30_000):
        p.method.setCurrentText("PCA")
    assert "PCA" in p.status.text()
    p.color_by.setCurrentText("Metric")
    assert p.colorbar is not None and len(p.scatters) == 1
    w, h = png_size(p.export(tmp_path / "map.png"))
    assert w >= 1200 and h > 200
    rows = p.csv_table()[1]
    assert len(rows) == 40 and rows[i][0] == evaluation.task_ids[i]


def test_per_task_histogram_families_sorting_and_ci(app, qtbot, tmp_path, evaluation):
    p = PerTaskPanel()
    qtbot.addWidget(p)
    p.resize(700, 400)
    p.show()
    p.set_evaluation(evaluation)
    assert p.bar_count() == 3
    means = {r[0]: r[1] for r in p.family_rows}
    fams = np.asarray(evaluation.families)
    assert means["line"] == pytest.approx(100 * evaluation.per_task[fams == "line"].mean())
    p.sort.setCurrentText("Mean, high first")
    ordered = [r[1] for r in p.family_rows]
    assert ordered == sorted(ordered, reverse=True)
    p.sort.setCurrentText("Mean, low first")
    assert [r[1] for r in p.family_rows] == sorted(ordered)
    # a family keeps its colour (the map's) whatever the order of the bars
    from workbench.gui.plotstyle import family_colors
    colors = family_colors(evaluation.families)
    shown = [b.color().name() for b in p.bars.opts["brushes"]]
    assert shown == [colors[r[0]] for r in p.family_rows] and len(set(shown)) == 3
    assert int(p.hist_bars.opts["height"].sum()) == 40
    assert "±" in p.summary.text() and "95% CI" in p.summary.text() and "40 tasks" in p.summary.text()
    w, h = png_size(p.export(tmp_path / "per_task.png"))
    assert w >= 1200 and h > 200


def test_log_panel_levels_and_export(app, qtbot, tmp_path):
    p = LogPanel()
    qtbot.addWidget(p)
    p.add("info", "hello")
    p.add("error", "the run failed: something")
    assert p.line_count() == 2
    p.level.setCurrentText("Warnings and errors")
    assert "hello" not in p.text.toPlainText() and "something" in p.text.toPlainText()
    p.show()
    w, h = png_size(p.export(tmp_path / "log.png"))
    assert w > 50 and h > 50
    assert "the run failed" in (p.export(tmp_path / "log.csv")).read_text()


def test_export_refuses_bad_targets(app, qtbot, tmp_path):
    from workbench.gui.panels.base import ExportError
    p = CurvesPanel()
    qtbot.addWidget(p)
    with pytest.raises(ExportError, match="use a .png, .svg or .csv"):
        p.export(tmp_path / "x.jpg")
    with pytest.raises(ExportError, match="does not exist"):
        p.export(tmp_path / "missing" / "x.png")


def test_window_settings_and_recent_sessions_persist(window, settings, qtbot):
    from workbench.gui.main_window import MainWindow
    window.log_dock.hide()                 # the dock layout is kept
    window._add_recent("/tmp/a.h5")
    window._add_recent("/tmp/b.h5")
    window._save_settings()
    again = MainWindow(settings=settings)
    qtbot.addWidget(again)
    assert again.recent_sessions()[:2] == ["/tmp/b.h5", "/tmp/a.h5"]
    again.show()
    assert not again.log_dock.isVisible() and again.embedding_dock.isVisible()


# -- issue 12: the defects a new user hit, each driven through the real panels ------------------------
def _feed_curves(p, n=120, scale=1.0):
    for s in range(1, n + 1):
        metrics(p, s, s * 0.1, {"train/loss": scale * float(np.exp(-s / 40) + 0.05),
                                   "train/accuracy": 0.5 + 0.3 * s / n})
    validation(p, n // 2, 5.0, 0.7, 0.05, 0.6 * scale)
    validation(p, n, 10.0, 0.8, 0.04, 0.4 * scale)
    p.redraw()


def test_curves_have_no_si_prefix_show_accuracy_in_percent_and_a_ci_band(app, qtbot):
    """Defects 4 and 12: "Loss (x0.001)" with ticks 50-350; accuracy as a fraction; no CI band."""
    p = CurvesPanel()
    qtbot.addWidget(p)
    p.resize(700, 500)
    p.show()
    _feed_curves(p, scale=1e-3)                 # a loss in the thousandths is where the prefix kicked in
    qtbot.wait(50)
    for plot in p.plots.values():
        for name in ("left", "bottom"):
            ax = plot.getAxis(name)
            assert not ax.autoSIPrefix and ax.autoSIPrefixScale == 1.0
            assert "x0.001" not in ax.labelString() and "(x" not in ax.labelString()
    assert "Accuracy (%)" in p.plots["accuracy"].getAxis("left").labelString()
    assert p.items[("accuracy", "train/accuracy")].yData.max() > 50                 # percent, not 0.8
    band = p.items[("accuracy", "val/accuracy#ci")]
    lo, hi = band.curves[0].yData, band.curves[1].yData
    np.testing.assert_allclose(lo, [65.0, 76.0])
    np.testing.assert_allclose(hi, [75.0, 84.0])
    assert any("95% CI" in t for t in p.legend_texts())


def test_regression_shows_the_loss_once(app, qtbot):
    """Defect 14: regression runs showed the same curve as Loss and as MSE."""
    p = CurvesPanel()
    qtbot.addWidget(p)
    p.model.start_run("regression", 30)
    p.model.apply(E.RunStarted(config_toml="", total_steps=30, start_step=0, device="cpu", environment={},
                               split={}, metric="mse", wall_time=0.0))
    for s in range(1, 30):
        metrics(p, s, s, {"train/loss": 1.0 / s, "train/mse": 1.0 / s})
    validation(p, 10, 10, 0.02, 0.05, 0.02, metric="mse")          # a CI wider than the mean ...
    p.redraw()
    assert list(p.plots) == ["loss"] and "MSE" in p.plots["loss"].getAxis("left").labelString()
    assert p.displayed_points("train/loss") > 0 and p.displayed_points("train/mse") == 0
    assert sum(r[0] == "train/mse" for r in p.csv_table()[1]) == 29        # the data keep both


def test_curves_view_controls_are_visible(app, qtbot):
    """Defect 19: zoom, pan, log axes and a free smoothing value were hidden in a right-click menu."""
    p = CurvesPanel()
    qtbot.addWidget(p)
    p.show()
    _feed_curves(p)
    assert p.tools.fit.isVisibleTo(p) and p.tools.zoom.isVisibleTo(p) and p.tools.log_y.isVisibleTo(p)
    p.tools.log_y.setChecked(True)
    assert p.plots["loss"].ctrl.logYCheck.isChecked() and not p.plots["accuracy"].ctrl.logYCheck.isChecked()
    p.tools.zoom.setChecked(True)
    assert all(pl.getViewBox().state["mouseMode"] == pg.ViewBox.RectMode for pl in p.plots.values())
    p.smoothing.setValue(0.37)                                  # any weight, not a fixed list
    assert p.smoothing_weight() == pytest.approx(0.37)
    assert any("EMA 0.37" in t for t in p.legend_texts())
    p.smoothing.setValue(0)
    assert p.smoothing_weight() is None


def _raster(png_bytes_or_path, size):
    from PIL import Image
    import io
    src = io.BytesIO(png_bytes_or_path) if isinstance(png_bytes_or_path, bytes) else png_bytes_or_path
    return np.asarray(Image.open(src).convert("L").resize(size), np.float64)


def test_svg_export_rasterises_like_the_png(app, qtbot, tmp_path, evaluation):
    """Defect 6: SVGs rendered as solid colour blocks in rsvg/ImageMagick (non-scaling strokes under a
    data transform). Rasterised by cairo (cairosvg, the library behind rsvg-convert's renderer) they
    must look like the PNG export."""
    cairosvg = pytest.importorskip("cairosvg", reason="cairosvg (test extra) rasterises the SVG")
    from workbench.gui.plot_export import FigureSize
    size = FigureSize(4.0, 3.0, 100)
    curves = CurvesPanel()
    per_task = PerTaskPanel()
    for p in (curves, per_task):
        qtbot.addWidget(p)
        p.resize(500, 400)
        p.show()
    _feed_curves(curves)
    per_task.set_evaluation(evaluation)
    for p in (curves, per_task):
        png = p.export(tmp_path / f"{p.export_name}.png", size=size)
        svg = p.export(tmp_path / f"{p.export_name}.svg", size=size)
        assert "vector-effect" not in svg.read_text()
        a = _raster(png, (200, 150))
        b = _raster(cairosvg.svg2png(url=str(svg), output_width=400, output_height=300), (200, 150))
        ink_a, ink_b = (a < 160).mean(), (b < 160).mean()
        assert ink_b < 2 * ink_a + 0.01, (p.title, ink_a, ink_b)   # no blocks of colour
        assert np.abs(a - b).mean() < 12, p.title                  # the same figure


def test_exports_take_size_and_dpi_and_carry_title_and_legend(app, qtbot, tmp_path, evaluation):
    """Defect 17: exports without legend, title or run name, at whatever size the dock had."""
    from workbench.gui.plot_export import FigureSize
    p = CurvesPanel()
    qtbot.addWidget(p)
    p.resize(300, 600)                                       # a tall, narrow dock ...
    p.show()
    _feed_curves(p)
    p.set_run_name("Digits MAML 5-way 1-shot")
    assert png_size(p.export(tmp_path / "c.png")) == (1950, 1200)             # publication default
    assert png_size(p.export(tmp_path / "c2.png", size=FigureSize(3.5, 2.5, 200))) == (700, 500)
    svg = p.export(tmp_path / "c.svg").read_text()
    assert "Digits MAML 5-way 1-shot" in svg and "meta-train" in svg and "validation" in svg
    assert p.view.width() < 320                              # ... keeps its on-screen size
    m = EmbeddingMapPanel()
    qtbot.addWidget(m)
    m.show()
    with qtbot.waitSignal(m.projected, timeout=30_000):
        m.set_evaluation(evaluation)
    m.show_affinity.setChecked(True)
    assert m.affinity_bar is not None and m.affinity_plot is not None   # the heat map has a colour bar


def test_per_task_bins_follow_the_metrics_resolution(app, qtbot):
    """Defect 20: accuracy moves in steps of 1/(ways x queries); bins that do not match left combs."""
    from workbench.gui.panels.per_task import metric_bins, value_resolution
    from workbench.store.fake import fake_evaluation
    levels = np.arange(40, 71) / 75.0                        # 5-way 15-query: steps of 1/75
    v = np.repeat(levels, 2)
    assert value_resolution(v) == 75
    counts, _ = np.histogram(v * 100, bins=metric_bins(v, 100.0))
    assert counts.min() > 0 and len(set(counts.tolist())) <= 2 and counts.sum() == len(v)
    ev = fake_evaluation(np.random.default_rng(1), step=5, phase="test", metric="accuracy", n=len(v), dim=4,
                         wall=1.0)
    ev = dataclasses.replace(ev, per_task=v)
    p = PerTaskPanel()
    qtbot.addWidget(p)
    p.set_evaluation(ev)
    heights = p.hist_bars.opts["height"]
    assert heights.min() > 0                                  # no comb of empty bins


def test_mse_ci_never_below_zero_and_family_labels_never_overlap(app, qtbot):
    """Defect 13: an MSE CI drawn below zero; family bar labels overlapping on many families."""
    from PySide6.QtGui import QFontMetrics
    from workbench.store.fake import fake_evaluation
    rng = np.random.default_rng(2)
    ev = fake_evaluation(rng, step=5, phase="test", metric="mse", n=60, dim=4, wall=1.0)
    fams = [f"a-very-long-family-name-{i % 20:02d}" for i in range(60)]
    per_task = np.where(np.arange(60) % 3 == 0, 0.5, 0.001)           # small means, wide spread
    ev = dataclasses.replace(ev, per_task=per_task, families=tuple(fams))
    p = PerTaskPanel()
    qtbot.addWidget(p)
    p.resize(520, 320)
    p.show()
    p.set_evaluation(ev)
    qtbot.wait(50)
    p._family_ticks()
    assert p.error_bottom.min() >= 0
    axis = p.fam.getAxis("left")                                       # names beside horizontal bars
    fm = QFontMetrics(axis.style.get("tickFont") or p.font())
    room = p.fam.getViewBox().height()
    assert 0 < len(p.tick_names) < 20 and len(p.tick_names) * fm.height() <= room      # rows of text fit
    assert all(len(n) <= 14 for n in p.tick_names) and p.tick_names[0].endswith("…")
    assert "a-very-long-family-name-07" in axis.toolTip()             # every name, in full, on hover
    p.resize(520, 900)                                                 # a taller dock: every name
    qtbot.waitUntil(lambda: p.tick_step == 1, timeout=5000)
    assert len(p.tick_names) == 20


def test_missing_umap_is_said_in_full_with_the_install_command(app, qtbot, monkeypatch, evaluation):
    """Defect 10: choosing UMAP without its package silently kept t-SNE; the reason was cut off."""
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))
    p = EmbeddingMapPanel()
    qtbot.addWidget(p)
    p.resize(420, 400)
    p.show()
    with qtbot.waitSignal(p.projected, timeout=30_000):
        p.set_evaluation(evaluation)
    p.method.setCurrentIndex(2)
    text = p.status.text()
    assert "UMAP" in text and "pip install" in text and "still shows t-SNE" in text
    assert p.status.wordWrap() and p.status.sizeHint().width() <= p.width() + 1   # whole, never cut
    assert p.point_count() == 40


def test_dark_palette_gives_axis_titles_and_legends_full_contrast(app, qtbot):
    """Defect 18: legend and axis-title contrast was poor on the dark palette."""
    from PySide6.QtGui import QColor, QPalette
    from workbench.gui import style
    p = CurvesPanel()
    qtbot.addWidget(p)
    _feed_curves(p)
    try:
        style.apply_style(app, "dark")
        p.apply_palette()
        text = app.palette().color(QPalette.ColorRole.Text)
        ax = p.plots["loss"].getAxis("left")
        assert QColor(ax.labelStyle["color"]) == text and ax.textPen().color() == text
        for _, label in p.legend.items:
            assert QColor(label.opts["color"]) == text
        bg = app.palette().color(QPalette.ColorRole.Base)
        assert abs(text.lightness() - bg.lightness()) > 150
    finally:
        style.apply_style(app, "light")


def test_clip_polyline_keeps_what_is_inside_and_cuts_at_the_edges():
    from workbench.gui.plot_export import clip_polyline
    x, y = np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([0.0, 1.0, 3.0, 1.0, 0.5])
    cx, cy = clip_polyline(x, y, (0.5, 3.5, 0.0, 2.0))
    pieces = np.split(np.c_[cx, cy], np.flatnonzero(np.isnan(cx)))
    pieces = [p_[~np.isnan(p_[:, 0])] for p_ in pieces]
    # 0.5..1 inside, 1..2 leaves at y = 2 (x = 1.5), 2..3 comes back at x = 2.5, then to x = 3.5 (y = 0.75)
    np.testing.assert_allclose(pieces[0], [[0.5, 0.5], [1.0, 1.0], [1.5, 2.0]])
    np.testing.assert_allclose(pieces[1], [[2.5, 2.0], [3.0, 1.0], [3.5, 0.75]])
    assert len(pieces) == 2
    inside_x, inside_y = clip_polyline(x, y / 10, (-1, 5, -1, 1))           # all inside: unchanged
    np.testing.assert_array_equal(inside_x, x) and np.testing.assert_array_equal(inside_y, y / 10)
    gap_x, _ = clip_polyline([0, 1, np.nan, 3, 4], [0, 0, 0, 0, 0], (-1, 5, -1, 1))
    assert np.isnan(gap_x).sum() == 1 and len(gap_x) == 5                  # a gap stays a gap


def test_a_zoomed_plot_exports_only_what_its_view_shows(app, qtbot, tmp_path):
    """Zoomed in, the exported curves ran over the axes, the legend and the title (Qt's SVG painter
    writes no clip paths); during an export every line and band lies inside its view's range, and
    the screen gets its data back after."""
    from workbench.gui.plot_export import _LaidOut
    p = CurvesPanel()
    qtbot.addWidget(p)
    p.resize(700, 500)
    p.show()
    _feed_curves(p)
    loss = p.plots["loss"]
    loss.setXRange(30, 90, padding=0)
    loss.setYRange(0.1, 0.3, padding=0)
    qtbot.wait(50)
    curves = [it for it in loss.getViewBox().addedItems for it in [it, *it.childItems()]
              if isinstance(it, pg.PlotCurveItem) and it.xData is not None and len(it.xData)]
    before = [(c.xData.copy(), c.yData.copy()) for c in curves]
    assert any(b[1].max() > 0.3 for b in before)                      # the zoom does cut the curves
    with _LaidOut(p.view, None, "title"):
        for c in curves:
            x, y = c.xData[np.isfinite(c.xData)], c.yData[np.isfinite(c.yData)]
            if not len(x):                                             # wholly outside: nothing drawn
                continue
            assert x.min() >= 30 - 1e-9 and x.max() <= 90 + 1e-9, c
            assert y.min() >= 0.1 - 1e-9 and y.max() <= 0.3 + 1e-9, c
    for c, (x, y) in zip(curves, before):
        np.testing.assert_array_equal(c.xData, x)
        np.testing.assert_array_equal(c.yData, y)
    assert p.export(tmp_path / "zoomed.svg").stat().st_size > 1000


def test_the_map_legend_sits_beside_the_map_in_a_wide_short_panel(app, qtbot, evaluation):
    """At 1280x720 the embedding dock is wide and short: a legend under the map left it a strip."""
    p = EmbeddingMapPanel()
    qtbot.addWidget(p)
    p.resize(420, 330)
    p.show()
    with qtbot.waitSignal(p.projected, timeout=30_000):
        p.set_evaluation(evaluation)
    qtbot.waitUntil(lambda: p._legend_at == (0, 4), timeout=5000)        # beside, one column
    assert p.legend.columnCount == 1
    plot_h = p.plot.getViewBox().height()
    assert plot_h > 100
    p.color_by.setCurrentText("Metric")                                 # a colour bar takes the side
    assert p._legend_at == (1, 0) and p.colorbar is not None
    p.color_by.setCurrentText("Family")
    qtbot.waitUntil(lambda: p._legend_at == (0, 4), timeout=5000)
    p.resize(420, 700)                                                  # tall: under the map again
    qtbot.waitUntil(lambda: p._legend_at == (1, 0), timeout=5000)
