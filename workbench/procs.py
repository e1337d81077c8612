"""Child processes that end with their parent.

A worker blocked on a queue never notices that the process which started it died (killed, or a test
runner's worker leaving with ``os._exit``): it lives on, an orphan holding the parent's pipes open.
:func:`exit_with_parent`, called first thing in a child, starts a daemon thread that ends the child
when its parent is gone. Used by the window's engine process (:mod:`workbench.train.host`), the form's
data check (:mod:`workbench.gui.datacheck`) and a study's run workers (:mod:`workbench.study.runner`).
Torch- and Qt-free.
"""

from __future__ import annotations

import os
import threading
import time


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on Windows: always True; the parent-pid check alone applies)."""
    if os.name != "posix":          # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def exit_with_parent(parent_pid: int | None = None, code: int = 3, every_s: float = 0.5) -> None:
    """End this process with exit code ``code`` once its parent is gone: its parent pid changes (it
    was re-parented), or ``parent_pid`` (the launcher's, where a fork server stands between) no longer
    exists. Checked every ``every_s`` seconds on a daemon thread."""
    first_parent = os.getppid()

    def watch():
        while True:
            time.sleep(every_s)
            if os.getppid() != first_parent or (parent_pid is not None and not alive(parent_pid)):
                os._exit(code)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
