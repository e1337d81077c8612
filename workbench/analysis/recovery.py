"""How well task embeddings recover the task families (no Qt).

Given the embeddings of evaluated tasks (n, d) and each task's family label
(alphabet, function family, source data set):

- :func:`silhouette`: the mean silhouette coefficient (Rousseeuw 1987) of the
  embeddings under the family labels, in [-1, 1]; near 0 for labels that carry
  no structure, near 1 for tight, well separated families;
- :func:`knn_family_accuracy`: the accuracy of a k-nearest-neighbour family
  classifier under stratified k-fold cross-validation (the features are
  standardised inside each fold, on the training folds only); chance is about
  the share of the largest family;
- :func:`affinity_matrix`: the multi-task view, the mean cosine similarity
  between the embeddings of every pair of families (by default after removing
  the mean embedding of all tasks, so that "similar" means "more alike than
  the average task");
- :func:`recovery_scores`: all of these in one dict, with the chance level.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

METRICS = ("euclidean", "cosine")


class RecoveryError(ValueError):
    """Embeddings and labels that cannot be scored; the message says why."""


def _check(embeddings, labels) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise RecoveryError(f"embeddings must be a 2-D array (tasks, dims), got shape {x.shape}")
    if len(y) != len(x):
        raise RecoveryError(f"{len(x)} embeddings but {len(y)} family labels; expected one label per task")
    if not np.isfinite(x).all():
        raise RecoveryError("embeddings contain NaN or infinite values; expected finite numbers")
    return x, y


def _need_families(y: np.ndarray, what: str) -> None:
    n_fam = len(set(y.tolist()))
    if n_fam < 2:
        raise RecoveryError(f"{what} needs tasks of at least 2 families, got {n_fam}")


def silhouette(embeddings, labels, metric: str = "euclidean") -> float:
    """Mean silhouette coefficient of ``embeddings`` under ``labels`` (sklearn), in [-1, 1]."""
    from sklearn.metrics import silhouette_score
    x, y = _check(embeddings, labels)
    _need_families(y, "the silhouette score")
    if len(set(y.tolist())) >= len(x):
        raise RecoveryError(f"the silhouette score needs fewer families than tasks; got {len(x)} tasks")
    if metric not in METRICS:
        raise RecoveryError(f"metric = {metric!r}: expected one of {', '.join(METRICS)}")
    return float(silhouette_score(x, y, metric=metric))


def knn_family_accuracy(embeddings, labels, k: int = 5, folds: int = 5, seed: int = 0,
                        metric: str = "euclidean") -> tuple[float, np.ndarray]:
    """(mean, per-fold accuracies) of a k-NN family classifier under stratified cross-validation.

    ``folds`` is lowered to the size of the smallest family when that is smaller
    (every fold must hold each family at least once to stratify).
    """
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x, y = _check(embeddings, labels)
    _need_families(y, "the k-NN family accuracy")
    smallest = min(Counter(y.tolist()).values())
    folds = min(folds, smallest)
    if folds < 2:
        raise RecoveryError(f"the k-NN family accuracy needs at least 2 tasks of every family for "
                            f"cross-validation; the smallest family has {smallest}")
    if metric not in METRICS:
        raise RecoveryError(f"metric = {metric!r}: expected one of {', '.join(METRICS)}")
    accs = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        kk = max(1, min(k, len(train)))
        clf = make_pipeline(StandardScaler(), KNeighborsClassifier(kk, metric=metric))
        clf.fit(x[train], y[train])
        accs.append(float((clf.predict(x[test]) == y[test]).mean()))
    accs = np.asarray(accs)
    return float(accs.mean()), accs


def affinity_matrix(embeddings, labels, center: bool = True) -> tuple[list, np.ndarray]:
    """(families, F x F matrix): mean cosine similarity between the tasks of family a and of family b.

    The diagonal is the mean similarity within a family (pairs of distinct tasks).
    """
    x, y = _check(embeddings, labels)
    if len(x) == 0:
        raise RecoveryError("no embeddings to compare")
    if center:
        x = x - x.mean(0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    u = x / np.where(norms > 0, norms, 1.0)
    fams = sorted(set(y.tolist()), key=str)
    idx = [np.flatnonzero(y == f) for f in fams]
    m = np.zeros((len(fams), len(fams)))
    for a, ia in enumerate(idx):
        for b, ib in enumerate(idx):
            s = u[ia] @ u[ib].T
            if a == b:
                n = len(ia)
                m[a, b] = (s.sum() - np.trace(s)) / (n * (n - 1)) if n > 1 else 1.0
            else:
                m[a, b] = s.mean()
    return fams, m


def recovery_scores(embeddings, labels, k: int = 5, folds: int = 5, seed: int = 0) -> dict:
    """Silhouette, k-NN family accuracy (mean and per fold) and its chance level, in one dict."""
    x, y = _check(embeddings, labels)
    knn, per_fold = knn_family_accuracy(x, y, k, folds, seed)
    counts = Counter(y.tolist())
    return {"silhouette": silhouette(x, y), "knn_accuracy": knn, "knn_per_fold": per_fold.tolist(),
            "chance": max(counts.values()) / len(y), "n_tasks": len(y), "n_families": len(counts), "k": k}
