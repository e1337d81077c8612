"""The experiment form: generated from the schema, refuses what the engine would reject."""

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from workbench import config as C
from tests.gui.conftest import set_field


def test_every_schema_field_has_an_editor_with_its_help(window):
    form = window.form
    for fi in C.schema():
        w = form.editor(fi.key)
        assert fi.help in w.toolTip(), fi.key
        if fi.choices and fi.type is not list:
            assert isinstance(w, QComboBox) and w.count() == len(fi.choices), fi.key
        elif fi.type is bool:
            assert isinstance(w, QCheckBox), fi.key
        elif fi.type is int:
            assert isinstance(w, QSpinBox) and w.minimum() == fi.min, fi.key
        elif fi.type is float:
            assert isinstance(w, (QDoubleSpinBox, QLineEdit)), fi.key
    # advanced fields are folded away until asked for
    assert not form.editors["learner.distance"].isVisibleTo(form)
    form.advanced["learner"].toggle.click()
    assert form.editors["learner.distance"].isVisibleTo(form)
    # the default experiment is shown and ready
    assert form.config() == C.default_config()
    assert window.act_run.isEnabled()


def test_ways_beyond_max_are_refused(window, qtbot):
    spin = window.form.editor("task.ways")
    spin.selectAll()
    qtbot.keyClicks(spin, "500")
    spin.interpretText()
    assert spin.value() <= C.field_info("task.ways").max
    assert window.form.config().task.ways <= 100
    spin.setValue(1)                      # below min: clamped to 2 by the spin box
    assert window.form.config().task.ways == 2


def test_bad_learning_rate_text_disables_run(window, qtbot):
    edit = window.form.editor("learner.meta_lr")
    assert isinstance(edit, QLineEdit)     # a log-range float is a typed number
    for bad in ("abc", "1e-9", "nan", "100"):
        edit.setText(bad)
        assert not window.form.valid and not window.act_run.isEnabled(), bad
        problem = window.form.editors["learner.meta_lr"].error
        assert problem.isVisibleTo(window.form) and "learner.meta_lr" in problem.text(), bad
        assert window.form.config() is None
    edit.setText("3e-4")
    assert window.form.valid and window.act_run.isEnabled()
    assert window.form.config().learner.meta_lr == 3e-4


def test_bad_path_is_shown_next_to_the_field(window, tmp_path):
    form = window.form
    set_field(form, "data.dataset", "omniglot")
    assert not window.act_run.isEnabled()          # empty path
    set_field(form, "data.path", str(tmp_path / "no-such.zip"))
    assert not window.act_run.isEnabled()
    err = form.editors["data.path"].error
    assert err.isVisibleTo(form) and "no such file or folder" in err.text()
    real = tmp_path / "background.zip"
    real.write_bytes(b"PK")
    set_field(form, "data.path", str(real))
    assert not err.isVisibleTo(form)
    assert window.act_run.isEnabled()


def test_protonet_on_sinusoid_is_refused_with_a_message(window):
    form = window.form
    set_field(form, "data.dataset", "sinusoid")
    set_field(form, "model.backbone", "mlp")
    assert form.config() is None and not window.act_run.isEnabled()
    assert "protonet" in form.problem_box.text() and "regression" in form.problem_box.text()
    assert form.editors["learner.name"].error.isVisibleTo(form)
    window.run()                                   # Ctrl+R while invalid does nothing
    assert not window.is_running()
    set_field(form, "learner.name", "maml")
    assert form.valid and window.act_run.isEnabled()
    assert "Ready" in form.problem_box.text()


def test_list_fields_parse_and_refuse(window):
    form = window.form
    set_field(form, "model.hidden", "64, 32")
    assert form.config().model.hidden == [64, 32]
    set_field(form, "model.hidden", "64, big")
    assert not form.valid and "model.hidden" in form.editors["model.hidden"].error.text()
    set_field(form, "model.hidden", "64")
    set_field(form, "data.dataset", "multimodal")
    set_field(form, "learner.name", "maml")
    for box in form.editors["data.families"].checks.values():
        box.setChecked(False)
    assert not form.valid and "data.families" in form.problem_box.text()
    form.editors["data.families"].checks["tanh"].setChecked(True)
    assert form.valid and form.config().data.families == ["tanh"]


def test_presets_and_toml_round_trip(window, tmp_path):
    window.load_preset("sinusoid_maml")
    assert window.form.config() == C.load_preset("sinusoid_maml")
    set_field(window.form, "learner.inner_lr", 0.05)
    path = tmp_path / "exp.toml"
    assert window.save_config(str(path))
    window.load_preset("digits_protonet")
    assert window.load_config(str(path))
    assert window.form.config().learner.inner_lr == 0.05
    assert window.form.config() == C.load(path)
    # a broken file is refused with a dialog, the form keeps its config
    bad = tmp_path / "bad.toml"
    bad.write_text("[learner]\nname = 'mamll'\n")
    before = window.form.config()
    assert not window.load_config(str(bad))
    assert window.error_box is not None and "mamll" in window.error_box.text()
    window.error_box.close()
    assert window.form.config() == before


def test_shortcuts_are_the_standard_ones(window):
    def keys(action):
        return {s.toString() for s in action.shortcuts()}
    assert "Ctrl+R" in keys(window.act_run)
    assert {"Esc", "Ctrl+."} <= keys(window.act_stop)
    assert "Ctrl+O" in keys(window.act_open)
    assert "Ctrl+S" in keys(window.act_save)
    assert "Ctrl+Q" in keys(window.act_quit)
    assert window.windowTitle().startswith("Meta-Learning Workbench")
    assert not window.windowIcon().isNull()
