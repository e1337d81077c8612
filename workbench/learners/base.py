"""The shape every meta-learner shares.

A learner is an ``nn.Module`` holding everything that is meta-learned. Its
public face:

- ``meta_loss(batch)``: the mean query loss over a meta-batch of tasks after
  adapting on each support set, plus metrics (a differentiable scalar);
- ``train_step(batch, optimizer)``: one meta-update (default: backward the
  meta-loss, step); learners whose update is not a gradient (Reptile) override it;
- ``adapt(support_x, support_y)``: test-time adaptation, returns a state;
- ``predict(state, x)``: outputs for new inputs under an adapted state;
- ``features(x)``: the backbone's features (task embeddings use them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workbench.data.base import Task, TaskBatch


def task_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "regression":
        return F.mse_loss(out, y)
    return F.cross_entropy(out, y)


def task_metric(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy for classification, MSE for regression (no grad)."""
    with torch.no_grad():
        if kind == "regression":
            return F.mse_loss(out, y)
        return (out.argmax(-1) == y).float().mean()


@dataclass(frozen=True)
class Setting:
    """What a learner is built for, besides its config: the task kind, ways (1 for regression),
    the input shape and how many classes meta-training has."""

    kind: str                   # "classification" | "regression"
    ways: int
    input_shape: tuple
    n_train_classes: int = 0


class Learner(nn.Module):
    """Base of every learner. What a learner *is* (inner loop, second order, head size, ...) is
    declared in its :class:`workbench.registry.LearnerSpec`, not here; ``build_learner`` sets
    ``self.spec``. Every subclass keeps the constructor ``(backbone, cfg, setting)``."""

    name = "learner"

    def __init__(self, backbone: nn.Module, cfg, setting: Setting):
        super().__init__()
        self.backbone = backbone
        self.config = cfg           # the ExperimentConfig
        self.cfg = cfg.learner      # its learner section, read most often
        self.setting = setting
        self.kind = setting.kind    # "classification" | "regression"
        self.ways = setting.ways
        # meta-training episodes' ways: task.train_ways for learners that declare any_ways (their
        # meta_loss sees those episodes; adapt, predict and evaluate_task see test episodes of ways)
        self.train_ways = cfg.train_ways if self.kind == "classification" else self.ways
        self.strategy = "loop"      # "loop" | "vmap", set by the engine
        from workbench import registry
        self.spec = registry.learners.get(cfg.learner.name)
        # the learner's own options section ([<name>] in the config), when it declares one
        self.options = cfg.section(self.spec.name) if self.spec.options is not None else None

    @property
    def uses_gradient_inner_loop(self) -> bool:
        return self.spec.inner_loop

    # -- to implement -------------------------------------------------------
    def meta_loss(self, batch: TaskBatch) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int | None = None,
              lr: float | None = None):
        raise NotImplementedError

    def predict(self, state, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.trunk(x)

    def train_step(self, batch: TaskBatch, optimizer: torch.optim.Optimizer) -> dict:
        optimizer.zero_grad(set_to_none=True)
        loss, metrics = self.meta_loss(batch)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), **metrics}

    def evaluate_task(self, task: Task) -> tuple[float, float]:
        """(query loss, query metric) after adapting on the task's support set."""
        state = self.adapt(task.support_x, task.support_y)
        with torch.no_grad():
            out = self.predict(state, task.query_x)
            return float(task_loss(self.kind, out, task.query_y)), float(task_metric(self.kind, out, task.query_y))

    def metric_name(self) -> str:
        return "mse" if self.kind == "regression" else "accuracy"

    def mean_over_tasks(self, one, batch: TaskBatch) -> tuple[torch.Tensor, dict]:
        """The meta-loss of ``batch`` and its metrics: ``one(sx, sy, qx, qy) -> (loss, metric)`` mapped
        over the tasks (:func:`map_tasks`, by this learner's strategy) and averaged."""
        losses, metrics = map_tasks(one, batch, self.strategy)
        return losses.mean(), {self.metric_name(): metrics.mean()}

    def test_inner(self, steps: int | None, lr: float | None) -> tuple[int, float]:
        """``(steps, lr)`` of test-time adaptation: the arguments, or the config's test inner steps and rate."""
        return (self.cfg.test_inner_steps if steps is None else steps,
                self.cfg.test_inner_lr if lr is None else lr)


def map_tasks(fn, batch: TaskBatch, strategy: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``fn(sx, sy, qx, qy) -> (loss, metric)`` to every task of a meta-batch.

    ``vmap`` runs the tasks together with :func:`torch.func.vmap`; ``loop`` runs
    them one after another. Both return the per-task (losses, metrics), (B,).
    """
    if strategy == "vmap":
        return torch.func.vmap(fn, randomness="different")(batch.support_x, batch.support_y, batch.query_x,
                                                           batch.query_y)
    losses, metrics = [], []
    for i in range(len(batch)):
        l, m = fn(batch.support_x[i], batch.support_y[i], batch.query_x[i], batch.query_y[i])
        losses.append(l)
        metrics.append(m)
    return torch.stack(losses), torch.stack(metrics)
