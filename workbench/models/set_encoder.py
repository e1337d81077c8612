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

A mean over per-point features sees each point alone, and the shape of a 1-D
function (slope, curvature, kinks) lives in the relations between points. For
regression with scalar inputs, :class:`SortedGRUEncoder` reads the support set
the way Multimodal MAML's regression experiments do (sec. 5.1: a recurrent
encoder over the (x, y) pairs): it sorts the points by x and runs a
bidirectional GRU (Cho et al. 2014) over the sequence of
[x, y, dx, dy, slope] (differences to the previous point), so that it sees
neighbours; its final hidden states give tau. Sorting makes it permutation
invariant again. :func:`build_set_encoder` picks the encoder for
``embedding.encoder``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class SetEncoder(nn.Module):
    """tau = rho(mean_i phi([x_i, y_i])): a fixed-size vector for a support set of any size."""

    def __init__(self, input_shape: tuple, kind: str, ways: int, dim: int, hidden: int = 64,
                 scale: float = 1.0):
        super().__init__()
        self.kind, self.ways, self.dim = kind, ways, dim
        self.scale = float(scale)       # regression only: x and y are divided by it
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
            return y.reshape(n, -1).to(torch.float32) / self.scale
        return F.one_hot(y.long(), self.ways).to(torch.float32)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(K, *input_shape), (K,) or (K, 1) -> (dim,)."""
        n = x.shape[0]
        fx = self.x_net(x).reshape(n, -1)
        if self.kind == "regression":
            fx = fx / self.scale
        h = self.phi(torch.cat([fx, self.encode_y(y, n)], dim=1))
        return self.rho(h.mean(0))


class SortedGRUEncoder(nn.Module):
    """tau of a 1-D regression support set: a bidirectional GRU over the points sorted by x.

    Each point i (in order of x) becomes the feature vector

        s_i = [x_i, y_i, dx_i, dy_i, tanh(dy_i / dx_i / 5)] / scale    (dx_i = x_i - x_{i-1}; 0 for i = 0)

    (the slope term is not divided by ``scale``), a GRU reads s_1..s_K forwards and another one backwards,
    and rho maps their two final hidden states to tau. The GRU cell is written with two linear maps
    (r, z and n gates of Cho et al. 2014) so that it runs under ``torch.func.vmap`` as well as on a
    batch: ``forward`` takes (..., K, 1) inputs and (..., K) or (..., K, 1) targets.
    """

    def __init__(self, dim: int, hidden: int = 64, scale: float = 5.0):
        super().__init__()
        self.kind, self.dim, self.hidden, self.scale = "regression", dim, hidden, float(scale)
        n_in = 5
        self.fwd_x, self.fwd_h = nn.Linear(n_in, 3 * hidden), nn.Linear(hidden, 3 * hidden)
        self.bwd_x, self.bwd_h = nn.Linear(n_in, 3 * hidden), nn.Linear(hidden, 3 * hidden)
        self.rho = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def features(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(..., K, 1), (..., K[, 1]) -> (..., K, 5): the sorted points and their differences."""
        x = x.to(torch.float32)
        y = y.to(torch.float32).reshape(x.shape)
        order = torch.argsort(x, dim=-2)
        x, y = torch.take_along_dim(x, order, dim=-2), torch.take_along_dim(y, order, dim=-2)
        zero = torch.zeros_like(x[..., :1, :])
        dx = torch.cat([zero, x[..., 1:, :] - x[..., :-1, :]], dim=-2)
        dy = torch.cat([zero, y[..., 1:, :] - y[..., :-1, :]], dim=-2)
        slope = torch.tanh(dy / (dx + 1e-2) / 5.0)
        return torch.cat([x / self.scale, y / self.scale, dx / self.scale, dy / self.scale, slope], dim=-1)

    @staticmethod
    def _gru_step(lin_x: nn.Linear, lin_h: nn.Linear, s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One GRU cell update: r, z = sigmoid(.), n = tanh(W_n s + r * U_n h), h' = (1 - z) n + z h."""
        gx, gh = lin_x(s).chunk(3, dim=-1), lin_h(h).chunk(3, dim=-1)
        r, z = torch.sigmoid(gx[0] + gh[0]), torch.sigmoid(gx[1] + gh[1])
        n = torch.tanh(gx[2] + r * gh[2])
        return (1 - z) * n + z * h

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(..., K, 1), (..., K[, 1]) -> (..., dim)."""
        s = self.features(x, y)
        k = s.shape[-2]
        hf = hb = s.new_zeros(s.shape[:-2] + (self.hidden,))
        for i in range(k):
            hf = self._gru_step(self.fwd_x, self.fwd_h, s[..., i, :], hf)
            hb = self._gru_step(self.bwd_x, self.bwd_h, s[..., k - 1 - i, :], hb)
        return self.rho(torch.cat([hf, hb], dim=-1))


ENCODERS = ("auto", "deepsets", "gru")


def resolve_encoder(encoder: str, input_shape: tuple, kind: str) -> str:
    """``embedding.encoder`` with "auto" resolved: the sorted GRU for scalar regression inputs, else DeepSets."""
    if encoder not in ENCODERS:
        raise ValueError(f"embedding.encoder = {encoder!r}: expected one of {', '.join(ENCODERS)}")
    scalar_regression = kind == "regression" and math.prod(input_shape) == 1
    if encoder == "auto":
        return "gru" if scalar_regression else "deepsets"
    if encoder == "gru" and not scalar_regression:
        raise ValueError(f"embedding.encoder = 'gru' sorts the support points by x and needs regression tasks "
                         f"with scalar inputs; got {kind} tasks with inputs of shape {tuple(input_shape)}")
    return encoder


def build_set_encoder(encoder: str, input_shape: tuple, kind: str, ways: int, dim: int) -> nn.Module:
    """The set encoder ``embedding.encoder`` names ("auto", "deepsets" or "gru")."""
    if resolve_encoder(encoder, input_shape, kind) == "gru":
        return SortedGRUEncoder(dim)
    return SetEncoder(input_shape, kind, ways, dim)
