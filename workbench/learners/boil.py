"""BOIL: body only update in the inner loop (Oh, Yoo, Kim & Yun, "BOIL: Towards Representation Change
for Few-shot Learning", ICLR 2021).

MAML's meta-objective (Finn et al. 2017, eq. 2) with the inner loop (eq. 1) applied to the body
(the feature extractor) only; the head's inner learning rate is zero (the paper's alpha_h = 0,
sec. 3.1):

    theta_b' = theta_b - alpha_b grad_{theta_b} L_support(theta_b, theta_h),    theta_h' = theta_h.

The outer loop meta-learns body and head together on the query losses at (theta_b', theta_h),
differentiated through the inner steps (``learner.first_order`` drops the second-order terms).
It is ANIL turned around: where ANIL reuses the features and adapts the decision boundary, BOIL
keeps the meta-learned head and forces the features themselves to move towards it on every task
(the paper's "representation change"). ``inner_lr`` and ``test_inner_lr`` are alpha_b.
"""

from __future__ import annotations

from workbench.learners.maml import MAML


class BOIL(MAML):
    name = "boil"

    def adapted_names(self) -> list[str]:
        """Every weight of the body; the head (``head.*``) stays as meta-learned."""
        names = [n for n, _ in self.backbone.named_parameters() if not n.startswith("head.")]
        if not names:
            raise ValueError("BOIL adapts the body of the network, and this backbone has no weights before its head")
        return names
