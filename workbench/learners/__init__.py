"""Meta-learners, one module each, all with the shape of :class:`workbench.learners.base.Learner`."""

from __future__ import annotations

from workbench.learners.base import Learner
from workbench.models import build_backbone

__all__ = ["Learner", "build_learner", "head_outputs"]


def head_outputs(cfg, ways: int, n_train_classes: int) -> int:
    name = cfg.learner.name
    if name in ("protonet", "matching"):
        return 0
    if cfg.is_regression:
        return 1
    if name == "multitask":
        return n_train_classes
    return ways


def build_learner(cfg, input_shape: tuple, n_train_classes: int = 0) -> Learner:
    """The learner a config names, with a freshly initialised backbone."""
    kind = "regression" if cfg.is_regression else "classification"
    ways = 1 if cfg.is_regression else cfg.task.ways
    backbone = build_backbone(cfg.model, input_shape, head_outputs(cfg, ways, n_train_classes))
    name = cfg.learner.name
    if cfg.embedding.method == "set_encoder" and name in ("maml", "fomaml", "protonet"):
        from workbench.learners.mmaml import build_modulated  # FiLM-modulated variant (Multimodal MAML)
        return build_modulated(cfg, backbone, input_shape, kind, ways)
    if name in ("maml", "fomaml"):
        from workbench.learners.maml import MAML
        return MAML(backbone, cfg.learner, kind)
    if name == "anil":
        from workbench.learners.anil import ANIL
        return ANIL(backbone, cfg.learner, kind)
    if name == "metasgd":
        from workbench.learners.metasgd import MetaSGD
        return MetaSGD(backbone, cfg.learner, kind)
    if name == "protonet":
        from workbench.learners.protonet import ProtoNet
        return ProtoNet(backbone, cfg.learner, kind, ways)
    if name == "matching":
        from workbench.learners.matching import MatchingNet
        return MatchingNet(backbone, cfg.learner, kind, ways)
    if name == "reptile":
        from workbench.learners.reptile import Reptile
        return Reptile(backbone, cfg.learner, kind)
    if name == "multitask":
        from workbench.learners.multitask import MultiTask
        return MultiTask(backbone, cfg.learner, kind, ways)
    raise ValueError(f"unknown learner {name!r}")
