"""LazyTensor's reductions (sum, min, max, arg-, K-, log-sum-exp, softmax weights, matrix products, solve), as a
mixin of keir.lazy.LazyTensor: each builds a keir.reduction.Reduction over the formula."""

from __future__ import annotations

import numbers
from typing import Any

from keir.dialect.ops import DimensionError
from keir.ranges import as_ranges
from keir.reduction import Reduction


def _axis(axis: int | None, dim: int | None) -> int | None:
    """pykeops' `dim` is an alias of `axis` (torch spells it dim, NumPy axis); dim wins when both are given."""
    return axis if dim is None else dim


# pykeops' reduction names (LazyTensor.reduction, Genred's reduction_op) -> keir.reduce kinds
REDUCTION_OPS = {
    "Sum": "sum", "Min": "min", "Max": "max", "ArgMin": "argmin", "ArgMax": "argmax",
    "Min_ArgMin": "min_argmin", "Max_ArgMax": "max_argmax", "KMin": "kmin", "ArgKMin": "argkmin",
    "KMin_ArgKMin": "kmin_argkmin", "LogSumExp": "logsumexp", "SumSoftMaxWeight": "sumsoftmaxweight",
}


def _positive(k: Any) -> int:
    if not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"K must be a positive integer, got {k!r}")
    return int(k)


