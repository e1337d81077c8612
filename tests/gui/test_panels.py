"""The live panels on their own, fed with engine-shaped events: data in, plots and exports out."""

import struct

import numpy as np
import pytest

from workbench.store.fake import fake_evaluation
from workbench.gui.panels import CurvesPanel, EmbeddingMapPanel, LogPanel, PerTaskPanel


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
        p.add_point("train/loss", s, s * 0.01, float(np.exp(-s / 5000) + 0.1 * rng.random()))
    p.add_metrics(n, n * 0.01, {"val/accuracy": 0.8, "val/loss": 0.5})
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
    assert (tmp_path / "c.csv").exists() is False
    p.export(tmp_path / "c.csv")
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "curve,step,wall_time_s,value"


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
