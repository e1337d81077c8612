"""How long the sessions browser takes to fill from a workspace of 500 sessions (target: < 1 s).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_sessions_browser.py [--sessions 500] [--keep DIR]

The workspace is built first: 20 distinct session files written by the real
store writer from ``fake_run`` events (mixed learners, data sets, ways/shots,
finished / cancelled / failed), each then copied with changed root
attributes (name, learner, data set, ways, shots, created time, final
result) until there are ``--sessions`` files, plus 2 damaged files. Then, each
timed ``--repeats`` times in this process (the files are in the OS cache, as
after any first look at the workspace):

- ``store.list_sessions``: reading every summary, no Qt;
- building a ``SessionsBrowser`` until its table holds every row (scan, read,
  fill the model, first layout): with no summary index (every file opened, as
  on the first look at a workspace) and with the index the browser keeps
  (what every later opening costs);
- a refresh tick with nothing changed (what the 1 s timer costs);
- filtering by a word, and sorting by the final-metric column.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from workbench import config as C  # noqa: E402
from workbench import store  # noqa: E402
from workbench.store.fake import fake_run  # noqa: E402

LEARNERS = ("protonet", "maml", "fomaml", "anil", "metasgd", "reptile", "matching", "multitask")
DATASETS = ("digits", "omniglot", "miniimagenet", "sinusoid", "multimodal")


def build_workspace(folder: Path, n: int, seed: int = 0) -> float:
    """Write 20 real sessions with the store writer, then copies with changed root attributes."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    originals = []
    for i in range(20):
        learner = LEARNERS[i % len(LEARNERS)]
        cfg = C.replace(C.default_config(), **{"name": f"base {i}", "learner.name": learner,
                                               "train.steps": 40, "train.eval_every": 10, "train.log_every": 2})
        end = ("finished", "finished", "finished", "cancelled", "failed")[i % 5]
        path = store.new_session_path(cfg, folder)
        for _ in store.record(fake_run(cfg, seed=i, end=end, test_tasks=60, dim=16), path, cfg,
                              projection="pca"):
            pass
        originals.append(path)
    for k in range(n - len(originals)):
        src = originals[k % len(originals)]
        dst = folder / f"2025{k % 12 + 1:02d}{k % 28 + 1:02d}-{k % 24:02d}0000-copy-{k:05d}.h5"
        shutil.copyfile(src, dst)
        with h5py.File(dst, "r+") as f:
            a = f.attrs
            a["name"] = f"run {k} {LEARNERS[k % len(LEARNERS)]}"
            a["learner"] = LEARNERS[rng.integers(len(LEARNERS))]
            a["dataset"] = DATASETS[rng.integers(len(DATASETS))]
            a["ways"] = int(rng.choice([5, 20, 3]))
            a["shots"] = int(rng.choice([1, 5]))
            a["created"] = f"2025-{k % 12 + 1:02d}-{k % 28 + 1:02d}T{k % 24:02d}:00:00+00:00"
            st = f["state"][0:1].copy()
            if np.isfinite(st["final_mean"][0]):
                st["final_mean"] = rng.uniform(0.3, 0.99)
                st["final_ci95"] = rng.uniform(0.002, 0.02)
            f["state"][0:1] = st
    (folder / "zz-damaged-1.h5").write_bytes(b"not an hdf5 file at all")
    (folder / "zz-damaged-2.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    return time.perf_counter() - t0


CPU: dict[int, list[float]] = {}


def timed(fn, repeats: int):
    """Wall-clock times of ``repeats`` calls (CPU times of this process kept in ``CPU``)."""
    out, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        out.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU[id(out)] = cpu
    return out


def fmt(ts) -> str:
    cpu = CPU.get(id(ts), [float("nan")])
    return (f"wall median {statistics.median(ts) * 1000:7.1f} ms (min {min(ts) * 1000:7.1f})   "
            f"cpu median {statistics.median(cpu) * 1000:7.1f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="build the workspace here and keep it")
    args = ap.parse_args(argv)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="wb-bench-sessions-"))
    folder.mkdir(parents=True, exist_ok=True)
    existing = len(list(folder.glob("*.h5")))
    if existing < args.sessions:
        build = build_workspace(folder, args.sessions)
        print(f"built a workspace of {args.sessions} sessions (+2 damaged) in {build:.1f} s: {folder}")
    files = sorted(folder.glob("*.h5"))
    size = sum(p.stat().st_size for p in files)
    print(f"{len(files)} files, {size / 2**20:.1f} MiB ({size / len(files) / 1024:.0f} KiB each on average); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall > cpu when the machine is busy)")

    from PySide6.QtWidgets import QApplication
    from PySide6.QtCore import Qt
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from workbench.gui.sessions import COLUMNS, SessionsBrowser, SummaryIndex

    t_list = timed(lambda: store.list_sessions(folder), args.repeats)
    print(f"store.list_sessions ({len(files)} files):          {fmt(t_list)}")

    browsers = []
    index = folder / SummaryIndex.NAME

    def fill_cold():
        index.unlink(missing_ok=True)      # no index: every file is opened and read
        fill()

    def fill():
        b = SessionsBrowser(folder)
        b.resize(1100, 600)
        b.show()
        app.processEvents()
        assert b.model.rowCount() == len(files), (b.model.rowCount(), len(files))
        browsers.append(b)
    t_cold = timed(fill_cold, args.repeats)
    print(f"SessionsBrowser filled and shown, no index:    {fmt(t_cold)}")
    t_fill = timed(fill, args.repeats)
    print(f"SessionsBrowser filled and shown, with index:  {fmt(t_fill)}")
    b = browsers[-1]
    for x in browsers[:-1]:
        x.timer.stop()
        x.deleteLater()
    damaged = sum(r.status == "damaged" for r in b.model.rows)
    t_tick = timed(b.refresh, args.repeats)
    print(f"refresh tick, nothing changed:                 {fmt(t_tick)}")

    def filt():
        b.filter_edit.setText("maml omniglot")
        app.processEvents()
        b.filter_edit.clear()
        app.processEvents()
    t_filter = timed(filt, args.repeats)
    print(f"filter 'maml omniglot' then clear:             {fmt(t_filter)}")

    def sort():
        b.view.sortByColumn(COLUMNS.index("Final metric"), Qt.SortOrder.AscendingOrder)
        app.processEvents()
        b.view.sortByColumn(COLUMNS.index("Date"), Qt.SortOrder.DescendingOrder)
        app.processEvents()
    t_sort = timed(sort, args.repeats)
    print(f"sort by final metric, then by date:            {fmt(t_sort)}")
    print(f"rows: {b.model.rowCount()} ({damaged} damaged shown as damaged)")
    for what, ts in (("first open (no index)", t_cold), ("reopening (index)", t_fill)):
        verdict = "PASS" if statistics.median(ts) < 1.0 else "FAIL"
        print(f"target: filling the browser from {args.sessions} sessions < 1 s, {what}: {verdict} "
              f"(wall {statistics.median(ts):.3f} s, cpu {statistics.median(CPU[id(ts)]):.3f} s median)")
    b.timer.stop()
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
