"""GUI responsiveness and overhead while training (a benchmark, not a test).

    python benchmarks/bench_gui.py [--repeats 2] [--steps 300]

Trains the default experiment (ProtoNet on the bundled digits, recorded to a
session file) alternately headless -- ``record(run(cfg))`` iterated on the
main thread, as ``workbench run`` does -- and through the real window (worker
thread, batched events, live curves, t-SNE embedding map, per-task panel),
and reports in one run:

- the UI event loop's stalls during the GUI runs: a 5 ms QTimer records how
  late each tick fires; the longest and the 99th percentile lateness
  (target p99 < 50 ms);
- meta-training throughput (steps per second between the first and the last
  StepMetrics, by the engine's own clock, validation rounds included) through
  the GUI as a ratio of headless throughput (target >= 0.95), median over the
  repeats, runs interleaved so that machine load hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def throughput(step_walls: list[tuple[int, float]]) -> float:
    (s0, w0), (s1, w1) = step_walls[0], step_walls[-1]
    return (s1 - s0) / (w1 - w0)


def headless(cfg, folder) -> float:
    from workbench.store import new_session_path, record
    from workbench.train import events as E
    from workbench.train.engine import run
    sw = []
    for ev in record(run(cfg), new_session_path(cfg, folder), cfg):
        if isinstance(ev, E.StepMetrics):
            sw.append((ev.step, ev.wall_time))
        elif isinstance(ev, E.RunFailed):
            raise SystemExit(f"headless run failed: {ev.message}")
    return throughput(sw)


def through_gui(app, cfg, settings) -> tuple[float, list[float]]:
    from PySide6.QtCore import QEventLoop, QTimer
    from workbench.gui.app import dispose
    from workbench.gui.main_window import MainWindow
    from workbench.train import events as E

    win = MainWindow(cfg, settings=settings)
    win.show()
    win.resize(1600, 1000)
    app.processEvents()
    sw: list[tuple[int, float]] = []
    win.worker.events.connect(lambda batch: sw.extend((e.step, e.wall_time) for e in batch
                                                      if isinstance(e, E.StepMetrics)))
    late: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        late.append(max(0.0, now - last[0] - 0.005))
        last[0] = now

    probe = QTimer()
    probe.setInterval(5)
    probe.timeout.connect(tick)
    loop = QEventLoop()
    win.run_finished.connect(lambda *_: loop.quit())
    last[0] = time.perf_counter()
    probe.start()
    win.run()
    loop.exec()
    probe.stop()
    if not isinstance(win.last_terminal, E.RunFinished):
        raise SystemExit(f"GUI run did not finish: {win.last_terminal}")
    win.embedding.wait_idle(60000)
    win.close()
    dispose(win)
    return throughput(sw), late


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="meta-training steps (default: the default experiment's)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in both modes (train.threads; default 1: on a shared, busy CPU, torch's "
                         "spinning OpenMP threads on the main thread make the headless baseline 4-25x slower "
                         "than the same run in the GUI's worker thread, measured here; 0 = torch's default)")
    args = ap.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="workbench-bench-gui-")
    os.environ["WORKBENCH_WORKSPACE"] = folder

    from PySide6.QtCore import QSettings
    from workbench import config as C
    from workbench.gui.app import make_app

    cfg = C.replace(C.default_config(), **{"train.threads": args.threads})
    if args.steps:
        cfg = C.replace(cfg, **{"train.steps": args.steps})
    app = make_app()
    settings = QSettings(os.path.join(folder, "settings.ini"), QSettings.Format.IniFormat)
    print(f"default experiment: {cfg.name}, {cfg.train.steps} steps, validation every {cfg.train.eval_every}, "
          f"{cfg.eval.episodes} test episodes; torch threads: {args.threads or 'default'}", flush=True)
    headless(C.replace(cfg, **{"train.steps": 10, "train.eval_every": 5, "eval.episodes": 10}), folder)  # warm up
    heads, guis, lates = [], [], []
    for r in range(args.repeats):
        h = headless(cfg, folder)
        g, late = through_gui(app, cfg, settings)
        heads.append(h)
        guis.append(g)
        lates += late
        print(f"repeat {r + 1}: headless {h:.2f} steps/s, GUI {g:.2f} steps/s, ratio {g / h:.3f}; "
              f"UI stall max {1000 * max(late):.1f} ms, p99 {1000 * percentile(late, 0.99):.1f} ms "
              f"({len(late)} ticks)", flush=True)
    ratios = [g / h for g, h in zip(guis, heads)]
    print(f"\nthroughput through the GUI / headless: median {statistics.median(ratios):.3f} "
          f"(runs: {', '.join(f'{x:.3f}' for x in ratios)}; target >= 0.95)")
    print(f"UI event-loop stall over all GUI runs: max {1000 * max(lates):.1f} ms, "
          f"p99 {1000 * percentile(lates, 0.99):.1f} ms, p50 {1000 * percentile(lates, 0.5):.2f} ms "
          f"(target p99 < 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
