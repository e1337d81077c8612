"""Export: model folder (safetensors + TOML, TorchScript), load_model, CSV at full resolution; and resume."""

import csv
import threading

import numpy as np
import pytest
import torch

import workbench
from workbench import config as C
from workbench.store import SessionError, SessionReader, record
from workbench.cli import main
from workbench.store.cli import resume_events
from workbench.store.export import export_csv, export_model, load_model
from workbench.train import events as E
from workbench.train.engine import run

TINY = {"train.steps": 20, "train.eval_every": 10, "train.val_episodes": 3, "train.log_every": 5,
        "eval.episodes": 5, "train.checkpoint_every": 10, "learner.meta_batch": 4, "train.threads": 1}


@pytest.fixture(scope="module")
def sinusoid(tmp_path_factory):
    cfg = C.replace(C.load_preset("sinusoid_maml"), **TINY)
    path = tmp_path_factory.mktemp("s") / "straight.h5"
    list(record(run(cfg), path, cfg, projection="none"))
    return cfg, path


def test_resumed_run_matches_the_uninterrupted_run_exactly(sinusoid, tmp_path):
    cfg, straight = sinusoid
    path = tmp_path / "resumed.h5"
    stop = threading.Event()
    for ev in record(run(cfg, cancel=stop.is_set), path, cfg, projection="none"):
        if isinstance(ev, E.StepMetrics) and ev.step >= 15:
            stop.set()                          # cancel at step 15; the last checkpoint is step 10
    with SessionReader(path) as r:
        assert r.status == "cancelled" and r.checkpoints()[-1][0] == 10
        assert r.metric("train/loss")[0].tolist() == [5, 10, 15]
    assert main(["resume", str(path), "--projection", "none", "--quiet"]) == 0
    with SessionReader(path) as a, SessionReader(straight) as b:
        assert a.status == "finished" and a.resumes == 1
        for name in b.metric_names():
            sa, _, va = a.metric(name)
            sb, _, vb = b.metric(name)
            assert sa.tolist() == sb.tolist()
            np.testing.assert_array_equal(va, vb)     # bitwise equal on the CPU
        np.testing.assert_array_equal(a.final_test().per_task, b.final_test().per_task)
        assert [e.step for e in a.evaluations("val")] == [10]
    with pytest.raises(SessionError, match="already finished"):
        resume_events(path)


def test_export_folder_loads_without_pickle_and_adapts(sinusoid, tmp_path, monkeypatch):
    cfg, path = sinusoid
    res = export_model(path, tmp_path / "model")
    folder = tmp_path / "model"
    assert sorted(p.name for p in folder.iterdir()) == sorted(res["files"])
    assert {"model.safetensors", "config.toml", "model.toml"} <= set(res["files"])
    assert res["torchscript"] == "ok"                       # an MLP MAML network traces
    assert C.load(folder / "config.toml") == cfg            # plain TOML config

    def no_pickle(*a, **k):
        raise AssertionError("load_model must not unpickle anything")
    monkeypatch.setattr(torch, "load", no_pickle)
    m = workbench.load_model(folder)
    rng = np.random.default_rng(0)
    amp, phase = 3.0, 1.0
    sx = rng.uniform(-5, 5, (10, 1)).astype(np.float32)
    qx = rng.uniform(-5, 5, (50, 1)).astype(np.float32)
    with pytest.raises(RuntimeError, match="adapt"):
        m.predict(qx)
    before = m.adapt(sx, amp * np.sin(sx - phase), steps=0).predict(qx)
    after = m.adapt(sx, amp * np.sin(sx - phase)).predict(qx)
    target = amp * np.sin(qx - phase)
    assert after.shape == (50, 1)
    assert np.mean((after - target) ** 2) < np.mean((before - target) ** 2)   # adaptation helps
    # the same model straight from the session file gives the same outputs
    m2 = load_model(path)
    np.testing.assert_allclose(m2.adapt(sx, amp * np.sin(sx - phase)).predict(qx), after, rtol=1e-6)
    monkeypatch.undo()
    ts = torch.jit.load(str(folder / "network.torchscript.pt"))
    np.testing.assert_allclose(ts(torch.as_tensor(qx)).detach().numpy(), before, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shaped"):
        m.predict(np.zeros((3, 2)))


def test_load_model_rejects_bad_folders(sinusoid, tmp_path):
    cfg, path = sinusoid
    with pytest.raises(SessionError, match="neither"):
        load_model(tmp_path / "nothing")
    export_model(path, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(SessionError, match="safetensors"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "model.toml").unlink()
    with pytest.raises(SessionError, match="lacks model.toml"):
        load_model(tmp_path / "m")


def test_csv_has_every_point_at_full_precision(sinusoid, tmp_path):
    _, path = sinusoid
    n = export_csv(path, tmp_path / "m.csv")
    with open(tmp_path / "m.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n
    with SessionReader(path) as r:
        assert n == sum(len(r.metric(m)[0]) for m in r.metric_names())
        steps, wall, values = r.metric("train/loss")
    mine = [x for x in rows if x["metric"] == "train/loss"]
    assert [int(x["step"]) for x in mine] == steps.tolist()
    assert [float(x["value"]) for x in mine] == values.tolist()        # repr round-trips exactly
    assert [float(x["wall_time"]) for x in mine] == wall.tolist()
