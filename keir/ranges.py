"""pykeops' block-sparse `ranges`: validation, and the schedule a block-sparse kernel runs.

A ranges argument is pykeops' 6-tuple of integer arrays `(ranges_i, slices_i, redranges_j, ranges_j, slices_j,
redranges_i)`. Its first half serves reductions over j (axis 1): the rows ranges_i[k] = [start, end) are
reduced over the j-intervals redranges_j[slices_i[k - 1] : slices_i[k]] (from 0 for k = 0). Its second half,
the same pairs of blocks seen from the columns, serves reductions over i (axis 0), and so the gradients with
respect to j-variables. Rows that no range covers get the reduction of no terms (0 for a sum, -inf for a max,
index -1 for an arg-reduction, ...), on every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keir.runtime.block_sparse import BlockSparse

# Ranges longer than this many rows are cut into pieces, so that threads can share the work of a large one; on
# the GPU, a piece is a block's rows (lower_gpu.BLOCK_SIZES[0]).
PIECE_ROWS = 256
_NAMES = ("ranges_i", "slices_i", "redranges_j", "ranges_j", "slices_j", "redranges_i")


class RangesError(ValueError):
    """Malformed block-sparse ranges."""


def as_ranges(value: Any) -> tuple[np.ndarray, ...] | None:
    """pykeops' 6-tuple as int64 NumPy arrays (None stays None), checking its form; bounds are checked
    against the sizes when it is used (`schedule`)."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 6:
        raise RangesError("ranges must be pykeops' 6-tuple (ranges_i, slices_i, redranges_j, ranges_j, slices_j, "
                          f"redranges_i), e.g. from keir.torch.cluster.from_matrix; got {type(value).__name__}"
                          + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
    arrays = tuple(_integers(a, name) for a, name in zip(value, _NAMES))
    for k in (0, 3):
        pairs, ends, intervals = arrays[k : k + 3]
        for array, name in ((pairs, _NAMES[k]), (intervals, _NAMES[k + 2])):
            if array.ndim != 2 or array.shape[1] != 2:
                raise RangesError(f"{name} must have shape (count, 2), got {array.shape}")
            bad = (array[:, 0] < 0) | (array[:, 0] > array[:, 1])
            if np.any(bad):
                at = int(np.argmax(bad))
                raise RangesError(f"{name}[{at}] = {array[at].tolist()} is not a [start, end) range")
        if ends.shape != (len(pairs),):
            raise RangesError(f"{_NAMES[k + 1]} must have shape ({len(pairs)},), one end per range of "
                              f"{_NAMES[k]}, got {ends.shape}")
        if len(ends) and (ends[0] < 0 or np.any(np.diff(ends) < 0) or ends[-1] > len(intervals)):
            raise RangesError(f"{_NAMES[k + 1]} must be non-decreasing ends in [0, {len(intervals)}] (the length "
                              f"of {_NAMES[k + 2]}), got {_show(ends)}")
    if _pairs(arrays[:3]) != _pairs(arrays[3:]):
        raise RangesError("the two halves of ranges describe different blocks: (ranges_i, slices_i, redranges_j) "
                          f"covers {_pairs(arrays[:3])} (i, j) pairs, (ranges_j, slices_j, redranges_i) "
                          f"{_pairs(arrays[3:])}")
    return arrays


def swap_axes(ranges: Any) -> Any:
    """The ranges of the transposed reduction (i and j swapped); None stays None."""
    return None if ranges is None else (*ranges[3:6], *ranges[0:3])


def half(ranges: tuple[np.ndarray, ...], axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ranges, slices, redranges) for a reduction over j (axis 1) or over i (axis 0)."""
    return ranges[0:3] if axis == 1 else ranges[3:6]


def schedule(ranges: tuple[np.ndarray, ...], axis: int, rows: int, columns: int) -> BlockSparse:
    """The schedule of a reduction over `axis` with `rows` output rows and `columns` reduced indices."""
    names = _NAMES[0:3] if axis == 1 else _NAMES[3:6]
    pairs, ends, intervals = half(ranges, axis)
    _check_bounds(pairs, rows, names[0])
    _check_bounds(intervals, columns, names[2])
    firsts = np.concatenate(([0], ends[:-1])).astype(np.int64)
    _check_disjoint(pairs, np.zeros(len(pairs), dtype=np.int64), names[0])
    _check_disjoint(intervals[_spans(firsts, ends)], np.repeat(np.arange(len(ends)), ends - firsts), names[2])
    firsts, ends, intervals = _merged(firsts, ends, intervals)
    # the rows no range covers, as ranges with no intervals
    covered = pairs[pairs[:, 1] > pairs[:, 0]]
    covered = covered[np.argsort(covered[:, 0])]
    gap_lo = np.concatenate(([0], covered[:, 1]))
    gap_hi = np.concatenate((covered[:, 0], [rows]))
    gaps = gap_hi > gap_lo
    all_pairs = np.concatenate((pairs, np.stack((gap_lo[gaps], gap_hi[gaps]), axis=1)))
    all_slices = np.concatenate((np.stack((firsts, ends), axis=1), np.zeros((int(gaps.sum()), 2), dtype=np.int64)))
    nonempty = all_pairs[:, 1] > all_pairs[:, 0]
    return BlockSparse.of(all_pairs[nonempty], all_slices[nonempty], intervals, PIECE_ROWS)


def _merged(firsts: np.ndarray, ends: np.ndarray, intervals: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each range's intervals sorted, empty ones dropped, and those that touch ([a, b) then [b, c)) made one: a
    row then runs over the same columns in fewer, longer loops (clusters kept side by side are common)."""
    group = np.repeat(np.arange(len(ends)), ends - firsts)
    spans = intervals[_spans(firsts, ends)]
    keep = spans[:, 1] > spans[:, 0]
    spans, group = spans[keep], group[keep]
    order = np.lexsort((spans[:, 0], group))
    spans, group = spans[order], group[order]
    starts_new = np.ones(len(spans), dtype=bool)
    starts_new[1:] = (group[1:] != group[:-1]) | (spans[1:, 0] != spans[:-1, 1])
    merged = spans[starts_new].copy()
    if len(spans):
        merged[:, 1] = np.maximum.reduceat(spans[:, 1], np.flatnonzero(starts_new))
    counts = np.bincount(group[starts_new], minlength=len(ends)) if len(spans) else np.zeros(len(ends), np.int64)
    new_ends = np.cumsum(counts).astype(np.int64)
    return new_ends - counts, new_ends, merged.reshape(-1, 2)


def _integers(array: Any, name: str) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, possibly on a GPU
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.kind not in "iu":
        raise RangesError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _pairs(half: tuple[np.ndarray, ...]) -> int:
    """The number of (row, column) pairs a half covers."""
    pairs, ends, intervals = half
    if not len(pairs):
        return 0
    firsts = np.concatenate(([0], ends[:-1]))
    widths = np.concatenate(([0], np.cumsum(intervals[:, 1] - intervals[:, 0])))
    return int(np.sum((pairs[:, 1] - pairs[:, 0]) * (widths[ends] - widths[firsts])))


def _spans(firsts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The indices firsts[0]..ends[0]-1, firsts[1]..ends[1]-1, ..., concatenated."""
    counts = ends - firsts
    return np.repeat(firsts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))


def _check_bounds(pairs: np.ndarray, size: int, name: str) -> None:
    bad = pairs[:, 1] > size
    if np.any(bad):
        k = int(np.argmax(bad))
        raise RangesError(f"{name}[{k}] = {pairs[k].tolist()} ends past {size}, the number of indices")


def _check_disjoint(pairs: np.ndarray, groups: np.ndarray, name: str) -> None:
    """The ranges of each group do not overlap (overlapping ones would count terms twice)."""
    keep = pairs[:, 1] > pairs[:, 0]  # empty ranges overlap nothing
    pairs, groups = pairs[keep], groups[keep]
    order = np.lexsort((pairs[:, 0], groups))
    pairs, groups = pairs[order], groups[order]
    overlap = (groups[1:] == groups[:-1]) & (pairs[1:, 0] < pairs[:-1, 1])
    if np.any(overlap):
        k = int(np.argmax(overlap))
        raise RangesError(f"{name} has overlapping ranges {pairs[k].tolist()} and {pairs[k + 1].tolist()}"
                          + (" (for the same block of rows)" if name.startswith("red") else ""))


def _show(array: np.ndarray) -> str:
    return str(array.tolist()) if len(array) <= 12 else f"{array[:12].tolist()[:-1]}, ...]"
