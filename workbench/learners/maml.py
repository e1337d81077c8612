"""MAML: Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017).

Inner loop (eq. 1): theta'_i = theta - alpha * grad_theta L_Ti(f_theta) on the
support set of task T_i, repeated ``inner_steps`` times.
Meta-objective (eq. 2/3): min_theta sum_i L_Ti(f_theta'_i) on the query sets,
differentiated through the inner loop (second order). With ``first_order`` the
inner-loop Jacobian is taken as the identity (FOMAML, sec. 5.2): the gradient
of the query loss at theta'_i is applied to theta.

The inner loop is functional (torch.func.functional_call); a meta-batch runs
as a Python loop with autograd.grad or, with strategy "vmap", as
vmap(grad(...)) over tasks. ANIL and Meta-SGD subclass this module and change
which parameters adapt (``adapted_names``) and how (``inner_update``).
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch.func import functional_call

from workbench.learners.base import Learner, task_loss, task_metric


def maml_update(params: dict, grads: dict, lr) -> dict:
    """One plain gradient step on a dict of tensors (the learn2learn-style free function)."""
    return {n: p - lr * grads[n] for n, p in params.items()}


class MAML(Learner):
    name = "maml"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        self.first_order = bool(self.cfg.first_order or self.spec.always_first_order)

    # -- what adapts, and how ------------------------------------------------
    def adapted_names(self) -> list[str]:
        return [n for n, _ in self.backbone.named_parameters()]

    def inner_update(self, fast: dict, grads: dict, lr: float) -> dict:
        return maml_update(fast, grads, lr)

    # -- functional pieces ---------------------------------------------------
    def _split(self) -> tuple[dict, dict]:
        params = dict(self.backbone.named_parameters())
        names = set(self.adapted_names())
        return ({n: p for n, p in params.items() if n in names},
                {n: p for n, p in params.items() if n not in names})

    def _forward(self, fast: dict, fixed: dict, x):
        return functional_call(self.backbone, {**fixed, **fast}, (x,))

    def _inner_loss(self, fast, fixed, x, y):
        return task_loss(self.kind, self._forward(fast, fixed, x), y)

    def inner_loop(self, fast: dict, fixed: dict, sx, sy, steps: int, lr: float, *, create_graph: bool,
                   functional: bool = False) -> dict:
        """Adapt ``fast`` on (sx, sy). ``functional`` uses torch.func.grad (needed under vmap).

        With ``learner.checkpoint_inner`` (second order, loop strategy) each step runs under
        torch.utils.checkpoint: its activations are recomputed in the backward pass instead of
        kept, so memory no longer grows with every inner step's activations (only the fast weights).
        """
        checkpointed = create_graph and not functional and getattr(self.cfg, "checkpoint_inner", False)
        for _ in range(steps):
            if checkpointed:
                fast = self._checkpointed_step(fast, fixed, sx, sy, lr)
                continue
            if functional:
                grads = torch.func.grad(self._inner_loss)(fast, fixed, sx, sy)
            else:
                loss = self._inner_loss(fast, fixed, sx, sy)
                gs = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
                grads = dict(zip(fast.keys(), gs))
            fast = self.inner_update(fast, grads, lr)
        return fast

    def _checkpointed_step(self, fast, fixed, sx, sy, lr) -> dict:
        names = list(fast)

        def step(*values):
            f = dict(zip(names, values))
            gs = torch.autograd.grad(self._inner_loss(f, fixed, sx, sy), values, create_graph=True)
            new = self.inner_update(f, dict(zip(names, gs)), lr)
            return tuple(new[n] for n in names)

        return dict(zip(names, torch.utils.checkpoint.checkpoint(step, *fast.values(), use_reentrant=False)))

    def _adapted(self, fast, fixed, sx, sy, steps, lr, functional):
        if not self.first_order:
            return self.inner_loop(fast, fixed, sx, sy, steps, lr, create_graph=True, functional=functional)
        # first order: adapt from a detached copy; theta + stop_grad(theta' - theta) has value theta'
        # and identity Jacobian, so the query gradient at theta' flows straight to theta.
        detached = {n: p.detach() for n, p in fast.items()}
        if not functional:
            detached = {n: p.requires_grad_() for n, p in detached.items()}
        adapted = self.inner_loop(detached, {n: p.detach() for n, p in fixed.items()}, sx, sy, steps, lr,
                                  create_graph=False, functional=functional)
        return {n: fast[n] + (adapted[n] - fast[n]).detach() for n in fast}

    def meta_loss(self, batch):
        if self.strategy == "batched":      # MLPs: the whole meta-batch in closed form (learners/batched.py)
            from workbench.learners import batched
            return batched.meta_loss(self, batch)
        fast, fixed = self._split()
        functional = self.strategy == "vmap"
        steps, lr = self.cfg.inner_steps, self.cfg.inner_lr
        query = self._forward
        if self.strategy == "compiled":     # Conv-4 on the CPU: the query pass compiled (learners/batched.py)
            from workbench.learners import batched
            query = batched.compiled_query_forward(self)

        def one(sx, sy, qx, qy):
            adapted = self._adapted(fast, fixed, sx, sy, steps, lr, functional)
            out = query(adapted, fixed, qx)
            return task_loss(self.kind, out, qy), task_metric(self.kind, out, qy)

        return self.mean_over_tasks(one, batch)

    # -- test time -------------------------------------------------------------
    def adapt(self, support_x, support_y, steps=None, lr=None):
        steps, lr = self.test_inner(steps, lr)
        fast, fixed = self._split()
        with torch.enable_grad():
            fast = {n: p.detach().requires_grad_() for n, p in fast.items()}
            fixed = {n: p.detach() for n, p in fixed.items()}
            fast = self.inner_loop(fast, fixed, support_x, support_y, steps, lr, create_graph=False)
        return {n: p.detach() for n, p in {**fixed, **fast}.items()}

    def predict(self, state, x):
        return functional_call(self.backbone, state, (x,))
