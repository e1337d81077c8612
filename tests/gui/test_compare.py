"""The compare view on real sessions (digits ProtoNet vs digits MAML on the same seeded test
episodes, and a ProtoNet evaluated with another seed): config differences, the paired test
checked against scipy, the scatter, colours, embedding maps, exports and the report."""

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from session_factory import copy_sessions  # noqa: E402

from PySide6.QtGui import QImage  # noqa: E402

from workbench import format as F  # noqa: E402
from workbench import store  # noqa: E402
from workbench.analysis import compare as AC  # noqa: E402
from workbench.gui.compare import CompareView  # noqa: E402
from workbench.gui.plotstyle import session_color  # noqa: E402


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return [str(p) for p in copy_sessions(tmp_path_factory.mktemp("ws"))]   # ProtoNet, MAML, other seed


@pytest.fixture(scope="module")
def shared_view(qapp, paths):
    """One view for the tests that only read it (building one takes a moment)."""
    v = CompareView(paths)
    v.resize(1500, 950)
    v.show()
    qapp.processEvents()
    yield v
    v.close()
    v.deleteLater()


@pytest.fixture
def view(shared_view, qtbot):
    qtbot.waitExposed(shared_view)
    yield shared_view
    shared_view.paired.a_box.setCurrentIndex(0)          # undo a test's choice of the paired sessions
    shared_view.paired.b_box.setCurrentIndex(1)


def test_config_table_shows_only_the_fields_that_differ(view):
    t = view.config_table.table
    keys = [t.item(r, 1).text() for r in range(t.rowCount())]
    assert set(keys) == {"name", "learner.name", "learner.inner_lr", "eval.seed", "train.steps",
                         "train.eval_every"}
    row = keys.index("learner.name")
    assert t.item(row, 0).text() == "Meta-learner › Algorithm"          # named as the form names it
    assert [t.item(row, c).text() for c in (2, 3, 4)] == ["protonet", "maml", "protonet"]
    row = keys.index("eval.seed")
    assert [t.item(row, c).text() for c in (2, 3, 4)] == ["1234", "1234", "99"]
    assert [t.horizontalHeaderItem(c).text() for c in range(5)] == \
        ["field", "key", "ProtoNet digits", "MAML digits", "ProtoNet other seed"]


def test_paired_comparison_matches_scipy_and_scatter_has_n_points(view, paths):
    pr = view.paired.pairing
    assert (pr.a, pr.b) == (0, 1) and pr.ok
    with store.SessionReader(paths[0]) as ra, store.SessionReader(paths[1]) as rb:
        fa, fb = ra.final_test(), rb.final_test()
    assert list(fa.task_ids) == list(fb.task_ids)                 # the same seeded test episodes
    a, b = np.asarray(fa.per_task, float), np.asarray(fb.per_task, float)
    d = a - b
    assert pr.stats.n == 30
    assert pr.stats.mean_diff == pytest.approx(d.mean())
    assert pr.stats.ci95 == pytest.approx(1.96 * d.std(ddof=1) / math.sqrt(30))
    assert pr.stats.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert len(view.paired.scatter.points()) == 30
    xs = sorted(p.pos().x() for p in view.paired.scatter.points())
    np.testing.assert_allclose(xs, np.sort(100 * a), rtol=1e-6)         # accuracy in % on the axes
    text = plain(view.paired.stats_label.text())
    assert f"{100 * d.mean():+.2f} pts" in text and F.p_value(pr.stats.p_value) in text
    # the paired table has the same numbers; the pairs with the other eval seed say why not
    t = view.paired_table.table
    assert t.item(0, 5).text() == f"{100 * d.mean():+.2f} pts"
    assert "eval.seed is 1234" in t.item(1, 2).text() and "Not paired" in t.item(2, 2).text()


def plain(rich: str) -> str:
    """What a rich-text label shows."""
    from PySide6.QtGui import QTextDocument
    doc = QTextDocument()
    doc.setHtml(rich)
    return doc.toPlainText()


def test_tiny_p_values_are_shown_not_swallowed_as_markup(view, monkeypatch):
    """Defect 1: "< 1e-4" went unescaped into rich text and vanished ("p = , Wilcoxon p = ●")."""
    real = view.comparison.pairing

    def tiny(i, j):
        pr = real(i, j)
        return replace(pr, stats=replace(pr.stats, p_value=3e-7, p_wilcoxon=2e-5))
    monkeypatch.setattr(view.comparison, "pairing", tiny)
    view.paired.redraw()
    text = plain(view.paired.stats_label.text())
    assert "paired t-test p = < 1e-4, Wilcoxon p = < 1e-4." in text
    from workbench.gui import report
    html_page = report.view_report_html(view)
    assert "p = <b>&lt; 1e-4</b>" in html_page and "p = <b>< 1e-4" not in html_page


