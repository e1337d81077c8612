"""The HDF5 session format: one self-describing file per run (see docs/session-format.md).

- :class:`SessionWriter` / :func:`record`: events in, file out (HDF5 SWMR, flushed every second);
- :class:`SessionReader` / :func:`read_summary` / :func:`list_sessions`: read-only, validated,
  checksummed, live while a writer runs, "interrupted" when the writer died
  (:mod:`workbench.store.liveness`);
- :mod:`workbench.store.index`: the workspace's summary index and searching summaries;
- :func:`set_note`: a session's note and tags, set after its run;
- :mod:`workbench.store.export`: the model as safetensors + TOML, metrics as CSV;
- :mod:`workbench.store.cli`: ``workbench sessions | show | export | resume | tag`` and the
  recorder of ``workbench run`` (:func:`recorder_for_cli`).

No Qt here.
"""

from workbench.store.cli import CliRecorder, StopOnSignal, recorder_for_cli
from workbench.store.index import SummaryIndex, matches, summary_or_damaged
from workbench.store.notes import set_note
from workbench.store.reader import (EvaluationRecord, SessionReader, SessionSummary, damaged_summary,
                                    read_summary)
from workbench.store.schema import SCHEMA_VERSION, SessionError
from workbench.store.workspace import delete_session, list_sessions, new_session_path, workspace_dir
from workbench.store.writer import SessionWriter, record

__all__ = ["SCHEMA_VERSION", "SessionError", "SessionWriter", "record", "recorder_for_cli", "CliRecorder",
           "StopOnSignal", "SessionReader", "EvaluationRecord", "SessionSummary", "read_summary",
           "damaged_summary", "summary_or_damaged", "SummaryIndex", "matches", "set_note", "list_sessions",
           "delete_session", "new_session_path", "workspace_dir"]
