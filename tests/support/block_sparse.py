"""Block-sparse references: random pykeops ranges with their (M, N) mask of kept pairs, and pykeops' reductions of
dense terms over the kept pairs, in NumPy float64, written without keir. A row with no kept pair gets the
reduction of no terms: 0, +-inf, index -1, log 0 = -inf (0 / 0 for sumsoftmaxweight)."""

from __future__ import annotations

import numpy as np

from keir.numpy.cluster import from_matrix


def _clusters(rng: np.random.Generator, size: int) -> np.ndarray:
    """[start, end) ranges cutting [0, size) at random points (some empty), a few rows left uncovered."""
    cuts = np.sort(rng.integers(0, size + 1, size=max(1, size // 9)))
    bounds = np.unique(np.concatenate(([0], cuts, [size])))
    pairs = np.stack((bounds[:-1], bounds[1:]), axis=1)
    pairs = pairs[rng.random(len(pairs)) > 0.15]  # some rows in no range
    return np.concatenate((pairs, [[pairs[0, 0], pairs[0, 0]]])) if len(pairs) else pairs  # an empty one


def random_ranges(rng: np.random.Generator, m: int, n: int, density: float = 0.4):
    ranges_i, ranges_j = _clusters(rng, m), _clusters(rng, n)
    keep = rng.random((len(ranges_i), len(ranges_j))) < density
    return from_matrix(ranges_i, ranges_j, keep), mask_of(ranges_i, ranges_j, keep, m, n)


def mask_of(ranges_i, ranges_j, keep, m, n) -> np.ndarray:
    mask = np.zeros((m, n), dtype=bool)
    for a, c in zip(*np.nonzero(keep)):
        mask[ranges_i[a, 0] : ranges_i[a, 1], ranges_j[c, 0] : ranges_j[c, 1]] = True
    return mask


def dense_reduction(kind: str, terms: np.ndarray, mask: np.ndarray, axis: int, k: int = 3, weight=None):
    """pykeops' reduction `kind` of terms (M, N, D) over `axis`, over the pairs where mask (M, N) holds."""
    if axis == 0:
        terms, mask = terms.swapaxes(0, 1), mask.T
    inf = np.where(mask[..., None], terms, np.inf)
    if kind == "sum":
        return np.where(mask[..., None], terms, 0).sum(1)
    if kind in ("min", "argmin", "min_argmin", "max", "argmax", "max_argmax"):
        signed = inf if kind.startswith(("min", "argmin")) else np.where(mask[..., None], -terms, np.inf)
        index = np.where(mask.any(1)[:, None], signed.argmin(1), -1)
        value = np.take_along_axis(inf if signed is inf else -signed, np.maximum(index, 0)[:, None], 1)[:, 0]
        value = np.where(index >= 0, value, np.inf if signed is inf else -np.inf)
        return {"min": value, "max": value, "argmin": index, "argmax": index}.get(kind, (value, index))
    if kind in ("kmin", "argkmin", "kmin_argkmin"):
        order = np.argsort(inf[..., 0], axis=1, kind="stable")[:, :k]
        values = np.take_along_axis(inf[..., 0], order, 1)
        index = np.where(np.isfinite(values), order, -1)
        return {"kmin": values, "argkmin": index}.get(kind, (values, index))
    f = np.where(mask[..., None], terms, -np.inf)
    top = np.max(f, axis=1, keepdims=True)
    shifted = np.exp(f - np.where(np.isfinite(top), top, 0))
    if kind == "logsumexp":
        return (np.log(shifted.sum(1)) + top[:, 0])
    w = weight if axis == 1 else weight
    if kind == "logsumexp_weight":
        return np.log((shifted * w[None]).sum(1)) + top[:, 0]
    return (shifted * w[None]).sum(1) / shifted.sum(1)  # sumsoftmaxweight: 0 / 0 on an empty row
