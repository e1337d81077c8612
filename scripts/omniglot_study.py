"""Omniglot study: ProtoNet and second-order MAML, 5-way 1-shot, on alphabets never seen in training.

Reads the authors' ``images_background_small1.zip`` (5 alphabets, 136 characters,
20 drawings each), splits it by alphabet (``split.method = "group"``: whole
alphabets go to meta-train or meta-test), meta-trains a Conv-4 (64 filters,
28x28, batch statistics) with each learner, and tests on 600 fixed, seeded
episodes of the held-out alphabets: mean accuracy +- 95% CI
(1.96 * std / sqrt(600)), plus the meta-training wall time and this process's CPU
time (with one torch thread the CPU time is the work done; the wall time also
counts waiting for a shared machine).

    nice .venv/bin/python scripts/omniglot_study.py [--zip PATH] [--protonet-steps N] [--maml-steps N]

The figures go to stdout as a Markdown table (see docs/results/omniglot.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from workbench import config as C
from workbench.train import events as E
from workbench.train.engine import run

DEFAULT_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot" / "images_background_small1.zip"


def study_config(zip_path: str, learner: str, steps: int, threads: int = 1, meta_batch: int = 4) -> C.ExperimentConfig:
    """5-way 1-shot, Conv-4 64 filters at 28x28, alphabets split 3 train / 2 test, no validation."""
    d = {
        "name": f"omniglot-study-{learner}",
        "data": {"dataset": "omniglot", "path": zip_path, "image_size": 28},
        "split": {"method": "group", "train_fraction": 0.6, "val_fraction": 0.0, "seed": 0},
        "task": {"ways": 5, "shots": 1, "queries": 15},
        "model": {"backbone": "conv4", "filters": 64, "norm": "batch"},
        "embedding": {"method": "none"},
        "train": {"steps": steps, "eval_every": 0, "log_every": max(1, steps // 10), "seed": 0,
                  "threads": threads},
        "eval": {"episodes": 600, "seed": 1234},
    }
    if learner == "protonet":
        d["learner"] = {"name": "protonet", "meta_lr": 1e-3, "meta_batch": meta_batch}
    else:   # MAML as in Finn et al. for Omniglot 5-way 1-shot, second order
        d["learner"] = {"name": "maml", "first_order": False, "inner_steps": 1, "inner_lr": 0.4,
                        "test_inner_steps": 3, "test_inner_lr": 0.4, "meta_lr": 1e-3, "meta_batch": meta_batch}
    return C.from_dict(d)


def run_one(cfg: C.ExperimentConfig) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    out = {"learner": cfg.learner.name, "steps": cfg.train.steps}
    for ev in run(cfg):
        if isinstance(ev, E.RunStarted):
            out["train_alphabets"], out["test_alphabets"] = ev.split["groups"][0], ev.split["groups"][2]
        elif isinstance(ev, E.StepMetrics):
            out["train_wall_s"], out["train_cpu_s"] = ev.wall_time, time.process_time() - c0
            print(f"  {cfg.learner.name} step {ev.step}: {ev.wall_time:.0f} s, "
                  + ", ".join(f"{k} {v:.3f}" for k, v in ev.metrics.items()), file=sys.stderr, flush=True)
        elif isinstance(ev, E.Evaluation) and ev.phase == "test":
            out.update(mean=ev.mean, ci95=ev.ci95, episodes=len(ev.per_task))
        elif isinstance(ev, E.RunFailed):
            raise SystemExit(f"{cfg.learner.name} failed: {ev.message}")
    out["total_wall_s"] = time.perf_counter() - t0
    out["test_wall_s"] = out["total_wall_s"] - out["train_wall_s"]
    out["test_cpu_s"] = time.process_time() - c0 - out["train_cpu_s"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zip", default=str(DEFAULT_ZIP), help="Omniglot zip or folder")
    p.add_argument("--protonet-steps", type=int, default=100)
    p.add_argument("--maml-steps", type=int, default=150)
    p.add_argument("--meta-batch", type=int, default=4, help="tasks per meta-step (both learners)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; on a shared, oversubscribed 2-core machine 1 is several times faster than 2")
    args = p.parse_args(argv)
    rows = []
    for learner, steps in (("protonet", args.protonet_steps), ("maml", args.maml_steps)):
        rows.append(run_one(study_config(args.zip, learner, steps, args.threads, args.meta_batch)))
        print(f"{learner}: {rows[-1]}", file=sys.stderr, flush=True)
    r0 = rows[0]
    print(f"train alphabets: {', '.join(r0['train_alphabets'])}; test alphabets: {', '.join(r0['test_alphabets'])}")
    print()
    print("| learner | meta-train steps | tasks/step | test accuracy (600 episodes, 95% CI) | train wall (CPU) | "
          "test wall (CPU) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        mb = args.meta_batch
        name = "ProtoNet" if r["learner"] == "protonet" else "MAML (2nd order, 1 step)"
        print(f"| {name} | {r['steps']} | {mb} | {100 * r['mean']:.2f}% +- {100 * r['ci95']:.2f}% | "
              f"{r['train_wall_s']:.0f} s ({r['train_cpu_s']:.0f} s) | {r['test_wall_s']:.0f} s "
              f"({r['test_cpu_s']:.0f} s) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
