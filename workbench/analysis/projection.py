"""2-D projections of task embeddings: t-SNE (default), PCA, UMAP (optional extra).

These are slow for many points (t-SNE on 600 x 64 takes seconds): call them off
the UI thread. ``project`` never fails on small inputs: with fewer than 4
points it falls back to PCA, and constant embeddings give a constant map.
"""

from __future__ import annotations

import numpy as np

METHODS = ("tsne", "pca", "umap")


from workbench.extras import MissingExtra, require  # noqa: F401 (MissingExtra: what callers catch)


def project(embeddings: np.ndarray, method: str = "tsne", seed: int = 0, threads: int | None = None) -> np.ndarray:
    """(n, d) -> (n, 2) float32. ``threads`` caps the BLAS/OpenMP threads it may use (the
    GUI passes 1 so that a map being drawn never takes the training process's core)."""
    if threads:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads):
            return _project(embeddings, method, seed)
    return _project(embeddings, method, seed)


def _project(embeddings: np.ndarray, method: str, seed: int) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {x.shape}")
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    x = np.nan_to_num(x)
    if n < 4 or np.allclose(x, x[0]):
        method = "pca"
    if method == "pca":
        xc = x - x.mean(0)
        if n < 2 or not np.any(xc):
            return np.zeros((n, 2), np.float32)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        out = xc @ vt[:2].T
        if out.shape[1] < 2:
            out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
        return out.astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                    learning_rate="auto").fit_transform(x).astype(np.float32)
    if method == "umap":
        umap = require("umap", "umap", "UMAP projections of task embeddings")
        return umap.UMAP(n_components=2, random_state=seed,
                         n_neighbors=min(15, n - 1)).fit_transform(x).astype(np.float32)
    raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(METHODS)}")
