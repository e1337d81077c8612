"""Fisher-information task embedding in the spirit of Task2Vec (Achille et al., ICCV 2019).

Task2Vec (sec. 3) embeds a task by the diagonal Fisher information of a fixed
probe network's weights w on the task's data:

    F = E_{x ~ task} E_{y ~ p_w(y|x)} [ (d log p_w(y|x) / dw)^2 ]        (diagonal)

here with:

- probe: the learner's backbone trunk as it is (meta-learned, frozen), with a
  task-specific linear head fitted on the support set (Task2Vec, sec. 3.1: only
  the classifier is re-trained on the task). Regression: ridge regression in
  closed form. Classification: the head starts at the prototype classifier
  (w_k = 2 c_k, b_k = -|c_k|^2, Snell et al. 2017, eq. 3 as a linear layer)
  and takes a few gradient steps on the support cross-entropy;
- y drawn from the model's predictive distribution (the true Fisher, not the
  "empirical" Fisher of the given labels), with the expectation over y taken
  exactly: for classification F = sum_x sum_k p_k(x) (d log p_k(x)/dw)^2; for
  regression under a Gaussian likelihood N(y; f_w(x), s^2) it is
  E_y[(y - f)^2 / s^4] (df/dw)^2 = (df/dw)^2 / s^2 with s = 1 (a constant,
  removed by the normalisation);
- the Fisher of the trunk's weights only (the fitted head's size depends on
  the number of ways), averaged per filter / unit: per output channel of each
  conv layer, per output unit of each linear layer, per channel of each
  normalisation layer (Task2Vec, sec. 3.2, "averaged over filters");
- normalised: divided by its L2 norm, so embeddings compare by direction
  (Task2Vec compares with a cosine distance) and the size is fixed for any
  number of shots or ways.

The per-example gradients are batched (``torch.autograd.grad`` with
``is_grads_batched``), so batch statistics of the trunk's normalisation still
see the whole support set, as in training.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def unit_groups(trunk: nn.Module) -> "OrderedDict[str, int]":
    """Name of every trunk parameter -> its number of units (output channels / units / channels)."""
    return OrderedDict((n, p.shape[0]) for n, p in trunk.named_parameters())


def per_unit_mean(fisher: dict) -> torch.Tensor:
    """Average each parameter's Fisher over everything but its output axis, then concatenate."""
    return torch.cat([f.reshape(f.shape[0], -1).mean(1) for f in fisher.values()])


def fit_head(z: torch.Tensor, y: torch.Tensor, kind: str, ways: int, steps: int = 20, lr: float = 0.5,
             ridge: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear head (W, b) on support features z: ridge regression, or prototype-initialised softmax."""
    z = z.detach()
    if kind == "regression":
        y = y.reshape(len(z), -1).to(z.dtype)
        za = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype, device=z.device)], 1)
        a = za.t() @ za + ridge * torch.eye(za.shape[1], dtype=z.dtype, device=z.device)
        wb = torch.linalg.solve(a, za.t() @ y)              # (d+1, out)
        return wb[:-1].t().contiguous(), wb[-1].contiguous()
    onehot = F.one_hot(y.long(), ways).to(z.dtype)
    protos = (onehot.t() @ z) / onehot.sum(0).clamp_min(1).unsqueeze(1)
    sq = max(float(z.pow(2).sum(1).mean()), 1e-8)            # keeps logits of order one, preconditions steps
    w = (2 * protos / sq).requires_grad_()
    b = (-(protos * protos).sum(1) / sq).requires_grad_()
    with torch.enable_grad():
        for _ in range(steps):
            gw, gb = torch.autograd.grad(F.cross_entropy(z @ w.t() + b, y.long()), [w, b])
            with torch.no_grad():
                w -= lr * gw / sq
                b -= lr * gb
    return w.detach(), b.detach()


def fisher_embedding(trunk: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, ways: int) -> torch.Tensor:
    """The normalised, per-unit-averaged diagonal Fisher of ``trunk``'s weights on (x, y)."""
    params = [p for p in trunk.parameters()]
    with torch.enable_grad():
        z = trunk(x)
        w, b = fit_head(z, y, kind, ways)
        out = z @ w.t() + b                                        # (n, outputs)
        n = len(x)
        if kind == "regression":
            scores = out.reshape(n, -1).sum(1)                     # f(x_i); Fisher = (df/dw)^2 / s^2
            weights = torch.ones(n, dtype=out.dtype, device=out.device)
        else:
            logp = F.log_softmax(out, dim=1)
            scores = logp.reshape(-1)                              # log p_k(x_i), k = 1..ways
            weights = logp.detach().exp().reshape(-1)              # p_k(x_i): exact expectation over y
        eye = torch.eye(len(scores), dtype=scores.dtype, device=scores.device)
        grads = torch.autograd.grad(scores, params, grad_outputs=eye, is_grads_batched=True,
                                    allow_unused=True)
    fisher = OrderedDict()
    for (name, p), g in zip(trunk.named_parameters(), grads):
        if g is None:
            g = torch.zeros((len(scores),) + p.shape, dtype=p.dtype, device=p.device)
        fisher[name] = (weights.reshape((-1,) + (1,) * p.dim()) * g * g).sum(0) / n
    e = per_unit_mean(fisher)
    return e / e.norm().clamp_min(1e-12)


class FisherEmbedder:
    """Task2Vec-style embedding of a task: see the module docstring. Deterministic for a given task."""

    method = "fisher"

    def __init__(self, cfg, learner):
        self.learner = learner
        self.kind = learner.kind
        self.ways = 1 if self.kind == "regression" else cfg.task.ways
        trunk = getattr(getattr(learner, "backbone", None), "trunk", None)
        if trunk is None:
            raise ValueError(f"embedding.method = 'fisher' needs a learner with a backbone trunk as the probe "
                             f"network; {type(learner).__name__} has none")
        self.trunk = trunk
        self.dim = sum(unit_groups(trunk).values())

    def __call__(self, task) -> np.ndarray:
        y = task.support_y
        ways = self.ways if self.kind == "regression" else max(self.ways, int(y.max()) + 1)
        e = fisher_embedding(self.trunk, task.support_x, y, self.kind, ways)
        return e.detach().float().cpu().numpy()
