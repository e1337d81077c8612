"""The "batched" strategy: a whole meta-batch of MLP tasks as a few batched matrix products.

For an MLP backbone (linear layers, ReLU, no normalisation, linear head) the inner-loop gradient
of a task's support loss has a closed form: back-propagation written out by hand,

    g_L = dloss/dout,   dW_l = g_l^T a_{l-1},   db_l = sum_n g_l,   g_{l-1} = (g_l W_l) * [z_{l-1} > 0],

with ``dloss/dout = 2 (out - y) / numel`` for the mean squared error and
``(softmax(out) - onehot(y)) / n`` for cross-entropy. Every task's weights are one slice of a
stacked tensor (B, out, in), so the forward pass, the inner gradient and the inner update of all
tasks are a handful of ``matmul`` calls on (B, n, d) tensors instead of B small graphs. The closed
form is built from differentiable operations, so the second-order meta-gradient is autograd of
this compact graph: the same function as differentiating through ``torch.autograd.grad`` (the
ReLU mask is a constant there too, its second derivative being zero), checked against autograd
and finite differences in tests/test_fast_paths.py.

It serves MAML, first-order MAML, ANIL, Meta-SGD and any MAML subclass that changes only which
parameters adapt (``adapted_names``); ``workbench.train.strategy.batched_applies`` says whether a
learner qualifies, and the engine picks the strategy only then.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.data.base import TaskBatch

def mlp_layers(backbone: nn.Module) -> list[tuple[str, str]] | None:
    """(weight name, bias name) of each linear layer of an MLP backbone, input to head; None when
    the backbone is anything else (normalisation, other activations, convolutions, no head)."""
    from workbench.models import MLPTrunk
    trunk, head = getattr(backbone, "trunk", None), getattr(backbone, "head", None)
    if not isinstance(trunk, MLPTrunk) or not isinstance(head, nn.Linear) or head.bias is None:
        return None
    mods = list(trunk.net)
    if not mods or not isinstance(mods[0], nn.Flatten):
        return None
    body, layers = mods[1:], []
    if len(body) % 3:
        return None
    for i in range(0, len(body), 3):
        lin, norm, act = body[i:i + 3]
        if not (isinstance(lin, nn.Linear) and lin.bias is not None and isinstance(norm, nn.Identity)
                and type(act) is nn.ReLU):
            return None
        layers.append((f"trunk.net.{i + 1}.weight", f"trunk.net.{i + 1}.bias"))
    return layers + [("head.weight", "head.bias")]


def forward(params: dict, layers, x: torch.Tensor) -> tuple[torch.Tensor, list, list]:
    """Outputs (B, n, d_out) of the MLP for inputs ``x`` (B, n, ...) under ``params``: each a
    shared (out, in) tensor or per-task (B, out, in). Also the layer inputs and ReLU masks."""
    a = x.flatten(2)
    inputs, masks = [], []
    for i, (wn, bn) in enumerate(layers):
        inputs.append(a)
        z = torch.matmul(a, params[wn].transpose(-1, -2)) + params[bn].unsqueeze(-2)
        if i < len(layers) - 1:
            mask = z > 0
            masks.append(mask)
            a = z * mask
        else:
            a = z
    return a, inputs, masks


def output_gradient(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d(task loss)/d(out) for each task: the mean squared error or the mean cross-entropy."""
    if kind == "regression":
        return 2.0 * (out - y) / (out.shape[-2] * out.shape[-1])
    return (torch.softmax(out, -1) - F.one_hot(y, out.shape[-1]).to(out.dtype)) / out.shape[-2]


def inner_gradient(kind: str, params: dict, layers, x, y, wanted: set) -> dict:
    """The gradient of each task's support loss with respect to the parameters in ``wanted``,
    in closed form, per task: tensors (B, *shape)."""
    out, inputs, masks = forward(params, layers, x)
    g = output_gradient(kind, out, y)
    grads = {}
    lowest = min(i for i, (wn, bn) in enumerate(layers) if wn in wanted or bn in wanted)
    for i in range(len(layers) - 1, lowest - 1, -1):
        wn, bn = layers[i]
        if wn in wanted:
            grads[wn] = torch.matmul(g.transpose(-1, -2), inputs[i])
        if bn in wanted:
            grads[bn] = g.sum(-2)
        if i > lowest:
            g = torch.matmul(g, params[wn]) * masks[i - 1]
    return grads


