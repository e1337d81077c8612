"""The experiment form, built alone: generated from the schema, refuses what the engine would
reject, names fields by their labels, hides what does not apply, keeps the wheel off unfocused
fields, lets the name follow the setting, and checks the data source in the background."""

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from workbench import config as C
from tests.gui.conftest import set_field


def test_every_schema_field_has_an_editor_with_its_help(form):
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
    set_field(form, "learner.name", "protonet")
    assert not form.editors["learner.distance"].isVisibleTo(form)
    form.advanced["learner"].toggle.click()
    assert form.editors["learner.distance"].isVisibleTo(form)
    # the default experiment is shown and ready
    form.set_config(C.default_config())
    assert form.config() == C.default_config() and form.valid


def test_ways_beyond_max_are_refused(form, qtbot):
    spin = form.editor("task.ways")
    spin.selectAll()
    qtbot.keyClicks(spin, "500")
    spin.interpretText()
    assert spin.value() <= C.field_info("task.ways").max
    assert form.config().task.ways <= 100
    spin.setValue(1)                      # below min: clamped to 2 by the spin box
    assert form.config().task.ways == 2


def test_bad_learning_rate_is_named_by_its_label(form):
    edit = form.editor("learner.meta_lr")
    assert isinstance(edit, QLineEdit)     # a log-range float is a typed number
    label = C.field_info("learner.meta_lr").label
    for bad in ("abc", "1e-9", "nan", "100"):
        edit.setText(bad)
        assert not form.valid and form.config() is None, bad
        problem = form.editors["learner.meta_lr"].error
        assert problem.isVisibleTo(form) and problem.text(), bad
        # defect 15: the message names the field as the form shows it, never by its config key
        assert label in form.problem_box.text() and "learner.meta_lr" not in form.problem_box.text(), bad
    edit.setText("3e-4")
    assert form.valid and form.config().learner.meta_lr == 3e-4


def test_bad_path_is_shown_next_to_the_field(form, tmp_path):
    set_field(form, "data.dataset", "omniglot")
    set_field(form, "data.path", "")
    assert not form.valid                       # empty path
    set_field(form, "data.path", str(tmp_path / "no-such.zip"))
    assert not form.valid
    err = form.editors["data.path"].error
    assert err.isVisibleTo(form) and "no such file or folder" in err.text()
    assert "data.path" not in form.problem_box.text() and "Path (Data)" in form.problem_box.text()
    real = tmp_path / "background.zip"
    real.write_bytes(b"PK")
    set_field(form, "data.path", str(real))
    assert not err.isVisibleTo(form)
    assert form.valid


def test_protonet_on_sinusoid_is_refused_with_a_message(form):
    set_field(form, "data.dataset", "sinusoid")
    set_field(form, "model.backbone", "mlp")
    set_field(form, "learner.name", "protonet")
    assert form.config() is None and not form.valid
    text = form.problem_box.text()
    assert "Algorithm" in text and "regression" in text and "learner.name" not in text
    assert form.editors["learner.name"].error.isVisibleTo(form)
    set_field(form, "learner.name", "maml")
    assert form.valid
    assert "Ready" in form.problem_box.text()


def test_fields_that_do_not_apply_are_hidden_and_never_block_run(form):
    """Defect 15: inner-loop settings for ProtoNet, ways for regression."""
    set_field(form, "learner.name", "protonet")
    inner = form.editors["learner.inner_lr"]
    assert not inner.isVisibleTo(form) and not form.editors["learner.inner_steps"].isVisibleTo(form)
    set_field(form, "learner.name", "maml")
    assert inner.isVisibleTo(form)
    form.editor("learner.inner_lr").setText("abc")            # a bad value where it applies blocks Run
    assert not form.valid
    set_field(form, "learner.name", "protonet")               # ... and no longer does where it does not
    assert form.valid and not inner.isVisibleTo(form)
    set_field(form, "data.dataset", "sinusoid")
    set_field(form, "model.backbone", "mlp")
    set_field(form, "learner.name", "maml")
    form.editor("learner.inner_lr").setText("0.01")
    assert form.valid
    assert not form.editors["task.ways"].isVisibleTo(form)    # regression has no ways


