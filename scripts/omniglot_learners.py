"""Every learner on real Omniglot at one common, small training budget.

Trains each registered learner on the alphabets of the authors' ``images_background_small1.zip``
that the alphabet split gives meta-training (3 of its 5 alphabets), then tests it 5-way 1-shot on
600 fixed episodes of the 2 alphabets it never saw (the same episodes for every learner), and
writes a Markdown table: mean accuracy with its 95% CI, steps, training time, the machine's load.

The budget is CPU seconds of meta-training per learner (this process's CPU time: on the shared
machine the wall time of the same work varies several-fold with the load). Each learner's steps
are set from a short timing run (median CPU seconds per step), so every learner gets about the
same computation; the CPU and wall time it really took are in the table. Usage::

    .venv/bin/python scripts/omniglot_learners.py --seconds 60 --out docs/results/omniglot_learners.md
    .venv/bin/python scripts/omniglot_learners.py --only r2d2,relationnet --seconds 30 --episodes 100

Per-learner settings (``SETTINGS``) are the field's usual Omniglot choices, not tuned here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench import config as C  # noqa: E402
from workbench import format as fmt  # noqa: E402
from workbench import registry  # noqa: E402

ZIP = "/work/shared/data/omniglot/images_background_small1.zip"

# common setting: Conv-4 (32 filters, batch norm), 28x28, 5-way 1-shot, 5 queries per class in training
BASE = {
    "data": {"dataset": "omniglot", "path": ZIP, "image_size": 28},
    "split": {"method": "group", "train_fraction": 0.6, "val_fraction": 0.0, "seed": 0},
    "task": {"ways": 5, "shots": 1, "queries": 5},
    "model": {"backbone": "conv4", "filters": 32, "norm": "batch"},
    "learner": {"meta_lr": 3e-3, "meta_batch": 4},
    "embedding": {"method": "none"},
    "train": {"eval_every": 0, "log_every": 10, "threads": 1, "seed": 0},
    "eval": {"episodes": 600, "seed": 7},
}
_MAMLISH = {"inner_steps": 1, "inner_lr": 0.4, "test_inner_steps": 3, "test_inner_lr": 0.4}
SETTINGS = {
    "maml": {"learner": _MAMLISH}, "fomaml": {"learner": _MAMLISH}, "anil": {"learner": _MAMLISH},
    "metasgd": {"learner": _MAMLISH}, "mamlpp": {"learner": _MAMLISH}, "protomaml": {"learner": _MAMLISH},
    "boil": {"learner": _MAMLISH}, "cavia": {"learner": {**_MAMLISH, "inner_lr": 1.0, "test_inner_lr": 1.0}},
    "reptile": {"learner": {"inner_steps": 5, "inner_lr": 0.1, "test_inner_steps": 10, "test_inner_lr": 0.1,
                            "reptile_epsilon": 0.5}},
    "multitask": {"learner": {"test_inner_steps": 50, "test_inner_lr": 0.5}},
    "baselinepp": {"learner": {"test_inner_steps": 50, "test_inner_lr": 0.5}},
}


def config_for(name: str, steps: int, episodes: int, overrides: dict | None = None) -> C.ExperimentConfig:
    """The common setting for learner ``name``, with dotted-key ``overrides`` on top."""
    d = json.loads(json.dumps(BASE))
    for sec, vals in SETTINGS.get(name, {}).items():
        d[sec].update(vals)
    d["learner"]["name"] = name
    for key, value in (overrides or {}).items():
        sec, _, field = key.rpartition(".")
        d.setdefault(sec, {})[field] = value
    d["train"]["steps"] = steps
    d["eval"]["episodes"] = episodes
    return C.from_dict(d)


def seconds_per_step(name: str, overrides: dict | None = None) -> float:
    """Median CPU seconds of this process per meta-step, over steps 3..8 of a short run (the first
    steps warm up). CPU time, not wall time: on a shared machine the wall time of the same work
    changes several-fold with the load, the CPU time hardly."""
    from workbench.train import events as E
    from workbench.train.engine import run
    cfg = config_for(name, 8, 1, overrides)
    cfg.train.log_every = 1
    times = [time.process_time() for e in run(cfg) if isinstance(e, E.StepMetrics)]
    if len(times) < 8:
        raise RuntimeError(f"{name}: timing run did not finish")
    return statistics.median(b - a for a, b in zip(times[2:-1], times[3:]))


def train_and_test(name: str, seconds: float, episodes: int, overrides: dict | None = None) -> dict:
    """Train ``name`` for about ``seconds`` of meta-training (steps from a timing run), test it."""
    from workbench.train import events as E
    from workbench.train.engine import run
    per_step = seconds_per_step(name, overrides)
    steps = max(10, int(seconds / per_step))
    cfg = config_for(name, steps, episodes, overrides)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    train_time, cpu0, cpu, result = None, None, None, {"learner": name, "steps": steps}
    for ev in run(cfg):       # events arrive as they happen: the CPU clock read here brackets training
        if isinstance(ev, E.RunStarted):
            cpu0, wall0 = time.process_time(), ev.wall_time
        elif isinstance(ev, E.Checkpoint) and ev.step == steps and train_time is None:
            train_time, cpu = ev.wall_time - wall0, time.process_time() - cpu0
        elif isinstance(ev, E.RunFailed):
            return {**result, "failed": ev.message}
        elif isinstance(ev, E.Evaluation) and ev.phase == "test":
            result.update(mean=ev.mean, ci95=ev.ci95, episodes=len(ev.per_task))
    result.update(train_s=train_time, train_cpu_s=cpu, total_s=time.perf_counter() - t0,
                  load=(load0 + os.getloadavg()[0]) / 2)
    return result


def table(rows: list[dict], seconds: float) -> str:
    out = ["| learner | paper | steps | training CPU (wall) | 5-way 1-shot accuracy, unseen alphabets (95% CI) | "
           "load avg |", "|---|---|---:|---:|---|---:|"]
    for r in sorted(rows, key=lambda r: -(r.get("mean") or -1)):
        spec = registry.learners.get(r["learner"])
        if "failed" in r:
            out.append(f"| {spec.label} | {spec.paper} | {r['steps']} | – | failed: {r['failed']} | – |")
            continue
        out.append(f"| {spec.label} | {spec.paper} | {r['steps']} | {fmt.duration(r['train_cpu_s'])} "
                   f"({fmt.duration(r['train_s'])}) | "
                   f"{fmt.metric_ci('accuracy', r['mean'], r['ci95'], 1)} ({r['episodes']} episodes) | "
                   f"{r['load']:.1f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="meta-training budget per learner, CPU seconds")
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--only", default="", help="comma-separated learner names (default: every registered one)")
    ap.add_argument("--out", default="", help="Markdown file for the table (default: print it)")
    ap.add_argument("--json", default="", help="also write the raw rows as JSON here")
    args = ap.parse_args(argv)
    if not Path(ZIP).is_file():
        print(f"{ZIP} is missing", file=sys.stderr)
        return 2
    import torch
    torch.set_num_threads(1)
    names = [n for n in args.only.split(",") if n] or list(registry.learners.names())
    rows = []
    for name in names:
        try:
            r = train_and_test(name, args.seconds, args.episodes)
        except Exception as e:  # one learner's failure is a row, not the end of the table
            r = {"learner": name, "steps": 0, "failed": f"{type(e).__name__}: {e}"}
        rows.append(r)
        print(json.dumps(r), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    text = (f"Budget {args.seconds:g} CPU seconds of meta-training per learner, one torch thread, "
            f"{args.episodes} test episodes.\n\n" + table(rows, args.seconds))
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
