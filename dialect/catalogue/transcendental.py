"""Elementary functions: exp, log, the trigonometric functions and their inverses, tanh, erf, x log x, sin(x)/x.

Their lowerings call the vectorised routines of `keir.compiler.mathlib` by name (b.routine); the accuracy
of each is measured in tests/compiler/lowering/test_mathlib.py."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from keir.dialect import algebra as A
from keir.dialect import derivatives as D
from keir.dialect.catalogue.lowering import one, zero
from keir.dialect.catalogue.record import Op
from keir.dialect.node import Node, constant, make
from keir.dialect.ops import broadcast, same


def _one_minus_square(a: Node) -> Node:
    return A.sub(constant(1.0), A.square(a))


def _atan2_vjp(y: Node, e: Node, a: Node, b: Node) -> tuple[Node, Node]:
    # atan2(a, b) = the angle of (b, a): d = (b da - a db) / (a^2 + b^2)
    scaled = A.div(e, A.add(A.square(a), A.square(b)))
    return A.mul(scaled, b), A.neg(A.mul(scaled, a))


def _routine(name: str) -> Any:
    return lambda b, node, *xs: b.routine(name, *xs)


def _xlogx(a: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.where(a == 0, 0.0, a * np.log(a))


def _sinxdivx(a: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.where(a == 0, 1.0, np.sin(a) / a)


OPS = [
    Op("exp", ("x",), same, "exp(a)", elementwise=True, keops="Exp", method="exp", reference=np.exp,
       build=A.exp, vjp=lambda y, e: (A.mul(e, y),), lower=_routine("exp")),
    Op("log", ("x",), same, "log(a)", elementwise=True, keops="Log", method="log", reference=np.log,
       domain=(0.05, 5.0), build=A.log, vjp=lambda y, e: (A.div(e, y.args[0]),), lower=_routine("log")),
    Op("sin", ("x",), same, "sin(a)", elementwise=True, keops="Sin", method="sin", reference=np.sin,
       vjp=lambda y, e: (A.mul(e, make("cos", y.args[0])),),
       lower=_routine("sin")),
    Op("cos", ("x",), same, "cos(a)", elementwise=True, keops="Cos", method="cos", reference=np.cos,
       vjp=lambda y, e: (A.neg(A.mul(e, make("sin", y.args[0]))),),
       lower=_routine("cos")),
    Op("asin", ("x",), same, "arcsin(a)", elementwise=True, keops="Asin", method="asin", reference=np.arcsin,
       domain=(-0.95, 0.95), vjp=lambda y, e: (A.mul(e, A.rsqrt(_one_minus_square(y.args[0]))),),
       lower=_routine("asin")),
    Op("acos", ("x",), same, "arccos(a)", elementwise=True, keops="Acos", method="acos", reference=np.arccos,
       domain=(-0.95, 0.95), vjp=lambda y, e: (A.neg(A.mul(e, A.rsqrt(_one_minus_square(y.args[0])))),),
       lower=_routine("acos")),
    Op("atan", ("x",), same, "arctan(a)", elementwise=True, keops="Atan", method="atan", reference=np.arctan,
       vjp=lambda y, e: (A.div(e, A.add(constant(1.0), A.square(y.args[0]))),), lower=_routine("atan")),
    Op("atan2", ("x", "y"), broadcast("atan2"), "atan2(a, b), the angle of (b, a)", elementwise=True,
       keops="Atan2", method="atan2", reference=np.arctan2, vjp=D.binary(_atan2_vjp), lower=_routine("atan2")),
    # tanh and erf are not in KeOps: their formula-language names are keir's, in KeOps' style
    Op("tanh", ("x",), same, "tanh(a)", elementwise=True, keops="Tanh", method="tanh", reference=np.tanh,
       vjp=lambda y, e: (A.mul(e, A.sub(constant(1.0), A.square(y))),), lower=_routine("tanh")),
    Op("erf", ("x",), same, "the error function of a", elementwise=True, keops="Erf", method="erf",
       reference=np.vectorize(math.erf, otypes=[float]),
       vjp=lambda y, e: (A.mul(A.mul(constant(2.0 / math.sqrt(math.pi)), e), A.exp(A.neg(A.square(y.args[0])))),),
       lower=_routine("erf")),
    Op("xlogx", ("x",), same, "a log(a), 0 at 0", elementwise=True, keops="XLogX", method="xlogx",
       reference=_xlogx, domain=(0.0, 3.0),
       vjp=lambda y, e: (A.mul(e, A.add(A.log(y.args[0]), constant(1.0))),),
       lower=lambda b, node, x: b.select(b.cmp("oeq", x, zero(b)), zero(b), b.mul(x, b.routine("log", x)))),
    Op("sinxdivx", ("x",), same, "sin(a) / a, 1 at 0", elementwise=True, keops="SinXDivX", method="sinxdivx",
       reference=_sinxdivx,
       # d (sin a / a) = (cos a - sin a / a) / a, and 0 at a = 0 (selected: -|a| >= 0 only there)
       vjp=lambda y, e: (A.mul(e, make("ifelse", A.neg(make("abs", y.args[0])), constant(0.0),
                                        A.div(A.sub(make("cos", y.args[0]), y), y.args[0]))),),
       lower=lambda b, node, x: b.select(b.cmp("oeq", x, zero(b)), one(b), b.div(b.routine("sin", x), x))),
]
