"""Reading session files: :class:`SessionReader`, :func:`read_summary`.

Every file is treated as untrusted input. It is opened read-only with
``libver="latest", swmr=True`` (the only way to open a file whose writer is
still running, or was killed: a plain read-only open refuses those), its
format and schema version are checked, and every object is checked before it
is read: a hard link (never a soft or external link, which could lead
outside the file), a dataset of the expected dtype and rank, and a size that
the file can actually hold. Offsets stored in index rows are checked against
the arrays they point into. Anything wrong raises :class:`SessionError` with
one sentence naming the file and the problem. The reader never writes.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from workbench.store import schema as S
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
    message: str = ""        # added: why a file is "damaged" (empty otherwise)


def _iso(t: float) -> str:
    if not math.isfinite(t):
        return ""
    return _dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def pid_alive(pid: int, start_ticks: int = -1) -> bool:
    """Whether process ``pid`` (started at ``start_ticks``, Linux clock ticks; -1 unknown) still runs here."""
    from workbench.store.writer import process_start_ticks
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
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
    heartbeat fresh; another host: the heartbeat must be younger than ``STALE_S``."""
    code = int(state_row["status"])
    status = S.STATUSES[code] if 0 <= code < len(S.STATUSES) else "unknown"
    if status != "running":
        return status
    stale = time.time() - float(state_row["heartbeat"]) > S.STALE_S
    if host == socket.gethostname():
        if not pid_alive(int(state_row["pid"]), int(state_row["pid_start"])):
            return "interrupted"
    return "interrupted" if stale else "running"


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


def _read_attrs(obj, names) -> dict:
    """Root attributes by name through h5py's low-level API (about 3x faster than ``attrs[k]``,
    which matters when the sessions browser reads hundreds of files); any attribute the fast
    path cannot read is read the ordinary way, so damaged files get the ordinary errors."""
    out = {}
    for k in names:
        try:
            aid = h5py.h5a.open(obj.id, k.encode())
            arr = np.empty(aid.shape, dtype=aid.dtype)
            aid.read(arr)
            out[k] = arr[()]
        except Exception:
            out[k] = obj.attrs[k]
    return out


# root attributes read once when a file is opened (everything but the long config text)
ROOT_FAST_ATTRS = ("format", "schema_version", "writer_host", "name", "dataset", "learner", "ways", "shots",
                   "metric", "created", "total_steps")


