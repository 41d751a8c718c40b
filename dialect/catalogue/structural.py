"""The ops that are not computations on values: inputs, constants, the derivative operators (expanded into
plain ops by keir-differentiate and keir-trace before lowering) and the reduction."""

from __future__ import annotations

from typing import Any

from keir.dialect import derivatives as D
from keir.dialect.catalogue.record import Op
from keir.dialect.ops import (
    REDUCTION_KINDS,
    SUM_SCHEMES,
    SUM_TYPE_KINDS,
    DimensionError,
    reduction_output_widths,
    scalar,
)


def _leaf_dim(dims: tuple[int, ...], attrs: Any) -> int:
    dim = attrs["dim"]
    if not isinstance(dim, int) or dim < 1:
        raise DimensionError(f"a variable's dimension must be a positive integer, got {dim!r}")
    return dim


def _grad_dim(dims: tuple[int, ...], attrs: Any) -> int:
    f, x, e = dims
    if e != f:
        raise DimensionError(f"keir.grad: the cotangent has dimension {e}, but the formula has dimension {f}")
    return x


def _laplacian_dim(dims: tuple[int, ...], attrs: Any) -> int:
    if dims[0] != 1:
        raise DimensionError(f"keir.laplacian: the formula must be scalar (dimension 1), got dimension {dims[0]}")
    return 1


def _divergence_dim(dims: tuple[int, ...], attrs: Any) -> int:
    f, x = dims
    if f != x:
        raise DimensionError(f"keir.divergence: the formula has dimension {f} but the variable has dimension {x}")
    return 1


def _reduce_dim(dims: tuple[int, ...], attrs: Any) -> int:
    """The result holds the floats, then the indices, that each output row gets."""
    kind = attrs["kind"]
    if kind not in REDUCTION_KINDS:
        raise ValueError(f"keir.reduce: unknown reduction kind {kind!r}; known: {', '.join(REDUCTION_KINDS)}")
    if attrs["axis"] not in (0, 1):
        raise ValueError(f"keir.reduce: axis must be 0 (over i) or 1 (over j), got {attrs['axis']!r}")
    k = attrs.get("k", 1)
    if not isinstance(k, int) or k < 1 or ("k" in attrs) != kind.endswith("kmin"):
        raise ValueError(f"keir.reduce: kind {kind!r} {'needs' if kind.endswith('kmin') else 'takes no'} "
                         f"a positive integer k, got {attrs.get('k')!r}")
    if kind in ("logsumexp_weight", "sumsoftmaxweight") and dims[0] < 2:
        raise DimensionError(f"keir.reduce: kind {kind!r} reduces concat(f, weight); got dimension {dims[0]}")
    scheme = attrs.get("sum_scheme", "direct_sum")
    if scheme not in SUM_SCHEMES:
        raise ValueError(f"keir.reduce: sum_scheme must be one of {SUM_SCHEMES}, got {scheme!r}")
    if scheme != "direct_sum" and kind not in SUM_TYPE_KINDS:
        raise ValueError(f"keir.reduce: sum_scheme {scheme!r} applies to the sum-type reductions "
                         f"({', '.join(SUM_TYPE_KINDS)}), not to {kind!r}")
    if attrs.get("dtype_acc", "float64") != "float64":
        raise ValueError(f"keir.reduce: dtype_acc may only be 'float64', got {attrs.get('dtype_acc')!r}")
    if "dtype_acc" in attrs and kind not in SUM_TYPE_KINDS:
        raise ValueError(f"keir.reduce: dtype_acc applies to the sum-type reductions ({', '.join(SUM_TYPE_KINDS)}), "
                         f"not to {kind!r}")
    floats, indices = reduction_output_widths(kind, dims[0], k)
    return floats + indices


_EXPANDED_BY_TRACE = "keir-trace expands it into plain ops; run keir-trace before differentiating through it"
_EXPANDED = "keir-differentiate and keir-trace expand it into plain ops before lowering"

OPS = [
    Op("var", (), _leaf_dim, "an input: i-indexed, j-indexed or a parameter", attrs=("index", "category", "dim"),
       vjp=D.leaf, lowered_by="the kernel's operand loads (keir.compiler.lower_cpu, lower_gpu)"),
    Op("constant", (), scalar, "a scalar constant", attrs=("value",), vjp=D.leaf,
       lower=lambda b, node, xs: [b.const(node.attr("value"))]),
    Op("grad", ("f", "x", "e"), _grad_dim, "the gradient of f with respect to variable x, contracted with e: "
       "e . df/dx", keops="Grad", method="grad",
       not_differentiable="keir-differentiate expands a keir.grad (innermost first) before differentiating the "
       "formula around it, so an unexpanded one is never differentiated", lowered_by=_EXPANDED),
    Op("laplacian", ("f", "x"), _laplacian_dim, "the Laplacian of scalar f with respect to variable x",
       keops="Laplacian", method="laplacian", not_differentiable=_EXPANDED_BY_TRACE, lowered_by=_EXPANDED),
    Op("divergence", ("f", "x"), _divergence_dim, "the divergence of f with respect to variable x",
       keops="Divergence", method="divergence", not_differentiable=_EXPANDED_BY_TRACE, lowered_by=_EXPANDED),
    Op("trace", ("f", "x"), _divergence_dim, "the trace of the map v -> f(v), f linear in the variable v",
       keops="TraceOperator", method="trace_operator", not_differentiable=_EXPANDED_BY_TRACE,
       lowered_by=_EXPANDED),
    Op("reduce", ("x",), _reduce_dim, "a reduction over i (axis 0) or j (axis 1)", attrs=("kind", "axis"),
       optional_attrs=("k", "sum_scheme", "dtype_acc"), vjp=D.reduce_vjp,
       lowered_by="the reduction loop around the formula (keir.compiler.reductions)"),
]
