"""Run a loaded CPU kernel on NumPy arrays: layout, output allocation and parallel i-blocks."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from keir.compiler.lower_cpu import VECTOR_LANES, Operand
from keir.compiler.reductions import INT64_MAX
from keir.runtime.cpu_loader import c_function

# Below this many (i, j) pairs a call runs on the calling thread: a thread hand-off costs more.
_PARALLEL_MIN_PAIRS = 1 << 18
_pools: dict[int, ThreadPoolExecutor] = {}


def _column_blocks(array: np.ndarray, lanes: int) -> np.ndarray:
    """(N, D) -> (ceil(N / lanes), D, lanes), the last block zero-padded: the layout of j-variables (see
    lower_cpu). One copy for the full blocks, a small one for the tail."""
    n, d = array.shape
    full, rest = divmod(n, lanes)
    blocks = np.empty((full + (rest > 0), d, lanes), dtype=array.dtype)
    blocks[:full] = array[: full * lanes].reshape(full, lanes, d).transpose(0, 2, 1)
    if rest:
        blocks[full] = 0
        blocks[full, :, :rest] = array[full * lanes :].T
    return blocks


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
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="keir")
    return _pools[threads]


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

    def __post_init__(self) -> None:
        outputs = (self.float_width > 0) + (self.index_width > 0)
        self.function = c_function(self.address, len(self.operands) + outputs)

    def __call__(self, arrays: list[np.ndarray], m: int, n: int, threads: int | None = None) -> list[np.ndarray]:
        """arrays[k] is the user's k-th variable, shaped (M, D), (N, D) or (D,) and of self.dtype.
        m, n: the number of i and j indices. Returns the outputs, each (M, width) for axis 1 or (N, width) for
        axis 0: the floats (if any), then the int64 indices (if any; -1 where fewer than K candidates exist)."""
        rows, cols = (m, n) if self.axis == 1 else (n, m)
        keep = []  # arrays whose memory the call uses
        descriptors: list[int] = []
        for operand in self.operands:
            array = arrays[operand.index]
            if operand.category == "j" and operand.dim > 1:
                array = _column_blocks(array, self.lanes)
            else:
                array = np.ascontiguousarray(array)
            keep.append(array)
            pointer = array.ctypes.data
            descriptors += [pointer, pointer, 0, array.size, 1]
        outputs = []
        for width, dtype in ((self.float_width, self.dtype), (self.index_width, np.int64)):
            if width:
                out = np.empty((rows, width), dtype=dtype)
                pointer = out.ctypes.data
                descriptors += [pointer, pointer, 0, out.size, 1]
                outputs.append(out)
        threads = threads or default_threads()
        if threads == 1 or rows * cols < _PARALLEL_MIN_PAIRS or rows < 2:
            self.function(*descriptors, 0, rows, cols)
            return self._finish(outputs)
        blocks = min(rows, threads * 4)
        bounds = [rows * k // blocks for k in range(blocks + 1)]
        futures = [
            _pool(threads).submit(self.function, *descriptors, lo, hi, cols)
            for lo, hi in zip(bounds[:-1], bounds[1:])
            if hi > lo
        ]
        for future in futures:
            future.result()
        return self._finish(outputs)

    @property
    def lanes(self) -> int:
        return VECTOR_LANES["f32" if self.dtype == np.float32 else "f64"]

    def _finish(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        if self.index_width:
            indices = outputs[-1]
            indices[indices == INT64_MAX] = -1  # no candidate (e.g. K larger than N)
        return outputs
