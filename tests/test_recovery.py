"""Family-recovery scores separate clearly structured task embeddings from shuffled labels."""

import numpy as np
import pytest

from workbench.analysis.recovery import (RecoveryError, affinity_matrix, knn_family_accuracy, recovery_scores,
                                         silhouette)


@pytest.fixture
def clusters():
    """Four well separated Gaussian families of 30 tasks each in 16 dimensions."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, size=(4, 16))
    labels = np.repeat(["a", "b", "c", "d"], 30)
    x = centres[np.searchsorted(["a", "b", "c", "d"], labels)] + rng.normal(0, 1, size=(120, 16))
    return x, labels


def test_structured_clusters_score_high_and_shuffled_labels_score_chance(clusters):
    x, labels = clusters
    shuffled = np.random.default_rng(1).permutation(labels)
    acc, folds = knn_family_accuracy(x, labels)
    acc_sh, _ = knn_family_accuracy(x, shuffled)
    assert len(folds) == 5
    assert acc > 0.95
    assert acc_sh < 0.45                      # chance is 0.25
    assert silhouette(x, labels) > 0.5
    assert abs(silhouette(x, shuffled)) < 0.1
    s = recovery_scores(x, labels)
    assert s["chance"] == pytest.approx(0.25) and s["n_families"] == 4 and s["knn_accuracy"] > 0.95


def test_affinity_matrix_is_high_within_and_low_between_families(clusters):
    x, labels = clusters
    fams, m = affinity_matrix(x, labels)
    assert fams == ["a", "b", "c", "d"]
    assert m.shape == (4, 4)
    assert np.allclose(m, m.T)
    off = m[~np.eye(4, dtype=bool)]
    assert np.diag(m).min() > 0.8 and off.max() < np.diag(m).min() - 0.3
    _, m_sh = affinity_matrix(x, np.random.default_rng(1).permutation(labels))
    assert np.ptp(m_sh) < 0.2                 # shuffled labels: all families look alike


def test_folds_shrink_to_the_smallest_family_and_bad_input_is_explained(clusters):
    x, labels = clusters
    labels = labels.copy()
    labels[:3] = "tiny"                       # a family of 3 tasks: 3 folds
    _, folds = knn_family_accuracy(x, labels)
    assert len(folds) == 3
    with pytest.raises(RecoveryError, match="at least 2 families"):
        silhouette(x, ["a"] * len(x))
    with pytest.raises(RecoveryError, match="one label per task"):
        knn_family_accuracy(x, labels[:10])
    with pytest.raises(RecoveryError, match="NaN"):
        silhouette(np.full((4, 2), np.nan), ["a", "a", "b", "b"])
    with pytest.raises(RecoveryError, match="at least 2 tasks of every family"):
        knn_family_accuracy(x[:5], ["a", "a", "a", "a", "b"])
