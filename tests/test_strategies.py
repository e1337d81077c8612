"""The execution strategies of a meta-batch agree: vmap, loop and the cloned-model reference.

Same meta-loss and same meta-gradient (every parameter's .grad) to float
tolerance, for MAML (second and first order), ANIL, Meta-SGD and ProtoNet, on
a tiny MLP (sinusoid regression) and a tiny Conv-4 with batch statistics
(5-way image classification). Runs on CUDA too when one is present.
"""

from __future__ import annotations

import pytest
import torch

from workbench import config as C
from workbench.data.base import Task, TaskBatch
from workbench.learners import build_learner
from workbench.learners.reference import reference_backward
from workbench.train.engine import pick_strategy, vmap_is_exact
from workbench.train.strategy import batched_applies

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
if torch.cuda.is_available():
    # compare in true float32: TF32 convolutions/matmuls (cuDNN's default) round to ~1e-3
    # relative, differently for the batched (vmap) and per-task shapes
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def sinusoid_cfg(learner: str, **extra) -> C.ExperimentConfig:
    changes = {"data.dataset": "sinusoid", "learner.name": learner, "model.hidden": [16, 16],
               "model.norm": "none", "task.shots": 5, "task.queries": 6, "learner.inner_steps": 2,
               "learner.inner_lr": 0.05}
    changes.update(extra)
    return C.replace(C.ExperimentConfig(), **changes)


def image_cfg(learner: str, **extra) -> C.ExperimentConfig:
    changes = {"data.dataset": "digits", "learner.name": learner, "model.backbone": "conv4",
               "model.filters": 4, "model.norm": "batch", "task.ways": 3, "task.shots": 2,
               "task.queries": 2, "learner.inner_steps": 2, "learner.inner_lr": 0.1}
    changes.update(extra)
    return C.replace(C.ExperimentConfig(), **changes)


