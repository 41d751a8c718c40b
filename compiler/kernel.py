"""A kernel: one reduction of a formula, with the float type it is compiled for."""

from __future__ import annotations

from dataclasses import dataclass

from keir.dialect.node import Node

DTYPES = {"float32": "f32", "float64": "f64"}


@dataclass(frozen=True)
class Kernel:
    """`result` is the returned node (a keir.reduce for a runnable kernel); `dtype` is "f32" or "f64"."""

    name: str
    result: Node
    dtype: str

    def __post_init__(self) -> None:
        if self.dtype not in ("f32", "f64"):
            raise TypeError(f"kernels are compiled for f32 or f64, not {self.dtype!r}")
