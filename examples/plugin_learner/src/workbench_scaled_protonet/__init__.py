"""The plugin's declaration: what the workbench needs to know about the learner, without torch.

Step 1 of docs/plugins.md. This module is what the entry point names; it must import quickly
(the window reads it at start-up), so the learner class itself lives in ``learner.py`` and is
named by ``target``.
"""

from dataclasses import dataclass

from workbench.fields import F
from workbench.registry import LearnerSpec


@dataclass
class Options:
    """The learner's own config fields: a section [scaled_protonet] in the experiment config."""

    init_scale: float = F(1.0, "Starting value of the metric scale alpha (TADAM sec. 3.1)", min=1e-3, max=1e3,
                          label="Initial metric scale")
    learn_scale: bool = F(True, "Meta-learn alpha with the backbone (false: keep it fixed)",
                          label="Learn the scale")


SPEC = LearnerSpec(
    name="scaled_protonet",
    target="workbench_scaled_protonet.learner:ScaledProtoNet",
    label="ProtoNet, learned metric scale",
    paper="Oreshkin, Rodriguez & Lacoste, TADAM, NeurIPS 2018, sec. 3.1",
    help="Prototypical Networks whose distances are multiplied by a meta-learned scale",
    fields=(),                 # reads no learner.* field beyond name, meta_lr and meta_batch
    options=Options,
    regression=False,          # classifies by prototypes: no regression
    head="none",               # the backbone gives features only
    origin="workbench-scaled-protonet",
    version="0.1.0",
)
