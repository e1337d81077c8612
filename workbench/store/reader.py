"""Reading session files: :class:`SessionReader`, :func:`read_summary`.

Every file is treated as untrusted input. It is opened read-only with
``libver="latest", swmr=True`` (the only way to open a file whose writer is
still running, or was killed: a plain read-only open refuses those), its
format and schema version are checked, and every object is checked before it
is read: a hard link (never a soft or external link, which could lead
outside the file); a chunked dataset whose bytes live in this file (never HDF5
external raw storage or a virtual dataset, which read other files) with no
filter but Fletcher-32, deflate or shuffle (an unknown filter would make HDF5
load a plugin library) and chunks of a sane size; the expected dtype and rank;
a size that the file can actually hold. Offsets stored in index rows are
checked against the arrays they point into, stored numbers against plausible
bounds, and checksums (version 2: Fletcher-32 per chunk, CRC-32 of the root
attributes, of every checkpoint and of the model) against the bytes. Anything
wrong raises :class:`SessionError` with one sentence naming the file and the
problem. The reader never writes.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from workbench.store import schema as S
from workbench.store.liveness import live_status, pid_alive  # noqa: F401  (re-exported)
from workbench.store.schema import SessionError


@dataclass(frozen=True)
class EvaluationRecord:
    phase: str
    step: int
    wall_time: float
    metric: str
    mean: float
    ci95: float
    loss_mean: float
    per_task: np.ndarray
    per_task_loss: np.ndarray
    task_ids: list
    families: list
    embeddings: np.ndarray | None
    embedding_method: str
    projection: np.ndarray | None
    projection_method: str


@dataclass(frozen=True)
class SessionSummary:
    path: str
    name: str
    status: str
    dataset: str
    learner: str
    ways: int
    shots: int
    metric: str
    mean: float
    ci95: float
    created: str
    ended: str
    steps_done: int
    total_steps: int
    message: str = ""        # why a file is "damaged" (empty otherwise)
    note: str = ""           # the user's note (workbench.store.notes.set_note)
    tags: tuple = ()         # the user's tags, sorted


def _iso(t: float) -> str:
    if not math.isfinite(t) or not (0 <= t < 1e11):
        return ""
    return _dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def _same_dtype(a: np.dtype, b: np.dtype) -> bool:
    if a.names or b.names:
        if a.names != b.names:
            return False
        return all(_same_dtype(a.fields[n][0], b.fields[n][0]) for n in a.names)
    return a.kind == b.kind and a.itemsize == b.itemsize


def _attr_text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


_MISSING = object()


def _read_attrs(obj, names) -> dict:
    """Attributes by name through h5py's low-level API (about 3x faster than ``attrs[k]``, which
    matters when the sessions browser reads hundreds of files); a missing one is ``_MISSING``; any
    attribute the fast path cannot read is read the ordinary way, so damaged files get the
    ordinary errors."""
    out = {}
    for k in names:
        try:
            aid = h5py.h5a.open(obj.id, k.encode())
        except KeyError:
            out[k] = _MISSING
            continue
        except Exception:
            aid = None
        try:
            if aid is None:
                raise ValueError
            arr = np.empty(aid.shape, dtype=aid.dtype)
            aid.read(arr)
            out[k] = arr[()]
        except Exception:
            out[k] = obj.attrs[k]
    return out


H5Z_FLETCHER32, H5Z_DEFLATE, H5Z_SHUFFLE = 3, 1, 2
ALLOWED_FILTERS = {H5Z_FLETCHER32: "fletcher32", H5Z_DEFLATE: "deflate", H5Z_SHUFFLE: "shuffle"}
MAX_CHUNK_BYTES = 16 << 20          # HDF5 allocates a whole chunk to read one value: bound it
MAX_TEXT_BYTES = 64 << 20           # JSON/UTF-8 blobs larger than this are refused


class _Handle:
    """The one HDF5 handle of this process on one session file, shared by every :class:`_File` open on it.

    HDF5 opens a file once per process (two opens of the same device and inode share one library-level
    file, metadata cache and open-dataset table). ``H5Drefresh`` (h5py ``Dataset.refresh``), which an
    SWMR reader must call to see rows a writer appended, closes the dataset, evicts its metadata and
    reopens it, and when another identifier of the same dataset is open anywhere in the process the
    still-open one keeps the stale chunk index: afterwards both read chunk 0's bytes in place of later
    chunks (HDF5 2.0.0, h5py 3.16). So each dataset is opened once per process, here, and every reader
    of the file uses that one identifier."""

    def __init__(self, key, f, swmr: bool):
        self.key, self.f, self.swmr = key, f, swmr
        self.datasets: dict = {}        # name -> the h5py Dataset every user of this file shares
        self.users = 0

    def dataset(self, name: str):
        with _HANDLES_LOCK:
            obj = self.datasets.get(name)
            if obj is None or not obj.id.valid:
                obj = self.datasets[name] = self.f[name]
            return obj


_HANDLES: dict = {}                      # (st_dev, st_ino) -> _Handle
_HANDLES_LOCK = threading.RLock()


def _acquire(path: Path, key, retries: bool) -> _Handle:
    with _HANDLES_LOCK:
        h = _HANDLES.get(key)
        if h is None or not h.f.id.valid:
            try:
                f, swmr = _open_swmr(path, retries=retries), True
            except Exception:
                f, swmr = h5py.File(path, "r"), False     # e.g. an old-format foreign HDF5 file
            h = _HANDLES[key] = _Handle(key, f, swmr)
        h.users += 1
        return h


def _release(h: _Handle):
    with _HANDLES_LOCK:
        h.users -= 1
        if h.users > 0:
            return
        if _HANDLES.get(h.key) is h:
            del _HANDLES[h.key]
        h.datasets.clear()
        try:
            h.f.close()
        except Exception:
            pass


class _File:
    """An opened, validated session file (shared by the reader, read_summary and the resuming writer).
    Every ``_File`` on one file in this process shares one HDF5 handle (:class:`_Handle`)."""

    def __init__(self, path):
        self.path = Path(path)
        self.where = f"session file {str(self.path)!r}"
        self._checked: dict = {}
        p = self.path
        try:
            if not p.exists():
                raise SessionError(f"{self.where} does not exist")
            if p.is_dir():
                raise SessionError(f"{self.where} is a folder, expected an .h5 session file")
            if not p.is_file():
                raise SessionError(f"{self.where} is not a regular file")
            st = p.stat()
            self.size = st.st_size
        except OSError as e:
            raise SessionError(f"{self.where} cannot be read: {e.strerror or e}") from None
        if self.size == 0:
            raise SessionError(f"{self.where} is empty (0 bytes), not a session file")
        sb = _superblock(p)
        if sb is None:
            raise SessionError(f"{self.where} is not an HDF5 file (no HDF5 signature); session files are HDF5")
        if sb == "short":
            raise SessionError(f"{self.where} is truncated: {self.size:,} bytes, shorter than an HDF5 header "
                               f"(damaged or incompletely copied)")
        stored_eof, flags = sb
        if stored_eof is not None and self.size < stored_eof:
            raise SessionError(f"{self.where} is truncated: {self.size:,} bytes of the {stored_eof:,} its header "
                               f"records (damaged or incompletely copied)")
        self.writer_flag = bool(flags & 0b101)       # open for (SWMR) writing: a live or a killed writer
        try:
            self._h = _acquire(p, (st.st_dev, st.st_ino), self.writer_flag)
        except Exception as e:
            raise SessionError(f"{self.where} cannot be opened as HDF5 (truncated or damaged?): "
                               f"{_short(e)}") from None
        self._finalizer = weakref.finalize(self, _release, self._h)   # (also when dropped unclosed)
        self.f, self.swmr = self._h.f, self._h.swmr
        try:
            self._check_root()
        except SessionError:
            self.close()
            raise
        except Exception as e:      # h5py raises many kinds on damaged metadata
            self.close()
            raise SessionError(f"{self.where} is damaged: {_short(e)}") from None

    def _check_root(self):
        self.root = _read_attrs(self.f, ["format", "schema_version"])
        if self.root["format"] is _MISSING or _attr_text(self.root["format"]) != S.FORMAT:
            raise SessionError(f"{self.where} is an HDF5 file but not a workbench session "
                               f"(no root attribute format = {S.FORMAT!r})")
        v = self.root.get("schema_version")
        if not isinstance(v, (int, np.integer)):
            raise SessionError(f"{self.where} has no valid schema_version attribute (found {v!r})")
        if int(v) > S.SCHEMA_VERSION:
            raise SessionError(f"{self.where} was written with session schema version {int(v)}, newer than "
                               f"this program reads ({S.SCHEMA_VERSION}); update workbench to open it")
        if int(v) not in S.READ_VERSIONS:
            raise SessionError(f"{self.where} has an invalid schema_version {int(v)}")
        self.version = int(v)
        self.layout = S.appendable(self.version)
        want = [k for k in S.ROOT_ATTRS if k not in self.root] + ([S.ATTRS_CRC] if self.version >= 2 else [])
        self.root.update(_read_attrs(self.f, want))
        for k in (*S.ROOT_ATTRS, *want):
            if self.root[k] is _MISSING:
                raise SessionError(f"{self.where} lacks the root attribute {k!r}")
        for k in S.ROOT_ATTRS:
            v = self.root[k]
            if not isinstance(v, (str, bytes, int, np.integer)):
                raise SessionError(f"{self.where}: root attribute {k!r} has an unexpected type "
                                   f"({type(v).__name__})")
        if self.version >= 2:
            stored = self.root[S.ATTRS_CRC]
            if not isinstance(stored, (int, np.integer)) or int(stored) != S.attrs_crc(self.root):
                raise SessionError(f"{self.where} is damaged: its root attributes do not match their checksum")
        for k, hi in (("ways", S.MAX_WAYS), ("shots", S.MAX_WAYS), ("queries", S.MAX_WAYS),
                      ("total_steps", S.MAX_STEPS)):
            n = self.root[k]
            if not isinstance(n, (int, np.integer)) or not 0 <= int(n) <= hi:
                raise SessionError(f"{self.where}: root attribute {k!r} = {_attr_text(n)[:40]!r} is not a whole "
                                   f"number between 0 and {hi:,} (damaged or crafted)")
        self.state_ds = self.dataset("state", S.STATE_DTYPE, min_rows=1)
        self.host = _attr_text(self.root["writer_host"])

    def dataset(self, name: str, dtype=None, min_rows: int = 0):
        """The dataset ``name``, checked: a hard link inside the file, stored in this file (chunked,
        no external storage, no virtual layout, known filters), a 1-D dataset of ``dtype``."""
        if self._h is None:
            raise SessionError(f"{self.where} was closed; open it again to read it")
        obj = self._checked.get(name)
        if obj is not None:
            obj = self._h.dataset(name)
            if self.swmr:
                obj.refresh()
            self.check_size(obj, name)
            return obj
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            try:
                link = self.f.get(sub, getlink=True)
            except Exception as e:
                raise SessionError(f"{self.where}: {sub!r} cannot be read: {_short(e)}") from None
            if link is None:
                raise SessionError(f"{self.where} lacks {sub!r} (missing group or dataset)")
            if not isinstance(link, h5py.HardLink):
                kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
                raise SessionError(f"{self.where}: {sub!r} is {kind}; session files hold their data themselves")
        obj = self._h.dataset(name)
        if not isinstance(obj, h5py.Dataset):
            raise SessionError(f"{self.where}: {name!r} is a group, expected a dataset")
        filters, chunk = self._check_storage(obj, name)
        if dtype is None:
            dtype = self.layout[name][0] if name in self.layout else np.uint8
        dt = obj.dtype                      # (h5py rebuilds it on every access: read it once)
        if not _same_dtype(dt, np.dtype(dtype)):
            raise SessionError(f"{self.where}: {name!r} has dtype {dt}, expected {np.dtype(dtype)}")
        if obj.ndim != 1:
            raise SessionError(f"{self.where}: {name!r} has shape {obj.shape}, expected one dimension")
        if len(chunk) != 1 or int(chunk[0]) * dt.itemsize > MAX_CHUNK_BYTES:
            raise SessionError(f"{self.where}: {name!r} has chunks of {chunk} rows, not what session files "
                               f"use (damaged or crafted)")
        if self.version >= 2 and H5Z_FLETCHER32 not in filters:
            raise SessionError(f"{self.where}: {name!r} has no checksum, which version-2 session files give "
                               f"every dataset (damaged or crafted)")
        if self.swmr:
            obj.refresh()
        self.check_size(obj, name, dt.itemsize)
        if obj.shape[0] < min_rows:
            raise SessionError(f"{self.where}: {name!r} has {obj.shape[0]} rows, expected at least {min_rows}")
        self._checked[name] = obj
        return obj

    def _check_storage(self, obj, name):
        """Refuse every way a dataset can read or write bytes outside this file, or make HDF5 load code."""
        try:
            dcpl = obj.id.get_create_plist()
            layout = dcpl.get_layout()
            n_external = dcpl.get_external_count()
            filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
            chunk = dcpl.get_chunk() if layout == h5py.h5d.CHUNKED else None
        except Exception as e:
            raise SessionError(f"{self.where}: the storage of {name!r} cannot be read: {_short(e)}") from None
        if layout == h5py.h5d.VIRTUAL:
            raise SessionError(f"{self.where}: {name!r} is a virtual dataset, whose bytes live in other files; "
                               f"session files hold their data themselves")
        if n_external:
            raise SessionError(f"{self.where}: {name!r} keeps its bytes in another file (HDF5 external storage); "
                               f"session files hold their data themselves")
        if layout != h5py.h5d.CHUNKED:
            raise SessionError(f"{self.where}: {name!r} is not stored in chunks as session files store "
                               f"their datasets (damaged or crafted)")
        unknown = [f for f in filters if f not in ALLOWED_FILTERS]
        if unknown:
            raise SessionError(f"{self.where}: {name!r} uses the HDF5 filter {unknown[0]}, which session files do "
                               f"not use (refused: it would load a plugin library)")
        return filters, chunk

    def check_size(self, obj, name, itemsize: int | None = None):
        nbytes = obj.shape[0] * (itemsize if itemsize is not None else obj.dtype.itemsize) if obj.shape else 0
        try:
            size = os.path.getsize(self.path)
        except OSError:
            size = self.size
        if nbytes > 64 * size + (64 << 20):     # generous: filters may compress
            raise SessionError(f"{self.where}: {name!r} claims {obj.shape[0]:,} rows ({nbytes:,} bytes), more "
                               f"than the {size:,}-byte file can hold (damaged)")

    def blob(self, name: str) -> bytes:
        ds = self.dataset(name)
        return bytes(ds[:]) if ds.shape[0] else b""

    def text(self, name: str) -> str:
        data = self.blob(name)
        if len(data) > MAX_TEXT_BYTES:
            raise SessionError(f"{self.where}: {name!r} holds {len(data):,} bytes of text, more than any session "
                               f"writes (damaged or crafted)")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SessionError(f"{self.where}: {name!r} is not UTF-8 text") from None

    def json(self, name: str, empty):
        t = self.text(name)
        if not t:
            return empty
        try:
            v = json.loads(t)
        except (ValueError, RecursionError):
            raise SessionError(f"{self.where}: {name!r} is not valid JSON") from None
        if not isinstance(v, type(empty)):
            raise SessionError(f"{self.where}: {name!r} holds a {type(v).__name__}, expected a "
                               f"{type(empty).__name__}")
        return v

    def state(self):
        ds = self.state_ds
        row = None
        if ds.shape == (1,):            # the usual single row: read it without h5py's selection machinery
            arr = np.empty((1,), dtype=S.STATE_DTYPE)
            try:
                ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, arr)
                row = arr[0]
            except Exception:
                row = None
        if row is None:
            row = ds[0]
        code = int(row["status"])
        if not 0 <= code < len(S.STATUSES):
            raise SessionError(f"{self.where}: its stored status code {code} is not one of the known statuses "
                               f"(damaged or crafted)")
        for k in ("steps_done", "start_step", "resumes"):
            if not 0 <= int(row[k]) <= S.MAX_STEPS:
                raise SessionError(f"{self.where}: its stored {k.replace('_', ' ')} ({int(row[k])}) is negative "
                                   f"or impossibly large (damaged or crafted)")
        if not 0 <= int(row["final_episodes"]) <= S.MAX_STEPS:
            raise SessionError(f"{self.where}: its stored number of test episodes ({int(row['final_episodes'])}) "
                               f"is impossible (damaged or crafted)")
        return row

    def notes(self) -> tuple[str, tuple]:
        """(note, tags) from the optional ``notes`` blob; ("", ()) when there is none."""
        try:            # the common case, an empty or missing blob, without the full dataset checks (fast)
            if not self.f.id.links.exists(S.NOTES.encode()):
                return "", ()
            info = self.f.id.links.get_info(S.NOTES.encode())
            if info.type == h5py.h5l.TYPE_HARD:
                obj = self._h.datasets.get(S.NOTES)
                if obj is not None and obj.id.valid:
                    shape = obj.shape
                else:       # a second identifier must be closed before dataset() refreshes (see _Handle)
                    dsid = h5py.h5d.open(self.f.id, S.NOTES.encode())
                    shape = dsid.shape
                    del dsid
                if shape == (0,):
                    return "", ()
        except KeyError:
            return "", ()
        except Exception:
            pass                     # anything unusual: the checked path below says what is wrong
        d = self.json(S.NOTES, {})
        note, tags = d.get("note", ""), d.get("tags", [])
        if not isinstance(note, str) or not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise SessionError(f"{self.where}: its note and tags are damaged")
        return note, tuple(tags)

    def close(self):
        self._h = None
        self._checked.clear()
        fin = getattr(self, "_finalizer", None)
        if fin is not None:
            fin()                    # once: the file's HDF5 handle closes with its last user


SWMR_READ_ATTEMPTS = 30    # HDF5's default (100) retries a bad checksum with doubling sleeps: hours


def _hdf5_library():
    """The HDF5 C library h5py runs on (to set what h5py does not expose), or None."""
    global _HDF5_LIB
    if _HDF5_LIB is False:
        _HDF5_LIB = None
        try:
            import ctypes
            with open("/proc/self/maps") as fh:
                paths = {line.split()[-1] for line in fh if "libhdf5" in line and "libhdf5_hl" not in line}
            for path in sorted(paths):
                lib = ctypes.CDLL(path)
                fn = lib.H5Pset_metadata_read_attempts
                fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
                _HDF5_LIB = lib
                break
        except (OSError, AttributeError):
            _HDF5_LIB = None
    return _HDF5_LIB


_HDF5_LIB = False


def _open_swmr(path: Path, retries: bool = True) -> h5py.File:
    """Open read-only as an SWMR reader (libver latest). A file a writer may still be writing
    (``retries``) retries a bad metadata read ``SWMR_READ_ATTEMPTS`` times (about a second: the
    writer may be mid-flush), a file no writer holds only once, so that a damaged file fails at
    once instead of hanging. Without access to that setting, files that a plain read-only open
    accepts are opened plainly (no writer holds them), and only files marked open-for-writing
    are opened as SWMR."""
    lib = _hdf5_library()
    if lib is None:
        try:
            return h5py.File(path, "r")
        except OSError as e:
            if "already open for write" not in str(e):
                raise
        return h5py.File(path, "r", libver="latest", swmr=True)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    if lib.H5Pset_metadata_read_attempts(fapl.id, SWMR_READ_ATTEMPTS if retries else 1) < 0:
        raise OSError("cannot limit HDF5 metadata read attempts")
    fid = h5py.h5f.open(os.fsencode(str(path)), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _superblock(path: Path):
    """None: no HDF5 signature; "short": a signature but not a whole superblock (a truncated copy);
    else (end-of-file address a version 2/3 superblock records or None, its consistency flags)."""
    try:
        with open(path, "rb") as fh:
            for base in (0, 512, 1024, 2048, 4096, 8192):
                fh.seek(base)
                head = fh.read(48)
                if head[:8] != HDF5_SIGNATURE:
                    if base == 0 and len(head) < 8 and HDF5_SIGNATURE.startswith(head):
                        return "short" if head else None
                    continue
                if len(head) < 48:
                    return "short"
                if head[8] not in (2, 3) or head[9] != 8:
                    return None, 0
                base_addr = int.from_bytes(head[12:20], "little")
                eof = int.from_bytes(head[28:36], "little")
                return base_addr + eof, head[11]
    except OSError:
        return None
    return None


def _short(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg.splitlines()[0][:200]


def _summary(fl: _File) -> SessionSummary:
    a = fl.root
    st = fl.state()
    note, tags = fl.notes()
    return SessionSummary(
        path=str(fl.path), name=_attr_text(a["name"]), status=live_status(st, fl.host),
        dataset=_attr_text(a["dataset"]), learner=_attr_text(a["learner"]), ways=int(a["ways"]),
        shots=int(a["shots"]), metric=_attr_text(a["metric"]), mean=float(st["final_mean"]),
        ci95=float(st["final_ci95"]), created=_attr_text(a["created"]), ended=_iso(float(st["ended"])),
        steps_done=int(st["steps_done"]), total_steps=int(a["total_steps"]), note=note, tags=tags)


def read_summary(path) -> SessionSummary:
    """What the sessions table shows: root attributes, the ``/state`` row and the note (fast)."""
    fl = _File(path)
    try:
        return _summary(fl)
    except SessionError:
        raise
    except Exception as e:
        raise SessionError(f"{fl.where} is damaged: {_short(e)}") from None
    finally:
        fl.close()


def damaged_summary(path, message: str) -> SessionSummary:
    """The summary of a file that cannot be read: status "damaged", ``message`` says why."""
    p = Path(path)
    try:
        created = _dt.datetime.fromtimestamp(p.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    except (OSError, ValueError, OverflowError):
        created = ""
    return SessionSummary(str(p), p.stem, "damaged", "", "", 0, 0, "", float("nan"), float("nan"), created, "",
                          0, 0, message)


def dedup_steps(steps: np.ndarray) -> np.ndarray:
    """Mask keeping, for a curve appended over resumed segments, the rows of the latest segment:
    row i stays if its step is below every step recorded after it."""
    if len(steps) < 2:
        return np.ones(len(steps), bool)
    later_min = np.minimum.accumulate(steps[::-1])[::-1]
    keep = np.ones(len(steps), bool)
    keep[:-1] = steps[:-1] < later_min[1:]
    return keep


def _written_rows(rows, where: str, what: str):
    """The rows of an appendable index/curve the writer finished: rows still holding the fill value
    (step -1: reserved, never written, e.g. a full disk or a kill) are dropped at the end; any
    other negative step is damage."""
    steps = rows["step"]
    n = len(rows)
    while n and steps[n - 1] == S.FILL_STEP:
        n -= 1
    if n and (steps[:n] < 0).any():
        raise SessionError(f"{where}: {what} holds a negative step ({int(steps[:n].min())}; damaged or crafted)")
    if n and (steps[:n] > S.MAX_STEPS).any():
        raise SessionError(f"{where}: {what} holds an impossibly large step (damaged or crafted)")
    return rows[:n]


def _guard(method):
    """Public reader methods raise SessionError only. A read of a live file that fails a checksum is
    retried a few times (it may have caught the writer in the middle of rewriting a chunk)."""
    @functools.wraps(method)
    def wrapper(self, *a, **kw):
        for attempt in range(4):
            try:
                return method(self, *a, **kw)
            except SessionError:
                raise
            except Exception as e:  # h5py raises OSError, KeyError, ValueError... on damaged files
                if attempt < 3 and self._fl.writer_flag and self.status == "running":
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if isinstance(e, OSError) and "filter returned failure" in str(e):
                    raise SessionError(f"{self._fl.where} is damaged: stored bytes do not match their checksum "
                                       f"({method.__name__.strip('_')})") from None
                raise SessionError(f"{self._fl.where} is damaged: {_short(e)}") from None
    return wrapper


class SessionReader:
    """Read-only view of one session file, live or finished. Raises :class:`SessionError`."""

    def __init__(self, path):
        self._fl = _File(path)
        self.status = "unknown"
        try:
            self.path = self._fl.path
            self._load()
        except SessionError:
            self._fl.close()
            raise
        except Exception as e:
            self._fl.close()
            if isinstance(e, OSError) and "filter returned failure" in str(e):
                raise SessionError(f"{self._fl.where} is damaged: stored bytes do not match their "
                                   f"checksum") from None
            raise SessionError(f"{self._fl.where} is damaged: {_short(e)}") from None

    # -- loading ------------------------------------------------------------------
    def _load(self):
        fl = self._fl
        self.config_toml = _attr_text(fl.root["config_toml"])
        self.created = _attr_text(fl.root["created"])
        self.metric_kind = _attr_text(fl.root["metric"])
        self.schema_version = fl.version
        self._config = None
        for name in fl.layout:
            fl.dataset(name)                 # validate every object once
        if fl.f.get(S.NOTES, getlink=True) is not None:
            fl.dataset(S.NOTES, np.uint8)
        self._read_state()

    def _read_state(self):
        fl = self._fl
        st = fl.state()
        self._state = st
        self.status = live_status(st, fl.host)
        self.ended = _iso(float(st["ended"]))
        self.steps_done = int(st["steps_done"])
        self.total_steps = int(fl.root["total_steps"])
        self.resumes = int(st["resumes"])
        self.environment = fl.json("run/environment", {})
        self.split = fl.json("run/split", {})
        self.failure_message = fl.text("run/message")
        self.model_meta = fl.json("model/meta", {})
        self.note, self.tags = fl.notes()
        names = fl.json("metrics/names", [])
        if len(names) > S.METRIC_SLOTS or not all(isinstance(n, str) for n in names) \
                or len(set(names)) != len(names):
            raise SessionError(f"{fl.where}: 'metrics/names' is not a list of at most {S.METRIC_SLOTS} "
                               f"distinct names")
        self._names = names
        self._shapes = self._current_shapes()

    def _current_shapes(self):
        h = self._fl._h              # (the shared identifiers, as refreshed by the last dataset() call)
        return tuple(h.dataset(name).shape[0] for name in self._fl.layout)

    @property
    def config(self):
        """The run's :class:`~workbench.config.ExperimentConfig`, read as it was written: types are
        checked, ranges and cross-field rules are not (a session made under older rules still opens;
        a resumed run is validated by the engine). SessionError if it cannot be read at all."""
        if self._config is None:
            import tomllib
            from workbench import config as C
            try:
                d = tomllib.loads(self.config_toml)
                self._config = C.from_dict(d, strict=False, validate_values=False)
            except tomllib.TOMLDecodeError as e:
                raise SessionError(f"{self._fl.where}: its config is not valid TOML ({_short(e)})") from None
            except C.ConfigError as e:
                raise SessionError(f"{self._fl.where}: its config cannot be used: {e.problems[0]}") from None
            except (ValueError, TypeError, RecursionError) as e:
                raise SessionError(f"{self._fl.where}: its config cannot be used: {_short(e)}") from None
        return self._config

    def refresh(self) -> bool:
        """Re-read what a live writer appended since; True if anything changed."""
        fl = self._fl
        before = (self._shapes, self._state.tobytes())
        for attempt in range(4):
            try:
                for name in fl.layout:          # (dataset() refreshes the one shared identifier)
                    fl.dataset(name)
                fl.state_ds = fl.dataset("state", S.STATE_DTYPE)
                self._read_state()
                break
            except SessionError:
                raise
            except Exception as e:  # a live writer may be rewriting a chunk this very moment: read again
                if attempt < 3 and fl.writer_flag and self.status == "running":
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise SessionError(f"{fl.where} cannot be refreshed: {_short(e)}") from None
        return (self._shapes, self._state.tobytes()) != before

    # -- metrics --------------------------------------------------------------------
    @_guard
    def metric_names(self) -> list[str]:
        return [n for i, n in enumerate(self._names) if self._fl.dataset(S.slot_name(i)).shape[0]]

    @_guard
    def metric(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps int64, wall_time float64, values float64) of one curve, every recorded point.
        After a resume, rows the resumed run recorded again replace the earlier ones."""
        if name not in self._names:
            raise SessionError(f"{self._fl.where} has no metric {name!r}; it has {', '.join(self._names) or 'none'}")
        ds = self._fl.dataset(S.slot_name(self._names.index(name)))
        rows = _written_rows(ds[:] if ds.shape[0] else np.zeros(0, S.METRIC_DTYPE), self._fl.where,
                             f"the curve {name!r}")
        steps = rows["step"].astype(np.int64)
        keep = dedup_steps(steps)
        if not keep.all():
            rows = rows[keep]
            steps = steps[keep]
        return steps, rows["wall_time"].astype(np.float64), rows["value"].astype(np.float64)

    # -- evaluations -------------------------------------------------------------------
    def _slice(self, name, start, count, what):
        ds = self._fl.dataset(name)
        if count == 0:
            return np.zeros(0, ds.dtype)
        if start < 0 or count < 0 or start + count > ds.shape[0]:
            raise SessionError(f"{self._fl.where}: an index row points at {what} [{start}, {start + count}) "
                               f"outside {name!r} ({ds.shape[0]} values)")
        return ds[start:start + count]

    @_guard
    def evaluations(self, phase: str | None = None) -> list[EvaluationRecord]:
        fl = self._fl
        ds = fl.dataset("evaluations/index")
        index = _written_rows(ds[:] if ds.shape[0] else np.zeros(0, S.EVAL_DTYPE), fl.where, "the evaluation index")
        keep = np.ones(len(index), bool)
        for code in np.unique(index["phase"]):        # after a resume, the re-run evaluations replace the old
            at = np.flatnonzero(index["phase"] == code)
            keep[at] = dedup_steps(index["step"][at].astype(np.int64))
        out = []
        for row in index[keep]:
            code = int(row["phase"])
            if not 0 <= code < len(S.PHASES):
                raise SessionError(f"{fl.where}: an evaluation row has the unknown phase code {code}")
            ph = S.PHASES[code]
            if phase is not None and ph != phase:
                continue
            n, d = int(row["n_tasks"]), int(row["emb_dim"])
            if n < 0 or d < 0 or d > 1_000_000:
                raise SessionError(f"{fl.where}: an evaluation row has {n} tasks of embedding size {d}")
            per_task = self._slice("evaluations/per_task", int(row["task_start"]), n, "per-task results")
            per_loss = self._slice("evaluations/per_task_loss", int(row["task_start"]), n, "per-task losses")
            raw = bytes(self._slice("evaluations/labels", int(row["label_start"]), int(row["label_len"]), "labels"))
            try:
                labels = json.loads(raw.decode("utf-8"))
                task_ids, families = list(labels["task_ids"]), list(labels["families"])
            except (ValueError, KeyError, TypeError, RecursionError):
                raise SessionError(f"{fl.where}: the labels of the evaluation at step {int(row['step'])} are "
                                   f"damaged") from None
            if len(task_ids) != n or len(families) != n:
                raise SessionError(f"{fl.where}: the evaluation at step {int(row['step'])} has {n} results but "
                                   f"{len(task_ids)} task ids and {len(families)} family labels")
            emb = None
            if d:
                if n * d > fl.dataset("evaluations/embeddings").shape[0]:
                    raise SessionError(f"{fl.where}: an evaluation row claims {n} x {d} embedding values, more "
                                       f"than the file holds")
                emb = self._slice("evaluations/embeddings", int(row["emb_start"]), n * d, "embeddings").reshape(n, d)
            proj, pm = None, "none"
            if int(row["proj_start"]) >= 0:
                proj = self._slice("evaluations/projection", int(row["proj_start"]), 2 * n, "projection").reshape(n, 2)
                code = int(row["proj_method"])
                if not 0 <= code < len(S.PROJECTION_METHODS):
                    raise SessionError(f"{fl.where}: an evaluation row has the unknown projection code {code}")
                pm = S.PROJECTION_METHODS[code]
            out.append(EvaluationRecord(ph, int(row["step"]), float(row["wall_time"]),
                                        str(labels.get("metric", self.metric_kind)), float(row["mean"]),
                                        float(row["ci95"]), float(row["loss_mean"]), per_task.astype(np.float64),
                                        per_loss.astype(np.float64), [str(t) for t in task_ids],
                                        [str(f) for f in families], emb,
                                        str(labels.get("embedding_method", "none")), proj, pm))
        return out

    def final_test(self) -> EvaluationRecord | None:
        tests = self.evaluations("test")
        return tests[-1] if tests else None

    # -- summary, model, checkpoints, log -------------------------------------------------
    @_guard
    def summary(self) -> SessionSummary:
        return _summary(self._fl)

    @_guard
    def model_bytes(self) -> bytes | None:
        """The final model's safetensors bytes, None if there is none. Version 2: checked against
        the length and CRC-32 that ``model/meta`` records (a model cut short by a full disk, or
        flipped bytes, is refused)."""
        data = self._fl.blob("model/data")
        if not data:
            return None
        if self.schema_version >= 2:
            meta = self.model_meta
            if meta.get("length") != len(data) or meta.get("crc32") != zlib.crc32(data):
                raise SessionError(f"{self._fl.where}: its stored model is incomplete or damaged (its bytes do not "
                                   f"match the length and checksum recorded with it)")
        return data

    def _checkpoint_rows(self):
        ds = self._fl.dataset("checkpoints/index")
        return _written_rows(ds[:] if ds.shape[0] else np.zeros(0, ds.dtype), self._fl.where,
                             "the checkpoint index")

    @_guard
    def checkpoints(self) -> list[tuple[int, float]]:
        """(step, wall_time) of every stored checkpoint (added to the contract)."""
        return [(int(r["step"]), float(r["wall_time"])) for r in self._checkpoint_rows()]

    def _checkpoint(self, r) -> bytes:
        data = bytes(self._slice("checkpoints/data", int(r["start"]), int(r["length"]), "checkpoint bytes"))
        if self.schema_version >= 2 and zlib.crc32(data) != int(r["crc32"]):
            raise SessionError(f"{self._fl.where}: the checkpoint of step {int(r['step'])} is incomplete or "
                               f"damaged (its bytes do not match their checksum)")
        return data

    @_guard
    def checkpoint_bytes(self, i: int = -1) -> tuple[int, bytes] | None:
        """(step, torch.save bytes) of checkpoint ``i`` (default: the last), None if there is none.
        SessionError if its bytes do not match their checksum (version 2)."""
        index = self._checkpoint_rows()
        if not len(index):
            return None
        r = index[i]
        return int(r["step"]), self._checkpoint(r)

    def complete_checkpoints(self):
        """Yield (step, bytes) of every checkpoint whose bytes are complete, newest first: a
        checkpoint cut short (a full disk, a kill while it was written) or damaged is skipped."""
        try:
            index = self._checkpoint_rows()
        except SessionError:
            raise
        except Exception as e:
            raise SessionError(f"{self._fl.where} is damaged: {_short(e)}") from None
        for r in index[::-1]:
            try:
                yield int(r["step"]), self._checkpoint(r)
            except SessionError:
                continue
            except Exception:       # an unreadable (checksum-failing) chunk: that checkpoint is incomplete
                continue

    @_guard
    def log(self) -> list[tuple[float, str, str]]:
        """(wall_time, level, message) of every log line (added to the contract)."""
        out = []
        ds = self._fl.dataset("log/index")
        for r in (ds[:] if ds.shape[0] else []):
            text = bytes(self._slice("log/text", int(r["start"]), int(r["length"]), "log text"))
            lv = int(r["level"])
            out.append((float(r["wall_time"]), S.LOG_LEVELS[lv] if 0 <= lv < len(S.LOG_LEVELS) else "info",
                        text.decode("utf-8", "replace")))
        return out

    @_guard
    def verify(self, *, skip: tuple = ("checkpoints/data", "model/data")) -> None:
        """Read every byte of every dataset (but ``skip``), so every checksum is checked; SessionError
        at the first problem. The resuming writer calls it before it changes anything."""
        for name in list(self._fl.layout) + ["state"] + ([S.NOTES] if self._fl.f.get(S.NOTES) is not None else []):
            if name in skip:
                continue
            ds = self._fl.dataset(name, S.STATE_DTYPE if name == "state" else None)
            if ds.shape[0]:
                ds[:]
        self.metric_names()
        for n in self._names:
            self.metric(n)
        self.evaluations()
        self.log()
        self.checkpoints()

    def close(self):
        self._fl.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"SessionReader({str(self.path)!r}, status={self.status!r})"
