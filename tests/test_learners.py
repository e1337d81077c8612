"""Every learner learns: held-out digit classes well above chance after seconds of training,
MAML adapts on sinusoids, plus exact checks of what Reptile, Matching Networks and the
multi-task baseline compute.

A note on what "beats chance" shows on the digits: an *untrained* network's random
features already separate held-out digits far above chance (measured: 0.79-0.89 on the
3-way 5-shot preset), so each run is also required to lower its own training loss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench import config as C
from workbench.data import TaskBatch, build_sources
from workbench.data.base import Task
from workbench.learners import build_learner
from workbench.learners.matching import matching_logits
from workbench.learners.reptile import Reptile
from workbench.train.engine import final_test, run_to_end, sample_batch
from workbench.train.evaluate import fixed_episodes, mean_ci95
from workbench.train.events import RunFailed, RunFinished, StepMetrics




# per-learner settings on the digits preset (3-way 5-shot, MLP 128-64); at most 150 steps
SETTINGS = {
    "protonet": {},
    "matching": {"train.steps": 30},     # overfits the 4 meta-train digits if trained longer
    "maml": {},
    "fomaml": {},
    "anil": {},
    "metasgd": {},
    "reptile": {"learner.inner_steps": 5, "learner.inner_lr": 0.1, "learner.reptile_epsilon": 0.5},
    "multitask": {"learner.test_inner_steps": 20, "learner.test_inner_lr": 0.5},
}
MARGIN = 0.2
EPISODES = 100


def digits_config(name: str, **changes) -> C.ExperimentConfig:
    base = {"learner.name": name, "train.steps": 40, "train.eval_every": 0, "train.log_every": 10,
            "eval.episodes": EPISODES, "train.seed": 0, "embedding.method": "none"}
    return C.replace(C.load_preset("digits_protonet"), **{**base, **SETTINGS[name], **changes})


def assert_learns(cfg, name: str, margin: float = MARGIN):
    """A run of ``cfg`` finishes, lowers its training loss, and its test accuracy's 95% CI lies more
    than ``margin`` above chance (shared by the tests of every learner)."""
    events = run_to_end(cfg)
    failed = [e for e in events if isinstance(e, RunFailed)]
    assert not failed, failed[0].message
    assert isinstance(events[-1], RunFinished)
    losses = [e.metrics["train/loss"] for e in events if isinstance(e, StepMetrics)]
    assert len(losses) >= 3 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.85 * losses[0], f"{name} did not lower its training loss: {losses}"
    test = final_test(events)
    assert len(test.per_task) == cfg.eval.episodes
    assert test.mean - test.ci95 > 1.0 / cfg.task.ways + margin, f"{name}: {test.mean:.3f} +- {test.ci95:.3f}"
    return test


@pytest.mark.parametrize("name", list(SETTINGS))
def test_learner_beats_chance_on_held_out_classes(name):
    cfg = digits_config(name)
    assert cfg.eval.episodes == EPISODES
    assert_learns(cfg, name)


def test_maml_adapts_on_sinusoids():
    """Post-adaptation MSE on held-out sinusoids well below pre-adaptation MSE (Finn et al. fig. 2)."""
    cfg = C.replace(C.load_preset("sinusoid_maml"), **{"learner.meta_batch": 10, "learner.meta_lr": 0.01})
    torch.manual_seed(0)
    sources = build_sources(cfg)
    learner = build_learner(cfg, sources.train.input_shape, 1)
    learner.strategy = "vmap"
    optimizer = torch.optim.Adam(learner.parameters(), lr=cfg.learner.meta_lr)

    def mse_after(steps: int) -> np.ndarray:
        """Query MSE of each of 60 fixed held-out tasks after ``steps`` steps on its support set."""
        values = []
        for task in fixed_episodes(sources.test, 60, seed=7):
            state = learner.adapt(task.support_x, task.support_y, steps=steps)
            with torch.no_grad():
                values.append(float(((learner.predict(state, task.query_x) - task.query_y) ** 2).mean()))
        return np.asarray(values)

    untrained_post = mse_after(10)
    for step in range(200):
        learner.train_step(TaskBatch.stack(sample_batch(sources.train, 0, step, 10)), optimizer)
    pre, post = mse_after(0), mse_after(10)
    gain, gain_ci = mean_ci95(pre - post)                          # paired over the same 60 tasks
    assert gain - gain_ci > 0 and post.mean() < 0.5 * pre.mean(), (pre.mean(), post.mean())
    assert post.mean() < 0.5 * untrained_post.mean(), (untrained_post.mean(), post.mean())  # not just 10 SGD steps


# -- exact checks of what the new learners compute ------------------------------------------
def _tiny_batch(n_tasks=3, ways=3, shots=2, queries=4, dim=5, seed=0, classes=None) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for i in range(n_tasks):
        sy = torch.arange(ways).repeat_interleave(shots)
        qy = torch.arange(ways).repeat_interleave(queries)
        cls = classes[i] if classes else ()
        tasks.append(Task(torch.randn(len(sy), dim, generator=g), sy, torch.randn(len(qy), dim, generator=g), qy,
                          f"t{i}", "f", cls))
    return TaskBatch.stack(tasks)


def _tiny_config(name, **changes):
    base = {"learner.name": name, "model.hidden": [8], "model.norm": "none", "task.ways": 3}
    return C.replace(C.load_preset("digits_protonet"), **{**base, **changes})


def test_reptile_update_is_the_interpolation_towards_adapted_weights():
    cfg = _tiny_config("reptile", **{"learner.inner_steps": 3, "learner.inner_lr": 0.2,
                                     "learner.reptile_epsilon": 0.3})
    batch = _tiny_batch()
    torch.manual_seed(0)
    learner = build_learner(cfg, (5,))
    assert isinstance(learner, Reptile)
    theta = {n: p.detach().clone() for n, p in learner.backbone.named_parameters()}
    # by hand: 3 SGD steps per task with a plain autograd loop, then theta + eps * mean(W - theta)
    adapted = []
    for i in range(len(batch)):
        w = {n: p.clone().requires_grad_() for n, p in theta.items()}
        for _ in range(3):
            loss = torch.nn.functional.cross_entropy(torch.func.functional_call(learner.backbone, w,
                                                                                (batch.support_x[i],)),
                                                     batch.support_y[i])
            gs = torch.autograd.grad(loss, list(w.values()))
            w = {n: (p - 0.2 * g).detach().requires_grad_() for (n, p), g in zip(w.items(), gs)}
        adapted.append(w)
    expected = {n: theta[n] + 0.3 * (torch.stack([w[n] for w in adapted]).mean(0) - theta[n]) for n in theta}
    for strategy in ("loop", "vmap"):
        learner.load_state_dict({f"backbone.{n}": p for n, p in theta.items()})
        learner.strategy = strategy
        out = learner.train_step(batch, optimizer=None)
        assert torch.isfinite(out["loss"]) and 0.0 <= float(out["accuracy"]) <= 1.0
        for n, p in learner.backbone.named_parameters():
            torch.testing.assert_close(p.detach(), expected[n], rtol=1e-5, atol=1e-6, msg=f"{strategy} {n}")


def test_matching_logits_are_the_attention_weighted_labels_of_eq_1():
    g = torch.Generator().manual_seed(0)
    zq, zs = torch.randn(4, 6, generator=g), torch.randn(7, 6, generator=g)
    ys = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    logp = matching_logits(zq, zs, ys, 3)
    cos = torch.nn.functional.cosine_similarity(zq[:, None], zs[None], dim=-1)
    attention = torch.softmax(cos, dim=-1)                             # eq. 2
    probs = attention @ torch.nn.functional.one_hot(ys, 3).float()     # eq. 1
    torch.testing.assert_close(logp.exp(), probs)
    torch.testing.assert_close(torch.log_softmax(logp, -1), logp)      # cross_entropy(logp) = NLL


@pytest.mark.parametrize("fce", [False, True])
def test_matching_loop_and_vmap_agree(fce):
    cfg = _tiny_config("matching", **{"learner.matching_fce": fce})
    torch.manual_seed(0)
    learner = build_learner(cfg, (5,))
    assert (learner.fce is not None) == fce
    batch = _tiny_batch()
    results = {}
    for strategy in ("loop", "vmap"):
        learner.strategy = strategy
        loss, metrics = learner.meta_loss(batch)
        grads = torch.autograd.grad(loss, list(learner.parameters()))
        results[strategy] = (loss, metrics["accuracy"], grads)
    torch.testing.assert_close(results["loop"][0], results["vmap"][0])
    torch.testing.assert_close(results["loop"][1], results["vmap"][1])
    for a, b in zip(results["loop"][2], results["vmap"][2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_multitask_maps_each_way_to_its_global_class_and_fits_a_new_head():
    cfg = _tiny_config("multitask", **{"learner.test_inner_steps": 100, "learner.test_inner_lr": 0.5,
                                       "model.hidden": [32]})
    torch.manual_seed(0)
    learner = build_learner(cfg, (5,), n_train_classes=4)
    learner.set_train_classes([2, 5, 7, 9])                         # global indices of meta-train classes
    task = _tiny_batch(n_tasks=1, classes=[(9, 2, 7)]).tasks[0]
    assert learner.global_labels(task, torch.tensor([0, 1, 2, 0])).tolist() == [3, 0, 2, 3]
    batch = _tiny_batch(n_tasks=2, classes=[(9, 2, 7), (5, 9, 2)])
    loss, metrics = learner.meta_loss(batch)
    x = torch.cat([batch.support_x.flatten(0, 1), batch.query_x.flatten(0, 1)])
    y = torch.cat([learner.global_labels(t, batch.support_y[i]) for i, t in enumerate(batch.tasks)]
                  + [learner.global_labels(t, batch.query_y[i]) for i, t in enumerate(batch.tasks)])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(learner.backbone(x), y))
    bad = _tiny_batch(n_tasks=1, classes=[(9, 2, 3)]).tasks[0]
    with pytest.raises(ValueError, match="not all meta-train classes"):
        learner.global_labels(bad, torch.tensor([0]))
    # test time: a new zero-initialised head with `ways` outputs, fitted on the support set
    untouched = [p.detach().clone() for p in learner.parameters()]
    state = learner.adapt(task.support_x, task.support_y)
    assert state["weight"].shape == (3, 32)
    fitted = torch.nn.functional.cross_entropy(learner.predict(state, task.support_x), task.support_y)
    assert fitted < 0.3 * math.log(3)                               # log 3: the zero head's loss
    assert all(torch.equal(a, b) for a, b in zip(untouched, learner.parameters()))   # trunk stays frozen
