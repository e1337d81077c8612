"""What a meta-learned model does on one task, step by step (the adaptation view's numbers).

Given a session file and a task, :func:`adaptation` rebuilds the learner the
session stored and re-runs its own test-time procedure on that task:

- the task is rebuilt exactly: a stored evaluation's task id
  ``"<split>-<seed>-<index>"`` names episode ``index`` of that split under that
  eval seed (:func:`workbench.train.evaluate.fixed_episodes`), and the session's
  config (data, split, ways, shots) gives the same sources; a new task is drawn
  the same way under a seed of the user's choice;
- the learner is the session's final model (:func:`workbench.store.export.load_model`)
  or, while the run is live or when it stopped early, its latest checkpoint;
- learners that adapt by gradient steps (MAML, FOMAML, ANIL, Meta-SGD, Reptile,
  the multi-task baseline) are adapted with 0, 1, ..., K steps (``learner.adapt(...,
  steps=k)``, each from the meta-learned weights; the inner loop is full-batch and
  deterministic, so adapting with k steps gives the k-th iterate of one K-step run),
  and the support and query sets are scored after each; step 0 is the
  meta-learned model itself, unadapted. With K above :data:`MAX_SHOWN_STEPS`
  only some step counts are computed (0, 1, 2, ..., K; see :func:`step_counts`);
- metric learners (ProtoNet, Matching Networks, ...) adapt without steps; for them
  the query and support features (``learner.features``, one pass over the
  episode, as the learner embeds it) and the class means of the support features
  (ProtoNet's prototypes) are projected to 2-D by PCA.

Everything returned is plain numpy (no tensors): the window draws it, tests read it.
Torch is imported only when a computation runs, so the window can import this module
at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

#: The most step counts computed for one task (each adaptation restarts from the meta-learned weights).
MAX_SHOWN_STEPS = 12
#: Points of the regression curves (prediction and true function) over the input range.
GRID_POINTS = 200
SPLITS = ("train", "val", "test")
_TASK_ID = re.compile(r"(train|val|test)-(\d+)-(\d+)")


class AdaptationError(ValueError):
    """A task or session the adaptation view cannot show, with one sentence saying why."""


@dataclass(frozen=True)
class TaskRef:
    """Episode ``index`` of the meta-``split`` split under ``seed`` (what a task id names)."""

    split: str = "test"
    seed: int = 0
    index: int = 0

    @property
    def task_id(self) -> str:
        return f"{self.split}-{self.seed}-{self.index:05d}"


def parse_task_id(task_id: str) -> TaskRef:
    """The :class:`TaskRef` of a stored task id such as ``"test-1234-00017"``."""
    m = _TASK_ID.fullmatch(str(task_id).strip())
    if not m:
        raise AdaptationError(f"task id {task_id!r} is not of the form <split>-<seed>-<index>, "
                              f"e.g. 'test-1234-00017'")
    return TaskRef(m.group(1), int(m.group(2)), int(m.group(3)))


def step_counts(k: int, most: int = MAX_SHOWN_STEPS) -> list[int]:
    """The inner-step counts shown for a K-step adaptation: all of 0..K when K < ``most``, else
    ``most`` counts from 0 to K, spaced evenly on a log scale (the early steps change most)."""
    k = max(0, int(k))
    if k < most:
        return list(range(k + 1))
    picks = np.unique(np.round(np.geomspace(1, k, most - 1)).astype(int))
    return [0] + [int(p) for p in picks]


@dataclass
class AdaptationResult:
    """One task, before and after each adaptation step. Arrays are numpy; S = len(steps)."""

    kind: str                       # "classification" | "regression"
    task_id: str
    family: str
    learner: str                    # the learner's label, e.g. "MAML"
    how: str                        # one line on how it adapts (its spec's help)
    model: str                      # which weights: "final model after step 300" / "checkpoint at step 100"
    model_step: int
    metric: str                     # "accuracy" | "mse"
    has_steps: bool                 # the learner adapts by gradient steps
    steps: np.ndarray               # (S,) inner-step counts; [0] for metric learners (no steps)
    inner_lr: float                 # the test-time inner learning rate used (nan without steps)
    support_x: np.ndarray
    support_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray
    query_metric: np.ndarray        # (S,) accuracy (fraction) or MSE on the query set after each count
    query_loss: np.ndarray          # (S,) cross-entropy or MSE on the query set
    support_loss: np.ndarray        # (S,) the loss the inner loop minimises, on the support set
    stored_metric: float = float("nan")   # the session's own value for this task (nan: not evaluated)
    # classification
    class_names: tuple = ()
    query_pred: np.ndarray | None = None   # (S, n_query) predicted way after each count
    # regression
    grid_x: np.ndarray | None = None       # (G,)
    grid_true: np.ndarray | None = None    # (G,) the task's noise-free function
    grid_pred: np.ndarray | None = None    # (S, G) the model's prediction after each count
    # metric learners: features in 2-D (PCA of support, query and prototypes together)
    support_2d: np.ndarray | None = None   # (n_support, 2)
    query_2d: np.ndarray | None = None     # (n_query, 2)
    prototypes_2d: np.ndarray | None = None  # (ways, 2)
    explained: np.ndarray | None = None    # (2,) share of the variance along each axis
    notes: list = field(default_factory=list)   # sentences the view shows under its plots

    @property
    def final_metric(self) -> float:
        return float(self.query_metric[-1])


def _pca_2d(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(z, np.float64)
    zc = z - z.mean(0, keepdims=True)
    if len(z) < 2 or not np.any(zc):
        return np.zeros((len(z), 2)), np.zeros(2)
    _, s, vt = np.linalg.svd(zc, full_matrices=False)
    k = min(2, vt.shape[0])
    xy = zc @ vt[:k].T
    if k < 2:
        xy = np.hstack([xy, np.zeros((len(z), 1))])
    var = s ** 2
    share = np.zeros(2)
    share[:k] = var[:k] / var.sum()
    # a sign convention, so the same task looks the same on every call
    signs = np.sign(xy[np.abs(xy).argmax(0), np.arange(2)])
    signs[signs == 0] = 1
    return xy * signs, share


def _load_learner(reader, cfg, sources):
    """(learner in eval mode, description, step) from the session's final model or latest checkpoint."""
    import io

    import torch

    from workbench.store.export import load_model
    from workbench.store.schema import SessionError
    if reader.model_bytes():
        try:
            m = load_model(reader.path)
        except SessionError as e:
            raise AdaptationError(str(e)) from None
        steps = int(reader.steps_done)
        return m.learner, f"final model after step {steps}", steps
    ck = reader.checkpoint_bytes()
    if ck is None:
        raise AdaptationError(
            "this session holds no model yet: a run saves one at its end, or every 'Checkpoint every' steps "
            "(train.checkpoint_every) when that is set")
    step, data = ck
    from workbench.learners import build_learner
    learner = build_learner(cfg, tuple(sources.train.input_shape), sources.n_train_classes)
    if learner.spec.needs_train_classes:
        learner.set_train_classes(sources.train_classes)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        learner.load_state_dict(state["model"], strict=True)
    except Exception as e:
        raise AdaptationError(f"the checkpoint at step {step} cannot be loaded into the network its config "
                              f"describes ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    learner.eval()
    return learner, f"checkpoint at step {step}", int(step)


def _stored_metric(reader, task_id: str) -> float:
    """The session's own metric for ``task_id`` (latest evaluation that has it), or nan."""
    try:
        evals = reader.evaluations()
    except Exception:
        return float("nan")
    for ev in reversed(evals):
        ids = list(ev.task_ids)
        if task_id in ids:
            return float(ev.per_task[ids.index(task_id)])
    return float("nan")


def adaptation(session, task: TaskRef | str, *, steps: int | None = None,
               cancel: Callable[[], bool] | None = None, stored_metric: float | None = None) -> AdaptationResult:
    """The adaptation of one task by the model a session holds (see the module docstring).

    ``session``: a session ``.h5`` path or an open :class:`~workbench.store.reader.SessionReader`;
    ``task``: a :class:`TaskRef` or a stored task id; ``steps``: inner steps to show (default the
    session's ``learner.test_inner_steps``). ``cancel()`` returning True stops between steps
    (:class:`AdaptationError`). ``stored_metric``: the session's value for this task when the caller
    already holds it (the window's task list), else it is read from the session's evaluations."""
    from workbench.store.reader import SessionReader
    from workbench.store.schema import SessionError
    ref = parse_task_id(task) if isinstance(task, str) else task
    if ref.split not in SPLITS:
        raise AdaptationError(f"split {ref.split!r} is not one of {', '.join(SPLITS)}")
    own = not isinstance(session, SessionReader)
    try:
        reader = SessionReader(Path(session)) if own else session
    except (SessionError, OSError) as e:
        raise AdaptationError(str(e)) from None
    try:
        return _adaptation(reader, ref, steps, cancel or (lambda: False), stored_metric)
    finally:
        if own:
            reader.close()


def _adaptation(reader, ref: TaskRef, steps, cancel, stored) -> AdaptationResult:
    import torch
    from threadpoolctl import threadpool_limits

    from workbench.data import DataError, build_sources
    from workbench.data.base import episode_rng
    from workbench.learners.base import task_loss, task_metric
    from workbench.store.schema import SessionError
    from workbench.train.evaluate import SALT

    try:
        cfg = reader.config
    except SessionError as e:
        raise AdaptationError(str(e)) from None
    try:
        sources = build_sources(cfg)
    except (DataError, ValueError) as e:
        raise AdaptationError(f"the session's data cannot be loaded: {e}") from None
    source = {"train": sources.train, "val": sources.val, "test": sources.test}[ref.split]
    if source is None:
        raise AdaptationError(f"this session has no meta-{ref.split} split")
    rng = episode_rng(ref.seed, ref.index, SALT[ref.split])
    true_f = None
    if hasattr(source, "sample_with_function"):
        t, true_f = source.sample_with_function(rng, ref.task_id)
    else:
        t = source.sample(rng, ref.task_id)
    learner, model_desc, model_step = _load_learner(reader, cfg, sources)
    spec = learner.spec
    has_steps = bool(spec.inner_loop or "test_inner_steps" in spec.fields)
    lc = cfg.learner
    k_max = lc.test_inner_steps if steps is None else int(steps)
    counts = step_counts(k_max) if has_steps else [0]
    kind = learner.kind
    regression = kind == "regression"
    grid = None
    if regression:
        from workbench.data.synthetic import X_RANGE
        grid = torch.linspace(X_RANGE[0], X_RANGE[1], GRID_POINTS).reshape(-1, 1)

    q_metric, q_loss, s_loss, q_pred, g_pred = [], [], [], [], []
    with threadpool_limits(limits=1):
        for k in counts:
            if cancel():
                raise AdaptationError("cancelled")
            state = learner.adapt(t.support_x, t.support_y, steps=k) if has_steps else \
                learner.adapt(t.support_x, t.support_y)
            with torch.no_grad():
                out = learner.predict(state, t.query_x)
                out_s = learner.predict(state, t.support_x)
                q_loss.append(float(task_loss(kind, out, t.query_y)))
                q_metric.append(float(task_metric(kind, out, t.query_y)))
                s_loss.append(float(task_loss(kind, out_s, t.support_y)))
                if regression:
                    g_pred.append(learner.predict(state, grid).reshape(-1).numpy().astype(np.float64))
                else:
                    q_pred.append(out.argmax(-1).numpy())
        res = AdaptationResult(
            kind=kind, task_id=ref.task_id, family=str(t.family), learner=spec.label, how=spec.help,
            model=model_desc,
            model_step=model_step, metric=learner.metric_name(), has_steps=has_steps,
            steps=np.asarray(counts, np.int64), inner_lr=float(lc.test_inner_lr) if has_steps else float("nan"),
            support_x=t.support_x.numpy(), support_y=t.support_y.numpy(), query_x=t.query_x.numpy(),
            query_y=t.query_y.numpy(), query_metric=np.asarray(q_metric), query_loss=np.asarray(q_loss),
            support_loss=np.asarray(s_loss),
            stored_metric=float(stored) if stored is not None else _stored_metric(reader, ref.task_id),
            class_names=tuple(t.class_names))
        if regression:
            res.grid_x = grid.reshape(-1).numpy().astype(np.float64)
            res.grid_pred = np.stack(g_pred)
            if true_f is not None:
                res.grid_true = np.asarray(true_f(res.grid_x[:, None]), np.float64).reshape(-1)
            if cfg.model.norm == "batch":
                res.notes.append("batch norm uses the statistics of the inputs given, so the curve (200 grid "
                                 "points) can differ slightly from the predictions at the query points")
        else:
            res.query_pred = np.stack(q_pred)
            if spec.head == "none" and not has_steps:
                _embed(res, learner, t)
    if has_steps and len(counts) < k_max + 1:
        res.notes.append(f"{len(counts)} of the {k_max + 1} step counts 0..{k_max} are computed")
    return res


def _embed(res: AdaptationResult, learner, t) -> None:
    import torch

    with torch.no_grad():
        z = learner.features(torch.cat([t.support_x, t.query_x])).reshape(len(t.support_x) + len(t.query_x), -1)
    z = z.numpy().astype(np.float64)
    ns = len(t.support_x)
    zs, zq = z[:ns], z[ns:]
    sy = t.support_y.numpy()
    ways = int(sy.max()) + 1
    protos = np.stack([zs[sy == c].mean(0) for c in range(ways)])
    xy, share = _pca_2d(np.vstack([zs, zq, protos]))
    res.support_2d, res.query_2d, res.prototypes_2d = xy[:ns], xy[ns:ns + len(zq)], xy[ns + len(zq):]
    res.explained = share


def session_tasks(session) -> tuple[list[str], list[str], np.ndarray, str]:
    """(task ids, families, metric values, where) of the newest evaluation of a session: the final
    test when there is one, else the latest validation; empty lists when none is stored yet."""
    from workbench.store.reader import SessionReader
    own = not isinstance(session, SessionReader)
    r = SessionReader(Path(session)) if own else session
    try:
        evals = r.evaluations()
        if not evals:
            return [], [], np.zeros(0), ""
        tests = [e for e in evals if e.phase == "test"]
        ev = tests[-1] if tests else evals[-1]
        phase = {"val": "validation", "test": "test"}.get(ev.phase, ev.phase)
        return list(ev.task_ids), list(ev.families), np.asarray(ev.per_task, np.float64), \
            f"{phase} evaluation at step {ev.step}"
    finally:
        if own:
            r.close()


__all__ = ["AdaptationError", "AdaptationResult", "TaskRef", "adaptation", "parse_task_id", "session_tasks",
           "step_counts", "MAX_SHOWN_STEPS"]
