"""Build hook: ship ``resources/`` inside the package as ``workbench/_resources``.

Everything else about the package lives in pyproject.toml. A non-editable build
(``pip install .``, ``python -m build``) copies the repository's ``resources/``
folder (presets, icons, style sheets, the .desktop template) into the built
package, where :mod:`workbench.resources` finds it. Editable installs read
``resources/`` straight from the checkout, so nothing is copied for them.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class build_py_with_resources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        src = HERE / "resources"
        if not (src / "presets").is_dir():
            raise SystemExit(f"cannot build: {src} has no presets/ folder (is this a complete checkout?)")
        dst = Path(self.build_lib) / "workbench" / "_resources"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": build_py_with_resources})
