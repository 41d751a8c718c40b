"""Arithmetic: + - * /, negation, squares, integer powers, absolute values, square roots."""

from __future__ import annotations

from typing import Any

import numpy as np

from keir.dialect import algebra as A
from keir.dialect import derivatives as D
from keir.dialect import linearity as L
from keir.dialect.catalogue.lowering import integer_power, one, zero
from keir.dialect.catalogue.record import Op
from keir.dialect.node import Node, constant, make
from keir.dialect.ops import DimensionError, broadcast, same

BINARY = ("x", "y")


def _div_vjp(y: Node, e: Node, a: Node, b: Node) -> tuple[Node, Node]:
    # d(a/b) = da/b - (a/b) db/b: the quotient e/b serves both operands.
    quotient = A.div(e, b)
    return quotient, A.neg(A.mul(quotient, y))


def _pow_dim(dims: tuple[int, ...], attrs: Any) -> int:
    if not isinstance(attrs["exponent"], int):
        raise DimensionError(f"keir.pow: the exponent must be an integer, got {attrs['exponent']!r}")
    return dims[0]


def _pow_vjp(y: Node, e: Node) -> tuple[Node, ...]:
    (a,) = y.args
    n = y.attr("exponent")
    return (A.mul(A.mul(constant(float(n)), A.power(a, n - 1)), e),)


def _rsqrt(b: Any, node: Node, x: str) -> str:
    # KeOps' convention: rsqrt(0) = 0
    return b.select(b.cmp("oeq", x, zero(b)), zero(b), b.div(one(b), b.math("sqrt", x)))


def _reference_rsqrt(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(a == 0, 0.0, 1 / np.sqrt(a))


OPS = [
    Op("add", BINARY, broadcast("add"), "a + b (a dimension-1 operand broadcasts)", elementwise=True,
       commutative=True, keops="Add", reference=np.add, build=A.add,
       vjp=D.binary(lambda y, e, a, b: (e, e)),
       linearity=L.Linearity((0, 1), True, lambda n, W, k, d: L.elementwise_factor(n, W, k, d, constant(1.0))),
       lower=lambda b, node, x, y: b.add(x, y)),
    Op("sub", BINARY, broadcast("sub"), "a - b", elementwise=True, keops="Subtract", reference=np.subtract,
       build=A.sub, vjp=D.binary(lambda y, e, a, b: (e, A.neg(e))),
       linearity=L.Linearity((0, 1), True, lambda n, W, k, d: L.elementwise_factor(
           n, W, k, d, constant(1.0 if k == 0 else -1.0))),
       lower=lambda b, node, x, y: b.sub(x, y)),
    Op("mul", BINARY, broadcast("mul"), "a * b", elementwise=True, commutative=True, keops="Mult",
       reference=np.multiply, build=A.mul, vjp=D.binary(lambda y, e, a, b: (A.mul(e, b), A.mul(e, a))),
       linearity=L.Linearity((0, 1), False, lambda n, W, k, d: L.elementwise_factor(n, W, k, d, n.args[1 - k])),
       lower=lambda b, node, x, y: b.mul(x, y)),
    Op("div", BINARY, broadcast("div"), "a / b", elementwise=True, keops="Divide", reference=np.divide,
       build=A.div, vjp=D.binary(_div_vjp),
       # a / b: linear in a for a fixed b
       linearity=L.Linearity((0,), False, lambda n, W, k, d: L.elementwise_factor(
           n, W, 0, d, A.div(constant(1.0), n.args[1]))),
       lower=lambda b, node, x, y: b.div(x, y)),
    Op("neg", ("x",), same, "-a", elementwise=True, keops="Minus", reference=np.negative, build=A.neg,
       vjp=lambda y, e: (A.neg(e),), linearity=L.Linearity((0,), True, lambda n, W, k, d: L.negate(W)),
       lower=lambda b, node, x: b.neg(x)),
    Op("square", ("x",), same, "a * a", elementwise=True, keops="Square", method="square",
       reference=np.square, build=A.square, vjp=lambda y, e: (A.mul(A.mul(constant(2.0), e), y.args[0]),),
       lower=lambda b, node, x: b.mul(x, x)),
    Op("pow", ("x",), _pow_dim, "a ** n, n an integer", attrs=("exponent",), elementwise=True, keops="Pow",
       reference=lambda a, exponent: np.power(a, float(exponent)),
       build=lambda a, exponent: A.power(a, exponent), vjp=_pow_vjp,
       lower=lambda b, node, x: integer_power(b, x, node.attr("exponent"))),
    Op("abs", ("x",), same, "|a|", elementwise=True, keops="Abs", method="abs", reference=np.abs,
       build=A.absolute,
       vjp=lambda y, e: (A.mul(e, make("sign", y.args[0])),),  # sign(0) = 0: 0 at the kink, as KeOps and torch
       lower=lambda b, node, x: b.math("absf", x)),
    # KeOps' conventions: sqrt' = rsqrt / 2 and rsqrt' = -rsqrt^3 / 2, with rsqrt(0) = 0, so both derivatives
    # are 0 at 0 (a Laplace kernel exp(-|x - y|) has a finite gradient where x = y).
    Op("sqrt", ("x",), same, "sqrt(a)", elementwise=True, keops="Sqrt", method="sqrt", reference=np.sqrt,
       domain=(0.0, 5.0), build=A.sqrt,
       vjp=lambda y, e: (A.mul(A.mul(constant(0.5), e), A.rsqrt(y.args[0])),),
       lower=lambda b, node, x: b.math("sqrt", x)),
    Op("rsqrt", ("x",), same, "1/sqrt(a), 0 at 0", elementwise=True, keops="Rsqrt", method="rsqrt",
       reference=_reference_rsqrt, domain=(0.05, 5.0), build=A.rsqrt,
       vjp=lambda y, e: (A.mul(A.mul(constant(-0.5), e), A.power(y, 3)),), lower=_rsqrt),
]
