"""How a meta-batch is computed: the strategy (tasks under vmap, a loop, MLP tasks in closed form
as batched matrix products, the loop with a compiled Conv-4 pass), autocast, and back-propagation
task by task. Every decision reads the learner's declaration
(:class:`workbench.registry.LearnerSpec`), never its name; the measurements behind ``auto`` are in
docs/benchmarks.md (``benchmarks/bench_meta.py``).
"""

from __future__ import annotations

import torch

from workbench.data import TaskBatch
from workbench.learners import spec_of
from workbench.models import pick_backbone


def _foreign_batch_norms(learner) -> list[str]:
    """Batch norms of ``learner`` that run the native kernel under vmap (not workbench.models.norm's)."""
    from torch.nn.modules.batchnorm import _BatchNorm
    from workbench.models.norm import BatchNorm1d, BatchNorm2d
    return [n for n, m in learner.named_modules()
            if isinstance(m, _BatchNorm) and not isinstance(m, (BatchNorm1d, BatchNorm2d))]


def vmap_is_exact(cfg, learner=None) -> tuple[bool, str]:
    """Whether the vmap strategy gives this config's exact meta-gradient, and why not.

    torch.func's batching rule for the double backward of the native batch-norm kernel is wrong
    (pytorch/functorch#534, still so in torch 2.13: a relative error near 1e-2, checked against
    finite differences). The built-in backbones' batch norms (workbench/models/norm.py) switch to
    composite operations under vmap, which are exact (tests/test_fast_paths.py), so second-order
    MAML/Meta-SGD through batch statistics runs under vmap too; a ``learner`` given here is also
    searched for other batch-norm modules (a plugin's backbone), which keep it off vmap.
    Checkpointing the inner loop is implemented for the loop only.
    """
    lc = cfg.learner
    second_order = spec_of(cfg).differentiates_inner_gradient(lc) == "full"
    if second_order and learner is not None:
        foreign = _foreign_batch_norms(learner)
        if foreign:
            return False, (f"second-order gradients through the native batch norm {foreign[0]!r} are wrong under "
                           f"vmap (pytorch/functorch#534); workbench.models.norm's batch norms are exact")
    if second_order and lc.checkpoint_inner:
        return False, "learner.checkpoint_inner runs the inner loop as a Python loop"
    return True, ""


def batched_applies(learner) -> bool:
    """Whether the closed-form "batched" strategy (workbench/learners/batched.py) computes this
    learner's exact meta-gradient: MAML or a subclass that changes only which parameters adapt
    (ANIL, BOIL) or uses Meta-SGD's learned rates, on an MLP backbone without normalisation."""
    from workbench.learners import batched
    from workbench.learners.maml import MAML
    from workbench.learners.metasgd import MetaSGD
    if not isinstance(learner, MAML) or learner.kind not in ("regression", "classification"):
        return False
    fixed = ("meta_loss", "_forward", "_inner_loss", "inner_loop", "_adapted", "_split")
    if any(getattr(type(learner), m) is not getattr(MAML, m) for m in fixed):
        return False
    if type(learner).inner_update not in (MAML.inner_update, MetaSGD.inner_update):
        return False
    return batched.mlp_layers(learner.backbone) is not None


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


def compiled_applies(learner) -> bool:
    """Whether the "compiled" strategy (Conv-4 query pass or embedding under torch.compile,
    workbench/learners/batched.py) computes this learner's meta-loss: MAML and subclasses that keep its
    meta-loss and forward pass (first-order MAML, ANIL, BOIL, Meta-SGD), ProtoNet with its own
    embedding; a plain Conv-4 backbone; a C++ compiler for inductor."""
    import os
    import shutil
    from workbench.learners import batched
    from workbench.learners.base import Learner
    from workbench.learners.maml import MAML
    from workbench.learners.protonet import ProtoNet
    if isinstance(learner, MAML):
        own = ("meta_loss", "_forward")
        if any(getattr(type(learner), m) is not getattr(MAML, m) for m in own):
            return False
    elif isinstance(learner, ProtoNet):
        if any(getattr(type(learner), m) is not getattr(ProtoNet, m) for m in ("meta_loss", "_embed_pair")) \
                or type(learner).features is not Learner.features:
            return False
    else:
        return False
    if batched.conv4_blocks(learner.backbone) is None:
        return False
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c)


