"""Bad input anywhere gives one clear sentence naming the field or path, never a traceback.

Three doors are tried: the config layer (ConfigError.problems), the data layer
(DataError), and the whole system (the engine's RunFailed event and the
``workbench run`` command line).
"""

from __future__ import annotations

import zipfile

import pytest

from sources_datagen import make_feature_csv, make_image_folder, make_omniglot_zip
from workbench import config as C
from workbench.cli import main as cli_main
from workbench.data import DataError, build_sources
from workbench.data import feature_table, image_folder, miniimagenet, omniglot
from workbench.train import events as E
from workbench.train.engine import run


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))


def config_problems(d: dict | str) -> list[str]:
    with pytest.raises(C.ConfigError) as e:
        C.from_toml(d) if isinstance(d, str) else C.from_dict(d)
    assert e.value.problems and all("Traceback" not in p for p in e.value.problems)
    return e.value.problems


def data_message(fn, *a, **kw) -> str:
    with pytest.raises(DataError) as e:
        fn(*a, **kw)
    msg = str(e.value)
    assert "Traceback" not in msg and "\n" not in msg
    return msg


def omniglot_cfg(path, **more) -> C.ExperimentConfig:
    changes = {"data.dataset": "omniglot", "data.path": str(path), "data.image_size": 8, "task.ways": 2,
               "task.shots": 1, "task.queries": 2, "train.steps": 1, "eval.episodes": 2, "train.eval_every": 0,
               "embedding.method": "none", "model.hidden": [8], "model.backbone": "mlp"}
    changes.update(more)
    return C.replace(C.ExperimentConfig(), **changes)


# ---------------------------------------------------------------------------------------- bad configs
@pytest.mark.parametrize("d, expected", [
    ({"learner": {"inner_lrr": 0.1}}, ["unknown field learner.inner_lrr", "did you mean learner.inner_lr"]),
    ({"task": {"ways": "five"}}, ["task.ways = 'five'", "whole number"]),
    ({"task": {"ways": 1}}, ["task.ways = 1", "at least 2"]),
    ({"learner": {"name": "mamal"}}, ["learner.name = 'mamal'", "did you mean 'maml'"]),
    ({"data": {"dataset": "sinusoid"}, "learner": {"name": "protonet"}}, ["learner.name = 'protonet'",
                                                                         "cannot do regression"]),
    ({"data": {"dataset": "omniglot"}}, ["data.path is empty", "omniglot"]),
    ({"split": {"method": "lists", "train": ["a"]}}, ["split.method = 'lists'", "split.test"]),
    ({"split": {"train_fraction": 0.7, "val_fraction": 0.3}}, ["split.train_fraction + split.val_fraction",
                                                              "below 1"]),
], ids=["unknown-field", "wrong-type", "out-of-range", "bad-choice", "regression-with-protonet", "missing-path",
        "empty-test-list", "no-room-for-test"])
def test_bad_config_values(d, expected):
    text = " ".join(config_problems(d))
    for part in expected:
        assert part in text