def test_the_wheel_changes_only_a_focused_field(form, qtbot):
    """Defect 7: scrolling the form moved queries from 10 to 1 unnoticed."""
    spin = form.editor("task.queries")
    combo = form.editor("learner.name")
    spin.setValue(10)
    before_combo = combo.currentIndex()
    for w in (spin, combo):
        assert not w.hasFocus()
        ev = QWheelEvent(QPointF(5, 5), QPointF(w.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, -120),
                         Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                         False)
        QApplication.sendEvent(w, ev)
    assert spin.value() == 10 and combo.currentIndex() == before_combo
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    ev = QWheelEvent(QPointF(5, 5), QPointF(spin.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, -120),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(spin, ev)
    assert spin.value() == 9                                  # a focused field takes the wheel


def test_a_name_the_user_has_not_edited_follows_the_setting(form, qtbot):
    """Defect 16: a MAML run was saved as "Digits ProtoNet ..."."""
    set_field(form, "learner.name", "maml")
    name = form.config().name
    assert "MAML" in name and "ProtoNet" not in name
    set_field(form, "task.ways", 3)
    assert "3-way" in form.config().name
    edit = form.editor("name")
    edit.selectAll()
    qtbot.keyClicks(edit, "my own name")
    set_field(form, "learner.name", "protonet")
    assert form.config().name == "my own name"
    form.set_config(C.default_config())                       # a loaded config keeps its name ...
    assert form.config().name == C.default_config().name
    set_field(form, "learner.name", "maml")                   # ... which follows the setting again
    assert "MAML" in form.config().name


def test_list_fields_parse_and_refuse(form):
    set_field(form, "data.dataset", "multimodal")
    set_field(form, "model.backbone", "mlp")
    set_field(form, "learner.name", "maml")
    set_field(form, "model.hidden", "64, 32")
    assert form.config().model.hidden == [64, 32]
    set_field(form, "model.hidden", "64, big")
    label = C.field_info("model.hidden").label
    assert not form.valid and label in form.problem_box.text()
    set_field(form, "model.hidden", "64")
    for box in form.editors["data.families"].checks.values():
        box.setChecked(False)
    assert not form.valid and C.field_info("data.families").label in form.problem_box.text()
    form.editors["data.families"].checks["tanh"].setChecked(True)
    assert form.valid and form.config().data.families == ["tanh"]


def test_the_data_source_is_checked_in_the_background(app, qtbot, tmp_path):
    """Defect 9: ways larger than the classes of a split, or a CSV given as the Omniglot path,
    passed the form and failed the run 20 s later; now the problem shows under the field."""
    from workbench.gui.form import ExperimentForm
    f = ExperimentForm(check_data=True)
    qtbot.addWidget(f)
    f.show()
    set_field(f, "data.dataset", "digits")
    set_field(f, "model.backbone", "auto")
    set_field(f, "learner.name", "protonet")
    set_field(f, "split.method", "fraction")
    with qtbot.waitSignal(f.data_checked, timeout=120_000):
        set_field(f, "task.ways", 9)                          # digits: 10 classes, 6 of them in meta-train
    assert not f.valid
    err = f.editors["task.ways"].error
    assert err.isVisibleTo(f) and "classes" in err.text() and "task.ways" not in err.text()
    with qtbot.waitSignal(f.data_checked, timeout=60_000):
        set_field(f, "task.ways", 3)
    assert f.valid and not err.isVisibleTo(f)
    table = tmp_path / "features.csv"
    table.write_text("a,b\n1,2\n")
    set_field(f, "data.dataset", "omniglot")
    with qtbot.waitSignal(f.data_checked, timeout=60_000):
        set_field(f, "data.path", str(table))
    assert not f.valid
    perr = f.editors["data.path"].error
    assert perr.isVisibleTo(f) and "Omniglot" in perr.text() and "Traceback" not in perr.text()
