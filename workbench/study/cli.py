"""``workbench study run | resume | show | export | list``: studies on the command line.

    workbench study run STUDY.toml [--backend local|ray] [--workers N] [--address A] [--yes]
    workbench study resume PATH          continue a stopped or killed study (PATH: its folder or study.json)
    workbench study show PATH            the results table
    workbench study export PATH --table out.csv|out.md|out.tex [--figure out.svg]
    workbench study list                 the workspace's studies
    workbench study presets              the study presets that ship

STUDY.toml may also be the name of a study preset. Registered by :func:`register`, which
``workbench/cli.py`` calls.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from workbench import format as F
from workbench.study.definition import StudyError


def _eprint(*a):
    print(*a, file=sys.stderr, flush=True)


def _problems(cmd: str, e: StudyError, head: str = "") -> int:
    if head or len(e.problems) > 1:
        _eprint(f"workbench study {cmd}: {head or 'the study has problems:'}")
        for p in e.problems:
            _eprint(f"  - {p}")
    else:
        _eprint(f"workbench study {cmd}: {e.problems[0] if e.problems else e}")
    return 2


class StudyProgress:
    """The whole study on stderr: counts by status, runs in flight with their step, time so far.
    One rewritten line on a terminal; a line per finished run otherwise."""

    def __init__(self, record, enabled: bool, tty: bool):
        self.record, self.enabled, self.tty = record, enabled, tty
        self.state: dict[str, object] = {}
        self.t0 = time.perf_counter()
        self.last = ""
        self.total = len(record.runs)

    def __call__(self, u):
        prev = self.state.get(u.run_id)
        self.state[u.run_id] = u
        if not self.enabled:
            return
        if u.status in ("finished", "failed", "cancelled", "interrupted") and (prev is None or prev.status != u.status) \
                and not (prev is None and u.status == "finished"):
            what = (F.metric_value(u.metric, u.mean) if u.status == "finished" and math.isfinite(u.mean)
                    else u.status + (f": {u.message}" if u.message else ""))
            self._note(f"  {u.run_id}: {what}")
        self._line()

    def _note(self, text: str):
        if self.tty and self.last:
            sys.stderr.write("\r" + " " * len(self.last) + "\r")
            self.last = ""
        _eprint(text)

    def _line(self):
        if not self.tty:
            return
        done = sum(1 for u in self.state.values() if u.status == "finished")
        bad = sum(1 for u in self.state.values() if u.status in ("failed", "cancelled", "interrupted"))
        running = [u for u in self.state.values() if u.status == "running"]
        frac = done / max(1, self.total)
        bar = "#" * int(frac * 20)
        fly = "  ".join(f"{u.run_id} {u.step}/{u.total_steps}" for u in running[:4])
        line = (f"[{bar:<20}] {done}/{self.total} done" + (f", {bad} not finished" if bad else "")
                + f", {len(running)} running  {F.duration(time.perf_counter() - self.t0)}  {fly}")
        sys.stderr.write("\r" + line.ljust(len(self.last)))
        sys.stderr.flush()
        self.last = line

    def close(self):
        if self.tty and self.last:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.last = ""


def _resolve_study_file(spec: str):
    from workbench.study.definition import load_study
    from workbench.study.presets import list_study_presets, load_study_preset
    p = Path(spec).expanduser()
    if p.exists() or spec.endswith(".toml") or "/" in spec:
        return load_study(p)
    if spec in list_study_presets():
        return load_study_preset(spec)
    return load_study(p)         # says the file does not exist


def _launch(cmd: str, record, args) -> int:
    from workbench.analysis.study import aggregate, to_text
    from workbench.study.runner import default_workers, run_study
    tty = sys.stderr.isatty()
    prog = StudyProgress(record, enabled=not args.quiet, tty=tty or args.progress)
    n = args.workers or default_workers(record)
    retry = getattr(args, "retry_failed", False)
    todo = sum(r.status != "finished" and (retry or r.status != "failed") for r in record.runs)
    _eprint(f"workbench study: {record.name}: {len(record.runs)} runs ({todo} to do) on the {args.backend} backend"
            + (f" with {n} workers" if args.backend == "local" else (f" at {args.address}" if args.address else
                                                                     " (a local Ray instance)"))
            + f"; record {record.path}")
    import signal
    import threading

    def stop(signum, frame):            # SIGTERM (a scheduler, kill) stops the study like Ctrl-C does
        raise KeyboardInterrupt
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, stop)
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:      # started in the background by a shell
            signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        record = run_study(record, backend=args.backend, workers=args.workers, address=args.address,
                           on_update=prog, threads=args.threads, retry_failed=retry)
    except StudyError as e:
        prog.close()
        return _problems(cmd, e)
    except KeyboardInterrupt:
        prog.close()
        _eprint(f"stopped; runs in progress were cancelled and keep their last checkpoint; continue with: "
                f"workbench study resume {record.folder}")
        return 130
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    prog.close()
    c = record.counts()
    _eprint(f"{c['finished']} of {len(record.runs)} runs finished"
            + "".join(f", {c[s]} {s}" for s in ("failed", "cancelled", "interrupted", "damaged") if c.get(s))
            + f" in {F.duration(time.perf_counter() - prog.t0)}")
    if c["finished"]:
        print(to_text(aggregate(record)))
    if not record.finished:
        _eprint(f"continue with: workbench study resume {record.folder}")
        return 1
    return 0 if c["failed"] == 0 else 1


def cmd_run(args) -> int:
    from workbench.study.definition import needs_confirmation, validate_study
    from workbench.study.record import create_record
    try:
        defn = _resolve_study_file(args.study)
    except StudyError as e:
        return _problems("run", e)
    problems = validate_study(defn, confirmed=True)
    if problems:
        return _problems("run", StudyError(problems), "the study has problems:" if len(problems) > 1 else "")
    ask = needs_confirmation(defn)
    if ask and not args.yes:
        if sys.stdin.isatty():
            _eprint(f"workbench study run: {ask}")
            answer = input("launch them all? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                _eprint("not launched")
                return 1
        else:
            _eprint(f"workbench study run: {ask}")
            return 2
    try:
        record = create_record(defn, args.folder, sessions=args.sessions)
    except StudyError as e:
        return _problems("run", e)
    return _launch("run", record, args)


def cmd_resume(args) -> int:
    from workbench.study.record import open_record
    try:
        record = open_record(_resolve_record(args.path))
        record.definition()
    except StudyError as e:
        return _problems("resume", e)
    return _launch("resume", record, args)


def _resolve_record(spec: str):
    """A study folder or study.json, or a folder name under the workspace's studies/."""
    p = Path(spec).expanduser()
    if p.exists():
        return p
    from workbench.study.record import studies_dir
    cand = studies_dir() / spec
    return cand if cand.exists() else p


