"""scikit-learn's bundled handwritten digits (8x8, 10 classes, 1,797 images)."""

from __future__ import annotations

import numpy as np
import torch

from workbench.data.base import ClassDataset


def load_digits_dataset(rotations: bool = False) -> ClassDataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)   # (N, 1, 8, 8)
    labels = d.target.astype(np.int64)
    names = [str(i) for i in range(10)]
    ds = ClassDataset(x, labels, names, ["digits"] * 10, source="scikit-learn digits")
    return with_rotations(ds) if rotations else ds


def with_rotations(ds: ClassDataset) -> ClassDataset:
    """Add 90/180/270-degree rotations of every class as new classes (named 'name@90' ...).

    The new classes keep the group of their original, and class c rotated by k*90 degrees
    gets index c + k * n_classes, so a class split on originals can carry its rotations.
    """
    xs, labels, names, groups = [ds.x], [ds.labels], list(ds.class_names), list(ds.groups)
    n = ds.n_classes
    for k in (1, 2, 3):
        xs.append(torch.rot90(ds.x, k, dims=(-2, -1)))
        labels.append(ds.labels + k * n)
        names += [f"{c}@{90 * k}" for c in ds.class_names]
        groups += list(ds.groups)
    return ClassDataset(torch.cat(xs), np.concatenate(labels), names, groups, source=ds.source)


def load_from_config(data_cfg) -> ClassDataset:
    return load_digits_dataset(rotations=False)
