"""Smart constructors: build keir nodes while folding zeros, ones, constants and broadcasts.

`make("mul", a, b)` builds exactly the op it is asked for; `algebra.mul(a, b)` builds the same value with
the obvious algebra applied first, so that derivatives stay small:

    mul(0, x) => zeros      add(x, 0) => x       mul(2, mul(3, x)) => mul(6, x)      neg(neg(x)) => x
    sub(x, x) => zeros      pow(x, 1) => x       sum(splat(s, 3)) => mul(3, s)       exp(0) => 1

Every constructor returns a node of exactly the dimension `make` would give (a scalar that stands for a
vector is spread with `splat`), so a smart constructor can replace `make` anywhere. A vector of D copies of
one scalar s is spelled canonically as a balanced tree of `concat`s (`splat(s, D)`); the zero vector of
dimension D is `splat(constant 0, D)`, and for D = 1 that is the zero formula `constant 0` itself.

Folding is done in float64 and only where it is exact or where the float result is what the kernel would
compute anyway; `keir-simplify` builds the fuller rewrite set (exact rationals, sign pulling) on these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from keir.dialect.node import Node, constant, make
from keir.dialect.ops import OPS

# ---- recognising values -----------------------------------------------------------------------------------


def splat_value(node: Node) -> Node | None:
    """The scalar s if node is s spread over its dimension (a dimension-1 node is its own splat), else None."""
    if node.dim == 1:
        return node
    if node.op != "concat":
        return None
    left, right = (splat_value(a) for a in node.args)
    return left if left is not None and left is right else None


def constant_value(node: Node) -> float | None:
    """The value c if node is the constant c (or c spread over a vector), else None."""
    scalar = splat_value(node)
    return scalar.attr("value") if scalar is not None and scalar.op == "constant" else None


def is_zero(node: Node) -> bool:
    return constant_value(node) == 0.0


def is_one(node: Node) -> bool:
    return constant_value(node) == 1.0


# ---- vectors of copies --------------------------------------------------------------------------------------


def splat(scalar: Node, dim: int) -> Node:
    """dim copies of a dimension-1 node, as a balanced concat tree (shared halves: O(log dim) nodes)."""
    if scalar.dim != 1:
        raise ValueError(f"splat spreads a scalar (dimension 1), got dimension {scalar.dim}")
    if dim < 1:
        raise ValueError(f"a splat has a positive dimension, got {dim}")
    if dim == 1:
        return scalar
    half = dim // 2
    return make("concat", splat(scalar, half), splat(scalar, dim - half))


def zeros(dim: int) -> Node:
    return splat(constant(0.0), dim)


def fit(node: Node, dim: int) -> Node:
    """node at dimension dim: itself, or spread if it is a scalar standing for a vector."""
    if node.dim == dim:
        return node
    if node.dim == 1:
        return splat(node, dim)
    raise ValueError(f"cannot fit a value of dimension {node.dim} to dimension {dim}")


def _result_dim(op: str, *args: Node, **attrs: Any) -> int:
    return OPS[op].result_dim(tuple(a.dim for a in args), attrs)


def _make_binary(op: str, a: Node, b: Node) -> Node:
    """make(op, a, b) with splat operands replaced by their scalar (the op broadcasts it back)."""
    dim = _result_dim(op, a, b)
    left, right = splat_value(a), splat_value(b)
    if left is not None and right is not None:
        return fit(make(op, left, right), dim)
    return make(op, a if left is None else left, b if right is None else right)


# ---- arithmetic -----------------------------------------------------------------------------------------------


def add(a: Node, b: Node) -> Node:
    dim = _result_dim("add", a, b)
    if is_zero(a):
        return fit(b, dim)
    if is_zero(b):
        return fit(a, dim)
    ca, cb = constant_value(a), constant_value(b)
    if ca is not None and cb is not None:
        return fit(constant(ca + cb), dim)
    if b.op == "neg":
        return sub(a, b.args[0])
    if a.op == "neg":
        return sub(b, a.args[0])
    return _make_binary("add", a, b)


def sub(a: Node, b: Node) -> Node:
    dim = _result_dim("sub", a, b)
    if a is b:
        return zeros(dim)
    if is_zero(b):
        return fit(a, dim)
    if is_zero(a):
        return fit(neg(b), dim)
    ca, cb = constant_value(a), constant_value(b)
    if ca is not None and cb is not None:
        return fit(constant(ca - cb), dim)
    if b.op == "neg":
        return add(a, b.args[0])
    return _make_binary("sub", a, b)


def mul(a: Node, b: Node) -> Node:
    dim = _result_dim("mul", a, b)
    if is_zero(a) or is_zero(b):
        return zeros(dim)
    if is_one(a):
        return fit(b, dim)
    if is_one(b):
        return fit(a, dim)
    ca, cb = constant_value(a), constant_value(b)
    if ca is not None and cb is not None:
        return fit(constant(ca * cb), dim)
    if cb is not None:  # constants go first, so that c * (d * x) can fold
        a, b, ca, cb = b, a, cb, ca
    if ca is not None:
        if ca == -1.0:
            return fit(neg(b), dim)
        if b.op == "mul" and constant_value(b.args[0]) is not None:
            return fit(mul(constant(ca * constant_value(b.args[0])), b.args[1]), dim)
        if b.op == "neg":
            return fit(mul(constant(-ca), b.args[0]), dim)
        return fit(make("mul", constant(ca), b), dim)
    if a.op == "neg" and b.op == "neg":
        return mul(a.args[0], b.args[0])
    if a.op == "neg":
        return neg(mul(a.args[0], b))
    if b.op == "neg":
        return neg(mul(a, b.args[0]))
    return _make_binary("mul", a, b)


def div(a: Node, b: Node) -> Node:
    dim = _result_dim("div", a, b)
    if is_zero(a):
        return zeros(dim)
    if is_one(b):
        return fit(a, dim)
    ca, cb = constant_value(a), constant_value(b)
    if ca is not None and cb not in (None, 0.0):
        return fit(constant(ca / cb), dim)
    if a.op == "neg":
        return neg(div(a.args[0], b))
    return _make_binary("div", a, b)


def neg(a: Node) -> Node:
    value = constant_value(a)
    if value is not None:
        return fit(constant(-value), a.dim)
    if a.op == "neg":
        return a.args[0]
    if a.op == "sub":
        return make("sub", a.args[1], a.args[0])
    return make("neg", a)


# ---- elementwise functions ------------------------------------------------------------------------------------


def _folding(op: str, fold: Callable[[float], float], domain: Callable[[float], bool]) -> Callable[[Node], Node]:
    def build(a: Node) -> Node:
        value = constant_value(a)
        if value is not None and domain(value):
            return fit(constant(fold(value)), a.dim)
        return make(op, a)

    build.__name__ = op
    build.__doc__ = f"keir.{op}, folded on constants in its domain"
    return build


exp = _folding("exp", math.exp, lambda v: v < 700.0)
log = _folding("log", math.log, lambda v: v > 0.0)
sqrt = _folding("sqrt", math.sqrt, lambda v: v >= 0.0)
rsqrt = _folding("rsqrt", lambda v: 1.0 / math.sqrt(v), lambda v: v > 0.0)
absolute = _folding("abs", abs, lambda v: True)


def square(a: Node) -> Node:
    value = constant_value(a)
    if value is not None:
        return fit(constant(value * value), a.dim)
    if a.op == "neg":
        return square(a.args[0])
    return make("square", a)


def power(a: Node, exponent: int) -> Node:
    if exponent == 0:
        return fit(constant(1.0), a.dim)
    if exponent == 1:
        return a
    if exponent == 2:
        return square(a)
    value = constant_value(a)
    if value is not None and (value != 0.0 or exponent > 0):
        return fit(constant(value**exponent), a.dim)
    return make("pow", a, exponent=exponent)


# ---- reductions over components -----------------------------------------------------------------------------


def sum_(a: Node) -> Node:
    """keir.sum: the sum of a's components."""
    if a.dim == 1:
        return a
    scalar = splat_value(a)
    if scalar is not None:
        return mul(constant(float(a.dim)), scalar)
    return make("sum", a)