class _File:
    """An opened, validated session file (shared by the reader and read_summary)."""

    def __init__(self, path):
        self.path = Path(path)
        self.where = f"session file {str(self.path)!r}"
        p = self.path
        if not p.exists():
            raise SessionError(f"{self.where} does not exist")
        if p.is_dir():
            raise SessionError(f"{self.where} is a folder, expected an .h5 session file")
        try:
            self.size = p.stat().st_size
        except OSError as e:
            raise SessionError(f"{self.where} cannot be read: {e.strerror or e}") from None
        if self.size == 0:
            raise SessionError(f"{self.where} is empty (0 bytes), not a session file")
        try:
            is_h5 = h5py.is_hdf5(str(p))
        except Exception as e:
            raise SessionError(f"{self.where} cannot be read: {e}") from None
        if not is_h5:
            raise SessionError(f"{self.where} is not an HDF5 file (no HDF5 signature); session files are HDF5")
        stored_eof = _superblock_eof(p)
        if stored_eof is not None and self.size < stored_eof:
            raise SessionError(f"{self.where} is truncated: {self.size:,} bytes of the {stored_eof:,} its header "
                               f"records (damaged or incompletely copied)")
        try:
            self.f = _open_swmr(p)
            self.swmr = True
        except Exception:
            try:                                       # e.g. an old-format foreign HDF5 file
                self.f = h5py.File(p, "r")
                self.swmr = False
            except Exception as e:
                raise SessionError(f"{self.where} cannot be opened as HDF5 (truncated or damaged?): "
                                   f"{_short(e)}") from None
        try:
            self._check_root()
        except SessionError:
            self.f.close()
            raise
        except Exception as e:      # h5py raises many kinds on damaged metadata
            self.f.close()
            raise SessionError(f"{self.where} is damaged: {_short(e)}") from None

    def _check_root(self):
        a = self.f.attrs
        present = set(a.keys())
        self.root = _read_attrs(self.f, [k for k in ROOT_FAST_ATTRS if k in present])
        if "format" not in present or _attr_text(self.root["format"]) != S.FORMAT:
            raise SessionError(f"{self.where} is an HDF5 file but not a workbench session "
                               f"(no root attribute format = {S.FORMAT!r})")
        v = self.root.get("schema_version")
        if not isinstance(v, (int, np.integer)):
            raise SessionError(f"{self.where} has no valid schema_version attribute (found {v!r})")
        if int(v) > S.SCHEMA_VERSION:
            raise SessionError(f"{self.where} was written with session schema version {int(v)}, newer than "
                               f"this program reads ({S.SCHEMA_VERSION}); update workbench to open it")
        if int(v) < 1:
            raise SessionError(f"{self.where} has an invalid schema_version {int(v)}")
        self.version = int(v)
        for k in S.ROOT_ATTRS:
            if k not in present:
                raise SessionError(f"{self.where} lacks the root attribute {k!r}")
        self.state_ds = self.dataset("state", S.STATE_DTYPE, min_rows=1)
        self.host = _attr_text(self.root["writer_host"])

    def dataset(self, name: str, dtype=None, min_rows: int = 0):
        """The dataset ``name``, checked: a hard link inside the file, a 1-D dataset of ``dtype``."""
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
        obj = self.f[name]
        if not isinstance(obj, h5py.Dataset):
            raise SessionError(f"{self.where}: {name!r} is a group, expected a dataset")
        if dtype is None:
            dtype = S.APPENDABLE[name][0]
        dt = obj.dtype                      # (h5py rebuilds it on every access: read it once)
        if not _same_dtype(dt, np.dtype(dtype)):
            raise SessionError(f"{self.where}: {name!r} has dtype {dt}, expected {np.dtype(dtype)}")
        if obj.ndim != 1:
            raise SessionError(f"{self.where}: {name!r} has shape {obj.shape}, expected one dimension")
        if self.swmr:
            obj.refresh()
        self.check_size(obj, name, dt.itemsize)
        if obj.shape[0] < min_rows:
            raise SessionError(f"{self.where}: {name!r} has {obj.shape[0]} rows, expected at least {min_rows}")
        return obj

    def check_size(self, obj, name, itemsize: int | None = None):
        nbytes = obj.shape[0] * (itemsize if itemsize is not None else obj.dtype.itemsize)
        try:
            size = os.path.getsize(self.path)
        except OSError:
            size = self.size
        if nbytes > 64 * size + (64 << 20):     # generous: filters may compress
            raise SessionError(f"{self.where}: {name!r} claims {obj.shape[0]:,} rows ({nbytes:,} bytes), more "
                               f"than the {size:,}-byte file can hold (damaged)")

    def blob(self, name: str) -> bytes:
        return bytes(self.dataset(name)[:])

    def text(self, name: str) -> str:
        try:
            return self.blob(name).decode("utf-8")
        except UnicodeDecodeError:
            raise SessionError(f"{self.where}: {name!r} is not UTF-8 text") from None

    def json(self, name: str, empty):
        t = self.text(name)
        if not t:
            return empty
        try:
            v = json.loads(t)
        except ValueError:
            raise SessionError(f"{self.where}: {name!r} is not valid JSON") from None
        if not isinstance(v, type(empty)):
            raise SessionError(f"{self.where}: {name!r} holds a {type(v).__name__}, expected a "
                               f"{type(empty).__name__}")
        return v

    def state(self):
        ds = self.state_ds
        if ds.shape == (1,):            # the usual single row: read it without h5py's selection machinery
            arr = np.empty((1,), dtype=S.STATE_DTYPE)
            try:
                ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, arr)
                return arr[0]
            except Exception:
                pass
        return ds[0]

    def close(self):
        try:
            self.f.close()
        except Exception:
            pass


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