def regression_batch(n_tasks: int, shots: int, queries: int, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for i in range(n_tasks):
        amp, phase = 0.1 + 4.9 * torch.rand(1, generator=g), 3.14 * torch.rand(1, generator=g)
        x = 10 * torch.rand(shots + queries, 1, generator=g) - 5
        y = amp * torch.sin(x - phase)
        tasks.append(Task(x[:shots], y[:shots], x[shots:], y[shots:], f"t{i}", "sine"))
    return TaskBatch.stack(tasks)


def image_batch(n_tasks: int, ways: int, shots: int, queries: int, size: int = 12, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for i in range(n_tasks):
        means = torch.randn(ways, 1, size, size, generator=g)
        sy = torch.arange(ways).repeat_interleave(shots)
        qy = torch.arange(ways).repeat_interleave(queries)
        sx = means[sy] + 0.5 * torch.randn(len(sy), 1, size, size, generator=g)
        qx = means[qy] + 0.5 * torch.randn(len(qy), 1, size, size, generator=g)
        tasks.append(Task(sx, sy, qx, qy, f"t{i}", "synthetic"))
    return TaskBatch.stack(tasks)


def meta_gradient(learner, batch: TaskBatch, strategy: str) -> tuple[float, dict]:
    learner.zero_grad(set_to_none=True)
    if strategy == "reference":
        loss, _ = reference_backward(learner, batch)
    else:
        learner.strategy = strategy
        loss, _ = learner.meta_loss(batch)
        loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in learner.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


def assert_same(a: tuple, b: tuple, what: str, tol: float = 1e-5):
    (la, ga), (lb, gb) = a, b
    assert la == pytest.approx(lb, rel=tol, abs=tol), f"{what}: meta-loss {la} != {lb}"
    assert ga.keys() == gb.keys(), f"{what}: different parameters got gradients: {set(ga) ^ set(gb)}"
    assert ga, f"{what}: no parameter received a gradient"
    for n in ga:
        scale = max(1.0, float(gb[n].abs().max()))
        err = float((ga[n] - gb[n]).abs().max())
        assert err <= tol * scale, f"{what}: gradient of {n} differs by {err:.3g}"


CASES = [
    ("maml", {}),
    ("maml", {"learner.first_order": True}),
    ("fomaml", {}),
    ("anil", {}),
    ("metasgd", {}),
    ("metasgd", {"learner.first_order": True}),
    ("protonet", {}),
]


def omniglot_maml_cfg(zip_path, inner_steps: int = 1) -> C.ExperimentConfig:
    """A 3-step second-order MAML run on real Omniglot (Conv-4, 8 filters, batch norm), for checks that
    a fast path leaves the metrics of a seeded run as they were."""
    return C.from_dict({
        "data": {"dataset": "omniglot", "path": str(zip_path), "image_size": 20},
        "split": {"method": "group", "train_fraction": 0.6, "val_fraction": 0.0, "seed": 0},
        "task": {"ways": 5, "shots": 1, "queries": 3},
        "model": {"backbone": "conv4", "filters": 8, "norm": "batch"},
        "learner": {"name": "maml", "meta_batch": 2, "inner_steps": inner_steps, "inner_lr": 0.4},
        "embedding": {"method": "none"},
        "train": {"steps": 3, "eval_every": 0, "log_every": 1, "threads": 1},
        "eval": {"episodes": 20, "seed": 7},
    })


def short_run(cfg):
    """(the log's text, the final test evaluation, the training losses) of a run to its end."""
    from workbench.train import engine
    from workbench.train import events as E
    events = engine.run_to_end(cfg)
    assert isinstance(events[-1], E.RunFinished), events[-1]
    log = " ".join(e.message for e in events if isinstance(e, E.Log))
    return log, engine.final_test(events), [e.metrics["train/loss"] for e in events if isinstance(e, E.StepMetrics)]


def _learner(cfg, input_shape, device):
    torch.manual_seed(0)
    return build_learner(cfg, input_shape).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,extra", [c for c in CASES if c[0] != "protonet"],
                         ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_strategies_agree_on_mlp_regression(name, extra, device):
    cfg = sinusoid_cfg(name, **extra)
    learner = _learner(cfg, (1,), device)
    batch = regression_batch(4, 5, 6)
    batch = TaskBatch(*(t.to(device) for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)),
                      batch.tasks)
    ref = meta_gradient(learner, batch, "reference")
    assert_same(meta_gradient(learner, batch, "loop"), ref, f"{name} {extra} loop vs reference")
    assert_same(meta_gradient(learner, batch, "vmap"), ref, f"{name} {extra} vmap vs reference")
    assert batched_applies(learner)
    assert_same(meta_gradient(learner, batch, "batched"), ref, f"{name} {extra} batched vs reference")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("norm", ["none", "batch"])
@pytest.mark.parametrize("name,extra", CASES,
                         ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_strategies_agree_on_conv_classification(name, extra, norm, device):
    """Loop and reference always agree; vmap agrees wherever the engine would use it."""
    cfg = image_cfg(name, **{"model.norm": norm, **extra})
    learner = _learner(cfg, (1, 12, 12), device)
    batch = image_batch(3, 3, 2, 2)
    batch = TaskBatch(*(t.to(device) for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)),
                      batch.tasks)
    ref = meta_gradient(learner, batch, "reference")
    assert_same(meta_gradient(learner, batch, "loop"), ref, f"{name} {extra} loop vs reference", tol=1e-4)
    if vmap_is_exact(cfg)[0]:
        assert_same(meta_gradient(learner, batch, "vmap"), ref, f"{name} {extra} vmap vs reference", tol=1e-4)
    else:
        assert pick_strategy(C.replace(cfg, **{"train.strategy": "vmap"}), (1, 12, 12), device) == "loop"


def test_auto_strategy_rule():
    mlp = sinusoid_cfg("maml")
    conv = image_cfg("maml", **{"model.norm": "none"})
    assert pick_strategy(mlp, (1,), "cpu") == "vmap"                                # no learner to check
    assert pick_strategy(mlp, (1,), "cpu", _learner(mlp, (1,), "cpu")) == "batched"
    assert pick_strategy(mlp, (1,), "cuda", _learner(mlp, (1,), "cpu")) == "vmap"
    assert pick_strategy(conv, (1, 12, 12), "cpu") == "loop"
    assert pick_strategy(conv, (1, 12, 12), "cuda") == "vmap"
    # second order through batch norm: vmap since workbench.models.norm's batch norm is exact there
    bn = image_cfg("maml")
    assert pick_strategy(bn, (1, 12, 12), "cuda", _learner(bn, (1, 12, 12), "cpu")) == "vmap"
    assert pick_strategy(image_cfg("fomaml"), (1, 12, 12), "cuda") == "vmap"
    assert pick_strategy(C.replace(mlp, **{"train.strategy": "loop"}), (1,), "cpu") == "loop"
    assert pick_strategy(C.replace(bn, **{"learner.checkpoint_inner": True}), (1, 12, 12), "cuda") == "loop"


def test_native_batch_norm_keeps_second_order_off_vmap():
    """A backbone with torch's own batch norm (a plugin's, say) still runs second order as a loop."""
    cfg = image_cfg("maml")
    learner = _learner(cfg, (1, 12, 12), "cpu")
    learner.backbone.trunk.net[0][1] = torch.nn.BatchNorm2d(4, track_running_stats=False)
    exact, why = vmap_is_exact(cfg, learner)
    assert not exact and "trunk.net.0.1" in why
    assert pick_strategy(cfg, (1, 12, 12), "cuda", learner) == "loop"
    assert vmap_is_exact(image_cfg("fomaml"), learner)[0]


def test_batched_strategy_only_where_it_applies():
    assert not batched_applies(_learner(image_cfg("maml"), (1, 12, 12), "cpu"))            # convolutions
    mlp_bn = sinusoid_cfg("maml", **{"model.norm": "batch"})
    assert not batched_applies(_learner(mlp_bn, (1,), "cpu"))                             # normalisation
    assert pick_strategy(mlp_bn, (1,), "cpu", _learner(mlp_bn, (1,), "cpu")) == "vmap"
    assert not batched_applies(_learner(sinusoid_cfg("reptile"), (1,), "cpu"))           # own update rule


def test_second_order_differs_from_first_order():
    """The comparison above can fail: second- and first-order meta-gradients are not equal."""
    batch = regression_batch(4, 5, 6)
    so = meta_gradient(_learner(sinusoid_cfg("maml"), (1,), "cpu"), batch, "loop")
    fo = meta_gradient(_learner(sinusoid_cfg("maml", **{"learner.first_order": True}), (1,), "cpu"), batch, "loop")
    assert so[0] == pytest.approx(fo[0])          # same forward pass ...
    with pytest.raises(AssertionError):           # ... different gradient
        assert_same(so, fo, "second vs first order")


@pytest.mark.parametrize("name", ["maml", "metasgd"])
def test_checkpointed_inner_loop_gives_the_same_meta_gradient(name):
    batch = regression_batch(3, 5, 6)
    plain = meta_gradient(_learner(sinusoid_cfg(name, **{"learner.inner_steps": 3}), (1,), "cpu"), batch, "loop")
    ck_cfg = sinusoid_cfg(name, **{"learner.inner_steps": 3, "learner.checkpoint_inner": True})
    ck = meta_gradient(_learner(ck_cfg, (1,), "cpu"), batch, "loop")
    assert_same(ck, plain, f"{name} checkpointed vs plain")


def test_reference_clone_leaves_the_learner_untouched():
    cfg = sinusoid_cfg("maml")
    learner = _learner(cfg, (1,), "cpu")
    before = {n: p.detach().clone() for n, p in learner.named_parameters()}
    meta_gradient(learner, regression_batch(2, 5, 6), "reference")
    for n, p in learner.named_parameters():
        assert isinstance(p, torch.nn.Parameter) and p.is_leaf
        assert torch.equal(p.detach(), before[n])


def test_bfloat16_autocast_only_without_second_order_and_close_to_float32():
    from workbench.train.engine import autocast_allowed, train_context
    assert autocast_allowed(sinusoid_cfg("fomaml")) and autocast_allowed(image_cfg("protonet"))
    assert not autocast_allowed(sinusoid_cfg("maml")) and not autocast_allowed(sinusoid_cfg("anil"))
    # batch norm's backward under vmap fails in autocast (torch 2.11-2.13): float32 there
    assert autocast_allowed(image_cfg("fomaml"), "loop") and not autocast_allowed(image_cfg("fomaml"), "vmap")
    assert autocast_allowed(image_cfg("protonet"), "vmap")
    cfg = sinusoid_cfg("fomaml", **{"train.precision": "bfloat16"})
    batch = regression_batch(4, 5, 6)
    full = meta_gradient(_learner(cfg, (1,), "cpu"), batch, "vmap")
    with train_context(cfg, torch.device("cpu")):
        half = meta_gradient(_learner(cfg, (1,), "cpu"), batch, "vmap")
    assert half[0] != full[0]                                   # bfloat16 arithmetic really ran
    assert half[0] == pytest.approx(full[0], rel=5e-2)          # and stays close to float32
    with train_context(sinusoid_cfg("maml", **{"train.precision": "bfloat16"}), torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")             # second order: float32


def test_backward_per_task_gives_the_whole_batch_gradient():
    """The engine's loop back-propagates task by task; same meta-loss and meta-gradient."""
    from workbench.train.engine import backward_meta_batch, tasks_per_backward
    cfg = image_cfg("maml")
    learner = _learner(cfg, (1, 12, 12), "cpu")
    batch = image_batch(3, 3, 2, 2)
    whole = meta_gradient(learner, batch, "loop")
    learner.zero_grad(set_to_none=True)
    loss, metrics = backward_meta_batch(learner, batch, tasks_per_backward(learner, "loop"))
    grads = {n: p.grad.clone() for n, p in learner.named_parameters() if p.grad is not None}
    assert_same((float(loss), grads), whole, "backward per task vs whole batch")
    assert set(metrics) == {"accuracy"}
    assert tasks_per_backward(learner, "vmap") is None


# -- Conv-4 tasks in closed form (workbench/learners/conv4_closed.py: the "compiled" strategy's MAML task) --------
def _tied_image_batch(n_tasks: int, ways: int, shots: int, queries: int, size: int = 12) -> TaskBatch:
    """Images with a constant border and flat 2x2 blocks, so that max-pool windows hold ties (as the
    flat background of Omniglot characters does): the gradient must go to the first maximum."""
    b = image_batch(n_tasks, ways, shots, queries, size)

    def flat(x):
        y = torch.nn.functional.avg_pool2d(x.flatten(0, 1), 2).repeat_interleave(2, -1).repeat_interleave(2, -2)
        y[..., :3, :] = 0.0
        return y.reshape(x.shape)
    return TaskBatch(flat(b.support_x), b.support_y, flat(b.query_x), b.query_y, b.tasks)


def _closed_meta_gradient(learner, batch: TaskBatch) -> tuple[float, dict]:
    from workbench.learners import conv4_closed
    learner.zero_grad(set_to_none=True)
    loss, metrics = conv4_closed.meta_loss(learner, batch, compiled=False)
    loss.backward()
    return float(loss.detach()), {n: p.grad.detach().clone() for n, p in learner.named_parameters()
                                  if p.grad is not None}


CLOSED_CASES = [("maml", {}), ("maml", {"learner.first_order": True}), ("fomaml", {}), ("anil", {}), ("boil", {}),
                ("maml", {"learner.inner_steps": 3})]


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("name,extra", CLOSED_CASES,
                         ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_closed_form_conv4_task_gives_the_reference_meta_gradient(name, extra, norm):
    """The closed-form inner gradient, differentiated once, is the reference's second-order (or
    first-order) meta-gradient: float64 to 1e-9, ties in the pooling windows included."""
    from workbench.train.strategy import closed_applies
    cfg = image_cfg(name, **{"model.norm": norm, **extra})
    learner = _learner(cfg, (1, 12, 12), "cpu").double()
    assert closed_applies(learner)
    for batch in (image_batch(3, 3, 2, 2), _tied_image_batch(2, 3, 2, 2)):
        batch = TaskBatch(batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y,
                          batch.tasks)
        ref = meta_gradient(learner, batch, "reference")
        assert_same(_closed_meta_gradient(learner, batch), ref, f"{name} {extra} {norm} closed form", tol=1e-9)


def test_closed_form_inner_gradient_is_autograds():
    """The inner gradient itself (not only the meta-gradient) equals autograd's, parameter by parameter."""
    from workbench.learners import batched, conv4_closed
    from workbench.learners.base import task_loss
    learner = _learner(image_cfg("maml"), (1, 12, 12), "cpu").double()
    params = dict(learner.backbone.named_parameters())
    b = _tied_image_batch(1, 3, 2, 2)
    x, y = b.support_x[0].double(), b.support_y[0]
    mine = conv4_closed.inner_gradient("classification", params, batched.conv4_blocks(learner.backbone), x, y,
                                       set(params))
    theirs = torch.autograd.grad(task_loss("classification", learner.backbone(x), y), list(params.values()))
    assert set(mine) == set(params)
    for (n, _), g in zip(params.items(), theirs):
        torch.testing.assert_close(mine[n], g, rtol=1e-10, atol=1e-12, msg=n)


def test_closed_form_only_where_it_applies():
    from workbench.train.strategy import closed_applies
    assert not closed_applies(_learner(image_cfg("metasgd"), (1, 12, 12), "cpu"))        # learned inner rates
    assert not closed_applies(_learner(image_cfg("protonet"), (1, 12, 12), "cpu"))       # no inner loop
    assert not closed_applies(_learner(image_cfg("maml", **{"model.norm": "group"}), (1, 12, 12), "cpu"))
    assert not closed_applies(_learner(image_cfg("maml", **{"learner.checkpoint_inner": True}), (1, 12, 12), "cpu"))
    assert not closed_applies(_learner(sinusoid_cfg("maml"), (1,), "cpu"))                # MLP


def test_compiled_strategy_runs_the_closed_form_task_for_long_runs(monkeypatch):
    """The engine's path (backward_meta_batch, a task per backward pass) with strategy "compiled" runs
    the closed-form task where it applies and pays (second order; torch.compile replaced by the eager
    function here, so the test is fast), and gives the reference's meta-gradient; short runs and first
    order compile the query pass only."""
    from workbench.learners import conv4_closed
    from workbench.train.strategy import backward_meta_batch, uses_closed_form
    from workbench.train import strategy
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    monkeypatch.setattr(conv4_closed, "_TASKS", {})
    monkeypatch.setattr(strategy, "COMPILE_MIN_GFLOP", 1.0)     # these tiny tasks: 4e-4 GFLOP each
    calls = []
    real = conv4_closed.meta_loss
    monkeypatch.setattr(conv4_closed, "meta_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    long_run = image_cfg("maml", **{"train.steps": 100_000, "learner.meta_batch": 3})
    learner = _learner(long_run, (1, 12, 12), "cpu")
    batch = image_batch(3, 3, 2, 2)
    ref = meta_gradient(learner, batch, "reference")
    learner.strategy = "compiled"
    assert uses_closed_form(learner)
    learner.zero_grad(set_to_none=True)
    loss, metrics = backward_meta_batch(learner, batch, 1)
    grads = {n: p.grad.clone() for n, p in learner.named_parameters() if p.grad is not None}
    assert len(calls) == 3 and len(conv4_closed._TASKS) == 1
    assert_same((float(loss), grads), ref, "compiled strategy (closed form) vs reference", tol=1e-5)
    assert set(metrics) == {"accuracy"}
    short = _learner(image_cfg("maml", **{"train.steps": 10}), (1, 12, 12), "cpu")
    short.strategy = "compiled"
    assert not uses_closed_form(short)
    first_order = _learner(image_cfg("fomaml", **{"train.steps": 100_000}), (1, 12, 12), "cpu")
    first_order.strategy = "compiled"
    assert not uses_closed_form(first_order)            # measured no faster there: the query pass only
    protonet = _learner(image_cfg("protonet", **{"train.steps": 100_000}), (1, 12, 12), "cpu")
    protonet.strategy = "compiled"
    assert not uses_closed_form(protonet)


@pytest.mark.slow
def test_compiled_closed_form_task_gives_the_reference_meta_gradient():
    """The closed-form task under torch.compile (inductor): the reference's meta-gradient to float32
    tolerance, second order (the only order ``auto`` runs it for; first order is checked eagerly
    above). Slow: inductor compiles it cold in about 30 s here."""
    from workbench.train.strategy import backward_meta_batch
    learner = _learner(image_cfg("maml", **{"train.steps": 100_000}), (1, 12, 12), "cpu")
    batch = _tied_image_batch(3, 3, 2, 2)
    ref = meta_gradient(learner, batch, "reference")
    learner.strategy = "compiled"
    learner.zero_grad(set_to_none=True)
    loss, _ = backward_meta_batch(learner, batch, 1, closed=True)
    grads = {n: p.grad.clone() for n, p in learner.named_parameters() if p.grad is not None}
    assert_same((float(loss), grads), ref, "maml compiled closed form", tol=1e-4)


def test_omniglot_maml_metrics_unchanged_by_the_closed_form_task(omniglot_zip, monkeypatch):
    """Real Omniglot, second-order MAML through batch norm, same seed: the engine's compiled strategy
    running the closed-form task (eager here: torch.compile replaced, compile threshold lowered so a
    3-step run qualifies) against the plain loop. Same training losses and test metrics."""
    from workbench.learners import conv4_closed
    from workbench.train import strategy
    cfg = omniglot_maml_cfg(omniglot_zip, inner_steps=2)
    before = short_run(C.replace(cfg, **{"train.strategy": "loop"}))
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    monkeypatch.setattr(conv4_closed, "_TASKS", {})
    monkeypatch.setattr(strategy, "COMPILE_MIN_GFLOP", 0.0)
    calls = []
    real = conv4_closed.meta_loss
    monkeypatch.setattr(conv4_closed, "meta_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    after = short_run(cfg)
    if "strategy compiled" not in after[0]:
        pytest.skip("no C++ compiler for inductor here: the compiled strategy is not picked")
    assert "strategy loop" in before[0] and len(calls) >= 3 * 2
    assert after[2] == pytest.approx(before[2], rel=1e-5, abs=1e-6)
    assert after[1].mean == pytest.approx(before[1].mean, abs=1e-6)
    assert max(abs(float(x) - float(y)) for x, y in zip(after[1].per_task, before[1].per_task)) <= 1e-5
