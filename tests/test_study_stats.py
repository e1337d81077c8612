"""The statistics of a study, checked against a computation written out here from the session files'
per-episode results (numpy/scipy directly), and Holm's correction against a worked reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from workbench.analysis.study import (aggregate, holm, sensitivity, t_ci95, to_csv, to_latex, to_markdown,
                                      to_text)
from workbench.store import SessionReader, record
from workbench.store.fake import fake_run
from workbench.study import create_record, plan, study_from_toml

STUDY = """
[study]
name = "stats"
seeds = [0, 1, 2]
[study.grid]
"learner.name" = ["protonet", "matching", "maml"]
"task.shots" = [1]
[base]
base_preset = "digits_protonet"
[base.train]
steps = 10
eval_every = 0
log_every = 5
[base.eval]
episodes = 12
[base.embedding]
method = "none"
"""


def fake_study(tmp_path, text=STUDY, missing=()):
    rec = create_record(study_from_toml(text), tmp_path / "study")
    configs = {p.run_id: p.config for p in plan(rec.definition())}
    for i, r in enumerate(rec.runs):
        if r.run_id in missing:
            continue
        cfg = configs[r.run_id]
        for _ in record(fake_run(cfg, seed=100 + i, dim=0), rec.session_path(r), cfg, projection="none"):
            pass
    return rec


def per_task(rec, run_id):
    with SessionReader(rec.session_path(rec.run(run_id))) as r:
        t = r.final_test()
        return np.asarray(t.per_task, float), list(t.task_ids)


def test_holm_against_a_worked_reference():
    # p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06,
    # 0.04*1 = 0.04 -> raised to 0.06 to stay monotone (statsmodels multipletests(method="holm") agrees)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])          # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])
    assert holm([]) == []
    # ties keep their order and share the adjusted value
    assert holm([0.01, 0.01, 0.2]) == pytest.approx([0.03, 0.03, 0.2])


def test_t_ci_over_seeds():
    m, ci, sd = t_ci95([0.5, 0.6, 0.7])
    assert m == pytest.approx(0.6) and sd == pytest.approx(0.1)
    assert ci == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3))    # t(0.975, 2) = 4.3027
    m, ci, sd = t_ci95([0.4])
    assert m == 0.4 and math.isnan(ci)


def test_aggregate_matches_a_hand_computation_from_the_session_files(tmp_path):
    rec = fake_study(tmp_path)
    res = aggregate(rec)
    assert res.metric == "accuracy" and res.higher_is_better
    assert len(res.cells) == 3 and len(res.runs) == 9
    cells = {c.cell_id: c for c in res.cells}
    hand_means = {}
    for cid in ("c000", "c001", "c002"):
        finals = []
        pooled = []
        for seed in (0, 1, 2):
            v, _ = per_task(rec, f"{cid}-seed{seed}")
            finals.append(v.mean())
            pooled.append(v)
        finals = np.array(finals)
        pooled = np.concatenate(pooled)
        c = cells[cid]
        assert c.finals == pytest.approx(finals.tolist())
        assert c.mean == pytest.approx(finals.mean())
        assert c.ci95 == pytest.approx(stats.t.ppf(0.975, 2) * finals.std(ddof=1) / np.sqrt(3))
        assert c.episode_mean == pytest.approx(pooled.mean())
        assert c.episode_ci95 == pytest.approx(1.96 * pooled.std(ddof=1) / np.sqrt(len(pooled)))
        assert c.n_episodes == 36
        hand_means[cid] = finals.mean()
    # ranking: higher accuracy first, best marked
    order = sorted(hand_means, key=lambda k: -hand_means[k])
    assert [c.cell_id for c in res.ranked()] == order
    assert res.best.cell_id == order[0] and sum(c.best for c in res.cells) == 1
    # pairwise: per-seed mean of per-episode differences on shared task ids, then a t-test across seeds
    raw = {}
    for a, b in (("c000", "c001"), ("c000", "c002"), ("c001", "c002")):
        d = []
        for seed in (0, 1, 2):
            va, ia = per_task(rec, f"{a}-seed{seed}")
            vb, ib = per_task(rec, f"{b}-seed{seed}")
            assert ia == ib                                    # the same seeded test episodes
            d.append(np.mean(va - vb))
        d = np.array(d)
        t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
        p = 2 * stats.t.sf(abs(t), 2)
        raw[(a, b)] = (d.mean(), t, p, d.mean() / d.std(ddof=1), stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3))
    ps = [raw[k][2] for k in raw]
    srt = np.argsort(ps)
    adj = np.empty(3)
    run = 0
    for rank, i in enumerate(srt):
        run = max(run, min(1, (3 - rank) * ps[i]))
        adj[i] = run
    for (key, (md, t, p, dz, ci)), ph in zip(raw.items(), adj):
        c = res.comparison(*key)
        assert c.paired and c.level == "seeds" and c.n == 3
        assert c.mean_diff == pytest.approx(md)
        assert c.t == pytest.approx(t) and c.p == pytest.approx(p)
        assert c.effect_size == pytest.approx(dz)
        assert c.p_holm == pytest.approx(ph)
        assert c.ci95 == pytest.approx(ci)
        flipped = res.comparison(key[1], key[0])
        assert flipped.mean_diff == pytest.approx(-md) and flipped.p_holm == pytest.approx(ph)


def test_tables_show_every_cell_with_the_shared_formatting(tmp_path):
    rec = fake_study(tmp_path)
    res = aggregate(rec)
    from workbench import format as F
    best = res.best
    md = to_markdown(res)
    assert F.metric_ci("accuracy", best.mean, best.ci95) in md
    assert md.count("| learner.name=") == 3
    tex = to_latex(res)
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and "%" not in tex.split("\n")[4].replace(r"\%", "")
    csv_text = to_csv(res).splitlines()
    assert len(csv_text) == 4 and csv_text[0].startswith("rank,best,cell_id,cell,learner.name,task.shots")
    import csv
    row = next(csv.DictReader(csv_text))
    assert row["cell_id"] == best.cell_id and float(row["mean"]) == pytest.approx(best.mean)
    assert row["best"] == "1" and row["learner.name"] == best.cell["learner.name"]
    txt = to_text(res)
    assert "1*" in txt and "Holm" in txt


def test_missing_runs_and_unpaired_cells(tmp_path):
    text = STUDY.replace('"learner.name" = ["protonet", "matching", "maml"]\n"task.shots" = [1]',
                         '"task.shots" = [1, 5]')
    rec = fake_study(tmp_path, text, missing=("c001-seed2",))
    res = aggregate(rec)
    c1 = res.cell("c001")
    assert c1.missing == ["c001-seed2"] and len(c1.finals) == 2
    comp = res.comparison("c000", "c001")
    assert not comp.paired and comp.level == "unpaired seeds"     # different shots: different test episodes
    fa = np.array(res.cell("c000").finals)
    fb = np.array(c1.finals)
    assert comp.p == pytest.approx(stats.ttest_ind(fa, fb, equal_var=False).pvalue)
    assert "1 missing" in to_text(res)


def test_sensitivity_curve_over_a_numeric_axis(tmp_path):
    text = STUDY.replace('"learner.name" = ["protonet", "matching", "maml"]\n"task.shots" = [1]',
                         '"learner.name" = ["protonet", "matching"]\n"task.queries" = [5, 10]')
    res = aggregate(fake_study(tmp_path, text))
    curves = sensitivity(res, "task.queries")
    assert [c.group for c in curves] == ["learner.name=protonet", "learner.name=matching"]
    for c in curves:
        assert c.x.tolist() == [5.0, 10.0] and c.n.tolist() == [3, 3]
        assert c.mean.tolist() == pytest.approx([res.cell(i).mean for i in c.cell_ids])
    with pytest.raises(ValueError, match="not a numeric axis"):
        sensitivity(res, "learner.name")
    with pytest.raises(ValueError, match="not an axis"):
        sensitivity(res, "task.ways")


def test_svg_figure_and_export(tmp_path):
    import xml.etree.ElementTree as ET
    from workbench.analysis.study import export_table, to_svg
    res = aggregate(fake_study(tmp_path))
    root = ET.fromstring(to_svg(res))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}circle")) == 9                   # one dot per seed's run
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert any(t.endswith(" *") and res.best.label in t for t in texts)
    assert export_table(res, tmp_path / "t.svg") == "svg" and (tmp_path / "t.svg").read_text().startswith("<svg")
    with pytest.raises(ValueError, match="must end in"):
        export_table(res, tmp_path / "t.xlsx")


def test_mse_ranks_lower_first(tmp_path):
    text = STUDY.replace('base_preset = "digits_protonet"', 'base_preset = "sinusoid_maml"').replace(
        '"learner.name" = ["protonet", "matching", "maml"]\n"task.shots" = [1]', '"learner.inner_lr" = [0.01, 0.1]')
    res = aggregate(fake_study(tmp_path, text))
    assert res.metric == "mse" and not res.higher_is_better
    assert res.best.mean == min(c.mean for c in res.cells)
    assert [c.mean for c in res.ranked()] == sorted(c.mean for c in res.cells)


def test_sensitivity_svg(tmp_path):
    import xml.etree.ElementTree as ET
    from workbench.analysis.study import sensitivity_svg
    text = STUDY.replace('"learner.name" = ["protonet", "matching", "maml"]\n"task.shots" = [1]',
                         '"learner.name" = ["protonet", "matching"]\n"task.queries" = [5, 10, 15]')
    res = aggregate(fake_study(tmp_path, text))
    root = ET.fromstring(sensitivity_svg(res, "task.queries"))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 2 and len(root.findall(f"{ns}polygon")) == 2   # 2 curves, 2 bands
    assert len(root.findall(f"{ns}circle")) == 6
    assert {"learner.name=protonet", "learner.name=matching"} <= {t.text for t in root.iter(f"{ns}text")}


def test_a_pair_left_with_one_seed_is_not_tested_on_episodes(tmp_path):
    rec = fake_study(tmp_path, missing=("c001-seed1", "c001-seed2"))
    res = aggregate(rec)
    c = res.comparison("c000", "c001")
    assert c.n == 1 and math.isnan(c.p) and math.isnan(c.p_holm) and not c.significant
    va, _ = per_task(rec, "c000-seed0")
    vb, _ = per_task(rec, "c001-seed0")
    assert c.mean_diff == pytest.approx(np.mean(va - vb))
    tested = [x for x in res.comparisons if math.isfinite(x.p_holm)]         # c001 has one seed left: only
    assert [(x.a, x.b) for x in tested] == [("c000", "c002")] and tested[0].p_holm == tested[0].p   # c000-c002
    # a single-seed study tests the per-episode differences of its one seed
    one = aggregate(fake_study(tmp_path / "one", STUDY.replace("seeds = [0, 1, 2]", "seeds = [0]")))
    c = one.comparison("c000", "c001")
    assert c.level == "episodes" and c.n == 12 and math.isfinite(c.p)
