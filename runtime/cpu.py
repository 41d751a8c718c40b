"""Run a loaded CPU kernel on NumPy arrays: layout, output allocation and parallel i-blocks."""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from keir.compiler.operands import BLOCK_SPARSE, VECTOR_LANES, Operand, column_block_components
from keir.compiler.reductions import INT64_MAX
from keir.runtime.block_sparse import BlockSparse
from keir.runtime.cpu_loader import c_function

# Below this many (i, j) pairs a call runs on the calling thread: a thread hand-off costs more. Larger calls
# run on the pool even with one thread, so that the calling thread waits interruptibly (Ctrl-C) instead of
# sitting in a ctypes call that no signal can interrupt.
_PARALLEL_MIN_PAIRS = 1 << 18
# At most about this many pairs per block (some milliseconds): after Ctrl-C, a worker finishes its block
# and the blocks not started are cancelled, so the pool is free again soon.
_BLOCK_MAX_PAIRS = 1 << 24
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


# Up to this many elements, a j-variable is laid out in blocks by one scatter through a cached index: the
# strided copies that larger ones take cost a few numpy calls each, which dominate at small sizes.
_SCATTER_MAX_ELEMENTS = 1 << 12


def _column_blocks(array: np.ndarray, lanes: int) -> np.ndarray:
    """(N, D) -> (ceil(N / lanes), C, lanes), the last block zero-padded: the layout of j-variables (see
    lower_cpu), C = D components, then |y_j|^2 for a wide variable. A small array takes one scatter into zeros;
    a larger one, one copy for the full blocks and a small one for the tail."""
    n, d = array.shape
    small = _scatter_layout(n, d, lanes)
    if small is not None:
        shape, positions = small
        blocks = np.zeros(shape, dtype=array.dtype)
        blocks.reshape(-1)[positions] = array.reshape(-1)
    else:
        shape = _blocks_shape(n, d, lanes)
        full, rest = divmod(n, lanes)
        blocks = np.empty(shape, dtype=array.dtype)
        blocks[:full, :d] = array[: full * lanes].reshape(full, lanes, d).transpose(0, 2, 1)
        if rest:
            blocks[full] = 0
            blocks[full, :d, :rest] = array[full * lanes :].T
    if shape[1] > d:
        components = blocks[:, :d]
        np.einsum("bdl,bdl->bl", components, components, out=blocks[:, d])
    return blocks


def _blocks_shape(n: int, d: int, lanes: int) -> tuple[int, int, int]:
    return (n + lanes - 1) // lanes, column_block_components(d), lanes


@functools.lru_cache(maxsize=256)
def _scatter_layout(n: int, d: int, lanes: int) -> tuple[tuple[int, int, int], np.ndarray] | None:
    """For a small (n, d) array: the blocks' shape, and where element (j, c) of the flat array goes in the flat
    blocks (block j // lanes, vector c, lane j % lanes). None for a large one."""
    if n * d > _SCATTER_MAX_ELEMENTS:
        return None
    shape = _blocks_shape(n, d, lanes)
    j, c = np.divmod(np.arange(n * d), d)
    positions = (j // lanes * shape[1] + c) * lanes + j % lanes
    positions.setflags(write=False)
    return shape, positions


def default_threads() -> int:
    """KEIR_NUM_THREADS if set, else every core this process may use."""
    configured = os.environ.get("KEIR_NUM_THREADS")
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"KEIR_NUM_THREADS must be a positive integer, got {configured!r}")
        return int(configured)
    return _core_count()


@functools.cache
def _core_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pool(threads: int) -> ThreadPoolExecutor:
    pool = _pools.get(threads)
    if pool is None:
        with _pools_lock:  # two threads making the first parallel call at once share one pool
            pool = _pools.get(threads)
            if pool is None:
                pool = _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="keir")
    return pool


def _run_block(function: ctypes._CFuncPtr, buffers: list[np.ndarray], descriptors: list[int],
               lo: int, hi: int, cols: int) -> None:
    """One block of rows on a pool thread. `buffers` is not used: holding it keeps the arrays that
    `descriptors` point into alive until the block is done, even when the caller has stopped waiting."""
    function(*descriptors, lo, hi, cols)


def _run_blocks(pool: ThreadPoolExecutor, function: ctypes._CFuncPtr, buffers: list[np.ndarray],
                descriptors: list[int], bounds: list[int], cols: int) -> None:
    """Run the row blocks [bounds[k], bounds[k + 1]) on the pool and wait for them. Waiting on a future can
    be interrupted (Ctrl-C raises KeyboardInterrupt here, unlike a ctypes call); the blocks not started are
    then cancelled, and those running finish on their own, on buffers they keep alive."""
    futures: list[Future] = []
    try:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if hi > lo:
                futures.append(pool.submit(_run_block, function, buffers, descriptors, lo, hi, cols))
        for future in futures:
            future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


