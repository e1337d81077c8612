"""Memory guardrail: estimate a meta-step's peak memory before training, and say when it will not fit.

One probe: the meta-loss and backward pass of *one* task (the first task of step 0, a pure function
of the seed, so nothing the run samples changes), computed as a per-task loop, then scaled by how
many tasks the chosen strategy keeps alive at once:

- the per-task loop (``engine.tasks_per_backward`` = 1): one task's graph at a time, x 1;
- the one-graph loop: every task's graph until the backward pass, x meta-batch;
- vmap and the closed-form batched strategy: x 1.8 x meta-batch (vmap's batched graph measured
  1.6-1.8x the one-graph loop's memory for Conv-4 on the CPU and the H200, docs/benchmarks.md).

Measured on CUDA with ``torch.cuda.max_memory_allocated`` above the allocation before the probe; on
the CPU as the larger of the growth of the process's resident high-water mark (``VmHWM``, reset
through ``/proc/self/clear_refs``) and the bytes autograd saves for the backward pass (the resident
size alone under-reports when the allocator reuses memory it already holds). The probe leaves the
weights, their gradients and torch's random state as it found them.

What fits: ``train.memory_limit_mb`` when set, else the device's free memory (CUDA
``mem_get_info``; on the CPU ``MemAvailable`` of /proc/meminfo). Over a limit the user set, or
over a GPU's free memory (where the run would end in an out-of-memory error), the engine ends the
run before its first step with one sentence offering a smaller meta-batch, first order or inner-loop
checkpointing; over a CPU's available memory (the system would swap) it warns and trains.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from workbench.data.base import TaskBatch

VMAP_FACTOR = 1.8          # vmap's memory over the one-graph loop's, measured (module docstring)
MB = 2 ** 20


@dataclass(frozen=True)
class MemoryEstimate:
    per_task: int              # bytes one task's meta-loss and backward add
    tasks_alive: float         # how many tasks' worth the strategy holds at once
    peak: int                  # estimated peak of a meta-step, bytes
    available: int | None      # what fits, bytes (None: unknown)
    hard: bool                 # exceeding it fails the run (a set limit, a GPU) or only warns (CPU RAM)
    source: str                # where ``available`` comes from, for the message
    strategy: str = "loop"

    @property
    def fits(self) -> bool:
        return self.available is None or self.peak <= self.available


def tasks_alive(strategy: str, chunk: int | None, meta_batch: int) -> float:
    if strategy == "loop":
        return float(min(chunk, meta_batch)) if chunk else float(meta_batch)
    return VMAP_FACTOR * meta_batch


def available_bytes(device: torch.device, limit_mb: int) -> tuple[int | None, bool, str]:
    """(bytes that fit, whether exceeding them is fatal, where the figure comes from)."""
    if limit_mb:
        return limit_mb * MB, True, "train.memory_limit_mb"
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), True, f"free memory on {torch.cuda.get_device_name(device)}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, False, "available system memory"
    except OSError:
        pass
    return None, False, "unknown"


def _hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def probe_one_task(learner, task_batch: TaskBatch, device: torch.device) -> int:
    """Bytes one task's meta-loss and backward pass add at their peak (module docstring)."""
    params = list(learner.parameters())
    grads = [p.grad for p in params]
    cpu_rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    strategy = learner.strategy
    saved = {}

    def pack(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            saved[key] = max(saved.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):
            pass
        return t

    try:
        for p in params:
            p.grad = None
        learner.strategy = "loop"
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        else:
            reset = _reset_hwm()
            base = _hwm_bytes() if reset else None
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = learner.meta_loss(task_batch)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            return int(torch.cuda.max_memory_allocated(device) - base)
        grown = (_hwm_bytes() or 0) - base if base is not None else 0
        grad_bytes = sum(p.numel() * p.element_size() for p in params if p.grad is not None)
        return int(max(grown, sum(saved.values()) + grad_bytes))
    finally:
        learner.strategy = strategy
        for p, g in zip(params, grads):
            p.grad = g
        torch.random.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)


def estimate(learner, task_batch: TaskBatch, device: torch.device, meta_batch: int, chunk: int | None,
             limit_mb: int = 0) -> MemoryEstimate | None:
    """The estimate for this run, or None where it cannot be probed (learners with their own update
    rule, whose ``train_step`` is not a backward pass of ``meta_loss``)."""
    if learner.spec.own_update:
        return None
    per_task = probe_one_task(learner, task_batch, device)
    alive = tasks_alive(learner.strategy, chunk, meta_batch)
    available, hard, source = available_bytes(device, limit_mb)
    return MemoryEstimate(per_task, alive, int(per_task * alive), available, hard, source, learner.strategy)


def advice(est: MemoryEstimate, cfg) -> str:
    """One sentence: what the meta-step needs, what fits, and what to change."""
    from workbench.learners import spec_of
    lc = cfg.learner
    options = []
    per_task_in_batch = est.tasks_alive / max(lc.meta_batch, 1)     # what one task of the batch costs
    if est.tasks_alive > 1 and est.available and est.per_task:      # memory grows with the meta-batch
        fit = int(est.available // (est.per_task * per_task_in_batch))
        options.append(f"learner.meta_batch = {fit} or less" if 1 <= fit < lc.meta_batch
                       else "a smaller learner.meta_batch")
    if spec_of(cfg).differentiates_inner_gradient(lc):
        options.append("learner.first_order = true")
        if not lc.checkpoint_inner:
            options.append("learner.checkpoint_inner = true (second order, about twice the time)")
    options.append("a smaller backbone (model.filters)")
    need = math.ceil(est.peak / MB)
    have = math.floor((est.available or 0) / MB)
    return (f"a meta-step needs about {need} MB (one task measured: {est.per_task / MB:.1f} MB, times "
            f"{est.tasks_alive:g} for a meta-batch of {cfg.learner.meta_batch} under strategy {est.strategy}), "
            f"more than the {have} MB of {est.source}: try "
            + ", ".join(options[:-1]) + f" or {options[-1]}")


def enabled() -> bool:
    """The guardrail can be switched off with WORKBENCH_MEMORY_PROBE=0 (benchmarks timing the engine)."""
    return os.environ.get("WORKBENCH_MEMORY_PROBE", "1") != "0"


def check(cfg, learner, one_task: TaskBatch, device: torch.device, chunk: int | None,
          meta_batch: int | None = None) -> tuple[str, str] | None:
    """The guardrail the engine runs before the first step: None when the meta-step fits (or cannot
    be probed), else ("error", sentence) when the run cannot fit (``RunError``) or ("warning",
    sentence) when it may only swap."""
    if not enabled():
        return None
    try:
        est = estimate(learner, one_task, device, meta_batch or cfg.learner.meta_batch, chunk,
                       cfg.train.memory_limit_mb)
    except torch.cuda.OutOfMemoryError:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return "error", ("even one task's meta-step ran out of GPU memory: use learner.first_order = true, "
                         "learner.checkpoint_inner = true or a smaller backbone (model.filters), or fewer "
                         "support and query examples")
    except Exception:        # the probe never fails a run: the first meta-step reports its own errors
        return None
    if est is None or est.fits:
        return None
    return ("error" if est.hard else "warning"), advice(est, cfg)
