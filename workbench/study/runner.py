"""Running a study: every planned run as an ordinary session file, on a local pool or on Ray.

    rec = create_record(load_study("study.toml"))
    run_study(rec, backend="local", workers=None, on_update=print)
    ...                                   # killed? stopped?
    resume_study(rec.path)                # finished runs are kept, the others continue or start

Each run goes through the recorder ``workbench run`` uses (:func:`workbench.store.recorder_for_cli`)
or, to continue an interrupted one from its last checkpoint, the store's resume
(:func:`workbench.store.cli.resume_events`, what ``workbench resume`` does). Nothing finished is
run again: the session files are the truth about which runs are done.

Backends:

- ``local``: a pool of worker processes (forkserver on Linux, spawn elsewhere); ``workers``
  defaults to the usable cores divided by each run's torch threads (:func:`threads_per_run`).
  A worker whose parent dies (``kill -9`` of the study) stops within a second, leaving an
  interrupted session that ``resume`` continues.
- ``ray``: each run a Ray task (``num_cpus`` = its torch threads) on the cluster at ``address``
  (``"auto"``, ``"ray://head:10001"``, ``"host:6379"``), or on a local Ray instance started here when
  ``address`` is None. Session files are written by the workers straight into the study's sessions
  folder, which must therefore be storage every node can reach (docs/ray.md).

Progress reaches ``on_update`` as :class:`StudyUpdate` events, read from the growing session files
(HDF5 SWMR), so both backends report the same way. ``cancel()`` returning True stops the study: runs
in progress end as "cancelled" (resumable from their last checkpoint), queued runs stay "planned".
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from workbench.config import Problem
from workbench.procs import exit_with_parent
from workbench.study.definition import StudyError
from workbench.study.record import DONE, StudyRecord, open_record

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class StudyUpdate:
    """What one run is doing: ``status`` (planned, queued, running, finished, failed, cancelled,
    interrupted), ``step`` of ``total_steps``, the ``metric`` name and its latest value ``mean``
    (the final test mean once finished, else the last validation mean, nan before any)."""

    run_id: str
    status: str
    step: int
    total_steps: int
    metric: str
    mean: float
    session_path: str
    message: str = ""


def _err(msg: str) -> StudyError:
    return StudyError([Problem("", msg, msg)])


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_run(cfg) -> int:
    """Torch CPU threads one run uses: ``train.threads`` when set, one for MLPs (the engine's
    :func:`workbench.train.engine.cpu_threads` rule), else up to 4 for convolutions."""
    from workbench import config as C
    if cfg.train.threads:
        return int(cfg.train.threads)
    return 1 if C.resolved_backbone(cfg) == "mlp" else min(4, usable_cores())


def default_workers(record: StudyRecord, todo: int | None = None) -> int:
    """Cores / torch threads per run, at most one worker per run left to do."""
    base = record.definition().base
    n = max(1, usable_cores() // threads_per_run(base))
    left = todo if todo is not None else sum(r.status not in DONE for r in record.runs)
    return max(1, min(n, left or 1))


# --------------------------------------------------------------------------
# one run (in a worker process)
# --------------------------------------------------------------------------
_CANCEL = None          # the pool's shared cancel event, set in each worker by _init_worker


def _init_worker(cancel_event, parent_pid: int):
    global _CANCEL
    _CANCEL = cancel_event
    import signal
    # Ctrl-C reaches the whole process group: the launcher turns it into the shared cancel event, so the
    # runs end cooperatively within a step ("cancelled", weights kept) instead of dying mid-write
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # the study was killed: stop, leaving an interrupted session (the parent pid is the forkserver's
    # under forkserver, so the launcher's pid is watched too)
    exit_with_parent(parent_pid, code=3)


def execute_run(job: dict) -> dict:
    """Run (or resume) one planned run into its session file; returns its outcome as a dict.

    ``job``: run_id, config_toml, session, mode ("start" or "resume"), threads."""
    from argparse import Namespace

    from workbench import config as C
    from workbench.store import SessionError, recorder_for_cli
    from workbench.train import events as E

    path = Path(job["session"])
    out = {"run_id": job["run_id"], "status": "failed", "mean": math.nan, "ci95": math.nan, "metric": "",
           "message": "", "pid": os.getpid()}
    cancel = (lambda: _CANCEL.is_set()) if _CANCEL is not None else None
    try:
        import torch
        threads = int(job.get("threads") or 0)
        if threads:
            torch.set_num_threads(threads)
        if job["mode"] == "resume":
            from workbench.store.cli import resume_events
            events = resume_events(path, cancel=cancel)
        else:
            cfg = C.from_toml(job["config_toml"], source=f"the config of {job['run_id']}")
            from workbench.train.engine import run
            recorder = recorder_for_cli(cfg, Namespace(session=str(path)))
            events = recorder.record(run(cfg, cancel=cancel), cancel=cancel)
        for ev in events:
            if isinstance(ev, E.RunFinished):
                s = ev.summary
                out.update(status="finished", mean=float(s["mean"]), ci95=float(s["ci95"]), metric=s["metric"])
            elif isinstance(ev, E.RunFailed):
                out.update(status="failed", message=ev.message)
            elif isinstance(ev, E.RunCancelled):
                out.update(status="cancelled")
    except KeyboardInterrupt:
        out.update(status="cancelled", message="interrupted")
    except (SessionError, C.ConfigError) as e:
        out.update(status="failed", message=str(e))
    except SystemExit as e:             # recorder_for_cli's refusal (a session file already there)
        out.update(status="failed", message=f"the session file could not be created (exit {e.code})")
    except Exception as e:  # a worker must hand back an outcome, not a traceback
        out.update(status="failed", message=f"{type(e).__name__}: {e}")
    return out


# --------------------------------------------------------------------------
# the study loop (in the launching process)
# --------------------------------------------------------------------------
class _Lock:
    """One launcher per study: an exclusive lock on ``<folder>/study.lock`` (freed by the OS when the
    launching process dies, however it dies)."""

    def __init__(self, folder: Path):
        self.path = folder / "study.lock"
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "a+")
        try:
            import fcntl
        except ImportError:             # Windows: no advisory lock; the session files' own checks remain
            return self
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            raise _err(f"the study in {str(self.path.parent)!r} is being run by another process; wait for it "
                       f"or stop it first") from None
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()


def _jobs(record: StudyRecord, threads: int, retry_failed: bool = False) -> list[dict]:
    """The runs to do, each to start or to resume; stale files (no checkpoint to resume from) are moved
    aside so that a run starts afresh into its own name."""
    from workbench.store import SessionError, SessionReader
    from workbench.study.definition import plan
    configs = {r.run_id: r.config for r in plan(record.definition())}
    jobs = []
    for r in record.runs:
        if r.status == "finished" or (r.status == "failed" and not retry_failed):
            continue
        if r.run_id not in configs:
            raise _err(f"run {r.run_id} of the record is not in its definition; the record is damaged")
        p = record.session_path(r)
        mode = "start"
        if p.exists():
            try:
                with SessionReader(p) as rd:
                    status = rd.status
                    has_ck = bool(rd.checkpoints())
            except SessionError:
                status, has_ck = "damaged", False
            if status == "running":
                raise _err(f"run {r.run_id} is being written by a live process ({p}); is the study running "
                           f"elsewhere?")
            if has_ck and status != "failed":
                mode = "resume"
            else:
                _move_aside(p)
        from workbench import config as C
        jobs.append({"run_id": r.run_id, "config_toml": C.to_toml(configs[r.run_id]), "session": str(p),
                     "mode": mode, "threads": threads})
    return jobs


def _move_aside(p: Path) -> None:
    i = 1
    while (q := p.with_name(f"{p.name}.stale-{i}")).exists():
        i += 1
    os.replace(p, q)


class _Progress:
    """StudyUpdates from the session files of the runs in flight."""

    VAL_EVERY_S = 3.0

    def __init__(self, record: StudyRecord, on_update):
        self.record, self.on_update = record, on_update
        self.last: dict[str, StudyUpdate] = {}
        self.total = {r.run_id: 0 for r in record.runs}
        self.metric = record.metric or "accuracy"
        self.val: dict[str, float] = {}
        self.val_read: dict[str, float] = {}
        try:
            self.validates = record.definition().base.train.eval_every > 0
        except StudyError:
            self.validates = False

    def emit(self, u: StudyUpdate):
        if self.on_update is None or self.last.get(u.run_id) == u:
            return
        self.last[u.run_id] = u
        try:
            self.on_update(u)
        except Exception as e:  # a listener's bug must not stop the study
            print(f"workbench study: the progress listener failed: {type(e).__name__}: {e}", file=sys.stderr)
            self.on_update = None

    def entry(self, r, status: str, mean=math.nan, message: str = ""):
        p = self.record.session_path(r)
        step = total = 0
        if p.exists():
            from workbench.store import SessionError, read_summary
            try:
                s = read_summary(p)
                step, total = s.steps_done, s.total_steps
            except SessionError:
                pass
        self.emit(StudyUpdate(r.run_id, status, step, total, self.metric,
                              mean if mean is not None else math.nan, str(p), message))

    def poll(self, run_ids):
        """Step and status from each file's summary (a few ms); the latest validation value, which needs
        the full reader, at most every ``VAL_EVERY_S`` seconds per run and only if the runs validate."""
        from workbench.store import SessionError, SessionReader, read_summary
        now = time.monotonic()
        for rid in run_ids:
            r = self.record.run(rid)
            p = self.record.session_path(r)
            if not p.exists():
                continue
            try:
                s = read_summary(p)
            except SessionError:
                continue
            if s.status != "running":
                continue
            self.metric = s.metric or self.metric
            mean = self.val.get(rid, math.nan)
            if self.validates and now - self.val_read.get(rid, -1e9) > self.VAL_EVERY_S:
                self.val_read[rid] = now
                try:
                    with SessionReader(p) as rd:
                        name = f"val/{rd.metric_kind}"
                        if name in rd.metric_names():
                            vals = rd.metric(name)[2]
                            if len(vals):
                                mean = self.val[rid] = float(vals[-1])
                except SessionError:
                    pass
            self.total[rid] = s.total_steps
            self.emit(StudyUpdate(rid, "running", s.steps_done, s.total_steps, self.metric, mean, str(p)))


def run_study(record: StudyRecord, backend: str = "local", workers: int | None = None, address: str | None = None,
              on_update: Callable[[StudyUpdate], None] | None = None, cancel: Callable[[], bool] | None = None,
              *, threads: int | None = None, retry_failed: bool = False, poll_s: float = 1.0) -> StudyRecord:
    """Run every run of ``record`` that is not done yet; returns the record, refreshed and saved.

    Failed runs are kept as they are (same config and seed fail the same way); ``retry_failed`` moves
    their session files aside (``<run>.h5.stale-<n>``) and runs them again from the start.

    Raises :class:`StudyError` (one sentence) for a bad backend, Ray missing or unreachable, or a study
    already being run by another process."""
    if backend not in BACKENDS:
        raise _err(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise _err(f"workers = {workers!r}: must be a whole number of at least 1")
    cancel = cancel or (lambda: False)
    with _Lock(record.folder):
        for tmp in record.folder.glob(".study.json.*.tmp"):      # left by a launcher killed mid-save
            tmp.unlink(missing_ok=True)
        record.refresh()
        record.backend = backend
        record.save()
        th = threads or threads_per_run(record.definition().base)
        jobs = _jobs(record, th, retry_failed)
        prog = _Progress(record, on_update)
        for r in record.runs:
            st = r.status if r.status in DONE else "queued"
            prog.entry(r, st, r.mean, r.message)
        try:
            if jobs:
                n = workers or default_workers(record, len(jobs))
                if backend == "local":
                    _run_local(record, jobs, n, prog, cancel, poll_s)
                else:
                    _run_ray(record, jobs, n, th, address, prog, cancel, poll_s)
        finally:                        # stopped by Ctrl-C or an error too: the record says where runs are
            record.refresh()
            record.save()
    return record


def _finish(record: StudyRecord, prog: _Progress, out: dict):
    r = record.run(out["run_id"])
    record.refresh()
    if r.status in ("running", "planned"):      # the file says nothing yet (e.g. never created)
        r.status = out["status"]
    if out.get("message") and r.status == "failed":
        r.message = out["message"]
    record.save()
    prog.entry(r, r.status, r.mean if r.mean is not None else out.get("mean", math.nan), r.message)


def _started(record: StudyRecord, job: dict):
    r = record.run(job["run_id"])
    r.attempts += 1
    r.status = "running"
    record.save()


def _run_local(record, jobs, n, prog, cancel, poll_s):
    import concurrent.futures as cf
    import multiprocessing as mp
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        # the fork server imports torch, the engine and what runs import lazily once (workbench.study._warm);
        # every worker forks from it with them loaded (single-threaded: torch starts no threads at import)
        ctx.set_forkserver_preload(["workbench.study._warm"])
    else:
        ctx = mp.get_context("spawn")
    stop = ctx.Event()
    ex = cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker,
                                initargs=(stop, os.getpid()))
    pending = {}
    queue = list(jobs)
    try:
        while queue or pending:
            while queue and len(pending) < n and not stop.is_set():     # submit no more than can run now
                job = queue.pop(0)
                _started(record, job)
                try:
                    pending[ex.submit(execute_run, job)] = job
                except cf.process.BrokenProcessPool:
                    raise _err("the local pool's worker processes died (out of memory, or killed); the "
                               "study can be resumed with 'workbench study resume'") from None
            if not pending:
                break
            done, _ = cf.wait(list(pending), timeout=poll_s, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                try:
                    out = fut.result()
                except Exception as e:  # a worker that died (e.g. killed): its session says how far it got
                    out = {"run_id": job["run_id"], "status": "interrupted", "message": f"worker lost: {e}"}
                _finish(record, prog, out)
            prog.poll([j["run_id"] for j in pending.values()])
            if cancel() and not stop.is_set():
                stop.set()
                queue.clear()
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _connect_ray(address: str | None, n: int):
    try:
        import ray
    except ImportError:
        raise _err("the ray backend needs Ray, which is not installed here: "
                   "pip install 'meta-learning-workbench[ray]'") from None
    if ray.is_initialized():
        return ray, False
    kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address and (why := _unreachable(address)):
        raise _err(f"cannot connect to the Ray cluster at {address!r}: {why}. Check the address (ray status on "
                   f"the head node prints it) and that this machine can reach it; or leave --address out to "
                   f"start a local Ray instance.")
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=n, **kw)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError... for one cause
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = (" Check the address (ray status on the head node prints it) and that this machine can reach "
                "it; or leave --address out to start a local Ray instance." if address else "")
        raise _err(f"cannot connect to {where}: {first[:300].rstrip('.')}.{hint}") from None
    return ray, True


def _unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at a ``host:port`` or ``ray://host:port`` address (None if something does, or
    for ``auto``, which Ray resolves itself). Ray's own connect retries for minutes before giving up."""
    import socket
    a = address.strip()
    if a in ("auto", "local"):
        return None
    hostport = a.split("://", 1)[1] if "://" in a else a
    hostport = hostport.split("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return f"expected host:port, ray://host:port or auto, got {address!r}"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as e:
        return f"nothing answers at {host}:{port} ({e.strerror or type(e).__name__})"


def _run_ray(record, jobs, n, threads, address, prog, cancel, poll_s):
    ray, started = _connect_ray(address, n)
    pending = {}
    try:
        task = ray.remote(num_cpus=threads, max_retries=0)(execute_run)
        for job in jobs:
            _started(record, job)
            pending[task.remote(job)] = job
        cancelled = False
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as e:  # a task cancelled or lost with its node
                    out = {"run_id": job["run_id"], "status": "cancelled" if cancelled else "interrupted",
                           "message": f"{type(e).__name__}"}
                _finish(record, prog, out)
            prog.poll([j["run_id"] for j in pending.values()])
            if cancel() and not cancelled:
                cancelled = True
                for ref in pending:
                    ray.cancel(ref)
    except KeyboardInterrupt:           # Ctrl-C: the tasks get a KeyboardInterrupt, their sessions end "cancelled"
        for ref in pending:
            ray.cancel(ref)
        try:
            ray.wait(list(pending), num_returns=len(pending), timeout=30)
        except Exception:  # the cluster may be gone already; the sessions say how far each run got
            pass
        raise
    finally:
        if started:
            ray.shutdown()


def resume_study(path, backend: str = "local", **kw) -> StudyRecord:
    """Continue the study whose record is ``path`` (``study.json`` or its folder): finished runs are
    kept, interrupted runs resume from their last checkpoint, unstarted runs start."""
    return run_study(open_record(path), backend, **kw)
