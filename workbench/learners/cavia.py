"""CAVIA: fast context adaptation via meta-learning (Zintgraf, Shiarlis, Kurin, Hofmann & Whiteson,
ICML 2019).

The network's weights theta are shared by all tasks and only meta-learned; what adapts to a task is
a small context vector phi (``[cavia] context_dim``) that enters the first layer. Each task starts
from phi_0 = 0 and takes ``inner_steps`` gradient steps on its support set (eq. 2 of the paper):

    phi_{j+1} = phi_j - alpha grad_phi L_support(f_{theta, phi_j}),

and theta is meta-learned on the query losses at the adapted contexts (eq. 3):

    theta <- theta - beta grad_theta sum_i L_query(f_{theta, phi_i}),

differentiated through the inner steps (second order: grad_phi depends on theta); with
``learner.first_order`` the context steps are taken as constants.

The context enters the first layer's outputs h (the first linear or convolution layer of the trunk,
after its normalisation when it has one: batch norm would remove a shift or scale applied before it)
as ``modulation = shift``: h + Gamma phi, which for an MLP without normalisation is exactly the
paper's concatenation of phi to the input (Gamma being the first layer's weights on the extra inputs),
and for a convolution a per-channel shift; or as ``film``: h * (1 + Gamma phi) + B phi, the FiLM layer
of the paper's image experiments (sec. 5.3). Gamma and B are meta-learned and have no bias, so
phi = 0 leaves the network unchanged. ``layer = last`` modulates the trunk's last layer instead, next to
the head (on Omniglot here only that one learned within a short run). Test-time adaptation uses ``test_inner_steps`` and ``test_inner_lr``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from workbench.learners.base import Learner, task_loss, task_metric


class ContextLayer(nn.Module):
    """``layer`` whose ``channels`` outputs are shifted (and scaled, with FiLM) by a linear map of ``context``."""

    def __init__(self, layer: nn.Module, channels: int, context_dim: int, film: bool):
        super().__init__()
        self.layer, self.film = layer, film
        self.context_map = nn.Linear(context_dim, 2 * channels if film else channels, bias=False)
        self.context = None          # the task's context, set by the learner around each forward

    def forward(self, x):
        out = self.layer(x)
        if self.context is None:
            return out
        m = self.context_map(self.context).reshape([1, -1] + [1] * (out.dim() - 2))
        if not self.film:
            return out + m
        gamma, beta = m.chunk(2, dim=1)
        return out * (1 + gamma) + beta


NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.Identity)


def _layers(module: nn.Module) -> list[tuple[nn.Module, int]]:
    """(parent, index among its children) of every linear or convolution layer below ``module``, in order."""
    out = []
    for i, (_, child) in enumerate(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            out.append((module, i))
        else:
            out += _layers(child)
    return out


def wrap_layer(trunk: nn.Module, context_dim: int, film: bool, last: bool = False) -> ContextLayer | None:
    """Put the context after the first (or last) linear or convolution layer of ``trunk``, or after the
    normalisation that follows it (batch norm would remove a shift or scale applied before it)."""
    found = _layers(trunk)
    if not found:
        return None
    parent, i = found[-1 if last else 0]
    children = list(parent.named_children())
    name, child = children[i]
    channels = child.out_features if isinstance(child, nn.Linear) else child.out_channels
    if i + 1 < len(children) and isinstance(children[i + 1][1], NORMS):
        name, child = children[i + 1]
    wrapped = ContextLayer(child, channels, context_dim, film)
    setattr(parent, name, wrapped)
    return wrapped


class CAVIA(Learner):
    name = "cavia"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        self.first_order = bool(self.cfg.first_order)
        o = self.options
        layer = wrap_layer(backbone.trunk, o.context_dim, o.modulation == "film", o.layer == "last")
        if layer is None:
            raise ValueError("CAVIA needs a trunk with a linear or convolution layer to put the context in")
        self._where = (layer,)       # not a submodule of its own: the layer lives (and is saved) in the backbone

    @property
    def context_layer(self) -> ContextLayer:
        return self._where[0]

    def _forward(self, context, params, x):
        self.context_layer.context = context
        try:
            return functional_call(self.backbone, params, (x,))
        finally:
            self.context_layer.context = None

    def _support_loss(self, context, params, x, y):
        return task_loss(self.kind, self._forward(context, params, x), y)

    def adapt_context(self, params, sx, sy, steps: int, lr: float, *, create_graph: bool, functional: bool):
        """phi after ``steps`` inner steps from zero on (sx, sy)."""
        p0 = next(iter(params.values()))
        context = torch.zeros(self.options.context_dim, dtype=p0.dtype, device=p0.device)
        if not functional:
            context.requires_grad_()
        for _ in range(steps):
            if functional:
                g = torch.func.grad(self._support_loss)(context, params, sx, sy)
            else:
                g, = torch.autograd.grad(self._support_loss(context, params, sx, sy), context,
                                         create_graph=create_graph)
            context = context - lr * (g if create_graph else g.detach())
        return context

    def meta_loss(self, batch):
        params = dict(self.backbone.named_parameters())
        functional = self.strategy == "vmap"
        steps, lr = self.cfg.inner_steps, self.cfg.inner_lr

        def one(sx, sy, qx, qy):
            context = self.adapt_context(params, sx, sy, steps, lr, create_graph=not self.first_order,
                                         functional=functional)
            out = self._forward(context, params, qx)
            return task_loss(self.kind, out, qy), task_metric(self.kind, out, qy)

        return self.mean_over_tasks(one, batch)

    def adapt(self, support_x, support_y, steps=None, lr=None):
        steps, lr = self.test_inner(steps, lr)
        params = {n: p.detach() for n, p in self.backbone.named_parameters()}
        with torch.enable_grad():
            context = self.adapt_context(params, support_x, support_y, steps, lr, create_graph=False,
                                         functional=False)
        return {"context": context.detach()}

    def predict(self, state, x):
        return self._forward(state["context"], dict(self.backbone.named_parameters()), x)
