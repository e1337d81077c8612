"""FiLM-conditioned Prototypical Networks: ProtoNet with a task-aware backbone.

Prototypical Networks (Snell et al., NeurIPS 2017, eq. 1-2) classify a query by
the softmax over negative squared distances to class prototypes
c_k = mean f_phi(x_i). Here the embedding network is conditioned on the task,
as in TADAM (Oreshkin et al., NeurIPS 2018, sec. 3.2, task-conditioned FiLM)
and Multimodal MAML (Vuorio et al. 2019): a DeepSets encoder of the labelled
support set gives tau, a FiLM generator maps tau to per-channel (gamma, beta)
of every hidden layer, and both support and query examples are embedded by
the modulated network f_phi(.; tau). The encoder, the generator and phi are
trained together on the query loss; nothing is adapted by gradient at test time.
"""

from __future__ import annotations

import torch

from workbench.learners.base import task_loss, task_metric
from workbench.models.film import TaskModulation
from workbench.learners.protonet import ProtoNet, proto_logits, prototypes


class FiLMProtoNet(ProtoNet):
    name = "protonet_film"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        self.modulation = TaskModulation(backbone.trunk, setting.input_shape, self.kind, self.ways,
                                         cfg.embedding.dim)

    def task_embedding(self, sx, sy) -> torch.Tensor:
        """tau of one task's support set (the recorded embedding)."""
        return self.modulation.encoder(sx, sy)

    def _logits(self, sx, sy, qx):
        _, film = self.modulation(sx, sy)
        with self.modulation.context.use(film):
            zs, zq = self._embed_pair(sx, qx)
        return proto_logits(zq, prototypes(zs, sy, self.ways), self.cfg.distance)

    def meta_loss(self, batch):
        def one(sx, sy, qx, qy):
            logits = self._logits(sx, sy, qx)
            return task_loss(self.kind, logits, qy), task_metric(self.kind, logits, qy)

        return self.mean_over_tasks(one, batch)

    def predict(self, state, x):
        return self._logits(state["support_x"], state["support_y"], x)
