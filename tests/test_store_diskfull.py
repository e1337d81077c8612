"""A full disk and a read-only disk, on small filesystems the test mounts for itself (tmpfs; needs
root and permission to mount, skipped with the reason otherwise). The write that really fails under
HDF5 runs in a child process, so that a crash there shows as an exit status instead of ending pytest."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from workbench.store import SessionReader, read_summary

pytestmark = pytest.mark.timeout(240)

RUN = ["run", "sinusoid_maml", "--quiet", "--set", "train.steps=200", "--set", "train.log_every=1",
       "--set", "train.eval_every=0", "--set", "train.checkpoint_every=5", "--set", "learner.meta_batch=2",
       "--set", "eval.episodes=6"]


def _mount(point: Path, size: str, *options):
    point.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({(res.stderr or res.stdout).strip() or 'mount failed'}); "
                    f"the disk-full test needs root and permission to mount")


def _umount(point: Path):
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("the disk-full test mounts a small tmpfs, which needs root")
    point = Path("/tmp") / f"workbench-diskfull-{uuid.uuid4().hex[:8]}"
    _mount(point, "1m")
    yield point
    _umount(point)
    shutil.rmtree(point, ignore_errors=True)


def test_a_full_disk_ends_the_run_with_a_message_and_resume_continues(small_disk, tmp_path, capsys):
    from workbench.cli import main
    path = small_disk / "full.h5"
    assert main([*RUN, "--session", str(path)]) == 1
    err = capsys.readouterr().err
    failure = [line for line in err.splitlines() if "failed" in line]
    assert failure and "left on its disk" in failure[-1] and "Traceback" not in err, err[-2000:]
    s = read_summary(path)                  # the file is consistent, finalised, and says why it stopped
    assert s.status == "failed" and 0 < s.steps_done < 200
    with SessionReader(path) as r:
        assert "left on its disk" in r.failure_message
    with SessionReader(path) as r:
        stored = [step for step, _ in r.checkpoints()]
        complete = [step for step, _ in r.complete_checkpoints()]
        assert complete, "at least one checkpoint was complete before the disk filled"
        last_complete = complete[0]
    # free space (a bigger filesystem under the same path), then resume: from the last complete checkpoint
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    assert main(["resume", str(path), "--quiet", "--projection", "none"]) == 0
    assert f"resuming {path.name} at step {last_complete} of 200" in capsys.readouterr().err
    with SessionReader(path) as r:
        assert r.status == "finished" and r.steps_done == 200 and r.model_bytes()
        steps, _, _ = r.metric("train/loss")
        assert steps.tolist() == list(range(1, 201))        # one continuous curve
    print(f"disk full after {s.steps_done} steps; {len(stored)} checkpoint rows, last complete at "
          f"{last_complete}; resumed to 200")


ENOSPC = """
import sys
from workbench.store import SessionWriter
SessionWriter.RESERVE_BYTES = 0          # no early stop: the disk really fills under HDF5
from workbench.cli import main
sys.exit(main(sys.argv[2:] + ["--session", sys.argv[1]]))
"""


def test_a_write_that_really_fails_never_crashes_and_the_session_resumes(small_disk, capsys):
    from workbench.cli import main
    path = small_disk / "raw.h5"
    res = subprocess.run([sys.executable, "-c", ENOSPC, str(path), *RUN], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])         # (HDF5 segfaulted here: 139)
    # (usually HDF5's write fails: "no space left"; now and then the space check still catches the last write)
    assert ("no space left on the device" in res.stderr or "left on its disk" in res.stderr) \
        and "Traceback" not in res.stderr, res.stderr[-2000:]
    with SessionReader(path) as r:
        complete = [step for step, _ in r.complete_checkpoints()]
        assert r.status in ("interrupted", "failed") and complete     # as after a kill: readable, resumable
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    assert main(["resume", str(path), "--quiet", "--projection", "none"]) == 0
    assert f"at step {complete[0]} of 200" in capsys.readouterr().err
    with SessionReader(path) as r:
        assert r.status == "finished" and r.metric("train/loss")[0].tolist() == list(range(1, 201))


def test_a_full_disk_at_creation_is_one_sentence(small_disk, capsys):
    from workbench.cli import main
    filler = small_disk / "filler.bin"
    try:
        with open(filler, "wb") as fh:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
    except OSError:
        pass
    with pytest.raises(SystemExit) as e:
        main([*RUN, "--session", str(small_disk / "new.h5")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "full" in err, err
    assert not (small_disk / "new.h5").exists()


def test_a_read_only_disk_is_one_sentence_for_run_resume_and_tag(small_disk, tmp_path, capsys):
    from workbench import config as C
    from workbench.cli import main
    from workbench.store import record
    from workbench.train.engine import run
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 4, "train.checkpoint_every": 2,
                                                       "train.eval_every": 0, "learner.meta_batch": 2,
                                                       "eval.episodes": 4})
    session = small_disk / "s.h5"
    list(record(run(cfg, cancel=lambda: False), tmp_path / "s.h5", cfg, projection="none"))
    import h5py
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        st = f["state"][:]
        st["status"] = 3                      # cancelled: resumable
        f["state"][:] = st
    shutil.copy(tmp_path / "s.h5", session)
    before = session.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        for argv in (["run", "sinusoid_maml", "--session", str(small_disk / "new.h5")],
                     ["resume", str(session)], ["tag", str(session), "--note", "x"]):
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code
            err = capsys.readouterr().err
            assert code == 2, (argv, err)
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and "Read-only file system" in lines[0], (argv, err)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert session.read_bytes() == before
