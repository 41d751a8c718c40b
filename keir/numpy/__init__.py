"""keir on NumPy arrays: `from keir.numpy import LazyTensor, Vi, Vj, Pm`."""

from __future__ import annotations

from keir.frontend import NAMES, make_frontend
from keir.lazy import LazyTensor

__all__ = ["LazyTensor", *NAMES]

Vi, Vj, Pm, Genred, KernelSolve, generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = make_frontend(
    LazyTensor, __name__)
