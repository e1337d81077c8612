"""A study's runs one after another vs on the local pool: the wall-time ratio pool / serial.

    python benchmarks/bench_study.py [--runs 12] [--steps 150] [--workers N]

The same study (ProtoNet and Matching Networks on the bundled digits, 3-way 5-shot, MLP, one torch thread
per run; ``--runs`` runs over seeds) is run twice into fresh folders:

- ``serial``: every run in this process, one after another, through the worker function the pool uses
  (:func:`workbench.study.runner.execute_run`: the CLI recorder, a session file each), torch imported
  beforehand (not timed);
- ``pool``: :func:`workbench.study.runner.run_study` with the local backend (worker processes started,
  torch imported in them, progress polled from the session files: all timed).

Both write real session files and the per-run test metrics must agree (checked). Target on a 2-core
machine: pool <= 0.6 x serial. On a shared machine other processes take cores too, so the benchmark
also prints the load average and a calibration: the same pure-Python loop in 1 process and in 2 at
once (``two/one``: 1.0 when two cores are free for us, 2.0 when only one is). The best a 2-worker pool
can reach is about ``two/one / 2``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STUDY = """
[study]
name = "bench study"
seeds = {seeds}
[study.grid]
"learner.name" = ["protonet", "matching"]
[base]
base_preset = "digits_protonet"
[base.train]
steps = {steps}
eval_every = 0
log_every = 10
checkpoint_every = 0
[base.eval]
episodes = 100
[base.embedding]
method = "none"
"""


def _burn(_=None) -> float:
    t = time.perf_counter()
    x = 0
    for i in range(4_000_000):
        x += i
    return time.perf_counter() - t


def calibration() -> float:
    """Wall time of 2 CPU-bound processes at once / 1 alone (1.0: two free cores; 2.0: one)."""
    import multiprocessing as mp
    t = time.perf_counter()
    _burn()
    one = time.perf_counter() - t
    with mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(2) as pool:
        pool.map(_burn, [0, 1])             # warm the pool
        t = time.perf_counter()
        pool.map(_burn, [0, 1])
        two = time.perf_counter() - t
    return two / one


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=12, help="runs in the study (even; two learners x runs/2 seeds)")
    p.add_argument("--steps", type=int, default=150, help="meta-training steps per run")
    p.add_argument("--workers", type=int, default=None, help="pool workers (default: the runner's choice)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch  # noqa: F401  (imported before the serial timing starts)

    from workbench import config as C
    from workbench.store import SessionReader
    from workbench.study import create_record, plan, study_from_toml
    from workbench.study.runner import default_workers, execute_run, run_study, threads_per_run

    seeds = list(range(max(1, args.runs // 2)))
    defn = study_from_toml(STUDY.format(seeds=seeds, steps=args.steps))
    root = Path(tempfile.mkdtemp(prefix="bench-study-"))
    load0 = os.getloadavg()
    cal0 = calibration()

    serial = create_record(defn, root / "serial")
    configs = {r.run_id: r.config for r in plan(defn)}
    t = time.perf_counter()
    for r in serial.runs:
        out = execute_run({"run_id": r.run_id, "config_toml": C.to_toml(configs[r.run_id]),
                           "session": str(serial.session_path(r)), "mode": "start",
                           "threads": threads_per_run(defn.base)})
        assert out["status"] == "finished", out
    t_serial = time.perf_counter() - t

    pool = create_record(defn, root / "pool")
    n = args.workers or default_workers(pool)
    t = time.perf_counter()
    pool = run_study(pool, "local", workers=n)
    t_pool = time.perf_counter() - t
    load1 = os.getloadavg()
    cal1 = calibration()

    def means(rec):
        out = {}
        for r in rec.runs:
            with SessionReader(rec.session_path(r)) as s:
                out[r.run_id] = s.final_test().mean
        return out
    same = means(serial) == means(pool)
    print(f"study: {len(serial.runs)} runs x {args.steps} steps (protonet, matching on digits), "
          f"{os.cpu_count()} cores, pool of {n} workers")
    print(f"serial {t_serial:7.1f} s   ({t_serial / len(serial.runs):.2f} s per run)")
    print(f"pool   {t_pool:7.1f} s   ratio pool/serial = {t_pool / t_serial:.3f}  (target <= 0.6)")
    print(f"per-run test metrics identical: {same}")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f}; calibration two/one before {cal0:.2f}, "
          f"after {cal1:.2f} (1.0: two free cores, 2.0: one), so the best a 2-worker pool can do here is about "
          f"{min(cal0, cal1) / 2:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
