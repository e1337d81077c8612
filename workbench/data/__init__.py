"""Data sources and episodic task sampling (no Qt).

``build_sources(config)`` turns the data, split and task sections of a config
into three task sources (meta-train, meta-val, meta-test) and a record of the
split actually used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench import registry

from workbench.data.base import (ClassDataset, DataError, EpisodeSource, Task, TaskBatch, TaskSource,
                                 episode_rng, split_counts)

__all__ = ["ClassDataset", "DataError", "EpisodeSource", "Task", "TaskBatch", "TaskSource", "episode_rng",
           "build_sources", "load_class_dataset", "Sources"]

_CACHE: dict = {}


@dataclass
class Sources:
    train: TaskSource
    val: TaskSource | None
    test: TaskSource
    split: dict              # {"train": [...], "val": [...], "test": [...], "unit": "class"|"group"|"stream"}
    n_train_classes: int     # classes seen in meta-training (for the multi-task baseline's head)
    dataset: ClassDataset | None = None
    train_classes: tuple = ()


def load_class_dataset(data_cfg) -> ClassDataset:
    """Load (once per process) the class dataset a data config names."""
    key = (data_cfg.dataset, data_cfg.path, data_cfg.image_size, data_cfg.label_column, data_cfg.group_column)
    if key not in _CACHE:
        # the loader is the dataset's declared target (workbench.registry): (data_cfg) -> ClassDataset
        _CACHE[key] = registry.datasets.get(data_cfg.dataset).load()(data_cfg)
    return _CACHE[key]


def _split_classes(ds: ClassDataset, split_cfg, n_base: int) -> tuple[list, list, list, str, dict]:
    """Split base classes 0..n_base-1 into train/val/test index lists."""
    rng = np.random.default_rng(split_cfg.seed)
    names = ds.class_names[:n_base]
    groups = ds.groups[:n_base]
    if split_cfg.method == "fraction":
        order = rng.permutation(n_base)
        a, b, _ = split_counts(n_base, split_cfg.train_fraction, split_cfg.val_fraction)
        tr, va, te = sorted(order[:a]), sorted(order[a:a + b]), sorted(order[a + b:])
        return list(tr), list(va), list(te), "class", {}
    uniq = sorted(set(groups))
    if split_cfg.method == "group":
        if len(uniq) < 2:
            raise DataError(f"split.method = 'group' needs at least 2 groups; {ds.source} has {len(uniq)} "
                            f"({', '.join(uniq[:3])})")
        order = [uniq[i] for i in rng.permutation(len(uniq))]
        a, b, _ = split_counts(len(uniq), split_cfg.train_fraction, split_cfg.val_fraction)
        sets = order[:a], order[a:a + b], order[a + b:]
    else:  # lists: names may be classes or groups
        sets = []
        for which in ("train", "val", "test"):
            wanted = getattr(split_cfg, which)
            unknown = [w for w in wanted if w not in names and w not in uniq]
            if unknown:
                raise DataError(f"split.{which} names {unknown[:5]} which are neither classes nor groups of "
                                f"{ds.source}; e.g. {', '.join(names[:3])} or {', '.join(uniq[:3])}")
            sets.append(wanted)
    out = []
    for s in sets:
        s = set(s)
        out.append([c for c in range(n_base) if names[c] in s or groups[c] in s])
    unit = "group" if split_cfg.method == "group" else "class"
    return out[0], out[1], out[2], unit, {"groups": [sorted(s) for s in sets]}


def build_sources(cfg) -> Sources:
    """Meta-train/val/test task sources for an experiment config."""
    d, t = cfg.data, cfg.task
    if cfg.is_regression:
        from workbench.data.synthetic import FunctionTasks
        fams = ["sine"] if d.dataset == "sinusoid" else list(d.families)
        mk = lambda name: FunctionTasks(fams, t.shots, t.queries, name, d.noise, source=d.dataset)  # noqa: E731
        split = {"unit": "stream", "train": fams, "val": fams, "test": fams}
        return Sources(mk("train"), mk("val"), mk("test"), split, n_train_classes=1)
    ds = load_class_dataset(d)
    n_base = ds.n_classes
    tr, va, te, unit, extra = _split_classes(ds, cfg.split, n_base)
    if d.rotations:
        from workbench.data.digits import with_rotations
        key = ("rot",) + (d.dataset, d.path, d.image_size, d.label_column, d.group_column)
        if key not in _CACHE:
            _CACHE[key] = with_rotations(ds)
        ds = _CACHE[key]
        tr, va, te = ([c + k * n_base for k in range(4) for c in s] for s in (tr, va, te))
    for name, s in (("train", tr), ("test", te)):
        if not s:
            raise DataError(f"the meta-{name} split of {ds.source} is empty; change the split fractions or lists")
    def src(classes, name):
        ways = cfg.train_ways if name == "train" else t.ways       # training may use other ways
        key = "task.train_ways" if ways != t.ways else "task.ways"
        return EpisodeSource(ds, classes, ways, t.shots, t.queries, name, t.within_group, ways_key=key)
    split = {"unit": unit, "train": [ds.class_names[c] for c in tr], "val": [ds.class_names[c] for c in va],
             "test": [ds.class_names[c] for c in te], **extra}
    return Sources(src(tr, "train"), src(va, "val") if len(va) >= t.ways else None, src(te, "test"), split,
                   n_train_classes=len(tr), dataset=ds, train_classes=tuple(tr))
