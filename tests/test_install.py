"""`pip install .` (not editable) into a fresh virtual environment gives a working `workbench`.

The fresh venv sees the project venv's third-party packages (torch, h5py, ...)
through a one-line .pth file, so nothing is downloaded: the project itself is
built from a copy of the checkout with ``pip install --no-deps --no-build-isolation``
and then run from the new venv's ``bin/``, outside the checkout, so only the
installed copy (with its ``workbench/_resources``) can answer.
"""

import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=240):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}\nstdout:\n{out.stdout[-2000:]}\n" \
                                f"stderr:\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    # a copy of what a source distribution carries: the build must not need anything else
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / f, src / f)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for d in ("workbench", "resources"):
        shutil.copytree(REPO / d, src / d, ignore=ignore)

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # plain path line: the project venv's packages become importable, but its .pth files
    # (among them the editable install of this very checkout) are not processed
    (site / "_project_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               WORKBENCH_WORKSPACE=str(tmp / "workspace"), QT_QPA_PLATFORM="offscreen")
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", src],
         cwd=tmp, env=env)
    return {"bin": env_dir / "bin", "py": py, "site": site, "env": env, "cwd": tmp}


def test_installed_package_is_a_copy_with_resources(installed):
    out = _run([installed["py"], "-c",
                "import workbench, workbench.resources as R, workbench.config as C; "
                "print(workbench.__file__); print(R.root()); print(sorted(C.list_presets())); "
                "print(R.app_icon_png(256).stat().st_size, len(R.style_sheet('dark')), R.icon_path('run').name)"],
               cwd=installed["cwd"], env=installed["env"])
    module_file, root, presets, check = out.stdout.strip().splitlines()
    assert Path(module_file).is_relative_to(installed["site"]), f"imported {module_file}, not the installed copy"
    assert Path(root) == installed["site"] / "workbench" / "_resources"
    assert "digits_protonet" in presets and "sinusoid_maml" in presets
    assert check.split()[-1] == "run.svg" and int(check.split()[0]) > 1000


def test_installed_entry_point_help_presets_and_headless_run(installed):
    wb = installed["bin"] / "workbench"
    assert wb.is_file(), "pip did not put a 'workbench' script into the venv's bin/"
    env = dict(installed["env"], PATH=f"{installed['bin']}{os.pathsep}{installed['env'].get('PATH', '')}")
    assert shutil.which("workbench", path=env["PATH"]) == str(wb)
    cwd = installed["cwd"]

    help_text = _run(["workbench", "--help"], cwd=cwd, env=env).stdout
    assert "usage: workbench" in help_text and "run" in help_text and "presets" in help_text

    presets = _run(["workbench", "presets"], cwd=cwd, env=env).stdout
    rows = {line.split()[0]: line for line in presets.splitlines() if line.strip()}
    assert {"digits_protonet", "sinusoid_maml"} <= set(rows), presets
    assert "broken preset" not in rows["digits_protonet"], presets

    short = ["--set", "train.steps=5", "--set", "train.eval_every=0", "--set", "eval.episodes=10", "--quiet"]
    for command in ("sessions", "show", "export", "resume", "plugins"):    # every subcommand is installed
        assert command in help_text, help_text
    # one short run that writes a session into a workspace, then listed by the installed program
    ws = cwd / "ws"
    run = _run(["workbench", "--workspace", ws, "run", "digits_protonet", *short], cwd=cwd, env=env)
    assert "finished in" in run.stderr and "test accuracy" in run.stderr, run.stderr
    files = sorted(ws.rglob("*.h5"))
    assert len(files) == 1 and files[0].stat().st_size > 0, files
    listing = _run(["workbench", "--workspace", ws, "sessions"], cwd=cwd, env=env).stdout
    assert files[0].name in listing and "finished" in listing, listing


def test_desktop_entry_installs_into_a_prefix(installed, tmp_path):
    out = _run([installed["py"], "-m", "workbench.desktop", "install", "--prefix", tmp_path],
               cwd=installed["cwd"], env=installed["env"])
    entry = tmp_path / "applications" / "meta-learning-workbench.desktop"
    text = entry.read_text()
    assert f"Exec={installed['bin'] / 'workbench'} gui %F" in text and "@" not in text
    assert (tmp_path / "icons/hicolor/256x256/apps/meta-learning-workbench.png").is_file()
    assert (tmp_path / "icons/hicolor/scalable/apps/meta-learning-workbench.svg").is_file()
    assert str(entry) in out.stdout
