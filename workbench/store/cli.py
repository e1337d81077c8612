"""``workbench sessions | show | export | resume | tag``: the session store on the command line.

    workbench sessions [--search TEXT]          table of the workspace's sessions, newest first
    workbench show SESSION                      everything a session holds, in words
    workbench export SESSION --model DIR --csv FILE [--force]
    workbench resume SESSION                    continue from the last complete checkpoint, into the same file
    workbench tag SESSION --note TEXT --tag a --tag b

SESSION is a path, or a file name (with or without ``.h5``) in the workspace.
Registered by :func:`register`, which ``workbench/cli.py`` calls. Also here: the
recorder ``workbench run`` uses (:func:`recorder_for_cli`) and the signal
handling of headless runs (:class:`StopOnSignal`).
"""

from __future__ import annotations

import math
import signal
import sys
import threading
from pathlib import Path

from workbench import format as F
from workbench.store.reader import SessionReader, SessionSummary
from workbench.store.schema import SessionError
from workbench.store.workspace import list_sessions, new_session_path, workspace_dir
from workbench.store.writer import SessionWriter, record


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
    query = " ".join([*(getattr(args, "search", None) or []), *(f"tag:{t}" for t in getattr(args, "tag", None) or [])])
    try:
        folder = workspace_dir()
        rows = list_sessions(folder, query=query or None)
    except SessionError as e:
        _eprint(f"workbench sessions: {e}")
        return 2
    if not rows:
        print(f"no sessions match {query!r} in {folder}" if query else
              f"no sessions in {folder} (run one with 'workbench run')")
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
    from workbench.analysis.reported import reader_lines     # reported vs reproduced, when a recipe applies
    out += [f"recipe    {line}" for line in reader_lines(r)]
    if r.note or r.tags:
        out.append(f"note      {r.note}" + (f"   tags {', '.join(r.tags)}" if r.tags else ""))
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
                n = export_csv(r, args.csv, force=args.force)
                print(f"wrote {n} metric points to {args.csv}")
            if args.model:
                res = export_model(r, args.model, force=args.force)
                print(f"wrote the model to {res['folder']}: {', '.join(res['files'])}")
                if res["torchscript"] != "ok":
                    print(f"  no TorchScript file: {res['torchscript']}")
    except SessionError as e:
        _eprint(f"workbench export: {e}")
        return 2
    return 0


RESUMABLE = ("cancelled", "interrupted", "failed")


def resume_events(path, *, cancel=None, **writer_options):
    """The events of resuming session ``path`` from its last complete checkpoint, recorded into the
    same file.

    Everything is checked before anything changes: the session must be cancelled, interrupted or
    failed (never running, finished, or of an unknown status) and hold a checkpoint whose bytes
    are complete (checksum, version 2) and load; a checkpoint cut short (a full disk) is passed
    over for the one before, and the run's log says so. The engine restores model, optimiser and
    step from it; meta-batches are a pure function of (seed, step), so the resumed curve continues
    the uninterrupted one. ``writer_options`` go to the writer (``projection=...``)."""
    from workbench.train import events as E
    from workbench.train.engine import load_checkpoint, run
    path = Path(path)
    where = f"session file {str(path)!r}"
    with SessionReader(path) as r:
        if r.status == "running":
            raise SessionError(f"{where} is still being written by a live process")
        if r.status == "finished":
            raise SessionError(f"{where} already finished; nothing to resume")
        if r.status not in RESUMABLE:
            raise SessionError(f"{where} has the status {r.status!r}, which cannot be resumed")
        cfg = r.config
        stored = r.checkpoints()
        chosen = None
        for step, data in r.complete_checkpoints():
            try:
                state = load_checkpoint(data)
                if int(state["step"]) == step:
                    chosen = (step, data)
                    break
            except Exception:  # torch refuses a cut or foreign checkpoint in many ways: try the one before
                continue
    if chosen is None:
        if stored:
            raise SessionError(f"{where} holds {len(stored)} checkpoint(s) but none is complete; run it again "
                               f"instead")
        raise SessionError(f"{where} holds no checkpoint to resume from (set train.checkpoint_every to make "
                           f"runs resumable); run it again instead")
    skipped = [s for s, _ in stored if s > chosen[0]]
    writer_options.setdefault("cancel", cancel)
    writer = SessionWriter.reopen(path, cfg, **writer_options)

    def events():
        if skipped:
            yield E.Log("warning", f"the checkpoint of step {skipped[-1]} is incomplete (the run ended while it "
                                   f"was written); resuming from step {chosen[0]}", 0.0)
        yield from run(cfg, cancel=cancel, resume=chosen[1])

    return record(events(), writer, cfg)