def closed_applies(learner) -> bool:
    """Whether the "compiled" strategy can run this learner's whole task, second-order inner loop
    included, as one compiled function with the Conv-4 inner gradient in closed form
    (workbench/learners/conv4_closed.py): MAML (either order) or a subclass that changes only which
    parameters adapt (ANIL, BOIL); plain gradient steps (not Meta-SGD's learned rates); a plain Conv-4
    backbone with a head; no inner-loop checkpointing; where the compiled strategy applies."""
    from workbench.learners import batched
    from workbench.learners.maml import MAML
    if not isinstance(learner, MAML) or learner.kind not in ("regression", "classification"):
        return False
    fixed = ("meta_loss", "_forward", "_inner_loss", "inner_loop", "_adapted", "_split", "inner_update")
    if any(getattr(type(learner), m) is not getattr(MAML, m) for m in fixed):
        return False
    if getattr(learner.cfg, "checkpoint_inner", False) or learner.backbone.head is None:
        return False
    return batched.conv4_blocks(learner.backbone) is not None and compiled_applies(learner)


# Compiling takes 30-45 s on this 2-core CPU (docs/benchmarks.md) and then saves about a third of each
# Conv-4 meta-step; ``auto`` compiles only when the run's convolution work is large enough for that to
# pay twice over: steps x meta-batch x task GFLOP above COMPILE_MIN_GFLOP (Omniglot Conv-4-64 at
# meta-batch 32: from about 50 steps; the default ProtoNet Conv-4-16 experiment: never).
COMPILE_MIN_GFLOP = 5400.0


