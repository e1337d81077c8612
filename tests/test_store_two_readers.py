"""Several readers of one session file in one process (the window's live view, the sessions browser's
summaries, a comparison) read the same bytes as a fresh process would, also when a labels dataset spans
many chunks and also while a live SWMR writer appends.

HDF5 opens a file once per process; refreshing a dataset (which an SWMR reader must do) while another
identifier of that dataset was open made both read chunk 0's bytes in place of later chunks, so the
second reader's evaluations() said "the labels of the evaluation at step N are damaged"."""

import json
import os
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from workbench import config as C
from workbench.store import SessionReader, read_summary, record
from workbench.store import reader as R
from workbench.store.fake import fake_run


def _expected_labels(e):
    return [f"{e.phase}-{e.step}-{i:05d}" for i in range(len(e.per_task))]


def _same(a, b):
    assert [(e.phase, e.step) for e in a] == [(e.phase, e.step) for e in b]
    for x, y in zip(a, b):
        assert x.task_ids == y.task_ids and x.families == y.families
        np.testing.assert_array_equal(x.per_task, y.per_task)
        np.testing.assert_array_equal(x.embeddings, y.embeddings)


def _fresh_process_labels(path) -> bytes:
    """The labels bytes as a separate process reads them (no handle of this process involved)."""
    code = "import h5py,sys; f=h5py.File(sys.argv[1],'r',libver='latest',swmr=True); " \
           "sys.stdout.buffer.write(bytes(f['evaluations/labels'][:]))"
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def big_session(tmp_path_factory):
    """A finished session whose labels dataset spans several of its default (8 KiB) chunks."""
    path = tmp_path_factory.mktemp("two") / "big.h5"
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 6, "train.log_every": 1,
                                                       "train.eval_every": 2})
    for _ in record(fake_run(cfg, val_tasks=300, test_tasks=500, dim=2), path, cfg, projection="none"):
        pass
    with h5py.File(path, "r") as f:
        ds = f["evaluations/labels"]
        assert ds.shape[0] > 3 * ds.chunks[0]          # several chunks, the case that broke
    return path


def test_two_readers_read_the_bytes_a_fresh_process_reads(big_session):
    truth = _fresh_process_labels(big_session)
    r1 = SessionReader(big_session)
    r2 = SessionReader(big_session)
    try:
        for r in (r1, r2):
            assert bytes(r._fl.dataset("evaluations/labels")[:]) == truth
        e1, e2 = r1.evaluations(), r2.evaluations()
        assert [(e.phase, e.step, len(e.task_ids)) for e in e2] == [("val", 2, 300), ("val", 4, 300),
                                                                    ("test", 6, 500)]
        for e in e2:
            assert e.task_ids == _expected_labels(e)
        _same(e1, e2)
        assert not r1.refresh() and not r2.refresh()     # a finished file does not change
        s = read_summary(big_session)                    # opens and closes the file beside both readers
        assert s.status == "finished"
        r3 = SessionReader(big_session)
        _same(r3.evaluations(), e1)
        r3.close()
        _same(r2.evaluations(), e1)
        r1.close()                                       # closing one leaves the other readable
        _same(r2.evaluations(), e1)
        assert r2.refresh() is False
        r2.verify()
    finally:
        r1.close()
        r2.close()
    assert not R._HANDLES                               # the last close released the HDF5 handle


def test_a_reader_of_another_copy_is_independent(big_session, tmp_path):
    """Two different files (a copy: another inode) get separate handles; closing one keeps the other."""
    other = tmp_path / "copy.h5"
    other.write_bytes(big_session.read_bytes())
    with SessionReader(big_session) as a, SessionReader(other) as b:
        assert a._fl.f is not b._fl.f
        _same(a.evaluations(), b.evaluations())
        a.close()
        assert len(b.evaluations()) == 3


def test_notes_of_several_chunks_read_beside_another_reader(big_session, tmp_path):
    from workbench.store.notes import set_note
    path = tmp_path / "noted.h5"
    path.write_bytes(big_session.read_bytes())
    note = "a long note " * 750                           # many chunks of the notes blob
    set_note(path, note, ["x", "y"])
    with h5py.File(path, "r") as f:
        assert f["notes"].shape[0] > 10 * f["notes"].chunks[0]
    with SessionReader(path) as r1, SessionReader(path) as r2:
        assert r1.note == r2.note == note and r2.tags == ("x", "y")
        assert read_summary(path).note == note
        r1.refresh()
        assert r2.note == note and read_summary(path).note == note


WRITER = textwrap.dedent("""
    import sys
    from workbench import config as C
    from workbench.store import record
    from workbench.store.fake import fake_run
    from workbench.train import events as E
    path = sys.argv[1]
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 40, "train.log_every": 1,
                                                       "train.eval_every": 4})
    for ev in record(fake_run(cfg, delay=0.04, val_tasks=40, test_tasks=60, dim=2), path, cfg,
                     projection="none", chunk_scale=0.05):
        if isinstance(ev, E.StepMetrics):
            print(ev.step, flush=True)
""")


@pytest.mark.timeout(60)
def test_two_readers_beside_a_live_writer_read_the_same_evaluations(tmp_path):
    path = tmp_path / "live.h5"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "1"            # the file exists and SWMR is on
        r1, r2 = SessionReader(path), SessionReader(path)
        seen = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 40:
            for r in (r1, r2):
                r.refresh()
            e1, e2 = r1.evaluations(), r2.evaluations()
            n = min(len(e1), len(e2))
            _same(e1[:n], e2[:n])
            for e in e1 + e2:
                assert e.task_ids == _expected_labels(e)
            seen.add((n, r1.status))
            if r1.status != "running" and r2.status != "running":
                break
            time.sleep(0.05)
        assert r1.status == r2.status == "finished"
        assert any(st == "running" and n >= 2 for n, st in seen)   # read several evaluations while live
        e1 = r1.evaluations()
        assert [e.step for e in e1] == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
        with h5py.File(path, "r") as f:
            ds = f["evaluations/labels"]
            assert ds.shape[0] > 10 * ds.chunks[0]
        truth = _fresh_process_labels(path)
        assert bytes(r2._fl.dataset("evaluations/labels")[:]) == truth
        labels = [json.loads(truth[int(row["label_start"]):int(row["label_start"] + row["label_len"])])
                  for row in r2._fl.dataset("evaluations/index")[:]]
        assert [d["task_ids"] for d in labels] == [e.task_ids for e in e1]
        _same(r2.evaluations(), e1)
        r1.close()
        r2.close()
    finally:
        proc.kill()
        proc.wait()


def test_a_reader_dropped_without_close_releases_the_file(big_session):
    import gc
    r = SessionReader(big_session)
    keep = SessionReader(big_session)
    del r
    gc.collect()
    assert [h.users for h in R._HANDLES.values()] == [1]
    keep.close()
    keep.close()                                      # closing twice is harmless
    assert not R._HANDLES
    with pytest.raises(R.SessionError, match="was closed"):
        keep.evaluations()
