"""R2D2, Relation Networks and Baseline++: each learns on held-out digit classes and on unseen
Omniglot alphabets; R2D2's meta-gradient through its closed-form ridge head (and its learned
lambda, scale and bias) matches central finite differences; exact checks of what each computes."""

from __future__ import annotations


import pytest
import torch

from tests.test_learners import EPISODES, MARGIN, _tiny_batch, _tiny_config, assert_learns
from tests.test_maml_gradients import DIM, WAYS, autograd_grad, finite_difference_grad, make_batch, rel_err
from workbench import config as C
from workbench.learners import build_learner
from workbench.learners.base import Setting
from workbench.learners.multitask import MultiTask, cosine_logits
from workbench.learners.r2d2 import R2D2, ridge_head
from workbench.learners.relationnet import RelationNet, relation_loss
from workbench.models import build_backbone
from workbench.train.engine import final_test, run_to_end
from workbench.train.events import RunFinished

# digits preset (3-way 5-shot, MLP 128-64): what each needs to learn within seconds
SETTINGS = {
    "r2d2": ({}, MARGIN),
    "baselinepp": ({"learner.test_inner_steps": 20, "learner.test_inner_lr": 0.5}, MARGIN),
    # the relation module must learn a similarity from the meta-train digits alone: with the
    # preset's 4 it memorises them (held-out accuracy ~0.42); 6 meta-train digits, lr 1e-2
    "relationnet": ({"split.train_fraction": 0.6, "split.val_fraction": 0.0, "learner.meta_lr": 0.01}, 0.15),
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_new_learner_beats_chance_on_held_out_digits(name):
    changes, margin = SETTINGS[name]
    base = {"learner.name": name, "train.steps": 40, "train.eval_every": 0, "train.log_every": 10,
            "eval.episodes": EPISODES, "train.seed": 0, "embedding.method": "none"}
    cfg = C.replace(C.load_preset("digits_protonet"), **{**base, **changes})
    assert_learns(cfg, name, margin)


OMNIGLOT = {"r2d2": {}, "relationnet": {}, "baselinepp": {"learner.test_inner_steps": 50, "learner.test_inner_lr": 0.5}}


@pytest.fixture(scope="module")
def omniglot_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("omniglot-cache")      # decoded once for the three runs


@pytest.mark.parametrize("name", list(OMNIGLOT))
def test_new_learner_beats_chance_on_unseen_omniglot_alphabets(name, omniglot_zip, omniglot_cache, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(omniglot_cache))
    cfg = C.from_dict({
        "data": {"dataset": "omniglot", "path": str(omniglot_zip), "image_size": 20},
        "split": {"method": "group", "train_fraction": 0.6, "val_fraction": 0.0, "seed": 0},
        "task": {"ways": 5, "shots": 1, "queries": 5},
        "model": {"backbone": "conv4", "filters": 16, "norm": "batch"},
        "learner": {"name": name, "meta_lr": 1e-2, "meta_batch": 4},
        "embedding": {"method": "none"},
        "train": {"steps": 40, "eval_every": 0, "log_every": 10, "threads": 1},
        "eval": {"episodes": 100, "seed": 7},
    })
    events = run_to_end(C.replace(cfg, **OMNIGLOT[name]))
    assert isinstance(events[-1], RunFinished), getattr(events[-1], "message", events[-1])
    test = final_test(events)
    assert len(test.per_task) == 100
    assert test.mean - test.ci95 > 0.2 + 0.15, (name, test.mean, test.ci95)   # chance is 20%


# -- R2D2 -----------------------------------------------------------------------------------------
def _r2d2(kind="classification", learn_lambda=True, strategy="loop") -> R2D2:
    torch.manual_seed(0)
    cfg = C.ExperimentConfig()
    cfg.learner.name = "r2d2"
    cfg.section("r2d2").learn_lambda = learn_lambda
    cfg.section("r2d2").init_lambda = 0.7
    cfg.section("r2d2").init_scale = 2.0
    backbone = build_backbone(C.ModelConfig(hidden=[5], norm="none"), (DIM,), 0)
    ways = 1 if kind == "regression" else WAYS
    learner = R2D2(backbone, cfg, Setting(kind, ways, (DIM,), 0)).double()
    learner.strategy = strategy
    with torch.no_grad():
        learner.bias.fill_(0.3)
    return learner


def test_ridge_head_is_the_primal_ridge_solution():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 9, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    lam = torch.tensor(0.5, dtype=torch.float64)
    primal = torch.linalg.solve(x.t() @ x + lam * torch.eye(9, dtype=torch.float64), x.t() @ y)
    torch.testing.assert_close(ridge_head(x, y, lam), primal)


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_r2d2_meta_gradient_matches_finite_differences(kind):
    learner = _r2d2(kind)
    batch = make_batch(kind)
    params = [p for p in learner.parameters() if p.requires_grad]
    names = [n for n, p in learner.named_parameters()]
    assert {"log_lambda", "scale", "bias"} <= set(names)
    exact = autograd_grad(learner, batch, params)
    numeric = finite_difference_grad(learner, batch, params)
    assert rel_err(exact, numeric) < 1e-6, rel_err(exact, numeric)
    # lambda and the scale really are meta-learned: their gradients are not zero
    by_name = dict(zip(names, torch.split(exact, [p.numel() for p in params])))
    assert abs(float(by_name["log_lambda"])) > 1e-8 and abs(float(by_name["scale"])) > 1e-8
    if kind == "classification":          # a scalar bias shifts every logit alike: no gradient
        assert abs(float(by_name["bias"])) < 1e-12


def test_r2d2_vmap_and_loop_agree_and_lambda_can_stay_fixed():
    batch = make_batch()
    grads = []
    for strategy in ("loop", "vmap"):
        learner = _r2d2(strategy=strategy)
        loss, _ = learner.meta_loss(batch)
        grads.append(torch.autograd.grad(loss, list(learner.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    fixed = _r2d2(learn_lambda=False)
    assert "log_lambda" not in dict(fixed.named_parameters()) and float(fixed.log_lambda.exp()) == pytest.approx(0.7)


# -- Relation Networks and Baseline++ -----------------------------------------------------------
def test_relation_scores_are_in_0_1_and_the_loss_is_mse_to_one_hot():
    cfg = _tiny_config("relationnet")
    learner = build_learner(cfg, (5,))
    assert isinstance(learner, RelationNet)
    batch = _tiny_batch()
    state = learner.adapt(batch.support_x[0], batch.support_y[0])
    scores = learner.predict(state, batch.query_x[0])
    assert scores.shape == (len(batch.query_y[0]), 3) and bool(((scores > 0) & (scores < 1)).all())
    y = batch.query_y[0]
    expected = ((scores - torch.nn.functional.one_hot(y, 3).float()) ** 2).mean().detach()
    torch.testing.assert_close(relation_loss(scores, y), expected)
    loss, metric = learner.evaluate_task(_task(batch, 0))
    assert loss == pytest.approx(float(expected), rel=1e-5) and 0 <= metric <= 1


def _task(batch, i):
    from workbench.data.base import Task
    return Task(batch.support_x[i], batch.support_y[i], batch.query_x[i], batch.query_y[i], "t", "f")


def test_baselinepp_trains_a_cosine_head_and_fits_a_new_cosine_head():
    cfg = _tiny_config("baselinepp", **{"learner.test_inner_steps": 100, "learner.test_inner_lr": 0.5})
    learner = build_learner(cfg, (5,), n_train_classes=6)
    assert isinstance(learner, MultiTask) and learner.cosine and learner.options.scale == 10.0
    learner.set_train_classes(range(6))
    batch = _tiny_batch(n_tasks=2, classes=[(0, 1, 2), (3, 4, 5)])
    z = learner.features(torch.cat([batch.support_x.flatten(0, 1), batch.query_x.flatten(0, 1)]))
    # training logits are scale * cosine with the head's rows (no bias)
    loss, _ = learner.meta_loss(batch)
    y = torch.cat([batch.support_y[0], batch.support_y[1] + 3, batch.query_y[0], batch.query_y[1] + 3])
    expected = torch.nn.functional.cross_entropy(cosine_logits(z, learner.backbone.head.weight, 10.0), y)
    torch.testing.assert_close(loss, expected)
    # test time: a new cosine head with `ways` rows that separates the support set
    state = learner.adapt(batch.support_x[0], batch.support_y[0])
    assert state["weight"].shape == (3, z.shape[1])
    with torch.no_grad():
        out = learner.predict(state, batch.support_x[0])
    assert float((out.argmax(-1) == batch.support_y[0]).float().mean()) == 1.0
    assert float(out.abs().max()) <= 10.0 + 1e-5                      # cosine logits are bounded by the scale
    linear = build_learner(_tiny_config("multitask"), (5,), n_train_classes=6)
    assert not linear.cosine and linear.options.classifier == "linear"
