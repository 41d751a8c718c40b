"""A reduction of a LazyTensor: validation of sizes, the compiled kernel, the call, and IR inspection."""

from __future__ import annotations

from typing import Any

import numpy as np

from keir import kernels
from keir.compiler.pipeline import CompileOptions
from keir.dialect.node import make

_LETTER = {"i": "Vi (i-indexed)", "j": "Vj (j-indexed)"}


class Reduction:
    """`Reduce_{axis} formula`, ready to run. Returned by `.sum(axis=..., call=False)`; call it to compute."""

    def __init__(self, lazy: Any, kind: str, axis: int, threads: int | None = None):
        self.lazy = lazy
        self.adapter = lazy.adapter
        self.axis = axis
        self.threads = threads
        self.root = make("reduce", lazy.node, kind=kind, axis=axis)
        self.dtype = np.dtype(lazy.dtype) if lazy.dtype else None
        for category in ("i", "j"):
            if category not in lazy.categories:
                raise ValueError(
                    f"a reduction needs a {_LETTER[category]} variable to know its "
                    f"{'number of rows M' if category == 'i' else 'number of columns N'}; this formula has none"
                )
        self.sizes = {c: self._size(c) for c in ("i", "j")}

    def _size(self, category: str) -> int:
        shapes = [tuple(a.shape) for a, c in zip(self.lazy.arrays, self.lazy.categories) if c == category]
        sizes = {shape[0] for shape in shapes}
        if len(sizes) != 1:
            name = "Vi" if category == "i" else "Vj"
            raise ValueError(f"the {name} variables of one formula must have the same length; got shapes {shapes}")
        return sizes.pop()

    def compilation(self, options: CompileOptions | None = None):
        return kernels.compilation(self.root, self.dtype, options)

    def ir(self, stage: str = "keir") -> str:
        """The IR of this reduction at a stage: "keir", "opt", "loops" or "llvm"."""
        return self.compilation().stage(stage)

    def __call__(self) -> Any:
        kernel = kernels.cpu_kernel(self.root, self.dtype)
        arrays = [
            np.array([a], dtype=self.dtype) if isinstance(a, float) else self.adapter.to_numpy(a)
            for a in self.lazy.arrays
        ]
        out = kernel(arrays, self.sizes["i"], self.sizes["j"], self.threads)
        like = self.lazy.arrays[0]
        return self.adapter.result(out, like)
