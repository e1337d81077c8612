"""The study record (docs/study-format.md): the golden file, round trips, and crash-safe writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from workbench.study import StudyError, create_record, list_studies, load_study, open_record, plan
from workbench.study import record as R

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "study_record_v1.json"
GOLDEN_DEF = DATA / "study_golden.toml"
VOLATILE = ("created", "updated", "definition_toml")


def test_golden_record_reads_and_names_every_planned_run():
    rec = open_record(GOLDEN)
    assert rec.name == "golden study" and rec.metric == "accuracy" and rec.sessions == "runs"
    assert [r.run_id for r in rec.runs] == ["c000-seed0", "c000-seed1", "c001-seed0", "c001-seed1"]
    assert rec.runs[2].overrides == {"learner.name": "maml", "train.seed": 0}
    assert rec.session_path(rec.runs[2]) == DATA / "runs" / "c001-seed0.h5"
    assert all(r.status == "planned" and r.attempts == 0 for r in rec.runs)
    # the definition it names plans exactly these runs
    planned = plan(rec.definition())
    assert [(p.run_id, p.cell_id, p.seed, p.overrides) for p in planned] == \
        [(r.run_id, r.cell_id, r.seed, r.overrides) for r in rec.runs]


def test_a_new_record_has_the_golden_layout(tmp_path):
    rec = create_record(load_study(GOLDEN_DEF), tmp_path / "st")
    new = json.loads(rec.path.read_text(encoding="utf-8"))
    gold = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert set(new) == set(gold)
    assert {k: v for k, v in new.items() if k not in VOLATILE} == {k: v for k, v in gold.items() if k not in VOLATILE}
    # the definition text: the study table equal; the base written in full (new config fields may add lines)
    a, b = tomllib.loads(new["definition_toml"]), tomllib.loads(gold["definition_toml"])
    assert a["study"] == b["study"]
    assert (tmp_path / "st" / "runs").is_dir()


def test_round_trip_with_progress_and_refresh_from_sessions(tmp_path):
    rec = create_record(load_study(GOLDEN_DEF), tmp_path / "st")
    r0 = rec.runs[0]
    r0.status, r0.attempts, r0.mean, r0.ci95 = "finished", 1, 0.75, 0.02
    rec.save()
    back = open_record(tmp_path / "st")
    assert back.runs[0] == r0 and back.runs[1:] == rec.runs[1:]
    # the session files are the truth: no file, so refresh says "planned" again
    assert back.refresh() is True
    assert back.runs[0].status == "planned" and back.runs[0].mean is None
    # a finished fake session makes it finished, with its metric
    from workbench.store import record
    from workbench.store.fake import fake_run
    cfg = plan(back.definition())[0].config
    for _ in record(fake_run(cfg, dim=0), back.session_path(back.runs[0]), cfg, projection="none"):
        pass
    back.refresh()
    assert back.runs[0].status == "finished" and 0 < back.runs[0].mean < 1
    assert [s.name for s in list_studies(tmp_path)] == [] and list_studies(tmp_path / "nowhere") == []


def test_list_studies_in_the_workspace(tmp_path):
    a = create_record(load_study(GOLDEN_DEF), workspace=tmp_path)
    assert a.folder.parent == tmp_path / "studies"
    b = create_record(load_study(GOLDEN_DEF), workspace=tmp_path)
    assert a.folder != b.folder
    (tmp_path / "studies" / "junk").mkdir()
    (tmp_path / "studies" / "junk" / "study.json").write_text("{not json", encoding="utf-8")
    assert sorted(r.folder for r in list_studies(tmp_path)) == sorted([a.folder, b.folder])
    with pytest.raises(StudyError, match="already holds a study"):
        create_record(load_study(GOLDEN_DEF), a.folder)


def test_unreadable_records_say_so(tmp_path):
    with pytest.raises(StudyError, match="no study record"):
        open_record(tmp_path)
    p = tmp_path / "study.json"
    p.write_text('{"format": "something else"}', encoding="utf-8")
    with pytest.raises(StudyError, match="not a workbench study record"):
        open_record(p)
    p.write_text(json.dumps({"format": "workbench-study", "format_version": 99}), encoding="utf-8")
    with pytest.raises(StudyError, match="format version 99"):
        open_record(p)
    p.write_text(json.dumps({"format": "workbench-study", "format_version": 1, "runs": []}), encoding="utf-8")
    with pytest.raises(StudyError, match="damaged"):
        open_record(p)


def test_a_failed_write_leaves_the_old_record_and_no_temporary_file(tmp_path, monkeypatch):
    rec = create_record(load_study(GOLDEN_DEF), tmp_path / "st")
    before = rec.path.read_bytes()
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(R.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))

    def broken_replace(a, b):
        calls.append("replace")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(R.os, "replace", broken_replace)
    rec.runs[0].status = "finished"
    with pytest.raises(OSError):
        rec.save()
    assert calls[:2] == ["fsync", "replace"]              # data on disk before the rename
    assert rec.path.read_bytes() == before
    assert sorted(p.name for p in rec.folder.iterdir()) == ["runs", "study.json"]


WRITER = r"""
import sys
from workbench.study import open_record
rec = open_record(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    i += 1
    for r in rec.runs:
        r.attempts = i
        r.message = "x" * (i % 5000)          # records of changing size
    rec.save()
"""


def test_sigkill_during_writes_never_leaves_a_broken_record(tmp_path):
    rec = create_record(load_study(GOLDEN_DEF), tmp_path / "st")
    seen = set()
    for delay in (0.05, 0.2, 0.35):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(rec.path)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        back = open_record(rec.path)                      # complete JSON, every run present
        assert len(back.runs) == 4 and len({r.attempts for r in back.runs}) == 1
        seen.add(back.runs[0].attempts)
    assert max(seen) > 1                                  # the writer did rewrite it many times
