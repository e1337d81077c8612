"""Session files: recording events and reading them back (in one process, no engine)."""

import json

import h5py
import numpy as np
import pytest

from workbench import config as C
from workbench.store import (SessionError, SessionReader, SessionWriter, list_sessions, new_session_path,
                             read_summary, record, workspace_dir)
from workbench.store import schema as S
from workbench.store.fake import fake_run
from workbench.store.reader import dedup_steps
from workbench.train import events as E


@pytest.fixture
def cfg():
    return C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 40, "train.log_every": 5,
                                                        "train.eval_every": 10, "train.checkpoint_every": 20})


def test_round_trip_of_every_event_kind(cfg, tmp_path):
    path = tmp_path / "s.h5"
    events = list(fake_run(cfg))
    passed = list(record(iter(events), path, cfg, projection="pca"))   # t-SNE: tests/test_store_cli.py
    assert passed == events                        # events pass through unchanged
    with SessionReader(path) as r:
        assert r.status == "finished" and r.ended and r.created
        assert r.config == cfg and "sinusoid" in r.config_toml
        assert r.environment["seed"] == 0 and r.split == {"train": ["a"], "val": ["b"], "test": ["c"]}
        assert r.metric_names() == ["train/loss", "train/mse", "val/mse", "val/loss"]
        steps, wall, loss = r.metric("train/loss")
        sent = [e for e in events if isinstance(e, E.StepMetrics)]
        assert steps.tolist() == [e.step for e in sent] == list(range(5, 41, 5))
        np.testing.assert_array_equal(loss, [e.metrics["train/loss"] for e in sent])
        assert steps.dtype == np.int64 and wall.dtype == np.float64 and np.all(np.diff(wall) >= 0)
        vals = r.evaluations("val")
        assert [v.step for v in vals] == [10, 20, 30]
        vs, _, vm = r.metric("val/mse")
        assert vs.tolist() == [10, 20, 30] and vm.tolist() == [v.mean for v in vals]
        src = [e for e in events if isinstance(e, E.Evaluation) and e.phase == "val"][1]
        np.testing.assert_array_equal(vals[1].per_task, src.per_task)
        np.testing.assert_array_equal(vals[1].per_task_loss, src.per_task_loss)
        np.testing.assert_array_equal(vals[1].embeddings, src.embeddings)
        assert vals[1].task_ids == list(src.task_ids) and vals[1].families == list(src.families)
        assert vals[1].projection is None and vals[1].projection_method == "none"
        t = r.final_test()
        assert t.phase == "test" and t.step == 40 and len(t.per_task) == 12
        assert t.projection.shape == (12, 2) and t.projection_method == "pca"    # computed at close
        assert r.checkpoints()[-1][0] == 40 and r.checkpoint_bytes() == (40, b"\x00checkpoint")
        assert any("fake run started" in m for _, _, m in r.log())
        s = r.summary()
        assert (s.status, s.dataset, s.learner, s.metric, s.steps_done, s.total_steps) == \
            ("finished", "sinusoid", "maml", "mse", 40, 40)
        assert s.mean == pytest.approx(t.mean) and s.ci95 == pytest.approx(t.ci95)


@pytest.mark.parametrize("end", ["failed", "cancelled"])
def test_terminal_status_and_failure_message(cfg, tmp_path, end):
    path = tmp_path / f"{end}.h5"
    list(record(fake_run(cfg, steps=10, end=end), path, cfg, projection="none"))
    with SessionReader(path) as r:
        assert r.status == end
        assert ("diverged" in r.failure_message) == (end == "failed")
        assert r.final_test() is None and np.isnan(r.summary().mean)


def test_consumer_stopping_early_is_cancelled_and_exception_is_failed(cfg, tmp_path):
    gen = record(fake_run(cfg), tmp_path / "a.h5", cfg)
    next(gen), next(gen), next(gen)
    gen.close()
    assert read_summary(tmp_path / "a.h5").status == "cancelled"

    def boom():
        for ev in fake_run(cfg, steps=5):
            if isinstance(ev, E.TERMINAL):
                break
            yield ev
        raise RuntimeError("engine crashed")
    with pytest.raises(RuntimeError):
        list(record(boom(), tmp_path / "b.h5", cfg))
    assert read_summary(tmp_path / "b.h5").status == "failed"


def test_writer_refuses_existing_file_and_writes_after_close(cfg, tmp_path):
    path = tmp_path / "x.h5"
    w = SessionWriter(path, cfg)
    with pytest.raises(SessionError, match="already exists"):
        SessionWriter(path, cfg)
    w.close("cancelled")
    with pytest.raises(SessionError, match="closed"):
        w.write(E.Log("info", "late"))


def test_layout_is_self_describing(cfg, tmp_path):
    path = tmp_path / "s.h5"
    list(record(fake_run(cfg, steps=10), path, cfg, projection="pca"))
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == S.FORMAT and f.attrs["schema_version"] == S.SCHEMA_VERSION
        assert C.from_toml(f.attrs["config_toml"]) == cfg          # the config, stored once (version 2)
        assert "config" not in f and "run/config_used" not in f
        assert "config_toml" not in json.loads(bytes(f["model/meta"][:]) or b"{}")
        assert json.loads(bytes(f["metrics/names"][:]))[0] == "train/loss"
        for name in [*S.APPENDABLE, "state", S.NOTES]:
            assert f[name].maxshape == (None,) and f[name].chunks is not None and f[name].fletcher32


def test_workspace_listing_newest_first_with_damaged_files(cfg, tmp_path, monkeypatch):
    ws = workspace_dir()
    assert ws.is_dir() and str(ws).startswith(str(tmp_path))
    p1 = new_session_path(cfg)
    assert p1.parent == ws and p1.name.endswith(".h5") and "-maml-sinusoid-" in p1.name
    list(record(fake_run(cfg, steps=5), p1, cfg, projection="none"))
    p2 = new_session_path(cfg)
    list(record(fake_run(cfg, steps=5, end="failed"), p2, cfg))
    (ws / "junk.h5").write_bytes(b"not hdf5 at all")
    rows = list_sessions()
    assert {r.path for r in rows} == {str(p1), str(p2), str(ws / "junk.h5")}
    bad = [r for r in rows if r.status == "damaged"]
    assert len(bad) == 1 and "not an HDF5 file" in bad[0].message
    good = [r for r in rows if r.status != "damaged"]
    assert [r.created for r in good] == sorted([r.created for r in good], reverse=True)


def test_dedup_keeps_latest_segment_after_resume():
    steps = np.array([5, 10, 15, 11, 12, 15, 20])
    assert steps[dedup_steps(steps)].tolist() == [5, 10, 11, 12, 15, 20]
    assert dedup_steps(np.array([1, 2, 3])).all()


def test_more_metric_names_than_slots_are_dropped_with_a_warning(cfg, tmp_path):
    path = tmp_path / "many.h5"
    with SessionWriter(path, cfg) as w:
        w.write(E.StepMetrics(1, 0.1, {f"m/{i}": float(i) for i in range(S.METRIC_SLOTS + 3)}))
        w.write(E.RunCancelled(1, 0.2))
    with SessionReader(path) as r:
        assert len(r.metric_names()) == S.METRIC_SLOTS
        assert any("not recorded" in m for _, lv, m in r.log() if lv == "warning")
        with pytest.raises(SessionError, match="no metric"):
            r.metric("m/40")
