"""Session store benchmark (not a test): prints, in one run,

1. the recorder's overhead: seconds per meta-training step on the sinusoid preset
   (MAML, meta-batch 25) with and without recording to a session file, measured
   side by side (alternating, several repeats, medians), as a ratio;
2. the time to open a session holding one million points of one metric curve
   (two million points in all) and read that curve, and to read its summary.

    nice .venv/bin/python benchmarks/bench_store.py [--steps 150] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from workbench import config as C
from workbench.store import SessionReader, SessionWriter, read_summary, record
from workbench.train import events as E
from workbench.train.engine import run


def step_time(cfg, path: Path | None) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per meta-step between the first and the last StepMetrics
    (the training loop only). CPU time counts every thread of this process, the writer's flush
    thread included, and is far less disturbed than wall time by other programs on a shared machine."""
    events = run(cfg)
    if path is not None:
        events = record(events, path, cfg, projection="none")
    first = last = None
    for ev in events:
        if isinstance(ev, E.StepMetrics):
            now = (ev.step, time.perf_counter(), time.process_time())
            if first is None:
                first = now
            last = now
    n = last[0] - first[0]
    return (last[1] - first[1]) / n, (last[2] - first[2]) / n


def overhead(steps: int, repeats: int, log_every: int, folder: Path) -> None:
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": steps, "train.log_every": log_every,
                                                       "train.eval_every": 0, "eval.episodes": 10,
                                                       "train.threads": 1})
    step_time(cfg, None)                                 # warm up (imports, allocator)
    off, on = [], []
    for i in range(repeats):
        off.append(step_time(cfg, None))
        on.append(step_time(cfg, folder / f"bench-{log_every}-{i}.h5"))
    for k, what in ((1, "CPU"), (0, "wall")):
        a, b = statistics.median(x[k] for x in off), statistics.median(x[k] for x in on)
        print(f"sinusoid MAML, log_every={log_every:<3d} {what:4s} time per step without recording "
              f"{1e3 * a:6.2f} ms, with {1e3 * b:6.2f} ms (medians of {repeats}, alternating): "
              f"overhead {100 * (b / a - 1):+.2f}%   [without: {', '.join(f'{1e3 * x[k]:.1f}' for x in off)}; "
              f"with: {', '.join(f'{1e3 * x[k]:.1f}' for x in on)}]")


def big_session(folder: Path, points: int) -> Path:
    cfg = C.load_preset("sinusoid_maml")
    path = folder / "million.h5"
    t0 = time.perf_counter()
    with SessionWriter(path, cfg, projection="none") as w:
        for step in range(1, points + 1):
            w.write(E.StepMetrics(step, step * 1e-3, {"train/loss": 1.0 / step, "train/mse": 2.0 / step}))
        w.write(E.RunCancelled(points, points * 1e-3))
    print(f"wrote {2 * points:,} metric points ({points:,} per curve) in {time.perf_counter() - t0:.1f} s "
          f"through SessionWriter.write; file {path.stat().st_size / 1e6:.1f} MB")
    return path


def open_and_read(path: Path, repeats: int) -> None:
    times, sums = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with SessionReader(path) as r:
            steps, wall, values = r.metric("train/loss")
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        read_summary(path)
        sums.append(time.perf_counter() - t0)
    assert len(steps) == len(values) == len(wall)
    print(f"open a session and read one curve of {len(steps):,} points: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {repeats} repeats); read_summary median "
          f"{1e3 * statistics.median(sums):.1f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--points", type=int, default=1_000_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        overhead(a.steps, a.repeats, 25, folder)        # the preset's log_every
        overhead(a.steps, a.repeats, 1, folder)         # a metric row every step (stress)
        open_and_read(big_session(folder, a.points), a.repeats)


if __name__ == "__main__":
    main()
