"""MAML++, Proto-MAML, CAVIA and BOIL: they learn (held-out digits, unseen Omniglot alphabets), their
meta-gradients match finite differences on tiny float64 models (MAML++'s per-step parameters,
Proto-MAML's prototype head, CAVIA's context, BOIL's body-only inner loop), the vmap and loop
strategies agree, and they reach the form, the CLI, the engine's schedule hook and the export."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from tests.test_learners import EPISODES, _tiny_batch, assert_learns
from tests.test_maml_gradients import autograd_grad, finite_difference_grad, make_batch, rel_err
from tests.test_strategies import assert_same, image_batch, image_cfg, meta_gradient, regression_batch, sinusoid_cfg
from workbench import config as C
from workbench.learners import build_learner
from workbench.data.base import TaskBatch
from workbench.learners.base import Setting
from workbench.learners.mamlpp import MAMLpp, StepBatchNorm, cosine_factor, msl_weights
from workbench.learners.protonet import proto_logits, prototypes
from workbench.learners.reference import reference_backward
from workbench.models import build_backbone
from workbench.train.engine import final_test, run_to_end, vmap_is_exact
from workbench.train.events import RunFinished, StepMetrics

NAMES = ("mamlpp", "protomaml", "cavia", "boil")
WAYS, DIM = 3, 4


# -- they learn -------------------------------------------------------------------------------------
# CAVIA's head is shared by all tasks, so the context has to carry which class is which label; on the
# preset's 4 meta-train digits it memorises them (train loss 0.1, held-out 0.50): it gets 7 (measured:
# 0.67 +- 0.02 after 40 steps, 0.45 untrained), FiLM, a large context step and as many test steps as training
DIGITS = {"mamlpp": {}, "protomaml": {}, "boil": {},
          "cavia": {"split.train_fraction": 0.7, "split.val_fraction": 0.0, "learner.inner_lr": 10.0,
                    "learner.test_inner_lr": 10.0, "learner.inner_steps": 2, "learner.test_inner_steps": 2,
                    "learner.meta_lr": 0.01, "cavia.context_dim": 32, "cavia.modulation": "film"}}


def digits_config(name, **changes):
    base = {"learner.name": name, "train.steps": 40, "train.eval_every": 0, "train.log_every": 10,
            "eval.episodes": EPISODES, "train.seed": 0, "embedding.method": "none"}
    return C.replace(C.load_preset("digits_protonet"), **{**base, **DIGITS[name], **changes})


@pytest.mark.parametrize("name", NAMES)
def test_learns_on_held_out_digits(name):
    assert_learns(digits_config(name), name)


OMNIGLOT = {"mamlpp": {"first_order_fraction": 0.5}, "protomaml": {}, "cavia": {}, "boil": {}}


@pytest.fixture(scope="module")
def omniglot_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("omniglot-cache")      # decoded once for the four runs (0.4 s each)


@pytest.mark.parametrize("name", NAMES)
def test_learns_on_unseen_omniglot_alphabets(name, omniglot_zip, omniglot_cache, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(omniglot_cache))
    d = {"data": {"dataset": "omniglot", "path": str(omniglot_zip), "image_size": 20},
         "split": {"method": "group", "train_fraction": 0.6, "val_fraction": 0.0, "seed": 0},
         "task": {"ways": 5, "shots": 1, "queries": 5},
         "model": {"backbone": "conv4", "filters": 16, "norm": "batch"},
         "learner": {"name": name, "meta_lr": 3e-3, "meta_batch": 2, "inner_steps": 1, "inner_lr": 0.4,
                     "test_inner_steps": 3, "test_inner_lr": 0.4},
         "embedding": {"method": "none"},
         "train": {"steps": 40, "eval_every": 0, "log_every": 10, "threads": 1},
         "eval": {"episodes": 100, "seed": 7}}
    if OMNIGLOT[name]:
        d[name] = OMNIGLOT[name]
    floor = 0.35                                                # 5-way: chance is 0.2
    if name == "cavia":
        # only 100 context numbers adapt, so it learns more slowly: measured 0.36 +- 0.02 after 40 steps (0.21
        # untrained); at the first layer, or with the inner settings of the others, it stayed at chance
        d["learner"].update(inner_lr=10.0, test_inner_lr=10.0, inner_steps=2, test_inner_steps=2, meta_lr=0.01)
        d["cavia"] = {"context_dim": 100, "modulation": "film", "layer": "last"}
        floor = 0.3
    events = run_to_end(C.from_dict(d))
    assert isinstance(events[-1], RunFinished), getattr(events[-1], "message", events[-1])
    test = final_test(events)
    assert len(test.per_task) == 100
    assert test.mean - test.ci95 > floor, (name, test.mean, test.ci95)


# -- meta-gradients against finite differences (float64, tiny MLP) ------------------------------------
def tiny(name, norm="none", steps=2, first_order=False, options=None, seed=0, kind="classification"):
    torch.manual_seed(seed)
    cfg = C.ExperimentConfig(learner=C.LearnerConfig(name=name, inner_steps=steps, inner_lr=0.5,
                                                     test_inner_steps=steps, test_inner_lr=0.5,
                                                     first_order=first_order))
    for k, v in (options or {}).items():
        cfg.set(f"{name}.{k}", v)
    from workbench import registry
    spec = registry.learners.get(name)
    outputs = spec.head_outputs(WAYS, 0, kind == "regression")
    backbone = build_backbone(C.ModelConfig(hidden=[5], norm=norm), (DIM,), outputs)
    learner = spec.load()(backbone, cfg, Setting(kind, 1 if kind == "regression" else WAYS, (DIM,), 0)).double()
    learner.strategy = "loop"
    return learner


def trainable(learner):
    return [p for p in learner.parameters() if p.requires_grad]


def assert_matches_finite_differences(learner, batch, params=None):
    params = params or trainable(learner)
    g = autograd_grad(learner, batch, params)
    assert g.abs().max() > 1e-4                                    # a real, non-trivial gradient
    assert rel_err(g, finite_difference_grad(learner, batch, params)) < 1e-6
    return g


def test_mamlpp_schedules():
    assert msl_weights(4, 0.0) == pytest.approx([0.25] * 4)
    w = msl_weights(4, 0.5)
    assert sum(w) == pytest.approx(1.0) and w[0] == pytest.approx(0.125) and w[-1] == pytest.approx(0.625)
    assert msl_weights(4, 0.99)[0] == pytest.approx(0.03 / 4) and msl_weights(4, 1.0) is None
    assert msl_weights(1, 0.0) is None
    assert cosine_factor(0, 100) == 1.0 and cosine_factor(100, 100) == pytest.approx(0.01)
    assert cosine_factor(50, 100) == pytest.approx(0.505)


def test_mamlpp_per_step_parameters_get_the_exact_meta_gradient():
    """Second order with the multi-step loss: every per-step batch-norm weight and bias and every per-layer
    per-step learning rate matches finite differences."""
    learner = tiny("mamlpp", norm="batch", options={"first_order_fraction": 0.0, "msl_fraction": 0.5})
    assert len(learner.norms) == 1 and learner.norms[0].weight.shape == (3, 5)      # 2 steps: 3 versions
    assert all(len(r) == 2 for r in learner.lrs.values())                            # one rate per layer and step
    learner.schedule(20, 100)                                   # MSL weights mid-annealing, second order
    assert learner.second_order_now() and learner.loss_weights() == pytest.approx([0.3, 0.7])
    batch = make_batch()
    assert_matches_finite_differences(learner, batch)
    # each step's batch-norm version is really used: the versions' weights get different gradients
    g = torch.autograd.grad(learner.meta_loss(batch)[0], learner.norms[0].weight)[0]
    assert all(float(g[k].abs().max()) > 1e-6 for k in range(3)) and not torch.allclose(g[0], g[2])
    # the multi-step loss is the weighted sum of the query losses after step 1 and step 2
    learner.schedule(100, 100)
    assert learner.loss_weights() is None
    after2 = float(learner.meta_loss(batch)[0].detach())
    learner.steps = 1
    after1 = float(learner.meta_loss(batch)[0].detach())
    learner.steps = 2
    learner.schedule(20, 100)
    assert float(learner.meta_loss(batch)[0].detach()) == pytest.approx(0.3 * after1 + 0.7 * after2, rel=1e-12)


def test_mamlpp_derivative_order_annealing():
    learner = tiny("mamlpp", norm="batch", options={"first_order_fraction": 0.5, "multi_step_loss": False})
    batch = make_batch()
    learner.schedule(10, 100)                                              # first order early ...
    assert not learner.second_order_now()
    params = trainable(learner)
    g_fo = autograd_grad(learner, batch, params)
    fd = finite_difference_grad(learner, batch, params)
    assert rel_err(g_fo, fd) > 1e-3
    rates = list(learner.lrs.values())
    assert autograd_grad(learner, batch, rates).abs().max() > 1e-4        # the rates still learn in first order
    learner.schedule(60, 100)                                              # ... second order later
    assert learner.second_order_now() and rel_err(autograd_grad(learner, batch, params), fd) < 1e-6


def test_protomaml_head_is_the_prototype_classifier():
    """W = 2c, b = -||c||^2: with no inner step Proto-MAML's loss is ProtoNet's (squared Euclidean)."""
    learner = tiny("protomaml", steps=0)
    assert learner.backbone.head is None
    batch = make_batch(n_tasks=3)
    expected = []
    for i in range(len(batch)):
        zs, zq = learner.backbone(batch.support_x[i]), learner.backbone(batch.query_x[i])
        logits = proto_logits(zq, prototypes(zs, batch.support_y[i], WAYS))
        expected.append(torch.nn.functional.cross_entropy(logits, batch.query_y[i]))
    torch.testing.assert_close(learner.meta_loss(batch)[0], torch.stack(expected).mean())
    state = learner.adapt(batch.support_x[0], batch.support_y[0], steps=0)
    c = prototypes(learner.backbone(batch.support_x[0]), batch.support_y[0], WAYS)
    torch.testing.assert_close(state["proto.weight"], 2 * c)
    torch.testing.assert_close(state["proto.bias"], -(c * c).sum(-1))


def test_protomaml_inner_step_by_hand():
    """One inner step from (theta, W_0 = 2c, b_0 = -||c||^2) along the partial gradients, then the query loss."""
    learner = tiny("protomaml", steps=1)
    batch = make_batch(n_tasks=2)
    theta = {n: p.detach() for n, p in learner.backbone.named_parameters()}
    losses = []
    for i in range(len(batch)):
        sx, sy, qx, qy = batch.support_x[i], batch.support_y[i], batch.query_x[i], batch.query_y[i]
        c = prototypes(torch.func.functional_call(learner.backbone, theta, (sx,)), sy, WAYS)
        w = {**theta, "W": 2 * c, "b": -(c * c).sum(-1)}
        w = {n: v.clone().requires_grad_() for n, v in w.items()}

        def logits(w, x):
            return torch.func.functional_call(learner.backbone, {n: w[n] for n in theta}, (x,)) @ w["W"].t() + w["b"]

        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(logits(w, sx), sy), list(w.values()))
        adapted = {n: v - 0.5 * g for (n, v), g in zip(w.items(), grads)}
        losses.append(torch.nn.functional.cross_entropy(logits(adapted, qx), qy))
    for strategy in ("loop", "vmap"):
        learner.strategy = strategy
        torch.testing.assert_close(learner.meta_loss(batch)[0], torch.stack(losses).mean(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("adapt", ["all", "head"])
def test_protomaml_gradient_flows_through_the_prototype_initialisation(adapt):
    learner = tiny("protomaml", options={"adapt": adapt})
    batch = make_batch()
    g = assert_matches_finite_differences(learner, batch)
    fo = tiny("protomaml", first_order=True, options={"adapt": adapt})            # fo-Proto-MAML
    g_fo = autograd_grad(fo, batch, trainable(fo))
    assert rel_err(g_fo, g) > 1e-3 and g_fo.abs().max() > 1e-4
    # first order drops the inner steps' Jacobian, not the prototypes': with no inner step it is exact
    fo0 = tiny("protomaml", steps=0, first_order=True, options={"adapt": adapt})
    assert_matches_finite_differences(fo0, batch)


@pytest.mark.parametrize("modulation", ["shift", "film"])
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_cavia_context_gradient_matches_finite_differences(modulation, kind):
    learner = tiny("cavia", options={"modulation": modulation, "context_dim": 3}, kind=kind)
    batch = make_batch(kind)
    g = assert_matches_finite_differences(learner, batch)
    fo = tiny("cavia", first_order=True, options={"modulation": modulation, "context_dim": 3}, kind=kind)
    assert rel_err(autograd_grad(fo, batch, trainable(fo)), g) > 1e-3
    # the context starts at zero on every task (the network unchanged) and is all that adapts
    x = batch.query_x[0]
    zero = learner.adapt(batch.support_x[0], batch.support_y[0], steps=0)
    torch.testing.assert_close(learner.predict(zero, x), learner.backbone(x))
    state = learner.adapt(batch.support_x[0], batch.support_y[0])
    assert set(state) == {"context"} and state["context"].shape == (3,) and state["context"].abs().max() > 0
    before = torch.nn.functional.cross_entropy if kind == "classification" else torch.nn.functional.mse_loss
    sx, sy = batch.support_x[0], batch.support_y[0]
    assert before(learner.predict(state, sx), sy) < before(learner.predict(zero, sx), sy)


def test_boil_gradient_matches_finite_differences_and_freezes_the_head():
    learner = tiny("boil")
    batch = make_batch()
    assert_matches_finite_differences(learner, batch)
    state = learner.adapt(batch.support_x[0], batch.support_y[0])
    for n, p in learner.backbone.named_parameters():
        assert torch.equal(state[n], p.detach()) == n.startswith("head."), n


# -- strategies ---------------------------------------------------------------------------------------
# MAML++ from its first step: second order (no derivative-order annealing), multi-step loss on
MAMLPP_SECOND_ORDER = {"mamlpp": {"mamlpp.first_order_fraction": 0.0, "mamlpp.msl_fraction": 0.5}}


def _strategies_agree(cfg, input_shape, batch, tol, with_reference=False):
    """In float64: float32 rounding alone separates vmap and loop by ~1e-4 for Proto-MAML through batch norm."""
    torch.manual_seed(0)
    learner = build_learner(cfg, input_shape).double()
    def d(t):
        return t.double() if t.is_floating_point() else t
    batch = TaskBatch(d(batch.support_x), d(batch.support_y), d(batch.query_x), d(batch.query_y), batch.tasks)
    loop = meta_gradient(learner, batch, "loop")
    if with_reference:
        assert_same(loop, meta_gradient(learner, batch, "reference"), f"{cfg.learner.name} loop vs reference", tol)
    if vmap_is_exact(cfg)[0]:
        assert_same(meta_gradient(learner, batch, "vmap"), loop, f"{cfg.learner.name} vmap vs loop", tol)
        return True
    return False


@pytest.mark.parametrize("name", ["mamlpp", "cavia", "boil"])
@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_and_loop_agree_on_mlp_regression(name, first_order):
    cfg = sinusoid_cfg(name, **{"learner.first_order": first_order, **MAMLPP_SECOND_ORDER.get(name, {})})
    assert _strategies_agree(cfg, (1,), regression_batch(4, 5, 6), 1e-9, with_reference=name == "boil")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_and_loop_agree_on_mlp_classification(name, first_order):
    cfg = C.replace(C.load_preset("digits_protonet"), **{"learner.name": name, "model.hidden": [16],
                                                         "model.norm": "none", "task.ways": 3,
                                                         "learner.inner_steps": 2, "learner.first_order": first_order,
                                                         **MAMLPP_SECOND_ORDER.get(name, {})})
    assert _strategies_agree(cfg, (5,), _tiny_batch(), 1e-9, with_reference=name == "boil")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_and_loop_agree_on_conv_with_batch_norm(name, first_order):
    """Wherever the engine would run vmap (train/strategy.py reads the spec's second_order = "full"), vmap
    gives the loop's meta-gradient; first order through batch norm always may."""
    cfg = image_cfg(name, **{"learner.first_order": first_order, **MAMLPP_SECOND_ORDER.get(name, {})})
    used_vmap = _strategies_agree(cfg, (1, 12, 12), image_batch(3, 3, 2, 2), 1e-9, with_reference=name == "boil")
    assert used_vmap or not first_order


def test_mamlpp_running_statistics_are_per_step_and_used_at_test_time():
    cfg = image_cfg("mamlpp", **{"mamlpp.running_stats": True})
    torch.manual_seed(0)
    learner = build_learner(cfg, (1, 12, 12))
    learner.strategy = "vmap"                   # gathering statistics falls back to the loop
    batch = image_batch(3, 3, 2, 2)
    norms = [m for m in learner.modules() if isinstance(m, StepBatchNorm)]
    assert len(norms) == 4 and norms[0].running_mean.shape == (3, 4)
    learner.meta_loss(batch)
    stats = norms[0].running_mean
    assert stats.abs().min() > 0 and not torch.allclose(stats[0], stats[1])        # each step its own
    state = learner.adapt(batch.support_x[0], batch.support_y[0], steps=2)
    assert state["mode"] == "running"
    one = learner.predict(state, batch.query_x[0][:1])
    both = learner.predict(state, batch.query_x[0])
    torch.testing.assert_close(one[0], both[0])                 # running statistics: no batch dependence


# -- form, CLI, engine hook, export -------------------------------------------------------------------
def test_they_are_choices_of_the_form_and_their_options_show_only_when_chosen():
    assert set(NAMES) <= set(C.field_info("learner.name").choices)
    keys = {fi.key for fi in C.schema()}
    assert {"mamlpp.multi_step_loss", "mamlpp.first_order_fraction", "protomaml.adapt", "cavia.context_dim",
            "cavia.modulation"} <= keys
    for name, key in (("mamlpp", "mamlpp.learn_inner_lr"), ("protomaml", "protomaml.adapt"),
                      ("cavia", "cavia.modulation")):
        fi = C.field_info(key)
        assert fi.label and fi.help
        assert fi.applies(digits_config(name)) and not fi.applies(digits_config("boil"))
        assert f"[{name}]" in C.to_toml(digits_config(name)) and f"[{name}]" not in C.to_toml(digits_config("boil"))
    msl = C.field_info("mamlpp.msl_fraction")
    assert msl.applies(digits_config("mamlpp"))
    assert not msl.applies(digits_config("mamlpp", **{"mamlpp.multi_step_loss": False}))
    assert not C.field_info("learner.test_inner_lr").applies(digits_config("mamlpp"))     # learned rates
    assert C.field_info("learner.first_order").applies(digits_config("protomaml"))        # fo-Proto-MAML
    with pytest.raises(C.ConfigError) as e:
        digits_config("cavia", **{"cavia.context_dim": 0})
    assert [p.key for p in e.value.items] == ["cavia.context_dim"]
    back = C.from_toml(C.to_toml(digits_config("cavia", **{"cavia.modulation": "film"})))
    assert back.get("cavia.modulation") == "film"


def test_engine_applies_the_cosine_meta_learning_rate(monkeypatch):
    seen = []
    step = torch.optim.Adam.step

    def spy(self, *a, **kw):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    cfg = digits_config("mamlpp", **{"train.steps": 6, "train.log_every": 3, "eval.episodes": 3,
                                     "learner.meta_lr": 0.01})
    assert isinstance(run_to_end(cfg)[-1], RunFinished)
    assert seen == pytest.approx([0.01 * cosine_factor(s, 6) for s in range(6)])
    seen.clear()
    assert isinstance(run_to_end(C.replace(cfg, **{"mamlpp.cosine_meta_lr": False}))[-1], RunFinished)
    assert seen == pytest.approx([0.01] * 6)


def test_cli_runs_mamlpp(capsys):
    from workbench.cli import main
    code = main(["run", "digits_protonet", "--quiet", "--no-session", "--set", "learner.name=mamlpp",
                 "--set", "train.steps=4", "--set", "train.eval_every=0", "--set", "eval.episodes=5",
                 "--set", "mamlpp.msl_fraction=0.5"])
    assert code == 0, capsys.readouterr()


@pytest.mark.parametrize("name", NAMES)
def test_exported_model_reproduces_the_sessions_test_episodes(name, tmp_path):
    """Session -> export folder -> load_model: the rebuilt learner scores the first test episodes exactly as
    the run did (same per-step norms, learned rates, context layer)."""
    from workbench.data import build_sources
    from workbench.store import record
    from workbench.store.export import export_model, load_model
    from workbench.train.engine import run
    from workbench.train.evaluate import fixed_episodes

    cfg = digits_config(name, **{"train.steps": 5, "train.log_every": 5, "eval.episodes": 4})
    path = tmp_path / "s.h5"
    events = list(record(run(cfg), path, cfg, projection="none"))
    assert isinstance(events[-1], RunFinished), getattr(events[-1], "message", events[-1])
    export_model(path, tmp_path / "model")
    model = load_model(tmp_path / "model")
    assert model.learner.spec.name == name
    per_task = []
    for task in fixed_episodes(build_sources(cfg).test, 4, cfg.eval.seed):
        labels = model.adapt(task.support_x.numpy(), task.support_y.numpy()).classify(task.query_x.numpy())
        per_task.append(float((labels == task.query_y.numpy()).mean()))
    np.testing.assert_allclose(per_task, final_test(events).per_task, atol=1e-12)


def test_mamlpp_resumed_run_matches_the_uninterrupted_run(tmp_path):
    """The schedules are a function of the step, so a resumed MAML++ run is bitwise the straight one."""
    import threading
    from workbench.store import SessionReader, record
    from workbench.store.cli import resume_events
    from workbench.train.engine import run

    cfg = digits_config("mamlpp", **{"train.steps": 8, "train.log_every": 2, "train.checkpoint_every": 4,
                                     "eval.episodes": 3, "learner.meta_lr": 0.01, "mamlpp.msl_fraction": 0.5})
    straight, resumed = tmp_path / "a.h5", tmp_path / "b.h5"
    list(record(run(cfg), straight, cfg, projection="none"))
    stop = threading.Event()
    for ev in record(run(cfg, cancel=stop.is_set), resumed, cfg, projection="none"):
        if isinstance(ev, StepMetrics) and ev.step >= 6:
            stop.set()                                   # cancelled at step 6; the last checkpoint is step 4
    list(resume_events(resumed, projection="none"))
    with SessionReader(straight) as a, SessionReader(resumed) as b:
        assert b.status == "finished" and b.resumes == 1
        np.testing.assert_array_equal(a.metric("train/loss")[2], b.metric("train/loss")[2])
        np.testing.assert_array_equal(a.final_test().per_task, b.final_test().per_task)
