"""Proto-MAML (Triantafillou et al., "Meta-Dataset: a dataset of datasets for learning to learn from
few examples", ICLR 2020, sec. 4.2).

MAML (Finn et al. 2017, eq. 1-2) whose output layer is not meta-learned but set on each task from
the prototypes of its support set. Prototypical Networks (Snell et al. 2017) score a query by
-||f(x) - c_k||^2 = 2 c_k . f(x) - ||c_k||^2 - ||f(x)||^2; the last term is the same for every class,
so this is a linear layer on the features with

    W_k = 2 c_k,    b_k = -||c_k||^2,    c_k = mean of f(x_i) over the support examples of class k.

The task's network (trunk + this head) is then adapted with ``inner_steps`` gradient steps on the
support set (all of it, or the head only with ``[protomaml] adapt = head``), and the query loss of
the adapted network is the meta-objective. The head's initialisation depends on the trunk, and the
meta-gradient flows through it. ``learner.first_order`` gives fo-Proto-MAML, the variant Meta-Dataset
trains: the inner updates are taken as constants (theta' = theta + stop_grad(theta' - theta)),
but the gradient still reaches the trunk through the prototypes of the initial head. With zero inner
steps the learner is a Prototypical Network with squared Euclidean distance.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from workbench.learners.base import task_loss, task_metric
from workbench.learners.maml import MAML
from workbench.learners.protonet import prototypes

HEAD = ("proto.weight", "proto.bias")       # the task's head, in the dicts of fast weights


class ProtoMAML(MAML):
    name = "protomaml"

    def adapted_names(self) -> list[str]:
        if self.options.adapt == "head":
            return []
        return [n for n, _ in self.backbone.named_parameters()]

    def prototype_head(self, params: dict, sx, sy) -> dict:
        """The linear head equivalent to ProtoNet on the support set: W = 2c, b = -||c||^2."""
        c = prototypes(functional_call(self.backbone, params, (sx,)), sy, self.ways)
        return {HEAD[0]: 2 * c, HEAD[1]: -(c * c).sum(-1)}

    def _forward(self, fast, fixed, x):
        params = {**fixed, **fast}
        z = functional_call(self.backbone, {n: p for n, p in params.items() if n not in HEAD}, (x,))
        return z @ params[HEAD[0]].t() + params[HEAD[1]]

    def meta_loss(self, batch):
        fast, fixed = self._split()
        functional = self.strategy == "vmap"
        steps, lr = self.cfg.inner_steps, self.cfg.inner_lr

        def one(sx, sy, qx, qy):
            head = self.prototype_head({**fixed, **fast}, sx, sy)
            # the inner gradient is the partial derivative at (theta, W_0): the trunk enters the inner loss as
            # an alias of theta, so autograd.grad does not add the path theta -> prototypes -> W_0 to it
            start = {**{n: p.view_as(p) for n, p in fast.items()}, **head}
            adapted = self._adapted(start, fixed, sx, sy, steps, lr, functional)
            out = self._forward(adapted, fixed, qx)
            return task_loss(self.kind, out, qy), task_metric(self.kind, out, qy)

        return self.mean_over_tasks(one, batch)

    def adapt(self, support_x, support_y, steps=None, lr=None):
        steps, lr = self.test_inner(steps, lr)
        fast, fixed = self._split()
        fixed = {n: p.detach() for n, p in fixed.items()}
        with torch.enable_grad():
            fast = {n: p.detach() for n, p in fast.items()}
            with torch.no_grad():
                head = self.prototype_head({**fixed, **fast}, support_x, support_y)
            fast = {n: p.requires_grad_() for n, p in {**fast, **head}.items()}
            fast = self.inner_loop(fast, fixed, support_x, support_y, steps, lr, create_graph=False)
        return {n: p.detach() for n, p in {**fixed, **fast}.items()}

    def predict(self, state, x):
        return self._forward(state, {}, x)
