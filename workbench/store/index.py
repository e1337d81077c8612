"""The summary index of a workspace, and searching summaries.

Reading a summary opens the HDF5 file (a few ms each); a session that has
finished, failed or been cancelled does not change unless its file does, so
:class:`SummaryIndex` keeps such summaries in a hidden JSON file in the
workspace (``.workbench-index.json``), keyed by file name, modification time
and size. Running, interrupted and damaged files are always read. A missing,
unreadable or outdated index is ignored and rewritten; a read-only workspace
works without one. Used by :func:`workbench.store.list_sessions` and the
sessions browser.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from workbench.store import schema as S
from workbench.store.reader import SessionSummary, damaged_summary, read_summary
from workbench.store.schema import SessionError


def summary_or_damaged(path) -> SessionSummary:
    """The summary of ``path``, or a "damaged" summary saying why it cannot be read: never raises,
    so one bad file is one damaged row, never a failed listing."""
    try:
        return read_summary(path)
    except SessionError as e:
        return damaged_summary(path, str(e))
    except OSError as e:
        return damaged_summary(path, f"session file {str(path)!r} cannot be read: {e.strerror or e}")
    except Exception as e:  # noqa: BLE001 - a reader bug must not hide the rest of the workspace
        return damaged_summary(path, f"session file {str(path)!r} cannot be read: {type(e).__name__}: {e}")


class SummaryIndex:
    """Summaries of ended sessions, keyed by the file's path relative to the workspace (study runs in
    different folders share file names such as ``c000-seed0.h5``), modification time and size."""

    NAME = ".workbench-index.json"
    VERSION = 2
    CACHEABLE = ("finished", "failed", "cancelled")

    def __init__(self, folder: Path):
        self.file = Path(folder) / self.NAME
        self.entries: dict[str, list] = {}          # relative path -> [mtime_ns, size, summary fields]
        self.dirty = False
        self._fields = [f.name for f in dataclasses.fields(SessionSummary)]
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
            if data.get("version") == self.VERSION and data.get("schema") == S.SCHEMA_VERSION \
                    and data.get("fields") == self._fields and isinstance(data.get("entries"), dict):
                self.entries = dict(data["entries"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            self.entries = {}

    def get(self, path: str, stamp: tuple[int, int]):
        e = self.entries.get(self._key(path))
        try:
            if e is None or (e[0], e[1]) != tuple(stamp):
                return None
            fields = dict(e[2])
            fields["path"], fields["tags"] = str(path), tuple(fields.get("tags", ()))
            return SessionSummary(**fields)
        except (TypeError, IndexError, KeyError, ValueError):
            return None

    def put(self, path: str, stamp: tuple[int, int], summary) -> None:
        if summary.status in self.CACHEABLE:
            self.entries[self._key(path)] = [stamp[0], stamp[1], dataclasses.asdict(summary)]
            self.dirty = True

    def keep_only(self, paths) -> None:
        names = {self._key(p) for p in paths}
        for name in [n for n in self.entries if n not in names]:
            del self.entries[name]
            self.dirty = True

    def _key(self, path) -> str:
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(self.file.parent)).as_posix()
        except ValueError:                           # a session outside the workspace: its absolute path
            return os.path.abspath(path)

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = self.file.with_name(self.file.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"version": self.VERSION, "schema": S.SCHEMA_VERSION,
                                       "fields": self._fields, "entries": self.entries}), encoding="utf-8")
            os.replace(tmp, self.file)
            self.dirty = False
        except (OSError, ValueError):       # a read-only workspace: listing works, only slower
            try:
                tmp.unlink()
            except OSError:
                pass


def matches(summary: SessionSummary, query: str | None) -> bool:
    """Whether ``summary`` matches every word of ``query`` (case-insensitive): ``tag:NAME`` must be
    one of its tags, any other word must occur in its name, dataset, learner, status, note, tags
    or file name. An empty query matches everything."""
    if not query:
        return True
    tags = {t.lower() for t in summary.tags}
    hay = " ".join((summary.name, summary.dataset, summary.learner, summary.status, summary.note,
                    " ".join(summary.tags), Path(summary.path).name)).lower()
    for word in query.lower().split():
        if word.startswith("tag:"):
            if word[4:] not in tags:
                return False
        elif word not in hay:
            return False
    return True
