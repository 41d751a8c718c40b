"""Reductions of Dask arrays: one task per (row chunk, reduced chunk) pair, the pieces' states merged by a
binary tree over the reduced chunks (keir.compiler.partials), the result a Dask array chunked like the rows.

    from keir.numpy import Vi, Vj
    gauss = ((-Vi(0, 3).sqdist(Vj(1, 3))).exp() * Vj(2, 1)).sum(axis=1)   # symbolic: a Reduction
    out = keir.dask.reduce(gauss, x, y, b)          # x, y, b Dask arrays chunked by rows; out is lazy
    out.compute()                                    # any scheduler: threads, dask.distributed

NumPy arrays (memmaps included) are taken too, cut into chunks of `chunk_rows` rows. Each task holds one
chunk of each argument, so memory follows the chunk size, not N; keir's kernels release the GIL, so the
threaded scheduler runs tasks in parallel.
"""

from __future__ import annotations

import operator
from typing import Any

import dask
import dask.array as da
import numpy as np

from keir import sharding
from keir.compiler.partials import Partial, State, partial
from keir.reduction import Reduction
from keir.symbolic import SymbolicVariable, bind_symbolic


def reduce(reduction: Reduction, *arrays: Any, chunk_rows: int | None = None) -> Any:
    """The reduction over `arrays` (one per symbolic variable index, as a call of the reduction takes them) as
    a Dask array, or a tuple of them (values, indices). i- and j-arguments: 2-D Dask arrays chunked by rows, or
    NumPy arrays cut into `chunk_rows` rows; parameters: NumPy arrays."""
    if not reduction.symbolic:
        raise ValueError("keir.dask.reduce needs a reduction of symbolic variables (Vi(0, 3), Vj(1, 3), ...), "
                         "whose arrays it is given")
    form = partial(reduction.kind)
    sharding.check_real_full_precision("keir.dask", dtypes=[np.dtype(a.dtype).name for a in arrays])
    categories = _categories(reduction, len(arrays))
    chunked = [_as_dask(a, c, chunk_rows, index) for index, (a, c) in enumerate(zip(arrays, categories))]
    kept, reduced = sharding.kept_category(reduction), sharding.reduced_category(reduction)
    if reduced not in categories:
        raise ValueError(f"keir.dask.reduce over {reduced} needs a {reduced}-argument")
    kept_blocks, kept_chunks = _blocks(chunked, categories, kept)
    reduced_blocks, reduced_chunks = _blocks(chunked, categories, reduced)
    starts = np.concatenate([[0], np.cumsum(reduced_chunks)[:-1]]).tolist()
    example = _example_outputs(reduction, arrays, categories)
    piece = dask.delayed(_piece_state, pure=True)
    merge = dask.delayed(_merge, pure=True)
    row_blocks: list[list[Any]] = [[] for _ in example]
    for a, rows in enumerate(kept_chunks or (1,)):
        states = [piece(reduction, _arguments(chunked, categories, kept, a, reduced, b, kept_blocks,
                                                    reduced_blocks), start)
                  for b, start in enumerate(starts)]
        while len(states) > 1:  # a binary tree: log2(chunks) merges deep
            merged = [merge(form, states[i], states[i + 1], reduction.k, reduction.lazy.node.dim)
                      for i in range(0, len(states) - 1, 2)]
            states = merged + ([states[-1]] if len(states) % 2 else [])
        outputs = dask.delayed(form.finish, pure=True)(states[0])
        for o, like in enumerate(example):
            block = dask.delayed(operator.getitem, pure=True)(outputs, o) if len(example) > 1 else outputs
            row_blocks[o].append(da.from_delayed(block, shape=(rows,) + like.shape[1:], dtype=like.dtype))
    results = tuple(da.concatenate(blocks, axis=0) for blocks in row_blocks)
    return results[0] if len(results) == 1 else results


