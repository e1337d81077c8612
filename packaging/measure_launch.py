"""Time from starting the workbench to its main window being shown on an X display.

    packaging/measure_launch.py dist/workbench/workbench                 # the bundle
    packaging/measure_launch.py .venv/bin/workbench --runs 3             # a pip/venv install

Starts a private Xvfb server (``apt-get install xvfb xdotool``), launches the
program ``--runs`` times with an empty QSettings/workspace, and for each launch
polls ``xdotool search --onlyvisible --pid`` (every 20 ms) for a mapped window whose
title contains "Workbench" (the main window). The time printed is from
``Popen`` to that window being mapped: interpreter start-up (or bundle
unpacking), imports (torch, Qt), building the window, and the first show. The
first run is "cold" for the OS file cache only if nothing read those files
before; later runs are warm. Each launched program is ended by its process id.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def start_xvfb(display: str) -> subprocess.Popen:
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["xdpyinfo", "-display", display], capture_output=True).returncode == 0:
            return xvfb
        time.sleep(0.05)
    xvfb.kill()
    raise SystemExit(f"Xvfb did not start on display {display}")


def one_launch(program: list[str], display: str, timeout: float) -> float:
    home = tempfile.mkdtemp(prefix="wb-launch-")
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", HOME=home,
               XDG_CONFIG_HOME=f"{home}/.config", XDG_DATA_HOME=f"{home}/.local/share",
               WORKBENCH_WORKSPACE=f"{home}/workspace")
    env.pop("WAYLAND_DISPLAY", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(program, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the program exited ({proc.returncode}) before showing a window: "
                                 f"{proc.stderr.read()[-2000:]}")
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(proc.pid),
                                    "--name", "Workbench"], env=env, capture_output=True, text=True)
            if found.returncode == 0 and found.stdout.strip():
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"no workbench window within {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Time from launch to the workbench's main window being shown.")
    ap.add_argument("program", nargs="+", help="the program (and arguments) to launch")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--display", default=":87")
    ap.add_argument("--timeout", type=float, default=180.0)
    args = ap.parse_args(argv)
    for tool in ("Xvfb", "xdotool", "xdpyinfo"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed; apt-get install xvfb xdotool x11-utils")
    xvfb = start_xvfb(args.display)
    try:
        times = []
        for i in range(args.runs):
            t = one_launch(args.program, args.display, args.timeout)
            times.append(t)
            print(f"run {i + 1}: window shown after {t:.2f} s", flush=True)
    finally:
        xvfb.terminate()
        xvfb.wait()
    print(f"{' '.join(args.program)}: first {times[0]:.2f} s, median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
