"""Screenshots of the sessions browser and the compare view, from real sessions.

    QT_QPA_PLATFORM=offscreen python scripts/screenshots_sessions.py [--out docs/screenshots]

Trains a handful of small experiments with the engine and records them with
the session store into a temporary workspace (a few minutes on a laptop CPU):
digits ProtoNet and digits MAML (same seeded test episodes), multimodal
regression with MAML and with first-order MAML (same seeded test episodes: the compare
view pairs them task by task), a sinusoid MAML run stopped by the user, and
one run still being written while the screenshot is taken. A truncated file
shows how a damaged session looks. Writes ``sessions_browser.png`` and
``compare.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from threadpoolctl import threadpool_limits  # noqa: E402

from workbench import config as C  # noqa: E402
from workbench import store  # noqa: E402
from workbench.train.engine import run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

DIGITS = {"train.steps": 150, "train.eval_every": 25, "train.val_episodes": 50, "train.log_every": 5,
          "eval.episodes": 200, "model.hidden": [64, 64], "train.threads": 1}
MULTI = {"train.steps": 200, "train.eval_every": 40, "train.val_episodes": 50, "train.log_every": 5,
         "eval.episodes": 200, "learner.meta_batch": 10, "model.hidden": [40, 40], "learner.inner_lr": 0.01,
         "learner.test_inner_lr": 0.01, "learner.meta_lr": 0.003, "embedding.method": "prototype",
         "train.threads": 1}

RUNS = (
    ("Digits ProtoNet 3-way 5-shot", "digits_protonet", {**DIGITS}),
    ("Digits MAML 3-way 5-shot", "digits_protonet", {**DIGITS, "learner.name": "maml", "learner.inner_lr": 0.5,
                                                     "learner.inner_steps": 1, "learner.test_inner_steps": 3,
                                                     "learner.test_inner_lr": 0.5}),
    ("Multimodal MAML", "multimodal_mmaml", {**MULTI}),
    ("Multimodal first-order MAML", "multimodal_mmaml", {**MULTI, "learner.name": "fomaml"}),
)


def train(folder: Path, name: str, preset: str, changes: dict, cancel_after: int | None = None) -> Path:
    cfg = C.replace(C.load_preset(preset), **{**changes, "name": name})
    path = store.new_session_path(cfg, folder)
    steps = {"n": 0}

    def cancel():
        return cancel_after is not None and steps["n"] >= cancel_after
    t = time.perf_counter()
    with threadpool_limits(1):
        for ev in store.record(run(cfg, cancel=cancel), path, cfg):
            if type(ev).__name__ == "StepMetrics":
                steps["n"] = ev.step
    print(f"  {name}: {store.read_summary(path).status} in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def live_writer(folder: Path, started: threading.Event, stop: threading.Event, out: dict):
    """A run that is still being written while the screenshot is taken (a real engine run, slowed);
    its file is deleted afterwards (``out["path"]``)."""
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"name": "Sinusoid MAML (still running)",
                                                       "train.steps": 400, "train.log_every": 5,
                                                       "train.eval_every": 0, "train.threads": 1})
    path = out["path"] = store.new_session_path(cfg, folder)
    for ev in store.record(run(cfg, cancel=stop.is_set), path, cfg):
        if type(ev).__name__ == "StepMetrics" and ev.step >= 60:
            started.set()
            time.sleep(0.05)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--workspace", type=Path, default=None, help="reuse (or keep) the trained sessions here")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    folder = args.workspace or Path(tempfile.mkdtemp(prefix="wb-screens-"))
    folder.mkdir(parents=True, exist_ok=True)

    named = {s.name: Path(s.path) for s in store.list_sessions(folder) if s.status != "damaged"}
    paths = []
    print(f"sessions in {folder}:", flush=True)
    for name, preset, changes in RUNS:
        paths.append(named.get(name) or train(folder, name, preset, changes))
    if "Sinusoid MAML (stopped)" not in named:
        train(folder, "Sinusoid MAML (stopped)", "sinusoid_maml",
              {"train.steps": 300, "train.log_every": 5, "train.eval_every": 0, "train.threads": 1},
              cancel_after=120)
    (folder / "20240101-000000-maml-omniglot-0badf1.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 200)

    started, stop = threading.Event(), threading.Event()
    live_out: dict = {}
    live = threading.Thread(target=live_writer, args=(folder, started, stop, live_out), daemon=True)
    live.start()
    started.wait(300)

    from workbench.gui.app import make_app
    app = make_app()                    # named and styled like the real application
    from workbench.gui.compare import CompareView
    from workbench.gui.sessions import SessionsBrowser

    browser = SessionsBrowser(folder)
    browser.resize(1180, 330)
    browser.show()
    browser.select_paths(paths[2:4])
    for _ in range(30):
        app.processEvents()
        time.sleep(0.02)
    browser.refresh()
    app.processEvents()
    out = args.out / "sessions_browser.png"
    browser.grab().save(str(out))
    print(f"wrote {out}")
    stop.set()
    live.join(60)
    store.delete_session(live_out["path"])

    view = CompareView([str(p) for p in paths[2:4]])
    view.resize(1600, 1000)
    view.show()
    t = time.perf_counter()
    while view.projections_pending() and time.perf_counter() - t < 60:
        app.processEvents()
        time.sleep(0.02)
    view.curves[0].smooth.setChecked(True)        # the meta-train loss is noisy: show the EMA too
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    out = args.out / "compare.png"
    view.grab().save(str(out))
    print(f"wrote {out}")
    browser.timer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
