"""Meta-learners, one module each, all with the shape of :class:`workbench.learners.base.Learner`.

Which learners exist, and what each needs, is declared once in :mod:`workbench.registry`
(``BUILTIN_LEARNERS``, plus plugins); this package only builds them. Importing it does not
import torch: the window reads learner names and declarations without the engine.
"""

from __future__ import annotations

from workbench import registry

__all__ = ["Learner", "Setting", "build_learner", "head_outputs", "spec_of"]


def __getattr__(name):          # Learner and Setting come with torch, on first use
    if name in ("Learner", "Setting"):
        from workbench.learners import base
        return getattr(base, name)
    raise AttributeError(name)


def spec_of(cfg) -> registry.LearnerSpec:
    """The registry's declaration of the learner ``cfg.learner.name`` names."""
    return registry.learners.get(cfg.learner.name)


def head_outputs(cfg, ways: int, n_train_classes: int) -> int:
    return spec_of(cfg).head_outputs(ways, n_train_classes, cfg.is_regression)


def build_learner(cfg, input_shape: tuple, n_train_classes: int = 0):
    """The learner a config names, with a freshly initialised backbone.

    Every learner class is constructed the same way: ``cls(backbone, cfg, setting)`` with the
    experiment config and a :class:`~workbench.learners.base.Setting` (task kind, ways, input
    shape, meta-train classes). With ``embedding.method = "set_encoder"`` the learner's declared
    FiLM-modulated variant is built instead.
    """
    from workbench.learners.base import Setting
    from workbench.models import build_backbone
    spec = spec_of(cfg)
    ways = 1 if cfg.is_regression else cfg.task.ways
    setting = Setting("regression" if cfg.is_regression else "classification", ways, tuple(input_shape),
                      n_train_classes)
    backbone = build_backbone(cfg.model, input_shape, spec.head_outputs(ways, n_train_classes, cfg.is_regression))
    if cfg.embedding.method == "set_encoder":
        if not spec.modulated:
            raise ValueError(f"embedding.method = 'set_encoder' does not work with {spec.name!r}")
        cls = registry.LearnerSpec(spec.name, spec.modulated, spec.label).load()
    else:
        cls = spec.load()
    learner = cls(backbone, cfg, setting)
    learner.spec = spec
    return learner