_addressof, _char_view = ctypes.addressof, ctypes.c_char.from_buffer


def _address(array: np.ndarray) -> int:
    """The address of a C-contiguous array's data. ctypes reads it through the buffer protocol in a quarter
    of the time NumPy takes to build `array.ctypes`; read-only and empty arrays, which that route refuses,
    take NumPy's."""
    try:
        return _addressof(_char_view(array))
    except (TypeError, ValueError):
        return array.ctypes.data


@dataclass
class CpuKernel:
    """A compiled kernel: `operands` in the loop's terms (rows "i", columns "j", "p"), and how many floats and
    int64 indices it writes per output row."""

    address: int
    operands: tuple[Operand, ...]
    float_width: int
    index_width: int
    axis: int
    dtype: np.dtype
    block_sparse: bool = False  # compiled block-sparse: it takes a BlockSparse schedule

    def __post_init__(self) -> None:
        self.lanes = VECTOR_LANES["f32" if self.dtype == np.float32 else "f64"]
        # Derived once, not on every call: where each input comes from and whether it takes the column-block
        # layout (j-variables of dimension > 1), and the (width, dtype) of each output.
        self._inputs = tuple((op.index, op.category == "j" and op.dim > 1) for op in self.operands)
        self._outputs = tuple(
            (width, np.dtype(dtype))
            for width, dtype in ((self.float_width, self.dtype), (self.index_width, np.int64))
            if width
        )
        memrefs = len(self.operands) + len(self._outputs) + (len(BLOCK_SPARSE) if self.block_sparse else 0)
        self.function = c_function(self.address, memrefs)

    def __call__(self, arrays: list[np.ndarray], m: int, n: int, threads: int | None = None,
                 block_sparse: BlockSparse | None = None) -> list[np.ndarray]:
        """arrays[k] is the user's k-th variable, shaped (M, D), (N, D) or (D,) and of self.dtype.
        m, n: the number of i and j indices. Returns the outputs, each (M, width) for axis 1 or (N, width) for
        axis 0: the floats (if any), then the int64 indices (if any; -1 where fewer than K candidates exist).
        block_sparse: the schedule of a kernel compiled block-sparse (it must cover every output row)."""
        if (block_sparse is not None) != self.block_sparse:  # a wrong signature would crash the process
            raise ValueError("a block-sparse kernel needs a schedule, a dense one takes none")
        rows, cols = (m, n) if self.axis == 1 else (n, m)
        lanes = self.lanes
        inputs = [_column_blocks(arrays[index], lanes) if blocked else np.ascontiguousarray(arrays[index])
                  for index, blocked in self._inputs]
        outputs = [np.empty((rows, width), dtype=dtype) for width, dtype in self._outputs]
        buffers = inputs + outputs  # these lists keep the memory alive until the call returns
        if block_sparse is not None:
            buffers += [block_sparse.ranges, block_sparse.slices, block_sparse.redranges]
        descriptors: list[int] = []
        for array in buffers:
            pointer = _address(array)
            descriptors += (pointer, pointer, 0, array.size, 1)
        if block_sparse is not None:
            self._run_block_sparse(block_sparse, buffers, descriptors, cols, threads)
            if self.index_width:
                outputs[-1][block_sparse.empty_rows] = -1
            return self._finish(outputs)
        if rows * cols < _PARALLEL_MIN_PAIRS or rows < 2:
            # decided without default_threads(): reading the environment costs a microsecond
            self.function(*descriptors, 0, rows, cols)
            return self._finish(outputs)
        threads = threads or default_threads()
        blocks = min(rows, max(threads * 4, rows * cols // _BLOCK_MAX_PAIRS))
        bounds = [rows * k // blocks for k in range(blocks + 1)]
        _run_blocks(_pool(threads), self.function, inputs + outputs, descriptors, bounds, cols)
        return self._finish(outputs)

    def _run_block_sparse(self, schedule: BlockSparse, buffers: list[np.ndarray], descriptors: list[int],
                          cols: int, threads: int | None) -> None:
        """The ranges in runs of about equal work (pairs computed), on the pool when there is enough of it."""
        count = len(schedule.ranges)
        total = int(schedule.work[-1]) if count else 0
        if total < _PARALLEL_MIN_PAIRS or count < 2:
            self.function(*descriptors, 0, count, cols)
            return
        threads = threads or default_threads()
        blocks = min(count, max(threads * 4, total // _BLOCK_MAX_PAIRS))
        inner = np.searchsorted(schedule.work, np.linspace(0, total, blocks + 1)[1:-1]) + 1
        bounds = [0, *np.minimum(inner, count).tolist(), count]
        _run_blocks(_pool(threads), self.function, buffers, descriptors, bounds, cols)

    def _finish(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        if self.index_width:
            indices = outputs[-1]
            indices[indices == INT64_MAX] = -1  # no candidate (e.g. K larger than N)
        return outputs