def task_losses(kind: str, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task (loss, metric), (B,) each: mean squared error / cross-entropy, and MSE / accuracy."""
    if kind == "regression":
        loss = ((out - y) ** 2).mean(dim=(-2, -1))
        return loss, loss.detach()
    b, n, c = out.shape
    loss = F.cross_entropy(out.reshape(b * n, c), y.reshape(b * n), reduction="none").reshape(b, n).mean(-1)
    return loss, (out.detach().argmax(-1) == y).float().mean(-1)


def adapt_batched(learner, layers, fast: dict, fixed: dict, sx, sy, steps: int, lr) -> dict:
    """``steps`` inner updates of every task at once; ``fast`` starts shared and becomes (B, ...)."""
    wanted = set(fast)
    for _ in range(steps):
        grads = inner_gradient(learner.kind, {**fixed, **fast}, layers, sx, sy, wanted)
        fast = learner.inner_update(fast, grads, lr)
    return fast


def meta_loss(learner, batch: TaskBatch) -> tuple[torch.Tensor, dict]:
    """``learner.meta_loss(batch)`` for an eligible learner (:func:`applies`), all tasks at once."""
    layers = mlp_layers(learner.backbone)
    fast, fixed = learner._split()
    steps, lr = learner.cfg.inner_steps, learner.cfg.inner_lr
    sx, sy, qx, qy = batch.support_x, batch.support_y, batch.query_x, batch.query_y
    if not learner.first_order:
        adapted = adapt_batched(learner, layers, fast, fixed, sx, sy, steps, lr)
    else:
        # first order: adapt detached weights; theta + stop_grad(theta' - theta) (as in MAML._adapted)
        with torch.no_grad():
            done = adapt_batched(learner, layers, {n: p.detach() for n, p in fast.items()},
                                 {n: p.detach() for n, p in fixed.items()}, sx, sy, steps, lr)
        adapted = {n: fast[n] + (done[n] - fast[n]).detach() for n in fast}
    out, _, _ = forward({**fixed, **adapted}, layers, qx)
    losses, metrics = task_losses(learner.kind, out, qy)
    return losses.mean(), {learner.metric_name(): metrics.mean()}


# --------------------------------------------------------------------------------------------------
# Conv-4 on the CPU: the query pass compiled (strategy "compiled")
# --------------------------------------------------------------------------------------------------
# Measured on this 2-core CPU (docs/benchmarks.md): the Conv-4 meta-step is bound by memory traffic,
# not arithmetic: batch norm, ReLU and max-pool over the 64-channel 28x28 activations take about
# three quarters of it. torch.compile (inductor) fuses them into a few loops; stacking the tasks into
# one grouped convolution, channels-last and the composite batch norm were each measured slower.
# ReLU after the max-pool (the same function: both are monotone, max(relu(a), relu(b)) =
# relu(max(a, b)), and the gradient reaches the same element) works on a quarter of the elements.

def conv4_blocks(backbone: nn.Module) -> tuple | None:
    """((prefix, batch-norm eps or None, pool), ...) of a plain Conv-4 backbone (3x3 convolutions with
    padding 1, workbench's batch norm or none, ReLU, 2x2 max-pool), or None for anything else."""
    from workbench.models import Conv4Trunk
    from workbench.models.norm import BatchNorm2d
    trunk = getattr(backbone, "trunk", None)
    if type(trunk) is not Conv4Trunk:
        return None
    mods, blocks = list(trunk.net), []
    if not mods or not isinstance(mods[-1], nn.Flatten):
        return None
    for i, block in enumerate(mods[:-1]):
        parts = list(block) if isinstance(block, nn.Sequential) else []
        if len(parts) not in (3, 4):
            return None
        conv, norm, act = parts[:3]
        if not (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
                and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1 and conv.bias is not None):
            return None
        if type(norm) is BatchNorm2d and norm.affine:
            eps = float(norm.eps)
        elif type(norm) is nn.Identity:
            eps = None
        else:
            return None
        if type(act) is not nn.ReLU:
            return None
        pool = len(parts) == 4
        if pool:
            mp = parts[3]
            if not (type(mp) is nn.MaxPool2d and mp.kernel_size == 2 and mp.stride == 2 and mp.padding == 0
                    and mp.dilation == 1 and not mp.ceil_mode):
                return None
        blocks.append((f"trunk.net.{i}.", eps, pool))
    head = getattr(backbone, "head", None)
    if head is not None and not (type(head) is nn.Linear and head.bias is not None):
        return None
    return tuple(blocks)


def conv4_function(blocks: tuple, with_head: bool):
    """``f(params, x)``: the Conv-4 backbone (or its trunk) as a function of a parameter dict."""
    def f(params: dict, x: torch.Tensor) -> torch.Tensor:
        for prefix, eps, pool in blocks:
            x = F.conv2d(x, params[prefix + "0.weight"], params[prefix + "0.bias"], padding=1)
            if eps is not None:
                x = F.batch_norm(x, None, None, params[prefix + "1.weight"], params[prefix + "1.bias"], True, 0.0, eps)
            x = F.relu(F.max_pool2d(x, 2)) if pool else F.relu(x)
        x = x.flatten(1)
        if with_head:
            x = F.linear(x, params["head.weight"], params["head.bias"])
        return x
    return f


class _Compiled:
    """A compiled function that falls back to its eager self where inductor cannot compile (no C++
    toolchain, no Python headers): the run goes on at eager speed; ``failure`` says why."""

    def __init__(self, fn):
        self.eager, self.compiled, self.failure = fn, torch.compile(fn, dynamic=False), None

    def __call__(self, *args):
        if self.failure is None:
            try:
                return self.compiled(*args)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as e:      # a genuine error in the function is raised again by the eager call
                self.failure = f"{type(e).__name__}: {e}"
        return self.eager(*args)


_COMPILED: dict = {}


def compiled_conv4(blocks: tuple, with_head: bool) -> _Compiled:
    """The torch.compile'd :func:`conv4_function` for this structure (compiled on its first call,
    once per input shape; inductor's on-disk cache makes later runs' compiles short)."""
    key = (blocks, with_head)
    if key not in _COMPILED:
        _COMPILED[key] = _Compiled(conv4_function(blocks, with_head))
    return _COMPILED[key]


def compiled_query_forward(learner):
    """MAML's query pass ``(fast, fixed, x) -> outputs``, compiled. The inner loop stays eager: its
    second-order graph needs a double backward, which compiled graphs do not provide; the query
    pass is back-propagated once, into the adapted weights, and from there through the eager graph."""
    fn = compiled_conv4(conv4_blocks(learner.backbone), learner.backbone.head is not None)
    return lambda fast, fixed, x: fn({**fixed, **fast}, x)


def compiled_features(learner):
    """The backbone's trunk ``x -> features`` (ProtoNet's embedding), compiled."""
    fn = compiled_conv4(conv4_blocks(learner.backbone), False)
    params = dict(learner.backbone.trunk.named_parameters(prefix="trunk"))
    return lambda x: fn(params, x)
