"""Meta-step speed and peak memory of every learner under every execution strategy.

    python benchmarks/bench_meta.py                  # the full CPU run (14 min at load 6-10 with --no-memory-sweep)
    python benchmarks/bench_meta.py --configs none --conv-variants 3   # only the Conv-4 variants tried
    python benchmarks/bench_meta.py --quick          # a fast subset (~1-2 min)
    python benchmarks/bench_meta.py --device cuda    # on a GPU
    python benchmarks/bench_meta.py --configs sinusoid --learners maml,protonet --steps 9

Standard configurations (the MAML paper's and the field's usual settings):

- ``sinusoid``: MLP 1-40-40-1, K = 10 support and 10 query points, meta-batch 25, one inner step;
- ``omniglot``: Conv-4 (64 filters, batch norm) on 1x28x28 inputs, 5-way 1-shot, 15 queries per
  class, meta-batch 32, one inner step;
- ``miniimagenet``: Conv-4 (32 filters, batch norm) on 3x84x84 inputs, 5-way 1-shot, 15 queries,
  meta-batch 4, five inner steps.

Image episodes are synthetic tensors of the real shapes (speed does not depend on the pixels).
A meta-step is what the engine does per step: zero the gradients, meta-loss and backward,
Adam step. Strategies:

- ``reference``: a Python loop over tasks with a cloned model and ``torch.autograd.grad``
  (workbench/learners/reference.py, the way most meta-learning code does it);
- ``loop``: the learner's functional loop (torch.func.functional_call + autograd.grad), one
  graph for the whole meta-batch, one backward pass;
- ``pertask``: the same loop back-propagated task by task (engine.tasks_per_backward: what the
  engine runs when it picks the loop);
- ``vmap``: all tasks of the meta-batch together under torch.func.vmap;
- ``batched``: MLP tasks in closed form as batched matrix products (workbench/learners/batched.py;
  MAML, first-order MAML, ANIL, Meta-SGD on MLPs without normalisation; "-" elsewhere);
- ``compiled``: the per-task loop with the Conv-4 query pass (ProtoNet: the embedding) under
  torch.compile (workbench/learners/batched.py), for learners the closed form below does not serve
  (ProtoNet, Meta-SGD); for MAML, first-order MAML, ANIL and BOIL the engine's compiled strategy has
  two forms, timed apart:
- ``compiled-query``: the query pass compiled, the inner loop eager;
- ``compiled-closed``: each whole task, inner loop and its second-order backward included, as one
  compiled function with the Conv-4 inner gradient in closed form (workbench/learners/conv4_closed.py);
  the engine uses it for second order (strategy.uses_closed_form).
  Compile times are printed apart (the warm-up), and ``auto`` compiles only for runs long enough to
  pay for it (strategy.compile_pays, strategy.closed_pays: the Conv-4 configurations here are run as
  10,000-step experiments).

The same run measures this machine's throughput for one large convolution and one large matrix
product (GFLOP/s, the same thread setting), counts the FLOPs of each strategy's meta-step
(torch.utils.flop_counter.FlopCounterMode) and prints the achieved GFLOP/s as a share of the
better of the two, and ends with the ratios against the reference of the strategy ``auto`` picks,
side by side with the targets of issue 13.

Timing: one warm-up step per strategy, then rounds that alternate the strategies (the machine is
shared and noisy, so each strategy sees the same background load), the median per strategy.
Peak memory comes from one further step per strategy: on CUDA ``torch.cuda.max_memory_allocated``
above what was allocated before the step; on the CPU the largest resident-set size seen by a
sampling thread above the size before the step (the process runs with glibc's mmap threshold
fixed low, so freed tensors go back to the system and the resident size follows live memory).
``*`` marks a strategy whose meta-gradient is not exact for that learner (see
workbench.train.engine.vmap_is_exact); the engine never picks it.

A memory sweep follows: second-order MAML, first-order MAML and second-order MAML with the inner
loop checkpointed (learner.checkpoint_inner), for 1, 5 and 10 inner steps on the mini-ImageNet
configuration (loop strategy; meta-batch 4 on CUDA, one task on the CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# glibc keeps freed memory of small and medium blocks; with a fixed low mmap threshold every
# tensor above 64 KiB is its own mapping and is returned on free, so RSS follows live memory.
if "MALLOC_MMAP_THRESHOLD_" not in os.environ and __name__ == "__main__":
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    os.execv(sys.executable, [sys.executable] + sys.argv)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from workbench import config as C  # noqa: E402
from workbench.data.base import Task, TaskBatch, episode_rng  # noqa: E402
from workbench.data.synthetic import FunctionTasks  # noqa: E402
from workbench import registry  # noqa: E402
from workbench.learners import build_learner  # noqa: E402
from workbench.learners.reference import reference_train_step  # noqa: E402
from workbench.train.engine import (accumulated_train_step, pick_strategy, tasks_per_backward,  # noqa: E402
                                    vmap_is_exact)
from workbench.train.strategy import batched_applies, closed_applies, compiled_applies, uses_closed_form  # noqa: E402

STRATEGIES = ("reference", "loop", "pertask", "vmap", "batched", "compiled", "compiled-query", "compiled-closed")
# Conv-4 on the CPU by default: the one-graph loop and vmap were slower than the per-task loop in every
# earlier CPU round (docs/benchmarks.md), and cost 1-3 GB each
CPU_CONV_DEFAULT = ("reference", "pertask", "compiled", "compiled-query", "compiled-closed")
# only where they apply (their own conditions), "-" elsewhere
# "compiled" stands for the learners the closed form does not serve; for the others its two forms are
# timed apart ("compiled-query", "compiled-closed") and auto's choice is named by which it runs
APPLIES = {"batched": batched_applies, "compiled": lambda l: compiled_applies(l) and not closed_applies(l),
           "compiled-query": closed_applies, "compiled-closed": closed_applies}
# issue 13's targets for auto / reference: (setting, learner) -> least ratio
TARGETS = {("sinusoid", "maml"): 10.0, ("omniglot", "maml"): 1.5, ("omniglot", "fomaml"): 1.5,
           ("omniglot", "protonet"): 1.5, ("miniimagenet", "maml"): 1.0, ("miniimagenet", "fomaml"): 1.0,
           ("miniimagenet", "protonet"): 1.0}
LEARNERS = ("maml", "fomaml", "anil", "metasgd", "protonet")
CONV_DEFAULT = ("maml", "fomaml", "protonet")   # second order, first order, metric: the three cost patterns


@dataclass(frozen=True)
class Setting:
    name: str
    title: str
    overrides: dict
    input_shape: tuple
    steps: int             # timed steps per strategy in a full run


SETTINGS = {
    "sinusoid": Setting("sinusoid", "sinusoid, MLP 1-40-40-1, K=10, meta-batch 25, 1 inner step",
                        {"data.dataset": "sinusoid", "model.backbone": "mlp", "model.hidden": [40, 40],
                         "model.norm": "none", "task.shots": 10, "task.queries": 10, "learner.meta_batch": 25,
                         "learner.inner_steps": 1, "learner.inner_lr": 0.01}, (1,), 15),
    "omniglot": Setting("omniglot", "Omniglot Conv-4 (64 filters, 28x28), 5-way 1-shot, 15 queries, "
                                    "meta-batch 32, 1 inner step",
                        {"data.dataset": "digits", "model.backbone": "conv4", "model.filters": 64,
                         "model.norm": "batch", "task.ways": 5, "task.shots": 1, "task.queries": 15,
                         "learner.meta_batch": 32, "learner.inner_steps": 1, "learner.inner_lr": 0.4,
                         "train.steps": 10_000},
                        (1, 28, 28), 3),
    "miniimagenet": Setting("miniimagenet", "mini-ImageNet Conv-4 (32 filters, 84x84), 5-way 1-shot, "
                                            "15 queries, meta-batch 4, 5 inner steps",
                            {"data.dataset": "digits", "model.backbone": "conv4", "model.filters": 32,
                             "model.norm": "batch", "task.ways": 5, "task.shots": 1, "task.queries": 15,
                             "learner.meta_batch": 4, "learner.inner_steps": 5, "learner.inner_lr": 0.01,
                             "train.steps": 10_000},
                            (3, 84, 84), 3),
}


# --------------------------------------------------------------------------
# episodes: tensors made once, on the device
# --------------------------------------------------------------------------
def make_batch(setting: Setting, cfg, device) -> TaskBatch:
    b = cfg.learner.meta_batch
    if setting.name == "sinusoid":
        src = FunctionTasks(["sine"], cfg.task.shots, cfg.task.queries, "train")
        tasks = [src.sample(episode_rng(0, i, 1000)) for i in range(b)]
    else:
        g = torch.Generator().manual_seed(0)
        n, k, q = cfg.task.ways, cfg.task.shots, cfg.task.queries
        tasks = []
        for i in range(b):
            sy, qy = torch.arange(n).repeat_interleave(k), torch.arange(n).repeat_interleave(q)
            tasks.append(Task(torch.randn(n * k, *setting.input_shape, generator=g), sy,
                              torch.randn(n * q, *setting.input_shape, generator=g), qy, f"t{i}", "synthetic"))
    return TaskBatch.stack([t.to(device) for t in tasks])


# per-learner changes of a setting: issue 13 measures Omniglot ProtoNet at meta-batch 4
PER_LEARNER = {("omniglot", "protonet"): {"learner.meta_batch": 4}}


def config_for(setting: Setting, learner: str, **extra) -> C.ExperimentConfig:
    return C.replace(C.ExperimentConfig(), **{**setting.overrides, **PER_LEARNER.get((setting.name, learner), {}),
                                              "learner.name": learner, **extra})


# --------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory of the enclosed code above the level at entry, in bytes."""

    def __init__(self, device):
        self.device, self.peak = device, 0

    def __enter__(self):
        sync(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = rss_bytes()
            self.top, self.stop = self.base, threading.Event()
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while not self.stop.is_set():
            self.top = max(self.top, rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        sync(self.device)
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.top = max(self.top, rss_bytes())
            self.stop.set()
            self.thread.join()
            self.peak = self.top - self.base
        return False


def step_fn(learner, batch, optimizer, strategy: str, device, autocast: bool = False):
    def step():
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else _null()
        with ctx:
            if strategy == "reference":
                reference_train_step(learner, batch, optimizer)
            elif strategy in ("pertask", "compiled", "compiled-query", "compiled-closed"):
                learner.strategy = "loop" if strategy == "pertask" else "compiled"
                # compiled-query: the query pass compiled, the inner loop eager; compiled-closed: the whole
                # task compiled, its inner gradient in closed form (learners/conv4_closed.py)
                accumulated_train_step(learner, batch, optimizer, 1,
                                       closed={"compiled-query": False, "compiled-closed": True}.get(strategy))
            else:
                learner.strategy = strategy
                learner.train_step(batch, optimizer)
        sync(device)
    return step


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def build(setting, learner_name, device, **extra):
    cfg = config_for(setting, learner_name, **extra)
    torch.manual_seed(0)
    learner = build_learner(cfg, setting.input_shape).to(device)
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-4)
    return cfg, learner, optimizer


def step_flops(fn) -> int:
    """Floating-point operations of one call of ``fn`` (matrix products, convolutions and their
    gradients, as torch.utils.flop_counter counts them)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def hardware_peaks(device, repeats: int = 5) -> dict:
    """GFLOP/s of one large convolution (64 images of 64x56x56, 64 3x3 filters) and one large matrix
    product (2048 x 2048 x 2048) in float32: the medians of ``repeats`` after a warm-up."""
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(64, 64, 56, 56, generator=g).to(device), torch.randn(64, 64, 3, 3, generator=g).to(device)
    a, b = torch.randn(2048, 2048, generator=g).to(device), torch.randn(2048, 2048, generator=g).to(device)
    cases = {"convolution": (lambda: F.conv2d(x, w, padding=1), 2 * 64 * 64 * 56 * 56 * 64 * 9),
             "matrix product": (lambda: a @ b, 2 * 2048 ** 3)}
    out = {}
    for name, (fn, flops) in cases.items():
        fn()
        sync(device)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - t)
        out[name] = flops / statistics.median(times) / 1e9
    return out


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def bench_learner(setting, learner_name, strategies, device, steps: int) -> dict:
    cfg, learner, optimizer = build(setting, learner_name, device)
    strategies = [s for s in strategies if s not in APPLIES or APPLIES[s](learner)]
    if device.type == "cuda":
        strategies = [s for s in strategies if not s.startswith("compiled")]
    batch = make_batch(setting, cfg, device)
    one = TaskBatch(batch.support_x[:1], batch.support_y[:1], batch.query_x[:1], batch.query_y[:1], batch.tasks[:1])
    warmup = {}
    for s in strategies:                              # warm-up on one task: lazy initialisation, caches, compiling
        t = time.perf_counter()
        step_fn(learner, one, optimizer, s, device)()
        warmup[s] = time.perf_counter() - t
    # the compiled step does the per-task loop's arithmetic; counted eagerly (a dispatch mode would recompile)
    flops = {s: step_flops(step_fn(learner, batch, optimizer, "pertask" if s.startswith("compiled") else s, device))
             for s in strategies}
    fns = {s: step_fn(learner, batch, optimizer, s, device) for s in strategies}
    times, peaks = {s: [] for s in strategies}, {}
    for r in range(steps):                            # alternate: same background load for all
        for s in strategies:
            if r == steps - 1:                        # the last round also records peak memory
                with PeakMemory(device) as pm:
                    t = time.perf_counter()
                    fns[s]()
                    times[s].append(time.perf_counter() - t)
                peaks[s] = pm.peak
            else:
                t = time.perf_counter()
                fns[s]()
                times[s].append(time.perf_counter() - t)
    exact = vmap_is_exact(cfg, learner)[0]
    return {"rate": {s: 1.0 / statistics.median(times[s]) for s in strategies}, "peak": peaks, "flops": flops,
            "warmup": warmup,
            "auto": engine_choice(learner, cfg, setting, device),
            "inexact": set() if exact else {"vmap"}, "meta_batch": cfg.learner.meta_batch}


def engine_choice(learner, cfg, setting, device) -> str:
    """The strategy the engine's ``auto`` runs, in this benchmark's names."""
    s = pick_strategy(cfg, setting.input_shape, device, learner)
    if s == "compiled" and closed_applies(learner):
        learner.strategy = s
        return "compiled-closed" if uses_closed_form(learner) else "compiled-query"
    return "pertask" if s == "loop" and tasks_per_backward(learner, s) == 1 else s


def memory_sweep(setting, device, inner_steps=(1, 5, 10), meta_batch: int | None = None) -> list[tuple]:
    rows = []
    variants = [("second order", "maml", {}), ("first order", "fomaml", {}),
                ("second order, checkpointed", "maml", {"learner.checkpoint_inner": True})]
    for k in inner_steps:
        row = [k]
        for _, name, extra in variants:
            extra = {**extra, "learner.inner_steps": k}
            if meta_batch:
                extra["learner.meta_batch"] = meta_batch
            cfg, learner, optimizer = build(setting, name, device, **extra)
            batch = make_batch(setting, cfg, device)
            fn = step_fn(learner, batch, optimizer, "loop", device)
            t = time.perf_counter()
            with PeakMemory(device) as pm:
                fn()
            row.append((pm.peak, time.perf_counter() - t))
            del learner, optimizer, batch
        rows.append(tuple(row))
    return rows, [v[0] for v in variants]


# --------------------------------------------------------------------------
# Conv-4 variants tried for the CPU (--conv-variants): one first-order forward and backward pass of
# Omniglot-sized tasks (80 images of 1x28x28, 64 filters, batch statistics), 8 tasks
# --------------------------------------------------------------------------
def conv_variants(device, rounds: int, out):
    import torch.nn.functional as F
    from workbench.learners.batched import conv4_function
    tasks, n, c = 8, 80, 64
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tasks, n, 1, 28, 28, generator=g).to(device)
    params, cin = {}, 1
    for i in range(4):
        params[f"trunk.net.{i}.0.weight"] = (0.3 * torch.randn(c, cin, 3, 3, generator=g)).to(device)
        params[f"trunk.net.{i}.0.bias"] = torch.zeros(c, device=device)
        params[f"trunk.net.{i}.1.weight"] = torch.ones(c, device=device)
        params[f"trunk.net.{i}.1.bias"] = torch.zeros(c, device=device)
        cin = c
    for p in params.values():
        p.requires_grad_()
    blocks = tuple((f"trunk.net.{i}.", 1e-5, True) for i in range(4))

    def bn(h, i):
        return F.batch_norm(h, None, None, params[f"trunk.net.{i}.1.weight"], params[f"trunk.net.{i}.1.bias"],
                            True, 0.0, 1e-5)

    def per_task(relu_first=True, channels_last=False):
        total = 0
        for t in range(tasks):
            h = x[t].contiguous(memory_format=torch.channels_last) if channels_last else x[t]
            for i in range(4):
                h = bn(F.conv2d(h, params[f"trunk.net.{i}.0.weight"], params[f"trunk.net.{i}.0.bias"], padding=1), i)
                h = F.max_pool2d(F.relu(h), 2) if relu_first else F.relu(F.max_pool2d(h, 2))
            total = total + h.square().mean()
        return total

    def grouped():      # per-task weights as groups: (n, tasks*C, H, W), weight (tasks*C, C, 3, 3)
        h = x.transpose(0, 1).reshape(n, tasks, 28, 28)
        for i in range(4):
            w, b = params[f"trunk.net.{i}.0.weight"], params[f"trunk.net.{i}.0.bias"]
            w = w.unsqueeze(0).expand(tasks, *w.shape).reshape(tasks * c, w.shape[1], 3, 3)
            h = F.conv2d(h, w, b.repeat(tasks), padding=1, groups=tasks)
            h = F.batch_norm(h, None, None, params[f"trunk.net.{i}.1.weight"].repeat(tasks),
                             params[f"trunk.net.{i}.1.bias"].repeat(tasks), True, 0.0, 1e-5)
            h = F.max_pool2d(F.relu(h), 2)
        return h.square().mean(dim=(0, 2, 3)).reshape(tasks, c).mean(1).sum()

    def composite_bn():  # shared weights, tasks in the batch, per-task statistics by composite ops
        h = x.reshape(tasks * n, 1, 28, 28)
        for i in range(4):
            h = F.conv2d(h, params[f"trunk.net.{i}.0.weight"], params[f"trunk.net.{i}.0.bias"], padding=1)
            s = h.shape
            v = h.reshape(tasks, n, *s[1:])
            var, mean = torch.var_mean(v, dim=(1, 3, 4), keepdim=True, correction=0)
            v = (v - mean) * torch.rsqrt(var + 1e-5) * params[f"trunk.net.{i}.1.weight"].view(1, 1, -1, 1, 1) \
                + params[f"trunk.net.{i}.1.bias"].view(1, 1, -1, 1, 1)
            h = F.max_pool2d(F.relu(v.reshape(s)), 2)
        return h.reshape(tasks, n, -1).square().mean(dim=(1, 2)).sum()

    compiled_fn = torch.compile(conv4_function(blocks, False), dynamic=False)

    def compiled():
        return sum(compiled_fn(params, x[t]).square().mean() for t in range(tasks))

    variants = {"per-task loop (the reference's arithmetic)": per_task,
                "per-task, ReLU after max-pool": lambda: per_task(relu_first=False),
                "per-task, channels-last": lambda: per_task(channels_last=True),
                "tasks as one grouped convolution": grouped,
                "tasks in one batch, composite per-task batch norm": composite_bn,
                "per-task, torch.compile (ReLU after max-pool)": compiled}
    names = list(params)
    t = time.perf_counter()
    torch.autograd.grad(compiled(), [params[k] for k in names])
    compile_s = time.perf_counter() - t
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for k, fn in variants.items():
            sync(device)
            t = time.perf_counter()
            torch.autograd.grad(fn(), [params[k2] for k2 in names])
            sync(device)
            times[k].append(time.perf_counter() - t)
    base = statistics.median(times["per-task loop (the reference's arithmetic)"])
    out(f"\n### Conv-4 variants: forward and backward of 8 Omniglot-sized tasks (80 images each), "
        f"medians of {rounds} alternated rounds\n")
    out("| variant | ms | speed against the per-task loop |")
    out("|---|---|---|")
    for k in variants:
        m = statistics.median(times[k])
        out(f"| {k} | {1000 * m:.0f} | {base / m:.2f}x |")
    out(f"\n(torch.compile: {compile_s:.0f} s to compile, not in the medians)")


# --------------------------------------------------------------------------
# printing
# --------------------------------------------------------------------------
def mb(n: int) -> str:
    return f"{n / 2**20:.2f}" if n < 10 * 2**20 else f"{n / 2**20:.0f}"


def print_table(setting, results: dict, strategies, device, out, peak_gflops: float):
    mem_what = "CUDA max_memory_allocated" if device.type == "cuda" else "host RSS"
    strategies = [s for s in strategies if any(s in r["rate"] for r in results.values())]
    out(f"\n### {setting.title}\n")
    head = ["learner"] + [f"{s} steps/s" for s in strategies] + [f"{s} peak MB" for s in strategies]
    others = [s for s in strategies if s != "reference"]
    if "reference" in strategies:
        head += [f"{s}/reference" for s in others]
    head += ["auto", "auto/reference" if "reference" in strategies else "auto", "auto GFLOP/step",
             "auto GFLOP/s", "share of peak"]
    out("| " + " | ".join(head) + " |")
    out("|" + "---|" * len(head))
    for name, r in results.items():
        star = lambda s: "*" if s in r["inexact"] else ""  # noqa: E731
        rate = r["rate"]
        cells = [name + (f" (meta-batch {r['meta_batch']})" if r["meta_batch"] != setting.overrides.get(
            "learner.meta_batch") else "")]
        cells += [f"{rate[s]:.3g}{star(s)}" if s in rate else "-" for s in strategies]
        cells += [mb(r["peak"][s]) if s in r["peak"] else "-" for s in strategies]
        if "reference" in strategies:
            cells += [f"{rate[s] / rate['reference']:.2f}x{star(s)}" if s in rate else "-" for s in others]
        auto = r["auto"]
        cells.append(auto)
        cells.append(f"{rate[auto] / rate['reference']:.2f}x" if "reference" in rate and auto in rate else "-")
        if auto in rate:
            gf = r["flops"][auto] / 1e9
            cells += [f"{gf:.3g}", f"{gf * rate[auto]:.3g}", f"{100 * gf * rate[auto] / peak_gflops:.1f}%"]
        else:
            cells += ["-", "-", "-"]
        out("| " + " | ".join(cells) + " |")
    for s in ("compiled", "compiled-query", "compiled-closed"):
        compiles = [f"{n} {r['warmup'][s]:.0f} s" for n, r in results.items() if s in r["warmup"]]
        if compiles:
            out(f"\n{s}: compile time and first step (one task), not in the medians: " + ", ".join(compiles))
    out(f"\n(peak memory: {mem_what} above the level before one meta-step; * = meta-gradient not exact "
        f"under this strategy, never picked by auto; GFLOP/step counted by torch.utils.flop_counter; share of "
        f"peak: of the better of the large convolution and matrix product measured above)")


def print_summary(all_results: dict, out):
    """auto / reference per (setting, learner), side by side with issue 13's targets."""
    out("\n### auto against the reference, side by side (issue 13 targets)\n")
    out("| setting | learner | auto | auto/reference | target | met |")
    out("|---|---|---|---|---|---|")
    for cname, results in all_results.items():
        for name, r in results.items():
            auto, rate = r["auto"], r["rate"]
            if "reference" not in rate or auto not in rate:
                continue
            ratio = rate[auto] / rate["reference"]
            target = TARGETS.get((cname, name))
            met = "-" if target is None else ("yes" if ratio >= target else "no")
            out(f"| {cname} | {name} | {auto} | {ratio:.2f}x | {f'>= {target:g}x' if target else '-'} | {met} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a fast subset: fewer steps, smaller memory sweep")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--configs", default="", help="comma-separated: " + ", ".join(SETTINGS) + " (default: all; "
                   "sinusoid with --quick; none: only --conv-variants)")
    p.add_argument("--learners", default="", help="comma-separated: " + ", ".join(LEARNERS) + " (default: all on "
                   "sinusoid; " + ", ".join(CONV_DEFAULT) + " on the Conv-4 configurations, all on CUDA)")
    p.add_argument("--strategies", default="", help="comma-separated: " + ", ".join(STRATEGIES) + " (default: all; "
                   "on the CPU's Conv-4 configurations " + ", ".join(CPU_CONV_DEFAULT) + ")")
    p.add_argument("--steps", type=int, default=0, help="timed steps per strategy (default: per configuration)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: on a few shared cores more threads spin-wait)")
    p.add_argument("--no-memory-sweep", action="store_true", help="skip the 1/5/10 inner-step memory sweep")
    p.add_argument("--conv-variants", type=int, default=0, metavar="ROUNDS",
                   help="also time the Conv-4 variants tried for the CPU (grouped convolution, channels-last, "
                        "composite batch norm, ReLU after pooling, torch.compile) over ROUNDS alternated rounds")
    p.add_argument("--out", help="also write the report to this file")
    a = p.parse_args(argv)

    def parse(text, allowed, what):
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            p.error(f"--{what} {text!r}: expected a comma-separated subset of {', '.join(allowed)}")
        return items

    configs = [] if a.configs == "none" else \
        parse(a.configs or ("sinusoid" if a.quick else ",".join(SETTINGS)), tuple(SETTINGS), "configs")
    learners = parse(a.learners, LEARNERS, "learners") if a.learners else None
    strategies = parse(a.strategies, STRATEGIES, "strategies") if a.strategies else None
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA GPU is available here")
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    lines: list[str] = []

    def out(text=""):
        print(text, flush=True)
        lines.append(text)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    out(f"# bench_meta: torch {torch.__version__}, {name}")
    out(f"strategies alternate step by step; medians of {'--steps ' + str(a.steps) if a.steps else 'per-config'}"
        f" timed steps after one warm-up{' (quick)' if a.quick else ''}")
    out(f"load average at start: {load_average()}")
    peaks = hardware_peaks(device)
    peak = max(peaks.values())
    out("hardware reference: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items())
        + " (float32, median of 5)")
    t_all = time.perf_counter()
    all_results = {}
    for cname in configs:
        setting = SETTINGS[cname]
        steps = a.steps or (max(2, setting.steps // 3) if a.quick else setting.steps)
        if a.quick and not a.steps and cname != "sinusoid":
            steps = 1
        if device.type == "cuda" and not a.steps:
            steps = 5 if a.quick else 20
        results = {}
        used = strategies or (CPU_CONV_DEFAULT if device.type == "cpu" and cname != "sinusoid" else STRATEGIES)
        chosen = learners or (LEARNERS if cname == "sinusoid" or a.device == "cuda" else CONV_DEFAULT)
        if a.quick and not learners and cname != "sinusoid":
            chosen = ("maml", "protonet")
        for lname in chosen:
            if not registry.learners.get(lname).regression and "sinusoid" in setting.name:
                continue                              # prototypes classify; no regression
            t = time.perf_counter()
            results[lname] = bench_learner(setting, lname, used, device, steps)
            print(f"  [{cname} {lname}: {time.perf_counter() - t:.1f} s]", file=sys.stderr, flush=True)
        all_results[cname] = results
        print_table(setting, results, used, device, out, peak)
    if not a.no_memory_sweep:
        setting = SETTINGS["miniimagenet"]
        ks = (1, 5) if a.quick else (1, 5, 10)
        rows, names = memory_sweep(setting, device, ks, meta_batch=None if device.type == "cuda" else 1)
        what = "meta-batch 4" if device.type == "cuda" else "meta-batch 1 (one task: the loop's memory per task)"
        out(f"\n### peak memory (MB) against inner steps: mini-ImageNet Conv-4, {what}, loop strategy\n")
        out("| inner steps | " + " | ".join(f"{n} MB (s/step)" for n in names) + " |")
        out("|---|" + "---|" * len(names))
        for k, *cells in rows:
            out(f"| {k} | " + " | ".join(f"{mb(m)} ({s:.2f})" for m, s in cells) + " |")
    print_summary(all_results, out)
    if a.conv_variants:
        conv_variants(device, a.conv_variants, out)
    out(f"\ntotal {time.perf_counter() - t_all:.0f} s; load average at end: {load_average()}")
    if a.out:
        Path(a.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
