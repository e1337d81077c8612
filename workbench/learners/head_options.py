"""The own config sections of R2D2, Relation Networks and Baseline/Baseline++ (``[r2d2]``,
``[relationnet]``, ``[multitask]``, ``[baselinepp]``), declared with :func:`workbench.fields.F`.

They live apart from the learners' modules because the registry, which the window reads at
start-up, names them: this module imports neither torch nor Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.fields import F

_CLASSIFIER_HELP = "Head of pre-training and fine-tuning: linear (Baseline) or cosine similarity with a scale (Baseline++)"


def _cosine(cfg) -> bool:
    return cfg.section(cfg.learner.name).classifier == "cosine"


@dataclass
class BaselineOptions:
    """Baseline (Chen et al. 2019): linear classifier by default."""

    classifier: str = F("linear", _CLASSIFIER_HELP, choices=("linear", "cosine"), label="Classifier")
    scale: float = F(10.0, "Cosine classifier: the constant the cosine similarities are multiplied by before "
                           "the softmax", min=0.01, max=1000.0, label="Cosine scale", applies=_cosine)


@dataclass
class BaselinePPOptions(BaselineOptions):
    """Baseline++: the same learner with the cosine classifier by default."""

    classifier: str = F("cosine", _CLASSIFIER_HELP, choices=("linear", "cosine"), label="Classifier")


@dataclass
class R2D2Options:
    init_lambda: float = F(1.0, "Initial ridge regulariser lambda (meta-learned from there when 'learn lambda' "
                                "is on)", min=1e-6, max=1e6, label="Initial lambda")
    learn_lambda: bool = F(True, "Meta-learn lambda, as the paper does; off keeps it fixed", label="Learn lambda")
    init_scale: float = F(10.0, "Classification: initial value of the learned output scale alpha (ridge outputs lie near [0, 1]; "
                                "the scale spreads them for the softmax)", min=1e-6, max=1e6, label="Initial scale")


@dataclass
class RelationOptions:
    hidden: int = F(64, "Width of the relation module's first layer (on the concatenated class and query "
                        "features)", min=1, max=4096, label="Relation width")
    top: int = F(8, "Width of the relation module's last hidden layer (8 in the paper)", min=1, max=1024,
                 label="Relation top width")
