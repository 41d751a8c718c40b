"""keir on JAX arrays: `from keir.jax import LazyTensor, Vi, Vj, Pm`. jax.Array in, jax.Array out.

Every reduction is a `keir_reduce` primitive (keir.jax.primitive), eager or traced: under `jax.jit` it is an
XLA custom call into keir's compiled CPU kernel (keir.jax.ffi), and `jax.grad`, `jax.jvp` and `jax.vmap`
turn it into further keir reductions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keir import lazy, lazy_complex
from keir.frontend import NAMES, make_frontend
from keir.jax import primitive

__all__ = ["LazyTensor", "ComplexLazyTensor", *NAMES]


class JaxAdapter(lazy.ArrayAdapter):
    name = "jax"

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, jax.Array)  # tracers (under jit, grad, vmap) included

    def dtype_name(self, array: Any) -> str:
        return np.dtype(array.dtype).name

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def tracing(self, arrays: tuple) -> bool:
        """Always: eager calls run the same primitive as traced ones (one path, the XLA custom call)."""
        return True

    traced = staticmethod(primitive.reduce)

    def result(self, out: Any, like: Any) -> Any:
        return jnp.asarray(out)

    def as_array(self, obj: Any) -> Any:
        return jnp.asarray(obj)

    def is_complex_array(self, array: Any) -> bool:
        return jnp.iscomplexobj(array)

    def real_view(self, array: Any) -> Any:
        """A complex array (..., D) as interleaved (re, im) components (..., 2D); JAX differentiates it."""
        return jnp.stack([array.real, array.imag], -1).reshape(*array.shape[:-1], 2 * array.shape[-1])

    def complex_view(self, out: Any) -> Any:
        return jax.lax.complex(out[..., 0::2], out[..., 1::2])

    def to_float32(self, array: Any) -> Any:
        return array.astype(jnp.float32)

    def rounded(self, out: Any, dtype: str) -> Any:
        return out.astype(dtype) if jnp.issubdtype(out.dtype, jnp.floating) else out


class LazyTensor(lazy.LazyTensor):
    __slots__ = ()
    adapter = JaxAdapter()


class ComplexLazyTensor(lazy_complex.ComplexFormulas, LazyTensor):
    """A formula of complex values: LazyTensor(complex array) makes one."""

    __slots__ = ()


LazyTensor.real_class = ComplexLazyTensor.real_class = LazyTensor
LazyTensor.complex_class = ComplexLazyTensor.complex_class = ComplexLazyTensor


Vi, Vj, Pm, Genred, KernelSolve, generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = make_frontend(
    LazyTensor, __name__)