def dot(a: Node, b: Node) -> Node:
    _result_dim("dot", a, b)
    if a.dim == 1:
        return mul(a, b)
    if is_zero(a) or is_zero(b):
        return constant(0.0)
    for x, y in ((a, b), (b, a)):
        scalar = splat_value(x)
        if scalar is not None:
            return mul(scalar, sum_(y))
    return make("dot", a, b)


def sqnorm2(a: Node) -> Node:
    if a.dim == 1:
        return square(a)
    if is_zero(a):
        return constant(0.0)
    return make("sqnorm2", a)


def sqdist(a: Node, b: Node) -> Node:
    _result_dim("sqdist", a, b)
    if a is b:
        return constant(0.0)
    if a.dim == 1:
        return square(sub(a, b))
    if is_zero(b):
        return sqnorm2(a)
    if is_zero(a):
        return sqnorm2(b)
    return make("sqdist", a, b)


# ---- components -------------------------------------------------------------------------------------------------


def elem(a: Node, index: int) -> Node:
    _result_dim("elem", a, index=index)
    scalar = splat_value(a)
    if scalar is not None:
        return scalar
    if a.op == "concat":
        left, right = a.args
        return elem(left, index) if index < left.dim else elem(right, index - left.dim)
    if a.op == "extract":
        return elem(a.args[0], a.attr("start") + index)
    return make("elem", a, index=index)


