"""The own config sections of MAML++, Proto-MAML and CAVIA (``[mamlpp]``, ``[protomaml]``, ``[cavia]``),
declared with :func:`workbench.fields.F`.

They live apart from the learners' modules because the registry, which the window reads at start-up,
names them: this module imports neither torch nor Qt. The learners read them as ``self.options``.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.fields import F


def _msl_on(cfg) -> bool:
    return cfg.section("mamlpp").multi_step_loss


@dataclass
class MAMLppOptions:
    """MAML++ (Antoniou, Edwards & Storkey, ICLR 2019): each of the paper's fixes can be switched off."""

    multi_step_loss: bool = F(True, "MSL: score the query set after every inner step, with weights that move "
                                    "towards the last step's loss as training goes on", label="Multi-step loss")
    msl_fraction: float = F(0.1, "Share of meta-training over which the multi-step loss weights anneal; after it "
                                 "only the last step's loss counts (the paper: 10 of 100 epochs)", min=0.0, max=1.0,
                            label="Multi-step loss share", applies=_msl_on)
    first_order_fraction: float = F(0.3, "DA: share of meta-training run first order before switching to second "
                                         "order (derivative-order annealing; the paper: the first 50 epochs)",
                                    min=0.0, max=1.0, label="First-order share")
    learn_inner_lr: bool = F(True, "LSLR: meta-learn one inner learning rate per layer and per step (starting "
                                   "at the inner learning rate); off keeps them fixed", label="Learn per-step rates")
    cosine_meta_lr: bool = F(True, "CA: anneal the meta learning rate along a cosine to 1% of its value at the "
                                   "last step", label="Cosine meta learning rate")
    running_stats: bool = F(False, "BNRS at test time: normalise test tasks with per-step running statistics "
                                   "gathered in meta-training instead of each batch's own (the authors' code "
                                   "normalises with batch statistics)", advanced=True, label="Per-step running stats")


@dataclass
class ProtoMAMLOptions:
    """Proto-MAML (Triantafillou et al., ICLR 2020)."""

    adapt: str = F("all", "Weights the inner loop adapts after the prototype initialisation: all of them "
                          "(Meta-Dataset's Proto-MAML) or the prototype head only (cheaper)",
                   choices=("all", "head"), label="Adapted weights")


@dataclass
class CAVIAOptions:
    """CAVIA (Zintgraf, Shiarlis, Kurin, Hofmann & Whiteson, ICML 2019)."""

    context_dim: int = F(16, "Size of the context vector adapted in the inner loop, from zero on every task "
                             "(the paper: 2-5 for regression, 100 for mini-ImageNet)", min=1, max=4096,
                         label="Context size")
    modulation: str = F("shift", "How the context enters the first layer: shift (adds W phi to its outputs, "
                                 "the same as concatenating phi to an MLP's input) or film (scale and shift, "
                                 "the paper's choice for convolutions)", choices=("shift", "film"),
                        label="Context modulation")
    layer: str = F("first", "Which layer the context modulates: the trunk's first linear or convolution layer "
                            "(the paper's regression networks) or its last one, next to the head",
                   choices=("first", "last"), label="Context layer")