def _open_swmr(path: Path) -> h5py.File:
    """Open read-only as an SWMR reader (libver latest), retrying bad metadata reads only
    ``SWMR_READ_ATTEMPTS`` times (about a second) so that a damaged file fails instead of hanging.
    Without access to that setting, files that a plain read-only open accepts are opened plainly
    (no writer holds them), and only files marked open-for-writing are opened as SWMR."""
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
    if lib.H5Pset_metadata_read_attempts(fapl.id, SWMR_READ_ATTEMPTS) < 0:
        raise OSError("cannot limit HDF5 metadata read attempts")
    fid = h5py.h5f.open(os.fsencode(str(path)), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


def _superblock_eof(path: Path) -> int | None:
    """End-of-file address a version 2/3 superblock records (None if not found): a file shorter
    than that is truncated. (HDF5 skips this check for SWMR readers.)"""
    try:
        with open(path, "rb") as fh:
            for base in (0, 512, 1024, 2048, 4096, 8192):
                fh.seek(base)
                head = fh.read(48)
                if head[:8] != b"\x89HDF\r\n\x1a\n":
                    continue
                if head[8] not in (2, 3) or head[9] != 8:
                    return None
                base_addr = int.from_bytes(head[12:20], "little")
                eof = int.from_bytes(head[28:36], "little")
                return base_addr + eof
    except OSError:
        return None
    return None


def _short(e: Exception) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg.splitlines()[0][:200]


def _summary(fl: _File) -> SessionSummary:
    a = fl.root
    st = fl.state()

    def num(k):
        try:
            return int(a[k])
        except (TypeError, ValueError):
            raise SessionError(f"{fl.where}: root attribute {k!r} = {a[k]!r} is not a whole number") from None

    return SessionSummary(
        path=str(fl.path), name=_attr_text(a["name"]), status=live_status(st, fl.host),
        dataset=_attr_text(a["dataset"]), learner=_attr_text(a["learner"]), ways=num("ways"), shots=num("shots"),
        metric=_attr_text(a["metric"]), mean=float(st["final_mean"]), ci95=float(st["final_ci95"]),
        created=_attr_text(a["created"]), ended=_iso(float(st["ended"])), steps_done=int(st["steps_done"]),
        total_steps=num("total_steps"))


def read_summary(path) -> SessionSummary:
    """What the sessions table shows: root attributes and the ``/state`` row only (fast)."""
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
    p = Path(path)
    try:
        created = _iso(p.stat().st_mtime)
    except OSError:
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


class SessionReader:
    """Read-only view of one session file, live or finished. Raises :class:`SessionError`."""

    def __init__(self, path):
        self._fl = _File(path)
        try:
            self.path = self._fl.path
            self._load()
        except SessionError:
            self._fl.close()
            raise
        except Exception as e:
            self._fl.close()
            raise SessionError(f"{self._fl.where} is damaged: {_short(e)}") from None

    # -- loading ------------------------------------------------------------------
    def _load(self):
        fl = self._fl
        a = fl.f.attrs
        self.config_toml = _attr_text(a["config_toml"])
        self.created = _attr_text(a["created"])
        self.metric_kind = _attr_text(a["metric"])
        self.schema_version = fl.version
        self._config = None
        for name in S.APPENDABLE:
            fl.dataset(name)                 # validate every object once
        self._read_state()

    def _read_state(self):
        fl = self._fl
        st = fl.state()
        self._state = st
        self.status = live_status(st, fl.host)
        self.ended = _iso(float(st["ended"]))
        self.steps_done = int(st["steps_done"])
        self.total_steps = int(fl.f.attrs["total_steps"])
        self.resumes = int(st["resumes"])
        self.environment = fl.json("run/environment", {})
        self.split = fl.json("run/split", {})
        self.failure_message = fl.text("run/message")
        self.model_meta = fl.json("model/meta", {})
        names = fl.json("metrics/names", [])
        if len(names) > S.METRIC_SLOTS or not all(isinstance(n, str) for n in names):
            raise SessionError(f"{fl.where}: 'metrics/names' is not a list of at most {S.METRIC_SLOTS} names")
        self._names = names
        self._shapes = self._current_shapes()

    def _current_shapes(self):
        return tuple(self._fl.f[name].shape[0] for name in S.APPENDABLE)

    @property
    def config(self):
        """The run's :class:`~workbench.config.ExperimentConfig` (SessionError if it no longer validates)."""
        if self._config is None:
            from workbench import config as C
            try:
                self._config = C.from_toml(self.config_toml, source=f"the config in {self._fl.where}")
            except C.ConfigError as e:
                raise SessionError(f"{self._fl.where}: its config cannot be used: {e.problems[0]}") from None
        return self._config

    def refresh(self) -> bool:
        """Re-read what a live writer appended since; True if anything changed."""
        fl = self._fl
        before = (self._shapes, self._state.tobytes())
        try:
            if fl.swmr:
                fl.state_ds.refresh()
                for name in S.APPENDABLE:
                    fl.f[name].refresh()
            self._read_state()
        except SessionError:
            raise
        except Exception as e:
            raise SessionError(f"{fl.where} cannot be refreshed: {_short(e)}") from None
        return (self._shapes, self._state.tobytes()) != before

    # -- metrics --------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        return [n for i, n in enumerate(self._names) if self._fl.f[S.slot_name(i)].shape[0]]

    def metric(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps int64, wall_time float64, values float64) of one curve, every recorded point.
        After a resume, rows the resumed run recorded again replace the earlier ones."""
        if name not in self._names:
            raise SessionError(f"{self._fl.where} has no metric {name!r}; it has {', '.join(self._names) or 'none'}")
        ds = self._fl.dataset(S.slot_name(self._names.index(name)))
        rows = ds[:]
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
            return ds[0:0]
        if start < 0 or count < 0 or start + count > ds.shape[0]:
            raise SessionError(f"{self._fl.where}: an evaluation row points at {what} [{start}, {start + count}) "
                               f"outside {name!r} ({ds.shape[0]} values)")
        return ds[start:start + count]

    def evaluations(self, phase: str | None = None) -> list[EvaluationRecord]:
        fl = self._fl
        index = fl.dataset("evaluations/index")[:]
        keep = np.ones(len(index), bool)
        for code in np.unique(index["phase"]):        # after a resume, the re-run evaluations replace the old
            at = np.flatnonzero(index["phase"] == code)
            keep[at] = dedup_steps(index["step"][at].astype(np.int64))
        out = []
        for row in index[keep]:
            code = int(row["phase"])
            ph = S.PHASES[code] if 0 <= code < len(S.PHASES) else "unknown"
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
            except (ValueError, KeyError, TypeError):
                raise SessionError(f"{fl.where}: the labels of the evaluation at step {int(row['step'])} are "
                                   f"damaged") from None
            if len(task_ids) != n or len(families) != n:
                raise SessionError(f"{fl.where}: the evaluation at step {int(row['step'])} has {n} results but "
                                   f"{len(task_ids)} task ids and {len(families)} family labels")
            emb = None
            if d:
                emb = self._slice("evaluations/embeddings", int(row["emb_start"]), n * d, "embeddings").reshape(n, d)
            proj, pm = None, "none"
            if int(row["proj_start"]) >= 0:
                proj = self._slice("evaluations/projection", int(row["proj_start"]), 2 * n, "projection").reshape(n, 2)
                code = int(row["proj_method"])
                pm = S.PROJECTION_METHODS[code] if 0 <= code < len(S.PROJECTION_METHODS) else "unknown"
            out.append(EvaluationRecord(ph, int(row["step"]), float(row["wall_time"]),
                                        str(labels.get("metric", self.metric_kind)), float(row["mean"]),
                                        float(row["ci95"]), float(row["loss_mean"]), per_task.astype(np.float64),
                                        per_loss.astype(np.float64), task_ids, families, emb,
                                        str(labels.get("embedding_method", "none")), proj, pm))
        return out

    def final_test(self) -> EvaluationRecord | None:
        tests = self.evaluations("test")
        return tests[-1] if tests else None

    # -- summary, model, checkpoints, log -------------------------------------------------
    def summary(self) -> SessionSummary:
        return _summary(self._fl)

    def model_bytes(self) -> bytes | None:
        data = self._fl.blob("model/data")
        return data or None

    def checkpoints(self) -> list[tuple[int, float]]:
        """(step, wall_time) of every stored checkpoint (added to the contract)."""
        return [(int(r["step"]), float(r["wall_time"])) for r in self._fl.dataset("checkpoints/index")[:]]

    def checkpoint_bytes(self, i: int = -1) -> tuple[int, bytes] | None:
        """(step, torch.save bytes) of checkpoint ``i`` (default: the last), None if there is none."""
        index = self._fl.dataset("checkpoints/index")[:]
        if not len(index):
            return None
        r = index[i]
        data = bytes(self._slice("checkpoints/data", int(r["start"]), int(r["length"]), "checkpoint bytes"))
        return int(r["step"]), data

    def log(self) -> list[tuple[float, str, str]]:
        """(wall_time, level, message) of every log line (added to the contract)."""
        out = []
        for r in self._fl.dataset("log/index")[:]:
            text = bytes(self._slice("log/text", int(r["start"]), int(r["length"]), "log text"))
            lv = int(r["level"])
            out.append((float(r["wall_time"]), S.LOG_LEVELS[lv] if 0 <= lv < len(S.LOG_LEVELS) else "info",
                        text.decode("utf-8", "replace")))
        return out

    def close(self):
        self._fl.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"SessionReader({str(self.path)!r}, status={self.status!r})"
