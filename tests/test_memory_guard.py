"""The memory guardrail (workbench/train/memory.py): a probe of one task before training, scaled by
the meta-batch; a run that cannot fit ends before its first step with what to change; after a CUDA
out-of-memory error the session keeps what was recorded, the last weights included."""

from __future__ import annotations

import numpy as np
import torch

from workbench import config as C
from workbench.data.base import TaskBatch
from workbench.learners import build_learner
from workbench.store.reader import SessionReader
from workbench.store.writer import record
from workbench.train import engine, memory
from workbench.train import events as E

from test_strategies import image_batch, image_cfg


def tiny_conv(**kw):
    base = {"model.backbone": "conv4", "model.filters": 4, "model.norm": "batch", "task.ways": 3,
            "task.shots": 1, "task.queries": 2, "learner.meta_batch": 4, "learner.inner_steps": 1,
            "train.steps": 4, "train.eval_every": 0, "train.log_every": 1, "eval.episodes": 3,
            "train.threads": 1}
    base.update(kw)
    return C.replace(C.default_config(), **base)


def test_run_that_cannot_fit_fails_before_training_with_advice():
    events = engine.run_to_end(tiny_conv(**{"learner.name": "maml", "train.memory_limit_mb": 1,
                                            "model.filters": 32}))
    assert not any(isinstance(e, E.StepMetrics) for e in events)
    failed = events[-1]
    assert isinstance(failed, E.RunFailed) and "\n" not in failed.message
    assert "meta-step needs about" in failed.message and "train.memory_limit_mb" in failed.message
    assert "learner.first_order = true" in failed.message and "learner.checkpoint_inner" in failed.message


def test_run_that_fits_trains_without_a_memory_message():
    events = engine.run_to_end(tiny_conv(**{"learner.name": "fomaml", "train.memory_limit_mb": 100_000}))
    assert isinstance(events[-1], E.RunFinished)
    assert not any(isinstance(e, E.Log) and "meta-step needs" in e.message for e in events)


def test_estimate_scales_with_what_the_strategy_keeps_alive_and_leaves_no_trace():
    cfg = image_cfg("maml")
    torch.manual_seed(0)
    learner = build_learner(cfg, (1, 12, 12))
    batch = image_batch(1, 3, 2, 2)
    before = {n: p.detach().clone() for n, p in learner.named_parameters()}
    rng = torch.random.get_rng_state()
    learner.strategy = "loop"
    pertask = memory.estimate(learner, batch, torch.device("cpu"), 8, 1)
    whole = memory.estimate(learner, batch, torch.device("cpu"), 8, None)
    assert pertask.per_task > 0 and pertask.peak == pertask.per_task
    assert whole.tasks_alive == 8 and whole.peak > 4 * pertask.peak
    learner.strategy = "vmap"
    assert memory.tasks_alive("vmap", None, 8) == memory.VMAP_FACTOR * 8
    assert learner.strategy == "vmap"                   # the probe restores the strategy, weights, RNG
    assert all(p.grad is None for p in learner.parameters())
    assert all(torch.equal(p, before[n]) for n, p in learner.named_parameters())
    assert torch.equal(torch.random.get_rng_state(), rng)
    # a meta-batch that scales gets a size that fits; a per-task loop that does not fit does not
    tight = memory.MemoryEstimate(1000, 8.0, 8000, 3000, True, "train.memory_limit_mb", "loop")
    assert "learner.meta_batch = 3 or less" in memory.advice(tight, C.replace(cfg, **{"learner.meta_batch": 8}))
    one = memory.MemoryEstimate(1000, 1.0, 1000, 500, True, "train.memory_limit_mb", "loop")
    assert "meta_batch" not in memory.advice(one, cfg)


def test_cuda_out_of_memory_keeps_the_recorded_session(tmp_path, monkeypatch):
    cfg = tiny_conv(**{"learner.name": "fomaml", "train.steps": 6})
    real, calls = engine.accumulated_train_step, []

    def running_out(*a, **kw):
        calls.append(1)
        if len(calls) == 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*a, **kw)

    monkeypatch.setattr(engine, "accumulated_train_step", running_out)
    path = tmp_path / "oom.h5"
    events = list(record(engine.run(cfg), path, cfg, projection="none"))
    assert isinstance(events[-1], E.RunFailed) and "out of memory" in events[-1].message
    with SessionReader(path) as r:
        assert r.status == "failed" and "out of memory" in r.failure_message
        steps, _, _ = r.metric("train/loss")
        assert list(np.asarray(steps)) == [1, 2, 3]
        step, data = r.checkpoint_bytes()
        assert step == 3
    state = engine.load_checkpoint(data)
    learner = build_learner(cfg, (1, 28, 28), 0)
    assert state["step"] == 3 and set(state["model"]) == set(learner.state_dict())


def test_probe_on_a_one_task_batch_is_the_first_training_task():
    cfg = tiny_conv()
    from workbench.data import build_sources
    sources = build_sources(cfg)
    one = TaskBatch.stack(engine.sample_batch(sources.train, cfg.train.seed, 0, 1))
    first = TaskBatch.stack(engine.sample_batch(sources.train, cfg.train.seed, 0, cfg.learner.meta_batch))
    assert torch.equal(one.support_x[0], first.support_x[0])


def test_a_failing_probe_leaves_the_verdict_to_the_first_step(monkeypatch):
    """The probe never fails a run by itself (an error in the meta-step is reported by the step, in
    the engine's usual way; under torchrun the probe is skipped so ranks stay in lock-step)."""
    def broken(*a, **kw):
        raise RuntimeError("shape mismatch in a plugin learner")
    monkeypatch.setattr(memory, "estimate", broken)
    cfg = tiny_conv(**{"learner.name": "fomaml", "train.memory_limit_mb": 1})
    assert memory.check(cfg, None, None, torch.device("cpu"), 1) is None
    assert isinstance(engine.run_to_end(cfg)[-1], E.RunFinished)
