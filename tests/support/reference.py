"""Dense NumPy float64 references for kernel sums, computed in i-chunks so that large M x N fit in memory.

Written independently of keir: each op is spelled directly with NumPy on broadcast arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def kernel_sum(formula: Callable[..., np.ndarray], i_vars: list, j_vars: list, params: list, axis: int = 1,
               chunk_pairs: int = 4_000_000) -> np.ndarray:
    """sum over j (axis=1) or i (axis=0) of formula(x_i[:, None, :], ..., y_j[None, :, :], ..., p...)."""
    i_vars = [np.asarray(a, dtype=np.float64) for a in i_vars]
    j_vars = [np.asarray(a, dtype=np.float64) for a in j_vars]
    params = [np.asarray(a, dtype=np.float64) for a in params]
    m, n = i_vars[0].shape[0], j_vars[0].shape[0]
    step = max(1, chunk_pairs // max(n, 1))
    rows, total = [], 0.0
    for start in range(0, m, step):
        xs = [a[start : start + step, None, :] for a in i_vars]
        ys = [a[None, :, :] for a in j_vars]
        values = formula(*xs, *ys, *params)
        values = np.broadcast_to(values, (xs[0].shape[0], n, values.shape[-1]))
        if axis == 1:
            rows.append(values.sum(axis=1))
        else:
            total = total + values.sum(axis=0)
    return np.concatenate(rows, axis=0) if axis == 1 else total


def relative_error(got, want) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    scale = max(np.abs(want).max(initial=0.0), 1e-300)
    return float(np.abs(got - want).max(initial=0.0) / scale)
