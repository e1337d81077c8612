"""Render the Adaptation view to docs/screenshots/ (offscreen), light and dark, at two window sizes.

    python scripts/screenshots_adaptation.py          # writes docs/screenshots/adaptation_*.png

Trains two short real sessions first (in this process, into a temporary workspace):
MAML on sinusoid regression (the MAML paper's setting, shortened) and the default
experiment (ProtoNet on the Omniglot sample that ships). Then, for each window size
and colour scheme, opens each session in the real main window, shows the Adaptation
tab, picks one test task and grabs the window
once the view has drawn it.
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
SIZES = ("1920x1080", "1280x720")
SCHEMES = ("light", "dark")


def wait(app, cond, timeout: float, what: str):
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"screenshots: gave up waiting for {what} after {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.01)


def sessions(folder: Path) -> dict[str, tuple[Path, int]]:
    """{name: (session file, index of the test task to show)}."""
    from threadpoolctl import threadpool_limits

    from workbench import config as C
    from workbench import store
    from workbench.train.engine import run
    cfgs = {
        "sinusoid": (C.replace(C.load_preset("sinusoid_maml"), **{
            "train.steps": 3000, "train.eval_every": 0, "eval.episodes": 100, "learner.meta_batch": 10,
            "train.threads": 1}), 3),
        "omniglot": (C.replace(C.default_config(), **{"train.threads": 1}), 1),
    }
    out = {}
    for name, (cfg, index) in cfgs.items():
        path = folder / f"{name}.h5"
        t0 = time.perf_counter()
        with threadpool_limits(1):
            for _ in store.record(run(cfg), path, cfg):
                pass
        print(f"trained {name} in {time.perf_counter() - t0:.1f} s: {path}")
        out[name] = (path, index)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES))
    ap.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    ap.add_argument("--sessions", type=Path, help="a folder with sinusoid.h5 and omniglot.h5 made by an "
                                                  "earlier call (skips the training)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="workbench-adapt-shots-"))
    os.environ["WORKBENCH_WORKSPACE"] = str(tmp / "workspace")

    from PySide6.QtCore import QSettings, Qt

    from workbench.gui import style
    from workbench.gui.app import dispose, make_app
    from workbench.gui.main_window import MainWindow

    found = ({"sinusoid": (args.sessions / "sinusoid.h5", 3), "omniglot": (args.sessions / "omniglot.h5", 1)}
             if args.sessions else sessions(tmp))
    app = make_app()
    for scheme in args.schemes:
        style.apply_style(app, scheme)
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            for name, (path, index) in found.items():
                settings = QSettings(str(tmp / f"settings-{scheme}-{size}-{name}.ini"), QSettings.Format.IniFormat)
                win = MainWindow(settings=settings)
                win.show()
                win.resize(w, h)
                app.processEvents()
                assert win.open_session(path)
                panel = win.adaptation
                wait(app, lambda: panel.task_box.count() > index, 30, f"the task list ({panel.status.text()})")
                win.views.setCurrentWidget(panel)
                win.resizeDocks([win.form_dock, win.embedding_dock], [int(w * 0.2), int(w * 0.3)],
                                Qt.Orientation.Horizontal)
                panel.task_box.setCurrentIndex(index)
                n = [0]
                panel.computed.connect(lambda: n.__setitem__(0, n[0] + 1))
                panel.show_selected()
                wait(app, lambda: n[0] > 0, 120, f"the adaptation of {name}")
                wait(app, lambda: win.embedding.point_count() > 0, 120, "the task-embedding map")
                for _ in range(20):
                    app.processEvents()
                    time.sleep(0.02)
                file = args.out / f"adaptation_{name}_{size}_{scheme}.png"
                pix = win.grab()
                pix.save(str(file), "PNG")
                print(f"wrote {file} ({pix.width()}x{pix.height()})")
                panel.wait_idle()
                win.embedding.wait_idle(30000)
                win._close_after_stop = True
                win.close()
                dispose(win)
    return 0


if __name__ == "__main__":
    sys.exit(main())
