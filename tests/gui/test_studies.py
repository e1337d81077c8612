"""The Studies view driven through its widgets: a tiny study (digits ProtoNet, 6 steps, 10 test
episodes, 2 meta learning rates x 2 seeds) built in the form, launched on the local pool, the runs
grid filling, the results table read and checked against a computation from the session files,
exports, compare and open-run requests, stop and resume; bad definitions show one sentence each."""

import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from workbench import format as F
from workbench import store
from workbench import study as S
from workbench.gui.studies import PROGRESS_ROLE

TINY = {"train.steps": "6", "train.eval_every": "3", "train.val_episodes": "5", "eval.episodes": "10",
        "train.log_every": "2", "train.threads": "1", "model.hidden": "[32]"}
WAIT_S = 240


def wait_for(app, cond, timeout=WAIT_S):
    t = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - t > timeout:
            raise AssertionError("timed out")


def build(view, varied=("learner.meta_lr", "0.001, 0.01"), seeds="0, 1", extra=TINY):
    f = view.form
    f.base_box.setCurrentIndex(f.base_box.findData("preset:digits_protonet"))
    f.rows[0].set_key(varied[0])
    f.rows[0].values_edit.setText(varied[1])
    for k, text in extra.items():
        f.add_row(k, text)
    f.name_edit.setText("Tiny digits study")
    f.seeds_edit.setText(seeds)
    f.workers_spin.setValue(2)
    return f


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("studies-ws")


@pytest.fixture(scope="module")
def finished(qapp, workspace):
    """One study built in the form and run to the end; the statuses the grid showed on the way."""
    from workbench.gui.app import make_app
    from workbench.gui.studies import StudiesView
    app = make_app()
    view = StudiesView(workspace=workspace)
    view.resize(1500, 950)
    view.show()
    build(view)
    view.form.validate_now()
    assert view.form.valid, view.form.problems
    assert view.launch_button.isEnabled()
    seen = []
    apply = view.grid.apply

    def spy(u):
        seen.append((u.run_id, u.status))
        apply(u)
    view.grid.apply = spy
    view.launch_button.click()
    wait_for(app, lambda: not view.is_running() and view.results is not None)
    app.processEvents()
    yield view, seen
    view.shutdown()
    view.close()
    view.deleteLater()


def test_the_grid_fills_as_the_study_runs(finished):
    view, seen = finished
    rec = view.record
    assert rec.path.name == "study.json" and len(rec.runs) == 4
    g = view.grid
    assert g.rowCount() == 4
    assert [g.item(i, 0).text() for i in range(4)] == [r.run_id for r in rec.runs]
    assert {g.item(i, 3).text() for i in range(4)} == {"finished"}
    for rid in (r.run_id for r in rec.runs):              # every run was shown queued, then finished
        states = [s for r, s in seen if r == rid]
        assert states[0] == "queued" and states[-1] == "finished", states
    for i, r in enumerate(rec.runs):                     # the metric column: the session's final test
        s = store.read_summary(rec.session_path(r))
        assert s.status == "finished"
        assert g.item(i, 5).text() == F.metric_value("accuracy", s.mean)
        assert g.item(i, 4).data(PROGRESS_ROLE) == (6, 6)
        assert g.item(i, 2).text() == str(r.seed)
    assert "4 finished" in view.status_label.text()


def _finals(rec):
    """cell label -> [(seed, per-task results, task ids)] read from the session files."""
    out = {}
    for r in rec.runs:
        with store.SessionReader(rec.session_path(r)) as rd:
            t = rd.final_test()
            out.setdefault(S.cell_label(r.cell), []).append((r.seed, np.asarray(t.per_task, float),
                                                             list(t.task_ids), float(t.mean)))
    return out


