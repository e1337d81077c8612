"""Backbones: MLP, Conv-4 and ResNet-12, each a trunk (features) plus a linear head.

The normalisation policy is explicit (``model.norm``):
- ``batch``: BatchNorm using the statistics of the current batch only, never
  running averages (what the reference MAML code does in effect), so train and
  test behave alike and nothing depends on ``.train()``/``.eval()``;
- ``group``: GroupNorm; ``none``: no normalisation.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def norm_layer(policy: str, channels: int, dims: int = 2) -> nn.Module:
    if policy == "batch":
        # nn.BatchNorm1d/2d without running statistics, exact under vmap (models/norm.py)
        from workbench.models.norm import batch_norm
        return batch_norm(channels, dims)
    if policy == "group":
        return nn.GroupNorm(min(8, channels) if channels % min(8, channels) == 0 else 1, channels)
    return nn.Identity()


class Backbone(nn.Module):
    """``forward(x) = head(trunk(x))``; ``trunk`` gives a flat feature vector."""

    def __init__(self, trunk: nn.Module, feature_dim: int, n_outputs: int):
        super().__init__()
        self.trunk = trunk
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, n_outputs) if n_outputs > 0 else None

    def forward(self, x):
        z = self.trunk(x)
        return self.head(z) if self.head is not None else z


class MLPTrunk(nn.Module):
    def __init__(self, in_dim: int, hidden: list[int], norm: str):
        super().__init__()
        layers, d = [nn.Flatten()], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), norm_layer(norm, h, dims=1) if norm != "group" else nn.Identity(),
                       nn.ReLU()]
            d = h
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, x):
        return self.net(x)

    @classmethod
    def from_config(cls, input_shape: tuple, model_cfg) -> "MLPTrunk":
        return cls(math.prod(input_shape), list(model_cfg.hidden), model_cfg.norm)


def conv_block(cin: int, cout: int, norm: str, pool: bool = True) -> nn.Sequential:
    mods = [nn.Conv2d(cin, cout, 3, padding=1), norm_layer(norm, cout), nn.ReLU()]
    if pool:
        mods.append(nn.MaxPool2d(2))
    return nn.Sequential(*mods)


class Conv4Trunk(nn.Module):
    """Four 3x3 conv blocks (conv, norm, ReLU, 2x2 max-pool), Vinyals et al. / Finn et al."""

    def __init__(self, in_shape: tuple, filters: int, norm: str):
        super().__init__()
        c, h, w = in_shape
        blocks = []
        for i in range(4):
            pool = h >= 2 and w >= 2
            blocks.append(conv_block(c if i == 0 else filters, filters, norm, pool))
            if pool:
                h, w = h // 2, w // 2
        self.net = nn.Sequential(*blocks, nn.Flatten())
        self.out_dim = filters * h * w

    def forward(self, x):
        return self.net(x)

    @classmethod
    def from_config(cls, input_shape: tuple, model_cfg) -> "Conv4Trunk":
        return cls(input_shape, model_cfg.filters, model_cfg.norm)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__()
        self.c1, self.n1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), norm_layer(norm, cout)
        self.c2, self.n2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), norm_layer(norm, cout)
        self.c3, self.n3 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), norm_layer(norm, cout)
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), norm_layer(norm, cout))
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        out = self.act(self.n1(self.c1(x)))
        out = self.act(self.n2(self.c2(out)))
        out = self.n3(self.c3(out))
        return self.pool(self.act(out + self.skip(x)))


class ResNet12Trunk(nn.Module):
    """ResNet-12 (Oreshkin et al., TADAM; Lee et al., MetaOptNet): four residual blocks
    of three 3x3 convs, widths 64-160-320-640 (scaled), global average pooling."""

    def __init__(self, in_shape: tuple, filters: int, norm: str):
        super().__init__()
        widths = [max(4, int(round(w * filters / 64))) for w in (64, 160, 320, 640)]
        c = in_shape[0]
        blocks = []
        for w in widths:
            blocks.append(ResBlock(c, w, norm))
            c = w
        self.net = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = c

    def forward(self, x):
        return self.net(x)

    @classmethod
    def from_config(cls, input_shape: tuple, model_cfg) -> "ResNet12Trunk":
        return cls(input_shape, model_cfg.filters, model_cfg.norm)


def pick_backbone(model_cfg, input_shape: tuple) -> str:
    if model_cfg.backbone != "auto":
        return model_cfg.backbone
    if len(input_shape) == 3 and input_shape[1] >= 16:
        return "conv4"
    return "mlp"


def build_backbone(model_cfg, input_shape: tuple, n_outputs: int) -> Backbone:
    """A backbone for inputs of ``input_shape`` with ``n_outputs`` head outputs (0: no head)."""
    from workbench import registry
    kind = pick_backbone(model_cfg, input_shape)
    spec = registry.backbones.get(kind)
    if spec.images and len(input_shape) != 3:
        raise ValueError(f"model.backbone = {kind!r} needs image inputs (C, H, W); these are {input_shape}")
    cls = spec.load()
    # a trunk is built from (input_shape, model_cfg): by its from_config, else by its constructor
    trunk = cls.from_config(input_shape, model_cfg) if hasattr(cls, "from_config") else cls(input_shape, model_cfg)
    return Backbone(trunk, trunk.out_dim, n_outputs)


@torch.no_grad()
def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
