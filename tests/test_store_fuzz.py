"""Seeded fuzzing of a real session file: random byte flips and truncations. Every damaged copy
must read back as exactly the original data or raise SessionError: never another exception, never a
hang, never wrong numbers reported as good (schema version 2 checksums every byte that carries data)."""

import time

import numpy as np
import pytest

from workbench import config as C
from workbench.store import SessionError, SessionReader, read_summary, record, set_note
from workbench.store.fake import fake_run

pytestmark = pytest.mark.timeout(120)
FLIPS, CUTS = 220, 80


def everything(path):
    """Every value a reader hands out, as plain comparable data."""
    s = read_summary(path)
    with SessionReader(path) as r:
        out = {"summary": (s.name, s.status, s.dataset, s.learner, s.ways, s.shots, s.metric, repr(s.mean),
                           repr(s.ci95), s.created, s.ended, s.steps_done, s.total_steps, s.note, s.tags),
               "config": r.config_toml, "env": r.environment, "split": r.split,
               "message": r.failure_message, "meta": r.model_meta, "names": r.metric_names(),
               "model": r.model_bytes(), "checkpoints": r.checkpoints(),
               "checkpoint": r.checkpoint_bytes(), "log": r.log(), "status": r.status, "resumes": r.resumes}
        for n in r.metric_names():
            out["metric " + n] = [a.tobytes() for a in r.metric(n)]
        out["evaluations"] = [(e.phase, e.step, repr(e.mean), repr(e.ci95), e.per_task.tobytes(),
                               e.per_task_loss.tobytes(), e.task_ids, e.families,
                               None if e.embeddings is None else e.embeddings.tobytes(),
                               None if e.projection is None else e.projection.tobytes(), e.projection_method)
                              for e in r.evaluations()]
        r.verify(skip=())
    return out


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 12, "train.log_every": 2,
                                                       "train.eval_every": 6, "train.checkpoint_every": 4})
    path = tmp_path_factory.mktemp("fuzz") / "s.h5"
    events = list(fake_run(cfg, val_tasks=5, test_tasks=6, dim=3, checkpoint=bytes(range(256)) * 3))
    from workbench.train import events as E
    events[-1] = E.RunFinished(events[-1].step, events[-1].wall_time, events[-1].summary, b"model-bytes" * 50,
                               {"input_shape": "[1]", "n_train_classes": "0", "learner": "maml",
                                "kind": "regression"})
    list(record(iter(events), path, cfg, projection="pca", chunk_scale=1 / 32))
    set_note(path, "fuzzed", ["fuzz"])
    return path, path.read_bytes(), everything(path)


def test_random_flips_and_truncations_give_the_original_data_or_a_session_error(session, tmp_path):
    path, original, truth = session
    rng = np.random.default_rng(20261201)
    target = tmp_path / "f.h5"
    outcomes = {"same": 0, "refused": 0}
    t0 = time.perf_counter()
    for case in range(FLIPS + CUTS):
        data = bytearray(original)
        if case < FLIPS:
            for _ in range(int(rng.integers(1, 4))):
                at = int(rng.integers(0, len(data)))
                data[at] ^= int(rng.integers(1, 256))
            what = "flip"
        else:
            data = data[:int(rng.integers(0, len(data)))]
            what = "cut"
        target.write_bytes(bytes(data))
        try:
            got = everything(target)
        except SessionError as e:
            assert str(e) and "\n" not in str(e), (case, what, str(e))
            outcomes["refused"] += 1
            continue
        assert got == truth, (case, what, [k for k in truth if got.get(k) != truth[k]])
        outcomes["same"] += 1
    took = time.perf_counter() - t0
    print(f"fuzz: {FLIPS} flips + {CUTS} truncations of a {len(original):,}-byte session: {outcomes['same']} read "
          f"back unchanged, {outcomes['refused']} refused with SessionError, {took:.1f} s")
    assert outcomes["refused"] > 0.5 * (FLIPS + CUTS) and took < 60
