"""The straightforward reference strategy: a Python loop over tasks with a cloned model.

This is how most published meta-learning code computes a MAML meta-batch (the
original MAML code's per-task loop, learn2learn's ``clone()`` + ``adapt()``,
the many "MAML in PyTorch" repositories): for every task of the meta-batch,

1. clone the network so that its weights are differentiable functions of the
   meta-parameters (every weight becomes ``p.clone()``, a non-leaf tensor),
2. take ``inner_steps`` gradient steps on the support set with
   :func:`torch.autograd.grad` (``create_graph=True`` for second order),
   writing the new weights back into the clone's modules (Finn et al. 2017, eq. 1),
3. score the adapted clone on the query set and back-propagate that task's
   share of the meta-loss (eq. 2/3) into the meta-parameters' ``.grad``.

It uses the learner's own definitions of *which* parameters adapt
(``adapted_names``, ANIL) and *how* (``inner_update``, Meta-SGD's learned
rates), so it computes exactly the same meta-gradient as the learner's
functional strategies ("loop", "vmap"), only the old-fashioned way. The
benchmark (``benchmarks/bench_meta.py``) times it as the baseline and
``tests/test_strategies.py`` checks the three agree. ProtoNet and other
learners without an inner loop run as a plain per-task loop of forward and
backward passes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from workbench.data.base import TaskBatch
from workbench.learners.base import task_loss, task_metric


def clone_module(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters are differentiable clones of the originals.

    Gradients of anything computed with the copy flow back to ``module``'s parameters.
    """
    twin = copy.deepcopy(module)
    originals = dict(module.named_parameters())
    for name, _ in list(twin.named_parameters()):
        set_weight(twin, name, originals[name].clone())
    return twin


def set_weight(module: nn.Module, dotted: str, value: torch.Tensor) -> None:
    """Put the tensor ``value`` (not necessarily a leaf) where parameter ``dotted`` lives."""
    *path, leaf = dotted.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    owner._parameters[leaf] = value        # bypasses nn.Parameter's leaf check, as clones must


def reference_task(learner, sx, sy, qx, qy, steps: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Query (loss, metric) of one task after adapting a cloned backbone on its support set."""
    twin = clone_module(learner.backbone)
    if getattr(learner, "uses_gradient_inner_loop", False) and steps > 0:
        names = learner.adapted_names()
        weights = {n: _get(twin, n) for n in names}
        second_order = not getattr(learner, "first_order", False)
        for _ in range(steps):
            loss = task_loss(learner.kind, twin(sx), sy)
            grads = torch.autograd.grad(loss, [weights[n] for n in names], create_graph=second_order)
            new = learner.inner_update(weights, dict(zip(names, grads)), lr)
            if not second_order:
                # first order (FOMAML): the step is a constant, so d theta'/d theta = I
                new = {n: weights[n] + (new[n] - weights[n]).detach() for n in names}
            for n in names:
                set_weight(twin, n, new[n])
            weights = new
    if hasattr(learner, "ways") and not getattr(learner, "uses_gradient_inner_loop", False):
        # metric learners (ProtoNet): the "adapted model" is the support set itself
        from workbench.learners.protonet import proto_logits, prototypes
        z = twin.trunk(torch.cat([sx, qx])) if hasattr(twin, "trunk") else twin(torch.cat([sx, qx]))
        zs, zq = z[: len(sx)], z[len(sx):]
        out = proto_logits(zq, prototypes(zs, sy, learner.ways), learner.cfg.distance)
    else:
        out = twin(qx)
    return task_loss(learner.kind, out, qy), task_metric(learner.kind, out, qy)


def _get(module: nn.Module, dotted: str) -> torch.Tensor:
    *path, leaf = dotted.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    return owner._parameters[leaf]


def reference_backward(learner, batch: TaskBatch) -> tuple[torch.Tensor, dict]:
    """Accumulate the meta-gradient of ``batch`` into ``.grad`` task by task; return (meta-loss, metrics).

    Each task's query loss divided by the batch size is back-propagated as soon
    as it is computed (which frees that task's graph), so ``.grad`` ends up
    holding the gradient of the mean query loss, as with the other strategies.
    """
    steps, lr = learner.cfg.inner_steps, learner.cfg.inner_lr
    n = len(batch)
    total, metric = 0.0, 0.0
    for i in range(n):
        loss, m = reference_task(learner, batch.support_x[i], batch.support_y[i], batch.query_x[i],
                                 batch.query_y[i], steps, lr)
        (loss / n).backward()
        total = total + loss.detach()
        metric = metric + m
    return total / n, {learner.metric_name(): metric / n}


def reference_train_step(learner, batch: TaskBatch, optimizer: torch.optim.Optimizer) -> dict:
    """One meta-update computed the reference way (the drop-in for ``learner.train_step``)."""
    optimizer.zero_grad(set_to_none=True)
    loss, metrics = reference_backward(learner, batch)
    optimizer.step()
    return {"loss": loss, **metrics}
