"""A learned set encoder over the (x, y) pairs of a support set (DeepSets).

DeepSets (Zaheer et al., NeurIPS 2017, theorem 2): a permutation-invariant
function of a set is rho(sum_i phi(s_i)). Here s_i = [x_i, y_i] for
regression and [f(x_i), onehot(y_i)] for classification, the sum is a mean
(so the code does not grow with the number of shots), and the output is the
task embedding

    tau = rho( 1/K sum_i phi([x_i, y_i]) )        (dim = embedding.dim)

of Multimodal MAML (Vuorio et al., NeurIPS 2019, sec. 3: tau = g({x_k, y_k};
omega_g)), which a :class:`workbench.models.film.FiLMGenerator` maps to the
FiLM parameters of the backbone. The encoder is trained end to end with the
meta-learner (outer loop only) by :mod:`workbench.learners.mmaml`.

Image inputs first pass a small convolutional feature extractor of the
encoder's own (three stride-2 conv layers and global average pooling), vector
inputs go in flat.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class SetEncoder(nn.Module):
    """tau = rho(mean_i phi([x_i, y_i])): a fixed-size vector for a support set of any size."""

    def __init__(self, input_shape: tuple, kind: str, ways: int, dim: int, hidden: int = 64):
        super().__init__()
        self.kind, self.ways, self.dim = kind, ways, dim
        if len(input_shape) == 3 and input_shape[1] >= 8:
            c = input_shape[0]
            self.x_net = nn.Sequential(
                nn.Conv2d(c, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten())
            x_dim = 32
        else:
            self.x_net = nn.Flatten()
            x_dim = math.prod(input_shape)
        y_dim = 1 if kind == "regression" else ways
        self.phi = nn.Sequential(nn.Linear(x_dim + y_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def encode_y(self, y: torch.Tensor, n: int) -> torch.Tensor:
        if self.kind == "regression":
            return y.reshape(n, -1).to(torch.float32)
        return F.one_hot(y.long(), self.ways).to(torch.float32)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(K, *input_shape), (K,) or (K, 1) -> (dim,)."""
        n = x.shape[0]
        h = self.phi(torch.cat([self.x_net(x).reshape(n, -1), self.encode_y(y, n)], dim=1))
        return self.rho(h.mean(0))


class SetEncoderEmbedder:
    """The task embedding recorded at evaluation: the set encoder's output tau on the support set.

    Needs a learner with a set encoder (modulated MAML or FiLM ProtoNet, built by
    ``build_learner`` when ``embedding.method = "set_encoder"``).
    """

    method = "set_encoder"

    def __init__(self, learner):
        if not hasattr(learner, "task_embedding"):
            raise ValueError(f"embedding.method = 'set_encoder' needs a learner with a set encoder "
                             f"(maml, fomaml or protonet built with FiLM); got {type(learner).__name__}")
        self.learner = learner

    @torch.no_grad()
    def __call__(self, task) -> np.ndarray:
        return self.learner.task_embedding(task.support_x, task.support_y).float().cpu().numpy()
