"""The sessions browser, driven like a user would: list, filter, sort, open, compare, delete,
a damaged file, a session written live by another writer, and a report."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from session_factory import copy_sessions  # noqa: E402

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QFileDialog, QMessageBox  # noqa: E402

from workbench import config as C  # noqa: E402
from workbench import store  # noqa: E402
from workbench.gui.sessions import COLUMNS, PATH_ROLE, SessionsBrowser  # noqa: E402


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    copy_sessions(ws)
    return ws


@pytest.fixture
def browser(qtbot, workspace):
    b = SessionsBrowser(workspace)
    qtbot.addWidget(b)
    b.resize(1000, 400)
    b.show()
    qtbot.waitExposed(b)
    return b


def shown(b, column="Name"):
    col = COLUMNS.index(column)
    return [b.proxy.index(r, col).data() for r in range(b.proxy.rowCount())]


def test_lists_the_workspace_sessions_with_their_final_metric(browser, workspace):
    assert sorted(shown(browser)) == ["MAML digits", "ProtoNet digits", "ProtoNet other seed"]
    for r in range(browser.proxy.rowCount()):
        path = browser.proxy.index(r, 0).data(PATH_ROLE)
        s = store.read_summary(path)
        assert browser.proxy.index(r, COLUMNS.index("Status")).data() == "finished"
        assert browser.proxy.index(r, COLUMNS.index("Final metric")).data() == \
            f"{100 * s.mean:.2f}% ± {100 * s.ci95:.2f}%"
        assert browser.proxy.index(r, COLUMNS.index("Ways/shots")).data() == "3-way 5-shot"
    assert browser.count_label.text() == "3 sessions"


def test_filter_matches_words_in_any_column(browser):
    browser.filter_edit.setText("maml")
    assert shown(browser) == ["MAML digits"]
    browser.filter_edit.setText("protonet seed")           # every word must match, in any column
    assert shown(browser) == ["ProtoNet other seed"]
    browser.filter_edit.setText("finished digits")
    assert len(shown(browser)) == 3
    browser.filter_edit.setText("omniglot")
    assert shown(browser) == []
    assert browser.count_label.text() == "0 of 3 sessions shown"
    browser.filter_edit.clear()
    assert len(shown(browser)) == 3


def test_sort_by_final_metric_and_by_name(browser):
    col = COLUMNS.index("Final metric")
    browser.view.sortByColumn(col, Qt.SortOrder.AscendingOrder)
    means = [store.read_summary(browser.proxy.index(r, 0).data(PATH_ROLE)).mean for r in range(3)]
    assert means == sorted(means)
    browser.view.sortByColumn(col, Qt.SortOrder.DescendingOrder)
    means = [store.read_summary(browser.proxy.index(r, 0).data(PATH_ROLE)).mean for r in range(3)]
    assert means == sorted(means, reverse=True)
    browser.view.sortByColumn(COLUMNS.index("Name"), Qt.SortOrder.AscendingOrder)
    assert shown(browser) == ["MAML digits", "ProtoNet digits", "ProtoNet other seed"]


def test_double_click_and_open_emit_the_path_and_compare_emits_paths(browser, qtbot):
    browser.filter_edit.setText("MAML")
    idx = browser.proxy.index(0, 1)
    path = idx.data(PATH_ROLE)
    rect = browser.view.visualRect(idx)
    with qtbot.waitSignal(browser.open_requested, timeout=2000) as sig:
        # a press/release first: item views emit doubleClicked only after a click on the same item
        qtbot.mouseClick(browser.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(browser.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sig.args == [path]
    browser.filter_edit.clear()
    browser.select_paths([path])
    assert browser.open_button.isEnabled() and not browser.compare_button.isEnabled()
    with qtbot.waitSignal(browser.open_requested, timeout=2000) as sig:
        qtbot.mouseClick(browser.open_button, Qt.MouseButton.LeftButton)
    assert sig.args == [path]
    two = [browser.proxy.index(r, 0).data(PATH_ROLE) for r in range(2)]
    browser.select_paths(two)
    assert browser.compare_button.isEnabled() and not browser.open_button.isEnabled()
    with qtbot.waitSignal(browser.compare_requested, timeout=2000) as sig:
        qtbot.mouseClick(browser.compare_button, Qt.MouseButton.LeftButton)
    assert sorted(sig.args[0]) == sorted(two)


def test_delete_asks_and_removes_only_when_confirmed(browser, monkeypatch, qtbot):
    asked = []

    def answer(reply):
        def question(parent, title, text, *a, **k):
            asked.append(text)
            return reply
        return question
    path = browser.proxy.index(0, 0).data(PATH_ROLE)
    browser.select_paths([path])
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    qtbot.mouseClick(browser.delete_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 1 and Path(path).name in asked[0]
    assert Path(path).exists() and browser.model.rowCount() == 3
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    qtbot.mouseClick(browser.delete_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 2
    assert not Path(path).exists()
    assert browser.model.rowCount() == 2 and path not in [r.path for r in browser.model.rows]


def test_damaged_file_is_listed_as_damaged_and_cannot_be_opened(browser, workspace, monkeypatch, qtbot):
    bad = workspace / "20200101-000000-maml-digits-badbad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n truncated garbage")
    browser.refresh()
    row = browser.model.row_of(str(bad))
    assert row is not None and row.status == "damaged" and row.problem
    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warned.append(a[2]))
    browser.select_paths([str(bad)])
    assert not browser.open_button.isEnabled()
    with qtbot.assertNotEmitted(browser.open_requested):
        browser._open(str(bad))
    assert warned and "cannot be opened" in warned[0]


def test_a_session_written_live_appears_and_finishes(browser, workspace, qtbot):
    from workbench.store.fake import fake_run
    cfg = C.replace(C.default_config(), **{"name": "live run", "train.steps": 6, "train.log_every": 1,
                                           "train.eval_every": 0})
    path = store.new_session_path(cfg, workspace)
    events = list(fake_run(cfg, test_tasks=10))
    w = store.SessionWriter(path, cfg, projection="none")
    try:
        for ev in events[:4]:           # RunStarted, Log, two steps
            w.write(ev)
        w.flush()
        # the folder watcher / refresh timer picks the new file up without being asked
        qtbot.waitUntil(lambda: browser.model.row_of(str(path)) is not None, timeout=5000)
        row = browser.model.row_of(str(path))
        assert row.status == "running" and row.texts[0].startswith("running ")
        for ev in events[4:]:
            w.write(ev)
    finally:
        w.close()
    qtbot.waitUntil(lambda: browser.model.row_of(str(path)).status == "finished", timeout=5000)
    row = browser.model.row_of(str(path))
    s = store.read_summary(path)
    assert row.texts[5] == f"{100 * s.mean:.2f}% ± {100 * s.ci95:.2f}%"


def test_report_of_one_session_from_the_browser(browser, monkeypatch, tmp_path):
    out = tmp_path / "one.html"
    path = browser.proxy.index(0, 0).data(PATH_ROLE)
    browser.select_paths([path])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), "HTML report (*.html)"))
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: None)
    browser.report_button.click()
    text = out.read_text(encoding="utf-8")
    s = store.read_summary(path)
    assert f"{100 * s.mean:.2f}% ± {100 * s.ci95:.2f}%" in text
    assert text.count("data:image/png;base64,") >= 3         # curves, per-task histogram, embedding map
    assert s.name in text


def test_reopening_reads_only_changed_files_thanks_to_the_index(qtbot, workspace, monkeypatch):
    first = SessionsBrowser(workspace)
    qtbot.addWidget(first)
    assert (workspace / ".workbench-index.json").exists()
    calls = []
    real = store.read_summary
    monkeypatch.setattr(store, "read_summary", lambda p: calls.append(Path(p).name) or real(p))
    second = SessionsBrowser(workspace)
    qtbot.addWidget(second)
    assert calls == [] and second.model.rowCount() == 3          # every ended session came from the index
    assert [r.texts for r in second.model.rows] == [first.model.row_of(r.path).texts for r in second.model.rows]
    changed = sorted(workspace.glob("*.h5"))[0]
    changed.touch()                                               # a new modification time: read again
    third = SessionsBrowser(workspace)
    qtbot.addWidget(third)
    assert calls == [changed.name]


def test_export_model_button_writes_the_model_folder(browser, monkeypatch, tmp_path):
    from workbench.store.export import load_model
    path = [r.path for r in browser.model.rows if r.summary.name == "ProtoNet digits"][0]
    browser.select_paths([path])
    assert browser.export_button.isEnabled()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "models"))
    told = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: told.append(a[2]))
    browser.export_button.click()
    folder = tmp_path / "models" / f"{Path(path).stem}-model"
    assert told and str(folder) in told[0]
    assert any(f.suffix == ".safetensors" and f.stat().st_size > 0 for f in folder.iterdir())
    assert load_model(folder) is not None                          # the exported folder loads back


def test_the_name_column_fits_its_names_and_can_be_widened(browser, qtbot):
    """Defect 8: the Name column was squeezed to "…" and could not be widened."""
    from PySide6.QtWidgets import QHeaderView
    hh = browser.view.horizontalHeader()
    col = COLUMNS.index("Name")
    assert hh.sectionResizeMode(col) == QHeaderView.ResizeMode.Interactive
    fm = browser.view.fontMetrics()
    assert hh.sectionSize(col) >= max(fm.horizontalAdvance(n) for n in shown(browser))
    browser.resize(420, 400)                    # a narrow dock: the column keeps its width, the table scrolls
    qtbot.wait(20)
    assert hh.sectionSize(col) >= max(fm.horizontalAdvance(n) for n in shown(browser))
    hh.resizeSection(col, 420)
    assert hh.sectionSize(col) == 420
    # the browser never makes its dock (and the window) wider than a narrow screen allows
    assert browser.minimumSizeHint().width() <= 400
