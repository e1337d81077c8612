"""The session model (gui/session_model.py) that the window's panels observe: a real run's live
events and the rows of the session it recorded end in the same state, without a display."""

import math

import numpy as np
import pytest

from workbench import config as C
from workbench.gui.session_model import SessionModel
from workbench.store import SessionReader
from workbench.store.fake import fake_run
from workbench.store.writer import record
from workbench.train import events as E
from workbench.train.engine import run


class Recorder:
    """Every signal the model emits, in order."""

    def __init__(self, model: SessionModel):
        self.calls = []
        for name in ("reset", "metric_changed", "curves_changed", "evaluation_changed", "progress_changed",
                     "status_changed", "message", "session_changed"):
            getattr(model, name).connect(lambda *a, n=name: self.calls.append((n, a)))

    def kinds(self):
        return [n for n, _ in self.calls]


def state(m: SessionModel) -> dict:
    ev = m.evaluation
    return {"name": m.name, "metric": m.metric, "status": m.status, "step": m.step, "total": m.total_steps,
            "curves": {n: (s.steps.copy(), s.values.copy()) for n, s in m.series.items()},
            "bands": {n: (b.steps.copy(), b.values.copy()) for n, b in m.bands.items()},
            "evaluation": None if ev is None else (ev.phase, int(ev.step), float(ev.mean), list(ev.task_ids))}


def assert_same(a: dict, b: dict):
    assert {k: v for k, v in a.items() if k not in ("curves", "bands")} == \
           {k: v for k, v in b.items() if k not in ("curves", "bands")}
    for key in ("curves", "bands"):
        assert set(a[key]) == set(b[key]), key
        for n in a[key]:
            np.testing.assert_array_equal(a[key][n][0], b[key][n][0])
            np.testing.assert_allclose(a[key][n][1], b[key][n][1], rtol=1e-6, err_msg=n)


def test_a_real_run_live_and_its_stored_session_give_the_same_state(tmp_path):
    cfg = C.replace(C.default_config(), **{"name": "tiny", "train.steps": 6,
                                           "train.eval_every": 3, "train.val_episodes": 5, "train.log_every": 1,
                                           "eval.episodes": 12})
    path = tmp_path / "run.h5"
    live = SessionModel()
    seen = Recorder(live)
    live.start_run(cfg.name, cfg.train.steps)
    for ev in record(run(cfg), path, cfg):
        live.apply(ev)
    assert live.status == "finished" and live.step == 6 and live.metric == "accuracy"
    assert {"train/loss", "train/accuracy", "val/accuracy", "val/loss"} <= set(live.series)
    assert set(live.bands) == {"val/accuracy"} and live.series["train/loss"].n == 6
    assert live.evaluation.phase == "test" and len(live.evaluation.task_ids) == 12
    assert seen.kinds()[0] == "reset" and ("status_changed", ("finished",)) in seen.calls
    texts = [a[1] for n, a in seen.calls if n == "message"]
    assert any(t.startswith("Started on cpu") for t in texts) and any(t.startswith("Finished in") for t in texts)
    assert any("validation accuracy" in t and "(95% CI) over 5 tasks" in t for t in texts)

    stored = SessionModel()
    opened = Recorder(stored)
    with SessionReader(path) as reader:
        stored.open_session(reader)
        assert stored.path == str(path) and ("session_changed", (str(path),)) in opened.calls
        assert_same(state(live), state(stored))
        before = len(opened.calls)
        stored.load(reader)                      # a refresh with nothing new: same state, same evaluation
        assert_same(state(live), state(stored))
        assert "evaluation_changed" not in [n for n, _ in opened.calls[before:]]


def test_a_session_still_being_written_grows_by_the_same_rule(tmp_path):
    """The stored feed, read again after each refresh of a session another process writes, ends where
    the live feed of the same events ends."""
    cfg = C.replace(C.default_config(), **{"train.steps": 40, "train.log_every": 2, "train.eval_every": 10})
    events = list(fake_run(cfg, steps=40))
    path = tmp_path / "s.h5"
    live = SessionModel()
    live.start_run(cfg.name, 40)
    from workbench.store import SessionWriter
    w = SessionWriter(path, cfg)
    half = len(events) // 2
    for ev in events[:half]:
        w.write(ev)
        live.apply(ev)
    w.flush()
    follower = SessionModel()
    reader = SessionReader(path)
    try:
        follower.open_session(reader)
        assert follower.status == "running"
        assert follower.series["train/loss"].n == live.series["train/loss"].n > 0
        for ev in events[half:]:
            w.write(ev)
            live.apply(ev)
        w.close()
        assert reader.refresh()
        follower.load(reader)
        assert_same(state(live), state(follower))
        assert follower.status == "finished"
    finally:
        reader.close()


def test_validation_points_band_only_where_the_ci_is_finite(tmp_path):
    m = SessionModel()
    m.start_run("x", 10)
    one = dict(wall_time=1.0, phase="val", metric="accuracy", loss_mean=0.7, per_task=np.array([0.5]),
               per_task_loss=np.array([0.7]), task_ids=("a",), families=("f",))
    m.apply(E.Evaluation(step=5, mean=0.5, ci95=math.nan, **one))      # one episode: no CI
    m.apply(E.Evaluation(step=10, mean=0.6, ci95=0.1, **one))
    assert list(m.series["val/accuracy"].values) == [0.5, 0.6]
    assert "val/loss" in m.series and "val/loss" not in m.bands
    band = m.bands["val/accuracy"]          # one band point per metric point (the first has no CI) ...
    assert list(band.steps) == [5.0, 10.0] and math.isnan(band.values[0]) and band.values[1] == 0.1
    from workbench.store import SessionWriter          # ... and a stored session gives the same band
    cfg = C.default_config()
    with SessionWriter(tmp_path / "v.h5", cfg) as w:
        w.write(E.RunStarted(config_toml=C.to_toml(cfg), total_steps=10, start_step=0, device="cpu", environment={},
                             split={}, metric="accuracy", wall_time=0.0))
        w.write(E.Evaluation(step=5, mean=0.5, ci95=math.nan, **one))
        w.write(E.Evaluation(step=10, mean=0.6, ci95=0.1, **one))
    stored = SessionModel()
    with SessionReader(tmp_path / "v.h5") as r:
        stored.open_session(r)
    np.testing.assert_array_equal(stored.bands["val/accuracy"].values, band.values)
    m.clear("next")
    assert m.series == {} and m.evaluation is None and m.name == "next" and m.status == ""


@pytest.mark.parametrize("end", ["cancelled", "failed"])
def test_an_unfinished_run_ends_in_its_status(end):
    cfg = C.replace(C.default_config(), **{"train.steps": 20, "train.log_every": 5, "train.eval_every": 0})
    m = SessionModel()
    m.start_run(cfg.name, 20)
    for ev in fake_run(cfg, steps=20, end=end):
        m.apply(ev)
    assert m.status == end
