"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017).

Each class's prototype is the mean of its embedded support examples (eq. 1):
c_k = 1/|S_k| sum f_phi(x_i). A query is classified by a softmax over negative
squared Euclidean distances to the prototypes (eq. 2):
p(y=k|x) = exp(-d(f_phi(x), c_k)) / sum_k' exp(-d(f_phi(x), c_k')).
Training minimises the query negative log-likelihood; adaptation needs no
gradient steps (``inner_steps`` is ignored).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.learners.base import Learner, task_loss, task_metric


def prototypes(features: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Class means of ``features`` (n, d) under integer ``labels`` (n,): (ways, d)."""
    onehot = F.one_hot(labels, ways).to(features.dtype)          # (n, ways)
    return (onehot.t() @ features) / onehot.sum(0).clamp_min(1).unsqueeze(1)


def proto_logits(query: torch.Tensor, protos: torch.Tensor, distance: str = "euclidean") -> torch.Tensor:
    if distance == "cosine":
        return 10.0 * F.normalize(query, dim=-1) @ F.normalize(protos, dim=-1).t()
    # -||q - c||^2 expanded, works under vmap
    return -((query * query).sum(-1, keepdim=True) - 2 * query @ protos.t() + (protos * protos).sum(-1))


class ProtoNet(Learner):
    name = "protonet"

    def _embed_pair(self, sx, qx):
        # one pass through the trunk so batch statistics cover the whole episode
        z = self.features(torch.cat([sx, qx]))
        return z[: len(sx)], z[len(sx):]

    def meta_loss(self, batch):
        embed = self._embed_pair
        if self.strategy == "compiled":     # Conv-4 on the CPU: the embedding compiled (learners/batched.py)
            from workbench.learners import batched
            features = batched.compiled_features(self)

            def embed(sx, qx):
                z = features(torch.cat([sx, qx]))
                return z[: len(sx)], z[len(sx):]

        def one(sx, sy, qx, qy):
            zs, zq = embed(sx, qx)
            logits = proto_logits(zq, prototypes(zs, sy, self.train_ways), self.cfg.distance)
            return task_loss(self.kind, logits, qy), task_metric(self.kind, logits, qy)

        return self.mean_over_tasks(one, batch)

    def adapt(self, support_x, support_y, steps=None, lr=None):
        # nothing to optimise: the state is the labelled support set itself
        return {"support_x": support_x, "support_y": support_y}

    def predict(self, state, x):
        zs, zq = self._embed_pair(state["support_x"], x)
        return proto_logits(zq, prototypes(zs, state["support_y"], self.ways), self.cfg.distance)
