"""How episodes should reach the GPU: measured on the engine's own sampling code.

    python benchmarks/bench_episodes.py --device cuda

An Omniglot-sized class dataset (synthetic: 1,200 classes x 20 images of 1x28x28) and the
engine's meta-step loop (sample_batch -> TaskBatch -> train_step, first-order MAML, vmap,
meta-batch 32, 5-way 1-shot, 15 queries). Three ways to feed the GPU, alternated, steps/s:

- ``device``: the class dataset's tensor moved to the GPU once; each episode indexes it there (EpisodeSource.sample makes its index tensors on the host, so
  each lookup uploads them), labels go through ``upload``;
- ``pinned`` (what the engine does, ``engine.upload``): episodes gathered on the host, the stacked batch copied to pinned memory and
  uploaded without blocking (the host can prepare step t+1 while the GPU computes step t);
- ``plain``: episodes gathered on the host, uploaded with a plain (blocking) ``.to(device)``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from workbench import config as C  # noqa: E402
from workbench.data.base import ClassDataset, EpisodeSource, TaskBatch  # noqa: E402
from workbench.learners import build_learner  # noqa: E402
from workbench.train.engine import sample_batch, upload  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--classes", type=int, default=1200)
    p.add_argument("--meta-batch", type=int, default=32)
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA GPU is available here")
    device = torch.device(a.device)
    n_cls, per = a.classes, 20
    g = torch.Generator().manual_seed(0)
    ds = ClassDataset(torch.randn(n_cls * per, 1, 28, 28, generator=g), np.repeat(np.arange(n_cls), per),
                      [f"c{i}" for i in range(n_cls)], ["g"] * n_cls, source="synthetic omniglot")
    on_device = ClassDataset(ds.x.to(device), ds.labels, ds.class_names, ds.groups, source=ds.source)
    cfg = C.replace(C.ExperimentConfig(), **{"data.dataset": "digits", "learner.name": "fomaml",
                                             "model.backbone": "conv4", "model.filters": 64, "task.ways": 5,
                                             "task.shots": 1, "task.queries": 15, "learner.meta_batch": a.meta_batch})
    torch.manual_seed(0)
    learner = build_learner(cfg, (1, 28, 28)).to(device)
    learner.strategy = "vmap"
    opt = torch.optim.Adam(learner.parameters(), lr=1e-4)
    sources = {"device": EpisodeSource(on_device, list(range(n_cls)), 5, 1, 15, "train"),
               "pinned": EpisodeSource(ds, list(range(n_cls)), 5, 1, 15, "train"),
               "plain": EpisodeSource(ds, list(range(n_cls)), 5, 1, 15, "train")}

    def run(kind: str, first: int, n: int) -> float:
        src = sources[kind]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for step in range(first, first + n):
            tasks = sample_batch(src, 0, step, a.meta_batch)
            if kind in ("pinned", "device"):
                batch = upload(TaskBatch.stack(tasks), device)
            else:
                batch = TaskBatch.stack([t_.to(device) for t_ in tasks])
            learner.train_step(batch, opt)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return n / (time.perf_counter() - t)

    for kind in sources:
        run(kind, 0, 2)                        # warm-up
    rates = {k: [] for k in sources}
    chunk = max(1, a.steps // 3)
    for r in range(3):
        for kind in sources:
            rates[kind].append(run(kind, 100 + r * chunk, chunk))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# bench_episodes: torch {torch.__version__}, {name}; fomaml vmap Conv-4, Omniglot shapes, "
          f"meta-batch {a.meta_batch}; median of 3 rounds of {chunk} steps")
    print("| episodes | steps/s |")
    print("|---|---|")
    for kind, v in rates.items():
        print(f"| {kind} | {statistics.median(v):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
