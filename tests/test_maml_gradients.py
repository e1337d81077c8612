"""MAML-family meta-gradients checked against central finite differences (float64, tiny MLP).

The meta-loss L(theta) = mean_i L_query(theta'_i(theta)) is a plain function of the
meta-parameters, so its exact gradient (second order, Finn et al. 2017 eq. 2-3) must
match (L(theta + h e_j) - L(theta - h e_j)) / 2h for every coordinate j. First-order
MAML must NOT match it, and must equal the query gradient at the adapted weights.
"""

from __future__ import annotations

import pytest
import torch

from workbench import config as C
from workbench.data.base import Task, TaskBatch
from workbench.learners.anil import ANIL
from workbench.learners.base import Setting
from workbench.learners.maml import MAML
from workbench.learners.metasgd import MetaSGD
from workbench.models import build_backbone

WAYS, DIM = 3, 4




def make_learner(cls=MAML, kind="classification", steps=1, first_order=False, strategy="loop", seed=0):
    torch.manual_seed(seed)
    lcfg = C.LearnerConfig(name=cls.name if cls is not MAML else "maml", inner_steps=steps, inner_lr=0.5,
                           first_order=first_order)
    backbone = build_backbone(C.ModelConfig(hidden=[5], norm="none"), (DIM,),
                              1 if kind == "regression" else WAYS)
    setting = Setting(kind, 1 if kind == "regression" else WAYS, (DIM,), 0)
    learner = cls(backbone, C.ExperimentConfig(learner=lcfg), setting).double()
    learner.strategy = strategy
    return learner


def make_batch(kind="classification", n_tasks=2, seed=1) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for i in range(n_tasks):
        sx, qx = torch.randn(6, DIM, generator=g, dtype=torch.float64), torch.randn(9, DIM, generator=g,
                                                                                   dtype=torch.float64)
        if kind == "regression":
            sy, qy = torch.randn(6, 1, generator=g, dtype=torch.float64), torch.randn(9, 1, generator=g,
                                                                                     dtype=torch.float64)
        else:
            sy, qy = torch.arange(WAYS).repeat(2), torch.arange(WAYS).repeat(3)
        tasks.append(Task(sx, sy, qx, qy, f"t{i}", "f"))
    return TaskBatch.stack(tasks)


def autograd_grad(learner, batch, params) -> torch.Tensor:
    loss, _ = learner.meta_loss(batch)
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(gs, params)])


def finite_difference_grad(learner, batch, params, h=1e-6) -> torch.Tensor:
    def loss_at(flat, j, value):          # the inner loop needs autograd, so only the write is no_grad
        with torch.no_grad():
            flat[j] = value
        return float(learner.meta_loss(batch)[0].detach())

    out = []
    for p in params:
        flat = p.data.view(-1)
        for j in range(flat.numel()):
            old = flat[j].item()
            up, down = loss_at(flat, j, old + h), loss_at(flat, j, old - h)
            loss_at(flat, j, old)
            out.append((up - down) / (2 * h))
    return torch.tensor(out, dtype=torch.float64)


def rel_err(a, b) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_maml_second_order_gradient_matches_finite_differences(steps, kind):
    learner, batch = make_learner(kind=kind, steps=steps), make_batch(kind)
    params = list(learner.parameters())
    g = autograd_grad(learner, batch, params)
    fd = finite_difference_grad(learner, batch, params)
    assert g.abs().max() > 1e-4                     # a real, non-trivial gradient
    assert rel_err(g, fd) < 1e-6


@pytest.mark.parametrize("steps", [1, 2])
def test_first_order_differs_and_equals_query_gradient_at_adapted_weights(steps):
    batch = make_batch()
    so = make_learner(steps=steps)
    fo = make_learner(steps=steps, first_order=True)
    params = list(fo.parameters())
    g_fo = autograd_grad(fo, batch, params)
    g_so = autograd_grad(so, batch, list(so.parameters()))
    fd = finite_difference_grad(fo, batch, params)
    assert rel_err(g_fo, fd) > 1e-3                 # the second-order terms are really dropped
    assert rel_err(g_so, fd) < 1e-6
    # FOMAML: mean over tasks of grad_theta' L_query(theta'), theta' adapted without a graph
    expected = torch.zeros_like(g_fo)
    for i in range(len(batch)):
        state = fo.adapt(batch.support_x[i], batch.support_y[i], steps=steps, lr=fo.cfg.inner_lr)
        adapted = [state[n].clone().requires_grad_() for n, _ in fo.backbone.named_parameters()]
        names = [n for n, _ in fo.backbone.named_parameters()]
        out = fo.predict(dict(zip(names, adapted)), batch.query_x[i])
        loss = torch.nn.functional.cross_entropy(out, batch.query_y[i])
        expected += torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, adapted)]) / len(batch)
    assert rel_err(g_fo, expected) < 1e-10


@pytest.mark.parametrize("cls", [MAML, ANIL, MetaSGD])
@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_strategy_gives_the_loop_gradient(cls, first_order):
    batch = make_batch(n_tasks=3)
    loop = make_learner(cls, steps=2, first_order=first_order, strategy="loop")
    vmap = make_learner(cls, steps=2, first_order=first_order, strategy="vmap")
    g_loop = autograd_grad(loop, batch, list(loop.parameters()))
    g_vmap = autograd_grad(vmap, batch, list(vmap.parameters()))
    assert g_loop.abs().max() > 1e-4
    assert rel_err(g_vmap, g_loop) < 1e-10
    assert torch.allclose(loop.meta_loss(batch)[0], vmap.meta_loss(batch)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 2])
def test_metasgd_learning_rate_gradient_matches_finite_differences(steps):
    learner, batch = make_learner(MetaSGD, steps=steps), make_batch()
    lrs = list(learner.lrs.parameters())
    g = autograd_grad(learner, batch, lrs)
    fd = finite_difference_grad(learner, batch, lrs)
    assert g.abs().max() > 1e-4
    assert rel_err(g, fd) < 1e-6
    if steps == 2:   # and the weights' gradient, through the learned per-parameter rates
        weights = list(learner.backbone.parameters())
        assert rel_err(autograd_grad(learner, batch, weights), finite_difference_grad(learner, batch, weights)) < 1e-6


def test_anil_gradient_matches_finite_differences_and_adapts_only_the_head():
    steps = 2
    learner, batch = make_learner(ANIL, steps=steps), make_batch()
    params = list(learner.parameters())
    g = autograd_grad(learner, batch, params)
    assert rel_err(g, finite_difference_grad(learner, batch, params)) < 1e-6
    state = learner.adapt(batch.support_x[0], batch.support_y[0], steps=steps, lr=0.5)
    for n, p in learner.backbone.named_parameters():
        changed = not torch.equal(state[n], p.detach())
        assert changed == n.startswith("head."), n
