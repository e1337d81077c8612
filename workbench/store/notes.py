"""A session's note and tags, set after its run: :func:`set_note`.

They live in the optional blob dataset ``/notes`` (UTF-8 JSON ``{"note": str,
"tags": [str]}``, Fletcher-32 checksummed), which any schema version may hold.
A session that a live writer holds is refused (SWMR lets nobody else write).
Otherwise the change is made crash-safely: the file is copied to a temporary
name beside it, the copy is changed and flushed to disk, and the copy replaces
the original in one rename, so a crash at any moment leaves either the old
file or the new one, never half of each; readers that have the old file open
keep reading it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from workbench.files import fsync_folder
from workbench.store import schema as S
from workbench.store.schema import SessionError


def clean_tags(tags) -> tuple:
    """Tags as stored: stripped, distinct, sorted; SessionError for an empty or unfit tag."""
    out = set()
    for t in tags or ():
        if not isinstance(t, str):
            raise SessionError(f"tag {t!r} is not text")
        t = t.strip()
        if not t:
            raise SessionError("a tag must not be empty")
        if len(t) > S.TAG_MAX_CHARS:
            raise SessionError(f"tag {t[:20]!r}... is longer than {S.TAG_MAX_CHARS} characters")
        if any(c.isspace() or not c.isprintable() for c in t):
            raise SessionError(f"tag {t!r} holds spaces or control characters; use a single word such as "
                               f"'baseline' or 'paper-fig-3'")
        if _bad_text(t):
            raise SessionError(f"tag {t!r} is not valid Unicode text")
        out.add(t)
    if len(out) > S.TAGS_MAX:
        raise SessionError(f"a session can carry at most {S.TAGS_MAX} tags, not {len(out)}")
    return tuple(sorted(out))


def _bad_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return "\x00" in s


def set_note(path, note: str | None = None, tags=None):
    """Set the note (None: keep it) and the tags (None: keep them; a list replaces them) of the
    session file ``path``; returns its new :class:`~workbench.store.reader.SessionSummary`.
    SessionError (one sentence) for a bad note or tag, a live or damaged session, or a folder
    where the file cannot be rewritten; the file is then unchanged."""
    from workbench.store.reader import SessionReader, read_summary
    path = Path(path)
    where = f"session file {str(path)!r}"
    if note is not None:
        if not isinstance(note, str):
            raise SessionError("the note must be text")
        if _bad_text(note):
            raise SessionError("the note holds a NUL character or is not valid Unicode text")
        if len(note) > S.NOTE_MAX_CHARS:
            raise SessionError(f"the note has {len(note):,} characters; at most {S.NOTE_MAX_CHARS:,} are kept")
    new_tags = clean_tags(tags) if tags is not None else None
    with SessionReader(path) as r:
        if r.status == "running":
            raise SessionError(f"{where} is still being written by a live process; set its note when the run "
                               f"has ended")
        r.verify(skip=())
        old_note, old_tags = r.note, r.tags
        flagged = r._fl.writer_flag
    data = json.dumps({"note": old_note if note is None else note,
                       "tags": list(old_tags if new_tags is None else new_tags)}, ensure_ascii=False).encode("utf-8")
    tmp = path.with_name(f".{path.name}.note-{os.getpid()}.tmp")
    try:
        if flagged:        # left by a killed writer: HDF5 refuses to open it for writing, so copy it out
            with h5py.File(path, "r", libver="latest", swmr=True) as src, h5py.File(tmp, "w", libver="latest") as dst:
                for k, v in src.attrs.items():
                    dst.attrs[k] = v
                for k in src:
                    src.copy(src[k], dst, name=k)
        else:
            shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+", libver="latest") as f:
            if S.NOTES in f:
                ds = f[S.NOTES]
            else:
                ds = f.create_dataset(S.NOTES, shape=(0,), maxshape=(None,), dtype=np.uint8, fletcher32=True,
                                      chunks=(256,))
            ds.resize((len(data),))
            ds[:] = np.frombuffer(data, np.uint8)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0][:160]
        raise SessionError(f"the note of {where} cannot be saved: {why}") from None
    return read_summary(path)
