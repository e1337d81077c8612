"""The default experiment: the Omniglot sample that ships, tasks in alphabet families."""

import hashlib
import time
from collections import Counter

import numpy as np
import pytest

from workbench import config as C
from workbench import registry, resources
from workbench.data import build_sources
from workbench.data import omniglot as O
from workbench.data.base import DataError, episode_rng

SHA256 = "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"


def test_the_sample_ships_with_its_licence_and_attribution():
    p = O.sample_path()
    assert p.is_relative_to(resources.root())
    assert hashlib.sha256(p.read_bytes()).hexdigest() == SHA256      # the authors' file, unchanged
    licence = (p.parent / "LICENSE").read_text()
    readme = (p.parent / "README.md").read_text()
    assert "MIT License" in licence and "Brenden Lake" in licence
    assert "Lake" in readme and "Tenenbaum" in readme and "brendenlake/omniglot" in readme


def test_default_config_is_the_omniglot_sample_with_one_alphabet_per_episode():
    cfg = C.default_config()
    assert C.DEFAULT_PRESET == "omniglot_sample_protonet"
    assert cfg.data.dataset == "omniglot_sample" and cfg.task.within_group
    spec = registry.datasets.get("omniglot_sample")
    assert not spec.needs_path and spec.images and spec.groups
    assert C.validate(cfg) == []


def test_test_tasks_come_from_every_alphabet_each_from_one(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    cfg = C.default_config()
    src = build_sources(cfg)
    ds = src.dataset
    assert ds.n_classes == 136 and len(set(ds.groups)) == 5
    assert "images_background_small1.zip" in ds.source
    # a fresh split by character: test characters are never meta-trained on
    assert set(src.split["test"]).isdisjoint(src.split["train"])
    families = Counter()
    for i in range(200):
        t = src.test.sample(episode_rng(7, i, 0), f"t{i}")
        alphabets = {name.split("/")[0] for name in t.class_names}
        assert len(alphabets) == 1 and t.family in alphabets
        families[t.family] += 1
    assert len(families) == 5, families


def test_sample_is_decoded_once_then_read_from_the_per_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    cfg = C.replace(C.default_config(), **{"data.image_size": 12})     # a size no other test caches
    t0 = time.perf_counter()
    first = O.load_sample_from_config(cfg.data)
    t1 = time.perf_counter()
    second = O.load_sample_from_config(cfg.data)
    t2 = time.perf_counter()
    cached = list((tmp_path / "cache" / "datasets").glob("omniglot-*.npz"))
    assert len(cached) == 1
    assert np.array_equal(first.x.numpy(), second.x.numpy()) and first.class_names == second.class_names
    assert first.x.shape == (2720, 1, 12, 12)
    assert t2 - t1 < (t1 - t0) / 2, (t1 - t0, t2 - t1)


def test_a_missing_sample_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setattr(O, "SAMPLE_ZIP", ("data", "omniglot", "gone.zip"))
    with pytest.raises(DataError, match="Omniglot sample.*missing.*reinstall"):
        O.load_sample_from_config(C.default_config().data)
