"""Render the workbench window DURING a real run to docs/screenshots/ (offscreen).

    python scripts/screenshots.py            # writes docs/screenshots/main_window.png and panel shots

Trains the default experiment (ProtoNet on the bundled digits) through the
real window -- worker thread, batched events, live panels -- waits until the
curves, the task-embedding map and the per-task panel hold real data from at
least two validation rounds, grabs the window and three panels with
``QWidget.grab()``, then stops the run. Sessions go to a temporary workspace.
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
OUT = REPO / "docs" / "screenshots"


def wait(app, cond, timeout: float, what: str):
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"screenshots: gave up waiting for {what} after {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.01)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--scheme", choices=("light", "dark"), default="light")
    ap.add_argument("--size", default="1600x1000", help="window size, WxH")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_WORKSPACE"] = tempfile.mkdtemp(prefix="workbench-shots-")

    from PySide6.QtCore import QSettings, Qt

    from workbench import config as C
    from workbench.gui import style
    from workbench.gui.app import dispose, make_app
    from workbench.gui.main_window import MainWindow

    app = make_app()
    style.apply_style(app, args.scheme)
    settings = QSettings(os.path.join(os.environ["WORKBENCH_WORKSPACE"], "settings.ini"), QSettings.Format.IniFormat)
    # a longer run than the default, so that the shot is taken mid-run with validation rounds behind it
    cfg = C.replace(C.default_config(), **{"train.steps": 5000, "train.eval_every": 40, "train.threads": 1})
    win = MainWindow(cfg, settings=settings)
    w, h = (int(v) for v in args.size.split("x"))
    win.show()
    win.resize(w, h)
    win.resizeDocks([win.form_dock, win.embedding_dock], [int(w * 0.24), int(w * 0.33)],
                    Qt.Orientation.Horizontal)
    app.processEvents()
    win.run()
    # two validation rounds projected, the curves well under way
    wait(app, lambda: win.embedding.xy is not None and win.embedding.ev.step >= 120 and win.embedding.point_count() > 0
         and win.per_task.bar_count() > 0 and win.curves.displayed_points("train/loss") >= 30, 600, "live panels")
    win.curves.redraw()
    app.processEvents()
    shots = {"main_window.png": win, "curves.png": win.curves, "embedding_map.png": win.embedding,
             "per_task.png": win.per_task}
    for name, widget in shots.items():
        pix = widget.grab()
        pix.save(str(args.out / name), "PNG")
        print(f"wrote {args.out / name} ({pix.width()}x{pix.height()})")
    win.stop()
    win.worker.wait(60)
    win.embedding.wait_idle(30000)
    win._close_after_stop = True
    win.close()
    dispose(win)
    return 0


if __name__ == "__main__":
    sys.exit(main())
