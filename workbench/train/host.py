"""An engine host: a child process that runs experiments and sends their events back.

The window trains in a separate process rather than a thread of its own: a
meta-step of a small model is mostly Python, and any Python work on the UI
thread (painting plots, drawing the map) competes with it for the GIL. Measured
on this 2-core machine, a UI thread doing 1 ms of Python every 5 ms slowed a
training thread by a third; in its own process the engine keeps its speed and
the window stays responsive.

Protocol (multiprocessing queues, plain picklable data only):

- parent -> child ``jobs``: ``(config_toml, session_path_or_None)``, or ``None`` to quit;
- child -> parent ``events``: engine events (``Checkpoint`` events stay in the
  session file; model bytes are stripped from terminal events, the session file
  holds them), then the string ``JOB_DONE`` after each job;
- ``cancel``: a shared event the engine polls before every meta-step and
  evaluation episode.

No Qt here: the GUI's worker drains ``events`` on a timer.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import traceback

JOB_DONE = "__workbench_job_done__"
READY = "__workbench_host_ready__"


def _strip(ev):
    from workbench.train import events as E
    if isinstance(ev, (E.RunFinished, E.RunCancelled)) and ev.model_state:
        return dataclasses.replace(ev, model_state=b"")
    return ev


def serve(jobs, events, cancel) -> None:
    """The child's main loop: import the engine once, then run jobs until told to quit (or until the
    window's process is gone: :func:`workbench.procs.exit_with_parent`)."""
    import os
    from workbench.procs import exit_with_parent
    exit_with_parent(os.getppid())
    from workbench import config as C
    from workbench.train import events as E
    from workbench.train.engine import run
    from workbench.store import record
    events.put(READY)
    while True:
        job = jobs.get()
        if job is None:
            return
        config_toml, path = job
        try:
            cfg = C.from_toml(config_toml)
            evs = run(cfg, cancel=cancel.is_set)
            if path is not None and record is not None:
                evs = record(evs, path, cfg, cancel=cancel.is_set)     # a cancel also skips the final map
            for ev in evs:
                if isinstance(ev, E.Checkpoint):
                    continue
                events.put(_strip(ev))
        except BaseException as e:  # noqa: BLE001 - the parent must always hear how a job ended
            events.put(E.RunFailed(0, 0.0, f"the training process failed: {type(e).__name__}: {e}",
                                   traceback.format_exc()))
        finally:
            events.put(JOB_DONE)


class EngineHost:
    """The parent's handle on one engine child process (started on demand, reused between runs)."""

    def __init__(self):
        self._ctx = mp.get_context("spawn")
        self.process = None
        self.jobs = self.events = self.cancel = None

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def start(self) -> None:
        """Start the child (imports take a few seconds; call early, e.g. when the window opens)."""
        if self.alive():
            return
        self.jobs, self.events, self.cancel = self._ctx.Queue(), self._ctx.Queue(), self._ctx.Event()
        self.process = self._ctx.Process(target=serve, args=(self.jobs, self.events, self.cancel),
                                         name="workbench-engine", daemon=True)
        self.process.start()

    def submit(self, config_toml: str, session_path: str | None) -> None:
        self.start()
        self.cancel.clear()
        self.jobs.put((config_toml, session_path))

    def stop_run(self) -> None:
        if self.cancel is not None:
            self.cancel.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop any run, ask the child to quit, and make sure it has ended."""
        if self.process is None:
            return
        self.stop_run()
        try:
            self.jobs.put(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        for q in (self.jobs, self.events):
            try:
                q.cancel_join_thread()
                q.close()
            except (OSError, ValueError):
                pass
        self.process = None
