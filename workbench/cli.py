"""``workbench``: the GUI by default, and subcommands for headless work.

    workbench                         open the workbench window
    workbench run CONFIG.toml [--set key=value ...]
    workbench presets                 list the presets that ship
    workbench config PRESET           print a preset as TOML (a starting point)

Subcommands of other layers (sessions, show, export, resume) register
themselves in ``COMMANDS`` below.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from workbench import __version__
from workbench import config as C
from workbench import format as F


def _eprint(*a):
    print(*a, file=sys.stderr, flush=True)


def resolve_config(spec: str | None, assignments: list[str]) -> C.ExperimentConfig:
    """A config from a TOML path or a preset name, with ``--set`` overrides applied."""
    # read without the cross-field checks, so --set can complete a preset (e.g. data.path);
    # with_overrides / check then validate the finished config
    if spec is None:
        cfg = C.default_config()
    elif spec.endswith(".toml") or os.sep in spec or Path(spec).exists():
        cfg = C.load(spec, complete=False, partial=True)     # a file the user wrote may set only some fields
    else:
        cfg = C.load_preset(spec, complete=False)
    return C.with_overrides(cfg, assignments) if assignments else C.check(cfg)


class Progress:
    """A one-line progress bar on stderr: steps, rate, time left, last metrics."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.t0 = time.perf_counter()
        self.start_step = 0
        self.last = ""

    def update(self, step: int, metrics: dict):
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        done = max(1, step - self.start_step)
        rate = done / el if el > 0 else 0.0
        left = (self.total - step) / rate if rate > 0 else 0.0
        frac = step / max(1, self.total)
        bar = "#" * int(frac * 24)
        ms = "  ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in metrics.items())
        line = f"\r[{bar:<24}] {step}/{self.total}  {rate:.1f} steps/s  {F.duration(left)} left  {ms}"
        sys.stderr.write(line.ljust(len(self.last)))
        sys.stderr.flush()
        self.last = line

    def note(self, text: str):
        if self.enabled and self.last:
            sys.stderr.write("\n")
            self.last = ""
        _eprint(text)


def cmd_run(args) -> int:
    from workbench.train.engine import run

    try:
        cfg = resolve_config(args.config, args.set or [])
    except C.ConfigError as e:
        _eprint("workbench run: the config has problems:")
        for p in e.problems:
            _eprint(f"  - {p}")
        return 2
    # under torchrun (RANK/WORLD_SIZE set): join the process group; only rank 0 records and prints
    from workbench.train.distributed import DistContext, DistributedError
    try:
        dist_ctx = DistContext.from_environment(cfg.train.device, cfg.learner.meta_batch)
    except DistributedError as e:
        _eprint(f"workbench run: {e}")
        return 2
    if dist_ctx is not None and not dist_ctx.is_main:
        args.no_session, args.quiet, args.progress = True, True, False
    from workbench.store import StopOnSignal, recorder_for_cli
    stop = StopOnSignal(immediate=dist_ctx is not None)    # SIGINT/SIGTERM: stop at the next step
    events = run(cfg, dist=dist_ctx, cancel=stop.requested)
    recorder = None
    if not args.no_session:
        recorder = recorder_for_cli(cfg, args)
        events = recorder.record(events, cancel=stop.requested)
    prog = Progress(cfg.train.steps, enabled=not args.quiet and sys.stderr.isatty() or args.progress)
    if dist_ctx is not None and not dist_ctx.is_main:
        prog.note = _failures_only(dist_ctx.rank)
    code = 1
    try:
        with stop:
            code = _show_events(events, prog, cfg, recorder, stop)
    except KeyboardInterrupt:
        prog.note("interrupted")
        return 130
    finally:
        if dist_ctx is not None:
            dist_ctx.close()
    return code


def _show_events(events, prog, cfg, recorder, stop) -> int:
    """Print the events of a run; returns the exit status (0 finished, 1 failed, 130 cancelled)."""
    from workbench.train import events as E
    code = 1
    for ev in events:
        if isinstance(ev, E.RunStarted):
            stop.started = True
            prog.start_step = ev.start_step
            prog.note(f"workbench: {cfg.name}: {cfg.learner.name} on {cfg.data.dataset}, {ev.total_steps} steps "
                      f"on {ev.device}" + (f", session {recorder.path}" if recorder else ""))
        elif isinstance(ev, E.StepMetrics):
            prog.update(ev.step, ev.metrics)
        elif isinstance(ev, E.Evaluation) and ev.phase == "val":
            prog.note("  " + F.event_text(ev)[1])
        elif isinstance(ev, E.Log) and ev.level != "info":
            prog.note(f"  {ev.level}: {ev.message}")
        elif isinstance(ev, E.RunFinished):
            s = ev.summary
            prog.note(f"finished in {ev.wall_time:.1f} s: "
                      + F.test_summary(s["metric"], s["mean"], s["ci95"], s["episodes"]))
            code = 0
        elif isinstance(ev, E.RunFailed):
            prog.note(f"workbench run failed at step {ev.step}: {ev.message}")
            code = 1
        elif isinstance(ev, E.RunCancelled):
            prog.note(f"cancelled at step {ev.step}" + (" (the latest weights are kept)" if ev.model_state
                                                        else ""))
            code = 130
    return code


