"""Ops over a vector's components: sums, dot products, squared distances, components, concatenation, the
extreme component and its index, one-hot vectors."""

from __future__ import annotations

from typing import Any

import numpy as np

from keir.dialect import algebra as A
from keir.dialect import derivatives as D
from keir.dialect import linearity as L
from keir.dialect.catalogue.lowering import arg_extreme, extreme, sum_of_products, tree_sum
from keir.dialect.catalogue.record import Op
from keir.dialect.node import Node, constant, make
from keir.dialect.ops import DimensionError, equal_to_scalar, scalar


def _elem_dim(dims: tuple[int, ...], attrs: Any) -> int:
    k = attrs["index"]
    if not isinstance(k, int) or not 0 <= k < dims[0]:
        raise DimensionError(f"keir.elem: index {k!r} is out of range for a vector of dimension {dims[0]}")
    return 1


def _extract_dim(dims: tuple[int, ...], attrs: Any) -> int:
    start, length = attrs["start"], attrs["length"]
    if not (isinstance(start, int) and isinstance(length, int)) or start < 0 or length < 1 or (
        start + length > dims[0]
    ):
        raise DimensionError(
            f"keir.extract: components [{start}, {start}+{length}) do not fit a vector of dimension {dims[0]}"
        )
    return length


def _one_hot_dim(dims: tuple[int, ...], attrs: Any) -> int:
    if dims[0] != 1:
        raise DimensionError(f"keir.one_hot: the operand must be scalar (dimension 1), got dimension {dims[0]}")
    size = attrs["dim"]
    if not isinstance(size, int) or size < 1:
        raise DimensionError(f"keir.one_hot: dim must be a positive integer, got {size!r}")
    return size


def _sqdist_vjp(y: Node, e: Node) -> tuple[Node, ...]:
    a, b = y.args
    twice = A.mul(A.mul(constant(2.0), e), A.sub(a, b))
    return twice, A.neg(twice)


def _concat_vjp(y: Node, e: Node) -> tuple[Node, ...]:
    a, b = y.args
    return A.extract(e, 0, a.dim), A.extract(e, a.dim, b.dim)


def _selected(index_op: str) -> Any:
    """min/max of a's components: the cotangent goes to the selected component (the first on ties)."""

    def vjp(y: Node, e: Node) -> tuple[Node, ...]:
        (a,) = y.args
        return (A.mul(e, make("one_hot", make(index_op, a), dim=a.dim)),)

    return vjp


def _concat_transpose(node: Node, W: tuple, k: int, dim: int) -> list:
    first = node.args[0].dim
    return L.restrict_columns(W, 0, first) if k == 0 else L.restrict_columns(W, first, node.args[1].dim)


def _one_hot(b: Any, node: Node, operands: list[list[str]]) -> list[str]:
    rounded = b.math("roundeven", operands[0][0])
    return [b.select(b.cmp("oeq", rounded, b.const(float(k))), b.const(1.0), b.const(0.0)) for k in range(node.dim)]


def _reference_one_hot(a: np.ndarray, dim: int) -> np.ndarray:
    return (np.rint(a) == np.arange(dim)).astype(float)


