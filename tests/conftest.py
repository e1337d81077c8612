import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# tiny test models gain nothing from threads, and spinning OpenMP threads on a busy
# 2-core machine made them many times slower
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
OMNIGLOT_ZIP = REPO.parent / "shared" / "data" / "omniglot" / "images_background_small1.zip"


@pytest.fixture
def omniglot_zip():
    if not OMNIGLOT_ZIP.exists():
        pytest.skip(f"real Omniglot not found at {OMNIGLOT_ZIP}")
    return OMNIGLOT_ZIP


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny test models run on one intra-op thread (several times faster on a shared 2-core
    machine); a test or run that changes the count does not leak it into the next test."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path, monkeypatch):
    """Every test writes sessions into its own temporary workspace, never the user's."""
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    yield


def pytest_sessionfinish(session, exitstatus):
    # a run that collected nothing is a failure, not a green build
    if exitstatus == 5:
        session.exitstatus = 1
