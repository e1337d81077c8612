"""MAML++ (Antoniou, Edwards & Storkey, "How to train your MAML", ICLR 2019).

MAML's inner loop (Finn et al. eq. 1) and meta-objective (eq. 2), with the paper's fixes (sec. 4),
each one a switch of the ``[mamlpp]`` section (declared in its entry in :mod:`workbench.registry`):

- **LSLR**, learned per-layer per-step learning rates: step j updates each weight tensor l with its
  own meta-learned rate, theta_{j+1}^l = theta_j^l - alpha_j^l grad_{theta^l} L_support(theta_j),
  every alpha_j^l starting at ``learner.inner_lr``. Test-time adaptation uses the learned rates
  (``test_inner_lr`` is not used); steps beyond the trained ones reuse the last rate.
- **BNWB**, per-step batch-norm weights and biases: the network after j inner updates normalises
  with its own (gamma_j, beta_j), meta-learned and not adapted in the inner loop.
- **BNRS**, per-step batch-norm statistics: running means and variances kept per step during
  meta-training; with ``running_stats`` test tasks are normalised with them (the authors' code
  normalises with batch statistics, this workbench's default). Both need ``model.norm = batch``.
- **MSL**, multi-step loss: L = sum_j v_j L_query(theta_j), j = 1..N; the weights start uniform
  (1/N) and, over the first ``msl_fraction`` of meta-training, the non-final ones decay linearly to
  0.03/N while the last takes the rest; after that only L_query(theta_N) counts.
- **DA**, derivative-order annealing: first order (inner gradients taken as constants) for the first
  ``first_order_fraction`` of meta-training, second order after; ``learner.first_order`` keeps it
  first order throughout. In first order the learned rates still get gradients (theta_N depends on
  them through -alpha_j g_j).
- **CA**, cosine annealing of the meta learning rate from ``meta_lr`` to 1% of it.

The schedules depend on how far meta-training is: the engine calls :meth:`MAMLpp.schedule` before
every meta-step, which also returns the meta learning rate's factor (a pure function of the step,
so resumed runs stay exact).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from workbench.learners.base import map_tasks, task_loss, task_metric
from workbench.learners.maml import MAML

MIN_LR_FACTOR = 0.01          # cosine annealing ends at 1% of meta_lr (the paper: 1e-3 to 1e-5)


def msl_weights(n: int, t: float) -> list[float] | None:
    """MSL importance of the query loss after inner steps 1..n at annealing time ``t`` in [0, 1]
    (0: start of training, 1: end of annealing); None once only the last step counts."""
    if n < 2 or t >= 1.0:
        return None
    others = [max((1.0 - t) / n, 0.03 / n)] * (n - 1)
    return others + [1.0 - sum(others)]


def cosine_factor(step: int, total: int) -> float:
    return MIN_LR_FACTOR + (1.0 - MIN_LR_FACTOR) * 0.5 * (1.0 + math.cos(math.pi * min(step / max(total, 1), 1.0)))


class StepBatchNorm(nn.Module):
    """Batch norm with one (weight, bias) and one set of running statistics per inner step (BNWB, BNRS).

    ``version`` picks the step; ``mode`` is "batch" (normalise with the batch's statistics),
    "collect" (the same, and update the step's running statistics) or "running" (normalise with them).
    Written with plain tensor operations, so its double backward is exact under vmap too."""

    def __init__(self, channels: int, versions: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(versions, channels))
        self.bias = nn.Parameter(torch.zeros(versions, channels))
        self.register_buffer("running_mean", torch.zeros(versions, channels))
        self.register_buffer("running_var", torch.ones(versions, channels))
        self.version, self.mode = 0, "batch"

    def forward(self, x):
        k = self.version
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.mode == "running":
            mean, var = self.running_mean[k], self.running_var[k]
        else:
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            if self.mode == "collect":
                with torch.no_grad():
                    n = x.numel() // x.shape[1]
                    self.running_mean[k].lerp_(mean.detach(), self.momentum)
                    self.running_var[k].lerp_(var.detach() * n / max(n - 1, 1), self.momentum)
        scale = torch.rsqrt(var.reshape(shape) + self.eps) * self.weight[k].reshape(shape)
        return (x - mean.reshape(shape)) * scale + self.bias[k].reshape(shape)


def _per_step_norms(module: nn.Module, versions: int) -> list[StepBatchNorm]:
    """Replace every batch norm below ``module`` by a :class:`StepBatchNorm`; returns them."""
    out = []
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            new = StepBatchNorm(child.num_features, versions, child.eps)
            setattr(module, name, new)
            out.append(new)
        else:
            out += _per_step_norms(child, versions)
    return out


def _key(name: str) -> str:
    return name.replace(".", "__")


class MAMLpp(MAML):
    name = "mamlpp"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        self.steps = self.cfg.inner_steps
        self.norms = _per_step_norms(backbone, self.steps + 1)      # version j: the network after j updates
        norm_ids = {id(p) for m in self.norms for p in m.parameters()}
        self._adapted_names = [n for n, p in backbone.named_parameters() if id(p) not in norm_ids]
        params = dict(backbone.named_parameters())
        self.lrs = nn.ParameterDict({_key(n): nn.Parameter(torch.full((max(self.steps, 1),), float(self.cfg.inner_lr),
                                                                      dtype=params[n].dtype),
                                                           requires_grad=self.options.learn_inner_lr)
                                     for n in self._adapted_names})
        self.progress = 0.0           # share of meta-training done, set by schedule()

    def adapted_names(self) -> list[str]:
        return list(self._adapted_names)

    # -- schedules ---------------------------------------------------------------------------
    def schedule(self, step: int, total_steps: int) -> float:
        """Called by the engine before meta-step ``step``: sets the MSL/DA schedules; returns the
        factor of the meta learning rate (CA)."""
        self.progress = step / max(total_steps, 1)
        return cosine_factor(step, total_steps) if self.options.cosine_meta_lr else 1.0

    def second_order_now(self) -> bool:
        return not self.first_order and self.progress >= self.options.first_order_fraction

    def loss_weights(self) -> list[float] | None:
        o = self.options
        if not o.multi_step_loss:
            return None
        return msl_weights(self.steps, self.progress / o.msl_fraction if o.msl_fraction > 0 else 1.0)

    # -- pieces --------------------------------------------------------------------------------
    def _at(self, version: int, mode: str = "batch"):
        for m in self.norms:
            m.version, m.mode = min(version, self.steps), mode

    def _lr(self, name: str, j: int):
        rates = self.lrs[_key(name)]
        return rates[min(j, len(rates) - 1)]

    def _step(self, fast, fixed, sx, sy, j, *, create_graph, functional):
        self._at(j, self._mode)
        if functional:
            grads = torch.func.grad(self._inner_loss)(fast, fixed, sx, sy)
        else:
            loss = self._inner_loss(fast, fixed, sx, sy)
            grads = dict(zip(fast, torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)))
        if not create_graph:       # first order: the inner gradients are constants
            grads = {n: g.detach() for n, g in grads.items()}
        return {n: p - self._lr(n, j) * grads[n] for n, p in fast.items()}

    def meta_loss(self, batch):
        fast, fixed = self._split()
        second, weights = self.second_order_now(), self.loss_weights()
        collect = self.options.running_stats and self.training
        strategy = "loop" if collect else self.strategy       # running statistics are updated in place
        functional = strategy == "vmap"
        self._mode = "collect" if collect else "batch"

        def one(sx, sy, qx, qy):
            f, total = fast, 0.0
            for j in range(self.steps):
                f = self._step(f, fixed, sx, sy, j, create_graph=second, functional=functional)
                if weights is not None and j < self.steps - 1:
                    self._at(j + 1, self._mode)
                    total = total + weights[j] * task_loss(self.kind, self._forward(f, fixed, qx), qy)
            self._at(self.steps, self._mode)
            out = self._forward(f, fixed, qx)
            last = task_loss(self.kind, out, qy)
            return (last if weights is None else total + weights[-1] * last), task_metric(self.kind, out, qy)

        try:
            losses, metrics = map_tasks(one, batch, strategy)
        finally:
            self._at(0)
        return losses.mean(), {self.metric_name(): metrics.mean()}

    # -- test time -----------------------------------------------------------------------------
    def adapt(self, support_x, support_y, steps=None, lr=None):
        """``lr`` is not used: the learned per-step rates adapt (as in Meta-SGD)."""
        steps = self.cfg.test_inner_steps if steps is None else steps
        self._mode = "running" if self.options.running_stats else "batch"
        fast, fixed = self._split()
        fixed = {n: p.detach() for n, p in fixed.items()}
        with torch.enable_grad():
            f = {n: p.detach().requires_grad_() for n, p in fast.items()}
            for j in range(steps):
                f = {n: p.detach().requires_grad_() for n, p in
                     self._step(f, fixed, support_x, support_y, j, create_graph=False, functional=False).items()}
        self._at(0)
        return {"params": {n: p.detach() for n, p in {**fixed, **f}.items()}, "version": steps, "mode": self._mode}

    def predict(self, state, x):
        self._at(state["version"], state["mode"])
        try:
            return self._forward(state["params"], {}, x)
        finally:
            self._at(0)

    def features(self, x):
        self._at(0)
        return self.backbone.trunk(x)
