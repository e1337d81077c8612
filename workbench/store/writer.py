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
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

import workbench
from workbench import config as C
from workbench.store import schema as S
from workbench.store.schema import SessionError
from workbench.train import events as E

_OPEN_WRITERS: "weakref.WeakSet[SessionWriter]" = weakref.WeakSet()


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


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


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, default=str, ensure_ascii=False).encode("utf-8")


class SessionWriter:
    """Writes one session file under SWMR. A context manager; ``close`` finalises it."""

    def __init__(self, path, cfg: C.ExperimentConfig, *, projection: str = "tsne", chunk_scale: float = 1.0,
                 _reopen: bool = False):
        """``projection``: how the final test's task embeddings are mapped to 2-D at close
        ("tsne", "pca", "umap", or "none" to skip). ``chunk_scale`` scales the HDF5 chunk sizes
        (not part of the format; small values make tiny files, e.g. the golden test files)."""
        if projection not in S.PROJECTION_METHODS:
            raise ValueError(f"projection {projection!r} is not one of {', '.join(S.PROJECTION_METHODS)}")
        self.path = Path(path)
        self.cfg = cfg
        self.projection = projection
        self.chunk_scale = chunk_scale
        self._lock = threading.RLock()
        self._pending: dict[int, list] = {}
        self._terminal: str | None = None
        self._closed = False
        self._last_flush = 0.0
        self._test_row: int | None = None
        if _reopen:
            self._f = self._open_existing()
        else:
            self._f = self._create()
        self._ds = {name: self._f[name] for name in S.APPENDABLE}
        self._state_ds = self._f["state"]
        self._state = self._state_ds[0:1].copy()
        self._names: list[str] = json.loads(bytes(self._ds["metrics/names"][:]).decode("utf-8") or "[]")
        self._f.swmr_mode = True
        self._flush_locked()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name=f"session-writer {self.path.name}", daemon=True)
        self._thread.start()
        _OPEN_WRITERS.add(self)

    # -- creating / reopening ---------------------------------------------------
    def _create(self) -> h5py.File:
        if self.path.exists():
            raise SessionError(f"session file {str(self.path)!r} already exists; choose a new file name")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = h5py.File(self.path, "w-", libver="latest")
        except (OSError, ValueError) as e:
            raise SessionError(f"session file {str(self.path)!r} cannot be created: {e}") from None
        cfg = self.cfg
        now = time.time()
        a = f.attrs
        a["format"] = S.FORMAT
        a["schema_version"] = np.int64(S.SCHEMA_VERSION)
        a["program_version"] = workbench.__version__
        a["created"] = _iso(now)
        a["name"] = cfg.name
        a["dataset"] = cfg.data.dataset
        a["learner"] = cfg.learner.name
        a["ways"] = np.int64(1 if cfg.is_regression else cfg.task.ways)
        a["shots"] = np.int64(cfg.task.shots)
        a["queries"] = np.int64(cfg.task.queries)
        a["metric"] = "mse" if cfg.is_regression else "accuracy"
        a["total_steps"] = np.int64(cfg.train.steps)
        a["seed"] = np.int64(cfg.train.seed)
        a["writer_host"] = socket.gethostname()
        a["config_toml"] = C.to_toml(cfg)
        for g in S.GROUPS:
            f.create_group(g)
        for fi in C.schema():        # the config, structured: one attribute per field
            v = cfg.get(fi.key)
            f["config"].attrs[fi.key] = json.dumps(v) if isinstance(v, list) else v
        for name, (dtype, chunk) in S.APPENDABLE.items():
            f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                             chunks=(max(1, int(chunk * self.chunk_scale)),))
        f["metrics"].attrs["slots"] = np.int64(S.METRIC_SLOTS)
        state = np.zeros(1, S.STATE_DTYPE)
        state["status"] = S.STATUS_CODE["running"]
        state["created"] = now
        state["ended"] = np.nan
        state["heartbeat"] = now
        state["final_mean"] = state["final_ci95"] = np.nan
        self._stamp_writer(state)
        f.create_dataset("state", data=state, maxshape=(None,), chunks=(1,))
        self._put_blob_raw(f["metrics/names"], b"[]")
        return f

    def _stamp_writer(self, state):
        state["pid"] = os.getpid()
        state["pid_start"] = process_start_ticks(os.getpid())
        state["heartbeat"] = time.time()

    def _open_existing(self) -> h5py.File:
        """Reopen a session for resuming. A file left by a killed writer still carries HDF5's
        "open for writing" flag and cannot be reopened for writing, so it is first copied,
        object by object, into a fresh file that then replaces it (same path)."""
        try:
            f = h5py.File(self.path, "r+", libver="latest")
        except OSError:
            tmp = self.path.with_name(self.path.name + ".resume-tmp")
            try:
                with h5py.File(self.path, "r", libver="latest", swmr=True) as src, \
                        h5py.File(tmp, "w", libver="latest") as dst:
                    for k, v in src.attrs.items():
                        dst.attrs[k] = v
                    for k in src:
                        src.copy(src[k], dst, name=k)
                os.replace(tmp, self.path)
            except (OSError, KeyError) as e:
                tmp.unlink(missing_ok=True)
                raise SessionError(f"session file {str(self.path)!r} cannot be reopened for resuming: {e}") from None
            f = h5py.File(self.path, "r+", libver="latest")
        st = f["state"][0:1].copy()
        st["status"] = S.STATUS_CODE["running"]
        st["ended"] = np.nan
        st["resumes"] += 1
        st["final_mean"] = st["final_ci95"] = np.nan
        st["final_episodes"] = 0
        last = [f[S.slot_name(i)][-1]["wall_time"] for i in range(S.METRIC_SLOTS) if len(f[S.slot_name(i)])]
        st["wall_offset"] = max(last, default=0.0)
        self._stamp_writer(st)
        f["state"][0:1] = st
        return f

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
        data = message.encode("utf-8")
        start = self._append(self._ds["log/text"], np.frombuffer(data, np.uint8))
        row = np.array([(wall, S.LOG_LEVELS.index(level) if level in S.LOG_LEVELS else 0, start, len(data))],
                       S.LOG_DTYPE)
        self._append(self._ds["log/index"], row)

    def _flush_locked(self):
        for slot, rows in self._pending.items():
            if rows:
                self._append(self._ds[S.slot_name(slot)], np.array(rows, S.METRIC_DTYPE))
        self._pending.clear()
        self._state["heartbeat"] = time.time()
        self._state_ds[0:1] = self._state
        self._f.flush()
        self._last_flush = time.monotonic()

    def _heartbeat(self):
        while not self._stop.wait(S.HEARTBEAT_S):
            with self._lock:
                if self._closed:
                    return
                self._flush_locked()

    # -- public API ---------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def write(self, event) -> None:
        """Record one engine event (unknown event types are ignored)."""
        with self._lock:
            if self._closed:
                raise SessionError(f"session file {str(self.path)!r} is closed; no more events can be written")
            off = float(self._state["wall_offset"][0])
            wall = float(getattr(event, "wall_time", 0.0)) + off
            if isinstance(event, E.StepMetrics):
                for name, value in event.metrics.items():
                    self._add_metric(name, int(event.step), wall, float(value))
                self._state["steps_done"] = int(event.step)
            elif isinstance(event, E.Evaluation):
                self._write_evaluation(event, wall)
            elif isinstance(event, E.Checkpoint):
                data = np.frombuffer(event.state, np.uint8)
                start = self._append(self._ds["checkpoints/data"], data)
                self._append(self._ds["checkpoints/index"],
                             np.array([(event.step, wall, start, len(data))], S.CHECKPOINT_DTYPE))
                self._state["steps_done"] = max(int(self._state["steps_done"][0]), int(event.step))
            elif isinstance(event, E.Log):
                self._log(event.level, event.message, wall)
            elif isinstance(event, E.RunStarted):
                self._put_blob("run/environment", _json_bytes(event.environment))
                self._put_blob("run/split", _json_bytes(event.split))
                self._put_blob("run/config_used", event.config_toml.encode("utf-8"))
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
                self._put_blob("run/message", event.message.encode("utf-8"))
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
            self._put_blob("model/data", bytes(data))
            self._put_blob("model/meta", _json_bytes(meta or {}))

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
        """The 2-D t-SNE map of the final test's task embeddings (the heartbeat keeps beating meanwhile)."""
        with self._lock:
            r = self._test_row
            if r is None or self.projection == "none":
                return
            row = self._ds["evaluations/index"][r]
            n, d, start = int(row["n_tasks"]), int(row["emb_dim"]), int(row["emb_start"])
            emb = self._ds["evaluations/embeddings"][start:start + n * d].reshape(n, d)
        from workbench.analysis.projection import project
        x = np.nan_to_num(emb.astype(np.float64))
        method = self.projection
        if method != "pca" and (n < 4 or np.allclose(x, x[0])):
            method = "pca"                                             # project() falls back to PCA there
        try:
            xy = project(emb, method, seed=self.cfg.eval.seed)
        except Exception as e:  # a failed projection must not lose the session
            with self._lock:
                self._log("warning", f"the t-SNE projection of the final test failed: {e}", 0.0)
            return
        with self._lock:
            start = self._append(self._ds["evaluations/projection"], np.asarray(xy, np.float32).reshape(-1))
            row["proj_start"] = start
            row["proj_method"] = S.PROJECTION_METHODS.index(method)
            self._ds["evaluations/index"][r] = row
            self._test_row = None

    def close(self, status: str | None = None) -> None:
        """Finalise: the terminal event's status wins, else ``status``, else "interrupted"."""
        if self._closed:
            return
        final = self._terminal or status or "interrupted"
        if final not in S.STATUS_CODE:
            raise ValueError(f"status {status!r} is not one of {', '.join(S.STATUSES)}")
        if final == "finished":
            self._project_final_test()
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            if self._closed:
                return
            self._state["status"] = S.STATUS_CODE[final]
            self._state["ended"] = time.time()
            self._flush_locked()
            self._closed = True
            self._f.close()
        _OPEN_WRITERS.discard(self)

    @property
    def status(self) -> str:
        return "closed" if self._closed else "running"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(None if exc_type is None else ("cancelled" if exc_type is KeyboardInterrupt else "failed"))
        return False

    @classmethod
    def reopen(cls, path, cfg: C.ExperimentConfig, **kw) -> "SessionWriter":
        """Reopen an ended or interrupted session to append a resumed run to it."""
        return cls(path, cfg, _reopen=True, **kw)


