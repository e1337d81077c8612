import pytest

from workbench import config as C


def test_every_field_has_type_default_help_and_bounds():
    for fi in C.schema():
        assert fi.help and len(fi.help) > 10, fi.key
        assert fi.type in (int, float, bool, str, list), fi.key
        if fi.type in (int, float):
            assert fi.min is not None and fi.max is not None, f"{fi.key} needs a range"
        assert C.check_value(fi, fi.default) is None, f"default of {fi.key} is not allowed by its own schema"


def test_presets_load_and_round_trip_through_toml():
    presets = C.list_presets()
    for needed in ("sinusoid_maml", "digits_protonet", "omniglot_protonet_5w1s", "omniglot_maml_5w1s",
                   "multimodal_mmaml"):
        assert needed in presets
    for name, path in presets.items():
        text = path.read_text()
        try:
            cfg = C.from_toml(text)
        except C.ConfigError as e:
            # Omniglot presets ship with an empty path the user must fill in
            assert all("data.path" in p for p in e.problems), (name, e.problems)
            cfg = C.from_toml(text.replace('path = ""', 'path = "/some/omniglot.zip"'))
        again = C.from_toml(C.to_toml(cfg))
        assert again == cfg


def test_one_message_per_bad_field():
    d = C.to_dict(C.default_config())
    d["task"]["ways"] = 1
    d["learner"]["inner_lr"] = -3.0
    d["learner"]["name"] = "protonett"
    d["train"]["device"] = 7
    with pytest.raises(C.ConfigError) as ei:
        C.from_dict(d)
    probs = ei.value.problems
    assert len(probs) == 4
    joined = "\n".join(probs)
    assert "task.ways = 1: must be at least 2" in joined
    assert "learner.inner_lr = -3.0" in joined
    assert "did you mean 'protonet'" in joined
    assert "train.device = 7" in joined


def test_unknown_fields_and_sections_are_named():
    with pytest.raises(C.ConfigError) as ei:
        C.from_toml("[learnr]\nname='maml'\n[task]\nwayz=3\n")
    joined = "\n".join(ei.value.problems)
    assert "unknown section or field 'learnr' (did you mean 'learner'?)" in joined
    assert "unknown field task.wayz (did you mean task.ways?)" in joined


def test_invalid_toml_is_one_clear_message():
    with pytest.raises(C.ConfigError) as ei:
        C.from_toml("[task\nways=3", source="config file 'x.toml'")
    assert ei.value.problems[0].startswith("config file 'x.toml' is not valid TOML")


def test_cross_field_rules():
    cfg = C.load_preset("sinusoid_maml")
    with pytest.raises(C.ConfigError) as ei:
        C.replace(cfg, **{"learner.name": "protonet"})
    assert "cannot do regression" in ei.value.problems[0]
    with pytest.raises(C.ConfigError) as ei:
        C.replace(C.default_config(), **{"split.train_fraction": 0.7, "split.val_fraction": 0.3})
    assert "must be below 1" in ei.value.problems[0]


def test_overrides_parse_types_and_report_bad_keys():
    cfg = C.with_overrides(C.default_config(), ["learner.inner_lr=0.25", "train.steps=7", "model.hidden=32,16",
                                                "data.rotations=yes"])
    assert cfg.learner.inner_lr == 0.25 and cfg.train.steps == 7 and cfg.model.hidden == [32, 16]
    assert cfg.data.rotations is True
    with pytest.raises(C.ConfigError) as ei:
        C.with_overrides(cfg, ["train.stepz=3", "task.ways=many", "nonsense"])
    joined = "\n".join(ei.value.problems)
    assert "unknown field 'train.stepz' (did you mean 'train.steps'?)" in joined
    assert "task.ways = 'many': must be a whole number" in joined
    assert "expected key=value" in joined


def test_diff_lists_only_changed_fields():
    a = C.default_config()
    b = C.replace(a, **{"learner.name": "maml", "train.seed": 3})
    assert [k for k, _, _ in C.diff(a, b)] == ["learner.name", "train.seed"]



def test_a_partial_file_is_completed_from_the_default_experiment_or_says_what_it_left_out(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert C.load(empty, partial=True) == C.default_config()
    few = tmp_path / "few.toml"
    few.write_text("[task]\nways = 3\n")
    cfg = C.load(few, partial=True)
    assert cfg.task.ways == 3 and cfg.data.dataset == C.default_config().data.dataset
    regression = tmp_path / "sine.toml"
    regression.write_text('[data]\ndataset = "sinusoid"\n[learner]\nname = "maml"\n')
    assert C.load(regression, partial=True).learner.name == "maml"
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\ndataset = "omniglot"\n[task]\nways = 9\n')       # no path: cannot run
    with pytest.raises(C.ConfigError) as e:
        C.load(bad, partial=True)
    assert "sets 2 of" in e.value.problems[-1] and "workbench config PRESET" in e.value.problems[-1]
