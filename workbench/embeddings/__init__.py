"""Task embeddings: one fixed-size vector per task, so tasks can be compared and plotted.

``make_embedder(cfg, learner)`` returns a callable ``task -> np.ndarray`` (or
None when ``embedding.method = "none"``) with an attribute ``method``.
"""

from __future__ import annotations

import numpy as np
import torch


class PrototypeEmbedder:
    """Mean of the support-set features under the current backbone (TADAM's task
    representation, Oreshkin et al. 2018): the average of the class prototypes."""

    method = "prototype"

    def __init__(self, learner):
        self.learner = learner

    @torch.no_grad()
    def __call__(self, task) -> np.ndarray:
        z = self.learner.features(task.support_x)
        if self.learner.kind == "regression":
            # weight features by targets too, so tasks of one input range but different functions differ
            y = task.support_y.reshape(len(z), -1)
            z = torch.cat([z, z * y], dim=1)
        return z.mean(0).float().cpu().numpy()


def make_embedder(cfg, learner):
    method = cfg.embedding.method
    if method == "none":
        return None
    if method == "prototype":
        return PrototypeEmbedder(learner)
    if method == "fisher":
        from workbench.embeddings.fisher import FisherEmbedder
        return FisherEmbedder(cfg, learner)
    if method == "set_encoder":
        from workbench.embeddings.set_encoder import SetEncoderEmbedder
        return SetEncoderEmbedder(learner)
    raise ValueError(f"unknown embedding method {method!r}")
