"""The fast paths compute the same meta-gradients: batch norm under vmap (workbench/models/norm.py)
and the closed-form "batched" strategy for MLPs (workbench/learners/batched.py).

In float64, against central finite differences of the meta-loss (a directional derivative along a
random direction of every meta-parameter) and against the per-task loop.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.data.base import TaskBatch
from workbench.learners import batched
from workbench.models import norm_layer
from workbench.models.norm import BatchNorm2d

from test_strategies import (_learner, image_batch, image_cfg, meta_gradient, omniglot_maml_cfg, regression_batch,
                             short_run, sinusoid_cfg)


def _double(batch: TaskBatch) -> TaskBatch:
    f = lambda t: t.double() if t.is_floating_point() else t  # noqa: E731
    return TaskBatch(f(batch.support_x), f(batch.support_y), f(batch.query_x), f(batch.query_y), batch.tasks)


def _directional_fd(learner, batch, strategy: str, direction: dict, eps: float = 1e-6) -> float:
    params = dict(learner.named_parameters())
    learner.strategy = strategy

    def loss_at(sign):
        with torch.no_grad():
            for n, p in params.items():
                p.add_(sign * eps * direction[n])
        value = float(learner.meta_loss(batch)[0].detach())
        with torch.no_grad():
            for n, p in params.items():
                p.sub_(sign * eps * direction[n])
        return value

    return (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)


def _check_against_fd_and_loop(learner, batch, strategy: str):
    loop = meta_gradient(learner, batch, "loop")
    fast = meta_gradient(learner, batch, strategy)
    assert fast[0] == pytest.approx(loop[0], rel=1e-12, abs=1e-12)
    assert fast[1].keys() == loop[1].keys() and fast[1]
    for n in loop[1]:
        torch.testing.assert_close(fast[1][n], loop[1][n], rtol=1e-9, atol=1e-11, msg=f"{strategy} vs loop: {n}")
    if getattr(learner, "first_order", False):
        return                  # first order is not the derivative of the meta-loss; the loop is its definition
    g = torch.Generator().manual_seed(1)
    direction = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in learner.named_parameters()}
    analytic = sum(float((fast[1][n] * direction[n]).sum()) for n in fast[1])
    numeric = _directional_fd(learner, batch, strategy, direction)
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8), (strategy, analytic, numeric)


@pytest.mark.parametrize("name", ["maml", "metasgd"])
def test_second_order_through_batch_norm_is_exact_under_vmap(name):
    """The case torch's native batch norm gets wrong under vmap (~1e-2): now exact to float64."""
    cfg = image_cfg(name)
    learner = _learner(cfg, (1, 12, 12), "cpu").double()
    assert any(isinstance(m, BatchNorm2d) for m in learner.modules())
    _check_against_fd_and_loop(learner, _double(image_batch(3, 3, 2, 2)), "vmap")


def test_batch_norm_is_torch_batch_norm_with_the_same_keys():
    """Outside vmap it is nn.BatchNorm2d without running statistics: same outputs, gradients and
    state-dict keys, so sessions written with the old module load unchanged."""
    torch.manual_seed(0)
    old, new = nn.BatchNorm2d(6, track_running_stats=False), norm_layer("batch", 6)
    with torch.no_grad():
        old.weight.uniform_(0.5, 1.5)
        old.bias.uniform_(-0.5, 0.5)
    assert list(new.state_dict()) == list(old.state_dict()) == ["weight", "bias"]
    new.load_state_dict(old.state_dict())
    x = torch.randn(5, 6, 4, 4, requires_grad=True)
    for m in (old, new):
        m.train()
    a, b = old(x), new(x)
    assert torch.equal(a, b)
    ga = torch.autograd.grad((a * a.detach()).sum(), [x, old.weight, old.bias])
    gb = torch.autograd.grad((b * b.detach()).sum(), [x, new.weight, new.bias])
    for u, v in zip(ga, gb):
        assert torch.equal(u, v)
    new.eval()                          # batch statistics at test time too, as before
    assert torch.equal(new(x), a)
    # and under vmap (composite operations) the same function, per task
    xs = torch.randn(3, 5, 6, 4, 4)
    torch.testing.assert_close(torch.func.vmap(new)(xs), torch.stack([old(t) for t in xs]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,extra", [("maml", {}), ("maml", {"learner.first_order": True}), ("anil", {}),
                                        ("metasgd", {})])