def cmd_resume(args) -> int:
    from workbench.train import events as E      # (not workbench.cli: the store must not reach the GUI layer)
    stop = StopOnSignal()
    try:
        path = resolve_session(args.session)
        events = resume_events(path, projection=args.projection, cancel=stop.requested)
    except SessionError as e:
        _eprint(f"workbench resume: {e}")
        return 2
    code = 1
    try:
        with stop:
            for ev in events:
                if isinstance(ev, E.Log) and ev.level != "info":
                    _eprint(f"  {ev.level}: {ev.message}")
                if isinstance(ev, E.RunStarted):
                    stop.started = True
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
    s.add_argument("--search", action="append", metavar="TEXT",
                   help="only sessions whose name, dataset, learner, status, note, tags or file name hold every "
                        "word (tag:NAME matches a tag exactly)")
    s.add_argument("--tag", action="append", metavar="TAG", help="only sessions with this tag (repeatable)")
    s.set_defaults(func=cmd_sessions)

    tg = sub.add_parser("tag", help="set a session's note and tags",
                        description="Set the note of a session and add or remove its tags (stored in the "
                                    "session file; the file is rewritten safely, never left half-written).")
    tg.add_argument("session", help="session file, or its name in the workspace")
    tg.add_argument("--note", help="the note (replaces the old one; '' removes it)")
    tg.add_argument("--tag", action="append", default=[], metavar="TAG", help="add a tag (repeatable)")
    tg.add_argument("--untag", action="append", default=[], metavar="TAG", help="remove a tag (repeatable)")
    tg.set_defaults(func=cmd_tag)

    sh = sub.add_parser("show", help="describe one session", description="Everything a session file holds.")
    sh.add_argument("session", help="session file, or its name in the workspace")
    sh.set_defaults(func=cmd_show)

    ex = sub.add_parser("export", help="export a session's model and/or metrics",
                        description="Export the meta-trained model (safetensors + TOML config, TorchScript where "
                                    "the network traces) and/or every metric point as CSV.")
    ex.add_argument("session", help="session file, or its name in the workspace")
    ex.add_argument("--model", metavar="DIR", help="folder to write the model into")
    ex.add_argument("--csv", metavar="FILE", help="CSV file for every metric point")
    ex.add_argument("--force", action="store_true",
                    help="replace existing export files (never a session file, never the session itself)")
    ex.set_defaults(func=cmd_export)

    rs = sub.add_parser("resume", help="continue a cancelled or interrupted run from its last checkpoint",
                        description="Continue a run from its last checkpoint, recording into the same file.")
    rs.add_argument("session", help="session file, or its name in the workspace")
    rs.add_argument("--projection", default="tsne", choices=("tsne", "pca", "none"),
                    help="2-D map of the final test's task embeddings (default tsne)")
    rs.add_argument("--quiet", action="store_true", help="no per-step progress lines")
    rs.set_defaults(func=cmd_resume)


def cmd_tag(args) -> int:
    from workbench.store.notes import set_note
    try:
        path = resolve_session(args.session)
        with SessionReader(path) as r:
            tags = [t for t in r.tags if t not in set(args.untag)] + list(args.tag)
        s = set_note(path, args.note, tags)
    except SessionError as e:
        _eprint(f"workbench tag: {e}")
        return 2
    print(f"{Path(s.path).name}: note {s.note!r}" + (f", tags {', '.join(s.tags)}" if s.tags else ", no tags"))
    return 0


# -- the recorder of `workbench run`, and its signals ----------------------------------------------
class StopOnSignal:
    """SIGINT (Ctrl-C) and SIGTERM during a headless run, as a context manager.

    Once the run has started (set ``started`` on ``RunStarted``), the first signal asks the engine
    to stop: :meth:`requested` turns true, the engine ends within a meta-step or an evaluation
    episode with ``RunCancelled`` carrying the latest weights, and the recorder finalises the file
    as "cancelled" (a projection under way at the end is skipped). Before the run has started
    (loading data: nothing to keep) or at a second signal, ``KeyboardInterrupt`` is raised at once,
    which the recorder also finalises as "cancelled". Outside the main thread it does nothing."""

    SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s)

    def __init__(self, *, immediate: bool = False):
        """``immediate``: every signal interrupts at once (under torchrun, where ranks that stopped at
        different steps would wait for each other forever)."""
        self.immediate = immediate
        self.flag = threading.Event()
        self.started = False
        self.received: int | None = None
        self._old: dict = {}

    def requested(self) -> bool:
        return self.flag.is_set()

    def _handle(self, signum, frame):
        self.received = signum
        if self.started and not self.flag.is_set() and not self.immediate:
            self.flag.set()
            return
        raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                try:
                    self._old[s] = signal.signal(s, self._handle)
                except (ValueError, OSError):
                    pass
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            try:
                signal.signal(s, old)
            except (ValueError, OSError, TypeError):
                pass
        self._old.clear()
        return False


def _check_writable(p: Path) -> None:
    """SessionError unless a session file can be created at ``p`` (checked before the run starts)."""
    import os
    import tempfile
    folder = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".workbench-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SessionError(f"session file {str(p)!r} cannot be created: {e.strerror or e}") from None


class CliRecorder:
    """What ``workbench run`` uses: a session path and ``record(events)``; the session file is
    created when ``record`` is called (before the first event), so an unwritable location is
    one sentence and exit status 2, never a traceback."""

    def __init__(self, cfg, path: Path, *, resume: bool = False):
        self.cfg, self.path, self.resume = cfg, Path(path), resume

    def record(self, events, cancel=None, **writer_options):
        writer_options.setdefault("cancel", cancel)
        try:
            if self.resume:
                writer = SessionWriter.reopen(self.path, self.cfg, **writer_options)
            else:
                writer = SessionWriter(self.path, self.cfg, **writer_options)
        except SessionError as e:
            close = getattr(events, "close", None)
            if close is not None:
                close()
            _eprint(f"workbench run: {e}")
            raise SystemExit(2) from None
        return record(events, writer, self.cfg)


def recorder_for_cli(cfg, args) -> CliRecorder:
    """The recorder of ``workbench run``: ``--session FILE`` or a new file in the workspace."""
    name = getattr(args, "session", None)
    try:
        if name:
            p = Path(name).expanduser()
            if p.suffix != ".h5":
                p = p.with_name(p.name + ".h5")
            if p.exists():
                raise SessionError(f"session file {str(p)!r} already exists; choose a new file name "
                                   f"(or 'workbench resume {p}' to continue it)")
        else:
            p = new_session_path(cfg)
        _check_writable(p)
    except SessionError as e:
        _eprint(f"workbench run: {e}")
        raise SystemExit(2) from None
    return CliRecorder(cfg, p)
