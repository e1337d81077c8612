"""Background training: the engine runs in a worker thread, the UI gets events in batches.

    worker = RunWorker()
    worker.events.connect(on_batch)         # list of events, at most ~20 batches a second
    worker.finished.connect(on_done)        # the thread has ended; payload: the terminal event
    worker.start(cfg, session_path)         # records through workbench.store.record when present
    worker.stop()                           # cooperative: the engine ends within one meta-step

The thread (a plain ``threading.Thread``) only iterates the engine's
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

import queue
import threading
import time
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.train import events as E

DRAIN_INTERVAL_MS = 50          # => at most 20 batches a second reach the UI


def store_recorder():
    """``workbench.store.record`` when the session store is installed, else None."""
    try:
        from workbench.store import record
    except ImportError:
        return None
    return record


_warmed = threading.Event()


def warm_up() -> None:
    """Import the engine's heavy dependencies (torch, its optimisers, scikit-learn) in the
    background once, while the user looks at the form, so that Run starts training at once."""
    if _warmed.is_set():
        return
    _warmed.set()

    def work():
        try:
            import sklearn.manifold  # noqa: F401  (t-SNE of the embedding map)
            import torch
            import workbench.train.engine  # noqa: F401
            torch.optim.Adam([torch.zeros(1, requires_grad=True)])   # imports torch._dynamo
        except Exception:
            pass  # a failed warm-up only means the first run starts slower

    threading.Thread(target=work, name="workbench-warm-up", daemon=True).start()


class _Done:
    """Sentinel put on the queue when the worker thread ends."""


class RunWorker(QObject):
    """Runs one experiment at a time in a worker thread and forwards its events in batches."""

    started = Signal(object)           # session path (pathlib.Path) or None when not recorded
    events = Signal(list)              # a batch of engine events, in order
    finished = Signal(object)          # the terminal event (RunFinished/RunFailed/RunCancelled) or None

    def __init__(self, parent=None, *, engine_run=None):
        super().__init__(parent)
        self._engine_run = engine_run      # injectable for the benchmark; default workbench.train.engine.run
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
        return self._thread is not None

    def start(self, cfg, session_path: str | Path | None = None):
        """Start training ``cfg``; record the session to ``session_path`` when the store exists."""
        if self._thread is not None:
            raise RuntimeError("a run is already in progress; stop it before starting another")
        self._cancel.clear()
        self._terminal = None
        self._queue = queue.Queue()
        record = store_recorder() if session_path is not None else None
        self.session_path = Path(session_path) if record is not None else None
        self._thread = threading.Thread(target=self._work, args=(cfg, record, self.session_path, self._queue),
                                        name="workbench-run", daemon=True)
        self._thread.start()
        self._timer.start()
        self.started.emit(self.session_path)

    def stop(self):
        """Ask the run to stop; it ends within one meta-step with RunCancelled."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Join the worker thread (and deliver what it left); True when it has ended."""
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
    def _drain(self):
        batch, done = [], False
        deadline = time.perf_counter() + 0.02      # never hold the UI thread long, even after a burst
        while time.perf_counter() < deadline:
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
            if self._thread is not None:
                self._thread.join()
                self._thread = None
            self.finished.emit(self._terminal)
