"""keir on NumPy arrays: `from keir.numpy import LazyTensor, Vi, Vj, Pm`."""

from __future__ import annotations

from keir.frontend import NAMES, make_frontend
from keir.lazy import ComplexLazyTensor, LazyTensor

__all__ = ["LazyTensor", "ComplexLazyTensor", *NAMES]

Vi, Vj, Pm, Genred, KernelSolve, generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = make_frontend(
    LazyTensor, __name__)
