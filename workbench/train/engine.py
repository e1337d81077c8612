"""The engine: ``run(config)`` yields events, top to bottom in one readable loop.

    for event in run(cfg, cancel=stop_flag.is_set):
        ...

The engine knows nothing of its listeners (CLI, session recorder, GUI worker).
Everything that can go wrong in a run (a bad config, unreadable data, a NaN
loss, CUDA out of memory) ends it with a :class:`RunFailed` event that says
what happened in one sentence; a cancel request ends it within one meta-step
with :class:`RunCancelled`.
"""

from __future__ import annotations

import io
import json
import platform
import sys
import time
import traceback
from typing import Callable, Iterator

import numpy as np
import torch

import workbench
from workbench import config as C
from workbench.data import DataError, TaskBatch, build_sources
from workbench.data.base import episode_rng
from workbench.learners import build_learner
from workbench.models import pick_backbone
from workbench.train import memory
from workbench.train.evaluate import Cancelled, evaluate
from workbench.train.strategy import (accumulated_train_step, autocast_allowed, backward_meta_batch,  # noqa: F401
                                      pick_strategy, tasks_per_backward, train_context, uses_closed_form,
                                      vmap_is_exact)
from workbench.train.events import (Checkpoint, Evaluation, Event, Log, RunCancelled, RunFailed, RunFinished,
                                    RunStarted, StepMetrics)

TRAIN_SALT = 1000          # episode_rng salt of meta-training batches


