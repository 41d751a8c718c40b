"""pykeops.torch.cluster: the cluster helpers of block-sparse reductions, on tensors. Each is keir.cluster's,
with tensors in and tensors out on the inputs' device; sort_clusters indexes the tensors themselves, so that
sorting keeps autograd."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from keir import cluster
from keir.ranges import swap_axes

__all__ = ["cluster_centroids", "cluster_ranges", "cluster_ranges_centroids", "from_matrix", "grid_cluster",
           "sort_clusters", "swap_axes"]


def _numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def _tensor(array: np.ndarray, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device=like.device, dtype=dtype)


def grid_cluster(x: torch.Tensor, size: Any) -> torch.Tensor:
    """(M,) int32 labels, as pykeops' torch version gives (see keir.cluster.grid_cluster)."""
    return _tensor(cluster.grid_cluster(_numpy(x), _numpy(size)), x, torch.int32)


def sort_clusters(x: Any, lab: torch.Tensor) -> tuple[Any, torch.Tensor]:
    lab, perm = torch.sort(lab.reshape(-1), stable=True)
    if isinstance(x, (tuple, list)):
        return type(x)(a[perm] for a in x), lab
    return x[perm], lab


def cluster_ranges(lab: torch.Tensor, Nlab: torch.Tensor | None = None) -> torch.Tensor:  # noqa: N803
    return _tensor(cluster.cluster_ranges(_numpy(lab), _numpy(Nlab)), lab, torch.int64)


def cluster_centroids(x: torch.Tensor, lab: torch.Tensor, Nlab: torch.Tensor | None = None,  # noqa: N803
                      weights: torch.Tensor | None = None, weights_c: torch.Tensor | None = None) -> torch.Tensor:
    centroids = cluster.cluster_centroids(_numpy(x), _numpy(lab), _numpy(Nlab), _numpy(weights), _numpy(weights_c))
    return _tensor(centroids, x, x.dtype)


def cluster_ranges_centroids(x: torch.Tensor, lab: torch.Tensor, weights: torch.Tensor | None = None,
                             min_weight: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ranges, centroids, total = cluster.cluster_ranges_centroids(_numpy(x), _numpy(lab), _numpy(weights),
                                                                None if weights is None else min_weight)
    return _tensor(ranges, lab, torch.int64), _tensor(centroids, x, x.dtype), _tensor(total, x, x.dtype)


def from_matrix(ranges_i: torch.Tensor, ranges_j: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The ranges 6-tuple (see keir.cluster.from_matrix): int64 tensors, ranges_i and ranges_j as given."""
    ranges = cluster.from_matrix(_numpy(ranges_i), _numpy(ranges_j), _numpy(keep))
    return (ranges_i, *(_tensor(r, keep, torch.int64) for r in ranges[1:3]), ranges_j,
            *(_tensor(r, keep, torch.int64) for r in ranges[4:6]))
