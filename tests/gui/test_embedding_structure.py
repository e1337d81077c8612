"""The embedding map shows how well task embeddings recover families, and the affinity matrix."""

import numpy as np

from workbench.analysis.recovery import knn_family_accuracy
from workbench.train.events import Evaluation


def evaluation(embeddings, families):
    n = len(families)
    return Evaluation(step=10, wall_time=1.0, phase="test", metric="mse", mean=1.0, ci95=0.1, loss_mean=1.0,
                      per_task=np.ones(n), per_task_loss=np.ones(n), task_ids=tuple(f"t{i}" for i in range(n)),
                      families=tuple(families), embeddings=np.asarray(embeddings, np.float32),
                      embedding_method="set_encoder")


def test_scores_and_affinity_beside_the_map(qtbot, app):
    from workbench.gui.panels.embedding_map import EmbeddingMapPanel

    rng = np.random.default_rng(0)
    fams = ["sine"] * 20 + ["line"] * 20 + ["tanh"] * 20
    centres = {"sine": [4, 0, 0], "line": [0, 4, 0], "tanh": [0, 0, 4]}
    emb = np.array([centres[f] for f in fams]) + rng.normal(0, 0.5, (60, 3))
    panel = EmbeddingMapPanel()
    qtbot.addWidget(panel)
    panel.method.setCurrentText("PCA")
    with qtbot.waitSignal(panel.projected, timeout=30_000):
        panel.set_evaluation(evaluation(emb, fams))
    text = panel.scores.text()
    assert "3 families" in text and "k-NN accuracy 100.0%" in text
    assert abs(panel.structure["knn"] - knn_family_accuracy(emb, np.array(fams))[0]) < 1e-12
    aff = panel.structure["affinity"]
    assert aff.shape == (3, 3) and np.all(np.diag(aff) > aff[0, 1])
    assert panel.affinity_plot is None
    panel.show_affinity.setChecked(True)
    assert panel.affinity_plot is not None
    # shuffled labels: the same panel reports chance-level recovery
    shuffled = list(rng.permutation(fams))
    with qtbot.waitSignal(panel.projected, timeout=30_000):
        panel.set_evaluation(evaluation(emb, shuffled))
    assert panel.structure["knn"] < 0.6
    panel.wait_idle()


def test_one_family_says_recovery_needs_several(qtbot, app):
    from workbench.gui.panels.embedding_map import EmbeddingMapPanel

    panel = EmbeddingMapPanel()
    qtbot.addWidget(panel)
    panel.method.setCurrentText("PCA")
    with qtbot.waitSignal(panel.projected, timeout=30_000):
        panel.set_evaluation(evaluation(np.random.default_rng(1).normal(size=(10, 4)), ["digits"] * 10))
    assert "needs two or more task families" in panel.scores.text()
    panel.show_affinity.setChecked(True)
    assert panel.affinity_plot is None
    panel.wait_idle()
