"""workbench.analysis.compare: config differences, pairing rules and paired statistics.

Sessions here are real session files written by the store from ``fake_run``
events (no training: fast); the GUI tests use sessions trained by the engine."""

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from workbench import config as C
from workbench import store
from workbench import format as F
from workbench.analysis import compare as AC
from workbench.analysis.stats import PairedComparison
from workbench.store.fake import fake_run


def _session(folder, name, end="finished", seed=0, projection="none", **changes):
    cfg = C.replace(C.default_config(), **{"name": name, "train.steps": 6, "train.eval_every": 3,
                                           "train.log_every": 2, **changes})
    path = store.new_session_path(cfg, folder)
    for _ in store.record(fake_run(cfg, seed=seed, test_tasks=25, end=end), path, cfg, projection=projection):
        pass
    return path


def test_config_differences_lists_only_differing_fields_in_form_order():
    a = C.default_config()
    b = C.replace(a, **{"learner.name": "maml", "learner.inner_lr": 0.1})
    c = C.replace(a, **{"task.shots": 1})
    rows = AC.config_differences([a, b, c])
    assert [k for k, _ in rows] == ["task.shots", "learner.name", "learner.inner_lr"]
    assert dict(rows)["learner.name"] == ["protonet", "maml", "protonet"]
    assert dict(rows)["task.shots"] == [5, 5, 1]
    assert AC.config_differences([a, C.default_config()]) == []


def test_paired_comparison_matches_scipy(tmp_path):
    pa = _session(tmp_path, "A", seed=1)
    pb = _session(tmp_path, "B", seed=2, **{"learner.name": "maml"})
    cmp = AC.compare([pa, pb])
    assert cmp.labels == ["A", "B"]
    pr = cmp.pairing(0, 1)
    assert pr.ok, pr.reason
    with store.SessionReader(pa) as ra, store.SessionReader(pb) as rb:
        fa, fb = ra.final_test(), rb.final_test()
    a, b = np.asarray(fa.per_task), np.asarray(fb.per_task)
    assert pr.stats.n == len(a) == 25
    d = a - b
    assert pr.stats.mean_diff == pytest.approx(d.mean())
    assert pr.stats.ci95 == pytest.approx(1.96 * d.std(ddof=1) / math.sqrt(len(d)))
    assert pr.stats.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert pr.stats.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue)
    # the table row carries the same numbers, formatted
    headers, rows = AC.paired_table(cmp.sessions, cmp.pairings)
    row = dict(zip(headers, rows[0]))
    assert row["A − B"] == f"{100 * d.mean():+.2f} pts"
    assert row["tasks"] == "25"
    # config table shows name and learner.name only
    h, crow = AC.config_table(cmp.sessions)
    assert h == ["field", "key", "A", "B"]
    assert [r[1] for r in crow] == ["name", "learner.name"]
    assert [r[0] for r in crow] == ["Experiment › Name", "Meta-learner › Algorithm"]


def test_pairing_matches_tasks_by_id_not_by_position(tmp_path):
    pa = _session(tmp_path, "A", seed=1)
    pb = _session(tmp_path, "B", seed=2)
    sa, sb = AC.load_sessions([pa, pb])
    order = np.random.default_rng(0).permutation(sb.n_tasks)[:20]     # B: 20 of the tasks, shuffled
    fb = sb.final
    fb2 = replace(fb, per_task=np.asarray(fb.per_task)[order], task_ids=[fb.task_ids[i] for i in order])
    sb2 = replace(sb, final=fb2)
    pr = AC.pair([sa, sb2], 0, 1)
    assert pr.ok and pr.stats.n == 20
    pos = {t: i for i, t in enumerate(sa.final.task_ids)}
    expect_a = np.asarray(sa.final.per_task)[[pos[t] for t in fb2.task_ids]]
    np.testing.assert_allclose(np.sort(pr.values_a), np.sort(expect_a))
    for t, x, y in zip(pr.task_ids, pr.values_a, pr.values_b):
        assert x == sa.final.per_task[pos[t]]
        assert y == fb.per_task[fb.task_ids.index(t)]


def test_sessions_that_cannot_be_paired_say_why(tmp_path):
    base = _session(tmp_path, "base")
    other_seed = _session(tmp_path, "seed", **{"eval.seed": 7})
    other_ways = _session(tmp_path, "ways", **{"task.ways": 4})
    cancelled = _session(tmp_path, "stopped", end="cancelled")
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"this is not an HDF5 file")
    cmp = AC.compare([base, other_seed, other_ways, cancelled, bad])
    s = cmp.sessions
    assert "eval.seed is 1234 in base and 7 in seed" in cmp.pairing(0, 1).reason
    assert "task.ways" in cmp.pairing(0, 2).reason
    assert "stopped has no final test evaluation" in cmp.pairing(0, 3).reason
    assert s[4].status == "damaged" and s[4].problem and "broken" in cmp.pairing(0, 4).reason
    assert not any(p.ok for p in cmp.pairings)
    headers, rows = AC.metrics_table(s)
    assert rows[4][1] == "damaged" and rows[3][3] == "no final test"


def test_regression_metric_and_labels(tmp_path):
    p1 = _session(tmp_path, "same", **{"data.dataset": "sinusoid", "learner.name": "maml", "model.backbone": "mlp"})
    p2 = _session(tmp_path, "same", seed=3, **{"data.dataset": "sinusoid", "learner.name": "metasgd",
                                               "model.backbone": "mlp"})
    cmp = AC.compare([p1, p2])
    assert cmp.labels == ["same (maml)", "same (metasgd)"]        # duplicate names made unique
    pr = cmp.pairing(0, 1)
    assert pr.ok and cmp.sessions[0].metric == "mse"
    # for mse lower is better, for accuracy higher: the verdict follows the metric
    st = PairedComparison(n=10, mean_a=0.2, mean_b=0.3, mean_diff=-0.1, ci95=0.02, t=-5.0, p_value=0.001,
                          p_wilcoxon=0.002)
    assert AC.verdict("mse", st).startswith("A is better")
    assert AC.verdict("accuracy", st).startswith("B is better")
    assert AC.verdict("accuracy", replace(st, p_value=0.2)).startswith("no significant difference")
    # the tables format through workbench.format (the one formatting module; no alias here)
    assert not hasattr(AC, "format_metric") and not hasattr(AC, "format_p")
    assert F.metric_ci("mse", 0.01234, 0.0021) == "0.01234 ± 0.0021"
    assert F.metric_ci("accuracy", 0.5, 0.01) == "50.00% ± 1.00%"
    assert F.metric_ci("accuracy", float("nan"), 0.1) == "–"


def test_compare_needs_two_sessions(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        AC.compare([tmp_path / "x.h5"])
