"""Meta-SGD (Li, Zhou, Chen & Li, 2017).

The inner update learns a learning rate per parameter (eq. 1):
theta' = theta - alpha o grad L_T(theta), with alpha a tensor of theta's shape,
meta-learned together with theta by differentiating the query loss through
the update (eq. 2). ``inner_lr`` initialises alpha; test-time adaptation uses
the learned alpha (``test_inner_lr`` is not used), for ``test_inner_steps`` steps.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.learners.maml import MAML


def _key(name: str) -> str:
    return name.replace(".", "__")


class MetaSGD(MAML):
    name = "metasgd"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        self.lrs = nn.ParameterDict({_key(n): nn.Parameter(torch.full_like(p, self.cfg.inner_lr))
                                     for n, p in backbone.named_parameters()})

    def inner_update(self, fast, grads, lr):
        # the learned per-parameter rates replace the scalar lr
        return {n: p - self.lrs[_key(n)] * grads[n] for n, p in fast.items()}
