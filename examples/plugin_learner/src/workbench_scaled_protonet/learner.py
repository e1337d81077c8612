"""Prototypical Networks with a learned metric scale (Oreshkin, Rodriguez & Lacoste, TADAM, NeurIPS 2018).

Step 2 of docs/plugins.md. Snell et al.'s prototypes c_k = mean of the embedded support examples of
class k (eq. 1); TADAM (sec. 3.1) multiplies the distance by a scale alpha before the softmax,

    p(y = k | x) = softmax_k( -alpha * ||f(x) - c_k||^2 ),

and meta-learns alpha with the backbone: a small alpha softens the softmax early in training,
which TADAM found to matter as much as the choice of metric.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.learners.base import Learner, task_loss, task_metric
from workbench.learners.protonet import proto_logits, prototypes


class ScaledProtoNet(Learner):
    """The shape every learner shares: constructor (backbone, cfg, setting), meta_loss, adapt, predict."""

    name = "scaled_protonet"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        # self.options is this learner's own config section ([scaled_protonet]), declared in SPEC.options
        log_alpha = torch.tensor(float(self.options.init_scale)).log()
        if self.options.learn_scale:
            self.log_alpha = nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)

    def _logits(self, sx, sy, qx):
        z = self.features(torch.cat([sx, qx]))          # one pass: batch statistics cover the episode
        zs, zq = z[: len(sx)], z[len(sx):]
        return self.log_alpha.exp() * proto_logits(zq, prototypes(zs, sy, self.ways))

    def meta_loss(self, batch):
        def one(sx, sy, qx, qy):
            logits = self._logits(sx, sy, qx)
            return task_loss(self.kind, logits, qy), task_metric(self.kind, logits, qy)

        return self.mean_over_tasks(one, batch)      # one() over the tasks by self.strategy, averaged

    def adapt(self, support_x, support_y, steps=None, lr=None):
        return {"support_x": support_x, "support_y": support_y}     # the adapted state is the support set

    def predict(self, state, x):
        return self._logits(state["support_x"], state["support_y"], x)
