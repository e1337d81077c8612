"""Meta-training episodes with more ways than test episodes (``task.train_ways``), for the learners
whose parameters do not depend on the ways (Snell et al. train ProtoNets 60-way, test 5-way)."""

import numpy as np
import pytest

from workbench import config as C
from workbench.data import build_sources
from workbench.data.base import DataError
from workbench.train import events as E
from workbench.train.engine import run


def protonet(**kw):
    base = {"learner.name": "protonet", "task.ways": 5, "task.shots": 1, "task.queries": 3,
            "train.steps": 12, "train.eval_every": 6, "train.val_episodes": 5, "train.log_every": 3,
            "eval.episodes": 30, "model.filters": 16}
    base.update(kw)
    return C.replace(C.default_config(), **base)


def test_train_ways_applies_to_learners_that_declare_any_ways_only():
    info = C.field_info("task.train_ways")
    for name in ("protonet", "matching", "relationnet", "r2d2"):
        cfg = protonet(**{"learner.name": name, "task.train_ways": 10})
        assert info.applies(cfg) and cfg.train_ways == 10, name
    maml = protonet(**{"learner.name": "maml", "task.train_ways": 10})
    assert not info.applies(maml) and maml.train_ways == 5             # a head of ways outputs: ignored
    assert protonet().train_ways == 5                                   # 0: the same as task.ways
    film = protonet(**{"task.train_ways": 10, "embedding.method": "set_encoder"})
    assert not info.applies(film) and film.train_ways == 5              # the set encoder is built for ways
    bad = C.replace(protonet(), validate_values=False, **{"task.train_ways": 1})
    assert [p.key for p in C.validate(bad)] == ["task.train_ways"]
    with pytest.raises(C.ConfigError, match="task.train_ways = 1: must be 0 \\(the same as Ways\\) or at least 2"):
        protonet(**{"task.train_ways": 1})


def test_training_episodes_have_train_ways_and_test_episodes_keep_ways():
    s = build_sources(protonet(**{"task.train_ways": 12}))
    rng = np.random.default_rng(0)
    train, test = s.train.sample(rng, "a"), s.test.sample(rng, "b")
    assert len(set(train.support_y.tolist())) == 12 and len(train.query_y) == 12 * 3
    assert len(set(test.support_y.tolist())) == 5 and len(test.query_y) == 5 * 3
    with pytest.raises(DataError, match=r"episodes need train_ways = 900; lower task.train_ways"):
        build_sources(protonet(**{"task.train_ways": 900}))


@pytest.mark.parametrize("name", ["protonet", "r2d2"])
def test_a_run_trains_on_more_ways_and_is_tested_on_ways(name):
    events = list(run(protonet(**{"learner.name": name, "task.train_ways": 10})))
    assert isinstance(events[-1], E.RunFinished), events[-1]
    test = [e for e in events if isinstance(e, E.Evaluation) and e.phase == "test"][-1]
    assert len(test.per_task) == 30 and test.mean > 0.2 + 0.1          # 5-way: above chance (0.2)
    # the 10-way training episodes went through meta_loss (5-way prototypes or one-hot targets would
    # have raised on labels 5-9) and training moved on
    losses = [e.metrics["train/loss"] for e in events if isinstance(e, E.StepMetrics)]
    assert len(losses) == 4 and np.isfinite(losses).all()


def test_train_ways_equal_to_ways_changes_nothing():
    a = [e for e in run(protonet()) if isinstance(e, E.Evaluation)][-1]
    b = [e for e in run(protonet(**{"task.train_ways": 5})) if isinstance(e, E.Evaluation)][-1]
    np.testing.assert_allclose(a.per_task, b.per_task)
