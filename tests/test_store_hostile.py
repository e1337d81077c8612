"""Hostile and damaged session files, one test per failure of issue 15: every crafted file gets one
sentence from every command, and no other file on the machine changes (victim bytes checked)."""

import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from workbench import config as C
from workbench.cli import main
from workbench.store import (SessionError, SessionReader, SessionWriter, list_sessions, read_summary, record,
                             set_note)
from workbench.store import schema as S
from workbench.store.export import export_csv, export_model, load_model
from workbench.store.fake import fake_run
from workbench.train import events as E

pytestmark = pytest.mark.timeout(120)
VICTIM = b"victim bytes that no command may read or change " * 8


def tiny_cfg(**over):
    return C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 4, "train.log_every": 1,
                                                        "train.eval_every": 0, "train.checkpoint_every": 2,
                                                        "eval.episodes": 6, "learner.meta_batch": 2, **over})


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A finished session of a real (tiny) run: model, checkpoints, curves."""
    from workbench.train.engine import run
    cfg = tiny_cfg()
    path = tmp_path_factory.mktemp("real") / "real.h5"
    evs = list(record(run(cfg), path, cfg, projection="pca"))
    assert isinstance(evs[-1], E.RunFinished)
    return path


def copy(src, tmp_path, name="s.h5"):
    p = tmp_path / name
    shutil.copy(src, p)
    return p


def edit(path, fn):
    with h5py.File(path, "r+") as f:          # h5py's default settings, as someone editing a file would
        fn(f)


def victim(tmp_path, name="victim.bin"):
    p = tmp_path / name
    p.write_bytes(VICTIM)
    return p


def assert_sentence(message, path=None):
    assert message and "\n" not in message.strip() and "Traceback" not in message
    if path is not None:
        assert str(path) in message


def set_status(f, status):
    st = f["state"][:]
    st["status"] = S.STATUS_CODE[status] if isinstance(status, str) else status
    f["state"][:] = st


# -- 1. external raw storage, virtual datasets, plugin filters ----------------------------------------
def _external(name):
    def craft(f, target):
        old = f[name]
        data = old[:]
        dtype = old.dtype
        del f[name]
        n = max(len(data), 4)
        f.create_dataset(name, shape=(n,), dtype=dtype, external=[(str(target), 0, n * dtype.itemsize)])
    return craft


def _virtual(name):
    def craft(f, target):
        src = Path(target).with_suffix(".vsrc")
        with h5py.File(src, "w") as g:
            g["x"] = np.frombuffer(VICTIM, np.uint8)
        lay = h5py.VirtualLayout(shape=(len(VICTIM),), dtype="u1")
        lay[:] = h5py.VirtualSource(str(src), "x", shape=(len(VICTIM),))
        del f[name]
        f.create_virtual_dataset(name, lay)
    return craft


def _plugin_filter(f, target):
    del f["log/text"]
    f.create_dataset("log/text", shape=(0,), maxshape=(None,), chunks=(16,), dtype="u1", compression=32001,
                     allow_unknown_filter=True)


INDIRECT = {
    "external environment": (_external("run/environment"), "another file"),
    "external model": (_external("model/data"), "another file"),
    "external state": (_external("state"), "another file"),
    "external checkpoints": (_external("checkpoints/index"), "another file"),
    "external metric": (_external("metrics/00"), "another file"),
    "virtual model": (_virtual("model/data"), "virtual dataset"),
    "virtual environment": (_virtual("run/environment"), "virtual dataset"),
    "plugin filter": (_plugin_filter, "filter 32001"),
}


@pytest.mark.parametrize("kind", list(INDIRECT))
def test_indirection_is_refused_by_every_command_and_the_resuming_writer(real, tmp_path, kind, capsys):
    craft, pattern = INDIRECT[kind]
    path = copy(real, tmp_path)
    target = tmp_path / "victim.bin"
    edit(path, lambda f: (set_status(f, "cancelled"), craft(f, target)))
    target.write_bytes(VICTIM)                 # the victim holds its own bytes after the crafting
    session_bytes = path.read_bytes()
    out = tmp_path / "out"
    for argv in (["show", str(path)], ["export", str(path), "--model", str(out), "--csv", str(tmp_path / "m.csv")],
                 ["resume", str(path)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert pattern in err, (argv, err)
        assert_sentence(err, path)
    with pytest.raises(SessionError, match=pattern):
        SessionWriter.reopen(path, tiny_cfg())
    with pytest.raises(SessionError, match=pattern):
        set_note(path, "a note")
    rows = list_sessions(tmp_path)           # the summary reads only the root and /state: refused when it is /state
    assert len(rows) == 1 and (rows[0].status == "damaged") == (kind == "external state")
    assert target.read_bytes() == VICTIM and path.read_bytes() == session_bytes
    assert not out.exists() and not (tmp_path / "m.csv").exists()


# -- 2. exports never write over their input or any session ---------------------------------------
def test_export_never_writes_over_the_session_or_another_session(real, tmp_path, capsys):
    path = copy(real, tmp_path)
    other = copy(real, tmp_path, "other.h5")
    before, other_before = path.read_bytes(), other.read_bytes()
    for target in (path, other):
        for extra in ([], ["--force"]):
            assert main(["export", str(path), "--csv", str(target), *extra]) == 2
            err = capsys.readouterr().err
            assert_sentence(err)
            assert "session file being exported" in err or "HDF5 (session) file" in err
    assert path.read_bytes() == before and other.read_bytes() == other_before
    assert read_summary(path).status == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.h5", "s.h5"]    # no temporary left


def test_exports_refuse_to_overwrite_unless_forced_and_leave_nothing_partial(real, tmp_path, capsys,
                                                                              monkeypatch):
    path = copy(real, tmp_path)
    csv = tmp_path / "m.csv"
    csv.write_text("mine\n")
    assert main(["export", str(path), "--csv", str(csv)]) == 2
    assert "already exists" in capsys.readouterr().err and csv.read_text() == "mine\n"
    assert main(["export", str(path), "--csv", str(csv), "--force"]) == 0
    assert csv.read_text().startswith("metric,step,wall_time,value")
    model = tmp_path / "model"
    export_model(path, model)
    with pytest.raises(SessionError, match="already exists"):
        export_model(path, model)
    assert export_model(path, model, force=True)["files"][0] == "model.safetensors"
    # a failure half-way (the check that the model loads back) leaves no folder and no temporary
    import workbench.store.export as X
    monkeypatch.setattr(X, "load_model", lambda p: (_ for _ in ()).throw(SessionError("planted failure")))
    with pytest.raises(SessionError, match="planted"):
        export_model(path, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- 4. tiny and truncated files -------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 5, 8, 9, 47, 200])
def test_tiny_files_with_the_hdf5_signature_are_one_damaged_row(real, tmp_path, size, capsys):
    good = copy(real, tmp_path, "good.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(good.read_bytes()[:size])
    with pytest.raises(SessionError) as e:
        read_summary(bad)
    assert_sentence(str(e.value), bad)
    rows = {Path(s.path).name: s for s in list_sessions(tmp_path)}
    assert rows["good.h5"].status == "finished" and rows["bad.h5"].status == "damaged"
    assert rows["bad.h5"].message
    for argv in (["show", str(bad)], ["export", str(bad), "--csv", str(tmp_path / "x.csv")], ["resume", str(bad)]):
        assert main(argv) == 2
        assert_sentence(capsys.readouterr().err, bad)
    monkeypatch_ws = os.environ["WORKBENCH_WORKSPACE"]
    os.environ["WORKBENCH_WORKSPACE"] = str(tmp_path)
    try:
        assert main(["sessions"]) == 0
        assert "damaged" in capsys.readouterr().out
    finally:
        os.environ["WORKBENCH_WORKSPACE"] = monkeypatch_ws


# -- 5. unwritable session locations ----------------------------------------------------------------------
def test_unwritable_session_location_is_one_sentence(tmp_path, capsys):
    for where in ("/proc/x.h5", "/proc/self/nowhere/x.h5", str(tmp_path / "file" / "x.h5")):
        (tmp_path / "file").write_text("a file, not a folder")
        with pytest.raises(SystemExit) as e:
            main(["run", "sinusoid_maml", "--quiet", "--session", where, "--set", "train.steps=2"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "cannot be created" in err and err.count("\n") == 1, err
    with pytest.raises(SessionError, match="cannot be created"):
        SessionWriter("/proc/y.h5", tiny_cfg())


# -- 6. NUL and non-UTF-8 text ----------------------------------------------------------------------------
def test_nul_and_lone_surrogates_are_refused_or_stored_safely(tmp_path, capsys):
    assert main(["run", "sinusoid_maml", "--quiet", "--set", "name=a\x00b", "--session",
                 str(tmp_path / "n.h5")]) == 2
    assert "NUL" in capsys.readouterr().err and not (tmp_path / "n.h5").exists()
    cfg = tiny_cfg()
    for bad in ("a\x00b", "caf\udce9"):
        cfg.name = bad                      # a program that bypasses validation
        with pytest.raises(SessionError, match="cannot be created") as e:
            SessionWriter(tmp_path / "w.h5", cfg)
        assert_sentence(str(e.value))
        assert not (tmp_path / "w.h5").exists()
    cfg.name = "ok"
    path = tmp_path / "t.h5"                # event text (logs, failures) with anything in it is stored, escaped
    events = [e for e in fake_run(cfg, end="failed") if not isinstance(e, E.RunFailed)]
    events += [E.Log("warning", "bad \udcff text \x00 here", 1.0), E.RunFailed(4, 1.0, "fail \udc80", "tb \x00")]
    list(record(iter(events), path, cfg, projection="none"))
    with SessionReader(path) as r:
        assert r.status == "failed" and "\\udc80" in r.failure_message
        assert any("\\udcff" in m for _, _, m in r.log())


# -- 7. checksums -----------------------------------------------------------------------------------------
def _flip_at(path, needle: bytes, index=0):
    data = bytearray(path.read_bytes())
    at = -1
    for _ in range(index + 1):
        at = data.index(needle, at + 1)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_values_weights_and_text_are_reported(real, tmp_path):
    with SessionReader(real) as r:
        steps, _, loss = r.metric("train/loss")
        model = r.model_bytes()
        config_toml = r.config_toml
    cases = {"metric value": np.float64(loss[1]).tobytes(), "model weights": model[-64:-56],
             "config text": b'name = "'}
    for what, needle in cases.items():
        p = copy(real, tmp_path, f"{what.replace(' ', '_')}.h5")
        _flip_at(p, needle)
        with pytest.raises(SessionError, match="damaged|checksum") as e:
            with SessionReader(p) as r:
                r.verify(skip=())
                r.model_bytes()
        assert_sentence(str(e.value), p)
    assert config_toml


# -- 8. resume of a file edited with h5py's default settings ---------------------------------------------
def test_resume_after_an_edit_with_default_settings_checks_before_changing(real, tmp_path):
    from workbench.store.cli import resume_events
    bad = copy(real, tmp_path, "bad.h5")                          # a problem found late must change nothing
    edit(bad, lambda f: (set_status(f, "cancelled"), _external("checkpoints/data")(f, tmp_path / "v.bin")))
    before = bad.read_bytes()
    with pytest.raises(SessionError, match="another file"):
        SessionWriter.reopen(bad, tiny_cfg())
    with pytest.raises(SessionError, match="another file"):
        resume_events(bad)
    assert bad.read_bytes() == before
    path = copy(real, tmp_path, "edited.h5")
    edit(path, lambda f: set_status(f, "cancelled"))
    evs = list(resume_events(path, projection="none"))           # the edited file resumes (via a fresh copy)
    assert isinstance(evs[-1], E.RunFinished)
    with SessionReader(path) as r:
        assert r.status == "finished" and r.resumes == 1 and r.model_bytes()


# -- 9. crafted values -------------------------------------------------------------------------------------
def _model_meta(f, **changes):
    meta = json.loads(bytes(f["model/meta"][:]))
    meta.update(changes)
    data = json.dumps(meta).encode()
    f["model/meta"].resize((len(data),))
    f["model/meta"][:] = np.frombuffer(data, np.uint8)


CRAFTED = {
    "negative input shape": (lambda f: _model_meta(f, input_shape="[-1]"), "input_shape"),
    "huge input shape": (lambda f: _model_meta(f, input_shape="[100000, 100000, 100000]"), "input_shape"),
    "non-list input shape": (lambda f: _model_meta(f, input_shape='"x"'), "metadata is damaged"),
    "bogus kind": (lambda f: _model_meta(f, kind="bogus"), "kind"),
    "status code 9": (lambda f: set_status(f, 9), "status code 9"),
    "negative steps": (lambda f: f["state"].__setitem__("steps_done", np.array([-5])), "negative"),
    "negative metric step": (lambda f: f["metrics/00"].__setitem__(0, np.array((-3, 0.0, 1.0), S.METRIC_DTYPE)),
                             "negative step"),
}


@pytest.mark.parametrize("kind", list(CRAFTED))
def test_crafted_values_are_refused_before_anything_is_allocated(real, tmp_path, kind, capsys):
    craft, pattern = CRAFTED[kind]
    path = copy(real, tmp_path)
    edit(path, craft)
    t0 = time.perf_counter()
    with pytest.raises(SessionError, match=pattern) as e:
        with SessionReader(path) as r:
            r.verify()
            export_model(r, tmp_path / "model")
    assert_sentence(str(e.value))
    assert main(["resume", str(path)]) == 2
    assert_sentence(capsys.readouterr().err)
    assert time.perf_counter() - t0 < 20 and not (tmp_path / "model").exists()


def test_resume_refuses_unknown_and_finished_statuses(real, tmp_path, capsys):
    path = copy(real, tmp_path)
    assert main(["resume", str(path)]) == 2 and "already finished" in capsys.readouterr().err
    edit(path, lambda f: set_status(f, 100))
    before = path.read_bytes()
    assert main(["resume", str(path)]) == 2 and "status code 100" in capsys.readouterr().err
    assert path.read_bytes() == before


# -- 3 (in part). a checkpoint counts only when its bytes are complete -------------------------------------
def test_resume_falls_back_to_the_last_complete_checkpoint(real, tmp_path, capsys):
    path = copy(real, tmp_path)

    def cut_last_checkpoint(f):
        set_status(f, "interrupted")
        idx = f["checkpoints/index"][:]
        last = idx[-1]
        f["checkpoints/data"][int(last["start"]):int(last["start"]) + 16] = 0     # bytes never completed
    edit(path, cut_last_checkpoint)
    with SessionReader(path) as r:
        steps = [s for s, _ in r.checkpoints()]
        assert [s for s, _ in r.complete_checkpoints()] == steps[-2::-1]
        with pytest.raises(SessionError, match="incomplete or damaged"):
            r.checkpoint_bytes()
    assert main(["resume", str(path), "--quiet", "--projection", "none"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint of step {steps[-1]} is incomplete" in err and f"at step {steps[-2]}" in err
    with SessionReader(path) as r:
        assert r.status == "finished" and any("incomplete" in m for _, _, m in r.log())


# -- 10. load_model ----------------------------------------------------------------------------------------
def test_load_model_refuses_bad_folders_with_one_sentence(real, tmp_path):
    good = tmp_path / "good"
    export_model(real, good)
    load_model(good)

    def variant(name, fn):
        d = tmp_path / name
        shutil.copytree(good, d)
        fn(d)
        return d

    cases = {
        "latin-1 config": (lambda d: (d / "config.toml").write_bytes("name = \"caf\xe9\"\n".encode("latin-1")),
                           "not UTF-8"),
        "huge hidden": (lambda d: (d / "config.toml").write_text(
            (d / "config.toml").read_text().replace("hidden = [\n    40,\n    40,\n]", "hidden = [100000, 100000]")),
            "do not fit"),
        "bogus kind": (lambda d: (d / "model.toml").write_text(
            (d / "model.toml").read_text().replace('kind = "regression"', 'kind = "bogus"')), "kind"),
        "bad input shape": (lambda d: (d / "model.toml").write_text(
            (d / "model.toml").read_text().replace("input_shape = [\n    1,\n]", "input_shape = [0, -3]")),
            "input_shape"),
        "other width": (lambda d: (d / "config.toml").write_text(
            (d / "config.toml").read_text().replace("hidden = [\n    40,\n    40,\n]", "hidden = [40, 41]")),
            r"is 40x40 in the weights file but 41x40 in the network"),
    }
    for name, (fn, pattern) in cases.items():
        d = variant(name.replace(" ", "_"), fn)
        t0 = time.perf_counter()
        with pytest.raises(SessionError, match=pattern) as e:
            load_model(d)
        assert_sentence(str(e.value))
        assert time.perf_counter() - t0 < 10, name       # refused before allocating 40 GB


# -- notes and tags ------------------------------------------------------------------------------------------
def test_note_and_tags_are_stored_searchable_and_crash_safe(real, tmp_path, capsys, monkeypatch):
    path = copy(real, tmp_path)
    other = copy(real, tmp_path, "other.h5")
    s = set_note(path, "baseline for the paper ✓", ["paper", "baseline", "paper"])
    assert (s.note, s.tags) == ("baseline for the paper ✓", ("baseline", "paper"))
    with SessionReader(path) as r:
        assert r.note == s.note and r.tags == s.tags and r.status == "finished"
        r.verify(skip=())
    assert [Path(x.path).name for x in list_sessions(tmp_path, query="tag:paper")] == ["s.h5"]
    assert [Path(x.path).name for x in list_sessions(tmp_path, query="BASELINE finished")] == ["s.h5"]
    assert len(list_sessions(tmp_path)) == 2 and list_sessions(tmp_path, query="tag:nope") == []
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path))
    assert main(["tag", "other", "--note", "second", "--tag", "a", "--tag", "b"]) == 0
    assert main(["tag", "other", "--untag", "a"]) == 0
    assert read_summary(other).tags == ("b",) and read_summary(other).note == "second"
    assert main(["sessions", "--tag", "b"]) == 0 and "other.h5" in capsys.readouterr().out
    for bad in (["--tag", "two words"], ["--note", "nul\x00"]):
        assert main(["tag", "other", *bad]) == 2
        assert_sentence(capsys.readouterr().err)
    # a crash while the note is written leaves the old file: the change goes to a copy renamed at the end
    before = path.read_bytes()
    import workbench.store.notes as N
    monkeypatch.setattr(N.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(SessionError, match="cannot be saved"):
        set_note(path, "new")
    assert path.read_bytes() == before and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_note_on_a_live_session_is_refused(tmp_path):
    cfg = tiny_cfg()
    w = SessionWriter(tmp_path / "live.h5", cfg)
    try:
        with pytest.raises(SessionError, match="still being written"):
            set_note(tmp_path / "live.h5", "x")
    finally:
        w.close("cancelled")
    assert set_note(tmp_path / "live.h5", "x").note == "x"


# -- stored configs are read as written -----------------------------------------------------------------------
def test_a_stored_config_outside_todays_ranges_still_opens(real, tmp_path):
    path = copy(real, tmp_path)

    def widen(f):
        toml = f.attrs["config_toml"].replace("inner_lr = 0.01", "inner_lr = -7.0")
        f.attrs["config_toml"] = toml
        vals = {k: f.attrs[k] for k in S.ROOT_ATTRS}
        f.attrs[S.ATTRS_CRC] = np.int64(S.attrs_crc(vals))
    edit(path, widen)
    with SessionReader(path) as r:
        assert r.config.learner.inner_lr == -7.0          # read as written, not re-judged
    assert C.validate(r.config)                           # (today's rules would refuse it)


# -- 11. signals and the order of "finished" ---------------------------------------------------------------
def test_finished_is_passed_on_only_when_the_file_is_final(tmp_path):
    cfg = tiny_cfg()
    path = tmp_path / "f.h5"
    for ev in record(fake_run(cfg, test_tasks=40, dim=4), path, cfg, projection="tsne"):
        if isinstance(ev, E.RunFinished):
            with SessionReader(path) as r:
                assert r.status == "finished" and r.final_test().projection is not None


def test_a_cancel_skips_a_long_final_projection_at_once(tmp_path):
    cfg = tiny_cfg()
    flag = {"stop": False}
    path = tmp_path / "p.h5"
    w = SessionWriter(path, cfg, projection="tsne", cancel=lambda: flag["stop"])
    for ev in fake_run(cfg, test_tasks=3000, dim=16):
        w.write(ev)
    import threading
    threading.Timer(0.3, lambda: flag.__setitem__("stop", True)).start()
    t0 = time.perf_counter()
    w.close()
    assert time.perf_counter() - t0 < 1.5
    with SessionReader(path) as r:
        assert r.status == "finished" and r.final_test().projection is None
        assert any("skipped" in m for _, _, m in r.log())


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_cancel_within_a_second_and_keep_the_weights(tmp_path, sig, capsys):
    import signal
    import threading
    path = tmp_path / "sig.h5"
    sent = {}

    def send_when_running():
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if read_summary(path).steps_done >= 3:
                    break
            except SessionError:
                pass
            time.sleep(0.05)
        sent["t"] = time.perf_counter()
        os.kill(os.getpid(), getattr(signal, sig))      # as `kill` or Ctrl-C would, to this process

    threading.Thread(target=send_when_running, daemon=True).start()
    code = main(["run", "sinusoid_maml", "--session", str(path), "--quiet", "--set", "train.steps=100000",
                 "--set", "train.log_every=1", "--set", "train.eval_every=0", "--set", "learner.meta_batch=2",
                 "--set", "train.checkpoint_every=50"])
    took = time.perf_counter() - sent["t"]
    err = capsys.readouterr().err
    assert code == 130 and "cancelled at step" in err and "weights are kept" in err, err
    assert took < 1.0, took                              # the cancel acts at the next meta-step
    with SessionReader(path) as r:
        assert r.status == "cancelled" and r.model_bytes()
    assert load_model(path).kind == "regression"         # a cancelled run's model can be exported


# -- 12. feature tables: short name lists, links, empty tables --------------------------------------------
def test_feature_table_problems_are_one_sentence(tmp_path):
    import warnings
    from workbench.data.base import DataError
    from workbench.data.feature_table import load_feature_table

    def table(name, fn):
        p = tmp_path / name
        with h5py.File(p, "w") as f:
            fn(f)
        return p

    feats = np.random.default_rng(0).normal(size=(12, 4))
    cases = {
        "short names": (lambda f: (f.create_dataset("features", data=feats), f.create_dataset("label", data=np.arange(12) % 3),
                                   f.create_dataset("feature_names", data=[b"a", b"b"])), "2 names for the 4 columns"),
        "soft link": (lambda f: (f.create_dataset("features", data=feats), f.__setitem__("label", h5py.SoftLink("/x"))),
                      "link to another place"),
        "external link": (lambda f: (f.create_dataset("features", data=feats),
                                     f.__setitem__("label", h5py.ExternalLink(str(tmp_path / "victim.h5"), "/x"))),
                          "link to another place"),
        "no rows": (lambda f: (f.create_dataset("features", data=np.zeros((0, 4))),
                               f.create_dataset("label", data=np.zeros(0))), "has no rows"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)            # (numpy used to warn about the empty mean)
        for name, (fn, pattern) in cases.items():
            p = table(name.replace(" ", "_") + ".h5", fn)
            with pytest.raises(DataError, match=pattern) as e:
                load_feature_table(p)
            assert_sentence(str(e.value), p)
