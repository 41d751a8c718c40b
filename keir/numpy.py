"""keir on NumPy arrays: `from keir.numpy import LazyTensor, Vi, Vj, Pm`."""

from __future__ import annotations

from typing import Any

from keir import genred
from keir.lazy import LazyTensor

__all__ = ["LazyTensor", "Vi", "Vj", "Pm", "Genred", "KernelSolve", "generic_sum", "generic_logsumexp",
           "generic_argmin", "generic_argkmin"]


def Vi(x: Any, dim: int | None = None) -> LazyTensor:  # noqa: N802 (pykeops' name)
    """An i-indexed variable: x has shape (M, D); or Vi(index, dim), a symbolic variable given at call time."""
    return LazyTensor.variable(x, dim, 0)


def Vj(x: Any, dim: int | None = None) -> LazyTensor:  # noqa: N802
    """A j-indexed variable: x has shape (N, D); or Vj(index, dim), a symbolic variable."""
    return LazyTensor.variable(x, dim, 1)


def Pm(x: Any, dim: int | None = None) -> LazyTensor:  # noqa: N802
    """A parameter: x has shape (D,), or is a number or a list of numbers; or Pm(index, dim), a symbolic one."""
    return LazyTensor.variable(x, dim, 2)


class Genred(genred.Genred):
    __doc__ = genred.Genred.__doc__
    lazy_class = LazyTensor


class KernelSolve(genred.KernelSolve):
    __doc__ = genred.KernelSolve.__doc__
    genred_class = Genred


generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = genred.make_generic(Genred)
