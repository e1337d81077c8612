"""Running studies for real (tiny digits runs): the local pool killed with SIGKILL mid-way and resumed
ends with every run finished exactly once and the same results table as an uninterrupted run; a real
local Ray instance gives the same per-run metrics; bad launches get one sentence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.analysis.study import aggregate, to_text
from workbench.store import SessionReader, read_summary
from workbench.study import StudyError, create_record, open_record, study_from_toml
from workbench.study.runner import StudyUpdate, run_study

# 2 axes (learner x shots, the second with one value) x 3 seeds = 6 runs of 600 steps, checkpoints every 30
# (long enough that the kill lands mid-study on a quiet machine: 20-step runs all finished in 3 s)
STUDY = """
[study]
name = "kill test"
seeds = [0, 1, 2]
[study.grid]
"learner.name" = ["protonet", "maml"]
"task.shots" = [2]
[base]
base_preset = "digits_protonet"
[base.model]
hidden = [32]
[base.train]
steps = 600
eval_every = 0
log_every = 30
checkpoint_every = 30
[base.eval]
episodes = 20
[base.embedding]
method = "none"
"""

pytestmark = pytest.mark.slow


def per_run(rec) -> dict[str, float]:
    out = {}
    for r in rec.runs:
        with SessionReader(rec.session_path(r)) as s:
            assert s.status == "finished", (r.run_id, s.status)
            t = s.final_test()
            out[r.run_id] = (float(t.mean), tuple(t.per_task.tolist()))
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study run once, uninterrupted, on the local pool with 2 workers."""
    folder = tmp_path_factory.mktemp("ref") / "study"
    updates: list[StudyUpdate] = []
    rec = run_study(create_record(study_from_toml(STUDY), folder), "local", workers=2, on_update=updates.append)
    assert rec.finished and rec.counts()["finished"] == 6
    assert {u.status for u in updates} >= {"queued", "finished"}
    last = {u.run_id: u for u in updates}
    assert all(u.status == "finished" and u.step == u.total_steps == 600 for u in last.values())
    return per_run(rec), to_text(aggregate(rec))


def _cli(*args, env=None):
    return [sys.executable, "-m", "workbench", *args]