def test_results_table_matches_a_hand_computation(finished):
    view, _ = finished
    table = view.results_panel.table
    t = table.table
    assert t.rowCount() == 2
    assert table.headers == ["Rank", "Meta learning rate", "Seeds", "Mean ± 95% CI over seeds",
                             "Per-episode 95% CI", "vs best", "p (Holm) vs best"]
    labels = [view.results.cell(cid).label for cid in table.cell_ids]
    rows = {label: list(r.values()) for label, r in zip(labels, table.row_texts())}
    finals = _finals(view.record)
    assert set(rows) == set(finals) == {"learner.meta_lr=0.001", "learner.meta_lr=0.01"}
    assert {r[1] for r in rows.values()} == {"0.001", "0.01"}
    means = {}
    for label, runs in finals.items():
        v = np.array([m for _, _, _, m in runs])
        ci = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
        means[label] = v.mean()
        assert rows[label][3] == F.metric_ci("accuracy", v.mean(), ci)
        assert rows[label][2] == "2"
    best = max(means, key=means.get)
    other = min(means, key=means.get)
    assert rows[best][0] == "1*" and t.item(labels.index(best), 1).font().bold()
    assert rows[best][5] == "best"
    # the other cell against the best: per-seed mean of paired per-episode differences, t-test over seeds
    a = {s: (p, ids) for s, p, ids, _ in finals[other]}
    b = {s: (p, ids) for s, p, ids, _ in finals[best]}
    diffs = []
    for s in sorted(a):
        pa, ia = a[s]
        pb, ib = b[s]
        assert ia == ib                                   # the same seeded test episodes
        diffs.append(float(np.mean(pa - pb)))
    p = stats.ttest_1samp(diffs, 0.0).pvalue
    assert rows[other][5] == F.metric_diff("accuracy", float(np.mean(diffs)))
    assert rows[other][6] == F.p_value(p) + (" †" if p < 0.05 else "")      # one comparison: Holm's p = p
    assert "Holm" in view.results_panel.table.note.text()


def test_plots_and_exports_carry_the_study_and_cell_names(finished, tmp_path):
    view, _ = finished
    panel = view.results_panel
    sens, sig = panel.sensitivity, panel.significance
    assert sens.axis == "learner.meta_lr" and len(sens.curves) == 1
    np.testing.assert_allclose(sens.curves[0].x, [0.001, 0.01])
    assert sig.matrix.shape == (2, 2) and math.isnan(sig.matrix[0, 0])
    assert np.sign(sig.matrix[0, 1]) == 1 and np.sign(sig.matrix[1, 0]) == -1      # best row first: better
    for what in ("csv", "md", "tex"):
        out = panel.table.export(tmp_path / f"results.{what}")
        text = out.read_text(encoding="utf-8")
        assert "learner.meta_lr=0.001" in text.replace("\\_", "_"), what
    for p in (sens, sig):
        for suffix in (".png", ".svg"):
            out = p.export(tmp_path / f"{p.default_name()}{suffix}")
            assert out.stat().st_size > 1000
        svg = (tmp_path / f"{p.default_name()}.svg").read_text(encoding="utf-8", errors="replace")
        assert "Tiny digits study" in svg                                  # the figure's title, in the file
    assert "0.001" in (tmp_path / f"{sig.default_name()}.svg").read_text(encoding="utf-8", errors="replace")
    headers, rows = sig.csv_data()
    assert len(rows) == 2 and "p_holm" in headers


def test_selecting_cells_opens_their_sessions_in_compare_and_a_run_in_the_panels(finished, qtbot):
    view, _ = finished
    table = view.results_panel.table
    table.select_cells(table.cell_ids)
    assert table.compare_button.isEnabled()
    with qtbot.waitSignal(view.compare_requested, timeout=2000) as sig:
        table.compare_button.click()
    assert sorted(sig.args[0]) == sorted(str(view.record.session_path(r)) for r in view.record.runs)
    view.grid.selectRow(2)
    assert view.open_run_button.isEnabled()
    with qtbot.waitSignal(view.open_session_requested, timeout=2000) as sig:
        view.open_run_button.click()
    assert sig.args[0] == str(view.record.session_path(view.record.runs[2]))


def test_a_finished_study_reopens_from_the_workspace(finished, qapp, workspace):
    from workbench.gui.studies import StudiesView
    view, _ = finished
    other = StudiesView(workspace=workspace)
    try:
        i = other.studies_box.findData(str(view.record.path))
        assert i > 0
        other.studies_box.setCurrentIndex(i)
        other.studies_box.activated.emit(i)
        wait_for(qapp, lambda: other.results is not None, 60)
        assert other.form.name_edit.text() == "Tiny digits study"
        assert [r.key for r in other.form.rows] == ["learner.meta_lr"]
        assert other.grid.rowCount() == 4
        assert other.results_panel.table.table.rowCount() == 2
        assert not other.resume_button.isEnabled()              # nothing left to do
    finally:
        other.close()
        other.deleteLater()


