"""How a meta-batch is computed: the strategy (tasks under vmap, or a loop), autocast, and
back-propagation task by task. Every decision reads the learner's declaration
(:class:`workbench.registry.LearnerSpec`), never its name; the measurements behind ``auto`` are in
docs/benchmarks.md (``benchmarks/bench_meta.py``).
"""

from __future__ import annotations

import torch

from workbench.data import TaskBatch
from workbench.learners import spec_of
from workbench.models import pick_backbone


def vmap_is_exact(cfg) -> tuple[bool, str]:
    """Whether the vmap strategy gives this config's exact meta-gradient, and why not.

    torch.func's batching rule for the double backward of batch normalisation is wrong
    (pytorch/functorch#534, still so in torch 2.13: a relative error near 1e-2, checked
    against finite differences), so second-order MAML/Meta-SGD through batch statistics
    must run as a loop. Checkpointing the inner loop is implemented for the loop only.
    """
    lc = cfg.learner
    second_order = spec_of(cfg).differentiates_inner_gradient(lc) == "full"
    if second_order and cfg.model.norm == "batch":
        return False, ("second-order gradients through batch normalisation are wrong under vmap "
                       "(pytorch/functorch#534)")
    if second_order and lc.checkpoint_inner:
        return False, "learner.checkpoint_inner runs the inner loop as a Python loop"
    return True, ""


def autocast_allowed(cfg, strategy: str = "loop") -> bool:
    """bfloat16 autocast only where no gradient of a gradient is taken.

    Second-order meta-gradients differentiate the inner gradient; with bfloat16's 8-bit
    mantissa the inner gradient carries ~1e-2 relative error and its derivative more, which
    changes the meta-gradient well beyond float32 tolerance, so those learners stay float32.
    Batch norm under vmap fails in autocast's backward in torch 2.11-2.13 ("expected scalar
    type BFloat16 but found Float"), so that combination stays float32 too.
    """
    spec = spec_of(cfg)
    if strategy == "vmap" and cfg.model.norm == "batch" and spec.head != "none":
        return False
    return not spec.differentiates_inner_gradient(cfg.learner)


def train_context(cfg, device: torch.device, strategy: str = "loop"):
    """The autocast context of a meta-step (a no-op context in float32)."""
    import contextlib
    if cfg.train.precision == "bfloat16" and autocast_allowed(cfg, strategy):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def pick_strategy(cfg, input_shape, device: torch.device | str = "cpu") -> str:
    """How a meta-batch is computed: "vmap" (tasks batched) or "loop" (one task after another).

    ``auto`` follows benchmarks/bench_meta.py (docs/benchmarks.md): on a CPU, vmap for
    MLPs (several times faster than a loop: many tiny ops become few larger ones) and a
    loop for convolutions (batched convolutions under vmap were slower there); on CUDA,
    vmap for every backbone (a loop leaves the GPU idle between small kernels). Where vmap
    would not give the exact meta-gradient (:func:`vmap_is_exact`) the loop is used, even
    when vmap was asked for.
    """
    exact, _ = vmap_is_exact(cfg)
    if cfg.train.strategy != "auto":
        return cfg.train.strategy if exact or cfg.train.strategy != "vmap" else "loop"
    if not exact:
        return "loop"
    if torch.device(device).type == "cuda":
        return "vmap"
    return "vmap" if pick_backbone(cfg.model, input_shape) == "mlp" else "loop"


def tasks_per_backward(learner, strategy: str) -> int | None:
    """With the loop strategy, back-propagate task by task (1) instead of one graph for the whole
    meta-batch (None). Same meta-gradient (the mean of per-task gradients); only one task's graph
    is alive at a time, as in the reference loop, which on the CPU measured faster for Conv-4 and
    cut peak memory by an order of magnitude (docs/benchmarks.md). Learners with their own update
    (Reptile) keep it."""
    if strategy != "loop" or learner.spec.own_update:
        return None
    return 1


def backward_meta_batch(learner, batch: TaskBatch, chunk: int | None) -> tuple[torch.Tensor, dict]:
    """Accumulate the meta-gradient of ``batch`` into ``.grad``, ``chunk`` tasks per backward pass
    (None: all at once); returns the (detached) mean meta-loss and mean metrics."""
    n = len(batch)
    if not chunk or chunk >= n:
        loss, metrics = learner.meta_loss(batch)
        loss.backward()
        return loss.detach(), {k: v.detach() for k, v in metrics.items()}
    total, sums = 0.0, {}
    for i in range(0, n, chunk):
        part = TaskBatch(batch.support_x[i:i + chunk], batch.support_y[i:i + chunk], batch.query_x[i:i + chunk],
                         batch.query_y[i:i + chunk], batch.tasks[i:i + chunk])
        w = len(part) / n
        loss, metrics = learner.meta_loss(part)
        (loss * w).backward()
        total = total + loss.detach() * w
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v.detach() * w
    return total, sums


def accumulated_train_step(learner, batch: TaskBatch, optimizer, chunk: int | None) -> dict:
    """``learner.train_step`` with the meta-gradient accumulated ``chunk`` tasks at a time."""
    optimizer.zero_grad(set_to_none=True)
    loss, metrics = backward_meta_batch(learner, batch, chunk)
    optimizer.step()
    return {"loss": loss, **metrics}
