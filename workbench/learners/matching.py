"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016).

A query x^ is labelled by attention over the labelled support set S = {(x_i, y_i)}
(eq. 1): P(y^ | x^, S) = sum_i a(x^, x_i) y_i, with y_i one-hot, and the attention
a softmax over cosine similarities c of the embeddings (eq. 2):
a(x^, x_i) = exp(c(f(x^), g(x_i))) / sum_j exp(c(f(x^), g(x_j))).
Training minimises the query negative log-likelihood; a new task needs no
gradient steps (``inner_steps`` is ignored). The class probabilities are
returned as log-probabilities, log P(k) = logsumexp_{i: y_i = k} c_i - logsumexp_j c_j,
so that ``cross_entropy`` of the output is exactly the NLL of eq. 1.

f = g = the backbone's trunk, unless ``matching_fce`` (full-context embeddings,
the paper's appendix A.2), where

- g(x_i, S) = h->_i + h<-_i + g'(x_i): a bidirectional LSTM runs over the support
  embeddings g'(x_i) in episode order and its two hidden states are added to
  the embedding as a skip connection (A.2, eq. for g);
- f(x^, S) = attLSTM(f'(x^), g(S), K): K "processing" steps of an LSTM whose
  input is always f'(x^) and whose hidden state is [h_{k-1}, r_{k-1}], with
  h_k = h^_k + f'(x^) and the read-out r_k = sum_i softmax_i(h_k . g(x_i)) g(x_i).

Simplifications, documented: the LSTM cells are written out (one linear map to
the four gates) so that they run under ``torch.func.vmap``; K = ``FCE_STEPS``
(the paper does not fix K); the hidden size equals the embedding size so that
the skip connections add without projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.learners.base import Learner, task_loss, task_metric

FCE_STEPS = 3        # K, processing steps of the attention LSTM


def matching_logits(query: torch.Tensor, support: torch.Tensor, support_y: torch.Tensor,
                    ways: int) -> torch.Tensor:
    """Log P(y = k | x^, S) of eq. 1-2 for queries (q, d), support (n, d), labels (n,): (q, ways)."""
    sims = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).t()          # c(f(x^), g(x_i)), (q, n)
    mask = F.one_hot(support_y, ways).t().to(sims.dtype)                          # (ways, n)
    neg_inf = torch.finfo(sims.dtype).min
    # logsumexp over the support items of each class; -inf-like where an item is not of class k
    per_class = sims.unsqueeze(1) + (1.0 - mask).unsqueeze(0) * neg_inf           # (q, ways, n)
    class_scores = torch.logsumexp(per_class, dim=-1)                             # (q, ways)
    return class_scores - torch.logsumexp(sims, dim=-1, keepdim=True)


class LSTMCell(nn.Module):
    """A plain LSTM cell, (x, h, c) -> (h', c'); written out so that it runs under vmap."""

    def __init__(self, input_size: int, hidden_size: int, state_size: int | None = None):
        super().__init__()
        self.gates = nn.Linear(input_size + (state_size or hidden_size), 4 * hidden_size)

    def forward(self, x, h, c):
        i, f, g, o = self.gates(torch.cat([x, h], dim=-1)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class FullContextEmbedding(nn.Module):
    """The appendix's g (bidirectional LSTM over the support set) and f (attention LSTM)."""

    def __init__(self, dim: int, steps: int = FCE_STEPS):
        super().__init__()
        self.steps = steps
        self.forward_cell = LSTMCell(dim, dim)
        self.backward_cell = LSTMCell(dim, dim)
        self.attention_cell = LSTMCell(dim, dim, state_size=2 * dim)

    def _run(self, cell, seq):
        h = c = seq.new_zeros(seq.shape[-1])
        out = []
        for t in range(seq.shape[0]):
            h, c = cell(seq[t], h, c)
            out.append(h)
        return torch.stack(out)

    def embed_support(self, gs: torch.Tensor) -> torch.Tensor:
        """g(x_i, S) = h->_i + h<-_i + g'(x_i) for support embeddings (n, d)."""
        fwd = self._run(self.forward_cell, gs)
        bwd = self._run(self.backward_cell, gs.flip(0)).flip(0)
        return fwd + bwd + gs

    def embed_query(self, fq: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """f(x^, S) after K attention-LSTM steps for query embeddings (q, d) and g(S) (n, d)."""
        h = torch.zeros_like(fq)
        c = torch.zeros_like(fq)
        r = torch.zeros_like(fq)
        for _ in range(self.steps):
            h_hat, c = self.attention_cell(fq, torch.cat([h, r], dim=-1), c)
            h = h_hat + fq
            r = torch.softmax(h @ g.t(), dim=-1) @ g
        return h


class MatchingNet(Learner):
    name = "matching"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        self.fce = FullContextEmbedding(backbone.feature_dim) if self.cfg.matching_fce else None

    def logits(self, sx, sy, x, ways: int | None = None) -> torch.Tensor:
        """Log-probabilities (len(x), ways) of queries ``x`` given the support set (sx, sy) of ``ways``
        classes (default: the test episodes' ways)."""
        # one pass through the trunk so batch statistics cover the whole episode (as ProtoNet)
        z = self.features(torch.cat([sx, x]))
        zs, zq = z[: len(sx)], z[len(sx):]
        if self.fce is not None:
            zs = self.fce.embed_support(zs)
            zq = self.fce.embed_query(zq, zs)
        return matching_logits(zq, zs, sy, ways or self.ways)

    def meta_loss(self, batch):
        def one(sx, sy, qx, qy):
            out = self.logits(sx, sy, qx, self.train_ways)
            return task_loss(self.kind, out, qy), task_metric(self.kind, out, qy)

        return self.mean_over_tasks(one, batch)

    def adapt(self, support_x, support_y, steps=None, lr=None):
        # nothing to optimise: the state is the labelled support set itself
        return {"support_x": support_x, "support_y": support_y}

    def predict(self, state, x):
        return self.logits(state["support_x"], state["support_y"], x)