class RunError(RuntimeError):
    """A failure with a message fit for the user."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("train.device = 'cuda' but no CUDA GPU is available here; use 'auto' or 'cpu'")
    return torch.device(name)


def upload(batch: TaskBatch, device: torch.device) -> TaskBatch:
    """The meta-batch on ``device`` without a host synchronisation: host tensors go through
    pinned memory with non-blocking copies (the host prepares the next step meanwhile)."""
    def move(t):
        if t.device.type == "cpu" and device.type == "cuda":
            return t.pin_memory().to(device, non_blocking=True)
        return t.to(device)
    return TaskBatch(move(batch.support_x), move(batch.support_y), move(batch.query_x), move(batch.query_y),
                     batch.tasks)


def cpu_threads(cfg, input_shape) -> int:
    """Torch CPU threads for this run (0: leave torch's setting alone).

    ``train.threads`` wins when set. Otherwise small MLPs run on one thread: their
    matrices are too small to gain from intra-op parallelism, and on a busy machine
    OpenMP's spinning threads made a digits ProtoNet run 14 times slower with 2
    threads than with 1 (measured here, 2 shared cores)."""
    if cfg.train.threads:
        return cfg.train.threads
    return 1 if pick_backbone(cfg.model, input_shape) == "mlp" else 0


def environment(device: torch.device, seed: int, cfg=None) -> dict:
    import h5py
    import sklearn
    env = {"program": "workbench", "program_version": workbench.__version__, "python": sys.version.split()[0],
           "platform": platform.platform(), "torch": torch.__version__, "numpy": np.__version__,
           "h5py": h5py.__version__, "sklearn": sklearn.__version__, "device": str(device),
           "cuda": torch.version.cuda or "", "seed": seed}
    if cfg is not None:    # who provided the learner, data source and backbone (plugins name themselves)
        from workbench import registry
        env.update({f"{kind}_component": who for kind, who in registry.provenance(cfg).items()})
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def sample_batch(source, seed: int, step: int, meta_batch: int, rank: int = 0, world: int = 1) -> list:
    """The tasks of meta-step ``step``: a pure function of (seed, step), so resuming and
    splitting the batch across ranks are exact. Rank r takes tasks r, r+world, ..."""
    rng = episode_rng(seed, step, TRAIN_SALT)
    tasks = [source.sample(rng, task_id=f"train-{step}-{i}") for i in range(meta_batch)]
    return tasks[rank::world]


def model_bytes(learner) -> bytes:
    from safetensors.torch import save
    return save({k: v.detach().cpu().contiguous() for k, v in learner.state_dict().items()})


def checkpoint_bytes(learner, optimizer, step: int) -> bytes:
    buf = io.BytesIO()
    torch.save({"step": step, "model": {k: v.detach().cpu() for k, v in learner.state_dict().items()},
                "optimizer": optimizer.state_dict()}, buf)
    return buf.getvalue()


def load_checkpoint(data: bytes) -> dict:
    """Read checkpoint bytes without executing code (weights_only)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def run(cfg: C.ExperimentConfig, *, cancel: Callable[[], bool] | None = None,
        resume: bytes | None = None, dist=None) -> Iterator[Event]:
    """Train and evaluate the experiment ``cfg``, yielding events as they happen."""
    t0 = time.perf_counter()
    cancel = cancel or (lambda: False)
    step = 0
    learner = optimizer = None
    try:
        problems = C.validate(cfg)
        if problems:
            raise RunError("the config is not valid: " + "; ".join(p.message for p in problems))
        device = pick_device(cfg.train.device)
        torch.manual_seed(cfg.train.seed)
        sources = build_sources(cfg)
        threads = cpu_threads(cfg, sources.train.input_shape)
        if threads:
            torch.set_num_threads(threads)
        learner = build_learner(cfg, sources.train.input_shape, sources.n_train_classes)
        if learner.spec.needs_train_classes:
            learner.set_train_classes(sources.train_classes)
        learner.strategy = pick_strategy(cfg, sources.train.input_shape, device, learner)
        chunk = tasks_per_backward(learner, learner.strategy)
        from workbench.embeddings import make_embedder
        embedder = make_embedder(cfg, learner)
        learner.to(device)
        optimizer = torch.optim.Adam(learner.parameters(), lr=cfg.learner.meta_lr)
        if resume is not None:
            state = load_checkpoint(resume)
            learner.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step = int(state["step"])
        if dist is not None:
            dist.broadcast_parameters(learner)
        yield RunStarted(config_toml=C.to_toml(cfg), total_steps=cfg.train.steps, start_step=step,
                         device=str(device), environment=environment(device, cfg.train.seed, cfg),
                         split=sources.split, metric=learner.metric_name(), wall_time=time.perf_counter() - t0)
        yield Log("info", f"{cfg.learner.name} on {cfg.data.dataset}: {sum(p.numel() for p in learner.parameters()):,} "
                          f"parameters, {pick_backbone(cfg.model, sources.train.input_shape)} backbone, "
                          f"strategy {learner.strategy}" + (" (backward per task)" if chunk else "")
                          + (("; the first step compiles the whole task, second order included (a minute or "
                              "two, once per shape: later runs reuse the compiled code)" if uses_closed_form(learner)
                              else "; the first step compiles the convolutions (up to a minute)")
                             if learner.strategy == "compiled" else "")
                          + f", device {device}", time.perf_counter() - t0)
        if cfg.train.precision == "bfloat16" and not autocast_allowed(cfg, learner.strategy):
            yield Log("warning", f"train.precision = 'bfloat16' is not used for {cfg.learner.name} with strategy "
                                 f"{learner.strategy} and norm {cfg.model.norm} (second-order gradients, or batch "
                                 f"norm under vmap; see engine.autocast_allowed): training in float32",
                      time.perf_counter() - t0)
        if cfg.train.strategy == "vmap" and learner.strategy != "vmap":
            yield Log("warning", f"train.strategy = 'vmap' runs as 'loop' here: {vmap_is_exact(cfg, learner)[1]}",
                      time.perf_counter() - t0)
        # memory guardrail: one task probed, scaled by the meta-batch, before the first step (train/memory.py);
        # not under torchrun, where a verdict reached on one rank alone would break the ranks' lock-step
        note = None if dist is not None else memory.check(
            cfg, learner, upload(TaskBatch.stack(sample_batch(sources.train, cfg.train.seed, 0, 1)), device), device,
            chunk)
        if note is not None and note[0] == "error":
            raise RunError(note[1])
        if note is not None:
            yield Log(note[0], note[1], time.perf_counter() - t0)

        tcfg = cfg.train
        window: list[dict] = []
        rank, world = (dist.rank, dist.world) if dist is not None else (0, 1)
        # learners whose training depends on its progress (MAML++: multi-step loss weights, derivative order,
        # cosine meta learning rate) define schedule(step, total_steps) -> factor of learner.meta_lr
        schedule = getattr(learner, "schedule", None)
        while step < tcfg.steps:
            if cancel():
                yield RunCancelled(step, time.perf_counter() - t0, model_bytes(learner), _meta(cfg, sources))
                return
            if schedule is not None:        # a learner with schedules sets them and scales the meta learning rate
                for group in optimizer.param_groups:
                    group["lr"] = cfg.learner.meta_lr * float(schedule(step, tcfg.steps))
            tasks = sample_batch(sources.train, tcfg.seed, step, cfg.learner.meta_batch, rank, world)
            batch = upload(TaskBatch.stack(tasks), device)
            with train_context(cfg, device, learner.strategy):
                if dist is not None:
                    out = dist.train_step(learner, batch, optimizer, cfg.learner.meta_batch, chunk=chunk)
                elif chunk:
                    out = accumulated_train_step(learner, batch, optimizer, chunk)
                else:
                    out = learner.train_step(batch, optimizer)
            step += 1
            loss = out["loss"]
            if device.type == "cpu" or step % tcfg.log_every == 0:
                if not torch.isfinite(loss).all():
                    raise RunError(f"the meta-training loss became {float(loss)} at step {step}: the run diverged; "
                                   f"lower learner.meta_lr or learner.inner_lr")
            window.append(out)
            if step % tcfg.log_every == 0 or step == tcfg.steps:
                metrics = {f"train/{k}": float(torch.stack([w[k].float() for w in window]).mean())
                           for k in window[0]}
                window.clear()
                yield StepMetrics(step, time.perf_counter() - t0, metrics)
            if tcfg.eval_every and step % tcfg.eval_every == 0 and sources.val is not None and step < tcfg.steps:
                ev = evaluate(learner, sources.val, tcfg.val_episodes, cfg.eval.seed, device, phase="val",
                              step=step, t0=t0, embedder=embedder, cancel=cancel)
                yield ev
            if tcfg.checkpoint_every and step % tcfg.checkpoint_every == 0 and step < tcfg.steps:
                yield Checkpoint(step, time.perf_counter() - t0, checkpoint_bytes(learner, optimizer, step))

        yield Checkpoint(step, time.perf_counter() - t0, checkpoint_bytes(learner, optimizer, step))
        yield Log("info", f"meta-training done after {step} steps; testing on {cfg.eval.episodes} episodes",
                  time.perf_counter() - t0)
        test = evaluate(learner, sources.test, cfg.eval.episodes, cfg.eval.seed, device, phase="test",
                        step=step, t0=t0, embedder=embedder, cancel=cancel)
        yield test
        summary = {"metric": test.metric, "mean": test.mean, "ci95": test.ci95, "episodes": len(test.per_task)}
        yield RunFinished(step, time.perf_counter() - t0, summary, model_bytes(learner), _meta(cfg, sources))
    except Cancelled:               # (only evaluate() raises it, so the learner exists: keep its weights)
        yield RunCancelled(step, time.perf_counter() - t0, model_bytes(learner), _meta(cfg, sources))
    except GeneratorExit:
        raise
    except (C.ConfigError, DataError, RunError) as e:
        yield RunFailed(step, time.perf_counter() - t0, str(e), traceback.format_exc())
    except torch.cuda.OutOfMemoryError:
        if learner is not None and step > 0:     # keep the weights of the last finished step in the session
            torch.cuda.empty_cache()
            yield Checkpoint(step, time.perf_counter() - t0, checkpoint_bytes(learner, optimizer, step))
        yield RunFailed(step, time.perf_counter() - t0,
                        "CUDA ran out of memory: lower learner.meta_batch, use first_order = true, or a smaller "
                        "backbone", traceback.format_exc())
    except Exception as e:  # anything else still ends the run with a message, never a crash
        yield RunFailed(step, time.perf_counter() - t0, f"{type(e).__name__}: {e}", traceback.format_exc())


def _meta(cfg, sources) -> dict:
    return {"config_toml": C.to_toml(cfg), "input_shape": json.dumps(list(sources.train.input_shape)),
            "n_train_classes": str(sources.n_train_classes), "learner": cfg.learner.name,
            "kind": "regression" if cfg.is_regression else "classification"}


def run_to_end(cfg, **kw) -> list[Event]:
    """Run and collect all events (for tests and scripts)."""
    return list(run(cfg, **kw))


def final_test(events) -> Evaluation | None:
    tests = [e for e in events if isinstance(e, Evaluation) and e.phase == "test"]
    return tests[-1] if tests else None
