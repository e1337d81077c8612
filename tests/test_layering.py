"""The layering rules of docs/architecture.md, enforced: only workbench.gui imports Qt
or pyqtgraph, and the engine layers never import the GUI (import-linter contracts in
pyproject.toml). Also checked by importing the engine in a process with Qt blocked."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    from importlinter.cli import lint_imports
    import os
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)
    finally:
        os.chdir(cwd)
    assert code == 0, "an import contract is broken: see the import-linter report above"


def test_engine_runs_with_qt_unimportable():
    code = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6'):
            raise ImportError('Qt is blocked in this test: ' + name)
sys.meta_path.insert(0, Block())
from workbench import config as C
from workbench.train.engine import run
cfg = C.replace(C.default_config(), **{'train.steps': 3, 'train.eval_every': 0, 'eval.episodes': 5})
kinds = [type(e).__name__ for e in run(cfg)]
assert kinds[-1] == 'RunFinished', kinds
import workbench.store, workbench.analysis, workbench.embeddings, workbench.cli
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