def cmd_show(args) -> int:
    from workbench.analysis.study import aggregate, to_text
    from workbench.study.record import open_record
    try:
        record = open_record(_resolve_record(args.path))
    except StudyError as e:
        return _problems("show", e)
    record.refresh()
    c = record.counts()
    print(f"study     {record.name}")
    print(f"record    {record.path}")
    print("runs      " + ", ".join(f"{n} {s}" for s, n in c.items() if n))
    print(to_text(aggregate(record)))
    if args.runs:
        for r in record.runs:
            m = F.metric_ci(record.metric, r.mean, r.ci95) if r.mean is not None else "–"
            print(f"  {r.run_id:16s} {r.status:11s} {m:22s} {r.label}" + (f"  ({r.message})" if r.message else ""))
    return 0


def cmd_export(args) -> int:
    from workbench.analysis.study import aggregate, export_table
    from workbench.study.record import open_record
    try:
        record = open_record(_resolve_record(args.path))
    except StudyError as e:
        return _problems("export", e)
    if not args.table and not args.figure and not args.sensitivity:
        _eprint("workbench study export: say what to export: --table out.csv|out.md|out.tex and/or --figure out.svg")
        return 2
    res = aggregate(record)
    if args.sensitivity:
        from workbench.analysis.study import sensitivity_svg
        if not args.figure:
            _eprint("workbench study export: --sensitivity KEY draws into --figure out.svg; name the file")
            return 2
        if not str(args.figure).lower().endswith(".svg"):
            _eprint(f"workbench study export: figure file {args.figure!r}: the name must end in .svg")
            return 2
        try:
            Path(args.figure).write_text(sensitivity_svg(res, args.sensitivity), encoding="utf-8")
        except (ValueError, OSError) as e:
            _eprint(f"workbench study export: {e}")
            return 2
        print(f"wrote the sensitivity figure over {args.sensitivity} (svg) to {args.figure}")
        args.figure = None
    for what, target in (("the results table", args.table), ("the figure", args.figure)):
        if not target:
            continue
        if what == "the figure" and not str(target).lower().endswith(".svg"):
            _eprint(f"workbench study export: figure file {target!r}: the name must end in .svg")
            return 2
        try:
            kind = export_table(res, target)
        except (ValueError, OSError) as e:
            _eprint(f"workbench study export: {e}")
            return 2
        print(f"wrote {what} ({kind}) to {target}")
    return 0


