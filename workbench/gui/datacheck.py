"""Checking the data source behind the form, in the background.

When the data set, its path, the split or the episode shape (ways, shots, queries) changes,
the form asks :class:`DataChecker` whether the data can feed those episodes: the source is
read (its layout, number of classes, images per class) and split exactly as a run would
(:func:`workbench.data.build_sources`), in a separate process -- reading data imports torch,
which the window process never does -- so that "ways larger than the classes of a split" or
"a CSV given as the Omniglot path" shows under the field within seconds instead of failing the
run later. Decoded images land in the on-disk cache, so the run that follows starts at once.

:func:`probe` is the Qt-free function the child runs; it returns one sentence, or "" when the
data fit, naming fields by their on-screen labels.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import re

from PySide6.QtCore import QObject, QTimer, Signal

from workbench import config as C
from workbench import registry

# which field a data problem belongs under, by the config key its message names
_KEY_FIELDS = ("task.within_group", "task.train_ways", "task.ways", "task.shots", "task.queries", "split.train_fraction",
               "split.val_fraction", "split.method", "data.label_column", "data.group_column")


def labelled(message: str) -> str:
    """``task.ways`` -> ``Ways (N)`` in a message: fields named as the form shows them."""
    def one(m: re.Match) -> str:
        try:
            return C.field_info(m.group(0)).label
        except (KeyError, ValueError):
            return m.group(0)
    return re.sub(r"\b(?:data|split|task|model|learner|embedding|train|eval)\.[a-z_]+\b", one, message)


def field_of(message: str, cfg: C.ExperimentConfig) -> str:
    """The field a data problem is shown under."""
    for key in _KEY_FIELDS:
        if key in message:
            return key
    return "data.path" if registry.datasets.get(cfg.data.dataset).needs_path else "data.dataset"


def check_key(cfg: C.ExperimentConfig) -> tuple | None:
    """What the data check depends on (None: nothing to check, e.g. generated regression tasks)."""
    if cfg.is_regression:
        return None
    d, s, t = cfg.data, cfg.split, cfg.task
    return (d.dataset, d.path, d.image_size, d.rotations, d.label_column, d.group_column, s.method,
            s.train_fraction, s.val_fraction, s.seed, tuple(s.train), tuple(s.val), tuple(s.test), t.ways,
            cfg.train_ways, t.shots, t.queries, t.within_group)


def probe(config_toml: str) -> tuple[str, str]:
    """(field key, problem) for the data of a config, or ("", "") when they fit. Runs in the child."""
    from workbench.data import DataError, build_sources
    cfg = C.from_toml(config_toml, source="form", complete=True)
    try:
        build_sources(cfg)
    except (DataError, OSError, ValueError) as e:
        msg = str(e)
        return field_of(msg, cfg), labelled(msg)
    except Exception as e:  # a loader's own bug: still one sentence under the field, never a traceback
        return field_of("", cfg), f"the data could not be read: {type(e).__name__}: {e}"
    return "", ""


class DataChecker(QObject):
    """Runs :func:`probe` in one reused child process; ``checked(key, field, problem)`` on the UI
    thread. The answer is picked up by a timer of this object (never a signal sent from another
    thread), so a form closed while a check runs simply never hears of it."""

    checked = Signal(object, str, str)
    POLL_MS = 100

    _executor: cf.ProcessPoolExecutor | None = None        # one per window process

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pending = None
        self._future: cf.Future | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(self.POLL_MS)
        self._timer.timeout.connect(self._poll)

    @classmethod
    def executor(cls) -> cf.ProcessPoolExecutor:
        if cls._executor is None:
            # the child ends with this process (a crash, or a test runner's worker leaving with os._exit
            # left it an orphan holding the parent's pipes open)
            import os
            from workbench.procs import exit_with_parent
            cls._executor = cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"),
                                                   initializer=exit_with_parent, initargs=(os.getpid(),))
        return cls._executor

    @classmethod
    def shutdown(cls) -> None:
        ex, cls._executor = cls._executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)

    def submit(self, key, cfg: C.ExperimentConfig) -> None:
        self.pending = key
        try:
            self._future = self.executor().submit(probe, C.to_toml(cfg))
        except (RuntimeError, OSError):           # a broken pool: try a fresh one next time
            DataChecker._executor = None
            self._future = None
            self.checked.emit(key, "", "")
            return
        self._future_key = key
        self._timer.start()

    def _poll(self) -> None:
        fut = self._future
        if fut is None or not fut.done():
            return
        self._timer.stop()
        self._future = None
        try:
            field, problem = fut.result()
        except cf.CancelledError:
            field, problem = "", ""
        except Exception as e:                     # the child died (out of memory, killed)
            DataChecker._executor = None
            field, problem = "data.path", f"the data could not be checked: {type(e).__name__}: {e}"
        self.checked.emit(self._future_key, field, problem)
