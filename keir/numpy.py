"""keir on NumPy arrays: `from keir.numpy import LazyTensor, Vi, Vj, Pm`."""

from __future__ import annotations

from typing import Any

from keir import genred
from keir.lazy import LazyTensor

__all__ = ["LazyTensor", "Vi", "Vj", "Pm", "Genred", "generic_sum", "generic_logsumexp", "generic_argkmin"]


def Vi(x: Any) -> LazyTensor:  # noqa: N802 (pykeops' name)
    """An i-indexed variable: x has shape (M, D)."""
    return LazyTensor(x, axis=0)


def Vj(x: Any) -> LazyTensor:  # noqa: N802
    """A j-indexed variable: x has shape (N, D)."""
    return LazyTensor(x, axis=1)


def Pm(x: Any) -> LazyTensor:  # noqa: N802
    """A parameter: x has shape (D,), or is a Python number (a parameter of dimension 1)."""
    return LazyTensor.parameter(x)


class Genred(genred.Genred):
    __doc__ = genred.Genred.__doc__
    lazy_class = LazyTensor


generic_sum, generic_logsumexp, generic_argkmin = genred.make_generic(Genred)
