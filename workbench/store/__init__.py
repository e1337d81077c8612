"""The HDF5 session format: one self-describing file per run (see docs/session-format.md).

- :class:`SessionWriter` / :func:`record`: events in, file out (HDF5 SWMR, flushed every second);
- :class:`SessionReader` / :func:`read_summary` / :func:`list_sessions`: read-only, validated,
  live while a writer runs, "interrupted" when the writer died;
- :mod:`workbench.store.export`: the model as safetensors + TOML, metrics as CSV;
- :mod:`workbench.store.cli`: ``workbench sessions | show | export | resume``.

No Qt here.
"""

from workbench.store.reader import (EvaluationRecord, SessionReader, SessionSummary, damaged_summary,
                                    read_summary)
from workbench.store.schema import SCHEMA_VERSION, SessionError
from workbench.store.workspace import delete_session, list_sessions, new_session_path, workspace_dir
from workbench.store.writer import SessionWriter, record, recorder_for_cli

__all__ = ["SCHEMA_VERSION", "SessionError", "SessionWriter", "record", "recorder_for_cli", "SessionReader",
           "EvaluationRecord", "SessionSummary", "read_summary", "damaged_summary", "list_sessions",
           "delete_session", "new_session_path", "workspace_dir"]