def _failures_only(rank: int):
    """The progress notes of a non-zero rank: silent, except for its own failure."""
    def note(text: str):
        if text.startswith("workbench run failed"):
            _eprint(f"[rank {rank}] {text}")
    return note


def cmd_presets(args) -> int:
    for name, path in C.list_presets().items():
        try:
            cfg = C.load(path)
            print(f"{name:28s} {cfg.name}")
        except C.ConfigError as e:
            print(f"{name:28s} (broken preset: {e.problems[0]})")
    return 0


def cmd_plugins(args) -> int:
    """Every learner, backbone and data source the program knows, with who provides it."""
    from workbench import registry
    for kind, reg in registry.REGISTRIES.items():
        print(f"{kind}s:")
        for name, spec in reg.all().items():
            who = spec.origin + (f" {spec.version}" if spec.version else "")
            print(f"  {name:18s} {spec.label:34s} {who}")
    problems = [p for reg in registry.REGISTRIES.values() for p in reg.problems]
    for p in problems:
        _eprint(f"workbench: {p}")
    return 1 if problems else 0


def cmd_config(args) -> int:
    try:
        cfg = resolve_config(args.preset, args.set or [])
    except C.ConfigError as e:
        for p in e.problems:
            _eprint(f"  - {p}")
        return 2
    sys.stdout.write(C.to_toml(cfg))
    return 0


def no_display_reason(env=None) -> str | None:
    """Why the window cannot open here, or None. Qt itself aborts the process with a message
    about platform plugins when a Linux machine has no display, which helps nobody."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return ("no display found (DISPLAY and WAYLAND_DISPLAY are unset), so the window cannot open here. "
            "Train headless with 'workbench run' (sessions it writes open in the window later), or start "
            "the window on a virtual screen: xvfb-run workbench")


def cmd_gui(args) -> int:
    reason = no_display_reason()
    if reason:
        _eprint(f"workbench: {reason}")
        return 1
    try:
        from workbench.gui.app import main as gui_main
    except ImportError as e:
        _eprint(f"workbench: the window cannot open ({e}); run experiments headless with 'workbench run'")
        return 1
    return gui_main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Meta-Learning Workbench: build, run and compare "
                                "meta-learning experiments. With no command, opens the window.")
    p.add_argument("--version", action="version", version=f"workbench {__version__}")
    p.add_argument("--workspace", help="folder of session files (default: $WORKBENCH_WORKSPACE or the "
                                       "platform's user data folder)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="train and evaluate an experiment headless",
                       description="Train and evaluate one experiment. CONFIG is a .toml file or a preset name "
                                   "(see 'workbench presets'); omitted, the default experiment runs.")
    r.add_argument("config", nargs="?", help="config .toml file or preset name")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field, e.g. --set learner.inner_lr=0.1 (repeatable)")
    r.add_argument("--session", metavar="FILE", help="write the session to this .h5 file")
    r.add_argument("--no-session", action="store_true", help="do not write a session file")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    r.set_defaults(func=cmd_run)

    ps = sub.add_parser("presets", help="list the presets that ship with the program")
    ps.set_defaults(func=cmd_presets)

    c = sub.add_parser("config", help="print a preset or config file as TOML, with overrides applied")
    c.add_argument("preset", nargs="?", help="preset name or .toml file (default: the default experiment)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE")
    c.set_defaults(func=cmd_config)

    pl = sub.add_parser("plugins", help="list the learners, backbones and data sources, built-in and plugins")
    pl.set_defaults(func=cmd_plugins)

    g = sub.add_parser("gui", help="open the workbench window (the default)")
    g.add_argument("session", nargs="*", help="session files to open")
    g.set_defaults(func=cmd_gui)

    for register in COMMANDS:
        register(sub)
    return p


def _register_store_commands(sub):
    from workbench.store.cli import register      # the store always ships: no fallback that hides a break
    register(sub)


def _register_study_commands(sub):
    from workbench.study.cli import register
    register(sub)


COMMANDS = [_register_store_commands, _register_study_commands]


def main(argv: list[str] | None = None) -> int:
    import multiprocessing
    multiprocessing.freeze_support()      # the window's engine process, inside a frozen bundle
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workspace:
        os.environ["WORKBENCH_WORKSPACE"] = args.workspace
    if args.command is None:
        args.session = []
        return cmd_gui(args)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
