"""Tasks, class datasets and seeded episode sampling.

Everything here is tensors already in memory: a :class:`ClassDataset` holds
all images (decoded once) as one float tensor, and an episode is a handful of
index lookups. Regression task families draw their tasks from functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch


class DataError(ValueError):
    """A data set or path that cannot be used; the message says what was expected."""


@dataclass
class Task:
    """One episode: a labelled support set to adapt on and a query set to score."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    task_id: str
    family: str
    classes: tuple = ()          # global class index of each way (classification)
    class_names: tuple = ()

    def to(self, device) -> "Task":
        return Task(self.support_x.to(device), self.support_y.to(device), self.query_x.to(device),
                    self.query_y.to(device), self.task_id, self.family, self.classes, self.class_names)


@dataclass
class TaskBatch:
    """Tasks of equal shapes stacked along a leading task axis (for vmap)."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    tasks: list

    @classmethod
    def stack(cls, tasks: list[Task]) -> "TaskBatch":
        return cls(torch.stack([t.support_x for t in tasks]), torch.stack([t.support_y for t in tasks]),
                   torch.stack([t.query_x for t in tasks]), torch.stack([t.query_y for t in tasks]), tasks)

    def __len__(self):
        return len(self.tasks)


class TaskSource(Protocol):
    """Anything that draws tasks: a split of a class dataset or a function family."""

    kind: str                 # "classification" | "regression"
    input_shape: tuple        # shape of one x
    n_outputs: int            # ways, or 1 for regression
    name: str                 # "train" | "val" | "test"

    def sample(self, rng: np.random.Generator, task_id: str = "") -> Task: ...


def episode_rng(seed: int, index: int, salt: int = 0) -> np.random.Generator:
    """The generator of fixed episode ``index`` under ``seed``: same seed, same task, anywhere."""
    return np.random.default_rng([int(seed), int(salt), int(index)])


@dataclass
class ClassDataset:
    """Labelled examples of many classes, decoded once and kept in memory.

    x: float tensor (N, *input_shape); labels: (N,) int class index;
    class_names[c]: name of class c; groups[c]: its group (alphabet, source...).
    """

    x: torch.Tensor
    labels: np.ndarray
    class_names: list
    groups: list
    source: str = ""
    _index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if len(self.x) != len(self.labels):
            raise DataError(f"{self.source}: {len(self.x)} examples but {len(self.labels)} labels")
        if len(self.class_names) != len(self.groups):
            raise DataError(f"{self.source}: {len(self.class_names)} class names but {len(self.groups)} groups")
        order = np.argsort(self.labels, kind="stable")
        bounds = np.searchsorted(self.labels[order], np.arange(len(self.class_names) + 1))
        self._index = {c: order[bounds[c]:bounds[c + 1]] for c in range(len(self.class_names))}

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def indices(self, c: int) -> np.ndarray:
        return self._index[c]

    def count(self, c: int) -> int:
        return len(self._index[c])


class EpisodeSource:
    """N-way K-shot Q-query episodes over a subset of a :class:`ClassDataset`'s classes."""

    kind = "classification"

    def __init__(self, dataset: ClassDataset, classes: list[int], ways: int, shots: int, queries: int,
                 name: str, within_group: bool = False, ways_key: str = "task.ways"):
        self.dataset, self.classes = dataset, list(classes)
        self.ways, self.shots, self.queries, self.name = ways, shots, queries, name
        self.input_shape = tuple(dataset.x.shape[1:])
        self.n_outputs = ways
        where = f"meta-{name} split of {dataset.source}"
        if len(self.classes) < ways:
            raise DataError(f"the {where} has {len(self.classes)} classes but episodes need {ways_key.split('.')[1]}"
                            f" = {ways}; lower {ways_key} or give this split more classes")
        need = shots + queries
        for c in self.classes:
            n = dataset.count(c)
            if n == 0:
                raise DataError(f"class {dataset.class_names[c]!r} of {dataset.source} has no examples")
            if n < need:
                raise DataError(f"class {dataset.class_names[c]!r} of {dataset.source} has {n} examples but "
                                f"shots + queries = {shots} + {queries} = {need} are drawn from each class; "
                                f"lower task.shots or task.queries")
        self.within_group = within_group
        self._by_group: dict[str, list[int]] = {}
        for c in self.classes:
            self._by_group.setdefault(dataset.groups[c], []).append(c)
        if within_group:
            self._groups = [g for g, cs in self._by_group.items() if len(cs) >= ways]
            if not self._groups:
                raise DataError(f"task.within_group is on but no group of the {where} has {ways} classes")

    def sample(self, rng: np.random.Generator, task_id: str = "") -> Task:
        ds = self.dataset
        if self.within_group:
            g = self._groups[rng.integers(len(self._groups))]
            pool = self._by_group[g]
        else:
            pool = self.classes
        chosen = rng.choice(len(pool), size=self.ways, replace=False)
        classes = [pool[i] for i in chosen]
        s_idx, q_idx = [], []
        for c in classes:
            idx = ds.indices(c)
            pick = idx[rng.choice(len(idx), size=self.shots + self.queries, replace=False)]
            s_idx.append(pick[:self.shots])
            q_idx.append(pick[self.shots:])
        s_idx = torch.from_numpy(np.concatenate(s_idx))
        q_idx = torch.from_numpy(np.concatenate(q_idx))
        sy = torch.arange(self.ways).repeat_interleave(self.shots)
        qy = torch.arange(self.ways).repeat_interleave(self.queries)
        groups = [ds.groups[c] for c in classes]
        family = max(set(groups), key=groups.count)
        return Task(ds.x[s_idx], sy, ds.x[q_idx], qy, task_id, family, tuple(classes),
                    tuple(ds.class_names[c] for c in classes))


def split_counts(n: int, train_fraction: float, val_fraction: float) -> tuple[int, int, int]:
    """How many of ``n`` items go to train/val/test (each split non-empty where possible)."""
    n_train = max(1, int(round(n * train_fraction)))
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n_val == 0 and n - n_train >= 2:
        n_val = 1
    n_test = n - n_train - n_val
    if n_test < 1 and n_train > 1:
        n_train -= 1
        n_test += 1
    return n_train, n_val, max(0, n_test)
