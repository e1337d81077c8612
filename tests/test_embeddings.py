"""Task embeddings (prototype, Fisher, set encoder) and the FiLM-modulated learners."""

import numpy as np
import pytest
import torch

from workbench import config as C
from workbench.data.base import Task, TaskBatch
from workbench.embeddings import make_embedder
from workbench.learners import build_learner
from workbench.learners.mmaml import ModulatedMAML
from workbench.learners.protonet_film import FiLMProtoNet
from workbench.train.engine import run
from workbench.train.events import Evaluation, RunFinished

IMG = (1, 12, 12)




def regression_cfg(method, **kw):
    return C.replace(C.load_preset("multimodal_mmaml"), **{
        "embedding.method": method, "embedding.dim": 6, "model.hidden": [12, 12], "learner.meta_batch": 3,
        "learner.inner_steps": 1, "learner.test_inner_steps": 2, "learner.inner_lr": 0.01,
        "learner.test_inner_lr": 0.01, **kw})


def classification_cfg(method, learner="protonet", **kw):
    return C.replace(C.default_config(), **{
        "embedding.method": method, "embedding.dim": 6, "learner.name": learner, "task.ways": 5,
        "model.backbone": "conv4", "model.filters": 4, **kw})


def regression_task(shots, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shots + 4, 1, generator=g) * 10 - 5
    y = 2 * torch.sin(x) + 0.5
    return Task(x[:shots], y[:shots], x[shots:], y[shots:], f"r{shots}", "sine")


def image_task(ways, shots, seed=0):
    g = torch.Generator().manual_seed(seed)
    sy = torch.arange(ways).repeat_interleave(shots)
    qy = torch.arange(ways).repeat_interleave(2)
    return Task(torch.rand(len(sy), *IMG, generator=g), sy, torch.rand(len(qy), *IMG, generator=g), qy,
                f"c{ways}x{shots}", "alpha")


def learner_for(cfg, shape):
    torch.manual_seed(0)
    return build_learner(cfg, shape, 10)


@pytest.mark.parametrize("method", ["prototype", "fisher", "set_encoder"])
def test_regression_embeddings_are_finite_fixed_size_and_stable(method):
    learner = learner_for(regression_cfg(method), (1,))
    emb = make_embedder(regression_cfg(method), learner)
    assert emb.method == method
    vecs = [emb(regression_task(k)) for k in (2, 5, 11)]
    assert len({v.shape for v in vecs}) == 1 and vecs[0].ndim == 1
    assert all(np.isfinite(v).all() for v in vecs)
    assert not np.allclose(vecs[0], vecs[2])                       # different tasks, different vectors
    again = make_embedder(regression_cfg(method), learner_for(regression_cfg(method), (1,)))
    np.testing.assert_allclose(again(regression_task(5)), vecs[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method,learner", [("prototype", "protonet"), ("fisher", "maml"),
                                            ("set_encoder", "protonet")])
def test_classification_embeddings_are_fixed_size_for_any_ways_and_shots(method, learner):
    cfg = classification_cfg(method, learner)
    emb = make_embedder(cfg, learner_for(cfg, IMG))
    vecs = [emb(image_task(w, k)) for w, k in ((2, 1), (5, 1), (3, 4))]
    assert len({v.shape for v in vecs}) == 1
    assert all(np.isfinite(v).all() for v in vecs)
    if method == "fisher":
        assert np.linalg.norm(vecs[0]) == pytest.approx(1.0, rel=1e-4)
        assert (vecs[0] >= 0).all()                                  # a diagonal Fisher is non-negative
    np.testing.assert_allclose(emb(image_task(3, 4)), vecs[2], rtol=1e-5, atol=1e-6)


def test_set_encoder_config_builds_the_modulated_learners():
    assert isinstance(learner_for(regression_cfg("set_encoder"), (1,)), ModulatedMAML)
    assert isinstance(learner_for(classification_cfg("set_encoder", "fomaml"), IMG), ModulatedMAML)
    assert isinstance(learner_for(classification_cfg("set_encoder"), IMG), FiLMProtoNet)
    assert not isinstance(learner_for(regression_cfg("prototype"), (1,)), ModulatedMAML)
    with pytest.raises(ValueError, match="set encoder"):
        make_embedder(regression_cfg("set_encoder"), learner_for(regression_cfg("prototype"), (1,)))


