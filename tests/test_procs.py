"""Child processes end with their parent (workbench/procs.py): the window's engine process and the
form's data-check process, when the process that started them dies without cleaning up (a crash, or a
test runner's worker leaving with os._exit), do not live on as orphans holding its pipes open."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PARENTS = {
    "engine": """
from workbench.train.host import EngineHost
h = EngineHost(); h.start()
print(h.process.pid, flush=True)
""",
    "datacheck": """
import os
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from workbench.gui.datacheck import DataChecker
ex = DataChecker.executor()
ex.submit(os.getpid).result(timeout=60)
print(next(iter(ex._processes)), flush=True)
""",
}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie waiting for its (re)parent to reap it counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(os.name != "posix", reason="parent-death detection by pid (POSIX)")
@pytest.mark.parametrize("kind", sorted(PARENTS))
def test_a_child_ends_when_its_parent_dies_without_cleaning_up(kind):
    code = "import sys\nsys.path.insert(0, %r)\n" % str(REPO) + PARENTS[kind] + \
           "import time; time.sleep(1)\nimport os; os._exit(0)\n"        # no atexit, no shutdown
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    child = int(parent.stdout.readline())
    assert not _gone(child)                                           # the child was running
    parent.wait(timeout=60)
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not _gone(child):
        os.kill(child, 9)
        pytest.fail(f"the {kind} child {child} outlived its parent by 10 s")
