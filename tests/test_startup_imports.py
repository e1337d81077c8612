"""The window process never loads torch at start-up: the form, the registry (built-in learners and
their option sections), validation and the main window's modules are torch-free; torch loads in the
engine process and on demand. Checked in a fresh interpreter, where nothing else has imported it."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import sys
from workbench import config as C, registry
C.schema()
C.validate(C.default_config())
for name in registry.learners.names():
    C.validate(C.replace(C.default_config(), validate_values=False, **{"learner.name": name}))
from PySide6.QtWidgets import QApplication
app = QApplication([])
from workbench.gui.form import ExperimentForm
form = ExperimentForm(C.default_config())
import workbench.gui.main_window
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def test_window_modules_and_the_form_do_not_import_torch():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
