"""Recipes (papers' training recipes with their reported figures) and the reported-vs-reproduced
gauge: every recipe reads and validates once its data path is set; a session that follows a recipe
states both figures and whether the reported one is inside its 95% CI; one that departs says which
fields differ, by their labels; ``workbench show`` prints the gauge."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import config as C
from workbench import recipes as R
from workbench import registry, store
from workbench.analysis import reported as G
from workbench.train import events as E


def test_every_recipe_reads_and_validates_with_a_data_path():
    names = R.list_recipes()
    assert len(names) >= 20
    assert R.recipe_problems() == []
    learners = {R.read_recipe(n).config.learner.name for n in names}
    for name in ("maml", "protonet", "r2d2", "relationnet", "baselinepp", "multitask"):
        assert name in learners
    for name in names:
        cfg, rep = R.load_recipe(name)
        assert cfg.data.path == ""                                   # the user completes it
        cfg.data.path = "/somewhere/omniglot"
        if cfg.learner.name in registry.learners:
            assert C.validate(cfg) == [], (name, C.validate(cfg))
        if rep is not None:
            assert rep.metric == "accuracy" and 0 < rep.value <= 1 and rep.source and rep.setting


def test_figures_quoted_from_the_papers():
    _, maml = R.load_recipe("maml_omniglot_5w1s")
    assert (maml.value, maml.ci) == (0.987, 0.004)
    _, proto = R.load_recipe("protonet_miniimagenet_5w1s")
    assert (proto.value, proto.ci) == (0.4942, 0.0078)
    _, none = R.load_recipe("r2d2_omniglot_5w1s")
    assert none is None                                              # not quoted from memory


def test_recipe_tables_never_reach_the_config_and_experiment_presets_stay_apart():
    rec = R.read_recipe("protonet_omniglot_5w1s")
    assert "recipe" not in C.to_dict(rec.config) and "reported" not in C.to_dict(rec.config)
    assert any("learning rate" in d for d in rec.deviations)
    assert rec.config.task.train_ways == 60 and rec.config.train_ways == 60 and rec.config.task.ways == 5
    assert not set(R.list_recipes()) & set(C.list_presets())         # recipes/ is not a preset folder


def test_bad_recipe_tables_say_what_is_wrong(tmp_path, monkeypatch):
    good = R.list_recipes()["maml_omniglot_5w1s"].read_text()
    (tmp_path / "bad.toml").write_text(good.replace("value = 0.987", "value = 98.7"))
    monkeypatch.setattr(R, "recipes_dir", lambda: tmp_path)
    with pytest.raises(C.ConfigError, match=r"reported.value is an accuracy and must lie in \[0, 1\]"):
        R.read_recipe("bad")
    with pytest.raises(C.ConfigError, match="no recipe named 'nope'"):
        R.read_recipe("nope")


def test_gauge_inside_and_outside_the_ci():
    cfg = R.load_recipe("maml_omniglot_5w1s")[0]
    cfg = C.replace(cfg, validate_values=False, **{"data.path": "/data/omniglot", "train.threads": 2,
                                                   "train.device": "cpu", "name": "my run"})
    inside = G.gauge(cfg, 0.985, 0.006, "accuracy", 600)
    assert inside.recipe == "maml_omniglot_5w1s" and inside.matches and inside.inside is True
    text = inside.text()
    assert "98.70% ± 0.40%" in text and "98.50% ± 0.60%" in text and "inside the run's 95% CI" in text
    outside = G.gauge(cfg, 0.950, 0.010, "accuracy", 600)
    assert outside.inside is False and "outside the run's 95% CI" in outside.text()
    assert "-3.70 pts" in outside.text()
    assert G.gauge(cfg).inside is None and "no final test yet" in G.gauge(cfg).text()


def test_gauge_names_the_fields_that_depart_from_the_recipe():
    cfg = R.load_recipe("maml_omniglot_5w1s")[0]
    cfg = C.replace(cfg, validate_values=False, **{"train.steps": 300, "learner.meta_batch": 4,
                                                   "data.path": "/x", "train.seed": 5})
    g = G.gauge(cfg, 0.985, 0.006, "accuracy", 600)
    assert not g.matches and g.inside is None
    assert {d.key for d in g.differences} == {"train.steps", "learner.meta_batch"}
    text = g.text()
    assert "Steps 300 (recipe 60000)" in text and "Tasks per meta-step 4 (recipe 32)" in text
    assert "not a reproduction" in text and "inside" not in text
    # the closest recipe of the learner and data set is chosen; other data sets have none
    mini = C.replace(cfg, validate_values=False, **{"data.dataset": "miniimagenet"})
    assert G.gauge(mini).recipe == "maml_miniimagenet_5w1s"
    assert G.gauge(C.load_preset("digits_protonet")) is None


def test_gauge_of_an_options_field_uses_its_label():
    cfg = R.load_recipe("baselinepp_miniimagenet_5w1s")[0]
    cfg = C.replace(cfg, validate_values=False, **{"baselinepp.scale": 10.0})
    g = G.gauge(cfg, 0.48, 0.01)
    assert [d.key for d in g.differences] == ["baselinepp.scale"]
    assert "Cosine scale [baselinepp] 10 (recipe 2)" in g.text()


def _crafted_session(folder, cfg, values) -> str:
    per = np.asarray(values, dtype=np.float64)
    mean, ci = float(per.mean()), float(1.96 * per.std(ddof=1) / np.sqrt(len(per)))
    n = len(per)
    test = E.Evaluation(step=cfg.train.steps, wall_time=1.0, phase="test", metric="accuracy", mean=mean, ci95=ci,
                        loss_mean=0.1, per_task=per, per_task_loss=np.full(n, 0.1),
                        task_ids=tuple(f"test-{i}" for i in range(n)), families=("a",) * n, embeddings=None)
    events = [E.RunStarted(config_toml=C.to_toml(cfg), total_steps=cfg.train.steps, start_step=0, device="cpu",
                           environment={"device": "cpu"}, split={"train": ["a"], "val": [], "test": ["b"]},
                           metric="accuracy", wall_time=0.0),
              E.StepMetrics(cfg.train.steps, 0.5, {"train/loss": 0.2}),
              test,
              E.RunFinished(cfg.train.steps, 1.0, {"metric": "accuracy", "mean": mean, "ci95": ci, "episodes": n},
                            b"", {})]
    path = store.new_session_path(cfg, folder)
    for _ in store.record(iter(events), path, cfg):
        pass
    return str(path)


def test_workbench_show_states_reported_and_reproduced(tmp_path):
    from workbench.store.cli import describe
    from workbench.store.reader import SessionReader
    cfg = C.replace(R.load_recipe("protonet_omniglot_5w1s")[0], validate_values=False,
                    **{"data.path": "/data/omniglot", "train.steps": 20000})
    values = [1.0] * 590 + [0.8] * 10                                # mean 0.99667, CI ~0.0021
    path = _crafted_session(tmp_path, cfg, values)
    with SessionReader(path) as r:
        text = describe(r)
    assert text.count("recipe    Follows recipe protonet_omniglot_5w1s") == 1
    assert "Reported 98.80% (Snell et al. 2017" in text and "outside the run's 95% CI" in text
    departed = C.replace(cfg, validate_values=False, **{"task.queries": 15})
    path2 = _crafted_session(tmp_path, departed, values)
    with SessionReader(path2) as r:
        text = describe(r)
    assert "Departs from recipe protonet_omniglot_5w1s" in text and "Queries 15 (recipe 5)" in text


def test_compare_rows_give_one_verdict_per_session(tmp_path):
    from workbench.analysis.compare import load_sessions
    cfg = C.replace(R.load_recipe("protonet_omniglot_5w1s")[0], validate_values=False,
                    **{"data.path": "/data/omniglot"})
    follows = _crafted_session(tmp_path, cfg, [1.0] * 300 + [0.96] * 300)           # mean 0.98, CI ~0.0016
    departs = _crafted_session(tmp_path, C.replace(cfg, validate_values=False, **{"train.steps": 50}),
                               [1.0] * 600)
    other = _crafted_session(tmp_path, C.load_preset("digits_protonet"), [0.5, 0.7])
    head, rows = G.compare_rows(load_sessions([follows, departs, other]))
    assert head[-1] == "verdict" and len(rows) == 3
    assert rows[0][1] == "protonet_omniglot_5w1s" and rows[0][2] == "98.80%" and rows[0][-1] == "reported outside the 95% CI"
    assert rows[1][-1] == "departs: Steps"
    assert rows[2][-1] == "no recipe for this learner and data set"
