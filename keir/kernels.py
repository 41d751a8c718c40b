"""From a reduction node to a callable CPU kernel: in-process table, on-disk cache, or a fresh compile.

A formula node is hash-consed, so (node, dtype) identifies a kernel in this process without printing any
IR; only a miss prints the keir IR, hashes it and looks in the on-disk cache, and only a miss there imports
MLIR and compiles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from keir.compiler.kernel import DTYPES, Kernel
from keir.compiler.operands import kernel_operands
from keir.compiler.pipeline import Compilation, CompileOptions, cache_key
from keir.dialect.node import Node, make
from keir.dialect.ops import reduction_output_widths
from keir.runtime import cache
from keir.runtime.column_blocks import ColumnBlockKernel
from keir.runtime.cpu import CpuKernel


class KernelTable:
    """Kernels loaded in this process, by key; each is built once even when threads ask at the same time."""

    def __init__(self) -> None:
        self._kernels: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, build: Callable[[], Any]) -> Any:
        found = self._kernels.get(key)  # the hot path takes no lock
        if found is None:
            with self._lock:
                found = self._kernels.get(key)
                if found is None:
                    found = self._kernels[key] = build()
        return found


_loaded = KernelTable()
_DEFAULT_OPTIONS = CompileOptions()


def compilation(root: Node, dtype: np.dtype, options: CompileOptions | None = None) -> Compilation:
    """The staged compilation of reduction `root` (for printing IR); nothing is compiled until asked."""
    options = options or CompileOptions()
    elem = DTYPES[np.dtype(dtype).name]
    return Compilation(Kernel("keir_kernel", root, elem), options)


# A CPU sum kernel keeps each output row's components in its loop state: past this many (measured on AVX-512,
# a Gaussian times B, M = N = 2e4: 9.0 ms per column at 128 columns, 12 at 192, 16 at 256) the state leaves the
# registers and L1 for good, so a wider sum runs as kernels of this many columns each, which recompute the
# kernel's value once per block (benchmarks/wide_rhs.py).
WIDEST_OUTPUT = 128


def column_block_roots(root: Node, widest: int) -> list[Node] | None:
    """A sum of more than `widest` components as sums of blocks of at most `widest` of them (`extract` of the
    formula: a lowering computes only the components each block uses); None for any other reduction."""
    formula = root.args[0]
    if root.attr("kind") != "sum" or formula.dim <= widest:
        return None
    return [make("reduce", make("extract", formula, start=start, length=min(widest, formula.dim - start)),
                 **dict(root.attrs)) for start in range(0, formula.dim, widest)]


def cpu_kernel(root: Node, dtype: np.dtype, options: CompileOptions | None = None) -> CpuKernel | ColumnBlockKernel:
    # options=None keys the default options: hashing a CompileOptions costs more than the rest of the lookup
    return _loaded.get((root, dtype, options), lambda: _load_or_compile_blocks(root, np.dtype(dtype),
                                                                               options or _DEFAULT_OPTIONS))


def _load_or_compile_blocks(root: Node, dtype: np.dtype, options: CompileOptions) -> CpuKernel | ColumnBlockKernel:
    blocks = column_block_roots(root, WIDEST_OUTPUT)
    if blocks is None:
        return _load_or_compile(root, dtype, options)
    return ColumnBlockKernel(tuple(_load_or_compile(block, dtype, options) for block in blocks))


def cached_artifact(root: Node, dtype: np.dtype, options: CompileOptions, target_key: str, suffix: str,
                    build: Callable[[str], bytes]) -> tuple[str, bytes]:
    """(symbol, artifact) of reduction `root` for a target: from the on-disk cache (keyed by the keir IR, the
    options and the target), or `build(symbol)` stored there. The CPU's artifact is object code, the GPU's PTX."""
    keir_text = Compilation(Kernel("keir_kernel", root, DTYPES[dtype.name]), options).keir
    key = cache_key(keir_text, options, target_key)
    symbol = f"keir_{key[:24]}"
    artifact = cache.load(key, suffix)
    if artifact is None:
        artifact = build(symbol)
        cache.store(key, artifact, suffix)
    return symbol, artifact


def output_widths(root: Node) -> tuple[int, int]:
    """(floats, int64 indices) that reduction `root` writes per output row."""
    return reduction_output_widths(root.attr("kind"), root.args[0].dim, dict(root.attrs).get("k", 1))


def _load_or_compile(root: Node, dtype: np.dtype, options: CompileOptions) -> CpuKernel:
    from keir.compiler.codegen import host_target
    from keir.runtime.cpu_loader import load_symbol

    def build(symbol: str) -> bytes:
        return Compilation(Kernel(symbol, root, DTYPES[dtype.name]), options).object_code()

    symbol, object_code = cached_artifact(root, dtype, options, host_target().key, ".o", build)
    floats, indices = output_widths(root)
    return CpuKernel(load_symbol(object_code, symbol), kernel_operands(root), floats, indices, root.attr("axis"), dtype,
                     options.block_sparse)
