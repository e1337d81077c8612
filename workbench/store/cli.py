"""``workbench sessions | show | export | resume``: the session store on the command line.

    workbench sessions                          table of the workspace's sessions, newest first
    workbench show SESSION                      everything a session holds, in words
    workbench export SESSION --model DIR --csv FILE
    workbench resume SESSION                    continue from the last checkpoint, into the same file

SESSION is a path, or a file name (with or without ``.h5``) in the workspace.
Registered by :func:`register`, which ``workbench/cli.py`` calls.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from workbench import format as F
from workbench.store.reader import SessionReader, SessionSummary
from workbench.store.schema import SessionError
from workbench.store.workspace import list_sessions, workspace_dir


def _eprint(*a):
    print(*a, file=sys.stderr, flush=True)


def resolve_session(spec: str) -> Path:
    """A session path from a path or a name in the workspace."""
    p = Path(spec).expanduser()
    if p.exists():
        return p
    ws = workspace_dir()
    for cand in (ws / spec, ws / f"{spec}.h5"):
        if cand.exists():
            return cand
    raise SessionError(f"session {spec!r} not found (neither a file nor a name in the workspace {str(ws)!r}); "
                       f"'workbench sessions' lists them")


def _setting(s: SessionSummary) -> str:
    if not s.learner:
        return ""
    return F.episode_setting(s.ways, s.shots)


def sessions_table(rows: list[SessionSummary]) -> str:
    head = ("STATUS", "DATASET", "LEARNER", "SETTING", "FINAL METRIC (95% CI)", "STEPS", "DATE", "FILE")
    lines = [head]
    for s in rows:
        metric = f"{s.metric} {F.metric_ci(s.metric, s.mean, s.ci95)}" if math.isfinite(s.mean) else "-"
        steps = f"{s.steps_done}/{s.total_steps}" if s.total_steps else ""
        lines.append((s.status, s.dataset, s.learner, _setting(s), metric, steps, s.created[:16].replace("T", " "),
                      Path(s.path).name))
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


def cmd_sessions(args) -> int:
    try:
        folder = workspace_dir()
        rows = list_sessions(folder)
    except SessionError as e:
        _eprint(f"workbench sessions: {e}")
        return 2
    if not rows:
        print(f"no sessions in {folder} (run one with 'workbench run')")
        return 0
    print(sessions_table(rows))
    for s in rows:
        if s.status == "damaged" and args.verbose:
            print(f"  {Path(s.path).name}: {s.message}")
    return 0


def describe(r: SessionReader) -> str:
    s = r.summary()
    out = [f"session   {r.path}",
           f"name      {s.name}",
           f"status    {r.status}" + (f": {r.failure_message}" if r.failure_message else ""),
           f"setup     {s.learner} on {s.dataset}, {_setting(s)}",
           f"created   {s.created}" + (f"   ended {s.ended}" if s.ended else ""),
           f"steps     {s.steps_done} of {s.total_steps}" + (f" (resumed {r.resumes}x)" if r.resumes else ""),
           f"result    {s.metric} {F.metric_ci(s.metric, s.mean, s.ci95)}"
           + (f" over {len(r.final_test().per_task)} test episodes" if r.final_test() else ""),
           f"schema    version {r.schema_version}"]
    env = r.environment
    if env:
        out.append("machine   " + ", ".join(f"{k} {env[k]}" for k in ("device", "torch", "cuda", "python", "seed")
                                            if env.get(k) not in (None, "")))
    out.append("curves")
    for name in r.metric_names():
        steps, _, values = r.metric(name)
        out.append(f"  {name:24s} {len(steps):8d} points, last {values[-1]:.5g} at step {steps[-1]}")
    evs = r.evaluations()
    out.append(f"evaluations {len(evs)}")
    for e in evs[-5:]:
        out.append(f"  {e.phase:4s} step {e.step:6d}: {e.metric} {F.metric_ci(e.metric, e.mean, e.ci95)} "
                   f"({len(e.per_task)} tasks, embedding {e.embedding_method}, projection {e.projection_method})")
    cks = r.checkpoints()
    out.append(f"checkpoints {len(cks)}" + (f", last at step {cks[-1][0]}" if cks else ""))
    mb = r.model_bytes()
    out.append(f"model     {len(mb):,} bytes (safetensors)" if mb else "model     none")
    log = [x for x in r.log() if x[1] != "info"][-3:]
    for _, level, msg in log:
        out.append(f"{level:9s} {msg.splitlines()[-1] if msg.strip() else ''}")
    return "\n".join(out)


def cmd_show(args) -> int:
    try:
        with SessionReader(resolve_session(args.session)) as r:
            print(describe(r))
    except SessionError as e:
        _eprint(f"workbench show: {e}")
        return 2
    return 0


def cmd_export(args) -> int:
    from workbench.store.export import export_csv, export_model
    if not args.model and not args.csv:
        _eprint("workbench export: say what to export: --model DIR and/or --csv FILE")
        return 2
    try:
        with SessionReader(resolve_session(args.session)) as r:
            if args.csv:
                n = export_csv(r, args.csv)
                print(f"wrote {n} metric points to {args.csv}")
            if args.model:
                res = export_model(r, args.model)
                print(f"wrote the model to {res['folder']}: {', '.join(res['files'])}")
                if res["torchscript"] != "ok":
                    print(f"  no TorchScript file: {res['torchscript']}")
    except SessionError as e:
        _eprint(f"workbench export: {e}")
        return 2
    return 0


def resume_events(path, *, cancel=None, **writer_options):
    """The events of resuming session ``path`` from its last checkpoint, recorded into the same file.

    Checks first: the session must not be running or finished and must hold a checkpoint.
    The engine restores model, optimiser and step from the checkpoint; meta-batches are a
    pure function of (seed, step), so the resumed curve continues the uninterrupted one."""
    from workbench.store.writer import SessionWriter, record
    from workbench.train.engine import run
    path = Path(path)
    with SessionReader(path) as r:
        if r.status == "running":
            raise SessionError(f"session file {str(path)!r} is still being written by a live process")
        if r.status == "finished":
            raise SessionError(f"session file {str(path)!r} already finished; nothing to resume")
        cfg = r.config
        ck = r.checkpoint_bytes()
    if ck is None:
        raise SessionError(f"session file {str(path)!r} holds no checkpoint to resume from (set "
                           f"train.checkpoint_every to make runs resumable); run it again instead")
    writer = SessionWriter.reopen(path, cfg, **writer_options)
    return record(run(cfg, cancel=cancel, resume=ck[1]), writer, cfg)


def cmd_resume(args) -> int:
    from workbench.train import events as E      # (not workbench.cli: the store must not reach the GUI layer)
    try:
        path = resolve_session(args.session)
        events = resume_events(path, projection=args.projection)
    except SessionError as e:
        _eprint(f"workbench resume: {e}")
        return 2
    code = 1
    try:
        for ev in events:
            if isinstance(ev, E.RunStarted):
                _eprint(f"workbench: resuming {path.name} at step {ev.start_step} of {ev.total_steps}")
            elif isinstance(ev, E.StepMetrics) and not args.quiet:
                _eprint(f"  step {ev.step}: " + "  ".join(f"{k} {v:.4g}" for k, v in ev.metrics.items()))
            elif isinstance(ev, E.RunFinished):
                s = ev.summary
                _eprint(f"finished: test {s['metric']} {F.metric_ci(s['metric'], s['mean'], s['ci95'])} "
                        f"(95% CI, {s['episodes']} episodes)")
                code = 0
            elif isinstance(ev, E.RunFailed):
                _eprint(f"workbench resume failed at step {ev.step}: {ev.message}")
            elif isinstance(ev, E.RunCancelled):
                _eprint(f"cancelled at step {ev.step}")
                code = 130
    except KeyboardInterrupt:
        _eprint("interrupted")
        return 130
    return code


def register(sub) -> None:
    """Add the store's subcommands to ``workbench``'s argument parser."""
    s = sub.add_parser("sessions", help="list the session files in the workspace",
                       description="A table of the workspace's sessions, newest first.")
    s.add_argument("-v", "--verbose", action="store_true", help="say why damaged files cannot be read")
    s.set_defaults(func=cmd_sessions)

    sh = sub.add_parser("show", help="describe one session", description="Everything a session file holds.")
    sh.add_argument("session", help="session file, or its name in the workspace")
    sh.set_defaults(func=cmd_show)

    ex = sub.add_parser("export", help="export a session's model and/or metrics",
                        description="Export the meta-trained model (safetensors + TOML config, TorchScript where "
                                    "the network traces) and/or every metric point as CSV.")
    ex.add_argument("session", help="session file, or its name in the workspace")
    ex.add_argument("--model", metavar="DIR", help="folder to write the model into")
    ex.add_argument("--csv", metavar="FILE", help="CSV file for every metric point")
    ex.set_defaults(func=cmd_export)

    rs = sub.add_parser("resume", help="continue a cancelled or interrupted run from its last checkpoint",
                        description="Continue a run from its last checkpoint, recording into the same file.")
    rs.add_argument("session", help="session file, or its name in the workspace")
    rs.add_argument("--projection", default="tsne", choices=("tsne", "pca", "none"),
                    help="2-D map of the final test's task embeddings (default tsne)")
    rs.add_argument("--quiet", action="store_true", help="no per-step progress lines")
    rs.set_defaults(func=cmd_resume)
