"""The study record: one ``study.json`` per study, beside (or pointing to) its runs' session files.

    <workspace>/studies/<name>-<YYYYmmdd-HHMMSS>/study.json
    <workspace>/studies/<name>-<YYYYmmdd-HHMMSS>/runs/<run_id>.h5      (ordinary session files)

The record names the definition (its TOML text), every planned run (cell, overrides, seed, run id)
and where its session is, with the status last seen. The session files are the truth about runs;
the record's statuses are refreshed from them (:meth:`StudyRecord.refresh`). The record is
written crash-safely: a temporary file in the same folder, flushed and fsynced, then
``os.replace`` over the old one (atomic on POSIX and Windows), so a reader sees the old or the new
record, never half of one. Format: docs/study-format.md. Torch-free.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.config import Problem
from workbench.files import write_atomic
from workbench.study.definition import (StudyDefinition, StudyError, cell_label, plan, study_from_toml,
                                        study_to_toml)

FORMAT = "workbench-study"
FORMAT_VERSION = 1
RECORD_NAME = "study.json"
#: statuses of a run in the record ("planned": never started; the others are the session's)
RUN_STATUSES = ("planned", "running", "finished", "interrupted", "cancelled", "failed", "damaged")
DONE = ("finished", "failed")


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _err(msg: str) -> StudyError:
    return StudyError([Problem("", msg, msg)])


@dataclass
class RunEntry:
    """One planned run as the record keeps it."""

    run_id: str
    cell_id: str
    cell: dict
    seed: int
    overrides: dict
    session: str                    # path of its session file, relative to the record's folder if inside it
    status: str = "planned"
    attempts: int = 0               # how many times a backend started or resumed it
    mean: float | None = None       # final test metric, once finished
    ci95: float | None = None
    message: str = ""               # why it failed, in one sentence

    @property
    def label(self) -> str:
        return cell_label(self.cell)


@dataclass
class StudyRecord:
    """A study on disk: :attr:`path` is its ``study.json``."""

    path: Path
    name: str
    created: str
    definition_toml: str
    sessions: str                   # folder of the runs' sessions (relative to the record's folder, or absolute)
    runs: list[RunEntry] = field(default_factory=list)
    updated: str = ""
    metric: str = ""                # "accuracy" or "mse"
    backend: str = ""               # the backend that last ran it
    _definition: StudyDefinition | None = field(default=None, repr=False, compare=False)

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def sessions_folder(self) -> Path:
        p = Path(self.sessions)
        return p if p.is_absolute() else self.folder / p

    def definition(self) -> StudyDefinition:
        if self._definition is None:
            self._definition = study_from_toml(self.definition_toml, source=f"the definition in {self.path}")
        return self._definition

    def session_path(self, run: RunEntry | str) -> Path:
        run = self.run(run) if isinstance(run, str) else run
        p = Path(run.session)
        return p if p.is_absolute() else self.folder / p

    def run(self, run_id: str) -> RunEntry:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)

    def cells(self) -> dict[str, dict]:
        """cell_id -> cell, in plan order."""
        out: dict[str, dict] = {}
        for r in self.runs:
            out.setdefault(r.cell_id, r.cell)
        return out

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in RUN_STATUSES}
        for r in self.runs:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    @property
    def finished(self) -> bool:
        return all(r.status in DONE for r in self.runs)

    # -- reading the sessions ------------------------------------------------------
    def refresh(self) -> bool:
        """Statuses (and final metrics) from the session files; True if anything changed."""
        from workbench.store import SessionError, read_summary
        changed = False
        for r in self.runs:
            p = self.session_path(r)
            if not p.exists():
                new = ("planned", r.mean, r.ci95, r.message) if r.status != "planned" else None
                if new is None:
                    continue
                status, mean, ci, msg = "planned", None, None, ""
            else:
                try:
                    s = read_summary(p)
                    status = s.status
                    mean = float(s.mean) if status == "finished" and math.isfinite(s.mean) else None
                    ci = float(s.ci95) if status == "finished" and math.isfinite(s.ci95) else None
                    msg = ""
                    if status == "failed":
                        from workbench.store import SessionReader
                        with SessionReader(p) as rd:
                            msg = rd.failure_message
                except SessionError as e:
                    status, mean, ci, msg = "damaged", None, None, str(e)
            if (status, mean, ci, msg) != (r.status, r.mean, r.ci95, r.message):
                r.status, r.mean, r.ci95, r.message = status, mean, ci, msg
                changed = True
        return changed

    # -- writing -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name, "created": self.created,
                "updated": self.updated, "metric": self.metric, "backend": self.backend,
                "sessions": self.sessions, "definition_toml": self.definition_toml,
                "runs": [asdict(r) for r in self.runs]}

    def save(self) -> None:
        """Write the record crash-safely (temp file, fsync, rename over the old one)."""
        self.updated = _now()
        data = json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False,
                          default=_jsonable).encode("utf-8")
        write_atomic(self.path, data, sync_folder=True)


def _jsonable(v):
    if hasattr(v, "item"):          # numpy scalars
        return v.item()
    return str(v)


def _slug(text: str) -> str:
    s = "".join(c if c.isalnum() else "-" for c in str(text).lower())
    return "-".join(filter(None, s.split("-")))[:40] or "study"


def studies_dir(workspace=None) -> Path:
    from workbench.store import workspace_dir
    return (Path(workspace) if workspace is not None else workspace_dir()) / "studies"


def new_study_folder(defn: StudyDefinition, workspace=None) -> Path:
    """``<workspace>/studies/<name>-<YYYYmmdd-HHMMSS>`` (a fresh, unused folder name)."""
    base = studies_dir(workspace)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    p = base / f"{_slug(defn.name)}-{stamp}"
    i = 1
    while p.exists():
        i += 1
        p = base / f"{_slug(defn.name)}-{stamp}-{i}"
    return p


def create_record(defn: StudyDefinition, folder=None, *, sessions=None, workspace=None) -> StudyRecord:
    """Plan ``defn`` and write its record into ``folder`` (default: a new folder under the workspace's
    ``studies/``). ``sessions``: folder for the runs' session files (default ``<folder>/runs``; on a
    cluster, shared storage every worker can write). Raises :class:`StudyError` if the definition is
    not valid or the folder already holds a study."""
    runs = plan(defn)
    folder = Path(folder) if folder is not None else new_study_folder(defn, workspace)
    path = folder / RECORD_NAME
    if path.exists():
        raise _err(f"{str(folder)!r} already holds a study ({RECORD_NAME}); resume it with "
                   f"'workbench study resume {folder}' or choose another folder")
    if sessions is None:
        sess, sess_abs = "runs", folder / "runs"
    else:
        sess_abs = Path(sessions).expanduser().resolve()
        try:
            sess = str(sess_abs.relative_to(folder.resolve())) if folder.exists() else str(sess_abs)
        except ValueError:
            sess = str(sess_abs)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sess_abs.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _err(f"the study folder {str(folder)!r} cannot be created: {e.strerror or e}") from None
    entries = []
    for r in runs:
        p = sess_abs / f"{r.run_id}.h5"
        rel = str(Path(sess) / p.name) if not Path(sess).is_absolute() else str(p)
        entries.append(RunEntry(r.run_id, r.cell_id, dict(r.cell), r.seed, dict(r.overrides), rel))
    metric = "mse" if defn.base.is_regression else "accuracy"
    rec = StudyRecord(path, defn.name, _now(), study_to_toml(defn), sess, entries, metric=metric)
    rec._definition = defn
    try:
        rec.save()
    except OSError as e:
        raise _err(f"the study record {str(path)!r} cannot be written: {e.strerror or e}") from None
    return rec


def open_record(path) -> StudyRecord:
    """Read a study record: the ``study.json`` file or the folder that holds it."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / RECORD_NAME
    if not p.is_file():
        raise _err(f"no study record at {str(p)!r} ('workbench study list' shows the workspace's studies)")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _err(f"the study record {str(p)!r} cannot be read: {e}") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise _err(f"{str(p)!r} is not a workbench study record")
    if d.get("format_version", 0) > FORMAT_VERSION:
        raise _err(f"the study record {str(p)!r} has format version {d.get('format_version')}; this program "
                   f"reads version {FORMAT_VERSION} (update the workbench)")
    try:
        runs = [RunEntry(**r) for r in d["runs"]]
        return StudyRecord(p, d["name"], d["created"], d["definition_toml"], d["sessions"], runs,
                           d.get("updated", ""), d.get("metric", ""), d.get("backend", ""))
    except (KeyError, TypeError) as e:
        raise _err(f"the study record {str(p)!r} is damaged: {type(e).__name__}: {e}") from None


def list_studies(workspace=None) -> list[StudyRecord]:
    """The workspace's studies, newest first (unreadable records are left out)."""
    base = studies_dir(workspace)
    out = []
    for p in base.glob(f"*/{RECORD_NAME}") if base.is_dir() else ():
        try:
            out.append(open_record(p))
        except StudyError:
            continue
    return sorted(out, key=lambda r: (r.created, str(r.path)), reverse=True)
