"""Run, Stop, close during a run, failures, and live sessions, driving the real window."""

import threading

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolBar

from tests.gui.conftest import set_field, shrink
from workbench.store import SessionReader
from workbench.train import events as E


def click(window, action, qtbot):
    """Click the toolbar button of ``action``, as a user would."""
    tb = window.findChild(QToolBar, "main_toolbar")
    qtbot.mouseClick(tb.widgetForAction(action), Qt.MouseButton.LeftButton)


def run_threads():
    return [t for t in threading.enumerate() if t.name == "workbench-run"]


def test_run_default_experiment_feeds_every_panel(window, qtbot):
    shrink(window.form)
    click(window, window.act_run, qtbot)
    assert window.is_running() and not window.act_run.isEnabled() and window.act_stop.isEnabled()
    qtbot.waitUntil(lambda: (window.curves.displayed_points("train/loss") > 0 and window.embedding.point_count() > 0
                             and window.per_task.bar_count() > 0 and window.log.line_count() > 4),
                    timeout=90_000)
    qtbot.waitUntil(lambda: not window.is_running(), timeout=90_000)
    assert isinstance(window.last_terminal, E.RunFinished)
    assert not run_threads()
    assert window.progress.value() == window.progress.maximum() == 20
    assert window.curves.displayed_points("val/accuracy") == 1      # validated at step 10
    window.embedding.wait_idle()
    qtbot.waitUntil(lambda: "test tasks" in window.embedding.status.text(), timeout=30_000)
    assert window.embedding.point_count() == 20                       # the final test's 20 episodes
    assert "test accuracy" in window.per_task.summary.text()
    assert "test accuracy" in window.log.plain_text()
    # the events reached the UI in batches, never more than ~20 a second
    w = window.worker
    assert w.events_delivered > w.batches_delivered
    # the session was recorded and finalised, and opens back into the panels
    path = window.session_path
    with SessionReader(path) as r:
        assert r.status == "finished"
        assert len(r.metric("train/loss")[0]) == 10
    assert window.open_session(path)
    assert window.curves.displayed_points("train/loss") == 10
    assert window.per_task.bar_count() == len(set(window.embedding.ev.families))   # a bar per family
    assert str(path) in window.recent_sessions()


def test_stop_cancels_within_a_step_and_finalises_the_session(window, qtbot):
    shrink(window.form, **{"train.steps": 5000, "train.eval_every": 0})
    window.run()
    qtbot.waitUntil(lambda: window.curves.displayed_points("train/loss") >= 2, timeout=90_000)
    with qtbot.waitSignal(window.run_finished, timeout=30_000) as done:
        click(window, window.act_stop, qtbot)
        assert not window.act_stop.isEnabled()
    ev = done.args[0]
    assert isinstance(ev, E.RunCancelled) and ev.step < 5000
    assert not run_threads() and not window.is_running()
    assert window.act_run.isEnabled()
    with SessionReader(window.session_path) as r:
        assert r.status == "cancelled"
    assert "Cancelled at step" in window.log.plain_text()


def test_closing_during_a_run_asks_stops_and_finalises(window, qtbot, monkeypatch):
    shrink(window.form, **{"train.steps": 5000, "train.eval_every": 0})
    window.run()
    qtbot.waitUntil(lambda: window.curves.displayed_points("train/loss") >= 1, timeout=90_000)
    asked = []
    monkeypatch.setattr(window, "confirm_stop_and_close", lambda: asked.append(1) or False)
    window.close()                                  # "No": keeps running
    assert asked and window.isVisible() and window.is_running()
    monkeypatch.setattr(window, "confirm_stop_and_close", lambda: asked.append(1) or True)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30_000)
    assert len(asked) == 2 and not window.is_running() and not run_threads()
    with SessionReader(window.session_path) as r:
        assert r.status == "cancelled"


def test_bad_data_ends_the_run_with_a_dialog_and_the_window_stays_usable(window, qtbot, tmp_path):
    junk = tmp_path / "images_background.zip"
    junk.write_bytes(b"this is not a zip file")
    set_field(window.form, "data.dataset", "omniglot")
    set_field(window.form, "data.path", str(junk))
    shrink(window.form)
    with qtbot.waitSignal(window.run_finished, timeout=60_000) as done:
        window.run()
    assert isinstance(done.args[0], E.RunFailed)
    box = window.error_box
    assert box is not None and box.isVisible()
    assert str(junk.name) in box.text() and "Traceback" not in box.text()
    assert "Traceback" in window.log.plain_text()                  # details go to the log
    box.close()
    assert window.act_run.isEnabled() and window.form.groups["data"].isEnabled()
    with SessionReader(window.session_path) as r:
        assert r.status == "failed"


def test_a_live_session_written_elsewhere_updates_the_panels(window, qtbot, tmp_path):
    from workbench import config as C
    from workbench.store import SessionWriter
    from workbench.store.fake import fake_run

    cfg = C.replace(C.default_config(), **{"train.steps": 40, "train.log_every": 2, "train.eval_every": 20})
    # without the final test evaluation: the store projects that one with t-SNE at close, which is slow
    events = [e for e in fake_run(cfg, steps=40) if not (isinstance(e, E.Evaluation) and e.phase == "test")]
    path = tmp_path / "live.h5"
    w = SessionWriter(path, cfg)
    half = next(i for i, e in enumerate(events) if isinstance(e, E.StepMetrics) and e.step == 10)
    for e in events[:half + 1]:
        w.write(e)
    w.flush()

    def rows_on_disk():
        with SessionReader(path) as r:
            return r.metric("train/loss")[0].size
    qtbot.waitUntil(lambda: rows_on_disk() > 0, timeout=10_000)
    assert window.open_session(path)
    n0 = window.curves.displayed_points("train/loss")
    assert n0 > 0 and window._poll.isActive()
    for e in events[half + 1:]:
        w.write(e)
    w.close()
    qtbot.waitUntil(lambda: window.curves.displayed_points("train/loss") == 20, timeout=15_000)
    qtbot.waitUntil(lambda: not window._poll.isActive(), timeout=15_000)
    assert window.per_task.bar_count() > 0 and window.embedding.ev is not None
