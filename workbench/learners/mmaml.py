"""Multimodal MAML: MAML with a task-aware modulation (Vuorio, Sun, Hu & Lim, NeurIPS 2019).

A set encoder reads the support set of task T and gives a task embedding
(sec. 3, "modulation network"):

    tau = g({(x_k, y_k)}_k; omega_g)       (DeepSets, or a GRU over sorted points: embeddings/set_encoder.py)

which a FiLM generator maps to per-channel scales and shifts of every hidden
layer of the task network (eq. 2-3, FiLM variant):

    {(gamma_l, beta_l)} = h(tau; omega_h),    phi_l(x) -> gamma_l * phi_l(x) + beta_l

MAML's inner loop (Finn et al. 2017, eq. 1) then adapts the task network's
weights theta on the support set *under this fixed modulation*:

    theta'_T = theta - alpha * grad_theta L_T(f(.; theta, tau_T))

and the outer loop learns theta, omega_g and omega_h together from the query
loss after adaptation (eq. 4). The set encoder and the FiLM generator are
never adapted in the inner loop. ``first_order`` drops the second-order terms
of the inner loop exactly as in :mod:`workbench.learners.maml`.

The recorded task embedding (``embedding.method = "set_encoder"``) is tau.
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn
from torch.func import functional_call

from workbench.learners.base import task_loss, task_metric
from workbench.learners.maml import MAML
from workbench.models.film import TaskModulation

FILM_KEY = "film."          # prefix of the modulation tensors inside an adapted state


def film_to_state(params: list) -> dict:
    """Flatten [(gamma_l, beta_l)] into named tensors (so an adapted state stays a dict of tensors)."""
    out = {}
    for i, (g, b) in enumerate(params):
        out[f"{FILM_KEY}gamma.{i}"] = g.detach()
        out[f"{FILM_KEY}beta.{i}"] = b.detach()
    return out


def film_from_state(state: dict) -> tuple[dict, list]:
    """Split an adapted state into (backbone parameters, [(gamma_l, beta_l)])."""
    params = {n: p for n, p in state.items() if not n.startswith(FILM_KEY)}
    n = sum(1 for k in state if k.startswith(f"{FILM_KEY}gamma."))
    return params, [(state[f"{FILM_KEY}gamma.{i}"], state[f"{FILM_KEY}beta.{i}"]) for i in range(n)]


class ModulatedMAML(MAML):
    """MAML whose backbone is FiLM-modulated by a meta-learned set encoder of the support set."""

    name = "mmaml"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        self.modulation = TaskModulation(backbone.trunk, setting.input_shape, self.kind, self.ways,
                                         cfg.embedding.dim, cfg.embedding.encoder)

    def task_embedding(self, sx, sy) -> torch.Tensor:
        """tau of one task's support set (the recorded embedding)."""
        return self.modulation.encoder(sx, sy)

    def meta_loss(self, batch):
        fast, fixed = self._split()          # backbone only: the modulation is outer-loop only
        functional = self.strategy == "vmap"
        steps, lr = self.cfg.inner_steps, self.cfg.inner_lr
        ctx = self.modulation.context

        def one(sx, sy, qx, qy):
            _, film = self.modulation(sx, sy)
            with ctx.use(film):
                adapted = self._adapted(fast, fixed, sx, sy, steps, lr, functional)
                out = self._forward(adapted, fixed, qx)
            return task_loss(self.kind, out, qy), task_metric(self.kind, out, qy)

        return self.mean_over_tasks(one, batch)

    def _checkpointed_step(self, fast, fixed, sx, sy, lr) -> dict:
        # learner.checkpoint_inner recomputes the step in the backward pass, after the ``with
        # ctx.use(film)`` block has ended: pin this task's modulation inside the recomputed step
        ctx = self.modulation.context
        film, names = ctx.current, list(fast)

        def step(*values):
            with ctx.use(film):
                f = dict(zip(names, values))
                gs = torch.autograd.grad(self._inner_loss(f, fixed, sx, sy), values, create_graph=True)
                new = self.inner_update(f, dict(zip(names, gs)), lr)
            return tuple(new[n] for n in names)

        return dict(zip(names, torch.utils.checkpoint.checkpoint(step, *fast.values(), use_reentrant=False)))

    def adapt(self, support_x, support_y, steps=None, lr=None):
        with torch.no_grad():
            _, film = self.modulation(support_x, support_y)
        with self.modulation.context.use(film):
            state = super().adapt(support_x, support_y, steps, lr)
        return {**state, **film_to_state(film)}

    def predict(self, state, x):
        params, film = film_from_state(state)
        with self.modulation.context.use(film):
            return functional_call(self.backbone, params, (x,))
