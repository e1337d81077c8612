"""Study definitions: TOML round trip, the plan (product of axes x seeds, one eval seed), searches, and one
clear message for each kind of bad definition."""

from __future__ import annotations

import pytest

from workbench import config as C
from workbench.study import (StudyDefinition, StudyError, count_runs, load_study, needs_confirmation, plan,
                             study_from_toml, study_to_toml, validate_study)
from workbench.study.definition import SearchRange, SearchSpec
from workbench.study.presets import list_study_presets, load_study_preset

BASE = """
[base]
base_preset = "digits_protonet"
[base.train]
steps = 10
eval_every = 0
[base.eval]
episodes = 20
"""


def study(body: str, base: str = BASE) -> str:
    return body + base


def problems_of(text: str) -> list:
    """Every problem of a study text: structural ones from reading it, value ones from validate_study."""
    try:
        d = study_from_toml(text)
    except StudyError as e:
        return e.items
    return validate_study(d)


def one_problem(text: str, key: str) -> str:
    ps = problems_of(text)
    assert len(ps) == 1, [p.message for p in ps]
    assert ps[0].key == key, ps[0]
    assert "Traceback" not in ps[0].message
    return ps[0].message


def test_plan_is_the_product_of_axes_times_seeds_with_one_eval_seed():
    d = study_from_toml(study('[study]\nname = "p"\nseeds = [3, 4, 5]\n[study.grid]\n'
                              '"learner.name" = ["protonet", "matching"]\n"task.shots" = [1, 5]\n'))
    runs = plan(d)
    assert len(runs) == count_runs(d) == 2 * 2 * 3
    combos = {(r.config.learner.name, r.config.task.shots, r.config.train.seed) for r in runs}
    assert combos == {(n, k, s) for n in ("protonet", "matching") for k in (1, 5) for s in (3, 4, 5)}
    assert {r.config.eval.seed for r in runs} == {1234}        # every run on the same test episodes
    assert len({r.run_id for r in runs}) == 12 and len({r.cell_id for r in runs}) == 4
    assert runs[0].overrides == {"learner.name": "protonet", "task.shots": 1, "train.seed": 3}
    assert runs[0].config.train.steps == 10                      # the base reaches every run
    # last axis fastest, seeds innermost
    assert [(r.cell["learner.name"], r.cell["task.shots"], r.seed) for r in runs[:4]] == [
        ("protonet", 1, 3), ("protonet", 1, 4), ("protonet", 1, 5), ("protonet", 5, 3)]


def test_toml_round_trip_keeps_the_plan():
    text = study('[study]\nname = "rt"\nseeds = [0, 1]\n[study.grid]\n"learner.name" = ["maml", "anil"]\n'
                 '[study.search]\ntrials = 3\nseed = 7\n[study.search.space]\n'
                 '"learner.inner_lr" = { log_uniform = [0.01, 1.0] }\n"learner.inner_steps" = { int = [1, 3] }\n')
    d = study_from_toml(text)
    d2 = study_from_toml(study_to_toml(d))
    a, b = plan(d), plan(d2)
    assert [(r.run_id, r.overrides) for r in a] == [(r.run_id, r.overrides) for r in b]
    assert C.to_toml(a[5].config) == C.to_toml(b[5].config)


def test_search_points_are_seeded_in_range_and_crossed_with_the_grid():
    space = {"learner.inner_lr": SearchRange("log_uniform", 0.001, 1.0), "learner.meta_lr": SearchRange("uniform", 1e-4, 1e-2),
             "learner.inner_steps": SearchRange("int", 1, 5), "model.norm": SearchRange("choice", choices=("batch", "none"))}
    for method in ("sobol", "random"):
        s = SearchSpec(space, trials=16, seed=3, method=method)
        pts = s.points()
        assert pts == SearchSpec(space, trials=16, seed=3, method=method).points()
        assert pts != SearchSpec(space, trials=16, seed=4, method=method).points()
        assert len(pts) == 16
        for p in pts:
            assert 0.001 <= p["learner.inner_lr"] <= 1.0 and 1e-4 <= p["learner.meta_lr"] <= 1e-2
            assert p["learner.inner_steps"] in range(1, 6) and p["model.norm"] in ("batch", "none")
        # log-uniform: about half of the points below the geometric middle (0.0316)
        below = sum(p["learner.inner_lr"] < 0.001 ** 0.5 for p in pts)
        assert 4 <= below <= 12
        if method == "sobol":       # a low-discrepancy sequence covers every integer of the range
            assert {p["learner.inner_steps"] for p in pts} == {1, 2, 3, 4, 5}
    base = C.load_preset("digits_protonet")
    d = StudyDefinition("s", C.replace(base, **{"learner.name": "maml"}), seeds=[0], grid={"task.shots": [1, 5]},
                        search=SearchSpec({"learner.inner_lr": space["learner.inner_lr"]}, trials=3, seed=0))
    assert validate_study(d) == []
    runs = plan(d)
    assert len(runs) == 2 * 3
    assert [r.cell["task.shots"] for r in runs] == [1, 1, 1, 5, 5, 5]
    assert [r.cell["learner.inner_lr"] for r in runs[:3]] == [r.cell["learner.inner_lr"] for r in runs[3:]]


def test_unknown_key_with_did_you_mean():
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"learner.inerr_lr" = [0.1]\n'),
                    "study.grid.learner.inerr_lr")
    assert "not a config field" in m and "did you mean 'learner.inner_lr'" in m
    m = one_problem(study('[study]\nname = "x"\nseedz = [0]\n'), "study.seedz")
    assert "unknown" in m and "did you mean 'seeds'" in m
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n[study.search]\ntrails = 3\n[study.search.space]\n'
                          '"learner.meta_lr" = { uniform = [0.001, 0.01] }\n'), "study.search.trails")
    assert "did you mean 'trials'" in m
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n', BASE + "[base.learner]\ninner_lrr = 0.1\n"),
                    "base.learner.inner_lrr")
    assert "did you mean learner.inner_lr" in m


