"""pykeops' cluster helpers for block-sparse reductions, on NumPy arrays (keir.numpy.cluster; keir.torch.cluster
wraps them for tensors): label points by grid cell, sort them so that clusters are contiguous, the clusters'
[start, end) ranges and centroids, and the `ranges` 6-tuple of a cluster-to-cluster mask (keir.ranges)."""

from __future__ import annotations

from typing import Any

import numpy as np

from keir.ranges import swap_axes

__all__ = ["cluster_centroids", "cluster_ranges", "cluster_ranges_centroids", "from_matrix", "grid_cluster",
           "sort_clusters", "swap_axes"]


def grid_cluster(x: np.ndarray, size: float | np.ndarray) -> np.ndarray:
    """Labels in [0, C) of points x (M, D) by the cubic cell of side `size` (a number or one per dimension)
    they fall in, numbered in the lexicographic order of the cells (as pykeops numbers them), C the number of
    non-empty cells. Any D (pykeops: D <= 3)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"grid_cluster needs points of shape (M, D), got {x.shape}")
    cells = np.floor((x - x.min(axis=0, keepdims=True)) / np.asarray(size)).astype(np.int64)
    _, labels = np.unique(cells, axis=0, return_inverse=True)
    return labels.reshape(-1).astype(np.int64)


def sort_clusters(x: Any, lab: np.ndarray) -> tuple[Any, np.ndarray]:
    """(x sorted by label, the sorted labels): x an array (M, ...) or a tuple or list of them."""
    lab = np.asarray(lab).reshape(-1)
    perm = np.argsort(lab, kind="stable")
    if isinstance(x, (tuple, list)):
        return type(x)(a[perm] for a in x), lab[perm]
    return x[perm], lab[perm]


def cluster_ranges(lab: np.ndarray, Nlab: np.ndarray | None = None) -> np.ndarray:  # noqa: N803 (pykeops' name)
    """The (C, 2) [start, end) of each label's points once sorted by sort_clusters; Nlab: points per label."""
    counts = np.bincount(np.asarray(lab).reshape(-1)) if Nlab is None else np.asarray(Nlab)
    pivots = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return np.stack((pivots[:-1], pivots[1:]), axis=1)


def cluster_centroids(x: np.ndarray, lab: np.ndarray, Nlab: np.ndarray | None = None,  # noqa: N803
                      weights: np.ndarray | None = None, weights_c: np.ndarray | None = None) -> np.ndarray:
    """The (C, D) centroids of the labels' points, weighted by `weights` (M,) if given; Nlab: points per label,
    weights_c: total weight per label (recomputed if None)."""
    x, lab = np.asarray(x), np.asarray(lab).reshape(-1)
    if weights is None:
        total = (np.bincount(lab) if Nlab is None else np.asarray(Nlab)).astype(np.float64)
        weights = np.ones(len(lab))
    else:
        weights = np.asarray(weights).reshape(-1)
        total = np.bincount(lab, weights=weights) if weights_c is None else np.asarray(weights_c).reshape(-1)
    sums = np.stack([np.bincount(lab, weights=x[:, d] * weights, minlength=len(total)) for d in range(x.shape[1])],
                    axis=1)
    return (sums / total[:, None]).astype(x.dtype)


def cluster_ranges_centroids(x: np.ndarray, lab: np.ndarray, weights: np.ndarray | None = None,
                             min_weight: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ranges (C, 2), centroids (C, D), total weight per label (C,)). Weights below `min_weight` are raised to
    it (pykeops' torch version does so with 1e-9; its NumPy version does not)."""
    lab = np.asarray(lab).reshape(-1)
    counts = np.bincount(lab)
    if weights is None:
        return cluster_ranges(lab, counts), cluster_centroids(x, lab, counts), counts.astype(np.float64)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if min_weight is not None:
        weights = np.maximum(weights, min_weight)
    total = np.bincount(lab, weights=weights)
    return cluster_ranges(lab, counts), cluster_centroids(x, lab, counts, weights, total), total


def from_matrix(ranges_i: np.ndarray, ranges_j: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """pykeops' `ranges` 6-tuple from clusters of rows (ranges_i, (C_i, 2)), of columns (ranges_j, (C_j, 2))
    and a boolean (C_i, C_j) mask `keep` of the pairs of clusters to compute (see keir.ranges)."""
    ranges_i, ranges_j, keep = np.asarray(ranges_i), np.asarray(ranges_j), np.asarray(keep, dtype=bool)
    if keep.shape != (len(ranges_i), len(ranges_j)):
        raise ValueError(f"keep must have shape ({len(ranges_i)}, {len(ranges_j)}), one entry per pair of "
                         f"clusters, got {keep.shape}")
    _, columns = np.nonzero(keep)  # row-major: for each row cluster, its kept column clusters
    _, rows_t = np.nonzero(keep.T)
    slices_i = np.cumsum(keep.sum(axis=1)).astype(np.int64)
    slices_j = np.cumsum(keep.sum(axis=0)).astype(np.int64)
    return ranges_i, slices_i, ranges_j[columns], ranges_j, slices_j, ranges_i[rows_t]
