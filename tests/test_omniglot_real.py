"""Real Omniglot (the authors' images_background_small1.zip), skipped when the file is absent.

A short ProtoNet run, split by alphabet, must beat chance clearly on alphabets
it never saw in meta-training.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from workbench import config as C
from workbench.data import omniglot
from workbench.train import events as E
from workbench.train.engine import run


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("omniglot-cache")


@pytest.fixture(autouse=True)
def _cache(cache_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(cache_dir))


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine it is faster than two, and the engine sets it globally."""
    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


def test_real_zip_counts_and_alphabets(omniglot_zip):
    ds = omniglot.load_omniglot(omniglot_zip, image_size=20)
    assert ds.x.shape == (2720, 1, 20, 20)
    per_alphabet = Counter(ds.groups)
    assert per_alphabet == {"Balinese": 24, "Early_Aramaic": 22, "Greek": 24, "Korean": 40, "Latin": 26}
    assert all(ds.count(c) == 20 for c in range(ds.n_classes))
    assert ds.class_names[0] == "Balinese/character01"
    # ink is bright: the mean image is mostly paper
    assert 0.02 < float(ds.x.mean()) < 0.3


def test_protonet_beats_chance_on_unseen_alphabets(omniglot_zip, one_thread):
    cfg = C.from_dict({
        "data": {"dataset": "omniglot", "path": str(omniglot_zip), "image_size": 20},
        "split": {"method": "group", "train_fraction": 0.6, "val_fraction": 0.0, "seed": 0},
        "task": {"ways": 5, "shots": 1, "queries": 5},
        "model": {"backbone": "conv4", "filters": 16, "norm": "batch"},
        "learner": {"name": "protonet", "meta_lr": 1e-2, "meta_batch": 4},
        "embedding": {"method": "none"},
        "train": {"steps": 40, "eval_every": 0, "log_every": 10, "threads": one_thread},
        "eval": {"episodes": 100, "seed": 7},
    })
    events = list(run(cfg))
    assert isinstance(events[-1], E.RunFinished), getattr(events[-1], "message", events[-1])
    started = next(e for e in events if isinstance(e, E.RunStarted))
    train_alphabets, _, test_alphabets = started.split["groups"]
    assert train_alphabets and test_alphabets and not set(train_alphabets) & set(test_alphabets)
    test = next(e for e in events if isinstance(e, E.Evaluation) and e.phase == "test")
    assert set(test.families) <= set(test_alphabets)
    assert len(test.per_task) == 100
    # chance is 20%; the lower end of the 95% interval must be far above it
    assert test.mean - test.ci95 > 0.45, (test.mean, test.ci95)
