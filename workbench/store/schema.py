"""The layout of a session file (schema version 2; version 1 still read), in one place.

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

Version 2 (this writer) differs from version 1 in what it stores only once and
what it can check: the config is stored once (root ``config_toml``; version 1
also wrote a ``/config`` group, ``run/config_used`` and a copy in
``model/meta``), every dataset carries HDF5's Fletcher-32 checksum per chunk,
checkpoint rows carry the CRC-32 of their bytes, ``model/meta`` the CRC-32 of
the model, and the root attribute ``attrs_crc32`` covers the root attributes.

docs/session-format.md describes every object; keep the two in step.
"""

from __future__ import annotations

import numpy as np

FORMAT = "workbench-session"
SCHEMA_VERSION = 2           # bump on any change an older reader would misread; see docs/session-format.md
READ_VERSIONS = (1, 2)       # every version this program reads

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

CHECKPOINT_DTYPE_V1 = np.dtype([("step", "i8"), ("wall_time", "f8"), ("start", "i8"), ("length", "i8")])
CHECKPOINT_DTYPE = np.dtype([("step", "i8"), ("wall_time", "f8"), ("start", "i8"), ("length", "i8"),
                             ("crc32", "u4")])     # version 2: CRC-32 of the checkpoint's bytes
LOG_DTYPE = np.dtype([("wall_time", "f8"), ("level", "i1"), ("start", "i8"), ("length", "i8")])

# path -> (dtype, chunk rows) of every appendable dataset of version 2; blobs are uint8
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
    "run/message": (np.dtype("u1"), 1024),
    "metrics/names": (np.dtype("u1"), 512),
}
for _i in range(METRIC_SLOTS):
    APPENDABLE[f"metrics/{_i:02d}"] = (METRIC_DTYPE, 512)

# version 1: the same, plus the never-read copy of the config, and checkpoint rows without a CRC
APPENDABLE_V1 = dict(APPENDABLE)
APPENDABLE_V1["checkpoints/index"] = (CHECKPOINT_DTYPE_V1, 64)
APPENDABLE_V1["run/config_used"] = (np.dtype("u1"), 2048)

NOTES = "notes"              # optional blob (any version): JSON {"note": str, "tags": [str]}, set after a run
NOTE_MAX_CHARS = 10_000
TAG_MAX_CHARS = 64
TAGS_MAX = 64

# fill values: a row the writer reserved but never wrote (a full disk, a kill) reads with step -1
FILL_STEP = -1
FILLED = ("evaluations/index", "checkpoints/index") + tuple(f"metrics/{i:02d}" for i in range(METRIC_SLOTS))


def appendable(version: int) -> dict:
    """path -> (dtype, chunk rows) of the appendable datasets of schema ``version``."""
    return APPENDABLE_V1 if version == 1 else APPENDABLE


def fill_row(dtype: np.dtype):
    """The fill value of an appendable compound dataset: zeros with step = -1."""
    row = np.zeros((), dtype)
    row["step"] = FILL_STEP
    return row


GROUPS = ("metrics", "evaluations", "checkpoints", "model", "log", "run")      # version 1 also had "config"
ROOT_ATTRS = ("format", "schema_version", "program_version", "created", "name", "dataset", "learner",
              "ways", "shots", "queries", "metric", "total_steps", "seed", "writer_host", "config_toml")
ATTRS_CRC = "attrs_crc32"    # version 2: CRC-32 of the ROOT_ATTRS (see attrs_crc)

# plausibility bounds of stored numbers (a crafted file must not make a reader allocate terabytes)
MAX_STEPS = 10**12
MAX_WAYS = 1_000_000


def attrs_crc(values: dict) -> int:
    """CRC-32 of the root attributes ``ROOT_ATTRS``, in that order, each as UTF-8 text of its value
    (numbers in decimal), joined by NUL. Variable-length strings live in HDF5's global heap, which
    has no checksum of its own; this covers them."""
    import zlib
    parts = []
    for k in ROOT_ATTRS:
        v = values[k]
        if isinstance(v, bytes):
            v = v.decode("utf-8", "surrogateescape")
        elif isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.ndarray) and v.shape == ():
            v = v.item()
        parts.append(str(v).encode("utf-8", "surrogateescape"))
    return zlib.crc32(b"\x00".join(parts)) & 0xFFFFFFFF


def slot_name(i: int) -> str:
    return f"metrics/{i:02d}"


class SessionError(Exception):
    """A session file that cannot be read or written; the message names the path and the problem."""