def test_report_leaves_the_on_screen_scatter_as_it_was(view, tmp_path, qapp):
    """Defect 5: writing the report resized the on-screen plots and left the scatter zoomed in."""
    qapp.processEvents()
    vb = view.paired.panel.plot.getPlotItem().getViewBox()
    before = (view.paired.panel.plot.size(), [list(r) for r in vb.viewRange()],
              [p.plot.size() for p in view.embeddings])
    view.write_report(tmp_path / "r.html")
    qapp.processEvents()
    after = (view.paired.panel.plot.size(), [list(r) for r in vb.viewRange()],
             [p.plot.size() for p in view.embeddings])
    assert after[0] == before[0] and after[2] == before[2]
    np.testing.assert_allclose(after[1], before[1], rtol=1e-6)


def test_unpaired_choice_says_why(view):
    view.paired.b_box.setCurrentIndex(2)
    assert not view.paired.pairing.ok
    assert "Not paired" in view.paired.stats_label.text()
    assert "eval.seed" in view.paired.stats_label.text()
    assert len(view.paired.scatter.points()) == 0


def test_each_session_keeps_its_colour_in_every_plot(view):
    for panel in view.curves:
        items = [it for it in panel.plot.getPlotItem().listDataItems() if it.name()]
        assert items, panel.metric
        labels = view.comparison.labels
        for it in items:
            i = labels.index(it.name())
            assert it.opts["pen"].color().name() == session_color(i).name()
    assert view.curves[0].metric == "train/loss" and view.curves[1].metric == "val/accuracy"
    # the legend strip and tables name the sessions in the same order
    assert [lab.text() for lab in view.legend.labels] == [f"<b>{x}</b>" for x in view.comparison.labels]


def test_embedding_maps_use_stored_projection_or_pca_off_thread(view, qtbot, paths, monkeypatch):
    for p in view.embeddings:                     # the writer stored a t-SNE map of each final test
        assert p.method == "tsne" and p.xy.shape == (30, 2)
    # a session without a stored projection: PCA on the thread pool, then drawn
    real = AC.load_session

    def without_projection(path, label=""):
        s = real(path, label)
        return replace(s, final=replace(s.final, projection=None, projection_method="none"))
    monkeypatch.setattr(AC, "load_session", without_projection)
    v = CompareView(paths[:2])
    qtbot.addWidget(v)
    assert v.projections_pending() or all(p.method == "pca" for p in v.embeddings)
    qtbot.waitUntil(lambda: not v.projections_pending(), timeout=10000)
    assert [p.method for p in v.embeddings] == ["pca", "pca"]
    assert v.embeddings[0].xy.shape == (30, 2)


def test_export_plot_png_svg_csv(view, tmp_path):
    panel = view.curves[0]
    png = panel.export(tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = QImage(str(png))
    assert img.width() > 100 and img.height() > 100
    colors = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colors) > 5                                       # not a blank image
    svg = view.paired.panel.export(tmp_path / "scatter.svg").read_text()
    assert "<svg" in svg and svg.count("<path") >= 30             # every task's point is a vector shape
    rows = (tmp_path / "scatter.csv")
    view.paired.panel.export(rows)
    lines = rows.read_text().strip().splitlines()
    assert lines[0] == "task_id,a,b,a_minus_b" and len(lines) == 31
    with pytest.raises(ValueError, match=".png or .svg"):
        panel.export(tmp_path / "curves.jpg")


def test_comparison_report_holds_plots_and_numbers(view, tmp_path, paths):
    out = view.write_report(tmp_path / "compare.html")
    text = out.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") >= 4             # two curves, scatter, maps
    for p in paths:
        s = store.read_summary(p)
        assert f"{100 * s.mean:.2f}% ± {100 * s.ci95:.2f}%" in text
    st = view.paired.pairing.stats
    assert f"{100 * st.mean_diff:+.2f} pts" in text and F.html_text(F.p_value(st.p_value)) in text
    assert "learner.inner_lr" in text and "eval.seed is 1234" in text
