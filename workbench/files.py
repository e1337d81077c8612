"""Writing a file so that a crash, a full disk or a kill at any moment leaves the old file or the
new one, never a partial one. Used by exports, study records and caches alike. Torch- and Qt-free."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomic(path, content: bytes | Callable, *, sync_folder: bool = False) -> None:
    """Write ``content`` (bytes, or a function given the open binary file) into a temporary file
    beside ``path``, flush it to disk and rename it into place; on any failure the temporary file is
    removed and the exception raised. ``sync_folder`` also makes the rename survive a power cut."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_folder:
        fsync_folder(path.parent)


def fsync_folder(folder) -> None:
    """Make a rename in ``folder`` survive a power cut (a no-op where folders cannot be synced)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
