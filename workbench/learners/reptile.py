"""Reptile (Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", 2018).

Algorithm 2 of the paper (the batched version of Algorithm 1): for each task
T_i of a meta-batch of n tasks, start from the current weights theta and take
k steps of SGD on the task's loss, W_i = U^k_{T_i}(theta); then move theta
towards the adapted weights:

    theta <- theta + epsilon * (1/n) * sum_i (W_i - theta)

Choices made here (and why):

- the inner optimiser is plain full-batch SGD on the support set
  (``inner_steps`` steps of ``inner_lr``). The paper used Adam with beta1 = 0
  for its few-shot image experiments; SGD keeps adaptation at training and test
  time the same procedure and the same as MAML's, so the learners compare
  like for like;
- the outer update is the paper's plain interpolation with
  ``epsilon = reptile_epsilon``, applied directly to the weights: the engine's
  outer optimiser (and ``meta_lr``) is not used. The paper anneals epsilon
  linearly to 0; here it is constant (the learner does not know the run's
  length);
- the inner loop is functional (``torch.func.functional_call``); with the
  "vmap" strategy the tasks of a meta-batch adapt together under
  ``torch.func.vmap(torch.func.grad(...))``, with "loop" one after another.
  No graph is kept through the inner loop: Reptile needs no meta-gradient.

The metrics reported per step are the query loss and metric after adaptation
(from weights W_i), measured without gradients.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from workbench.learners.base import Learner, task_loss, task_metric


def reptile_update(theta: dict, adapted: dict, epsilon: float) -> None:
    """In place: theta <- theta + epsilon * mean_i(W_i - theta), ``adapted[n]`` stacked (n_tasks, ...)."""
    with torch.no_grad():
        for name, p in theta.items():
            p.add_(adapted[name].mean(0) - p, alpha=epsilon)


class Reptile(Learner):
    name = "reptile"

    # -- the inner loop ---------------------------------------------------------
    def _params(self) -> dict:
        return {n: p.detach() for n, p in self.backbone.named_parameters()}

    def _loss(self, params: dict, x, y):
        return task_loss(self.kind, functional_call(self.backbone, params, (x,)), y)

    def sgd(self, params: dict, sx, sy, steps: int, lr: float, functional: bool = False) -> dict:
        """``steps`` steps of full-batch SGD on (sx, sy) from ``params``; no graph is kept.

        ``functional`` uses torch.func.grad, which works inside vmap.
        """
        for _ in range(steps):
            if functional:
                grads = torch.func.grad(self._loss)(params, sx, sy)
            else:
                with torch.enable_grad():
                    live = {n: p.detach().requires_grad_() for n, p in params.items()}
                    gs = torch.autograd.grad(self._loss(live, sx, sy), list(live.values()))
                grads = dict(zip(live, gs))
            params = {n: (p - lr * grads[n]).detach() for n, p in params.items()}
        return params

    def adapt_batch(self, batch, steps: int | None = None, lr: float | None = None) -> tuple[dict, torch.Tensor,
                                                                                             torch.Tensor]:
        """Adapt to every task of ``batch``: (stacked adapted weights, query losses, query metrics)."""
        steps = self.cfg.inner_steps if steps is None else steps
        lr = self.cfg.inner_lr if lr is None else lr
        theta = self._params()

        def one(sx, sy, qx, qy):
            w = self.sgd(theta, sx, sy, steps, lr, functional=self.strategy == "vmap")
            out = functional_call(self.backbone, w, (qx,))
            return w, task_loss(self.kind, out, qy).detach(), task_metric(self.kind, out, qy)

        if self.strategy == "vmap":
            return torch.func.vmap(one, randomness="different")(batch.support_x, batch.support_y,
                                                                 batch.query_x, batch.query_y)
        ws, losses, metrics = [], [], []
        for i in range(len(batch)):
            w, l, m = one(batch.support_x[i], batch.support_y[i], batch.query_x[i], batch.query_y[i])
            ws.append(w)
            losses.append(l)
            metrics.append(m)
        stacked = {n: torch.stack([w[n] for w in ws]) for n in theta}
        return stacked, torch.stack(losses), torch.stack(metrics)

    # -- meta-training -------------------------------------------------------------
    def meta_loss(self, batch):
        """The mean query loss after adaptation. Not differentiable: Reptile is not a
        gradient method (use :meth:`train_step`)."""
        _, losses, metrics = self.adapt_batch(batch)
        return losses.mean(), {self.metric_name(): metrics.mean()}

    def train_step(self, batch, optimizer=None) -> dict:
        """One Reptile meta-update (Algorithm 2). ``optimizer`` is accepted for the common
        learner interface and not used: the update is the interpolation towards W_i."""
        adapted, losses, metrics = self.adapt_batch(batch)
        reptile_update(dict(self.backbone.named_parameters()), adapted, self.cfg.reptile_epsilon)
        return {"loss": losses.mean(), self.metric_name(): metrics.mean()}

    # -- test time -----------------------------------------------------------------
    def adapt(self, support_x, support_y, steps=None, lr=None):
        steps, lr = self.test_inner(steps, lr)
        return self.sgd(self._params(), support_x, support_y, steps, lr)

    def predict(self, state, x):
        return functional_call(self.backbone, state, (x,))
