"""The layout of a session file (schema version 1), in one place.

A session file is written under HDF5 SWMR (single writer, multiple readers):
the writer creates *every* group and dataset, and sets every attribute, before
it switches SWMR on; after that it may only resize and write existing
datasets. So everything that changes during a run lives in datasets:

- fixed facts (config, names, created time, writer identity) are root/group
  attributes written before SWMR starts;
- the live state (status, heartbeat, steps done, final result) is one row of
  the compound dataset ``/state``, overwritten in place;
- text that arrives during the run (environment, split, failure message, the
  final model's metadata) is UTF-8 in 1-D ``uint8`` "blob" datasets resized to
  fit (variable-length strings are not SWMR-safe);
- metric curves are appendable compound datasets ``/metrics/NN`` (step,
  wall_time, value), one per metric name, named by the JSON list in the blob
  ``/metrics/names`` (slot ``NN`` holds ``names[NN]``);
- ragged per-evaluation arrays (per-task results, embeddings, projections,
  labels) are flat appendable datasets indexed by offsets in
  ``/evaluations/index``; checkpoints and log lines likewise.

docs/session-format.md describes every object; keep the two in step.
"""

from __future__ import annotations

import numpy as np

FORMAT = "workbench-session"
SCHEMA_VERSION = 1           # bump on any change a version-1 reader would misread; see docs/session-format.md

STATUSES = ("running", "finished", "failed", "cancelled", "interrupted")
STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}

METRIC_SLOTS = 32            # metric curves a file can hold (pre-created, SWMR cannot add datasets)
PHASES = ("val", "test")
PROJECTION_METHODS = ("none", "tsne", "pca", "umap")
LOG_LEVELS = ("info", "warning", "error")

HEARTBEAT_S = 0.5            # the writer's flush thread wakes this often (flush <= 1 s after an event)
STALE_S = 20.0               # a running file whose heartbeat is older than this has no live writer

STATE_DTYPE = np.dtype([
    ("status", "i1"),          # index into STATUSES
    ("created", "f8"),         # unix time the file was created
    ("ended", "f8"),           # unix time the run ended (nan while running)
    ("heartbeat", "f8"),       # unix time of the writer's last flush
    ("pid", "i8"),             # writer's process id (same host: liveness check)
    ("pid_start", "i8"),       # writer process start time in clock ticks (Linux /proc), -1 if unknown
    ("steps_done", "i8"),      # last meta-step recorded
    ("start_step", "i8"),      # step the latest run segment started from (> 0 after resume)
    ("resumes", "i8"),         # how many times the run was resumed
    ("wall_offset", "f8"),     # seconds added to the event wall times of the current segment
    ("final_mean", "f8"),      # final test metric (nan if none)
    ("final_ci95", "f8"),
    ("final_episodes", "i8"),
])

METRIC_DTYPE = np.dtype([("step", "i8"), ("wall_time", "f8"), ("value", "f8")])

EVAL_DTYPE = np.dtype([
    ("step", "i8"), ("wall_time", "f8"), ("phase", "i1"),
    ("mean", "f8"), ("ci95", "f8"), ("loss_mean", "f8"),
    ("task_start", "i8"), ("n_tasks", "i8"),          # rows of per_task / per_task_loss
    ("emb_start", "i8"), ("emb_dim", "i8"),           # elements of embeddings (n_tasks * emb_dim), dim 0: none
    ("proj_start", "i8"), ("proj_method", "i1"),      # elements of projection (n_tasks * 2), -1: none
    ("label_start", "i8"), ("label_len", "i8"),       # bytes of labels: JSON {task_ids, families, ...}
])

CHECKPOINT_DTYPE = np.dtype([("step", "i8"), ("wall_time", "f8"), ("start", "i8"), ("length", "i8")])
LOG_DTYPE = np.dtype([("wall_time", "f8"), ("level", "i1"), ("start", "i8"), ("length", "i8")])

# path -> (dtype, chunk rows) of every appendable dataset; blobs are uint8
APPENDABLE = {
    "evaluations/index": (EVAL_DTYPE, 64),
    "evaluations/per_task": (np.dtype("f8"), 1024),
    "evaluations/per_task_loss": (np.dtype("f8"), 1024),
    "evaluations/embeddings": (np.dtype("f4"), 4096),
    "evaluations/projection": (np.dtype("f4"), 2048),
    "evaluations/labels": (np.dtype("u1"), 8192),
    "checkpoints/index": (CHECKPOINT_DTYPE, 64),
    "checkpoints/data": (np.dtype("u1"), 1 << 16),
    "model/data": (np.dtype("u1"), 1 << 16),
    "model/meta": (np.dtype("u1"), 1024),
    "log/index": (LOG_DTYPE, 256),
    "log/text": (np.dtype("u1"), 4096),
    "run/environment": (np.dtype("u1"), 1024),
    "run/split": (np.dtype("u1"), 4096),
    "run/config_used": (np.dtype("u1"), 2048),
    "run/message": (np.dtype("u1"), 1024),
    "metrics/names": (np.dtype("u1"), 512),
}
for _i in range(METRIC_SLOTS):
    APPENDABLE[f"metrics/{_i:02d}"] = (METRIC_DTYPE, 512)

GROUPS = ("metrics", "evaluations", "checkpoints", "model", "log", "run", "config")
ROOT_ATTRS = ("format", "schema_version", "program_version", "created", "name", "dataset", "learner",
              "ways", "shots", "queries", "metric", "total_steps", "seed", "writer_host", "config_toml")


def slot_name(i: int) -> str:
    return f"metrics/{i:02d}"


class SessionError(Exception):
    """A session file that cannot be read or written; the message names the path and the problem."""
