"""`workbench run` writes a session by default; `workbench sessions | show | export | resume`."""

from pathlib import Path

import pytest

from workbench import config as C
from workbench.cli import main
from workbench.store import SessionReader, list_sessions, record, workspace_dir
from workbench.store.fake import fake_run


def _fake(name, end="finished", **over):
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 10, "train.log_every": 2, **over})
    path = workspace_dir() / f"{name}.h5"
    list(record(fake_run(cfg, end=end), path, cfg, projection="none"))
    return path


@pytest.mark.timeout(180)
def test_run_writes_a_session_into_the_workspace_by_default(capsys):
    code = main(["run", "sinusoid_maml", "--quiet", "--set", "train.steps=4", "--set", "train.log_every=2",
                 "--set", "train.eval_every=0", "--set", "eval.episodes=6", "--set", "learner.meta_batch=2"])
    assert code == 0
    rows = list_sessions()
    assert len(rows) == 1 and rows[0].status == "finished" and rows[0].steps_done == 4
    assert Path(rows[0].path).parent == workspace_dir()
    with SessionReader(rows[0].path) as r:
        t = r.final_test()
        assert len(t.per_task) == 6 and t.projection_method == "tsne" and t.projection.shape == (6, 2)
        assert r.model_bytes() and r.environment["torch"]


def test_run_with_session_flag_refuses_an_existing_file(tmp_path, capsys):
    existing = tmp_path / "x.h5"
    existing.write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        main(["run", "sinusoid_maml", "--quiet", "--session", str(existing)])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err


def test_sessions_table_show_and_export(tmp_path, capsys):
    _fake("a-finished")
    _fake("b-failed", end="failed")
    (workspace_dir() / "c-broken.h5").write_text("nope")
    assert main(["sessions"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["STATUS", "DATASET", "LEARNER", "SETTING"]
    body = {line.split()[-1]: line for line in out[1:]}
    assert set(body) == {"a-finished.h5", "b-failed.h5", "c-broken.h5"}
    assert body["a-finished.h5"].startswith("finished") and "sinusoid" in body["a-finished.h5"]
    assert "maml" in body["a-finished.h5"] and "10-shot" in body["a-finished.h5"] and "±" in body["a-finished.h5"]
    assert body["c-broken.h5"].startswith("damaged")

    assert main(["show", "a-finished"]) == 0
    shown = capsys.readouterr().out
    assert "status    finished" in shown and "train/loss" in shown and "checkpoints 1" in shown
    assert main(["show", "b-failed.h5"]) == 0
    assert "diverged" in capsys.readouterr().out
    assert main(["show", "c-broken"]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err

    assert main(["export", "a-finished", "--csv", str(tmp_path / "m.csv")]) == 0
    assert (tmp_path / "m.csv").read_text().startswith("metric,step,wall_time,value")
    assert main(["export", "a-finished", "--model", str(tmp_path / "model")]) == 2   # fake run: no model
    assert "holds no final model" in capsys.readouterr().err
    assert main(["export", "a-finished"]) == 2


def test_resume_refuses_finished_missing_and_uncheckpointed_sessions(capsys):
    _fake("done")
    assert main(["resume", "done"]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["resume", "nowhere"]) == 2
    assert "not found" in capsys.readouterr().err
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 10})
    path = workspace_dir() / "nock.h5"
    events = [e for e in fake_run(cfg, end="cancelled") if type(e).__name__ != "Checkpoint"]
    list(record(iter(events), path, cfg, projection="none"))
    assert main(["resume", str(path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
