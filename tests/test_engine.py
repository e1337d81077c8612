import threading

import numpy as np

from workbench import config as C
from workbench.train import events as E
from workbench.train.engine import run, sample_batch
from workbench.train.evaluate import fixed_episodes, mean_ci95


def tiny(**kw):
    base = {"train.steps": 6, "train.eval_every": 3, "train.val_episodes": 5, "train.log_every": 2,
            "eval.episodes": 12}
    base.update(kw)
    return C.replace(C.default_config(), **base)


def test_event_sequence_and_plain_payloads():
    evs = list(run(tiny()))
    kinds = [type(e).__name__ for e in evs]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert kinds.count("StepMetrics") == 3
    vals = [e for e in evs if isinstance(e, E.Evaluation)]
    assert [v.phase for v in vals] == ["val", "test"]
    test = vals[-1]
    assert len(test.per_task) == 12 and len(test.task_ids) == 12 and len(test.families) == 12
    assert isinstance(test.per_task, np.ndarray) and test.embeddings.shape[0] == 12
    m, ci = mean_ci95(test.per_task)
    assert abs(m - test.mean) < 1e-12 and abs(ci - test.ci95) < 1e-12
    started = evs[0]
    assert set(started.split["test"]).isdisjoint(started.split["train"])
    # the recorded config is the config that ran, field for field (not just any TOML)
    assert C.from_toml(started.config_toml) == tiny() and started.total_steps == tiny().train.steps


def test_cancel_takes_effect_within_one_step():
    stop = threading.Event()
    seen = []
    for ev in run(tiny(**{"train.steps": 1000, "train.log_every": 1, "train.eval_every": 0}), cancel=stop.is_set):
        seen.append(ev)
        if isinstance(ev, E.StepMetrics) and ev.step == 3:
            stop.set()
    assert isinstance(seen[-1], E.RunCancelled)
    assert seen[-1].step == 3


def test_divergence_ends_with_a_failed_event_that_says_so():
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"learner.meta_lr": 10.0, "learner.inner_lr": 100.0,
                                                       "train.steps": 200, "train.eval_every": 0,
                                                       "model.hidden": [200, 200]})
    last = list(run(cfg))[-1]
    assert isinstance(last, E.RunFailed), last
    assert "diverged" in last.message and "lower" in last.message


def test_fixed_test_episodes_are_the_same_everywhere():
    from workbench.data import build_sources
    s1 = build_sources(tiny())
    a = [t.task_id + str(t.classes) + str(float(t.query_x.sum())) for t in fixed_episodes(s1.test, 5, 99)]
    b = [t.task_id + str(t.classes) + str(float(t.query_x.sum())) for t in fixed_episodes(s1.test, 5, 99)]
    c = [t.task_id + str(t.classes) + str(float(t.query_x.sum())) for t in fixed_episodes(s1.test, 5, 98)]
    assert a == b and a != c


def test_meta_batches_are_a_pure_function_of_seed_and_step_and_split_across_ranks():
    from workbench.data import build_sources
    src = build_sources(tiny()).train
    full = sample_batch(src, 0, 5, 4)
    halves = sample_batch(src, 0, 5, 4, rank=0, world=2) + sample_batch(src, 0, 5, 4, rank=1, world=2)
    key = lambda t: (t.classes, float(t.support_x.sum()))  # noqa: E731
    assert sorted(map(key, full)) == sorted(map(key, halves))
    assert [key(t) for t in sample_batch(src, 0, 5, 4)] == [key(t) for t in full]
