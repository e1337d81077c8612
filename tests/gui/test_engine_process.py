"""The window trains in a child process: it ends with the window, and a child that dies
mid-run ends the run with a clear message instead of leaving the window waiting."""

import os
import signal

from tests.gui.conftest import shrink
from workbench.store import SessionReader
from workbench.train import events as E


def test_run_happens_in_a_child_process_that_ends_with_the_window(window, qtbot):
    w = window.worker
    assert w.in_process
    shrink(window.form, **{"train.steps": 5000, "train.eval_every": 0})
    window.run()
    qtbot.waitUntil(lambda: window.curves.displayed_points("train/loss") >= 2, timeout=90_000)
    child = w.host.process
    assert child.is_alive() and child.pid != os.getpid()
    window.stop()
    qtbot.waitUntil(lambda: not window.is_running(), timeout=30_000)
    assert isinstance(window.last_terminal, E.RunCancelled)
    w.shutdown()
    assert not child.is_alive()


def test_a_killed_engine_process_fails_the_run_with_a_message(window, qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr(window, "_error_dialog", lambda title, text, detail="": shown.append(text))
    shrink(window.form, **{"train.steps": 5000, "train.eval_every": 0})
    window.run()
    qtbot.waitUntil(lambda: window.curves.displayed_points("train/loss") >= 2, timeout=90_000)
    def rows_on_disk():     # what the child's recorder has flushed (it flushes within a second of a row)
        try:
            with SessionReader(window.session_path) as r:
                return r.metric("train/loss")[0].size
        except Exception:   # the file between two writes: asked again at the next poll
            return 0
    qtbot.waitUntil(lambda: rows_on_disk() >= 1, timeout=30_000)     # was a fixed 1.5 s wait
    os.kill(window.worker.host.process.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not window.is_running(), timeout=30_000)
    assert isinstance(window.last_terminal, E.RunFailed)
    assert "stopped unexpectedly" in window.last_terminal.message
    assert shown and "stopped unexpectedly" in shown[0]
    with SessionReader(window.session_path) as r:       # the file survives and says what happened
        assert r.status == "interrupted"
        assert len(r.metric("train/loss")[0]) >= 1
    # the window is usable again: the next run starts a fresh engine process
    shrink(window.form)
    window.run()
    qtbot.waitUntil(lambda: not window.is_running(), timeout=90_000)
    assert isinstance(window.last_terminal, E.RunFinished)