def test_batched_closed_form_is_exact_on_regression(name, extra):
    cfg = sinusoid_cfg(name, **extra)
    learner = _learner(cfg, (1,), "cpu").double()
    _check_against_fd_and_loop(learner, _double(regression_batch(4, 5, 6)), "batched")


def test_batched_closed_form_is_exact_on_classification():
    cfg = image_cfg("maml", **{"model.backbone": "mlp", "model.norm": "none", "model.hidden": [7, 5]})
    learner = _learner(cfg, (1, 12, 12), "cpu").double()
    _check_against_fd_and_loop(learner, _double(image_batch(3, 3, 2, 2)), "batched")


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_closed_form_inner_gradient_equals_autograd(kind):
    if kind == "regression":
        cfg, shape, batch = sinusoid_cfg("maml"), (1,), regression_batch(3, 5, 6)
    else:
        cfg = image_cfg("maml", **{"model.backbone": "mlp", "model.norm": "none", "model.hidden": [7, 5]})
        shape, batch = (1, 12, 12), image_batch(3, 3, 2, 2)
    learner = _learner(cfg, shape, "cpu")
    layers = batched.mlp_layers(learner.backbone)
    params = dict(learner.backbone.named_parameters())
    closed = batched.inner_gradient(learner.kind, params, layers, batch.support_x, batch.support_y, set(params))
    for t in range(len(batch)):
        loss = learner._inner_loss(params, {}, batch.support_x[t], batch.support_y[t])
        auto = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        for n in params:
            torch.testing.assert_close(closed[n][t], auto[n], rtol=1e-5, atol=1e-6, msg=f"task {t} {n}")


# -- no accuracy change: same seeds, same metrics, before and after ---------------------------------------------
def _short_run(cfg, monkeypatch=None, torch_batch_norm=False):
    if torch_batch_norm:            # "before": torch's own batch norm, as norm_layer built it until now
        import workbench.models.norm as norm
        monkeypatch.setattr(norm, "batch_norm", lambda c, dims=2: (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(
            c, track_running_stats=False))
    return short_run(cfg)


def _same_metrics(a, b, tol):
    (_, ta, la), (_, tb, lb) = a, b
    assert la == pytest.approx(lb, rel=tol, abs=tol)
    assert ta.mean == pytest.approx(tb.mean, abs=tol)
    np_a, np_b = ta.per_task, tb.per_task
    assert len(np_a) == len(np_b) and max(abs(float(x) - float(y)) for x, y in zip(np_a, np_b)) <= tol


def test_digits_maml_metrics_unchanged_by_the_closed_form(monkeypatch):
    """MLP MAML on digits: auto now runs "batched"; before, vmap. Same seed, same metrics."""
    from workbench import config as C
    cfg = C.replace(C.ExperimentConfig(), **{
        "data.dataset": "digits", "learner.name": "maml", "model.backbone": "mlp", "model.hidden": [32, 32],
        "model.norm": "none", "task.ways": 2, "task.shots": 1, "task.queries": 5, "learner.meta_batch": 4,
        "learner.inner_steps": 1, "learner.inner_lr": 0.4, "train.steps": 6, "train.eval_every": 0,
        "train.log_every": 2, "eval.episodes": 30, "train.threads": 1})
    after = _short_run(cfg)
    before = _short_run(C.replace(cfg, **{"train.strategy": "vmap"}))
    assert "strategy batched" in after[0] and "strategy vmap" in before[0]
    _same_metrics(after, before, 1e-5)


def test_omniglot_maml_metrics_unchanged_by_the_new_batch_norm(omniglot_zip, monkeypatch):
    """Real Omniglot, second-order MAML through batch norm: the new module against torch's, same seed."""
    cfg = omniglot_maml_cfg(omniglot_zip)
    after = _short_run(cfg)
    before = _short_run(cfg, monkeypatch, torch_batch_norm=True)
    assert "strategy loop" in after[0]
    _same_metrics(after, before, 0.0)          # outside vmap the same kernel: bitwise


# -- the compiled Conv-4 pass (CPU) -----------------------------------------------------------------------------
def test_conv4_function_is_the_backbone():
    """The functional Conv-4 (ReLU after the max-pool) is the module's function, gradients included."""
    from workbench.train.strategy import compiled_applies
    for name in ("maml", "protonet"):
        learner = _learner(image_cfg(name), (1, 12, 12), "cpu")
        blocks = batched.conv4_blocks(learner.backbone)
        assert blocks is not None and compiled_applies(learner)
        with_head = learner.backbone.head is not None
        f = batched.conv4_function(blocks, with_head)
        params = dict(learner.backbone.named_parameters())
        x = image_batch(1, 3, 2, 2).query_x[0]
        a, b = f(params, x), learner.backbone(x)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        ga = torch.autograd.grad(a.square().sum(), list(params.values()))
        gb = torch.autograd.grad(b.square().sum(), list(params.values()))
        for u, v in zip(ga, gb):
            torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-7)
    group = _learner(image_cfg("maml", **{"model.norm": "group"}), (1, 12, 12), "cpu")
    assert batched.conv4_blocks(group.backbone) is None and not compiled_applies(group)


