"""Write the golden session file of the current schema version into tests/data/.

    .venv/bin/python tests/data/make_golden_session.py

Makes ``session_v<N>.h5`` (a tiny run of fake events, a few KB) and
``session_v<N>.expected.json`` (what a reader must find in it). Run it once per
schema version and commit both; never regenerate the file of an older version:
tests/test_store_files.py checks that the current reader keeps reading every one.
"""

import json
from pathlib import Path

from workbench import config as C
from workbench.store import SessionReader, record, set_note
from workbench.store.fake import fake_run
from workbench.store.schema import SCHEMA_VERSION

HERE = Path(__file__).resolve().parent


def main():
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"name": "golden", "train.steps": 12, "train.log_every": 3,
                                                       "train.eval_every": 6, "train.checkpoint_every": 6})
    path = HERE / f"session_v{SCHEMA_VERSION}.h5"
    path.unlink(missing_ok=True)
    list(record(fake_run(cfg, val_tasks=4, test_tasks=5, dim=3), path, cfg, projection="pca", chunk_scale=1 / 64))
    set_note(path, "a golden note: ünïcode ✓", ["golden", f"v{SCHEMA_VERSION}"])     # (version 2 on)
    with SessionReader(path) as r:
        expected = {"schema_version": SCHEMA_VERSION, "status": r.status, "config_toml": r.config_toml,
                    "metrics": {n: [a.tolist() for a in r.metric(n)] for n in r.metric_names()},
                    "evaluations": [{"phase": e.phase, "step": e.step, "mean": e.mean, "ci95": e.ci95,
                                     "per_task": e.per_task.tolist(), "task_ids": e.task_ids,
                                     "families": e.families,
                                     "embeddings": None if e.embeddings is None else e.embeddings.tolist(),
                                     "projection": None if e.projection is None else e.projection.tolist(),
                                     "projection_method": e.projection_method} for e in r.evaluations()],
                    "checkpoints": r.checkpoints(), "environment": r.environment, "split": r.split,
                    "note": r.note, "tags": list(r.tags), "model_meta": r.model_meta}
    (HERE / f"session_v{SCHEMA_VERSION}.expected.json").write_text(json.dumps(expected, indent=1))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
