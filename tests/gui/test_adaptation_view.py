"""The Adaptation dock: open a finished session, pick a task, the steps are drawn (offscreen). The
window trains nothing here, so it starts no engine process (``idle_window``)."""

import numpy as np
import pytest

from workbench import config as C
from workbench import store
from workbench.train.engine import run


def _record(cfg, path):
    for _ in store.record(run(cfg), path, cfg):
        pass
    return path


# the two sessions are recorded once per module and only read by the tests (each test that writes a
# session of its own writes it beside them under its own name)
@pytest.fixture(scope="module")
def sessions_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("adaptation-sessions")
    with pytest.MonkeyPatch.context() as mp:       # nothing may reach the user's workspace
        mp.setenv("WORKBENCH_WORKSPACE", str(d / "workspace"))
        yield d


@pytest.fixture(scope="module")
def sinusoid_session(sessions_dir):
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{
        "name": "tiny sinusoid", "train.steps": 10, "train.eval_every": 0, "eval.episodes": 6,
        "learner.meta_batch": 2, "model.hidden": [8, 8], "learner.test_inner_steps": 3, "train.threads": 1})
    return _record(cfg, sessions_dir / "sin.h5")


@pytest.fixture(scope="module")
def omniglot_session(sessions_dir):
    cfg = C.replace(C.default_config(), **{"name": "tiny omniglot", "train.steps": 4, "train.eval_every": 0,
                                           "eval.episodes": 6, "model.filters": 4, "train.threads": 1})
    return _record(cfg, sessions_dir / "om.h5")


def _open_and_pick(window, qtbot, path, index=0):
    panel = window.adaptation
    assert window.open_session(path)
    qtbot.waitUntil(lambda: panel.task_box.count() > 0, timeout=5000)     # follows the opened session
    panel.task_box.setCurrentIndex(index)
    with qtbot.waitSignal(panel.computed, timeout=60_000):
        panel.show_button.click()
    return panel


def test_regression_shows_every_inner_step_against_the_true_function(idle_window, qtbot, sinusoid_session):
    window = idle_window
    assert window.views.tabText(window.views.indexOf(window.adaptation)) == "Adaptation"
    panel = _open_and_pick(window, qtbot, sinusoid_session, index=2)
    res = panel.result
    assert res.task_id == panel.task_box.currentData() == "test-1234-00002"
    assert list(res.steps) == [0, 1, 2, 3] and panel.shown_step.count() == 4
    assert res.final_metric == pytest.approx(res.stored_metric, rel=1e-5)
    assert panel.plot_count() == 2                     # curves + MSE per step
    curves = panel._plots[0].listDataItems()
    names = [c.name() for c in curves]
    assert "true function" in names and "step 0 (unadapted)" in names and "after 3 steps" in names
    assert sum(len(c.xData) == len(res.grid_x) for c in curves) == 1 + len(res.steps)   # truth + each step
    assert "Inner steps of learning rate" in panel.caption.text() and "recorded" in panel.caption.text()
    panel.shown_step.setCurrentIndex(1)                # another step: redrawn, nothing recomputed
    assert "after 1 step" in [c.name() for c in panel._plots[0].listDataItems()]
    header, rows = panel.csv_table()
    assert header[1] == "query_mse" and len(rows) == 4


def test_classification_shows_images_marks_and_prototypes(idle_window, qtbot, omniglot_session, tmp_path):
    window = idle_window
    panel = _open_and_pick(window, qtbot, omniglot_session, index=1)
    res = panel.result
    assert res.kind == "classification" and not res.has_steps and res.prototypes_2d is not None
    assert panel.plot_count() == 3                     # support images, query images, features (PCA)
    assert panel.steps.isHidden()                      # ProtoNet has no inner steps to choose
    assert "PC 1" in panel._plots[2].getAxis("bottom").labelText
    wrong = int((res.query_pred[-1] != res.query_y).sum())
    red_numbers = [i for i in panel._plots[1].items if type(i).__name__ == "TextItem"
                   and i.fill.color().red() > 200]
    assert len(red_numbers) == wrong                   # one "predicted that way" mark per mistake
    assert res.family in panel.caption.text() and "green frame" in panel.caption.text()

    # a learner with steps on images: the accuracy per step instead of the features
    cfg = C.replace(C.default_config(), **{"learner.name": "maml", "train.steps": 2, "train.eval_every": 0,
                                           "eval.episodes": 4, "model.filters": 4, "learner.test_inner_steps": 2,
                                           "train.threads": 1})
    maml = _record(cfg, tmp_path / "maml.h5")
    panel = _open_and_pick(window, qtbot, maml)
    assert panel.result.has_steps and list(panel.result.steps) == [0, 1, 2] and panel.plot_count() == 3
    acc = panel._plots[2].listDataItems()[0]
    assert np.allclose(acc.yData, 100 * panel.result.query_metric)


def test_a_new_task_from_a_seed_and_a_session_without_a_model(idle_window, qtbot, sinusoid_session, tmp_path):
    window = idle_window
    panel = _open_and_pick(window, qtbot, sinusoid_session)
    panel.seed.setValue(77)
    with qtbot.waitSignal(panel.computed, timeout=60_000):
        panel.draw_button.click()
    assert panel.result.task_id == "test-77-00000" and np.isnan(panel.result.stored_metric)
    assert "recorded" not in panel.caption.text()

    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 3})
    empty = tmp_path / "nomodel.h5"
    w = store.SessionWriter(empty, cfg)
    w.write(next(run(cfg)))
    w.flush()
    try:
        panel.set_session(empty)
        panel.compute("test-1234-00000")
        qtbot.waitUntil(lambda: "no model yet" in panel.status.text(), timeout=30_000)
        assert panel.show_button.isEnabled()
    finally:
        w.close()


def test_clicking_a_point_of_the_task_map_shows_that_task(idle_window, qtbot, omniglot_session):
    from PySide6.QtCore import QPointF, Qt
    window = idle_window
    assert window.open_session(omniglot_session)
    emb = window.embedding
    qtbot.waitUntil(lambda: emb.point_count() > 0, timeout=60_000)
    i = 3
    scene = emb.plot.getViewBox().mapViewToScene(QPointF(*map(float, emb.xy[i])))
    at = emb.view.mapFromScene(scene)
    with qtbot.waitSignal(window.adaptation.computed, timeout=60_000):
        qtbot.mouseClick(emb.view.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert window.adaptation.result.task_id == emb._shown_ev.task_ids[i]
    assert window.views.currentWidget() is window.adaptation
