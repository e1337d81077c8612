"""Where session files live, and listing them.

The workspace is ``$WORKBENCH_WORKSPACE`` (``workbench --workspace DIR`` sets
it), else ``platformdirs.user_data_dir("workbench")/sessions``.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
from pathlib import Path

from workbench.store.schema import SessionError


def workspace_dir() -> Path:
    """The folder of session files, created if missing."""
    env = os.environ.get("WORKBENCH_WORKSPACE", "").strip()
    if env:
        p = Path(env).expanduser()
    else:
        import platformdirs
        p = Path(platformdirs.user_data_dir("workbench")) / "sessions"
    if p.exists() and not p.is_dir():
        raise SessionError(f"workspace {str(p)!r} is a file, expected a folder for session files")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SessionError(f"workspace {str(p)!r} cannot be created: {e.strerror or e}") from None
    return p


def _slug(text: str) -> str:
    s = "".join(c if c.isalnum() else "-" for c in str(text).lower()).strip("-")
    return "-".join(filter(None, s.split("-")))[:24] or "x"


def new_session_path(cfg, workspace=None) -> Path:
    """``<workspace>/<YYYYmmdd-HHMMSS>-<learner>-<dataset>-<6 hex>.h5`` (a fresh, unused name)."""
    folder = Path(workspace) if workspace is not None else workspace_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        p = folder / f"{stamp}-{_slug(cfg.learner.name)}-{_slug(cfg.data.dataset)}-{secrets.token_hex(3)}.h5"
        if not p.exists():
            return p


def list_sessions(workspace=None, *, query: str | None = None, use_index: bool = True) -> list:
    """Summaries of every ``*.h5`` in the workspace, newest first; unreadable files get status
    "damaged" (one bad file never fails the listing). ``query``: only the sessions that
    :func:`workbench.store.index.matches` it (words, ``tag:NAME``). Summaries of ended sessions
    come from the workspace's :class:`~workbench.store.index.SummaryIndex` while their files are
    unchanged."""
    from workbench.store.index import SummaryIndex, matches, summary_or_damaged
    folder = Path(workspace) if workspace is not None else workspace_dir()
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(".h5") and not e.name.startswith(".")]
    except OSError as e:
        raise SessionError(f"workspace {str(folder)!r} cannot be listed: {e.strerror or e}") from None
    index = SummaryIndex(folder) if use_index else None
    out, seen = [], []
    for e in entries:
        path = os.path.join(folder, e.name)
        seen.append(path)
        try:
            st = e.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        s = index.get(path, stamp) if index is not None and stamp is not None else None
        if s is None:
            s = summary_or_damaged(path)
            if index is not None and stamp is not None and s.status != "damaged":
                index.put(path, stamp, s)
        out.append(s)
    if index is not None:
        index.keep_only(seen)
        index.save()
    out = [s for s in out if matches(s, query)]
    return sorted(out, key=lambda s: (s.created, s.path), reverse=True)


def delete_session(path) -> None:
    """Remove a session file (and nothing else)."""
    p = Path(path)
    if p.is_dir():
        raise SessionError(f"{str(p)!r} is a folder, not a session file; nothing was deleted")
    if p.suffix != ".h5":
        raise SessionError(f"{str(p)!r} is not a .h5 session file; nothing was deleted")
    try:
        p.unlink()
    except FileNotFoundError:
        raise SessionError(f"session file {str(p)!r} does not exist") from None
    except OSError as e:
        raise SessionError(f"session file {str(p)!r} cannot be deleted: {e.strerror or e}") from None