def _categories(reduction: Reduction, count: int) -> list[str]:
    """The category ("i", "j", "p") of each argument."""
    variables = {a.index: a for a in reduction.lazy.arrays if type(a) is SymbolicVariable}
    if count != max(variables) + 1:
        raise ValueError(f"this reduction takes {max(variables) + 1} arrays (one per variable index), got {count}")
    return [variables[i].category if i in variables else "p" for i in range(count)]


def _as_dask(array: Any, category: str, chunk_rows: int | None, index: int) -> Any:
    if category == "p":
        if isinstance(array, da.Array):
            raise TypeError(f"argument {index} is a parameter: give it as a NumPy array, not a Dask array")
        return np.asarray(array)
    if isinstance(array, da.Array):
        if array.ndim != 2:
            raise ValueError(f"argument {index} must be 2-D (rows, dim), got shape {array.shape}")
        return array.rechunk({1: -1})  # a row chunk holds whole rows
    if isinstance(array, np.ndarray):
        if array.ndim != 2:
            raise ValueError(f"argument {index} must be 2-D (rows, dim), got shape {array.shape}")
        if chunk_rows is None:
            raise ValueError(f"argument {index} is a NumPy array: give chunk_rows, the rows of its chunks")
        return da.from_array(array, chunks=(chunk_rows, -1))
    raise TypeError(f"argument {index} must be a Dask or NumPy array, got {type(array).__name__}")


def _blocks(arrays: list[Any], categories: list[str], category: str) -> tuple[dict[int, list[Any]], tuple[int, ...]]:
    """The row blocks (delayed) of each argument of `category`, all rechunked like the first, and the chunks."""
    indices = [k for k, c in enumerate(categories) if c == category]
    if not indices:
        return {}, ()
    first = arrays[indices[0]]
    for k in indices[1:]:
        if arrays[k].shape[0] != first.shape[0]:
            raise ValueError(f"the {category}-arguments must have the same number of rows; argument "
                             f"{indices[0]} has {first.shape[0]}, argument {k} has {arrays[k].shape[0]}")
    chunks = first.chunks[0]
    return {k: list(arrays[k].rechunk({0: chunks}).to_delayed().ravel()) for k in indices}, chunks


def _arguments(arrays: list[Any], categories: list[str], kept: str, a: int, reduced: str, b: int,
               kept_blocks: dict[int, list[Any]], reduced_blocks: dict[int, list[Any]]) -> list[Any]:
    """The arguments of piece (a, b): row chunk a of the kept arguments, chunk b of the reduced ones."""
    chosen = []
    for k, category in enumerate(categories):
        if category == kept:
            chosen.append(kept_blocks[k][a])
        elif category == reduced:
            chosen.append(reduced_blocks[k][b])
        else:
            chosen.append(arrays[k])
    return chosen


def _bound(reduction: Reduction, arrays: list[np.ndarray]) -> Reduction:
    lazy = bind_symbolic(reduction.lazy, tuple(arrays))
    return sharding.over(reduction, lazy.arrays, dtype=lazy.dtype)


def _piece_state(reduction: Reduction, arrays: list[np.ndarray], start: int) -> State:
    bound = _bound(reduction, [np.ascontiguousarray(a) for a in arrays])
    return sharding.state_of(bound, bound.lazy.arrays, start)


def _merge(form: Partial, a: State, b: State, k: int | None, dim: int) -> State:
    return form.merge(a, b, k, dim)


def _example_outputs(reduction: Reduction, arrays: tuple, categories: list[str]) -> tuple[np.ndarray, ...]:
    """The outputs of the reduction on one row of each argument: their dimensions and dtypes (the kernel is
    compiled here, once, rather than in the first tasks)."""
    rows = [np.asarray(a) if c == "p" else np.zeros((1,) + tuple(a.shape[1:]), dtype=a.dtype)
            for a, c in zip(arrays, categories)]
    result = _bound(reduction, rows)()
    return result if isinstance(result, tuple) else (result,)