def test_auto_compiles_only_runs_that_pay_for_it():
    from workbench import config as C
    from workbench.train.strategy import compile_pays, pick_strategy
    omniglot = C.replace(image_cfg("maml"), **{"model.filters": 64, "task.ways": 5, "task.shots": 1,
                                               "task.queries": 15, "learner.meta_batch": 32})
    learner = _learner(image_cfg("maml"), (1, 12, 12), "cpu")
    assert compile_pays(C.replace(omniglot, **{"train.steps": 100}), (1, 28, 28))
    assert not compile_pays(C.replace(omniglot, **{"train.steps": 10}), (1, 28, 28))
    assert not compile_pays(C.default_config(), (1, 20, 20))          # the default ProtoNet experiment
    long_run = C.replace(omniglot, **{"train.steps": 1000})
    assert pick_strategy(long_run, (1, 28, 28), "cpu", learner) == "compiled"
    assert pick_strategy(long_run, (1, 28, 28), "cuda", learner) == "vmap"
    assert pick_strategy(C.replace(long_run, **{"train.strategy": "loop"}), (1, 28, 28), "cpu", learner) == "loop"
    assert pick_strategy(long_run, (1, 28, 28), "cpu") == "loop"                   # no learner to check


@pytest.mark.slow
def test_compiled_strategy_gives_the_reference_meta_gradient():
    """torch.compile of the query pass (MAML, first and second order) and of the embedding (ProtoNet):
    the reference's meta-gradient to float32 tolerance. Slow: inductor compiles each (15-45 s here)."""
    from test_strategies import assert_same
    for name, extra in [("maml", {}), ("maml", {"learner.first_order": True}), ("protonet", {})]:
        learner = _learner(image_cfg(name, **extra), (1, 12, 12), "cpu")
        batch = image_batch(3, 3, 2, 2)
        ref = meta_gradient(learner, batch, "reference")
        assert_same(meta_gradient(learner, batch, "compiled"), ref, f"{name} {extra} compiled", tol=1e-4)


def test_compiled_pass_falls_back_to_eager_when_inductor_fails(monkeypatch):
    def broken(fn, **kw):
        def call(*a):
            raise RuntimeError("C++ compile error: Python.h: No such file or directory")
        return call
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(batched, "_COMPILED", {})
    learner = _learner(image_cfg("protonet"), (1, 12, 12), "cpu")
    batch = image_batch(2, 3, 2, 2)
    learner.strategy = "loop"
    loss_loop, _ = learner.meta_loss(batch)
    learner.strategy = "compiled"
    loss, _ = learner.meta_loss(batch)
    assert float(loss) == float(loss_loop)
    (fn,) = batched._COMPILED.values()
    assert "Python.h" in fn.failure
