"""Whether the process that writes a session file is still alive (same host: pid + start time).

A writer stamps its pid, its process start time and a heartbeat into ``/state``;
a reader calls :func:`live_status` to tell a live "running" file from one whose
writer died (see docs/session-format.md, "Status and dead writers").
"""

from __future__ import annotations

import os
import socket
import time

from workbench.store import schema as S


def process_start_ticks(pid: int) -> int:
    """Start time of process ``pid`` in clock ticks since boot (Linux), -1 where unknown.

    Together with the pid this names one process: a pid reused later by another
    program has another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return -1


def pid_alive(pid: int, start_ticks: int = -1) -> bool:
    """Whether process ``pid`` (started at ``start_ticks``, Linux clock ticks; -1 unknown) still runs here."""
    if pid <= 0 or pid > 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OSError, OverflowError):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        if data[data.rindex(b")") + 2:].split()[0] in (b"Z", b"X"):
            return False                       # a zombie: killed, not yet reaped
    except (OSError, ValueError, IndexError):
        pass
    if start_ticks >= 0:
        now = process_start_ticks(pid)
        if now >= 0 and now != start_ticks:
            return False                       # the pid now belongs to another process
    return True


def live_status(state_row, host: str) -> str:
    """The status of a session: the stored one, except that "running" with no live writer is
    "interrupted". Same host: the writer's pid (and process start time) must be alive and its
    heartbeat fresh; another host: the heartbeat must be younger than ``STALE_S``.
    A status code outside the known set is "unknown" (the reader refuses such files)."""
    code = int(state_row["status"])
    status = S.STATUSES[code] if 0 <= code < len(S.STATUSES) else "unknown"
    if status != "running":
        return status
    hb = float(state_row["heartbeat"])
    stale = not (time.time() - hb <= S.STALE_S)          # NaN heartbeat: stale
    if host == socket.gethostname():
        if not pid_alive(int(state_row["pid"]), int(state_row["pid_start"])):
            return "interrupted"
    return "interrupted" if stale else "running"
