"""Synthetic regression task families that ship with the program.

Sinusoid: the MAML paper (Finn et al., 2017, sec. 5.1): amplitude in
[0.1, 5], phase in [0, pi], x uniform in [-5, 5].
Multimodal: the five families of Multimodal MAML (Vuorio et al., 2019):
sine, line, quadratic, l1-norm and tanh, each task keeping its family label.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.data.base import Task

X_RANGE = (-5.0, 5.0)


def _sine(rng):
    a, p = rng.uniform(0.1, 5.0), rng.uniform(0.0, np.pi)
    return lambda x: a * np.sin(x - p)


def _line(rng):
    a, b = rng.uniform(-3, 3), rng.uniform(-3, 3)
    return lambda x: a * x + b


def _quadratic(rng):
    a, b, c = rng.uniform(-0.15, 0.15), rng.uniform(-3, 3), rng.uniform(-3, 3)
    return lambda x: a * (x - c) ** 2 + b


def _l1norm(rng):
    a, b, c = rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-3, 3)
    return lambda x: a * np.abs(x - c) + b


def _tanh(rng):
    a, b, c = rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-3, 3)
    return lambda x: a * np.tanh(x - c) + b


FAMILIES = {"sine": _sine, "line": _line, "quadratic": _quadratic, "l1norm": _l1norm, "tanh": _tanh}


class FunctionTasks:
    """Regression tasks: K support and Q query points of a function drawn from a family."""

    kind = "regression"
    input_shape = (1,)
    n_outputs = 1

    def __init__(self, families: list[str], shots: int, queries: int, name: str, noise: float = 0.0,
                 source: str = "sinusoid"):
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown function families {unknown}; known: {list(FAMILIES)}")
        self.families, self.shots, self.queries = list(families), shots, queries
        self.name, self.noise, self.source = name, noise, source

    def sample(self, rng: np.random.Generator, task_id: str = "") -> Task:
        return self.sample_with_function(rng, task_id)[0]

    def sample_with_function(self, rng: np.random.Generator, task_id: str = ""):
        """(task, f): the task and the noise-free function its points lie on (f maps numpy x to y)."""
        fam = self.families[rng.integers(len(self.families))] if len(self.families) > 1 else self.families[0]
        f = FAMILIES[fam](rng)
        x = rng.uniform(*X_RANGE, size=(self.shots + self.queries, 1))
        y = f(x)
        if self.noise > 0:
            y = y + rng.normal(0.0, self.noise, size=y.shape)
        x = torch.from_numpy(x.astype(np.float32))
        y = torch.from_numpy(y.astype(np.float32))
        k = self.shots
        return Task(x[:k], y[:k], x[k:], y[k:], task_id, fam), f
