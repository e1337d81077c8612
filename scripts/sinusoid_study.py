"""Sinusoid study: MAML with the paper's settings (Finn et al. 2017, sec. 5.1, fig. 2).

The preset ``sinusoid_maml``: MLP 1-40-40-1 (ReLU, no normalisation), K = 10
support points, one inner step of 0.01 in training, meta-batch 25, Adam 1e-3.
Meta-training runs through the engine (the same code path as the app); the
final model is then scored on 600 fixed, seeded held-out tasks (10 query
points each), adapting on each task's 10 support points with 0 (the
meta-learned initialisation itself), 1 and 10 gradient steps of 0.01. Each
row: mean query MSE +- 95% CI (1.96 * std / sqrt(600)); the paired
difference against 0 steps is reported with its own CI.

    nice .venv/bin/python scripts/sinusoid_study.py [--steps N] [--episodes 600] [--threads 1]

The figures go to stdout as a Markdown table (see docs/results/sinusoid.md).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from workbench import config as C
from workbench.data import build_sources
from workbench.learners import build_learner
from workbench.train import events as E
from workbench.train.engine import run
from workbench.train.evaluate import fixed_episodes, mean_ci95


def study_config(steps: int, seed: int, threads: int, episodes: int) -> C.ExperimentConfig:
    return C.replace(C.load_preset("sinusoid_maml"),
                     **{"train.steps": steps, "train.seed": seed, "train.threads": threads, "train.eval_every": 0,
                        "train.log_every": max(1, steps // 20), "eval.episodes": episodes,
                        "embedding.method": "none"})


def train(cfg: C.ExperimentConfig):
    """Meta-train with the engine; returns (learner with the final weights, engine's test Evaluation, seconds)."""
    finished = test = None
    for ev in run(cfg):
        if isinstance(ev, E.StepMetrics):
            print(f"  step {ev.step}: {ev.wall_time:.0f} s, "
                  + ", ".join(f"{k} {v:.3f}" for k, v in ev.metrics.items()), file=sys.stderr, flush=True)
        elif isinstance(ev, E.Evaluation) and ev.phase == "test":
            test = ev
        elif isinstance(ev, E.RunFinished):
            finished = ev
        elif isinstance(ev, E.RunFailed):
            raise SystemExit(f"the run failed: {ev.message}")
    sources = build_sources(cfg)
    learner = build_learner(cfg, sources.train.input_shape, sources.n_train_classes)
    learner.load_state_dict(load_safetensors(finished.model_state))
    return learner, sources, test, finished.wall_time


def query_mse(learner, sources, episodes: int, seed: int, steps: int, lr: float) -> np.ndarray:
    """Query MSE of each fixed held-out task after ``steps`` SGD steps of ``lr`` on its support set."""
    out = []
    for task in fixed_episodes(sources.test, episodes, seed):
        state = learner.adapt(task.support_x, task.support_y, steps=steps, lr=lr)
        with torch.no_grad():
            out.append(float(((learner.predict(state, task.query_x) - task.query_y) ** 2).mean()))
    return np.asarray(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5000, help="meta-training steps (the paper: 70,000)")
    ap.add_argument("--episodes", type=int, default=600, help="held-out test tasks")
    ap.add_argument("--seed", type=int, default=0, help="seed of the run")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.episodes < 2:
        ap.error(f"--steps = {args.steps} and --episodes = {args.episodes}: need at least 1 step and 2 episodes")

    cfg = study_config(args.steps, args.seed, args.threads, args.episodes)
    t0 = time.perf_counter()
    learner, sources, engine_test, train_s = train(cfg)
    lr, seed = cfg.learner.test_inner_lr, cfg.eval.seed
    mse = {k: query_mse(learner, sources, args.episodes, seed, k, lr) for k in (0, 1, 10)}

    print(f"MAML, sinusoid K = {cfg.task.shots}, MLP {cfg.model.hidden}, inner lr {cfg.learner.inner_lr} x "
          f"{cfg.learner.inner_steps} step in training, meta-batch {cfg.learner.meta_batch}, "
          f"Adam {cfg.learner.meta_lr}: {cfg.train.steps} meta-steps ({train_s:.0f} s of training, "
          f"{time.perf_counter() - t0:.0f} s in all, torch {torch.__version__}, {args.threads} thread(s)); "
          f"{args.episodes} held-out tasks (eval seed {seed}), test-time lr {lr}.\n")
    print("| test-time steps | query MSE (mean +- 95% CI) | paired change vs 0 steps |")
    print("|---|---|---|")
    for k, v in mse.items():
        m, ci = mean_ci95(v)
        if k == 0:
            change = "-"
        else:
            d, dci = mean_ci95(v - mse[0])
            change = f"{d:+.3f} +- {dci:.3f}"
        print(f"| {k} | {m:.3f} +- {ci:.3f} | {change} |")
    print(f"\nThe engine's own final test (10 steps, same {args.episodes} tasks): "
          f"{engine_test.mean:.3f} +- {engine_test.ci95:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
