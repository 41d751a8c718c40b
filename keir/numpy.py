"""keir on NumPy arrays: `from keir.numpy import LazyTensor, Vi, Vj, Pm`."""

from __future__ import annotations

from keir import genred, lazy
from keir.lazy import LazyTensor

__all__ = ["LazyTensor", "Vi", "Vj", "Pm", "Genred", "KernelSolve", "generic_sum", "generic_logsumexp",
           "generic_argmin", "generic_argkmin"]


Vi, Vj, Pm = lazy.variable_constructors(LazyTensor, __name__)


class Genred(genred.Genred):
    __doc__ = genred.Genred.__doc__
    lazy_class = LazyTensor


class KernelSolve(genred.KernelSolve):
    __doc__ = genred.KernelSolve.__doc__
    genred_class = Genred


generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = genred.make_generic(Genred)