def test_stop_then_resume_finishes_every_run_once(qapp, tmp_path):
    from workbench.gui.studies import StudiesView
    view = StudiesView(workspace=tmp_path)
    try:
        # runs long enough (and checkpointed) that the stop lands in the first one even on a fast machine
        long = {**TINY, "train.steps": "1500", "train.eval_every": "0", "train.checkpoint_every": "50",
                "train.log_every": "10"}
        build(view, varied=("learner.meta_lr", "0.001, 0.01"), seeds="0", extra=long)
        view.form.workers_spin.setValue(1)
        view.form.validate_now()
        assert view.launch()
        wait_for(qapp, lambda: view.record is not None and view.grid.count("running") > 0, 120)
        view.stop_button.click()
        assert view.wait(120)
        qapp.processEvents()
        rec = S.open_record(view.record.path)
        assert any(r.status != "finished" for r in rec.runs), [r.status for r in rec.runs]
        assert view.resume_button.isEnabled()
        view.resume_button.click()
        wait_for(qapp, lambda: not view.is_running() and view.results is not None, 180)
        rec = S.open_record(view.record.path)
        assert [r.status for r in rec.runs] == ["finished", "finished"]
        assert all(r.attempts <= 2 for r in rec.runs)
        with store.SessionReader(rec.session_path(rec.runs[0])) as rd:        # resumed, not run twice
            assert rd.steps_done == 1500
    finally:
        view.shutdown()
        view.close()
        view.deleteLater()


# -- bad definitions ------------------------------------------------------------------
@pytest.fixture
def form_view(qapp, qtbot, tmp_path):
    from workbench.gui.studies import StudiesView
    view = StudiesView(workspace=tmp_path)
    qtbot.addWidget(view)
    build(view)
    view.form.validate_now()
    assert view.form.valid, view.form.problems
    return view


def test_a_value_that_is_not_a_number_is_named_by_its_label(form_view):
    f = form_view.form
    f.rows[0].values_edit.setText("0.001, fast")
    f.validate_now()
    assert not f.valid and not form_view.launch_button.isEnabled()
    assert f.rows[0].error.isVisibleTo(f) and "'fast' is not a number" in f.rows[0].error.text()
    assert any(p.startswith("Meta learning rate: ") for p in f.problems)
    assert "Traceback" not in f.problems_label.text()


def test_empty_seeds_an_empty_row_and_a_field_listed_twice(form_view):
    f = form_view.form
    f.seeds_edit.setText("")
    f.validate_now()
    assert f.problems == ["Seeds: give at least one seed, e.g. 0, 1, 2"]
    f.seeds_edit.setText("0, 1, 1")
    f.validate_now()
    assert f.problems == ["Seeds: each seed at most once (1 is repeated)"]
    f.seeds_edit.setText("0, 1")
    row = f.add_row("task.shots", "")
    f.validate_now()
    assert any(p.startswith("Shots (K): has no values") for p in f.problems)
    row.values_edit.setText("1, 5")
    f.add_row("task.shots", "2")
    f.validate_now()
    assert "Shots (K): is listed twice: keep one row per field" in f.problems


def test_an_axis_on_a_field_the_runs_ignore(form_view):
    f = form_view.form
    f.rows[0].set_key("learner.inner_lr")            # ProtoNet has no inner loop
    f.rows[0].values_edit.setText("0.1, 0.5")
    f.validate_now()
    assert len(f.problems) == 1
    assert f.problems[0].startswith("Varied field Inner learning rate: the runs ignore this field")
    assert "ignore this field" in f.rows[0].error.text()


def test_a_bad_value_in_range_is_named_by_its_label(form_view):
    f = form_view.form
    steps = next(r for r in f.rows if r.key == "train.steps")
    steps.values_edit.setText("0")
    f.validate_now()
    assert not f.valid
    assert any(p.startswith("Steps: ") and "at least 1" in p for p in f.problems), f.problems


def test_a_study_file_with_an_unknown_field_says_so(form_view, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[study]\nname = "bad"\nseeds = [0]\n[study.grid]\n"learner.inner_l" = [0.1, 0.2]\n'
                 '[base]\nbase_preset = "digits_protonet"\n', encoding="utf-8")
    assert not form_view.open_path(str(p))
    text = form_view.status_label.text()
    assert "learner.inner_l" in text and "did you mean" in text and "Traceback" not in text


