"""The data sources users bring: Omniglot, mini-ImageNet, image folders, feature tables.

Each loader is tried on small files generated in tmp_path (and Omniglot on the
real zip when it is there): shapes, class and group names, the on-disk cache,
and episodes built from it through ``build_sources``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from sources_datagen import (make_feature_csv, make_image_folder, make_mini_csv, make_mini_pickles,
                             make_omniglot_folder, make_omniglot_zip)
from workbench import config as C
from workbench.data import DataError, build_sources, load_class_dataset
from workbench.data import feature_table, image_folder, miniimagenet, omniglot
from workbench.data.base import episode_rng


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Each test gets its own decoded-array cache folder."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))


def cfg_for(dataset: str, path, **more) -> C.ExperimentConfig:
    changes = {"data.dataset": dataset, "data.path": str(path), "task.ways": 2, "task.shots": 1,
               "task.queries": 2, "train.steps": 2, "eval.episodes": 3, "train.val_episodes": 2}
    changes.update(more)
    return C.replace(C.ExperimentConfig(), **changes)


def _count_decodes(monkeypatch, module):
    calls = []
    real = module.decode_image

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)
    monkeypatch.setattr(module, "decode_image", counting)
    return calls


# ---------------------------------------------------------------------------------------------- Omniglot
def test_omniglot_zip_shapes_names_and_ink(tmp_path):
    z = make_omniglot_zip(tmp_path / "images_background.zip")
    ds = omniglot.load_omniglot(z, image_size=16)
    assert ds.x.shape == (3 * 4 * 5, 1, 16, 16) and ds.x.dtype == torch.float32
    assert ds.n_classes == 12
    assert ds.class_names[0] == "Alpha/character01" and ds.class_names[-1] == "Gamma/character04"
    assert ds.groups == ["Alpha"] * 4 + ["Beta"] * 4 + ["Gamma"] * 4
    assert [ds.count(c) for c in range(12)] == [5] * 12
    # strokes are bright on a dark background: most pixels are paper (near 0), some ink (near 1)
    assert 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0
    assert float(ds.x.mean()) < 0.35 and float(ds.x.max()) > 0.9
    assert "images_background.zip" in ds.source


def test_omniglot_folder_and_folder_of_zips(tmp_path):
    folder = make_omniglot_folder(tmp_path / "unpacked", alphabets=("A", "B"), chars=2, drawings=3)
    ds = omniglot.load_omniglot(folder, image_size=10)
    assert ds.x.shape == (12, 1, 10, 10) and ds.class_names == ["A/character01", "A/character02",
                                                                 "B/character01", "B/character02"]
    both = tmp_path / "both"
    both.mkdir()
    make_omniglot_zip(both / "images_background.zip", alphabets=("A", "B"), chars=2, drawings=3)
    make_omniglot_zip(both / "images_evaluation.zip", top="images_evaluation", alphabets=("C",), chars=3,
                      drawings=3)
    # the small subsets are parts of the full background set and are skipped beside it
    make_omniglot_zip(both / "images_background_small1.zip", top="images_background_small1",
                      alphabets=("A",), chars=1, drawings=3)
    ds = omniglot.load_omniglot(both, image_size=10)
    assert sorted(set(ds.groups)) == ["A", "B", "C"] and ds.n_classes == 7
    assert "images_background.zip + images_evaluation.zip" in ds.source


def test_omniglot_cache_skips_decoding_and_notices_changes(tmp_path, monkeypatch):
    z = make_omniglot_zip(tmp_path / "images_background.zip", chars=2, drawings=3)
    calls = _count_decodes(monkeypatch, omniglot)
    first = omniglot.load_omniglot(z, image_size=12)
    assert len(calls) == 18
    second = omniglot.load_omniglot(z, image_size=12)
    assert len(calls) == 18, "the second load must come from the disk cache"
    assert torch.equal(first.x, second.x) and first.class_names == second.class_names
    assert first.groups == second.groups and np.array_equal(first.labels, second.labels)
    assert list((tmp_path / "cache" / "datasets").glob("omniglot-*.npz"))
    omniglot.load_omniglot(z, image_size=14)            # another size is another entry
    assert len(calls) == 36
    st = z.stat()
    os.utime(z, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))   # an edited source is decoded again
    omniglot.load_omniglot(z, image_size=12)
    assert len(calls) == 54


def test_omniglot_corrupt_cache_entry_is_decoded_again(tmp_path, monkeypatch):
    z = make_omniglot_zip(tmp_path / "images_background.zip", chars=2, drawings=2)
    omniglot.load_omniglot(z, image_size=8)
    for f in (tmp_path / "cache" / "datasets").glob("*.npz"):
        f.write_bytes(b"garbage")
    calls = _count_decodes(monkeypatch, omniglot)
    ds = omniglot.load_omniglot(z, image_size=8)
    assert len(calls) == 12 and ds.x.shape == (12, 1, 8, 8)


def test_omniglot_episodes_split_by_alphabet(tmp_path):
    z = make_omniglot_zip(tmp_path / "images_background.zip")
    cfg = cfg_for("omniglot", z, **{"data.image_size": 12, "split.method": "group", "task.ways": 3})
    src = build_sources(cfg)
    assert src.split["unit"] == "group"
    train_groups = {n.split("/")[0] for n in src.split["train"]}
    test_groups = {n.split("/")[0] for n in src.split["test"]}
    assert train_groups and test_groups and not train_groups & test_groups
    task = src.test.sample(episode_rng(0, 0))
    assert task.support_x.shape == (3, 1, 12, 12) and task.query_x.shape == (6, 1, 12, 12)
    assert task.family in test_groups
    rot = build_sources(C.replace(cfg, **{"data.rotations": True}))
    assert len(rot.split["train"]) == 4 * len(src.split["train"])


def test_real_omniglot_zip_loads_and_caches(omniglot_zip, monkeypatch):
    ds = omniglot.load_omniglot(omniglot_zip, image_size=14)
    assert ds.x.shape == (2720, 1, 14, 14) and ds.n_classes == 136
    assert sorted(set(ds.groups)) == ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]
    calls = _count_decodes(monkeypatch, omniglot)
    again = omniglot.load_omniglot(omniglot_zip, image_size=14)
    assert not calls and torch.equal(ds.x, again.x)        # served from the disk cache


# ------------------------------------------------------------------------------------------ mini-ImageNet
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_miniimagenet_pickles(tmp_path, protocol):
    root = make_mini_pickles(tmp_path / "mini", protocol=protocol)
    ds = miniimagenet.load_miniimagenet(root, image_size=8)
    assert ds.x.shape == (3 * 3 * 4, 3, 8, 8) and ds.x.dtype == torch.float32
    assert ds.groups == ["train"] * 3 + ["val"] * 3 + ["test"] * 3
    assert ds.class_names[0] == "n0000000" and ds.source.startswith("mini-ImageNet (pickle")
    # without resizing the pixels are the pickled bytes / 255
    same = miniimagenet.load_miniimagenet(root, image_size=12)
    with open(root / "mini-imagenet-cache-train.pkl", "rb") as fh:
        raw = pickle.load(fh)
    first = raw["image_data"][raw["class_dict"]["n0000000"][0]]
    assert torch.allclose(same.x[0], torch.from_numpy(first).permute(2, 0, 1).float() / 255)


def test_miniimagenet_standard_split_through_lists(tmp_path):
    root = make_mini_pickles(tmp_path / "mini")
    cfg = cfg_for("miniimagenet", root, **{"data.image_size": 8, "split.method": "lists", "split.train": ["train"],
                                           "split.val": ["val"], "split.test": ["test"]})
    src = build_sources(cfg)
    assert all(n.startswith("n00") for n in src.split["train"]) and len(src.split["train"]) == 3
    assert all(n.startswith("n02") for n in src.split["test"]) and len(src.split["test"]) == 3
    assert src.test.sample(episode_rng(0, 1)).query_x.shape == (4, 3, 8, 8)


def test_miniimagenet_csv_layout_and_cache(tmp_path, monkeypatch):
    root = make_mini_csv(tmp_path / "minicsv")
    calls = _count_decodes(monkeypatch, miniimagenet)
    ds = miniimagenet.load_miniimagenet(root, image_size=6)
    assert ds.x.shape == (18, 3, 6, 6) and len(calls) == 18
    assert ds.groups == ["train", "train", "val", "val", "test", "test"]
    miniimagenet.load_miniimagenet(root, image_size=6)
    assert len(calls) == 18


def test_miniimagenet_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    root = tmp_path / "mini"
    root.mkdir()
    with open(root / "mini-imagenet-cache-train.pkl", "wb") as fh:
        pickle.dump({"image_data": Evil(), "class_dict": {}}, fh)
    with pytest.raises(DataError, match="refused to load"):
        miniimagenet.load_miniimagenet(root, image_size=8)
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------------------------ image folders
def test_image_folder_flat_mixed_grey_and_colour(tmp_path):
    root = make_image_folder(tmp_path / "pets", classes=3, per_class=4)
    ds = image_folder.load_image_folder(root, image_size=8)
    assert ds.x.shape == (12, 3, 8, 8)           # one colour image makes the set RGB; README.txt ignored
    assert ds.class_names == ["class0", "class1", "class2"] and ds.groups == ["pets"] * 3
    grey = image_folder.load_image_folder(make_image_folder(tmp_path / "grey", color=False), image_size=8)
    assert grey.x.shape[1] == 1


def test_image_folder_grouped_and_episodes(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "sets", grouped=True, classes=3, per_class=4)
    calls = _count_decodes(monkeypatch, image_folder)
    ds = image_folder.load_image_folder(root, image_size=8)
    assert ds.class_names[:2] == ["g1/class0", "g1/class1"] and ds.groups == ["g1"] * 3 + ["g2"] * 3
    assert len(calls) == 24
    image_folder.load_image_folder(root, image_size=8)
    assert len(calls) == 24
    src = build_sources(cfg_for("image_folder", root, **{"data.image_size": 8, "split.method": "group",
                                                         "split.train_fraction": 0.5, "split.val_fraction": 0.0}))
    assert {n.split("/")[0] for n in src.split["train"]}.isdisjoint({n.split("/")[0] for n in src.split["test"]})
    assert src.train.sample(episode_rng(0, 0)).support_x.shape == (2, 3, 8, 8)


# ------------------------------------------------------------------------------------------ feature tables
def test_feature_table_csv(tmp_path):
    path = make_feature_csv(tmp_path / "table.csv")
    ds = feature_table.load_feature_table(path)
    assert ds.x.shape == (30, 4) and ds.x.dtype == torch.float32
    assert ds.class_names == [f"c{i}" for i in range(6)] and ds.groups == ["t0", "t1"] * 3
    # standardised per column over the whole table
    assert torch.allclose(ds.x.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(ds.x.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    src = build_sources(cfg_for("feature_table", path, **{"split.method": "group", "split.val_fraction": 0.0,
                                                          "split.train_fraction": 0.5}))
    task = src.test.sample(episode_rng(0, 0))
    assert task.support_x.shape == (2, 4) and task.family in ("t0", "t1")


def test_feature_table_hdf5_datasets_and_table(tmp_path):
    import h5py
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(12, 3))
    labels = np.repeat([3, 1, 2], 4)
    groups = np.array([b"a"] * 4 + [b"b"] * 3 + [b"a"] + [b"b"] * 4)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["features"] = feats
        f["disease"] = labels
        f["site"] = groups
    ds = feature_table.load_feature_table(tmp_path / "d.h5", label_column="disease", group_column="site")
    assert ds.x.shape == (12, 3) and ds.class_names == ["1", "2", "3"]
    assert ds.groups == ["b", "b", "a"]          # class 1 rows: 3 x b, 1 x a -> its most common group
    table = np.zeros(6, dtype=[("x1", "f4"), ("x2", "i4"), ("label", "S3"), ("group", "S2")])
    table["x1"], table["x2"] = np.arange(6), np.arange(6) * 2
    table["label"] = [b"cat", b"dog"] * 3
    table["group"] = [b"g"] * 6
    with h5py.File(tmp_path / "t.hdf5", "w") as f:
        f["table"] = table
    ds = feature_table.load_feature_table(tmp_path / "t.hdf5")
    assert ds.x.shape == (6, 2) and ds.class_names == ["cat", "dog"] and ds.groups == ["g", "g"]


def test_feature_table_without_group_column_uses_file_name(tmp_path):
    (tmp_path / "plain.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n")
    ds = feature_table.load_feature_table(tmp_path / "plain.csv")
    assert ds.groups == ["plain", "plain"] and list(ds.labels) == [0, 1, 0]


def test_load_class_dataset_memoises_per_process(tmp_path, monkeypatch):
    path = make_feature_csv(tmp_path / "memo.csv")
    cfg = cfg_for("feature_table", path)
    a = load_class_dataset(cfg.data)
    assert load_class_dataset(cfg.data) is a
