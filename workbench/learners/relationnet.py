"""Relation Networks (Sung, Yang, Zhang, Xiang, Torr & Hospedales, "Learning to Compare: Relation
Network for Few-Shot Learning", CVPR 2018).

An embedding module f_phi (the backbone's trunk) and a relation module g_phi are learned together.
For a query x_j and each class i of the support set, the relation score (eq. 1)

    r_ij = g_phi( C( f_phi(x_i), f_phi(x_j) ) ),       i = 1, ..., ways,

scores how well x_j matches class i, with C(., .) the concatenation of the class's support
feature and the query feature. For K > 1 shots the class feature is pooled over the class's K
support examples (the paper sums the embeddings; here they are averaged, which keeps the input
scale of g_phi the same for every K). Training regresses the scores onto the match indicator
with the mean squared error (eq. 2):

    phi, phi' = argmin  sum_i sum_j ( r_ij - 1[y_i == y_j] )^2,

not a cross-entropy: the paper treats the relation score as a similarity in [0, 1] (a sigmoid
output). A query is assigned the class of its highest score.

The relation module: the paper's g_phi is two convolution blocks on the concatenated feature maps
followed by fully connected layers of 8 and 1 units with a sigmoid. The workbench's trunks give
feature vectors, so g_phi here is a fully connected network on the concatenated vectors: a layer
of ``relationnet.hidden`` units, ReLU, the paper's layer of 8 units, ReLU, one unit and a sigmoid.
Adaptation needs no gradient steps: the state is the labelled support set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.learners.base import Learner, task_metric
from workbench.learners.protonet import prototypes


class RelationModule(nn.Module):
    """g_phi: (class feature, query feature) pairs -> relation scores in [0, 1]."""

    def __init__(self, dim: int, hidden: int, top: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.BatchNorm1d(hidden, track_running_stats=False),
                                 nn.ReLU(), nn.Linear(hidden, top), nn.ReLU(), nn.Linear(top, 1))

    def forward(self, classes: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Scores (n_query, ways) for class features (ways, d) and query features (n_query, d)."""
        nq, ways = queries.shape[0], classes.shape[0]
        pairs = torch.cat([classes.unsqueeze(0).expand(nq, ways, -1),
                           queries.unsqueeze(1).expand(nq, ways, -1)], dim=-1)
        return torch.sigmoid(self.net(pairs.reshape(nq * ways, -1)).reshape(nq, ways))


def relation_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 2: mean squared error between the scores (n, ways) and the one-hot match indicator."""
    return F.mse_loss(scores, F.one_hot(y, scores.shape[-1]).to(scores.dtype))


class RelationNet(Learner):
    name = "relationnet"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        self.relation = RelationModule(backbone.feature_dim, int(self.options.hidden), int(self.options.top))

    def _scores(self, sx, sy, qx, ways: int | None = None) -> torch.Tensor:
        z = self.features(torch.cat([sx, qx]))        # one trunk pass: batch statistics of the episode
        zs, zq = z[: len(sx)], z[len(sx):]
        return self.relation(prototypes(zs, sy, ways or self.ways), zq)

    def meta_loss(self, batch):
        def one(sx, sy, qx, qy):
            scores = self._scores(sx, sy, qx, self.train_ways)
            return relation_loss(scores, qy), task_metric(self.kind, scores, qy)

        return self.mean_over_tasks(one, batch)

    def adapt(self, support_x, support_y, steps=None, lr=None):
        return {"support_x": support_x, "support_y": support_y}

    def predict(self, state, x):
        return self._scores(state["support_x"], state["support_y"], x)

    def evaluate_task(self, task):
        """(query loss of eq. 2, query accuracy): the loss the paper trains, not a cross-entropy."""
        with torch.no_grad():
            scores = self.predict(self.adapt(task.support_x, task.support_y), task.query_x)
            return float(relation_loss(scores, task.query_y)), float(task_metric(self.kind, scores, task.query_y))