def test_thousands_of_runs_by_accident_are_asked_about(form_view):
    f = form_view.form
    f.seeds_edit.setText("0-1499")
    f.validate_now()
    assert f.valid and f.confirm_message is not None
    assert "3000 runs" in f.count_label.text() and "you will be asked" in f.count_label.text()
    asked = []

    def refuse(message):
        asked.append(message)
        return False
    form_view.confirm_many_runs = refuse
    assert not form_view.launch()
    assert len(asked) == 1 and "3000 runs" in asked[0]
    assert not form_view.is_running() and form_view.record is None
    assert not (Path(form_view.workspace) / "studies").exists() or \
        not list((Path(form_view.workspace) / "studies").iterdir())


def test_ray_unreachable_is_one_sentence(form_view, qapp):
    # (the view imports Ray on the UI thread before the study's thread uses it: once, in a full run,
    # the two threads hung for ever when the study thread imported it first; gui/studies.py)
    pytest.importorskip("ray")
    f = form_view.form
    f.backend_box.setCurrentIndex(f.backend_box.findData("ray"))
    f.address_edit.setText("ray://127.0.0.1:1")
    f.seeds_edit.setText("0")
    f.validate_now()
    assert f.address_edit.isVisibleTo(f)
    assert form_view.launch()
    wait_for(qapp, lambda: not form_view.is_running(), 120)
    form_view._drain()
    text = form_view.last_error
    assert text.startswith("cannot connect to the Ray cluster at 'ray://127.0.0.1:1'"), text
    assert "Traceback" not in form_view.status_label.text()


def test_the_main_window_has_a_studies_tab(idle_window, finished, qtbot):
    window = idle_window                  # it trains nothing itself: no engine process
    from PySide6.QtWidgets import QDockWidget
    from workbench.gui.studies import StudiesView
    view, _ = finished
    tabs = window.studies_tabs
    studies = window.studies
    assert isinstance(studies, StudiesView)
    i = tabs.indexOf(studies)
    assert tabs.tabText(i) == "Studies"
    docks = [d for d in window.findChildren(QDockWidget) if d.isVisible()]
    assert docks
    tabs.setCurrentIndex(i)
    assert not any(d.isVisible() for d in docks)                  # the view gets the whole window
    assert studies.form.base_box.currentData() == "form"          # starting from the experiment form
    path = str(view.record.session_path(view.record.runs[0]))
    studies.open_session_requested.emit(path)                     # a run into the panels
    assert tabs.currentIndex() == 0 and all(d.isVisible() for d in docks)
    assert str(window.session_path) == path


@pytest.mark.parametrize("preset", ["digits_every_learner_3_seeds", "sinusoid_maml_inner_lr_x_steps"])
def test_study_presets_load_into_the_form_valid(form_view, preset):
    from workbench.study.presets import load_study_preset
    box = form_view.presets_box
    i = box.findData(preset)
    assert i > 0
    box.setCurrentIndex(i)
    box.activated.emit(i)
    f = form_view.form
    defn = load_study_preset(preset)
    f.validate_now()
    assert f.valid, f.problems
    assert f.base_box.currentData() == "loaded"
    assert [r.key for r in f.rows] == list(defn.grid)
    mine = f.definition_cache
    assert mine.grid == defn.grid and mine.seeds == defn.seeds and mine.max_runs == defn.max_runs
    assert S.count_runs(mine) == S.count_runs(defn)
    assert [r.overrides for r in S.plan(mine)][:3] == [r.overrides for r in S.plan(defn)][:3]
    assert str(S.count_runs(defn)) in f.count_label.text()


def test_a_loaded_search_is_kept_and_can_be_dropped(form_view, tmp_path):
    p = tmp_path / "search.toml"
    p.write_text('[study]\nname = "searched"\nseeds = [0]\n[study.grid]\n"learner.meta_lr" = [0.001, 0.01]\n'
                 '[study.search]\ntrials = 3\nseed = 7\n[study.search.space]\n'
                 '"learner.meta_batch" = { int = [2, 8] }\n[base]\nbase_preset = "digits_protonet"\n',
                 encoding="utf-8")
    assert form_view.open_path(str(p))
    f = form_view.form
    f.validate_now()
    assert f.valid, f.problems
    assert f.definition_cache.search is not None and S.count_runs(f.definition_cache) == 6
    assert "3 sobol trials" in f.search_label.text() and "Tasks per meta-step" in f.search_label.text()
    f.drop_search.click()
    f.validate_now()
    assert f.definition_cache.search is None and S.count_runs(f.definition_cache) == 2
