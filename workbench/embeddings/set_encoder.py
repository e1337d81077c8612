"""The learned set encoder as a task embedding: tau = g(support set), recorded at each evaluation.

The encoder networks themselves (DeepSets, sorted GRU) live in :mod:`workbench.models.set_encoder`.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.models.set_encoder import (ENCODERS, SetEncoder, SortedGRUEncoder,  # noqa: F401 (re-exported)
                                          build_set_encoder, resolve_encoder)


class SetEncoderEmbedder:
    """The task embedding recorded at evaluation: the set encoder's output tau on the support set.

    Needs a learner with a set encoder (modulated MAML or FiLM ProtoNet, built by
    ``build_learner`` when ``embedding.method = "set_encoder"``).
    """

    method = "set_encoder"

    def __init__(self, learner):
        if not hasattr(learner, "task_embedding"):
            raise ValueError(f"embedding.method = 'set_encoder' needs a learner with a set encoder "
                             f"(maml, fomaml or protonet built with FiLM); got {type(learner).__name__}")
        self.learner = learner

    @torch.no_grad()
    def __call__(self, task) -> np.ndarray:
        return self.learner.task_embedding(task.support_x, task.support_y).float().cpu().numpy()