def conv_task_gflop(cfg, input_shape) -> float:
    """Rough GFLOP of one task's forward and backward pass through Conv-4 (its second layer, which
    dominates: images x (H/2)(W/2) x filters^2 x 9 x 2, times 3 for the backward pass)."""
    if len(input_shape) != 3:
        return 0.0
    _, h, w = input_shape
    t = cfg.task
    images = (1 if cfg.is_regression else t.ways) * (t.shots + t.queries)
    return 3 * images * (h // 2) * (w // 2) * cfg.model.filters ** 2 * 18 / 1e9


def compile_pays(cfg, input_shape) -> bool:
    return cfg.train.steps * cfg.learner.meta_batch * conv_task_gflop(cfg, input_shape) >= COMPILE_MIN_GFLOP


# The closed-form task (conv4_closed.py) compiles the inner steps, unrolled, and their backward pass
# too: 35-70 s here for Omniglot Conv-4-64 with one inner step (first / second order) and 155 s for
# mini-ImageNet Conv-4-32 with five, at load 4 (docs/benchmarks.md), about twice the query pass's per
# inner step; so within "compiled" it needs twice the work per inner step (Omniglot MAML at
# meta-batch 32: about 100 steps; mini-ImageNet, 5 inner steps, meta-batch 4: about 1,750 steps).
def closed_pays(cfg, input_shape) -> bool:
    return cfg.train.steps * cfg.learner.meta_batch * conv_task_gflop(cfg, input_shape) \
        >= 2 * COMPILE_MIN_GFLOP * max(1, cfg.learner.inner_steps)


def uses_closed_form(learner) -> bool:
    """Whether the "compiled" strategy runs this learner's tasks through the closed-form compiled task
    (:func:`closed_applies` and :func:`closed_pays`) rather than compiling the query pass only.

    Second order only: that is where it measured faster (Omniglot MAML 1.80x the reference against
    1.31x for the compiled query pass, mini-ImageNet MAML 1.63x against 1.15x; docs/benchmarks.md).
    First-order MAML has no double backward to compile, and there the closed form measured the same as
    the compiled query pass (1.59x against 1.65x) with more memory, so it keeps the query pass."""
    return learner.strategy == "compiled" and not getattr(learner, "first_order", True) \
        and learner.config.train.precision == "float32" \
        and closed_pays(learner.config, learner.setting.input_shape) and closed_applies(learner)


# What ``auto`` runs, by backbone family and device, from benchmarks/bench_meta.py (figures and
# commands in docs/benchmarks.md). "batched" is used where it applies (batched_applies), else vmap.
#   MLP, CPU:   batched (closed form) >= vmap (8-13x the reference) > loop (~2x)
#   MLP, CUDA:  vmap 15-17x the reference (H200); batched not measured on a GPU, so not chosen there
#   conv, CPU:  "compiled" (the per-task loop with the Conv-4 query pass under torch.compile) where it
#               applies and pays for its compile time (compile_pays), else the per-task loop (about the
#               reference's speed); within it, second-order MAML (ANIL, BOIL) runs each whole task compiled
#               with the inner gradient in closed form (uses_closed_form); vmap 0.6-0.8x; tasks stacked as
#               one grouped convolution measured slower than the loop (0.65x), so not used; tasks in two
#               Python threads of one torch thread each: 1.39x the reference with two torch threads (first-
#               order MAML, same two cores), about what one thread gives against a one-thread reference
#   conv, CUDA: vmap 12-17x (Omniglot), 1.7-2.3x (mini-ImageNet) the reference; the per-task loop 1.0-1.2x
AUTO_RULE = {("mlp", "cpu"): "batched", ("mlp", "cuda"): "vmap", ("conv", "cpu"): "loop", ("conv", "cuda"): "vmap"}


def pick_strategy(cfg, input_shape, device: torch.device | str = "cpu", learner=None) -> str:
    """How a meta-batch is computed: "batched" (MLP tasks in closed form), "vmap" (tasks batched by
    torch.func), "loop" (one task after another) or "compiled" (the loop, Conv-4 compiled).

    ``auto`` follows :data:`AUTO_RULE` (measured, docs/benchmarks.md): on a CPU the closed form or
    vmap for MLPs and the (compiled, when it pays: :func:`compile_pays`) loop for convolutions; on
    CUDA vmap for every backbone. "batched" and "compiled" need the ``learner`` (to check
    :func:`batched_applies`, :func:`compiled_applies`); without one, or where they do not apply, vmap
    or the loop stand in. Where vmap would not give the exact meta-gradient (:func:`vmap_is_exact`) the loop is
    used, even when vmap was asked for.
    """
    exact, _ = vmap_is_exact(cfg, learner)
    if cfg.train.strategy != "auto":
        return cfg.train.strategy if exact or cfg.train.strategy != "vmap" else "loop"
    kind = "mlp" if pick_backbone(cfg.model, input_shape) == "mlp" else "conv"
    choice = AUTO_RULE[(kind, "cuda" if torch.device(device).type == "cuda" else "cpu")]
    if choice == "loop" and learner is not None and cfg.train.precision == "float32" \
            and compile_pays(cfg, input_shape) and compiled_applies(learner):
        return "compiled"
    if choice == "batched":
        if learner is not None and batched_applies(learner):
            return "batched"
        choice = "vmap"
    if choice == "vmap" and not exact:
        return "loop"
    return choice


def tasks_per_backward(learner, strategy: str) -> int | None:
    """With the loop strategy, back-propagate task by task (1) instead of one graph for the whole
    meta-batch (None). Same meta-gradient (the mean of per-task gradients); only one task's graph
    is alive at a time, as in the reference loop, which on the CPU measured faster for Conv-4 and
    cut peak memory by an order of magnitude (docs/benchmarks.md). Learners with their own update
    (Reptile) keep it."""
    if strategy not in ("loop", "compiled") or learner.spec.own_update:
        return None
    return 1


def backward_meta_batch(learner, batch: TaskBatch, chunk: int | None,
                        closed: bool | None = None) -> tuple[torch.Tensor, dict]:
    """Accumulate the meta-gradient of ``batch`` into ``.grad``, ``chunk`` tasks per backward pass
    (None: all at once); returns the (detached) mean meta-loss and mean metrics. With the "compiled"
    strategy, eligible MAML learners run each task as the compiled closed-form function
    (:func:`uses_closed_form`; ``closed`` forces the choice, for the benchmark)."""
    n = len(batch)
    meta_loss = learner.meta_loss
    if closed if closed is not None else uses_closed_form(learner):
        from workbench.learners import conv4_closed

        def meta_loss(part):
            return conv4_closed.meta_loss(learner, part)
    if not chunk or chunk >= n:
        loss, metrics = meta_loss(batch)
        loss.backward()
        return loss.detach(), {k: v.detach() for k, v in metrics.items()}
    total, sums = 0.0, {}
    for i in range(0, n, chunk):
        part = TaskBatch(batch.support_x[i:i + chunk], batch.support_y[i:i + chunk], batch.query_x[i:i + chunk],
                         batch.query_y[i:i + chunk], batch.tasks[i:i + chunk])
        w = len(part) / n
        loss, metrics = meta_loss(part)
        (loss * w).backward()
        total = total + loss.detach() * w
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v.detach() * w
    return total, sums


def accumulated_train_step(learner, batch: TaskBatch, optimizer, chunk: int | None,
                           closed: bool | None = None) -> dict:
    """``learner.train_step`` with the meta-gradient accumulated ``chunk`` tasks at a time."""
    optimizer.zero_grad(set_to_none=True)
    loss, metrics = backward_meta_batch(learner, batch, chunk, closed)
    optimizer.step()
    return {"loss": loss, **metrics}