def test_sigkilled_study_resumes_every_run_once_and_equals_an_uninterrupted_run(tmp_path, reference, capfd):
    path = tmp_path / "study.toml"
    path.write_text(STUDY, encoding="utf-8")
    folder = tmp_path / "st"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen(_cli("study", "run", str(path), "--workers", "2", "--folder", str(folder), "--quiet"),
                         env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = folder / "runs"
    deadline = time.monotonic() + 240
    finished: dict[str, tuple] = {}
    try:
        while time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
            done, midway, started = 0, 0, 0
            for f in runs.glob("*.h5") if runs.is_dir() else ():
                try:
                    with SessionReader(f) as s:
                        if s.status == "finished":
                            done += 1
                        else:
                            started += 1
                            midway += bool(s.checkpoints())
                except Exception:  # a file being created
                    pass
            if done >= 2 and midway or done >= 3 and started:
                break
        assert p.poll() is None, "the study ended before it could be killed: " + p.stderr.read().decode()[-2000:]
        os.killpg(p.pid, signal.SIGKILL)          # the launcher and its workers, at once
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    time.sleep(1.5)                               # a heartbeat ages: the writers are dead, not slow
    with_checkpoint = []
    for f in runs.glob("*.h5"):
        with SessionReader(f) as s:
            if s.status == "finished":
                finished[f.name] = (f.stat().st_mtime_ns, f.stat().st_size)
            else:
                assert s.status == "interrupted", (f.name, s.status)
                if s.checkpoints():
                    with_checkpoint.append(f.name)
    assert 2 <= len(finished) < 6
    before = open_record(folder)
    assert not before.finished
    interrupted = [f.name for f in runs.glob("*.h5") if f.name not in finished]

    out = subprocess.run(_cli("study", "resume", str(folder), "--workers", "2", "--quiet"), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rec = open_record(folder)
    assert rec.finished and rec.counts()["finished"] == 6
    # nothing finished ran twice: those files are untouched, their runs started once
    for name, (mtime, size) in finished.items():
        f = runs / name
        assert (f.stat().st_mtime_ns, f.stat().st_size) == (mtime, size), name
        assert rec.run(name[:-3]).attempts == 1
    # runs cut off mid-way resumed from their last checkpoint into the same file
    # on a busy machine the kill usually lands after a run's first checkpoint (it resumes); on a fast one a
    # run just started may show none yet (it restarts): both are checked, whichever happened
    assert interrupted, "the kill left no run cut off mid-way"
    for name in interrupted:
        with SessionReader(runs / name) as s:
            if name in with_checkpoint:
                assert s.resumes == 1, name              # continued in the same file
            else:
                assert s.resumes == 0 and (runs / f"{name}.stale-1").exists()   # restarted afresh
    assert all(r.attempts <= 2 for r in rec.runs)
    ref_runs, ref_table = reference
    assert per_run(rec) == ref_runs
    assert to_text(aggregate(rec)) == ref_table
    assert "Traceback" not in out.stderr
    # resuming a finished study does nothing, and `study show` prints the same table
    from workbench.cli import main
    assert main(["study", "resume", str(folder), "--quiet"]) == 0
    assert "(0 to do)" in capfd.readouterr().err
    assert main(["study", "show", str(folder)]) == 0
    assert ref_table in capfd.readouterr().out


# the Ray test's study: the same grid and seeds in 20-step runs. Ray and the local pool are compared on
# one study, run on both; only the SIGKILL needs runs long enough to be caught mid-way (the 600-step
# study on Ray took 26 s of the suite, this one about 12 s with its local run)
SHORT = STUDY.replace("steps = 600\n", "steps = 20\n").replace("log_every = 30", "log_every = 5").replace(
    "checkpoint_every = 30", "checkpoint_every = 5")


def test_a_real_local_ray_instance_gives_the_same_per_run_metrics(tmp_path):
    ray = pytest.importorskip("ray")
    local = run_study(create_record(study_from_toml(SHORT), tmp_path / "local"), "local", workers=2)
    assert local.finished and local.counts()["finished"] == 6
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rec = run_study(create_record(study_from_toml(SHORT), tmp_path / "st"), "ray")
    finally:
        ray.shutdown()
    assert rec.finished and rec.backend == "ray"
    with SessionReader(rec.session_path(rec.runs[0])) as s:
        assert s.steps_done == 20
    expected = per_run(local)
    assert len({m for m, _ in expected.values()}) > 1          # the runs differ: a mix-up would show
    assert per_run(rec) == expected


def test_bad_launches_get_one_sentence(tmp_path):
    rec = create_record(study_from_toml(STUDY), tmp_path / "st")
    with pytest.raises(StudyError, match="not one of local, ray"):
        run_study(rec, "slurm")
    with pytest.raises(StudyError, match="workers"):
        run_study(rec, "local", workers=0)
    pytest.importorskip("ray")
    t = time.monotonic()
    with pytest.raises(StudyError, match="cannot connect to the Ray cluster at '127.0.0.1:1'") as e:
        run_study(rec, "ray", address="127.0.0.1:1")
    assert len(e.value.problems) == 1 and "\n" not in e.value.problems[0]
    assert time.monotonic() - t < 120
    assert all(r.status == "planned" for r in open_record(rec.path).runs)      # nothing was started


def test_too_many_runs_need_yes_on_the_command_line(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(STUDY.replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2]\nmax_runs = 4"), encoding="utf-8")
    out = subprocess.run(_cli("study", "run", str(path), "--folder", str(tmp_path / "st")), capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "plans 6 runs, more than its limit of 4" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "st").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text(STUDY.replace('"task.shots" = [2]', '"task.shots" = []'), encoding="utf-8")
    out = subprocess.run(_cli("study", "run", str(bad)), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "study.grid.task.shots: is empty" in out.stderr and "Traceback" not in out.stderr


def test_cancel_then_resume(tmp_path):
    # one run long enough (2500 steps) that a stop at step >= 100 lands mid-way even on a fast machine
    text = STUDY.replace('"learner.name" = ["protonet", "maml"]\n"task.shots" = [2]', '"task.shots" = [2]').replace(
        "seeds = [0, 1, 2]", "seeds = [0]").replace("steps = 600\n", "steps = 2500\n").replace(
        "checkpoint_every = 30", "checkpoint_every = 50").replace("log_every = 30", "log_every = 50")
    rec = create_record(study_from_toml(text), tmp_path / "st")
    seen = []

    def stop():      # the GUI's stop button, once the run has passed a checkpoint
        return any(u.status == "running" and u.step >= 100 for u in seen)
    rec = run_study(rec, "local", workers=1, on_update=seen.append, cancel=stop, poll_s=0.2)
    assert [r.status for r in rec.runs] == ["cancelled"]
    assert seen[-1].status == "cancelled" and 100 <= seen[-1].step < 2500
    rec = run_study(open_record(rec.path), "local", workers=1)
    assert [r.status for r in rec.runs] == ["finished"] and rec.runs[0].attempts == 2
    with SessionReader(rec.session_path(rec.runs[0])) as s:
        assert s.resumes == 1 and s.steps_done == 2500


def test_failed_runs_are_kept_unless_retried(tmp_path):
    from workbench.store import record as record_session
    from workbench.store.fake import fake_run
    from workbench.study import plan
    text = STUDY.replace('"learner.name" = ["protonet", "maml"]\n"task.shots" = [2]', '"task.shots" = [2]').replace(
        "seeds = [0, 1, 2]", "seeds = [0]")
    rec = create_record(study_from_toml(text), tmp_path / "st")
    cfg = plan(rec.definition())[0].config
    # the run failed earlier (a fake failed session in its place)
    for _ in record_session(fake_run(cfg, dim=0, end="failed"), rec.session_path(rec.runs[0]), cfg, projection="none"):
        pass
    rec = run_study(rec, "local", workers=1)
    assert [r.status for r in rec.runs] == ["failed"] and "diverged" in rec.runs[0].message
    assert rec.runs[0].attempts == 0                                  # nothing was started
    rec = run_study(open_record(rec.path), "local", workers=1, retry_failed=True)
    assert [r.status for r in rec.runs] == ["finished"]
    assert rec.session_path(rec.runs[0]).with_name("c000-seed0.h5.stale-1").exists()