class Reductions:
    __slots__ = ()

    def solve(self, other: Any, var: Any = None, call: bool = True, alpha: float = 1e-10, eps: float = 1e-6,
              max_iterations: int | None = None, **options: Any) -> Any:
        """The solution a of (alpha Id + K) a = other, K = self a symmetric scalar kernel matrix, or with
        `var` (a symbolic j-variable) the formula self, linear in var; by conjugate gradient (each step one
        keir reduction, with pykeops' reduction options: backend, dtype_acc, sum_scheme, ...); differentiable
        with torch. See keir.solve."""
        from keir.solve import solve

        return solve(self, other, var=var, call=call, alpha=alpha, eps=eps, max_iterations=max_iterations,
                     **options)

    def sum(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        """The sum over i or j (axis nb / nb + 1: computed now, or a callable `Reduction` if call=False), or
        over the vector's components (axis -1, the default: a LazyTensor)."""
        return self._vector_or_reduction("sum", _axis(axis, dim), call, options)

    def min(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        """The minimum over i or j, or the smallest component (axis -1, the default)."""
        return self._vector_or_reduction("min", _axis(axis, dim), call, options)

    def max(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        return self._vector_or_reduction("max", _axis(axis, dim), call, options)

    def argmin(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        return self._vector_or_reduction("argmin", _axis(axis, dim), call, options)

    def argmax(self, axis: int | None = -1, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        return self._vector_or_reduction("argmax", _axis(axis, dim), call, options)

    # The reductions only: axis nb (over i) or nb + 1 (over j). pykeops requires the axis; keir takes j by
    # default.
    def sum_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                      **options: Any) -> Any:
        return self._reduce("sum", _axis(axis, dim), call, options)

    def min_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                      **options: Any) -> Any:
        return self._reduce("min", _axis(axis, dim), call, options)

    def max_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                      **options: Any) -> Any:
        return self._reduce("max", _axis(axis, dim), call, options)

    def argmin_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                         **options: Any) -> Any:
        return self._reduce("argmin", _axis(axis, dim), call, options)

    def argmax_reduction(self, axis: int | None = None, dim: int | None = None, call: bool = True,
                         **options: Any) -> Any:
        return self._reduce("argmax", _axis(axis, dim), call, options)

    def min_argmin(self, axis: int | None = None, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        """(values, int64 indices) of the minimum over i or j."""
        return self._reduce("min_argmin", _axis(axis, dim), call, options)

    def max_argmax(self, axis: int | None = None, dim: int | None = None, call: bool = True, **options: Any) -> Any:
        return self._reduce("max_argmax", _axis(axis, dim), call, options)

    def Kmin(self, K: int, axis: int | None = None, dim: int | None = None, call: bool = True,  # noqa: N802,N803
             **options: Any) -> Any:
        """The K smallest values over i or j, sorted: shape (rows, K), or (rows, K, D) for a vector formula."""
        return self._reduce("kmin", _axis(axis, dim), call, {**options, "k": _positive(K)})

    def argKmin(self, K: int, axis: int | None = None, dim: int | None = None, call: bool = True,  # noqa: N802,N803
                **options: Any) -> Any:
        """The int64 indices of the K smallest values (ties: smallest index first); -1 where N < K."""
        return self._reduce("argkmin", _axis(axis, dim), call, {**options, "k": _positive(K)})

    def Kmin_argKmin(self, K: int, axis: int | None = None, dim: int | None = None, call: bool = True,  # noqa: N802,N803
                     **options: Any) -> Any:
        return self._reduce("kmin_argkmin", _axis(axis, dim), call, {**options, "k": _positive(K)})

    def logsumexp(self, axis: int | None = None, dim: int | None = None, weight: Any = None, call: bool = True,
                  **options: Any) -> Any:
        """log sum exp(f) over i or j, with an online maximum (never overflows); with `weight` g (a LazyTensor
        or array indexed like the reduced variable): log sum exp(f) g. pykeops also spells weight `other`."""
        weight = options.pop("other", None) if weight is None else weight
        if weight is None:
            return self._reduce("logsumexp", _axis(axis, dim), call, options)
        return self._weighted("logsumexp_weight", _axis(axis, dim), weight, call, options)

    def sumsoftmaxweight(self, weight: Any, axis: int | None = None, dim: int | None = None, call: bool = True,
                         **options: Any) -> Any:
        """sum exp(f) g / sum exp(f) over i or j (a softmax-weighted sum), f scalar."""
        return self._weighted("sumsoftmaxweight", _axis(axis, dim), weight, call, options)

    def __min__(self, **kwargs: Any) -> Any:  # pykeops' aliases
        return self.min(**kwargs)

    def __max__(self, **kwargs: Any) -> Any:
        return self.max(**kwargs)

    Kmin_reduction = Kmin  # noqa: N815 (pykeops' names)
    argKmin_reduction = argKmin  # noqa: N815
    Kmin_argKmin_reduction = Kmin_argKmin  # noqa: N815
    min_argmin_reduction = min_argmin
    max_argmax_reduction = max_argmax
    logsumexp_reduction = logsumexp
    sumsoftmaxweight_reduction = sumsoftmaxweight

    def _weighted(self, kind: str, axis: int | None, weight: Any, call: bool, options: dict[str, Any]) -> Any:
        if self.node.dim != 1:
            raise DimensionError(f"{kind} needs a scalar formula (dimension 1), got dimension {self.node.dim}")
        index_axis = self._index_axis(axis, kind)
        if self.adapter.is_array(weight) and len(weight.shape) == 2:  # rows of the reduced variable
            weight = type(self)(weight, axis=index_axis)
        return self.concat(weight)._reduce(kind, axis, call, options)

    def _vector_or_reduction(self, kind: str, axis: int | None, call: bool, options: dict[str, Any]) -> Any:
        if axis == -1 or axis == self.nbatchdims + 2:  # the vector dimension
            if options.pop("keepdim", True) is not True:  # the result is a LazyTensor of dimension 1
                raise ValueError(f"{kind} over the vector dimension keeps it (dimension 1): keepdim=False "
                                 "is not supported")
            return self._unary(kind)
        return self._reduce(kind, axis, call, options)

    def _index_axis(self, axis: int | None, kind: str) -> int:
        """0 (over i) or 1 (over j) from pykeops' axis, which counts the batch dimensions (None: over j)."""
        if axis is None:
            return 1
        batch = self.nbatchdims
        if axis - batch not in (0, 1):
            raise ValueError(f"{kind}: a reduction's axis is {batch} (over i) or {batch + 1} (over j), got {axis}"
                             + (" (-1 is the vector dimension, which this reduction does not take)"
                                if axis == -1 else ""))
        return axis - batch

    def __matmul__(self, v: Any, **options: Any) -> Any:
        """K @ v: sum_j K_ij v_j for a scalar K; v of shape (N,) (the result has shape (M,)), (N, C), or with
        batch dimensions (..., N, C), as in pykeops. `K.__matmul__(v, backend=...)` passes options on."""
        if self.node.dim != self.matmul_kernel_dim:
            raise DimensionError(f"K @ b needs a scalar kernel K (dimension {self.matmul_kernel_dim}), got dimension "
                                 f"{self.node.dim}")
        if isinstance(v, Reductions):
            product = self * v
            return product.sum(product.nbatchdims + 1, **options)
        if not self.adapter.is_array(v):
            raise TypeError(f"K @ b needs an array b, got {type(v).__name__}")
        shape = tuple(v.shape)
        if len(shape) == 1:  # a vector: (1, N, 1), a j-variable of dimension 1
            columns = self.real_class(v.reshape(1, shape[0], 1))  # complex if v is
        else:  # (..., N, C) -> (..., 1, N, C): a j-variable, with the batch dimensions of v
            columns = self.real_class(v.reshape(shape[:-2] + (1,) + shape[-2:]))
        product = self * columns
        out = product.sum(product.nbatchdims + 1, **options)
        return out.reshape(-1) if len(shape) == 1 else out

    def matvec(self, v: Any) -> Any:
        """self @ v, for scipy.sparse.linalg.aslinearoperator(K) (with K.shape and K.dtype)."""
        return self @ v

    def rmatvec(self, v: Any) -> Any:
        """self.T @ v, the transposed product (scipy's rmatvec)."""
        return self.T @ v

    def reduction(self, reduction_op: str, other: Any = None, opt_arg: int | None = None, axis: int | None = None,
                  dim: int | None = None, call: bool = True, is_complex: bool | None = None, **options: Any) -> Any:
        """pykeops' reduction by name (REDUCTION_OPS: "Sum", "ArgKMin", "LogSumExp", ...): `opt_arg` is K for the
        K-min family, `other` the weight of "LogSumExp" (optional) and "SumSoftMaxWeight" (required)."""
        if is_complex and not self.is_complex:
            raise ValueError("is_complex=True needs a complex LazyTensor (LazyTensor of a complex array)")
        if reduction_op not in REDUCTION_OPS:
            raise ValueError(f"unknown reduction_op {reduction_op!r}; known: {', '.join(REDUCTION_OPS)}")
        kind, axis = REDUCTION_OPS[reduction_op], _axis(axis, dim)
        if kind.endswith("kmin"):
            if opt_arg is None:
                raise ValueError(f"reduction {reduction_op} needs opt_arg = K")
            options["k"] = _positive(opt_arg)
        elif opt_arg is not None:
            raise ValueError(f"reduction {reduction_op} takes no opt_arg, got {opt_arg!r}")
        if kind == "sumsoftmaxweight" and other is None:
            raise ValueError("SumSoftMaxWeight needs the weight (other)")
        if other is not None:
            weighted = {"logsumexp": "logsumexp_weight", "sumsoftmaxweight": "sumsoftmaxweight"}
            if kind not in weighted:
                raise ValueError(f"reduction {reduction_op} takes no weight (other)")
            return self._weighted(weighted[kind], axis, other, call, options)
        return self._reduce(kind, axis, call, options)

    def _reduce(self, kind: str, axis: int | None, call: bool, options: dict[str, Any]) -> Any:
        if self.is_complex and kind != "sum":
            raise TypeError(f"a {kind} reduction is not defined for complex values (they have no order); reduce "
                            ".real, .imag or abs() of the formula, or sum it")
        index_axis = self._index_axis(axis, kind)
        options.pop("keepdim", None)  # a reduction's result is (*batch, rows, D) either way, as in pykeops
        if options.get("ranges") is None:
            options["ranges"] = self.ranges
        reduction = Reduction(self, kind, index_axis, **options)
        return reduction() if call and not reduction.symbolic else reduction

    @property
    def ranges(self) -> Any:
        """pykeops' block-sparse ranges (keir.ranges), used by this LazyTensor's reductions and carried to the
        formulas built from it; None: dense. Checked when set."""
        return getattr(self, "_ranges", None)

    @ranges.setter
    def ranges(self, value: Any) -> None:
        self._ranges = as_ranges(value)
