"""FiLM conditioning of a backbone: per-channel scale and shift of hidden activations.

FiLM (Perez et al., AAAI 2018) modulates a hidden activation h with a scale
gamma and a shift beta computed from a conditioning vector:

    FiLM(h) = gamma * h + beta        (per channel / per hidden unit)

Multimodal MAML (Vuorio et al., NeurIPS 2019, sec. 3) computes a task
embedding tau = g(task) from the support set and maps it to one (gamma, beta)
pair per hidden layer of the task network; MAML's inner loop then adapts the
network's weights *under* that modulation.

Where the modulation acts (:func:`modulation_points`): after the normalisation
of every hidden layer of an MLP trunk and of every Conv-4 block, before the
ReLU; after each residual block of a ResNet-12. The modulation is applied by
forward hooks that read the current (gamma, beta) from a :class:`FiLMContext`,
so the backbone itself (and ``torch.func.functional_call`` over it, under vmap
too) stays unchanged, and a backbone with no context set behaves exactly as
before.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from workbench.models import Conv4Trunk, MLPTrunk, ResNet12Trunk


def modulation_points(trunk: nn.Module) -> list[tuple[nn.Module, int]]:
    """(module whose output is modulated, number of channels) for each hidden layer of ``trunk``."""
    if isinstance(trunk, MLPTrunk):
        mods = list(trunk.net)
        out = []
        for i, m in enumerate(mods):
            if isinstance(m, nn.Linear):
                # Flatten, then (Linear, norm-or-Identity, ReLU) per layer: modulate the norm's output
                out.append((mods[i + 1], m.out_features))
        return out
    if isinstance(trunk, Conv4Trunk):
        return [(block[1], block[0].out_channels) for block in trunk.net if isinstance(block, nn.Sequential)]
    if isinstance(trunk, ResNet12Trunk):
        return [(block, block.c3.out_channels) for block in trunk.net if hasattr(block, "c3")]
    raise ValueError(f"FiLM conditioning does not know the trunk {type(trunk).__name__}; "
                     f"expected an MLP, Conv-4 or ResNet-12 trunk")


def film(h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """gamma * h + beta, broadcasting (C,) over h of shape (n, C) or (n, C, H, W)."""
    shape = (1, -1) + (1,) * (h.dim() - 2)
    return gamma.reshape(shape) * h + beta.reshape(shape)


class FiLMContext:
    """Forward hooks on the modulation points of a trunk, reading (gamma, beta) set by :meth:`use`.

    The hooks are registered once; outside ``with ctx.use(params):`` they return
    the activation unchanged.
    """

    def __init__(self, trunk: nn.Module):
        self.points = modulation_points(trunk)
        self.channels = [c for _, c in self.points]
        self._params: list | None = None
        self._handles = [m.register_forward_hook(self._hook(i)) for i, (m, _) in enumerate(self.points)]

    def _hook(self, i: int):
        def hook(module, inputs, output):
            if self._params is None:
                return None
            gamma, beta = self._params[i]
            return film(output, gamma, beta)
        return hook

    @property
    def current(self) -> list | None:
        """The (gamma, beta) pairs in use now (None outside :meth:`use`)."""
        return self._params

    @contextlib.contextmanager
    def use(self, params: list[tuple[torch.Tensor, torch.Tensor]]):
        """Modulate every forward pass inside the block with ``params`` [(gamma_l, beta_l), ...]."""
        if len(params) != len(self.points):
            raise ValueError(f"FiLM needs {len(self.points)} (gamma, beta) pairs, got {len(params)}")
        previous, self._params = self._params, params
        try:
            yield
        finally:
            self._params = previous


class FiLMGenerator(nn.Module):
    """tau -> [(gamma_l, beta_l)] for each modulated layer (one linear map per layer).

    gamma = 1 + W_g tau and beta = W_b tau with small initial weights, so a freshly
    built generator starts close to the identity modulation.
    """

    def __init__(self, dim: int, channels: list[int], init_scale: float = 0.01):
        super().__init__()
        self.channels = list(channels)
        self.layers = nn.ModuleList(nn.Linear(dim, 2 * c) for c in channels)
        for lin in self.layers:
            nn.init.normal_(lin.weight, std=init_scale)
            nn.init.zeros_(lin.bias)

    def forward(self, tau: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for lin, c in zip(self.layers, self.channels):
            gb = lin(tau)
            out.append((1.0 + gb[..., :c], gb[..., c:]))
        return out


class TaskModulation(nn.Module):
    """Set encoder plus FiLM generator: support set -> (tau, [(gamma_l, beta_l)])."""

    def __init__(self, trunk: nn.Module, input_shape: tuple, kind: str, ways: int, dim: int,
                 encoder: str = "deepsets"):
        super().__init__()
        from workbench.models.set_encoder import build_set_encoder
        self.encoder = build_set_encoder(encoder, input_shape, kind, ways, dim)
        ctx = FiLMContext(trunk)
        self.generator = FiLMGenerator(dim, ctx.channels)
        self.context = ctx          # hooks on the trunk: a plain object, not in the state dict

    def forward(self, sx: torch.Tensor, sy: torch.Tensor):
        tau = self.encoder(sx, sy)
        return tau, self.generator(tau)
