"""Out of core on one machine: a reduction whose reduced arrays (NumPy memmaps, say) are read in chunks of
rows that fit a memory budget, each chunk's state merged into the running one (keir.compiler.partials).

    y = np.memmap("y.f32", np.float32, "r", shape=(10**8, 3))
    gauss = ((-Vi(x).sqdist(Vj(y))).exp() * Vj(b)).sum(axis=1, call=False)
    out = keir.streaming.reduce_in_chunks(gauss, StreamOptions(memory_budget_bytes=256 << 20))

Resident memory: the output rows' arrays and the state (held whole), plus one chunk at a time. A memmap's
pages count in the process's resident set once read, so after each chunk the pages of every memmap input
are handed back to the kernel (madvise MADV_DONTNEED; the page cache still holds them).
"""

from __future__ import annotations

import importlib.util
import mmap
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from keir import sharding

if TYPE_CHECKING:
    from keir.reduction import Reduction

# Chunk rows are sized for this many copies of a chunk alive at once: the mapped rows, keir's column-block
# layout of them, and slack for the kernel's own temporaries.
_COPIES_PER_CHUNK = 3
# Past this estimated duration a progress bar is shown (tqdm, when installed)
_PROGRESS_AFTER_S = 3.0


@dataclass(frozen=True)
class StreamOptions:
    """memory_budget_bytes: what one chunk may take (see the module docstring); progress: True, False or
    None (a bar when the call looks like it takes over a few seconds, and tqdm is installed)."""

    memory_budget_bytes: int = 256 << 20
    progress: bool | None = None


def chunk_rows(reduction: Reduction, budget_bytes: int) -> int:
    """The reduced rows per chunk that keep one chunk's copies within the budget."""
    reduced = sharding.arrays_of(reduction, sharding.reduced_category(reduction))
    row_bytes = sum(int(np.prod(a.shape[:-2] + a.shape[-1:])) * a.dtype.itemsize for a in reduced)
    rows = budget_bytes // (_COPIES_PER_CHUNK * row_bytes)
    if rows < 1:
        raise ValueError(f"a memory budget of {budget_bytes} bytes is below one row's {_COPIES_PER_CHUNK} copies "
                         f"({_COPIES_PER_CHUNK * row_bytes} bytes)")
    return int(rows)


def reduce_in_chunks(reduction: Reduction, options: StreamOptions | None = None) -> Any:
    """The reduction's outputs (as a call of it gives them), computed chunk by chunk of its reduced axis."""
    options = options or StreamOptions()
    form = sharding.check_shardable(reduction)
    sharding.check_real_full_precision("keir.streaming", reduction.lazy)
    if not all(isinstance(a, (np.ndarray, float)) for a in reduction.lazy.arrays):
        raise TypeError("keir.streaming reads NumPy arrays (memmaps included); torch tensors are in memory already")
    reduced = sharding.reduced_category(reduction)
    total = sharding.rows_of(reduction, reduced)
    step = chunk_rows(reduction, options.memory_budget_bytes)
    pieces = [(start, min(start + step, total)) for start in range(0, total, step)]
    arrays, categories = reduction.lazy.arrays, reduction.lazy.categories
    mapped = [a for a in arrays if isinstance(a, np.memmap)]
    bar = None
    state = None
    began = time.perf_counter()
    try:
        for count, (start, stop) in enumerate(pieces, 1):
            piece = sharding.slice_rows(arrays, categories, reduced, start, stop)
            piece_state = sharding.state_of(reduction, piece, start)
            state = piece_state if state is None else form.merge(state, piece_state, reduction.k,
                                                                  reduction.lazy.node.dim)
            _release_pages(mapped)
            if bar is not None:
                bar.update(1)
            elif count < len(pieces):  # the estimate of the whole call improves with each chunk
                bar = _progress_bar(options.progress, time.perf_counter() - began, count, len(pieces))
    finally:
        if bar is not None:
            bar.close()
    return form.finish(state)


def _release_pages(mapped: list[np.memmap]) -> None:
    """Drop the memmaps' pages from this process's resident set (they stay in the page cache)."""
    for array in mapped:
        mapping = getattr(array, "_mmap", None)  # NumPy keeps the mmap object of a memmap (and its views) here
        if isinstance(mapping, mmap.mmap) and hasattr(mapping, "madvise"):
            mapping.madvise(mmap.MADV_DONTNEED)


def _progress_bar(progress: bool | None, elapsed: float, done: int, count: int) -> Any:
    """A tqdm bar (already at `done` of `count`) if one is wanted and tqdm is installed, else None."""
    expected = elapsed / done * count
    if progress is False or (progress is None and expected < _PROGRESS_AFTER_S):
        return None
    if importlib.util.find_spec("tqdm") is None:
        return None
    from tqdm import tqdm

    return tqdm(total=count, initial=done, unit="chunk", desc="keir")
