"""A stand-in for the engine that yields realistic events without training anything.

For tests, benchmarks and the golden-file script of the session store (and for
GUI tests that need a session quickly): ``fake_run(cfg, steps=50)`` yields
RunStarted, StepMetrics every ``log_every`` steps, validation and test
Evaluations with embeddings, Checkpoints, and a terminal event, all from a
seeded random generator (so the same arguments give the same events).
``delay`` sleeps between steps to imitate a slow run.
"""

from __future__ import annotations

import time

import numpy as np

from workbench import config as C
from workbench.train import events as E


def fake_evaluation(rng, step: int, phase: str, metric: str, n: int, dim: int, wall: float) -> E.Evaluation:
    fams = ("sine", "line", "quadratic")
    per = rng.uniform(0.2, 1.0, n) if metric == "accuracy" else rng.gamma(2.0, 0.5, n)
    loss = rng.gamma(2.0, 0.5, n)
    emb = rng.normal(size=(n, dim)).astype(np.float32) if dim else None
    return E.Evaluation(step=step, wall_time=wall, phase=phase, metric=metric, mean=float(per.mean()),
                        ci95=float(1.96 * per.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
                        loss_mean=float(loss.mean()), per_task=per, per_task_loss=loss,
                        task_ids=tuple(f"{phase}-{step}-{i:05d}" for i in range(n)),
                        families=tuple(fams[i % len(fams)] for i in range(n)), embeddings=emb,
                        embedding_method="prototype" if dim else "none")


def fake_run(cfg: C.ExperimentConfig, *, steps: int | None = None, seed: int = 0, delay: float = 0.0,
             val_tasks: int = 8, test_tasks: int = 12, dim: int = 6, end: str = "finished", start_step: int = 0,
             checkpoint: bytes = b"\x00checkpoint"):
    """Yield the events of a pretend run of ``cfg`` (``end``: finished, failed or cancelled)."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    total = steps if steps is not None else cfg.train.steps
    metric = "mse" if cfg.is_regression else "accuracy"
    wall = lambda: time.perf_counter() - t0   # noqa: E731
    yield E.RunStarted(config_toml=C.to_toml(cfg), total_steps=total, start_step=start_step, device="cpu",
                       environment={"program": "workbench", "torch": "n/a", "device": "cpu",
                                    "seed": cfg.train.seed}, split={"train": ["a"], "val": ["b"], "test": ["c"]},
                       metric=metric, wall_time=wall())
    yield E.Log("info", "fake run started", wall())
    log_every, eval_every = cfg.train.log_every, cfg.train.eval_every
    for step in range(start_step + 1, total + 1):
        if delay:
            time.sleep(delay)
        if step % log_every == 0 or step == total:
            yield E.StepMetrics(step, wall(), {"train/loss": float(np.exp(-step / 50) + 0.01 * rng.random()),
                                               f"train/{metric}": float(rng.random())})
        if eval_every and step % eval_every == 0 and step < total:
            yield fake_evaluation(rng, step, "val", metric, val_tasks, dim, wall())
        if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0 and step < total:
            yield E.Checkpoint(step, wall(), checkpoint)
        if end == "cancelled" and step == total:
            yield E.RunCancelled(step, wall())
            return
        if end == "failed" and step == total:
            yield E.RunFailed(step, wall(), "the meta-training loss became nan at step %d: the run diverged" % step,
                              "Traceback: (fake)")
            return
    yield E.Checkpoint(total, wall(), checkpoint)
    test = fake_evaluation(rng, total, "test", metric, test_tasks, dim, wall())
    yield test
    yield E.RunFinished(total, wall(), {"metric": metric, "mean": test.mean, "ci95": test.ci95,
                                        "episodes": test_tasks}, b"", {})
