"""The sessions browser and studies: a study's runs are listed with their study, cell and seed, the
study picker narrows the table to one study or to the sessions outside studies, the filter takes
config fields (``learner.name=maml``, ``eval.seed>=99``), ``study:WORD`` and ``tag:NAME``, and a
session's note and tags show in their columns and are found by the filter."""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from session_factory import real_sessions  # noqa: E402

from workbench import config as C  # noqa: E402
from workbench import study as S  # noqa: E402


@pytest.fixture
def workspace(tmp_path):
    """Two study runs (ProtoNet and MAML, seed 0) and one session outside the study."""
    protonet, maml, other = real_sessions()
    defn = S.StudyDefinition("Tiny study", C.load_preset("digits_protonet"), seeds=[0],
                             grid={"learner.name": ["protonet", "maml"]})
    rec = S.create_record(defn, workspace=tmp_path)
    shutil.copy2(protonet, rec.session_path(rec.runs[0]))
    shutil.copy2(maml, rec.session_path(rec.runs[1]))
    shutil.copy2(other, tmp_path / other.name)
    return tmp_path, rec


@pytest.fixture
def browser(qapp, qtbot, workspace):
    from workbench.gui.sessions import SessionsBrowser
    b = SessionsBrowser(workspace[0])
    qtbot.addWidget(b)
    b.timer.stop()
    return b


def shown(b, column="Name"):
    from workbench.gui.sessions import COLUMNS
    col = COLUMNS.index(column)
    return sorted(b.proxy.index(r, col).data() for r in range(b.proxy.rowCount()))


def filtered(b, text):
    b.filter_edit.setText(text)
    return shown(b)


def test_study_runs_are_listed_with_their_study_cell_and_seed(browser, workspace):
    _, rec = workspace
    assert browser.model.rowCount() == 3
    assert shown(browser, "Study") == ["", "Tiny study · learner.name=maml · seed 0",
                                       "Tiny study · learner.name=protonet · seed 0"]
    box = browser.study_box
    assert [box.itemText(i) for i in range(box.count())] == ["All sessions", "Outside studies",
                                                             "Study: Tiny study"]
    box.setCurrentIndex(2)
    assert shown(browser) == ["MAML digits", "ProtoNet digits"]
    assert "2 of 3" in browser.count_label.text()
    box.setCurrentIndex(1)
    assert shown(browser) == ["ProtoNet other seed"]
    box.setCurrentIndex(0)
    assert len(shown(browser)) == 3


def test_the_filter_takes_config_fields_and_study_words(browser):
    assert filtered(browser, "learner.name=maml") == ["MAML digits"]
    assert filtered(browser, "learner.name!=maml") == ["ProtoNet digits", "ProtoNet other seed"]
    assert filtered(browser, "eval.seed<1000") == ["ProtoNet other seed"]
    assert filtered(browser, "eval.seed>=1234") == ["MAML digits", "ProtoNet digits"]
    assert filtered(browser, "eval.seed>99 learner.name=protonet") == ["ProtoNet digits"]
    assert filtered(browser, "learner.inner_lr=0.5") == ["MAML digits"]
    assert filtered(browser, "model.hidden=[32]") == ["MAML digits", "ProtoNet digits", "ProtoNet other seed"]
    assert filtered(browser, "study:tiny") == ["MAML digits", "ProtoNet digits"]
    assert filtered(browser, "learner.name=reptile") == []
    assert filtered(browser, "") == ["MAML digits", "ProtoNet digits", "ProtoNet other seed"]


def test_notes_and_tags_are_shown_and_searchable(browser, workspace):
    from workbench.gui import study_sessions as SS
    path = str(workspace[0] / real_sessions()[2].name)
    assert SS.set_session_note(browser, path, "Baseline for the paper\nsecond line", ["baseline", "fig-3"])
    row = browser.model.row_of(path)
    assert row.summary.note.startswith("Baseline") and row.summary.tags == ("baseline", "fig-3")
    texts = dict(zip(("Tags", "Note"), row.texts[-2:]))
    assert texts == {"Tags": "#baseline #fig-3", "Note": "Baseline for the paper"}
    assert filtered(browser, "tag:baseline") == ["ProtoNet other seed"]
    assert filtered(browser, "tag:base") == []
    assert filtered(browser, "paper") == ["ProtoNet other seed"]
    assert filtered(browser, "second line") == ["ProtoNet other seed"]
    browser.filter_edit.setText("")
    browser.select_paths([path])
    browser._update_buttons()
    assert browser.note_button.isEnabled()
