"""A MAML task through Conv-4 as one compiled function: the inner gradient in closed form.

The inner-loop gradient of a task's support loss through a plain Conv-4 backbone (3x3 convolution,
batch norm with batch statistics, ReLU, 2x2 max-pool; linear head) is back-propagation written out
with ordinary differentiable operations, as ``workbench/learners/batched.py`` does for MLPs:

- linear head:   dW = g^T a,  db = sum g,  g_a = g W;
- ReLU (applied after the max-pool, the same function: see batched.py): g_p = g_a * [p > 0];
- 2x2 max-pool:  the gradient goes to the first maximum of each window (``max_unpool2d`` with the
  pool's indices, what torch's max-pool backward does, ties included);
- batch norm with batch statistics (x_hat = (z - mean) * rstd):
  dgamma = sum g x_hat,  dbeta = sum g,  g_z = rstd (g gamma - mean(g gamma) - x_hat mean(g gamma x_hat));
- 3x3 convolution (padding 1): db = sum g_z, dW = ``torch.nn.grad.conv2d_weight``,
  g_x = ``conv_transpose2d(g_z, W, padding=1)``.

The ReLU masks and pooling indices are constants, as they are for autograd (their second derivative
is zero), so differentiating this graph once gives the second-order MAML meta-gradient: the same
function as autograd's double backward through the eager graph. Because the whole task (inner
steps, inner updates, query pass, loss) is then an ordinary first-order graph, torch.compile
(inductor, through AOTAutograd) compiles its forward *and* its backward pass, the second-order part
included, which eager double backward cannot be compiled into. First-order MAML uses the same
function with the inner loop on detached weights (theta + stop_grad(theta' - theta)).

Exactness against the reference is tested in tests/test_strategies.py (float32 and float64,
second and first order, with and without batch norm, ties in the pooling windows); which learners
it serves is ``workbench.train.strategy.closed_applies``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.learners.batched import _Compiled, conv4_blocks, output_gradient


def _forward_cached(params: dict, blocks: tuple, x: torch.Tensor, with_head: bool):
    """Conv-4 (ReLU after the max-pool) with what the closed-form backward needs, per block."""
    caches = []
    for prefix, eps, pool in blocks:
        w = params[prefix + "0.weight"]
        z = F.conv2d(x, w, params[prefix + "0.bias"], padding=1)
        c = {"x": x, "shape": z.shape}
        if eps is not None:
            var, mean = torch.var_mean(z, dim=(0, 2, 3), keepdim=True, correction=0)
            rstd = torch.rsqrt(var + eps)
            xhat = (z - mean) * rstd
            c["xhat"], c["rstd"] = xhat, rstd
            u = xhat * params[prefix + "1.weight"].view(1, -1, 1, 1) + params[prefix + "1.bias"].view(1, -1, 1, 1)
        else:
            u = z
        if pool:
            u, c["idx"] = F.max_pool2d(u, 2, return_indices=True)
        c["mask"] = u > 0
        x = u * c["mask"]
        caches.append(c)
    feats = x.flatten(1)
    out = F.linear(feats, params["head.weight"], params["head.bias"]) if with_head else feats
    return out, feats, caches


def inner_gradient(kind: str, params: dict, blocks: tuple, x, y, wanted: set) -> dict:
    """The gradient of the support loss (cross-entropy / MSE of the head's outputs) with respect to
    the parameters named in ``wanted``, in closed form (differentiable, any order)."""
    out, feats, caches = _forward_cached(params, blocks, x, True)
    g = output_gradient(kind, out, y)
    grads = {}
    if "head.weight" in wanted:
        grads["head.weight"] = g.t() @ feats
    if "head.bias" in wanted:
        grads["head.bias"] = g.sum(0)
    lowest = next((i for i, (p, _, _) in enumerate(blocks) if any(n.startswith(p) for n in wanted)), None)
    if lowest is None:
        return grads
    g = (g @ params["head.weight"]).reshape(caches[-1]["mask"].shape)
    for i in range(len(blocks) - 1, lowest - 1, -1):
        prefix, eps, pool = blocks[i]
        c = caches[i]
        g = g * c["mask"]
        if pool:
            g = F.max_unpool2d(g, c["idx"], 2, output_size=c["shape"][-2:])
        if eps is not None:
            xhat, dims = c["xhat"], (0, 2, 3)
            if prefix + "1.weight" in wanted:
                grads[prefix + "1.weight"] = (g * xhat).sum(dims)
            if prefix + "1.bias" in wanted:
                grads[prefix + "1.bias"] = g.sum(dims)
            gx = g * params[prefix + "1.weight"].view(1, -1, 1, 1)
            g = c["rstd"] * (gx - gx.mean(dims, keepdim=True) - xhat * (gx * xhat).mean(dims, keepdim=True))
        w = params[prefix + "0.weight"]
        if prefix + "0.weight" in wanted:
            grads[prefix + "0.weight"] = torch.nn.grad.conv2d_weight(c["x"], w.shape, g, padding=1)
        if prefix + "0.bias" in wanted:
            grads[prefix + "0.bias"] = g.sum((0, 2, 3))
        if i > lowest:
            g = F.conv_transpose2d(g, w, padding=1)
    return grads


def _query_forward(params: dict, blocks: tuple, x: torch.Tensor) -> torch.Tensor:
    for prefix, eps, pool in blocks:
        x = F.conv2d(x, params[prefix + "0.weight"], params[prefix + "0.bias"], padding=1)
        if eps is not None:
            x = F.batch_norm(x, None, None, params[prefix + "1.weight"], params[prefix + "1.bias"], True, 0.0, eps)
        x = F.relu(F.max_pool2d(x, 2)) if pool else F.relu(x)
    return F.linear(x.flatten(1), params["head.weight"], params["head.bias"])


def task_function(blocks: tuple, kind: str, names: tuple, steps: int, first_order: bool):
    """``f(fast, fixed, lr, sx, sy, qx, qy) -> (query loss, query outputs)`` of one MAML task:
    ``steps`` plain gradient steps (theta - lr g, closed-form g) on the support set from ``fast``
    (the adapted parameters, ``names``), then the query pass."""
    wanted = set(names)

    def adapt(fast, fixed, lr, sx, sy):
        for _ in range(steps):
            grads = inner_gradient(kind, {**fixed, **fast}, blocks, sx, sy, wanted)
            fast = {n: p - lr * grads[n] for n, p in fast.items()}
        return fast

    def f(fast: dict, fixed: dict, lr, sx, sy, qx, qy):
        if first_order:
            done = adapt({n: p.detach() for n, p in fast.items()}, {n: p.detach() for n, p in fixed.items()},
                         lr, sx, sy)
            adapted = {n: fast[n] + (done[n] - fast[n]).detach() for n in fast}
        else:
            adapted = adapt(fast, fixed, lr, sx, sy)
        out = _query_forward({**fixed, **adapted}, blocks, qx)
        loss = F.mse_loss(out, qy) if kind == "regression" else F.cross_entropy(out, qy)
        return loss, out.detach()

    return f


_TASKS: dict = {}


def compiled_task(learner) -> _Compiled:
    """The torch.compile'd :func:`task_function` for this learner's structure (compiled on first use,
    once per input shape; falls back to the eager function where inductor cannot compile)."""
    fast, _ = learner._split()
    key = (conv4_blocks(learner.backbone), learner.kind, tuple(fast), int(learner.cfg.inner_steps),
           bool(learner.first_order))
    if key not in _TASKS:
        _TASKS[key] = _Compiled(task_function(*key))
    return _TASKS[key]


def meta_loss(learner, batch, compiled: bool = True):
    """``learner.meta_loss(batch)`` for an eligible MAML learner (strategy.closed_applies), task by task
    through the closed-form task function (compiled unless ``compiled`` is false)."""
    from workbench.learners.base import task_metric
    fast, fixed = learner._split()
    fn = compiled_task(learner) if compiled else task_function(*(
        conv4_blocks(learner.backbone), learner.kind, tuple(fast), int(learner.cfg.inner_steps),
        bool(learner.first_order)))
    lr = float(learner.cfg.inner_lr)
    losses, metrics = [], []
    for i in range(len(batch)):
        qy = batch.query_y[i]
        loss, out = fn(fast, fixed, lr, batch.support_x[i], batch.support_y[i], batch.query_x[i], qy)
        losses.append(loss)
        metrics.append(task_metric(learner.kind, out, qy))
    return torch.stack(losses).mean(), {learner.metric_name(): torch.stack(metrics).mean()}
