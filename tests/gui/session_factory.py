"""Small real sessions for the sessions-browser and compare-view tests.

The engine trains digits ProtoNet and digits MAML for a few steps and the store
records them; both are evaluated on the same 30 seeded test episodes (same
eval seed, data, split, ways and shots), so they can be paired. A third,
tiny ProtoNet run uses another eval seed, so it cannot be paired with them.
Built once per test process (cached here) and copied into each test's
workspace, because tests delete and rewrite files.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from threadpoolctl import threadpool_limits

from workbench import config as C
from workbench import store
from workbench.train.engine import run

_CACHE: dict[str, list[Path]] = {}

TINY = {"train.steps": 8, "train.eval_every": 4, "train.val_episodes": 8, "train.log_every": 2,
        "eval.episodes": 30, "model.hidden": [32], "eval.seed": 1234, "train.threads": 1}

SPECS = (
    ("ProtoNet digits", {"learner.name": "protonet"}),
    ("MAML digits", {"learner.name": "maml", "learner.inner_lr": 0.5, "learner.test_inner_steps": 3}),
    ("ProtoNet other seed", {"learner.name": "protonet", "eval.seed": 99, "train.steps": 4,
                             "train.eval_every": 0}),
)


def make_session(folder: Path, name: str, changes: dict) -> Path:
    cfg = C.replace(C.load_preset("digits_protonet"), **{**TINY, **changes, "name": name})
    path = store.new_session_path(cfg, folder)
    # one thread: on a busy shared CPU, spinning OpenMP/torch threads cost 10x the work itself
    with threadpool_limits(1):
        for _ in store.record(run(cfg), path, cfg):
            pass
    return path


def real_sessions() -> list[Path]:
    """Paths of the three cached sessions (built on first use)."""
    if "paths" not in _CACHE:
        folder = Path(tempfile.mkdtemp(prefix="wb-gui-sessions-"))
        _CACHE["paths"] = [make_session(folder, name, ch) for name, ch in SPECS]
    return _CACHE["paths"]


def copy_sessions(dest: Path) -> list[Path]:
    """Copies of the cached sessions in ``dest`` (created if missing)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for p in real_sessions():
        q = dest / p.name
        shutil.copy2(p, q)
        out.append(q)
    return out