def test_invalid_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[task\nways = 5\n")
    with pytest.raises(C.ConfigError) as e:
        C.load(bad)
    assert "bad.toml" in e.value.problems[0] and "not valid TOML" in e.value.problems[0]


# ---------------------------------------------------------------------------------------- bad data
def test_missing_path(tmp_path):
    msg = data_message(omniglot.load_omniglot, tmp_path / "nowhere" / "images_background.zip")
    assert "nowhere" in msg and "does not exist" in msg and "images_background" in msg


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "one.png"
    f.write_bytes(b"x")
    msg = data_message(image_folder.load_image_folder, f)
    assert "one.png" in msg and "is a file, not a folder" in msg and "root/<class>" in msg


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    msg = data_message(image_folder.load_image_folder, tmp_path / "empty")
    assert "empty" in msg and "no class folders" in msg


def test_zip_of_wrong_layout(tmp_path):
    z = tmp_path / "images_background.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("loose.png", b"not really")
    msg = data_message(omniglot.load_omniglot, z)
    assert "images_background.zip" in msg and "Omniglot layout" in msg and "loose.png" in msg
    assert "<Alphabet>/characterNN" in msg


def test_file_that_is_not_a_zip(tmp_path):
    z = tmp_path / "images_evaluation.zip"
    z.write_text("hello")
    msg = data_message(omniglot.load_omniglot, z)
    assert "images_evaluation.zip" in msg and "not a readable zip" in msg


def test_corrupt_image_file(tmp_path):
    root = make_image_folder(tmp_path / "imgs", classes=2, per_class=3)
    (root / "class1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    msg = data_message(image_folder.load_image_folder, root, 8)
    assert "broken.png" in msg and "not a readable image" in msg


def test_corrupt_image_inside_omniglot_zip(tmp_path):
    z = make_omniglot_zip(tmp_path / "images_background.zip", chars=2, drawings=2)
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("images_background/Alpha/character01/9999_99.png", b"truncated")
    msg = data_message(omniglot.load_omniglot, z, 8)
    assert "images_background.zip:images_background/Alpha/character01/9999_99.png" in msg


def test_empty_class_folder(tmp_path):
    root = make_image_folder(tmp_path / "imgs", classes=2, per_class=3)
    (root / "class9").mkdir()
    (root / "class9" / "notes.txt").write_text("no images here")
    msg = data_message(image_folder.load_image_folder, root)
    assert "class9" in msg and "is empty" in msg


def test_mixed_class_and_group_folders(tmp_path):
    root = make_image_folder(tmp_path / "imgs", classes=2, per_class=2)
    make_image_folder(root / "agroup", classes=2, per_class=2)
    msg = data_message(image_folder.load_image_folder, root)
    assert "mixes class folders" in msg and "agroup" in msg


def test_feature_table_without_label_column(tmp_path):
    p = make_feature_csv(tmp_path / "t.csv")
    msg = data_message(feature_table.load_feature_table, p, label_column="diagnosis")
    assert "t.csv" in msg and "no column 'diagnosis'" in msg and "data.label_column" in msg and "f0" in msg


def test_feature_table_non_numeric_feature(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("f0,f1,label,group\n1,2,a,g\n3,abc,b,g\n")
    msg = data_message(feature_table.load_feature_table, p)
    assert "column 'f1'" in msg and "'abc'" in msg and "line 3" in msg


def test_feature_table_hdf5_without_features(tmp_path):
    import h5py
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["stuff"] = [1, 2, 3]
    msg = data_message(feature_table.load_feature_table, tmp_path / "t.h5")
    assert "/stuff" in msg and "/features" in msg


def test_miniimagenet_folder_without_its_files(tmp_path):
    (tmp_path / "mini").mkdir()
    (tmp_path / "mini" / "readme.txt").write_text("x")
    msg = data_message(miniimagenet.load_miniimagenet, tmp_path / "mini")
    assert "mini" in msg and "mini-imagenet-cache-{train,val,test}.pkl" in msg and "train.csv" in msg


def test_miniimagenet_truncated_pickle(tmp_path):
    (tmp_path / "mini").mkdir()
    (tmp_path / "mini" / "mini-imagenet-cache-test.pkl").write_bytes(b"\x80\x04\x95")
    msg = data_message(miniimagenet.load_miniimagenet, tmp_path / "mini")
    assert "mini-imagenet-cache-test.pkl" in msg and "not a readable mini-ImageNet pickle" in msg


def test_ways_more_than_classes(tmp_path):
    z = make_omniglot_zip(tmp_path / "images_background.zip")          # 12 classes
    msg = data_message(build_sources, omniglot_cfg(z, **{"task.ways": 10}))
    assert "meta-train split" in msg and "has 7 classes" in msg and "ways = 10" in msg


def test_shots_plus_queries_more_than_a_class(tmp_path):
    z = make_omniglot_zip(tmp_path / "images_background.zip", drawings=5)
    msg = data_message(build_sources, omniglot_cfg(z, **{"task.shots": 2, "task.queries": 4}))
    assert "has 5 examples" in msg and "shots + queries = 2 + 4 = 6" in msg


def test_group_split_with_one_group(tmp_path):
    z = make_omniglot_zip(tmp_path / "images_background.zip", alphabets=("Solo",))
    msg = data_message(build_sources, omniglot_cfg(z, **{"split.method": "group"}))
    assert "split.method = 'group'" in msg and "at least 2 groups" in msg


def test_split_list_naming_unknown_classes(tmp_path):
    z = make_omniglot_zip(tmp_path / "images_background.zip")
    msg = data_message(build_sources, omniglot_cfg(z, **{"split.method": "lists", "split.train": ["Alpha"],
                                                         "split.test": ["Klingon"]}))
    assert "split.test" in msg and "Klingon" in msg


# ---------------------------------------------------------------------------------------- through the engine
def _failed(cfg) -> E.RunFailed:
    events = list(run(cfg))
    last = events[-1]
    assert isinstance(last, E.RunFailed), last
    assert "Traceback" not in last.message and last.message.strip()
    return last


def test_engine_reports_missing_data_path(tmp_path):
    ev = _failed(omniglot_cfg(tmp_path / "gone.zip"))
    assert "gone.zip" in ev.message and "does not exist" in ev.message


def test_engine_reports_corrupt_image(tmp_path):
    root = make_image_folder(tmp_path / "imgs", classes=4, per_class=4)
    (root / "class2" / "bad.jpg").write_bytes(b"nope")
    cfg = omniglot_cfg(root, **{"data.dataset": "image_folder"})
    ev = _failed(cfg)
    assert "bad.jpg" in ev.message and "not a readable image" in ev.message


def test_engine_reports_ways_beyond_split(tmp_path):
    z = make_omniglot_zip(tmp_path / "images_background.zip")
    ev = _failed(omniglot_cfg(z, **{"task.ways": 8}))
    assert "ways = 8" in ev.message


def test_engine_reports_invalid_config_object():
    cfg = C.ExperimentConfig()
    cfg.task.queries = 0           # set behind the validator's back
    ev = _failed(cfg)
    assert "task.queries = 0" in ev.message


# ---------------------------------------------------------------------------------------- through the CLI
def test_cli_bad_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[learner]\nname = "protonett"\n[task]\nshots = -1\n')
    code = cli_main(["run", str(bad), "--no-session", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert "learner.name = 'protonett'" in err and "task.shots = -1" in err and "Traceback" not in err


def test_cli_bad_data_path(tmp_path, capsys):
    cfg = omniglot_cfg(tmp_path / "nothing-here")
    toml = tmp_path / "run.toml"
    C.save(cfg, toml)
    code = cli_main(["run", str(toml), "--no-session", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert "nothing-here" in err and "does not exist" in err and "Traceback" not in err


def test_cli_missing_config_file(tmp_path, capsys):
    code = cli_main(["run", str(tmp_path / "absent.toml"), "--no-session", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "absent.toml" in err and "does not exist" in err


def test_a_zip_member_that_claims_to_be_huge_is_refused_before_decompressing(tmp_path):
    import zipfile

    from workbench.data import DataError
    from workbench.data.omniglot import MAX_MEMBER_BYTES, load_omniglot
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for a in ("A", "B"):
            for ch in ("character01", "character02"):
                zf.writestr(f"set/{a}/{ch}/1.png", b"\0" * 64)
        zf.writestr("set/A/character01/0.png", b"\0" * (MAX_MEMBER_BYTES + 1))   # read first; deflates to KBs
    with pytest.raises(DataError, match="claims .* bytes uncompressed"):
        load_omniglot(path)
