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


class Learner(nn.Module):
    name = "learner"
    uses_gradient_inner_loop = False

    def __init__(self, backbone: nn.Module, cfg, kind: str):
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg              # the LearnerConfig
        self.kind = kind            # "classification" | "regression"
        self.strategy = "loop"      # "loop" | "vmap", set by the engine

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
