"""Piecewise ops: sign, step, relu, rounding, comparisons, clamp, if-else.

Their derivatives follow KeOps' definitions at the kinks (each said beside its rule); comparisons and
rounding are locally constant, so nothing flows back through them (as in torch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from keir.dialect import algebra as A
from keir.dialect import derivatives as D
from keir.dialect import linearity as L
from keir.dialect.catalogue.lowering import indicator, one, round_to, zero
from keir.dialect.catalogue.record import Op
from keir.dialect.node import Node, constant, make
from keir.dialect.ops import DimensionError, broadcast, broadcast3, same


def _round_dim(dims: tuple[int, ...], attrs: Any) -> int:
    if not isinstance(attrs["digits"], int):
        raise DimensionError(f"keir.round: digits must be an integer, got {attrs['digits']!r}")
    return dims[0]


def _clamp_vjp(y: Node, e: Node) -> tuple[Node, ...]:
    # clamp(a, low, high) = low if a < low, else high if a > high, else a (KeOps' definition, which also holds
    # when low > high): each operand gets the cotangent where the forward takes it.
    a, low, high = y.args
    not_below = make("ge", a, low)
    above = A.mul(not_below, make("gt", a, high))
    inside = A.mul(not_below, make("le", a, high))
    return tuple(
        D.unbroadcast(A.fit(c, y.dim), operand)
        for c, operand in ((A.mul(e, inside), a), (A.mul(e, make("lt", a, low)), low), (A.mul(e, above), high))
    )


def _clamp(b: Any, node: Node, x: str, lo: str, hi: str) -> str:
    # KeOps' definition, x < lo ? lo : (x > hi ? hi : x): lo wins when lo > hi (torch: hi), NaN stays NaN
    return b.select(b.cmp("olt", x, lo), lo, b.select(b.cmp("ogt", x, hi), hi, x))


def _ifelse_vjp(y: Node, e: Node) -> tuple[Node | None, ...]:
    condition, then, otherwise = y.args
    taken = make("ge", condition, constant(0.0))  # as the forward selects: a NaN condition takes `otherwise`
    return (
        None,
        D.unbroadcast(A.fit(A.mul(e, taken), y.dim), then),
        D.unbroadcast(A.fit(A.mul(e, A.sub(constant(1.0), taken)), y.dim), otherwise),
    )


def _ifelse_transpose(node: Node, W: tuple, k: int, dim: int) -> list:
    taken = make("step", node.args[0])
    return L.elementwise_factor(node, W, k, dim, taken if k == 1 else A.sub(constant(1.0), taken))


def _reference_round(a: np.ndarray, digits: int) -> np.ndarray:
    scale = 10.0**digits
    return np.sign(a) * np.floor(np.abs(a) * scale + 0.5) / scale  # halves away from zero


def _reference_clamp(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.where(a < lo, lo, np.where(a > hi, hi, a))


def _compare(name: str, keops: str, predicate: str, reference: Any, doc: str, commutative: bool = False) -> Op:
    return Op(name, ("x", "y"), broadcast(name), doc, elementwise=True, commutative=commutative, keops=keops,
              reference=lambda a, b: reference(a, b).astype(float), vjp=D.piecewise_constant,
              lower=lambda b, node, x, y: indicator(b, predicate, x, y))


OPS = [
    Op("sign", ("x",), same, "-1, 0 or 1", elementwise=True, keops="Sign", method="sign",
       reference=lambda a: np.where(a > 0, 1.0, np.where(a < 0, -1.0, 0.0)), vjp=D.piecewise_constant,
       lower=lambda b, node, x: b.select(b.cmp("ogt", x, zero(b)), one(b),
                                         b.select(b.cmp("olt", x, zero(b)), b.const(-1.0), zero(b)))),
    # KeOps' definitions: x < 0 ? 0 : 1 and x < 0 ? 0 : x (so step(NaN) = 1 and relu(NaN) = NaN)
    Op("step", ("x",), same, "1 where a >= 0, else 0", elementwise=True, keops="Step", method="step",
       reference=lambda a: np.where(a < 0, 0.0, 1.0), vjp=D.piecewise_constant,
       lower=lambda b, node, x: b.select(b.cmp("olt", x, zero(b)), zero(b), one(b))),
    Op("relu", ("x",), same, "max(a, 0)", elementwise=True, keops="ReLU", method="relu",
       reference=lambda a: np.where(a < 0, 0.0, a),
       vjp=lambda y, e: (A.mul(e, make("step", y.args[0])),),  # step(0) = 1: 1 at the kink, as KeOps (torch: 0)
       lower=lambda b, node, x: b.select(b.cmp("olt", x, zero(b)), zero(b), x)),
    Op("floor", ("x",), same, "floor(a)", elementwise=True, keops="Floor", method="floor", reference=np.floor,
       vjp=D.piecewise_constant, lower=lambda b, node, x: b.math("floor", x)),
    Op("round", ("x",), _round_dim, "a rounded to `digits` decimals (halves away from zero)", attrs=("digits",),
       elementwise=True, keops="Round", reference=_reference_round, vjp=D.piecewise_constant,
       lower=lambda b, node, x: round_to(b, x, node.attr("digits"))),
    _compare("lt", "LessThan", "olt", np.less, "1 where a < b, else 0"),
    _compare("le", "LessOrEqual", "ole", np.less_equal, "1 where a <= b, else 0"),
    _compare("gt", "GreaterThan", "ogt", np.greater, "1 where a > b, else 0"),
    _compare("ge", "GreaterOrEqual", "oge", np.greater_equal, "1 where a >= b, else 0"),
    _compare("eq", "Equal", "oeq", np.equal, "1 where a == b, else 0", commutative=True),
    _compare("ne", "NotEqual", "une", np.not_equal, "1 where a != b, else 0", commutative=True),
    Op("clamp", ("x", "y", "z"), broadcast3("clamp"), "a clamped to [b, c]", elementwise=True, keops="Clamp",
       method="clamp", reference=_reference_clamp, vjp=_clamp_vjp, lower=_clamp),
    Op("ifelse", ("x", "y", "z"), broadcast3("ifelse"), "b where a >= 0, else c", elementwise=True,
       keops="IfElse", method="ifelse", reference=lambda a, x, y: np.where(a >= 0, x, y), vjp=_ifelse_vjp,
       # b where a >= 0, else c: linear in (b, c) for a fixed a
       linearity=L.Linearity((1, 2), True, _ifelse_transpose),
       lower=lambda b, node, f, x, y: b.select(b.cmp("oge", f, zero(b)), x, y)),
]
