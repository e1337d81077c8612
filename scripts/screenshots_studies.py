"""Screenshots of the Studies view with a finished study, at 1920x1080 and 1280x720, light and dark.

    QT_QPA_PLATFORM=offscreen python scripts/screenshots_studies.py [--out docs/screenshots] [--workspace DIR]

Runs a real study first (a few minutes on 2 cores): digits ProtoNet and Matching Networks, three
meta learning rates, three seeds (18 runs of 150 steps, 200 test episodes each) on the local
backend with two workers, through the same engine code the view calls. Then opens the main window
on the Studies tab with that study shown and writes ``studies_<w>x<h>_<light|dark>.png``.
``--workspace`` keeps (or reuses) the study.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
NAME = "Digits: ProtoNet vs Matching x meta lr"
SIZES = ((1920, 1080), (1280, 720))


def definition():
    from workbench import config as C
    from workbench import study as S
    base = C.replace(C.load_preset("digits_protonet", complete=False), validate_values=False, **{
        "train.steps": 150, "train.eval_every": 50, "train.val_episodes": 30, "train.log_every": 10,
        "eval.episodes": 200, "train.threads": 1, "model.hidden": [64, 64]})
    return S.StudyDefinition(name=NAME, base=base, seeds=[0, 1, 2],
                             grid={"learner.name": ["protonet", "matching"],
                                   "learner.meta_lr": [0.0003, 0.001, 0.003]})


def finished_study(workspace: Path):
    from workbench import study as S
    from workbench.study.runner import run_study
    for rec in S.list_studies(workspace):
        if rec.name == NAME:
            rec.refresh()
            if rec.finished:
                return rec
            print(f"resuming {rec.path}", flush=True)
            return run_study(rec, "local", workers=2)
    rec = S.create_record(definition(), workspace=workspace)
    print(f"running {len(rec.runs)} runs into {rec.folder}", flush=True)
    t = time.perf_counter()

    def show(u):
        if u.status in ("finished", "failed"):
            print(f"  {u.run_id}: {u.status} {u.mean:.4f}", flush=True)
    rec = run_study(rec, "local", workers=2, on_update=show)
    print(f"study done in {time.perf_counter() - t:.0f} s", flush=True)
    return rec


def settle(app, seconds: float = 0.6):
    t = time.monotonic()
    while time.monotonic() - t < seconds:
        app.processEvents()
        time.sleep(0.02)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--workspace", type=Path, default=None, help="keep (or reuse) the study here")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="wb-study-screens-"))
    workspace.mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_WORKSPACE"] = str(workspace)
    rec = finished_study(workspace)

    from PySide6.QtCore import QSettings
    from workbench.gui.app import dispose, make_app
    app = make_app()
    from workbench.gui import style
    from workbench.gui.main_window import MainWindow
    settings = QSettings(str(workspace / "screens-settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    view = win.studies
    win.show()
    win.studies_tabs.setCurrentIndex(win.studies_tabs.indexOf(view))
    assert view.show_study(rec.path)
    t = time.monotonic()
    while view.results is None and time.monotonic() - t < 120:
        app.processEvents()
        time.sleep(0.05)
    if view.results is None:
        print("the results were not computed in time", file=sys.stderr)
        return 1
    view.grid.selectRow(0)
    best = view.results.best
    for scheme in ("light", "dark"):
        style.apply_style(app, scheme)
        for w, h in SIZES:
            win.resize(w, h)
            settle(app)
            view.splitter.setSizes([int(w * (0.25 if w > 1500 else 0.3)), int(w * 0.7)])
            h_right = view.right_splitter.height()
            view.right_splitter.setSizes([int(h_right * 0.27), int(h_right * 0.73)])
            view.results_panel.splitter.setSizes([int(h_right * 0.29), int(h_right * 0.44)])
            settle(app)
            out = args.out / f"studies_{w}x{h}_{scheme}.png"
            win.grab().save(str(out))
            print(f"wrote {out}", flush=True)
    print(f"best cell: {best.label if best else '-'}", flush=True)
    win._close_after_stop = True
    win.close()
    dispose(win)
    return 0


if __name__ == "__main__":
    sys.exit(main())
