"""The field's evaluation protocol.

A fixed, seeded set of episodes (600 for the final test by default): episode i
of a split under seed s is always the same task (``episode_rng(s, i, salt)``),
so two sessions evaluated with the same seed saw the same tasks and can be
compared pair by pair. The result is the mean metric with a 95% confidence
interval, 1.96 * std / sqrt(n), and every per-episode value is kept.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from workbench.protocol import mean_ci95
from workbench.data.base import episode_rng
from workbench.train.events import Evaluation

SALT = {"train": 0, "val": 1, "test": 2}


def fixed_episodes(source, n: int, seed: int):
    """Yield the ``n`` fixed episodes of ``source`` under ``seed``."""
    salt = SALT.get(source.name, 3)
    for i in range(n):
        yield source.sample(episode_rng(seed, i, salt), task_id=f"{source.name}-{seed}-{i:05d}")


class Cancelled(Exception):
    pass


def evaluate(learner, source, n: int, seed: int, device, *, phase: str, step: int, t0: float,
             embedder: Callable | None = None, cancel: Callable[[], bool] | None = None,
             progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Adapt on and score ``n`` fixed episodes of ``source``; raise Cancelled if asked to stop."""
    losses, metrics, ids, fams, embs = [], [], [], [], []
    was_training = learner.training
    learner.eval()
    try:
        for i, task in enumerate(fixed_episodes(source, n, seed)):
            if cancel is not None and cancel():
                raise Cancelled()
            task = task.to(device)
            loss, metric = learner.evaluate_task(task)
            losses.append(loss)
            metrics.append(metric)
            ids.append(task.task_id)
            fams.append(task.family)
            if embedder is not None:
                embs.append(embedder(task))
            if progress is not None:
                progress(i + 1, n)
    finally:
        learner.train(was_training)
    mean, ci = mean_ci95(metrics)
    emb = np.stack(embs).astype(np.float32) if embs and embs[0] is not None else None
    return Evaluation(step=step, wall_time=time.perf_counter() - t0, phase=phase, metric=learner.metric_name(),
                      mean=mean, ci95=ci, loss_mean=float(np.mean(losses)),
                      per_task=np.asarray(metrics, dtype=np.float64), per_task_loss=np.asarray(losses),
                      task_ids=tuple(ids), families=tuple(fams), embeddings=emb,
                      embedding_method=getattr(embedder, "method", "none") if embedder else "none")
