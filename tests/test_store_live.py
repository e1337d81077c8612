"""Live reading (SWMR) from a writer subprocess, and crash safety under SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from workbench.store import SessionReader, read_summary

WRITER = textwrap.dedent("""
    import sys
    from workbench import config as C
    from workbench.store import record
    from workbench.store.fake import fake_run
    from workbench.train import events as E
    path, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": steps, "train.log_every": 1,
                                                       "train.eval_every": 20})
    for ev in record(fake_run(cfg, delay=delay), path, cfg, projection="none"):
        if isinstance(ev, E.StepMetrics):
            print(ev.step, flush=True)
""")


def start_writer(path, steps, delay):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(steps), str(delay)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(cond, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(90)
def test_reader_sees_rows_grow_while_writer_runs(tmp_path):
    path = tmp_path / "live.h5"
    # about 3.6 s of writing: the writer flushes every 0.5 s (HEARTBEAT_S), so a reader polling every
    # 50 ms sees the rows grow about seven times while the writer runs
    proc = start_writer(path, steps=120, delay=0.03)
    try:
        assert proc.stdout.readline().strip() == "1"         # the file exists and SWMR is on
        r = SessionReader(path)
        seen = []                                            # (rows, status) at every poll

        def poll():
            r.refresh()
            rows = len(r.metric("train/loss")[0]) if "train/loss" in r.metric_names() else 0
            seen.append((rows, r.status))
            return r.status != "running"
        assert wait_for(poll, 60)
        assert r.status == "finished"
        rows = [n for n, _ in seen]
        assert rows == sorted(rows)                                      # rows only grow
        assert any(0 < n < 120 and st == "running" for n, st in seen)   # partial rows seen while live
        assert len(set(rows)) >= 3
        steps, _, _ = r.metric("train/loss")
        assert steps.tolist() == list(range(1, 121))
        assert [e.step for e in r.evaluations("val")] == [20, 40, 60, 80, 100]
        r.close()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.timeout(90)
def test_sigkill_leaves_an_interrupted_file_with_every_flushed_row(tmp_path):
    path = tmp_path / "killed.h5"
    proc = start_writer(path, steps=100000, delay=0.01)
    seen = 0
    try:
        while seen < 30:
            seen = int(proc.stdout.readline())
        time.sleep(1.6)          # > one flush period: every row up to `seen` must be on disk
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert read_summary(path).status == "interrupted"
    with SessionReader(path) as r:
        assert r.status == "interrupted"
        steps, wall, vals = r.metric("train/loss")
        assert len(steps) >= seen
        assert steps.tolist() == list(range(1, len(steps) + 1))     # no gaps, nothing torn
        assert np.all(np.isfinite(vals)) and np.all(np.diff(wall) >= 0)
        assert r.summary().steps_done >= seen
        n = len(steps)
    # a killed file still carries HDF5's "open for writing" flag: reopening for a resume copes with it
    from workbench import config as C
    from workbench.store import SessionWriter
    from workbench.train import events as E
    cfg = C.load_preset("sinusoid_maml")
    with SessionWriter.reopen(path, cfg, projection="none") as w:
        w.write(E.RunStarted("", 100, n, "cpu", {}, {}, "mse", 0.0))
        w.write(E.StepMetrics(n + 1, 0.5, {"train/loss": 1.0}))
        w.write(E.RunCancelled(n + 1, 0.6))
    with SessionReader(path) as r:
        assert r.status == "cancelled" and r.resumes == 1
        assert r.metric("train/loss")[0].tolist() == list(range(1, n + 2))
