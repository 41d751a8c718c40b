"""A sum with many output components run as several kernels, each computing a block of its columns.

keir.kernels and keir.gpu_kernels split a sum whose output is wider than their backend keeps in registers
(`column_block_roots`); this runs the blocks' kernels with the same call and puts their outputs side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ColumnBlockKernel:
    """Kernels of consecutive column blocks of one sum reduction, called like a CpuKernel or a GpuKernel."""

    blocks: tuple[Any, ...]

    def __call__(self, *args: Any, **kwargs: Any) -> list[Any]:
        parts = [kernel(*args, **kwargs)[0] for kernel in self.blocks]
        if isinstance(parts[0], np.ndarray):
            return [np.concatenate(parts, axis=-1)]
        import torch  # torch CUDA tensors in, torch CUDA tensors out

        return [torch.cat(parts, dim=-1)]
