"""ANIL: Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals, ICLR 2020).

MAML's meta-objective (Finn et al. eq. 2) with the inner loop (eq. 1) applied
to the head only: theta_head' = theta_head - alpha * grad L(support); the
trunk is shared, meta-learned in the outer loop and frozen during adaptation.
"""

from __future__ import annotations

from workbench.learners.maml import MAML


class ANIL(MAML):
    name = "anil"

    def adapted_names(self) -> list[str]:
        return [n for n, _ in self.backbone.named_parameters() if n.startswith("head.")]
