"""The adaptation view's numbers (Qt-free): a stored task rebuilt, adapted step by step."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from workbench import config as C
from workbench import store
from workbench.analysis import adaptation as A
from workbench.data import build_sources
from workbench.store.export import load_model
from workbench.train import events as E
from workbench.train.engine import run
from workbench.train.evaluate import fixed_episodes

_CACHE = {}


def _session(name, cfg):
    if name not in _CACHE:
        import tempfile
        from pathlib import Path
        path = Path(tempfile.mkdtemp(prefix="wb-adapt-")) / f"{name}.h5"
        for _ in store.record(run(cfg), path, cfg):
            pass
        _CACHE[name] = path
    return _CACHE[name]


def sinusoid_session():
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{
        "train.steps": 25, "train.eval_every": 0, "eval.episodes": 8, "learner.meta_batch": 4,
        "model.hidden": [16, 16], "learner.test_inner_steps": 4, "learner.test_inner_lr": 0.02,
        "train.threads": 1})
    return _session("sinusoid", cfg)


def omniglot_session():
    cfg = C.replace(C.default_config(), **{"train.steps": 6, "train.eval_every": 0, "eval.episodes": 8,
                                           "model.filters": 8, "train.threads": 1})
    return _session("omniglot", cfg)


def test_sinusoid_maml_steps_match_the_inner_loop_done_by_hand():
    path = sinusoid_session()
    res = A.adaptation(path, "test-1234-00003")
    m = load_model(path)
    cfg = m.config
    # the task is the one the evaluation scored: episode 3 of the test split under the eval seed
    task = next(itertools.islice(fixed_episodes(build_sources(cfg).test, 4, cfg.eval.seed), 3, None))
    assert task.task_id == res.task_id
    assert np.array_equal(res.support_x, task.support_x.numpy()) and np.array_equal(res.query_y, task.query_y.numpy())
    assert res.has_steps and list(res.steps) == [0, 1, 2, 3, 4] and res.inner_lr == pytest.approx(0.02)

    net = m.learner.backbone
    grid = torch.as_tensor(res.grid_x, dtype=torch.float32).reshape(-1, 1)
    params = {n: p.detach().clone().requires_grad_() for n, p in net.named_parameters()}
    with torch.no_grad():
        assert np.allclose(res.grid_pred[0], net(grid).reshape(-1).numpy(), atol=1e-6)   # step 0: unadapted
    for k in range(1, 5):
        loss = F.mse_loss(functional_call(net, params, (task.support_x,)), task.support_y)
        grads = torch.autograd.grad(loss, list(params.values()))
        params = {n: (p - 0.02 * g).detach().requires_grad_() for (n, p), g in zip(params.items(), grads)}
        with torch.no_grad():
            by_hand = functional_call(net, params, (grid,)).reshape(-1).numpy()
            q = F.mse_loss(functional_call(net, params, (task.query_x,)), task.query_y).item()
        assert np.allclose(res.grid_pred[k], by_hand, atol=1e-5), k
        assert res.query_metric[k] == pytest.approx(q, rel=1e-5)
    # the last step is the session's own test-time adaptation: its stored MSE for this task
    assert res.final_metric == pytest.approx(res.stored_metric, rel=1e-5)
    assert res.support_loss[-1] < res.support_loss[0]         # the inner loop lowers its own loss
    # the true function goes through the noise-free support points
    assert np.allclose(np.interp(res.support_x[:, 0], res.grid_x, res.grid_true), res.support_y[:, 0], atol=0.05)


def test_protonet_on_the_default_data_gives_embeddings_and_the_stored_accuracy():
    path = omniglot_session()
    ids, families, values, where = A.session_tasks(path)
    assert where.startswith("test evaluation") and len(ids) == 8 and len(set(families)) >= 2
    res = A.adaptation(path, ids[5])
    assert not res.has_steps and list(res.steps) == [0] and res.metric == "accuracy"
    assert res.final_metric == pytest.approx(values[5]) == pytest.approx(res.stored_metric)
    assert res.family == families[5] and all(n.startswith(res.family + "/") for n in res.class_names)
    ways = len(res.class_names)
    assert res.query_pred.shape == (1, len(res.query_y))
    assert res.final_metric == pytest.approx(float((res.query_pred[0] == res.query_y).mean()))
    # PCA is linear: each prototype sits at the mean of its support points in the projection too
    for c in range(ways):
        assert np.allclose(res.prototypes_2d[c], res.support_2d[res.support_y == c].mean(0), atol=1e-6)
    assert res.query_2d.shape == (len(res.query_y), 2) and 0 < res.explained.sum() <= 1 + 1e-9


def test_a_new_task_drawn_with_a_seed_is_the_same_task_every_time():
    path = omniglot_session()
    a = A.adaptation(path, A.TaskRef("test", seed=7, index=0), steps=0)
    b = A.adaptation(path, A.TaskRef("test", seed=7, index=0))
    assert np.array_equal(a.query_x, b.query_x) and np.isnan(a.stored_metric)     # not in the evaluation
    c = A.adaptation(path, A.TaskRef("test", seed=8, index=0))
    assert not np.array_equal(a.query_x, c.query_x)


def test_a_live_session_uses_its_latest_checkpoint(tmp_path):
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{
        "train.steps": 20, "train.checkpoint_every": 10, "train.eval_every": 0, "eval.episodes": 4,
        "learner.meta_batch": 2, "model.hidden": [8], "learner.test_inner_steps": 2, "train.threads": 1})
    events = list(run(cfg))
    first_ck = next(i for i, e in enumerate(events) if isinstance(e, E.Checkpoint))
    path = tmp_path / "live.h5"
    w = store.SessionWriter(path, cfg)
    for e in events[:first_ck + 1]:
        w.write(e)
    w.flush()
    try:
        res = A.adaptation(path, "test-1234-00000")
        assert res.model == "checkpoint at step 10" and res.model_step == 10
        assert np.isfinite(res.query_metric).all() and len(res.steps) == 3
    finally:
        w.close()


def test_bad_requests_are_one_sentence(tmp_path):
    with pytest.raises(A.AdaptationError, match="<split>-<seed>-<index>"):
        A.parse_task_id("task 3")
    assert A.parse_task_id("val-12-00004") == A.TaskRef("val", 12, 4)
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"train.steps": 3})
    path = tmp_path / "empty.h5"
    w = store.SessionWriter(path, cfg)
    w.write(next(run(cfg)))              # RunStarted only: no model, no checkpoint
    w.flush()
    try:
        with pytest.raises(A.AdaptationError, match="no model yet.*checkpoint"):
            A.adaptation(path, "test-1234-00000")
    finally:
        w.close()


def test_step_counts_cover_zero_and_k():
    assert A.step_counts(0) == [0] and A.step_counts(3) == [0, 1, 2, 3]
    many = A.step_counts(100)
    assert many[0] == 0 and many[-1] == 100 and len(many) <= A.MAX_SHOWN_STEPS and many == sorted(set(many))


@pytest.mark.parametrize("learner", ["reptile", "anil", "metasgd", "multitask"])
def test_the_last_step_is_the_learners_own_test_time_adaptation(learner, tmp_path):
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{
        "learner.name": learner, "train.steps": 3, "train.eval_every": 0, "eval.episodes": 3,
        "learner.meta_batch": 2, "model.hidden": [8], "learner.test_inner_steps": 3, "train.threads": 1})
    path = tmp_path / f"{learner}.h5"
    for _ in store.record(run(cfg), path, cfg):
        pass
    res = A.adaptation(path, "test-1234-00002")
    assert list(res.steps) == [0, 1, 2, 3]
    assert res.final_metric == pytest.approx(res.stored_metric, rel=1e-5)
