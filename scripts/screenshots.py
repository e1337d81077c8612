"""Render the workbench window DURING a real run to docs/screenshots/ (offscreen).

    python scripts/screenshots.py            # docs/screenshots/main_window*.png and panel shots

Trains the default experiment through the real window -- engine process,
batched events, live panels -- waits until the curves, the task-embedding map
and the per-task panel hold real data from at least two validation rounds,
then grabs the window at every size of ``--sizes`` (default 1920x1080 and
1280x720) in the light and the dark palette (``main_window_<W>x<H>_<scheme>.png``;
``main_window.png`` is the 1920x1080 light one), and the three panels, with
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
    ap.add_argument("--schemes", default="light,dark", help="palettes to render, comma-separated")
    ap.add_argument("--sizes", default="1920x1080,1280x720", help="window sizes, WxH, comma-separated")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_WORKSPACE"] = tempfile.mkdtemp(prefix="workbench-shots-")

    from PySide6.QtCore import QSettings

    from workbench import config as C
    from workbench.gui import style
    from workbench.gui.app import dispose, make_app
    from workbench.gui.main_window import MainWindow

    app = make_app()
    schemes = [s for s in args.schemes.split(",") if s]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",") if s]
    style.apply_style(app, schemes[0])
    settings = QSettings(os.path.join(os.environ["WORKBENCH_WORKSPACE"], "settings.ini"), QSettings.Format.IniFormat)
    # a longer run than the default, so that the shot is taken mid-run with validation rounds behind it
    cfg = C.replace(C.default_config(), **{"train.steps": 5000, "train.eval_every": 40, "train.threads": 1})
    win = MainWindow(cfg, settings=settings)
    w, h = sizes[0]
    win.show()
    win.resize(w, h)
    win.size_docks()
    app.processEvents()
    win.run()
    # two validation rounds projected, the curves well under way
    wait(app, lambda: win.embedding.xy is not None and win.embedding.ev.step >= 120 and win.embedding.point_count() > 0
         and win.per_task.bar_count() > 0 and win.curves.displayed_points("train/loss") >= 30, 600, "live panels")
    win.curves.redraw()

    def settle(seconds=0.6):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            app.processEvents()
            time.sleep(0.02)

    for (w, h) in sizes:
        for scheme in schemes:
            win.set_scheme(scheme)
            win.resize(w, h)
            win.size_docks()
            settle()
            name = f"main_window_{w}x{h}_{scheme}.png"
            win.grab().save(str(args.out / name), "PNG")
            print(f"wrote {args.out / name}")
            if (w, h) == sizes[0] and scheme == schemes[0]:
                win.grab().save(str(args.out / "main_window.png"), "PNG")
                for pname, widget in {"curves.png": win.curves, "embedding_map.png": win.embedding,
                                      "per_task.png": win.per_task}.items():
                    widget.grab().save(str(args.out / pname), "PNG")
                    print(f"wrote {args.out / pname}")
    win.set_scheme(schemes[0])
    win.stop()
    win.worker.wait(60)
    win.embedding.wait_idle(30000)
    win._close_after_stop = True
    win.close()
    dispose(win)
    return 0


if __name__ == "__main__":
    sys.exit(main())