def cmd_list(args) -> int:
    from workbench.store import SessionError
    from workbench.study.record import list_studies, studies_dir
    try:
        rows = list_studies()
        where = studies_dir()
    except SessionError as e:
        _eprint(f"workbench study list: {e}")
        return 2
    if not rows:
        print(f"no studies in {where} (start one with 'workbench study run STUDY.toml')")
        return 0
    for r in rows:
        r.refresh()                     # the record's statuses are a cache; the session files are the truth
        c = r.counts()
        print(f"{r.created[:16].replace('T', ' ')}  {c['finished']:3d}/{len(r.runs):<3d} finished  "
              f"{r.name}  ({r.folder})")
    return 0


def cmd_presets(args) -> int:
    from workbench.study.presets import list_study_presets, load_study_preset
    from workbench.study.definition import count_runs
    for name in list_study_presets():
        try:
            d = load_study_preset(name)
            print(f"{name:36s} {count_runs(d):4d} runs  {d.name}")
        except StudyError as e:
            print(f"{name:36s} (broken preset: {e.problems[0]})")
    return 0


def _run_options(p):
    p.add_argument("--backend", default="local", choices=("local", "ray"), help="where runs execute (default local)")
    p.add_argument("--workers", type=int, metavar="N", help="local backend: worker processes (default: cores / "
                                                              "torch threads per run)")
    p.add_argument("--threads", type=int, metavar="T", help="torch threads per run (default: 1 for MLPs)")
    p.add_argument("--address", metavar="A", help="ray backend: cluster address (auto, ray://head:10001, "
                                                  "host:6379); omitted, a local Ray instance is started")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--progress", action="store_true", help="progress line even when stderr is not a terminal")


def register(sub) -> None:
    """Add ``workbench study ...`` to ``workbench``'s argument parser."""
    s = sub.add_parser("study", help="run many runs as one experiment (seeds, grids, searches)",
                       description="Studies: a base experiment with seeds, grid axes and an optional search, "
                                   "run on a local pool or on Ray, with statistics over seeds (docs/studies.md).")
    ss = s.add_subparsers(dest="study_command", metavar="STUDY_COMMAND")
    s.set_defaults(func=lambda a: (s.print_help(), 2)[1])

    r = ss.add_parser("run", help="plan and run a study", description="Plan the study, write its record and "
                                                                       "run every run.")
    r.add_argument("study", help="study .toml file or study preset name ('workbench study presets')")
    _run_options(r)
    r.add_argument("--yes", action="store_true", help="launch even when the study plans more runs than its max_runs")
    r.add_argument("--folder", metavar="DIR", help="folder for the study record (default: a new folder in the "
                                                   "workspace's studies/)")
    r.add_argument("--sessions", metavar="DIR", help="folder for the runs' session files (default: runs/ beside "
                                                     "the record; on a cluster, shared storage)")
    r.set_defaults(func=cmd_run)

    rs = ss.add_parser("resume", help="continue a stopped or killed study",
                       description="Finished runs are kept, interrupted runs resume from their last checkpoint, "
                                   "unstarted runs start.")
    rs.add_argument("path", help="the study's folder or study.json")
    _run_options(rs)
    rs.add_argument("--retry-failed", action="store_true", help="run failed runs again from the start (their "
                                                                "session files are kept as <run>.h5.stale-N)")
    rs.set_defaults(func=cmd_resume)

    sh = ss.add_parser("show", help="the results table of a study")
    sh.add_argument("path", help="the study's folder or study.json")
    sh.add_argument("--runs", action="store_true", help="also list every run")
    sh.set_defaults(func=cmd_show)

    ex = ss.add_parser("export", help="write the results table as CSV, Markdown or LaTeX")
    ex.add_argument("path", help="the study's folder or study.json")
    ex.add_argument("--table", metavar="FILE", help="out.csv, out.md or out.tex")
    ex.add_argument("--figure", metavar="FILE", help="the ranking as out.svg (mean and CI over seeds, seeds as dots)")
    ex.add_argument("--sensitivity", metavar="KEY", help="draw the metric against this numeric axis into --figure "
                                                         "instead (CI band over seeds)")
    ex.set_defaults(func=cmd_export)

    ls = ss.add_parser("list", help="the workspace's studies")
    ls.set_defaults(func=cmd_list)

    pr = ss.add_parser("presets", help="the study presets that ship")
    pr.set_defaults(func=cmd_presets)
