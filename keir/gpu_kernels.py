"""From a reduction node to a launchable GPU kernel: in-process table, on-disk PTX cache, or a fresh compile.

As for the CPU (keir.kernels): (node, dtype, options, arch) identifies a kernel in this process; a miss prints
the keir IR and looks for `<key>.ptx` in the artifact cache, keyed with the arch and PTX ISA version; only a
miss there imports MLIR and compiles. The driver JIT-compiles the PTX when a device first loads it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keir.compiler.codegen_gpu import gpu_to_ptx, nvptx_target
from keir.compiler.kernel import DTYPES, Kernel
from keir.compiler.lower_gpu import GpuKernelText, j_splits, lower_gpu, row_bytes, rows_per_thread
from keir.compiler.operands import kernel_operands
from keir.compiler.pipeline import Compilation, CompileOptions
from keir.compiler.reductions import ReductionOptions
from keir.dialect.node import Node
from keir.kernels import KernelTable, cached_artifact, column_block_roots, output_widths
from keir.runtime.column_blocks import ColumnBlockKernel
from keir.runtime.cuda import GpuKernel, cuda_available, device

# The arch `.ir("ptx")` shows where no CUDA device says otherwise (Ampere, the oldest arch the tests assemble for).
DEFAULT_ARCH = "sm_80"

_loaded = KernelTable()
_column_blocks: dict[tuple, ColumnBlockKernel] = {}  # (root, dtype, options, device) of a wide sum -> its blocks


def default_arch(device_index: int | None = None) -> str:
    """The arch of CUDA device `device_index` (default 0) where there is one, else DEFAULT_ARCH."""
    if device_index is None and not cuda_available():
        return DEFAULT_ARCH
    return device(device_index or 0).arch


def gpu_options(options: CompileOptions | None, arch: str) -> CompileOptions:
    """`options` with the GPU arch as target (the target is part of the cache key and of the stage 'ptx')."""
    nvptx_target(arch)  # validates the arch name
    return dataclasses.replace(options or CompileOptions(), target=arch)


def gpu_ptx(root: Node, dtype: np.dtype, options: CompileOptions | None = None, arch: str | None = None) -> str:
    """The PTX of reduction `root` for `arch` (default: see default_arch), compiled or read from the cache."""
    return gpu_kernel_for_arch(root, dtype, options, arch or default_arch()).ptx


# A GPU thread keeps its rows' output components in registers: a Gaussian times B of 64 columns takes 168 (no
# spill), of 128 columns all 255 and spills 384 bytes, of 256 columns 5.5 KB (ptxas, sm_90). A wider sum runs as
# kernels of this many columns each (keir.kernels.column_block_roots).
WIDEST_OUTPUT = 64


def gpu_kernel(root: Node, dtype: np.dtype, options: CompileOptions | None = None,
               device_index: int = 0) -> GpuKernel | ColumnBlockKernel:
    """The kernel for reduction `root` compiled for the arch of CUDA device `device_index` (for a sum wider than
    WIDEST_OUTPUT, the kernels of its column blocks)."""
    key = (root, np.dtype(dtype).name, options, device_index)
    found = _column_blocks.get(key)  # a wide sum's blocks, built once (their kernels are in _loaded)
    if found is not None:
        return found
    blocks = column_block_roots(root, WIDEST_OUTPUT)
    if blocks is None:
        return gpu_kernel_for_arch(root, dtype, options, device(device_index).arch)
    found = _column_blocks[key] = ColumnBlockKernel(
        tuple(gpu_kernel(block, dtype, options, device_index) for block in blocks))
    return found


def gpu_kernel_for_arch(root: Node, dtype: np.dtype, options: CompileOptions | None, arch: str) -> GpuKernel:
    options = gpu_options(options, arch)
    dtype = np.dtype(dtype)
    return _loaded.get((root, dtype.name, options, arch), lambda: _load_or_compile(root, dtype, options, arch))


def gpu_lowering(root: Node, dtype: np.dtype, options: CompileOptions, symbol: str) -> GpuKernelText:
    """Reduction `root` after the keir passes, lowered to a gpu.func named `symbol`."""
    optimized = Compilation(Kernel(symbol, root, DTYPES[np.dtype(dtype).name]), options).optimized
    return lower_gpu(optimized, kernel_operands(root), options.block_sparse, options.gpu_math)


def _load_or_compile(root: Node, dtype: np.dtype, options: CompileOptions, arch: str) -> GpuKernel:
    def build(symbol: str) -> bytes:
        return gpu_to_ptx(gpu_lowering(root, dtype, options, symbol).text, arch).encode()

    symbol, ptx = cached_artifact(root, dtype, options, nvptx_target(arch).key, ".ptx", build)
    operands = kernel_operands(root)
    floats, indices = output_widths(root)
    elem = DTYPES[dtype.name]
    return GpuKernel(ptx.decode(), symbol, arch, operands, floats, indices, root.attr("axis"), dtype,
                     row_bytes(operands, elem), options.block_sparse, rows_per_thread(root, elem, options.block_sparse),
                     j_splits(ReductionOptions.of(root), options.block_sparse))
