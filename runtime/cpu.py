"""Run a loaded CPU kernel on NumPy arrays: layout, output allocation and parallel i-blocks."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from keir.compiler.lower_cpu import Operand
from keir.runtime.cpu_loader import c_function

# Below this many (i, j) pairs a call runs on the calling thread: a thread hand-off costs more.
_PARALLEL_MIN_PAIRS = 1 << 18
_pools: dict[int, ThreadPoolExecutor] = {}


def default_threads() -> int:
    configured = os.environ.get("KEIR_NUM_THREADS")
    if configured:
        count = int(configured)
        if count < 1:
            raise ValueError(f"KEIR_NUM_THREADS must be a positive integer, got {configured!r}")
        return count
    return os.cpu_count() or 1


def _pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="keir")
    return _pools[threads]


@dataclass
class CpuKernel:
    """A compiled kernel: `operands` in the loop's terms (rows "i", columns "j", "p"), output width."""

    address: int
    operands: tuple[Operand, ...]
    out_dim: int
    axis: int
    dtype: np.dtype

    def __post_init__(self) -> None:
        self.function = c_function(self.address, len(self.operands) + 1)

    def __call__(self, arrays: list[np.ndarray], m: int, n: int, threads: int | None = None) -> np.ndarray:
        """arrays[k] is the user's k-th variable, shaped (M, D), (N, D) or (D,) and of self.dtype.
        m, n: the number of i and j indices. Returns (M, out_dim) for axis 1, (N, out_dim) for axis 0."""
        rows, cols = (m, n) if self.axis == 1 else (n, m)
        keep = []  # arrays whose memory the call uses
        descriptors: list[int] = []
        for operand in self.operands:
            array = arrays[operand.index]
            if operand.category == "j" and operand.dim > 1:
                array = np.ascontiguousarray(array.T)  # structure of arrays: (D, cols)
            else:
                array = np.ascontiguousarray(array)
            keep.append(array)
            pointer = array.ctypes.data
            descriptors += [pointer, pointer, 0, array.size, 1]
        out = np.empty((rows, self.out_dim), dtype=self.dtype)
        pointer = out.ctypes.data
        descriptors += [pointer, pointer, 0, out.size, 1]
        threads = threads or default_threads()
        if threads == 1 or rows * cols < _PARALLEL_MIN_PAIRS or rows < 2:
            self.function(*descriptors, 0, rows, cols)
            return out
        blocks = min(rows, threads * 4)
        bounds = [rows * k // blocks for k in range(blocks + 1)]
        futures = [
            _pool(threads).submit(self.function, *descriptors, lo, hi, cols)
            for lo, hi in zip(bounds[:-1], bounds[1:])
            if hi > lo
        ]
        for future in futures:
            future.result()
        return out