def extract(a: Node, start: int, length: int) -> Node:
    _result_dim("extract", a, start=start, length=length)
    if start == 0 and length == a.dim:
        return a
    if length == 1:
        return elem(a, start)
    scalar = splat_value(a)
    if scalar is not None:
        return splat(scalar, length)
    if a.op == "concat":
        left, right = a.args
        if start + length <= left.dim:
            return extract(left, start, length)
        if start >= left.dim:
            return extract(right, start - left.dim, length)
        head = left.dim - start
        return concat(extract(left, start, head), extract(right, 0, length - head))
    if a.op == "extract":
        return extract(a.args[0], a.attr("start") + start, length)
    return make("extract", a, start=start, length=length)


def concat(a: Node, b: Node) -> Node:
    left, right = splat_value(a), splat_value(b)
    if left is not None and left is right:
        return splat(left, a.dim + b.dim)
    return make("concat", a, b)


def embed(part: Node, start: int, dim: int) -> Node:
    """A vector of dimension dim that is `part` at components start.. and zero elsewhere."""
    tail = dim - start - part.dim
    pieces = [*([zeros(start)] if start else []), part, *([zeros(tail)] if tail else [])]
    if all(is_zero(p) for p in pieces):
        return zeros(dim)
    result = pieces[0]
    for piece in pieces[1:]:
        result = concat(result, piece)
    return result


# ---- rebuilding a node through its smart constructor ---------------------------------------------------------

def rebuild(node: Node, args: tuple[Node, ...]) -> Node:
    """node's op on new operands, simplified where a smart constructor exists (else built as is)."""
    build = OPS[node.op].build
    if build is None:
        return Node(node.op, args, node.attrs)
    return build(*args, **dict(node.attrs))


__all__ = [
    "splat_value", "constant_value", "is_zero", "is_one", "splat", "zeros", "fit", "add", "sub", "mul", "div",
    "neg", "exp", "log", "sqrt", "rsqrt", "absolute", "square", "power", "sum_", "dot", "sqnorm2", "sqdist",
    "elem", "extract", "concat", "embed", "rebuild",
]
