"""Same config, same seed, same CPU: the same curve and the same per-task evaluation, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import config as C
from workbench.train.engine import run_to_end
from workbench.train.events import Evaluation, RunFailed, StepMetrics




def _run(name: str, seed: int, **changes):
    cfg = C.replace(C.load_preset("digits_protonet"),
                    **{"learner.name": name, "train.steps": 12, "train.log_every": 3, "train.eval_every": 6,
                       "train.val_episodes": 10, "eval.episodes": 20, "train.seed": seed, **changes})
    events = run_to_end(cfg)
    failed = [e for e in events if isinstance(e, RunFailed)]
    assert not failed, failed[0].message
    steps = [(e.step, e.metrics) for e in events if isinstance(e, StepMetrics)]
    evals = [e for e in events if isinstance(e, Evaluation)]
    return steps, evals


@pytest.mark.parametrize("name, changes", [
    ("maml", {}),                                         # second order through batch norm: loop strategy
    ("reptile", {"learner.inner_steps": 2}),              # vmap strategy, update outside autograd
    ("matching", {"learner.matching_fce": True, "model.hidden": [16]}),
])
def test_same_seed_same_run(name, changes):
    steps_a, evals_a = _run(name, 3, **changes)
    steps_b, evals_b = _run(name, 3, **changes)
    assert len(steps_a) == 4 and steps_a == steps_b                # every StepMetrics value identical
    assert [e.phase for e in evals_a] == ["val", "test"]
    for a, b in zip(evals_a, evals_b, strict=True):
        assert a.task_ids == b.task_ids
        np.testing.assert_array_equal(a.per_task, b.per_task)
        np.testing.assert_array_equal(a.per_task_loss, b.per_task_loss)
        assert (a.mean, a.ci95) == (b.mean, b.ci95)
    # and the seed matters: another seed gives another curve
    steps_c, _ = _run(name, 4, **changes)
    assert steps_c != steps_a
