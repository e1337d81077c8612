"""Background training: the engine runs outside the UI thread, the UI gets events in batches.

    worker = RunWorker()
    worker.events.connect(on_batch)         # list of events, at most ~20 batches a second
    worker.finished.connect(on_done)        # the run has ended; payload: the terminal event
    worker.start(cfg, session_path)         # records the session through workbench.store.record
    worker.stop()                           # cooperative: the engine ends within one meta-step

By default the engine runs in a child process (:class:`workbench.train.host.EngineHost`,
started when the window opens and reused between runs): painting plots is Python
work that would otherwise take the GIL from a training thread (measured: a UI
thread busy 20% of the time slowed a training thread by a third). The child
records the session and sends events back through a multiprocessing queue. With
an injected ``engine_run`` (tests) or ``WORKBENCH_RUN_IN_THREAD=1`` the engine
runs in a thread of this process instead.

In the thread mode, the thread (a plain ``threading.Thread``) only iterates the engine's
generator -- ``record(run(cfg, cancel=flag.is_set), path, cfg)`` -- and puts each
event on a ``queue.Queue``. A QTimer on the UI thread drains the queue every
50 ms and emits one ``events`` signal per non-empty drain, so no widget is ever
touched from the worker and the UI sees at most 20 updates a second however
fast the engine yields. Checkpoint events (bytes for resuming) are written to
the session by the recorder but not forwarded to the UI.

Stopping sets a ``threading.Event`` that the engine polls before every
meta-step and every evaluation episode; the recorder then finalises the
session as "cancelled". :meth:`wait` joins the thread, so closing the window
leaves nothing running.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.train import events as E
from workbench.train.host import JOB_DONE, READY, EngineHost

DRAIN_INTERVAL_MS = 50          # => at most 20 batches a second reach the UI


_warmed = threading.Event()


def warm_up() -> None:
    """Import, in the background and once, what this process itself will need for a run's
    panels (scikit-learn's t-SNE for the embedding map) while the user looks at the form.
    The engine's own imports (torch) happen in the engine process (:meth:`RunWorker.warm`);
    importing torch here as well would only make the two compete for the CPU at start-up."""
    if _warmed.is_set():
        return
    _warmed.set()

    def work():
        try:
            import sklearn.manifold  # noqa: F401  (t-SNE of the embedding map)
        except Exception:
            pass  # a failed warm-up only means the first map takes longer

    threading.Thread(target=work, name="workbench-warm-up", daemon=True).start()


class _Done:
    """Sentinel put on the queue when the worker thread ends."""


class RunWorker(QObject):
    """Runs one experiment at a time -- in the engine process, or in a thread when an engine is
    injected -- and forwards its events to the UI thread in batches."""

    started = Signal(object)           # session path (pathlib.Path) or None when not recorded
    events = Signal(list)              # a batch of engine events, in order
    finished = Signal(object)          # the terminal event (RunFinished/RunFailed/RunCancelled) or None

    def __init__(self, parent=None, *, engine_run=None):
        super().__init__(parent)
        self._engine_run = engine_run      # injectable for tests; default workbench.train.engine.run
        self.in_process = engine_run is None and os.environ.get("WORKBENCH_RUN_IN_THREAD", "") != "1"
        self.host = EngineHost() if self.in_process else None
        self._host_job = False             # a job was submitted to the host and has not reported JOB_DONE
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._terminal = None
        self.session_path: Path | None = None
        self.batches_delivered = 0
        self.events_delivered = 0
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_INTERVAL_MS)
        self._timer.timeout.connect(self._drain)

    # -- control ------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._thread is not None or self._host_job

    def warm(self):
        """Start the engine process now, so that Run starts training at once."""
        if self.host is not None:
            self.host.start()

    def start(self, cfg, session_path: str | Path | None = None):
        """Start training ``cfg``; record the session to ``session_path`` when the store exists."""
        if self.is_running():
            raise RuntimeError("a run is already in progress; stop it before starting another")
        self._cancel.clear()
        self._terminal = None
        self._queue = queue.Queue()
        from workbench.store import record as store_record
        record = store_record if session_path is not None else None
        self.session_path = Path(session_path) if record is not None else None
        if self.host is not None:
            from workbench import config as C
            self.host.submit(C.to_toml(cfg), str(self.session_path) if self.session_path else None)
            self._host_job = True
            self._timer.start()
            self.started.emit(self.session_path)
            return
        self._thread = threading.Thread(target=self._work, args=(cfg, record, self.session_path, self._queue),
                                        name="workbench-run", daemon=True)
        self._thread.start()
        self._timer.start()
        self.started.emit(self.session_path)

    def stop(self):
        """Ask the run to stop; it ends within one meta-step with RunCancelled."""
        self._cancel.set()
        if self.host is not None:
            self.host.stop_run()

    def shutdown(self, timeout: float = 10.0):
        """Stop any run and end the engine process (closing the window)."""
        self.stop()
        self.wait(timeout)
        if self.host is not None:
            self.host.shutdown()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end (the engine process's job, or the thread) and deliver what it
        left; True when it has ended."""
        if self._host_job:
            deadline = None if timeout is None else time.perf_counter() + timeout
            while self._host_job:
                if deadline is not None and time.perf_counter() > deadline:
                    return False
                self._drain()
                if self._host_job:
                    time.sleep(0.01)
            return True
        t = self._thread
        if t is not None:
            t.join(timeout)
            if t.is_alive():
                return False
        while self._thread is not None:
            self._drain()
        return True

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    # -- the worker thread (no Qt objects touched here) ---------------------------------
    def _work(self, cfg, record, path, q: queue.Queue):
        from workbench.train.engine import run
        engine_run = self._engine_run or run
        try:
            events = engine_run(cfg, cancel=self._cancel.is_set)
            if record is not None:
                events = record(events, path, cfg)
            for ev in events:
                if isinstance(ev, E.Checkpoint):
                    continue
                q.put(ev)
        except Exception as e:  # the engine turns its own errors into RunFailed; this catches the recorder
            q.put(E.RunFailed(0, 0.0, f"the session could not be recorded: {type(e).__name__}: {e}",
                              traceback.format_exc()))
        finally:
            q.put(_Done)

    # -- the UI thread ------------------------------------------------------------------
    def _next_from_host(self):
        """The next event from the engine process, _Done at the end of a job, or None."""
        try:
            ev = self.host.events.get_nowait()
        except queue.Empty:
            if not self.host.alive():
                # the process died (killed, out of memory) without saying how the run ended
                code = self.host.process.exitcode if self.host.process is not None else None
                self.host.process = None
                if self._terminal is None:
                    return E.RunFailed(0, 0.0, f"the training process stopped unexpectedly (exit code {code}); "
                                               "the session keeps what was recorded until then")
                return _Done
            return None
        except (OSError, ValueError, EOFError):
            return _Done
        if ev == READY:
            return self._next_from_host()
        if ev == JOB_DONE:
            return _Done
        return ev

    def _drain(self):
        batch, done = [], False
        deadline = time.perf_counter() + 0.02      # never hold the UI thread long, even after a burst
        while time.perf_counter() < deadline:
            if self._host_job:
                ev = self._next_from_host()
                if ev is None:
                    break
            else:
                try:
                    ev = self._queue.get_nowait()
                except queue.Empty:
                    break
            if ev is _Done:
                done = True
                break
            batch.append(ev)
            if isinstance(ev, E.TERMINAL):
                self._terminal = ev
        if batch:
            self.batches_delivered += 1
            self.events_delivered += len(batch)
            self.events.emit(batch)
        if done:
            self._timer.stop()
            self._host_job = False
            if self._thread is not None:
                self._thread.join()
                self._thread = None
            self.finished.emit(self._terminal)
