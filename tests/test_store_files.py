"""Schema versions, golden files, damaged and hostile input, read-only reading."""

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from workbench import config as C
from workbench.store import SessionError, SessionReader, list_sessions, read_summary, record
from workbench.store.fake import fake_run
from workbench.store.schema import SCHEMA_VERSION

DATA = Path(__file__).resolve().parent / "data"
pytestmark = pytest.mark.timeout(30)          # no input may hang the reader


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 12, "train.log_every": 3,
                                                       "train.eval_every": 6, "train.checkpoint_every": 6})
    path = tmp_path_factory.mktemp("good") / "good.h5"
    list(record(fake_run(cfg, val_tasks=4, test_tasks=5, dim=3), path, cfg, projection="pca"))
    return path


def read_everything(path):
    with SessionReader(path) as r:
        for n in r.metric_names():
            r.metric(n)
        r.evaluations(), r.summary(), r.model_bytes(), r.checkpoint_bytes(), r.log(), r.config
    return read_summary(path)


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION + 1))
def test_golden_file_of_every_schema_version_stays_readable(version):
    path = DATA / f"session_v{version}.h5"
    expected = json.loads((DATA / f"session_v{version}.expected.json").read_text())
    assert path.stat().st_size < 64_000
    with SessionReader(path) as r:
        assert r.schema_version == version and r.status == expected["status"] == "finished"
        assert r.config_toml == expected["config_toml"] and r.config.name == "golden"
        assert r.metric_names() == list(expected["metrics"])
        for name, (steps, wall, values) in expected["metrics"].items():
            s, w, v = r.metric(name)
            assert s.tolist() == steps and w.tolist() == wall and v.tolist() == values
        evs = r.evaluations()
        assert len(evs) == len(expected["evaluations"])
        for e, x in zip(evs, expected["evaluations"]):
            assert (e.phase, e.step, e.mean, e.ci95, e.per_task.tolist(), e.task_ids, e.families,
                    e.projection_method) == (x["phase"], x["step"], x["mean"], x["ci95"], x["per_task"],
                                             x["task_ids"], x["families"], x["projection_method"])
            assert (None if e.embeddings is None else e.embeddings.tolist()) == x["embeddings"]
            assert (None if e.projection is None else e.projection.tolist()) == x["projection"]
        assert [list(c) for c in r.checkpoints()] == expected["checkpoints"]
        assert r.environment == expected["environment"] and r.split == expected["split"]
        assert (r.note, list(r.tags)) == (expected.get("note", ""), expected.get("tags", []))
        if "model_meta" in expected:
            assert r.model_meta == expected["model_meta"]
        r.verify()


def test_reader_never_changes_the_file(good, tmp_path):
    copy = tmp_path / "copy.h5"
    shutil.copy2(good, copy)
    before = (copy.read_bytes(), os.stat(copy).st_mtime_ns)
    read_everything(copy)
    list_sessions(tmp_path)
    assert (copy.read_bytes(), os.stat(copy).st_mtime_ns) == before
    # also a read-only file on disk opens (nothing asks for write access)
    copy.chmod(0o444)
    assert read_summary(copy).status == "finished"


def _edit(good, tmp_path, fn, name="bad.h5"):
    path = tmp_path / name
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        fn(f, tmp_path)
    return path


def _replace(f, name, **kw):
    del f[name]
    f.create_dataset(name, fletcher32=True, **kw)


def _absurd(f, _):
    del f["metrics/00"]
    f.create_dataset("metrics/00", shape=(10**12,), maxshape=(None,), chunks=(512,), fletcher32=True,
                     dtype=[("step", "i8"), ("wall_time", "f8"), ("value", "f8")])


def _external(f, tmp):
    with h5py.File(tmp / "other.h5", "w") as g:
        g.create_dataset("env", data=np.frombuffer(b"{}", np.uint8), maxshape=(None,))
    del f["run/environment"]
    f["run/environment"] = h5py.ExternalLink(str(tmp / "other.h5"), "env")