def test_empty_axis():
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"task.shots" = []\n'), "study.grid.task.shots")
    assert "is empty" in m


def test_axis_on_a_field_the_run_ignores():
    # digits_protonet: ProtoNet has no inner loop, so learner.inner_lr changes nothing
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"learner.inner_lr" = [0.1, 0.4]\n'),
                    "study.grid.learner.inner_lr")
    assert "ignore" in m and "protonet" in m
    # ...but with a MAML cell in the study it is used
    assert problems_of(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"learner.name" = ["protonet", "maml"]\n'
                             '"learner.inner_lr" = [0.1, 0.4]\n')) == []


def test_value_out_of_range_and_cross_field_problems():
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"task.ways" = [3, 500]\n'), "study.grid.task.ways")
    assert "at most 100" in m and "500" in m
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"learner.name" = ["protonet", "maml"]\n',
                          BASE.replace('"digits_protonet"', '"sinusoid_maml"')), "study.grid.learner.name")
    assert "cannot do regression" in m
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"learner.name" = ["protonet", "mammal"]\n'),
                    "study.grid.learner.name")
    assert "did you mean 'maml'" in m


def test_seeds_given_twice_and_bad_seeds():
    m = one_problem(study('[study]\nname = "x"\nseeds = [0, 1]\n[study.grid]\n"train.seed" = [0, 1]\n'), "study.grid.train.seed")
    assert "study.seeds" in m
    m = one_problem(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"eval.seed" = [1, 2]\n'), "study.grid.eval.seed")
    assert "same episodes" in m
    assert "at least one seed" in one_problem(study('[study]\nname = "x"\nseeds = []\n'), "study.seeds")
    assert "at most once" in one_problem(study('[study]\nname = "x"\nseeds = [1, 1]\n'), "study.seeds")
    assert "whole number" in one_problem(study('[study]\nname = "x"\nseeds = [0.5]\n'), "study.seeds")


def test_bad_search_ranges():
    def space(line):
        return study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"learner.name" = ["maml"]\n'
                     f'[study.search]\ntrials = 2\n[study.search.space]\n{line}\n')
    assert "low must be below high" in one_problem(space('"learner.meta_lr" = { uniform = [0.1, 0.01] }'),
                                                   "study.search.space.learner.meta_lr")
    assert "above 0" in one_problem(space('"learner.meta_lr" = { log_uniform = [0, 0.01] }'),
                                    "study.search.space.learner.meta_lr")
    assert "did you mean 'log_uniform'" in one_problem(space('"learner.meta_lr" = { loguniform = [0.001, 0.01] }'),
                                                       "study.search.space.learner.meta_lr")
    assert "int = [low, high]" in one_problem(space('"learner.inner_steps" = { uniform = [1, 5] }'),
                                              "study.search.space.learner.inner_steps")
    assert "choice" in one_problem(space('"model.norm" = { uniform = [1, 5] }'), "study.search.space.model.norm")
    assert "both a grid axis" in one_problem(space('"learner.name" = { choice = ["maml", "anil"] }'),
                                             "study.search.space.learner.name")


def test_thousands_of_runs_need_a_confirmation():
    text = study('[study]\nname = "big"\nseeds = [0, 1, 2, 3, 4]\n[study.grid]\n"task.shots" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n'
                 '"task.queries" = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]\n')
    d = study_from_toml(text)
    assert count_runs(d) == 500
    m = one_problem(text, "study.max_runs")
    assert "500 runs" in m and "200" in m and "--yes" in m
    assert needs_confirmation(d) == m.split(": ", 1)[1]
    assert validate_study(d, confirmed=True) == []
    assert len(plan(d)) == 500          # confirmed, it plans


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        load_study(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = ", encoding="utf-8")
    with pytest.raises(StudyError, match="not valid TOML"):
        load_study(bad)
    m = one_problem("[study]\nname = 'x'\nseeds = [0]\n[base]\nbase_preset = 'digits_protonetz'\n", "base")
    assert "did you mean 'digits_protonet'" in m
    assert "missing" in one_problem("[base]\n", "study")


def test_validate_accepts_a_dict():
    import tomllib
    d = tomllib.loads(study('[study]\nname = "x"\nseeds = [0]\n[study.grid]\n"task.shots" = []\n'))
    ps = validate_study(d)
    assert [p.key for p in ps] == ["study.grid.task.shots"]


def test_presets_ship_and_validate():
    names = list_study_presets()
    assert {"digits_every_learner_3_seeds", "sinusoid_maml_inner_lr_x_steps"} <= set(names)
    from workbench import registry
    for name in names:
        d = load_study_preset(name)
        assert validate_study(d) == [], name
        assert count_runs(d) <= d.max_runs
    d = load_study_preset("digits_every_learner_3_seeds")
    learners = d.grid["learner.name"]
    assert all(n in registry.learners for n in learners) and len(set(learners)) == len(learners)
    assert d.seeds == [0, 1, 2]
    builtin = [n for n, sp in registry.learners.all().items() if sp.origin == "workbench"]
    missing = sorted(set(builtin) - set(learners))
    assert not missing, (f"the preset promises every built-in learner; add {missing} to "
                         "resources/presets/studies/digits_every_learner_3_seeds.toml (and rerun docs/studies.md)")
    with pytest.raises(StudyError, match="did you mean"):
        load_study_preset("digits_every_learner_3_seed")