OPS = [
    Op("sum", ("x",), scalar, "the sum of a's components", keops="Sum",
       reference=lambda a: a.sum(-1, keepdims=True), build=A.sum_, vjp=lambda y, e: (A.fit(e, y.args[0].dim),),
       linearity=L.Linearity((0,), True, lambda n, W, k, d: [L.Outer(L.column(W, d),
                                                                     A.fit(constant(1.0), n.args[0].dim))]),
       lower=lambda b, node, xs: [tree_sum(b, list(xs[0]))]),
    Op("dot", ("x", "y"), equal_to_scalar("dot"), "<a, b>", commutative=True, keops="Scalprod", method="dot",
       reference=lambda a, b: (a * b).sum(-1, keepdims=True), build=A.dot,
       vjp=lambda y, e: (A.mul(e, y.args[1]), A.mul(e, y.args[0])),
       linearity=L.Linearity((0, 1), False, lambda n, W, k, d: [L.Outer(L.column(W, d), n.args[1 - k])]),
       lower=lambda b, node, xs: [sum_of_products(b, xs[0], xs[1])]),
    Op("sqdist", ("x", "y"), equal_to_scalar("sqdist"), "|a - b|^2", commutative=True, keops="SqDist",
       method="sqdist", reference=lambda a, b: ((a - b) ** 2).sum(-1, keepdims=True), build=A.sqdist,
       vjp=_sqdist_vjp, lower=lambda b, node, xs: [sum_of_products(b, xs[0], xs[1], subtract=True)]),
    Op("sqnorm2", ("x",), scalar, "|a|^2", keops="SqNorm2", method="sqnorm2",
       reference=lambda a: (a * a).sum(-1, keepdims=True), build=A.sqnorm2,
       vjp=lambda y, e: (A.mul(A.mul(constant(2.0), e), y.args[0]),),
       lower=lambda b, node, xs: [sum_of_products(b, xs[0])]),
    Op("elem", ("x",), _elem_dim, "component k of a", attrs=("index",), keops="Elem", method="elem",
       reference=lambda a, index: a[..., index : index + 1], build=lambda a, index: A.elem(a, index),
       vjp=lambda y, e: (A.embed(e, y.attr("index"), y.args[0].dim),),
       linearity=L.Linearity((0,), True, lambda n, W, k, d: L.shift_columns(W, n.attr("index"), n.args[0].dim)),
       lower=lambda b, node, xs: [xs[0][node.attr("index")]]),
    Op("extract", ("x",), _extract_dim, "components start .. start+length-1 of a", attrs=("start", "length"),
       keops="Extract", method="extract", reference=lambda a, start, length: a[..., start : start + length],
       build=lambda a, start, length: A.extract(a, start, length),
       vjp=lambda y, e: (A.embed(e, y.attr("start"), y.args[0].dim),),
       linearity=L.Linearity((0,), True, lambda n, W, k, d: L.shift_columns(W, n.attr("start"), n.args[0].dim)),
       lower=lambda b, node, xs: list(xs[0][node.attr("start") : node.attr("start") + node.attr("length")])),
    Op("concat", ("x", "y"), lambda dims, attrs: dims[0] + dims[1], "(a, b) as one vector", keops="Concat",
       method="concat", reference=lambda a, b: np.concatenate([a, b], -1), build=A.concat, vjp=_concat_vjp,
       linearity=L.Linearity((0, 1), True, _concat_transpose), lower=lambda b, node, xs: list(xs[0]) + list(xs[1])),
    Op("min", ("x",), scalar, "the smallest component of a", keops="Min",
       reference=lambda a: a.min(-1, keepdims=True), vjp=_selected("argmin"),
       lower=lambda b, node, xs: [extreme(b, xs[0], "min")]),
    Op("max", ("x",), scalar, "the largest component of a", keops="Max",
       reference=lambda a: a.max(-1, keepdims=True), vjp=_selected("argmax"),
       lower=lambda b, node, xs: [extreme(b, xs[0], "max")]),
    Op("argmin", ("x",), scalar, "the index of the smallest component of a (first on ties), as a float",
       keops="ArgMin", reference=lambda a: a.argmin(-1)[..., None].astype(float), vjp=D.piecewise_constant,
       lower=lambda b, node, xs: [arg_extreme(b, xs[0], "olt")]),
    Op("argmax", ("x",), scalar, "the index of the largest component of a (first on ties), as a float",
       keops="ArgMax", reference=lambda a: a.argmax(-1)[..., None].astype(float), vjp=D.piecewise_constant,
       lower=lambda b, node, xs: [arg_extreme(b, xs[0], "ogt")]),
    Op("one_hot", ("x",), _one_hot_dim, "the one-hot vector of size dim of round(a)", attrs=("dim",),
       keops="OneHot", method="one_hot", reference=_reference_one_hot, domain=(-1.0, 6.0),
       vjp=D.piecewise_constant, lower=_one_hot),
]