@atexit.register
def _close_open_writers():      # a program that forgets to close still leaves a finalised file
    for w in list(_OPEN_WRITERS):
        try:
            w.close("interrupted")
        except Exception:
            pass


def record(events: Iterable, path, cfg: C.ExperimentConfig, **writer_options) -> Iterator:
    """Yield every event of ``events`` unchanged while writing it to a session file at ``path``.

    The file is finalised when the events end; if the consumer stops early
    (``GeneratorExit``) the status is "cancelled", if the events raise, "failed"
    (a terminal event seen before wins in both cases). ``writer_options`` go to
    :class:`SessionWriter` (e.g. ``projection="pca"``); ``path`` may be an open writer."""
    writer = path if isinstance(path, SessionWriter) else SessionWriter(path, cfg, **writer_options)
    status = "failed"
    try:
        for ev in events:
            writer.write(ev)
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


class CliRecorder:
    """What ``workbench run`` uses: a session path and ``record(events)``."""

    def __init__(self, cfg, path: Path, *, resume: bool = False):
        self.cfg, self.path, self.resume = cfg, Path(path), resume

    def record(self, events):
        if self.resume:
            return record(events, SessionWriter.reopen(self.path, self.cfg), self.cfg)
        return record(events, self.path, self.cfg)


def recorder_for_cli(cfg, args) -> CliRecorder:
    """The recorder of ``workbench run``: ``--session FILE`` or a new file in the workspace."""
    from workbench.store.workspace import new_session_path
    name = getattr(args, "session", None)
    try:
        if name:
            p = Path(name).expanduser()
            if p.suffix != ".h5":
                p = p.with_name(p.name + ".h5")
            if p.exists():
                raise SessionError(f"session file {str(p)!r} already exists; choose a new file name "
                                   f"(or 'workbench resume {p}' to continue it)")
        else:
            p = new_session_path(cfg)
    except SessionError as e:
        import sys
        print(f"workbench run: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return CliRecorder(cfg, p)


__all__ = ["SessionWriter", "record", "recorder_for_cli", "CliRecorder", "process_start_ticks"]
