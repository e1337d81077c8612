"""Recording a run: :class:`SessionWriter` turns engine events into one HDF5 session file.

    with SessionWriter(path, cfg) as w:
        for event in run(cfg):
            w.write(event)

or, passing the events on unchanged to another listener::

    for event in record(run(cfg), path, cfg):
        ...

The file is written under HDF5 SWMR, so another process can read it while it
grows (:class:`workbench.store.reader.SessionReader`). ``write`` only buffers
metric rows in memory and writes the rarer, bigger events (evaluations,
checkpoints, the model) straight into their datasets; a background thread
flushes every :data:`~workbench.store.schema.HEARTBEAT_S` seconds and stamps a
heartbeat into ``/state``, so rows reach the disk within a second of their
event and a reader can tell a live writer (fresh heartbeat, live pid) from a
dead one (see ``docs/session-format.md``). A writer killed with SIGKILL leaves
a file that opens, holding everything up to its last flush.

A write that fails (a full disk, a removed folder) stops the writer for good:
it raises :class:`SessionError` with one sentence, closes the file without
touching it further, and :func:`record` ends the run with a ``RunFailed``
event saying so. A checkpoint's bytes are flushed before its index row is
written, and the row carries their CRC-32, so a checkpoint counts only once
its bytes are complete.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import socket
import threading
import time
import weakref
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator

import h5py
import numpy as np

import workbench
from workbench import config as C
from workbench.store import schema as S
from workbench.store.liveness import process_start_ticks  # noqa: F401  (re-exported)
from workbench.store.schema import SessionError
from workbench.train import events as E

_OPEN_WRITERS: "weakref.WeakSet[SessionWriter]" = weakref.WeakSet()
_BROKEN_FILES: list = []          # h5py objects of writers stopped by a failed write (see _abandon)


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def _text(s) -> bytes:
    """UTF-8 bytes of event text; anything not encodable (lone surrogates) is escaped, never a crash."""
    return str(s).encode("utf-8", "backslashreplace")


def _json_bytes(obj) -> bytes:
    return _text(json.dumps(obj, default=str, ensure_ascii=False))


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be a root attribute of a session file (None if it can)."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    return None


def _why(e: BaseException) -> str:
    if "No space left" in str(e) or "errno = 28" in str(e) or getattr(e, "errno", None) == 28:
        return "no space left on the device"
    if isinstance(e, OSError) and e.errno is not None and e.strerror:
        return e.strerror
    msg = str(e).strip().splitlines()
    return (msg[0] if msg else type(e).__name__)[:200]


class SessionWriter:
    """Writes one session file under SWMR. A context manager; ``close`` finalises it."""

    RESERVE_BYTES = 256 << 10        # free space kept on the disk so that the file can always be finalised

    def __init__(self, path, cfg: C.ExperimentConfig, *, projection: str = "tsne", chunk_scale: float = 1.0,
                 cancel: Callable[[], bool] | None = None, _reopen: bool = False):
        """``projection``: how the final test's task embeddings are mapped to 2-D at close
        ("tsne", "pca", "umap", or "none" to skip). ``chunk_scale`` scales the HDF5 chunk sizes
        (not part of the format; small values make tiny files, e.g. the golden test files).
        ``cancel``: polled while the projection runs at close; when it turns true the projection
        is skipped so that a cancel acts at once."""
        if projection not in S.PROJECTION_METHODS:
            raise ValueError(f"projection {projection!r} is not one of {', '.join(S.PROJECTION_METHODS)}")
        self.path = Path(path)
        self.where = f"session file {str(self.path)!r}"
        self.cfg = cfg
        self.projection = projection
        self.chunk_scale = chunk_scale
        self.cancel = cancel or (lambda: False)
        self._lock = threading.RLock()
        self._pending: dict[int, list] = {}
        self._terminal: str | None = None
        self._closed = False
        self._broken: str | None = None
        self._low_space: str | None = None
        self._last_flush = 0.0
        self._test_row: int | None = None
        self._f = self._open_existing() if _reopen else self._create()
        try:
            self._ds = {name: self._f[name] for name in self.layout}
            self._state_ds = self._f["state"]
            if not _reopen:
                self._state = self._state_ds[0:1].copy()
            self._names: list[str] = json.loads(bytes(self._ds["metrics/names"][:]).decode("utf-8") or "[]")
            self._flush_locked(check=False)
        except SessionError:
            self._abandon()
            raise
        except Exception as e:
            self._abandon()
            raise SessionError(f"{self.where} cannot be written: {_why(e)}") from None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name=f"session-writer {self.path.name}", daemon=True)
        self._thread.start()
        _OPEN_WRITERS.add(self)

    # -- creating / reopening ---------------------------------------------------
    def _root_attrs(self, now: float) -> dict:
        cfg = self.cfg
        a = {"format": S.FORMAT, "schema_version": np.int64(S.SCHEMA_VERSION),
             "program_version": workbench.__version__, "created": _iso(now), "name": cfg.name,
             "dataset": cfg.data.dataset, "learner": cfg.learner.name,
             "ways": np.int64(1 if cfg.is_regression else cfg.task.ways), "shots": np.int64(cfg.task.shots),
             "queries": np.int64(cfg.task.queries), "metric": "mse" if cfg.is_regression else "accuracy",
             "total_steps": np.int64(cfg.train.steps), "seed": np.int64(cfg.train.seed),
             "writer_host": socket.gethostname(), "config_toml": C.to_toml(cfg)}
        for k, v in a.items():
            if isinstance(v, str) and (why := text_problem(v)):
                what = {"config_toml": "the config"}.get(k, f"the {k} {v[:40]!r}")
                raise SessionError(f"{self.where} cannot be created: {what} {why}")
        a[S.ATTRS_CRC] = np.int64(S.attrs_crc(a))
        return a

    def _create(self) -> h5py.File:
        self.version = S.SCHEMA_VERSION
        self.layout = S.appendable(self.version)
        if os.path.lexists(self.path):
            raise SessionError(f"{self.where} already exists; choose a new file name")
        now = time.time()
        attrs = self._root_attrs(now)        # (refuses bad text before anything is created)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._check_space(64 << 10)
            except SessionError:
                raise SessionError(f"{self.where} cannot be created: its disk is (nearly) full") from None
            f = h5py.File(self.path, "w-", libver="latest")
        except (OSError, ValueError) as e:
            raise SessionError(f"{self.where} cannot be created: {_why(e)}") from None
        try:
            for k, v in attrs.items():
                f.attrs[k] = v
            for g in S.GROUPS:
                f.create_group(g)
            for name, (dtype, chunk) in self.layout.items():
                kw = {"fillvalue": S.fill_row(dtype)} if name in S.FILLED else {}
                f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, fletcher32=True,
                                 chunks=(max(1, int(chunk * self.chunk_scale)),), **kw)
            f.create_dataset(S.NOTES, shape=(0,), maxshape=(None,), dtype=np.uint8, fletcher32=True, chunks=(256,))
            f["metrics"].attrs["slots"] = np.int64(S.METRIC_SLOTS)
            state = np.zeros(1, S.STATE_DTYPE)
            state["status"] = S.STATUS_CODE["running"]
            state["created"] = now
            state["ended"] = np.nan
            state["heartbeat"] = now
            state["final_mean"] = state["final_ci95"] = np.nan
            self._stamp_writer(state)
            f.create_dataset("state", data=state, maxshape=(None,), chunks=(1,), fletcher32=True)
            self._put_blob_raw(f["metrics/names"], b"[]")
            f.swmr_mode = True
        except Exception as e:
            try:
                f.close()
            except Exception:
                pass
            self.path.unlink(missing_ok=True)      # never leave a half-made file behind
            raise SessionError(f"{self.where} cannot be created: {_why(e)}") from None
        return f

    def _stamp_writer(self, state):
        state["pid"] = os.getpid()
        state["pid_start"] = process_start_ticks(os.getpid())
        state["heartbeat"] = time.time()

    def _open_existing(self) -> h5py.File:
        """Reopen a session for resuming. Everything is checked before anything changes: the file
        is validated and read in full by the reader (storage, links, dtypes, checksums), then
        opened for writing and switched to SWMR, and only then is its state row rewritten.

        A file left by a killed writer still carries HDF5's "open for writing" flag, and a file
        edited with h5py's default settings may refuse SWMR writing; both are first copied,
        object by object, into a fresh file that then replaces it (same path; the original stays
        as it was if anything fails)."""
        from workbench.store.reader import SessionReader
        with SessionReader(self.path) as r:
            r.verify()
            self.version = r.schema_version
            if r.status == "running":
                raise SessionError(f"{self.where} is still being written by a live process")
        self.layout = S.appendable(self.version)
        f = None
        try:
            f = h5py.File(self.path, "r+", libver="latest")
            f.swmr_mode = True
        except (OSError, ValueError, RuntimeError):
            if f is not None:
                try:
                    f.close()
                except Exception:
                    pass
            f = None
        if f is None:
            self._rewrite_copy()
            try:
                f = h5py.File(self.path, "r+", libver="latest")
                f.swmr_mode = True
            except (OSError, ValueError, RuntimeError) as e:
                raise SessionError(f"{self.where} cannot be reopened for resuming: {_why(e)}") from None
        try:
            st = f["state"][0:1].copy()
            st["status"] = S.STATUS_CODE["running"]
            st["ended"] = np.nan
            st["resumes"] += 1
            st["final_mean"] = st["final_ci95"] = np.nan
            st["final_episodes"] = 0
            last = []
            for i in range(S.METRIC_SLOTS):
                ds = f[S.slot_name(i)]
                if len(ds):
                    row = ds[-1]
                    if row["step"] >= 0 and np.isfinite(row["wall_time"]):
                        last.append(float(row["wall_time"]))
            st["wall_offset"] = max(last, default=0.0)
            self._stamp_writer(st)
            self._state = st
            f["state"][0:1] = st
        except Exception as e:
            f.close()
            raise SessionError(f"{self.where} cannot be reopened for resuming: {_why(e)}") from None
        return f

    def _rewrite_copy(self):
        tmp = self.path.with_name(f".{self.path.name}.resume-{os.getpid()}.tmp")
        try:
            with h5py.File(self.path, "r", libver="latest", swmr=True) as src, \
                    h5py.File(tmp, "w", libver="latest") as dst:
                for k, v in src.attrs.items():
                    dst.attrs[k] = v
                for k in src:
                    src.copy(src[k], dst, name=k)
            os.replace(tmp, self.path)
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise SessionError(f"{self.where} cannot be reopened for resuming: {_why(e)}") from None

    # -- low-level appends (call with the lock held) ------------------------------
    @staticmethod
    def _append(ds, rows) -> int:
        n = len(ds)
        if len(rows):
            ds.resize((n + len(rows),))
            ds[n:] = rows
        return n

    @staticmethod
    def _put_blob_raw(ds, data: bytes):
        ds.resize((len(data),))
        if data:
            ds[:] = np.frombuffer(data, np.uint8)

    def _put_blob(self, name: str, data: bytes):
        self._put_blob_raw(self._ds[name], data)

    def _slot(self, name: str) -> int | None:
        if name in self._names:
            return self._names.index(name)
        if len(self._names) >= S.METRIC_SLOTS:
            return None              # more curves than slots: dropped (a warning goes to the log once)
        self._names.append(name)
        self._put_blob("metrics/names", _json_bytes(self._names))
        return len(self._names) - 1

    def _add_metric(self, name: str, step: int, wall: float, value: float):
        slot = self._slot(name)
        if slot is None:
            if not getattr(self, "_warned_slots", False):
                self._warned_slots = True
                self._log("warning", f"more than {S.METRIC_SLOTS} metric curves; {name!r} is not recorded", wall)
            return
        self._pending.setdefault(slot, []).append((step, wall, value))

    def _log(self, level: str, message: str, wall: float):
        data = _text(message)
        start = self._append(self._ds["log/text"], np.frombuffer(data, np.uint8))
        row = np.array([(wall, S.LOG_LEVELS.index(level) if level in S.LOG_LEVELS else 0, start, len(data))],
                       S.LOG_DTYPE)
        self._append(self._ds["log/index"], row)

    def _flush_locked(self, check: bool = True):
        if check and not self._terminal:
            self._check_space(sum(len(r) for r in self._pending.values()) * S.METRIC_DTYPE.itemsize)
        for slot, rows in self._pending.items():
            if rows:
                self._append(self._ds[S.slot_name(slot)], np.array(rows, S.METRIC_DTYPE))
        self._pending.clear()
        self._state["heartbeat"] = time.time()
        self._state_ds[0:1] = self._state
        self._f.flush()
        self._last_flush = time.monotonic()

    def _fail(self, e: BaseException) -> SessionError:
        """A write failed: stop for good, let go of the file, and say so in one sentence."""
        if self._broken is None:
            self._broken = (f"{self.where} cannot be written ({_why(e)}); the run is stopped and the session "
                            f"keeps what was written before (free some space, then 'workbench resume' it)")
            self._abandon()
        return SessionError(self._broken)

    def _abandon(self):
        """Let go of the HDF5 file after a failed write. Closing it would make HDF5 flush again into
        the failing file (HDF5 2.0 then crashed the process with SIGSEGV when it freed the file, measured
        on a full tmpfs), so the file's descriptor is first pointed at /dev/null: what reached the disk
        before the failure stays as it is, a readable file (as after a kill) that a resume repairs."""
        self._closed = True
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        f = getattr(self, "_f", None)
        if f is not None:
            try:
                fd = f.id.get_vfd_handle()
                null = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(null, fd)
                finally:
                    os.close(null)
            except Exception:
                pass
            try:
                f.close()
            except Exception:
                _BROKEN_FILES.append(f)         # (never freed: freeing retries the flush)
        _OPEN_WRITERS.discard(self)

    def _check_space(self, nbytes: int = 0):
        """SessionError before the disk is full: a write of ``nbytes`` must leave ``RESERVE_BYTES``
        free, so that the file can still be finalised properly (status failed, with the reason)."""
        try:
            st = os.statvfs(self.path.parent)
        except (OSError, AttributeError):
            return
        free = st.f_bavail * st.f_frsize
        if free < nbytes + self.RESERVE_BYTES:
            self._low_space = (f"{self.where} cannot be written further: {free // 1024:,} KiB are left on its "
                               f"disk; the run is stopped and the session keeps everything up to here (free some "
                               f"space, then 'workbench resume' it)")
            raise SessionError(self._low_space)

    def _heartbeat(self):
        while not self._stop.wait(S.HEARTBEAT_S):
            with self._lock:
                if self._closed:
                    return
                try:
                    self._flush_locked()
                except SessionError:       # low on space: the next write() says so; nothing is lost
                    continue
                except Exception as e:     # a failed write: the next write() reports it
                    self._fail(e)
                    return

    # -- public API ---------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            if self._broken:
                raise SessionError(self._broken)
            if not self._closed:
                try:
                    self._flush_locked()
                except Exception as e:
                    raise self._fail(e) from None

    def write(self, event) -> None:
        """Record one engine event (unknown event types are ignored). SessionError if the file
        cannot be written (a failed write stops the writer; low disk space stops the run, and the
        file can still be finalised with the failure, see :func:`record`)."""
        with self._lock:
            if self._broken:
                raise SessionError(self._broken)
            if self._closed:
                raise SessionError(f"{self.where} is closed; no more events can be written")
            try:
                if not isinstance(event, (E.RunFailed, E.Log)):
                    self._check_space(_event_bytes(event))
                self._write_locked(event)
            except SessionError:
                raise
            except Exception as e:
                raise self._fail(e) from None

    def _write_locked(self, event):
        off = float(self._state["wall_offset"][0])
        wall = float(getattr(event, "wall_time", 0.0)) + off
        if isinstance(event, E.StepMetrics):
            for name, value in event.metrics.items():
                self._add_metric(str(name), int(event.step), wall, float(value))
            self._state["steps_done"] = int(event.step)
        elif isinstance(event, E.Evaluation):
            self._write_evaluation(event, wall)
        elif isinstance(event, E.Checkpoint):
            raw = bytes(event.state)
            self._flush_locked()        # the curves up to here first: a resume from it leaves no gap
            start = self._append(self._ds["checkpoints/data"], np.frombuffer(raw, np.uint8))
            self._f.flush()             # the bytes reach the disk before the row that makes them count
            if self.version >= 2:
                row = (event.step, wall, start, len(raw), zlib.crc32(raw))
            else:
                row = (event.step, wall, start, len(raw))
            self._append(self._ds["checkpoints/index"], np.array([row], self._ds["checkpoints/index"].dtype))
            self._state["steps_done"] = max(int(self._state["steps_done"][0]), int(event.step))
        elif isinstance(event, E.Log):
            self._log(event.level, event.message, wall)
        elif isinstance(event, E.RunStarted):
            self._put_blob("run/environment", _json_bytes(event.environment))
            self._put_blob("run/split", _json_bytes(event.split))
            if "run/config_used" in self._ds:               # version 1 files only
                self._put_blob("run/config_used", _text(event.config_toml))
            self._put_blob("run/message", b"")          # a resumed run starts with no failure
            self._state["start_step"] = int(event.start_step)
            self._state["steps_done"] = int(event.start_step)
        elif isinstance(event, E.RunFinished):
            s = event.summary or {}
            self._state["final_mean"] = float(s.get("mean", np.nan))
            self._state["final_ci95"] = float(s.get("ci95", np.nan))
            self._state["final_episodes"] = int(s.get("episodes", 0))
            self._state["steps_done"] = int(event.step)
            self._write_model(event.model_state, event.model_meta)
            self._terminal = "finished"
        elif isinstance(event, E.RunFailed):
            self._put_blob("run/message", _text(event.message))
            if event.detail:
                self._log("error", event.detail, wall)
            self._terminal = "failed"
        elif isinstance(event, E.RunCancelled):
            self._write_model(event.model_state, event.model_meta)
            self._terminal = "cancelled"
        if time.monotonic() - self._last_flush > 1.0:   # the thread normally does this; belt and braces
            self._flush_locked()

    def _write_model(self, data: bytes, meta: dict):
        if data:
            data = bytes(data)
            meta = dict(meta or {})
            if self.version >= 2:       # the config is stored once, in the root attribute config_toml
                meta.pop("config_toml", None)
                meta["length"], meta["crc32"] = len(data), zlib.crc32(data)
            self._put_blob("model/data", data)
            self._f.flush()
            self._put_blob("model/meta", _json_bytes(meta))

    def _write_evaluation(self, ev, wall: float):
        ds = self._ds
        per_task = np.asarray(ev.per_task, np.float64).reshape(-1)
        n = len(per_task)
        task_start = self._append(ds["evaluations/per_task"], per_task)
        self._append(ds["evaluations/per_task_loss"], np.asarray(ev.per_task_loss, np.float64).reshape(-1))
        emb_start, emb_dim = -1, 0
        if ev.embeddings is not None and np.size(ev.embeddings):
            emb = np.asarray(ev.embeddings, np.float32).reshape(n, -1)
            emb_dim = emb.shape[1]
            emb_start = self._append(ds["evaluations/embeddings"], emb.reshape(-1))
        labels = _json_bytes({"task_ids": [str(t) for t in ev.task_ids], "families": [str(t) for t in ev.families],
                              "metric": ev.metric, "embedding_method": ev.embedding_method})
        label_start = self._append(ds["evaluations/labels"], np.frombuffer(labels, np.uint8))
        phase = S.PHASES.index(ev.phase) if ev.phase in S.PHASES else 0
        row = np.array([(ev.step, wall, phase, ev.mean, ev.ci95, ev.loss_mean, task_start, n, emb_start, emb_dim,
                         -1, 0, label_start, len(labels))], S.EVAL_DTYPE)
        r = self._append(ds["evaluations/index"], row)
        if ev.phase == "val":
            self._add_metric(f"val/{ev.metric}", int(ev.step), wall, float(ev.mean))
            self._add_metric("val/loss", int(ev.step), wall, float(ev.loss_mean))
        elif ev.phase == "test" and emb_dim:
            self._test_row = r

    def _project_final_test(self):
        """The 2-D map of the final test's task embeddings, computed in a helper thread while the
        heartbeat keeps beating; abandoned (with a log line) as soon as ``cancel`` turns true."""
        with self._lock:
            r = self._test_row
            self._test_row = None               # projected at most once, even if a close is interrupted
            if r is None or self.projection == "none" or self._broken:
                return
            row = self._ds["evaluations/index"][r]
            n, d, start = int(row["n_tasks"]), int(row["emb_dim"]), int(row["emb_start"])
            emb = self._ds["evaluations/embeddings"][start:start + n * d].reshape(n, d)
        from workbench.analysis.projection import project
        x = np.nan_to_num(emb.astype(np.float64))
        method = self.projection
        if method != "pca" and (n < 4 or np.allclose(x, x[0])):
            method = "pca"                                             # project() falls back to PCA there
        out: dict = {}

        def work():
            try:
                out["xy"] = project(emb, method, seed=self.cfg.eval.seed)
            except Exception as e:  # a failed projection must not lose the session
                out["error"] = e

        t = threading.Thread(target=work, name="session-projection", daemon=True)
        t.start()
        while t.is_alive():
            t.join(0.05)
            if t.is_alive() and self.cancel():
                with self._lock:
                    self._log("warning", "the 2-D map of the final test was skipped (cancelled)", 0.0)
                return
        with self._lock:
            if "error" in out:
                self._log("warning", f"the {method} projection of the final test failed: {out['error']}", 0.0)
                return
            start = self._append(self._ds["evaluations/projection"], np.asarray(out["xy"], np.float32).reshape(-1))
            row["proj_start"] = start
            row["proj_method"] = S.PROJECTION_METHODS.index(method)
            self._ds["evaluations/index"][r] = row

    def close(self, status: str | None = None) -> None:
        """Finalise: the terminal event's status wins, else ``status``, else "interrupted".
        A writer stopped by a failed write has already let go of its file: nothing more happens."""
        if self._closed:
            return
        final = self._terminal or status or "interrupted"
        if final not in S.STATUS_CODE:
            raise ValueError(f"status {status!r} is not one of {', '.join(S.STATUSES)}")
        try:
            if final == "finished":
                self._project_final_test()
        except Exception as e:
            self._fail(e)
            return
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            if self._closed:
                return
            try:
                self._state["status"] = S.STATUS_CODE[final]
                self._state["ended"] = time.time()
                self._flush_locked(check=False)
                self._closed = True
                self._f.close()
            except Exception as e:
                self._fail(e)
                return
        _OPEN_WRITERS.discard(self)

    @property
    def status(self) -> str:
        return "closed" if self._closed else "running"

    @property
    def failure(self) -> str | None:
        """The sentence of the write failure that stopped this writer, or None."""
        return self._broken

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(None if exc_type is None else ("cancelled" if exc_type is KeyboardInterrupt else "failed"))
        return False

    @classmethod
    def reopen(cls, path, cfg: C.ExperimentConfig, **kw) -> "SessionWriter":
        """Reopen an ended or interrupted session to append a resumed run to it (checked first)."""
        return cls(path, cfg, _reopen=True, **kw)


@atexit.register
def _close_open_writers():      # a program that forgets to close still leaves a finalised file
    for w in list(_OPEN_WRITERS):
        try:
            w.close("interrupted")
        except Exception:
            pass


TERMINAL = (E.RunFinished, E.RunFailed, E.RunCancelled)


def _event_bytes(ev) -> int:
    """About how many bytes an event adds to the file."""
    if isinstance(ev, E.Checkpoint):
        return len(ev.state)
    if isinstance(ev, (E.RunFinished, E.RunCancelled)):
        return len(ev.model_state or b"")
    if isinstance(ev, E.Evaluation):
        n = len(ev.per_task)
        return n * 16 + (np.size(ev.embeddings) * 4 if ev.embeddings is not None else 0) + n * 64
    return 0


def record(events: Iterable, path, cfg: C.ExperimentConfig, **writer_options) -> Iterator:
    """Yield every event of ``events`` unchanged while writing it to a session file at ``path``.

    The file is finalised *before* the terminal event is passed on, so whoever prints "finished"
    does so when the file is final. If the consumer stops early (``GeneratorExit``) the status is
    "cancelled", if the events raise, "failed" (a terminal event seen before wins in both cases).
    If the file cannot be written (a full disk) the run is stopped and a ``RunFailed`` event
    saying so ends the events. ``writer_options`` go to :class:`SessionWriter` (e.g.
    ``projection="pca"``, ``cancel=flag.is_set``); ``path`` may be an open writer."""
    writer = path if isinstance(path, SessionWriter) else SessionWriter(path, cfg, **writer_options)
    status = "failed"
    step, wall = 0, 0.0
    try:
        for ev in events:
            step = int(getattr(ev, "step", step) or step)
            wall = float(getattr(ev, "wall_time", wall) or wall)
            if writer.status == "closed":       # after the terminal event: pass on, nothing to record
                yield ev
                continue
            try:
                writer.write(ev)
                if isinstance(ev, TERMINAL):
                    writer.close()
                    if writer.failure:
                        raise SessionError(writer.failure)
            except SessionError as e:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
                failed = E.RunFailed(step, wall, str(e), "")
                if writer.status != "closed":      # low on space: the file is sound, finalise it as failed
                    try:
                        writer.write(failed)
                    except SessionError:
                        pass
                yield failed
                return
            yield ev
        status = None
    except GeneratorExit:
        status = "cancelled"
        close = getattr(events, "close", None)
        if close is not None:
            close()
        raise
    except KeyboardInterrupt:       # Ctrl-C in `workbench run` is a cancel, not a failure
        status = "cancelled"
        raise
    finally:
        writer.close(status)


__all__ = ["SessionWriter", "record", "process_start_ticks", "text_problem"]