def test_modulated_maml_meta_learns_the_encoder_but_adapts_only_the_backbone():
    learner = learner_for(regression_cfg("set_encoder"), (1,))
    tasks = [regression_task(5, s) for s in range(3)]
    batch = TaskBatch.stack(tasks)
    # the FiLM hooks do the same under vmap as in a loop
    learner.strategy = "loop"
    loss_loop, _ = learner.meta_loss(batch)
    learner.strategy = "vmap"
    loss_vmap, _ = learner.meta_loss(batch)
    assert loss_loop.item() == pytest.approx(loss_vmap.item(), rel=1e-4)
    loss_vmap.backward()
    enc_grads = [p.grad for p in learner.modulation.parameters()]
    assert all(g is not None for g in enc_grads) and sum(float(g.abs().sum()) for g in enc_grads) > 0
    # adaptation changes backbone weights only; the modulation travels in the state
    state = learner.adapt(tasks[0].support_x, tasks[0].support_y)
    backbone_names = {n for n, _ in learner.backbone.named_parameters()}
    assert {n for n in state if not n.startswith("film.")} == backbone_names
    assert any(n.startswith("film.gamma.") for n in state)
    # the modulation matters: the same adapted weights without it predict differently
    plain = {n: p for n, p in state.items() if not n.startswith("film.")}
    with torch.no_grad():
        learner.modulation.generator.layers[0].weight.add_(1.0)
        modulated = learner.predict(learner.adapt(tasks[0].support_x, tasks[0].support_y), tasks[0].query_x)
        unmodulated = torch.func.functional_call(learner.backbone, plain, (tasks[0].query_x,))
    assert not torch.allclose(modulated, unmodulated)


@pytest.mark.parametrize("kind", ["mmaml", "protonet_film"])
def test_modulated_learners_train_through_the_engine_and_record_tau(kind):
    if kind == "mmaml":
        cfg = regression_cfg("set_encoder", **{"train.steps": 3, "train.eval_every": 2, "train.val_episodes": 4,
                                               "eval.episodes": 6, "train.log_every": 1})
    else:
        cfg = classification_cfg("set_encoder", **{"task.ways": 3, "task.queries": 2, "learner.meta_batch": 2,
                                                   "train.steps": 3, "train.eval_every": 2,
                                                   "train.val_episodes": 4, "eval.episodes": 6})
    events = list(run(cfg))
    assert isinstance(events[-1], RunFinished), getattr(events[-1], "message", events[-1])
    evals = [e for e in events if isinstance(e, Evaluation)]
    assert [e.phase for e in evals] == ["val", "test"]
    for e in evals:
        assert e.embedding_method == "set_encoder"
        assert e.embeddings.shape == (len(e.per_task), 6) and np.isfinite(e.embeddings).all()
        assert len(e.families) == len(e.per_task) and np.isfinite(e.per_task).all()


def test_checkpointed_inner_loop_keeps_the_modulation_in_the_meta_gradient():
    batch = TaskBatch.stack([regression_task(5, s) for s in range(2)])
    grads = []
    for checkpoint in (False, True):
        cfg = regression_cfg("set_encoder", **{"learner.checkpoint_inner": checkpoint, "learner.inner_steps": 2})
        learner = learner_for(cfg, (1,))
        learner.strategy = "loop"
        learner.meta_loss(batch)[0].backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in learner.parameters()]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_sorted_gru_encoder_is_fixed_size_finite_and_permutation_invariant():
    from workbench.embeddings.set_encoder import SortedGRUEncoder
    torch.manual_seed(0)
    enc = SortedGRUEncoder(dim=6, hidden=8)
    with torch.no_grad():
        taus = [enc(regression_task(k).support_x, regression_task(k).support_y) for k in (1, 2, 5, 11)]
        assert {t.shape for t in taus} == {torch.Size([6])}
        assert all(torch.isfinite(t).all() for t in taus)
        task = regression_task(11)
        perm = torch.randperm(11)
        torch.testing.assert_close(enc(task.support_x[perm], task.support_y[perm]), taus[3])
        # it reads the shape, not just the set of x and y values: pairing y with other x changes tau
        shuffled_y = task.support_y[perm]
        assert not torch.allclose(enc(task.support_x, shuffled_y), taus[3])
        # a batch of tasks (and vmap over tasks) gives the same tau as one task at a time
        xs = torch.stack([regression_task(5, s).support_x for s in range(3)])
        ys = torch.stack([regression_task(5, s).support_y for s in range(3)])
        one_by_one = torch.stack([enc(x, y) for x, y in zip(xs, ys)])
        torch.testing.assert_close(enc(xs, ys), one_by_one)
        torch.testing.assert_close(torch.func.vmap(enc)(xs, ys), one_by_one)


def test_encoder_choice_resolves_and_rejects_gru_for_images():
    from workbench.embeddings.set_encoder import SetEncoder, SortedGRUEncoder
    auto = learner_for(regression_cfg("set_encoder"), (1,))
    assert isinstance(auto.modulation.encoder, SortedGRUEncoder)          # auto: GRU for 1-D regression
    deep = learner_for(regression_cfg("set_encoder", **{"embedding.encoder": "deepsets"}), (1,))
    assert isinstance(deep.modulation.encoder, SetEncoder)
    assert isinstance(learner_for(classification_cfg("set_encoder"), IMG).modulation.encoder, SetEncoder)
    with pytest.raises(C.ConfigError, match="embedding.encoder = 'gru'"):
        classification_cfg("set_encoder", **{"embedding.encoder": "gru"})
    from workbench.embeddings.set_encoder import build_set_encoder
    with pytest.raises(ValueError, match="scalar inputs"):
        build_set_encoder("gru", IMG, "classification", 5, 6)
    with pytest.raises(ValueError, match="expected one of auto, deepsets, gru"):
        build_set_encoder("lstm", (1,), "regression", 1, 6)
