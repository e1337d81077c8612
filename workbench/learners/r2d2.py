"""R2D2: ridge regression differentiable discriminator (Bertinetto, Henriques, Torr & Vedaldi,
"Meta-learning with differentiable closed-form solvers", ICLR 2019).

The base learner is ridge regression on the backbone's features, solved in closed form on each
task's support set and differentiated through. With X (n x d) the support features (a constant
column of ones appended, the paper's bias feature) and Y (n x ways) their one-hot labels, the ridge
solution (sec. 3.2),

    W = argmin ||X W - Y||^2 + lambda ||W||^2 = (X^T X + lambda I)^{-1} X^T Y,

is computed in its Woodbury form, as the paper does

    W = X^T (X X^T + lambda I)^{-1} Y,

which inverts an n x n matrix: n = ways * shots is tiny next to the feature dimension d. The query
predictions are rescaled by two meta-learned scalars, a scale and a bias (sec. 3.2):

    Y_hat = alpha * X' W + beta,

and the meta-objective is the cross-entropy of Y_hat on the query labels. The backbone, alpha,
beta and the regulariser lambda (meta-learned too, as in the paper; kept positive here as
lambda = exp(log_lambda)) receive the meta-gradient through the
linear solve. Under the softmax cross-entropy a scalar beta shifts every logit equally and gets no
gradient; it matters for regression, where Y is the support targets and the loss is the MSE.
Adaptation needs no gradient steps: the support set's closed-form W is the adapted state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.learners.base import Learner, map_tasks, task_loss, task_metric


def ridge_head(x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Closed-form ridge weights in Woodbury form, W = X^T (X X^T + lam I)^{-1} Y: (d, k) for
    ``x`` (n, d) and targets ``y`` (n, k). Differentiable in x, y and lam; works under vmap."""
    n = x.shape[0]
    gram = x @ x.t() + lam * torch.eye(n, dtype=x.dtype, device=x.device)
    return x.t() @ torch.linalg.solve(gram, y)


def with_bias_column(z: torch.Tensor) -> torch.Tensor:
    return torch.cat([z, torch.ones_like(z[..., :1])], dim=-1)


class R2D2(Learner):
    name = "r2d2"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        o = self.options
        log_lam = torch.tensor(float(o.init_lambda)).log()
        if o.learn_lambda:
            self.log_lambda = nn.Parameter(log_lam)
        else:
            self.register_buffer("log_lambda", log_lam)
        # alpha: regression targets are already in their own units, so it starts at 1 there
        self.scale = nn.Parameter(torch.tensor(1.0 if self.kind == "regression" else float(o.init_scale)))
        self.bias = nn.Parameter(torch.tensor(0.0))                      # beta

    def _targets(self, y: torch.Tensor, dtype, ways: int) -> torch.Tensor:
        if self.kind == "regression":
            return y.to(dtype).reshape(len(y), -1)
        return F.one_hot(y, ways).to(dtype)

    def _embed_pair(self, sx, qx):
        # one pass through the trunk so batch statistics cover the whole episode (as ProtoNet)
        z = self.features(torch.cat([sx, qx]))
        return with_bias_column(z[: len(sx)]), with_bias_column(z[len(sx):])

    def _outputs(self, xs, ys, xq, ways: int | None = None) -> torch.Tensor:
        w = ridge_head(xs, self._targets(ys, xs.dtype, ways or self.ways), self.log_lambda.exp().to(xs.dtype))
        out = self.scale * (xq @ w) + self.bias
        return out.reshape(-1, *ys.shape[1:]) if self.kind == "regression" else out

    def meta_loss(self, batch):
        def one(sx, sy, qx, qy):
            xs, xq = self._embed_pair(sx, qx)
            out = self._outputs(xs, sy, xq, self.train_ways)
            return task_loss(self.kind, out, qy), task_metric(self.kind, out, qy)

        losses, metrics = map_tasks(one, batch, self.strategy)
        return losses.mean(), {self.metric_name(): metrics.mean(),
                               "lambda": self.log_lambda.detach().exp(), "scale": self.scale.detach()}

    def adapt(self, support_x, support_y, steps=None, lr=None):
        # the closed-form head is computed with the query's features in predict (one trunk pass
        # over the episode, as in training); the state is the labelled support set
        return {"support_x": support_x, "support_y": support_y}

    def predict(self, state, x):
        xs, xq = self._embed_pair(state["support_x"], x)
        return self._outputs(xs, state["support_y"], xq)
