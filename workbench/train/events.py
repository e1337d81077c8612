"""Events the engine yields. Small frozen dataclasses of plain numbers and numpy
arrays (never tensors on a device), so any listener (CLI, session writer, GUI
worker) can keep them without holding the engine's memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class RunStarted(Event):
    config_toml: str            # the full config actually used (split recorded)
    total_steps: int
    start_step: int             # > 0 when resumed
    device: str
    environment: dict           # library versions, device name, seed, ...
    split: dict                 # {"train": [...], "val": [...], "test": [...]} class/group names
    metric: str                 # "accuracy" or "mse"
    wall_time: float


@dataclass(frozen=True)
class StepMetrics(Event):
    step: int                   # meta-steps done so far (1-based)
    wall_time: float            # seconds since the run started
    metrics: dict               # name -> float, e.g. {"train/loss": .., "train/accuracy": ..}


@dataclass(frozen=True)
class Evaluation(Event):
    step: int
    wall_time: float
    phase: str                  # "val" or "test"
    metric: str                 # "accuracy" or "mse"
    mean: float                 # mean of per-task metric
    ci95: float                 # 1.96 * std / sqrt(n)
    loss_mean: float
    per_task: np.ndarray        # (n,) metric per episode
    per_task_loss: np.ndarray   # (n,)
    task_ids: tuple             # (n,) str
    families: tuple             # (n,) str
    embeddings: np.ndarray | None = None   # (n, d) task embeddings, or None
    embedding_method: str = "none"


@dataclass(frozen=True)
class Checkpoint(Event):
    step: int
    wall_time: float
    state: bytes                # torch.save'd dict of tensors and plain data (weights_only loadable)


@dataclass(frozen=True)
class Log(Event):
    level: str                  # "info" | "warning" | "error"
    message: str
    wall_time: float = 0.0


@dataclass(frozen=True)
class RunFinished(Event):
    step: int
    wall_time: float
    summary: dict = field(default_factory=dict)   # {"metric":..,"mean":..,"ci95":..}
    model_state: bytes = b""    # final model, safetensors bytes
    model_meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunFailed(Event):
    step: int
    wall_time: float
    message: str                # one clear sentence for the user
    detail: str = ""            # traceback for the log


@dataclass(frozen=True)
class RunCancelled(Event):
    step: int
    wall_time: float
    model_state: bytes = b""
    model_meta: dict = field(default_factory=dict)


TERMINAL = (RunFinished, RunFailed, RunCancelled)