def _soft(f, _):
    del f["log/text"]
    f["log/text"] = h5py.SoftLink("/model/data")


def _bad_offsets(f, _):
    idx = f["evaluations/index"][:]
    idx["task_start"][0] = 10**9
    f["evaluations/index"][:] = idx


def _bad_labels(f, _):
    n = len(f["evaluations/labels"])
    f["evaluations/labels"][:] = np.full(n, ord("x"), np.uint8)


CASES = {
    "truncated": (lambda p, t: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "damaged|truncated"),
    "header only": (lambda p, t: p.write_bytes(p.read_bytes()[:600]), "damaged|truncated"),
    "random bytes": (lambda p, t: p.write_bytes(np.random.default_rng(0).bytes(50_000)), "not an HDF5 file"),
    "text file": (lambda p, t: p.write_text("step,value\n1,2\n"), "not an HDF5 file"),
    "empty file": (lambda p, t: p.write_bytes(b""), "empty"),
    "corrupt superblock": (lambda p, t: p.write_bytes(p.read_bytes()[:8] + b"\xff" * 200 + p.read_bytes()[208:]),
                           "damaged|truncated"),
}
EDITS = {
    "newer schema": (lambda f, t: f.attrs.__setitem__("schema_version", np.int64(SCHEMA_VERSION + 1)),
                     "newer than this program reads"),
    "schema as text": (lambda f, t: f.attrs.__setitem__("schema_version", "one"), "schema_version"),
    "missing group": (lambda f, t: f.__delitem__("evaluations"), "lacks 'evaluations'"),
    "missing state": (lambda f, t: f.__delitem__("state"), "lacks 'state'"),
    "wrong dtype": (lambda f, t: _replace(f, "metrics/00", data=np.arange(5.0), maxshape=(None,)), "dtype"),
    "2-D metric": (lambda f, t: _replace(f, "metrics/01", data=np.zeros((3, 3), f["metrics/01"].dtype)),
                   "expected one dimension"),
    "group for dataset": (lambda f, t: (f.__delitem__("model/data"), f.create_group("model/data")),
                          "group, expected a dataset"),
    "zero-length state": (lambda f, t: _replace(f, "state", shape=(0,), maxshape=(None,), chunks=(1,),
                                                dtype=f["state"].dtype), "at least 1"),
    "absurd shape": (_absurd, "more than the"),
    "external link": (_external, "external link"),
    "soft link": (_soft, "soft link"),
    "metric names not json": (lambda f, t: f["metrics/names"].__setitem__(slice(None), ord("{")), "JSON"),
    "missing root attribute": (lambda f, t: f.attrs.__delitem__("writer_host"), "writer_host"),
    "bad offsets": (_bad_offsets, "outside"),
    "bad labels": (_bad_labels, "labels .* damaged"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_damaged_bytes_give_a_clear_error(good, tmp_path, kind):
    damage, pattern = CASES[kind]
    path = tmp_path / "bad.h5"
    shutil.copy(good, path)
    damage(path, tmp_path)
    with pytest.raises(SessionError, match=pattern) as e:
        read_everything(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kind", list(EDITS))
def test_damaged_structure_gives_a_clear_error(good, tmp_path, kind):
    edit, pattern = EDITS[kind]
    path = _edit(good, tmp_path, edit)
    with pytest.raises(SessionError, match=pattern) as e:
        read_everything(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_foreign_hdf5_missing_file_and_folder(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(10)
    with pytest.raises(SessionError, match="not a workbench session"):
        SessionReader(foreign)
    with pytest.raises(SessionError, match="does not exist"):
        SessionReader(tmp_path / "nothing.h5")
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(SessionError, match="is a folder"):
        read_summary(tmp_path / "dir.h5")
    rows = list_sessions(tmp_path)      # a folder named *.h5 and a foreign file: listed as damaged
    assert sorted(r.status for r in rows) == ["damaged", "damaged"]
