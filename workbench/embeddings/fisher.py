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
  "empirical" Fisher of the given labels). Classification: one label per
  support example, y_i ~ p_w(y|x_i), drawn with a fixed seed (a Monte Carlo
  estimate, as in Task2Vec; deterministic for a given task). Regression under
  a Gaussian likelihood N(y; f_w(x), s^2): the expectation over y is exact,
  E_y[(y - f)^2 / s^4] (df/dw)^2 = (df/dw)^2 / s^2, with s = 1 (a constant,
  removed by the normalisation);
- the Fisher of the trunk's weights only (the fitted head's size depends on
  the number of ways), averaged per filter / unit: per output channel of each
  conv layer, per output unit of each linear layer, per channel of each
  normalisation layer (Task2Vec, sec. 3.2, "averaged over filters");
- normalised: divided by its L2 norm, so embeddings compare by direction
  (Task2Vec compares with a cosine distance) and the size is fixed for any
  number of shots or ways.

The per-example gradients come from one forward pass over the whole support
set (so the batch statistics of the trunk's normalisation see all of it, as in
training) and one backward pass per example.
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


def fisher_embedding(trunk: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, ways: int,
                     seed: int = 0) -> torch.Tensor:
    """The normalised, per-unit-averaged diagonal Fisher of ``trunk``'s weights on (x, y).

    Classification draws one label per example from the model's predictive
    distribution with a generator seeded by ``seed`` (same task, same seed: same vector).
    """
    params = [p for p in trunk.parameters()]
    fisher = [torch.zeros_like(p) for p in params]
    with torch.enable_grad():
        z = trunk(x)
        w, b = fit_head(z, y, kind, ways)
        out = z @ w.t() + b                                        # (n, outputs)
        n = len(x)
        if kind == "regression":
            scores = out.reshape(n, -1).sum(1)                     # f(x_i); Fisher = (df/dw)^2 / s^2
        else:
            logp = F.log_softmax(out, dim=1)
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            y_hat = torch.multinomial(logp.detach().exp().cpu(), 1, generator=gen).reshape(-1)
            scores = logp[torch.arange(n), y_hat.to(logp.device)]  # log p(y_hat_i | x_i)
        # per-example gradients, one backward pass each (measured faster here than is_grads_batched)
        for i in range(n):
            gs = torch.autograd.grad(scores[i], params, retain_graph=i < n - 1, allow_unused=True)
            for f, g in zip(fisher, gs):
                if g is not None:
                    f += g.detach() ** 2
    named = OrderedDict((name, f / n) for (name, _), f in zip(trunk.named_parameters(), fisher))
    e = per_unit_mean(named)
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
        self.seed = int(cfg.eval.seed)
        self.dim = sum(unit_groups(trunk).values())

    def __call__(self, task) -> np.ndarray:
        y = task.support_y
        ways = self.ways if self.kind == "regression" else max(self.ways, int(y.max()) + 1)
        e = fisher_embedding(self.trunk, task.support_x, y, self.kind, ways, self.seed)
        return e.detach().float().cpu().numpy()
