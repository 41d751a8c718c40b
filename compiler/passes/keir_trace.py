"""keir-trace: expands keir.laplacian, keir.divergence and keir.trace by pushing a symbolic trace through the
linear structure of the formula, never forming the Hessian nor D separate derivatives.

    trace(T, v)        T linear in the variable v: tr(v -> T(v)), walked backwards from T with a matrix
                       cotangent made of diagonal and rank-one terms (`keir.dialect.linearity`)
    divergence(F, x)   = trace(grad(F, x, v), v): the transposed Jacobian applied to a probe v, whose trace
                       is the Jacobian's
    laplacian(f, x)    = trace(grad(grad(f, x, 1), x, v), v): the Hessian applied to v, one reverse sweep
                       over the gradient; its trace is the Laplacian

For the Gaussian f = exp(-|x - y|^2) the Hessian-vector product is -2 f v + 4 f <x - y, v> (x - y); the
trace goes through the sum, the scaling -2 f (a Diagonal: D times -2 f) and the rank-one term (an Outer:
<x - y, x - y>), giving f (4 |x - y|^2 - 2 D):

    %x = "keir.var"() {category = "i", index = 0 : i64} : () -> vector<3xf64>
    %y = "keir.var"() {category = "j", index = 1 : i64} : () -> vector<3xf64>
    %d = "keir.sqdist"(%x, %y)                                  ... "keir.exp", "keir.dot"(%diff, %diff)
    %n = "keir.neg"(%d)                                  =>     no keir.laplacian, no 3 x 3 matrix:
    %f = "keir.exp"(%n)                                         -2 * 3 * f + 4 * f * <x - y, x - y>
    %l = "keir.laplacian"(%f, %x)

Derivative requests inside the formula (keir.grad) are expanded first, and nested requests innermost first.
A keir.grad around a Laplacian is left for keir-differentiate, which runs after this pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from keir.compiler.kernel import Kernel
from keir.compiler.passes import keir_differentiate
from keir.dialect import algebra
from keir.dialect import linearity as L
from keir.dialect.node import Node, constant, topological, var, variables
from keir.dialect.ops import OPS


class NonLinearError(ValueError):
    """keir.trace was asked for a formula that is not linear in its variable."""


def trace(f: Node, v: Node) -> Node:
    """tr(v -> f(v)) for f linear in the variable v (f and v of one dimension), as plain keir ops."""
    if v.op != "var":
        raise ValueError(f"keir.trace takes the trace with respect to a keir.var, not keir.{v.op}")
    if f.dim != v.dim:
        raise ValueError(f"keir.trace: the formula has dimension {f.dim}, its variable {v.dim}")
    order = topological(f)
    reads_v: set[Node] = set()
    for node in order:
        if node is v or any(a in reads_v for a in node.args):
            reads_v.add(node)
    if f not in reads_v:
        return constant(0.0)
    cotangents: dict[Node, list[L.Term]] = {f: [L.Diagonal(constant(1.0), 0, 0, v.dim)]}
    total = constant(0.0)
    for node in reversed(order):
        if node not in cotangents:
            continue
        W = L.merge(cotangents.pop(node))
        if node is v:
            total = L.trace_at_variable(W)
            continue
        linear = [k for k, a in enumerate(node.args) if a in reads_v]
        rule = OPS[node.op].linearity
        if rule is None or not set(linear) <= set(rule.operands) or (len(linear) > 1 and not rule.jointly):
            raise NonLinearError(
                f"keir.trace: the formula is not linear in its variable: keir.{node.op} is not linear in "
                f"operand(s) {linear} that depend on it"
            )
        for k in linear:
            cotangents.setdefault(node.args[k], []).extend(rule.transpose(node, W, k, v.dim))
    return total


def _probe(f: Node, x: Node, name: str) -> Node:
    """A variable that f does not use, of x's dimension: the v of tr(v -> J v)."""
    if x.op != "var":
        raise ValueError(f"keir.{name} is taken with respect to a keir.var, not keir.{x.op}")
    used = [n.attr("index") for n in variables(f)]
    return var(max(used, default=-1) + 1, x.attr("category"), x.dim)


def divergence(f: Node, x: Node) -> Node:
    """sum_k d f_k / d x_k, as plain keir ops (f holds no derivative requests)."""
    v = _probe(f, x, "divergence")
    return trace(keir_differentiate.differentiate(f, x, v), v)


def laplacian(f: Node, x: Node) -> Node:
    """sum_k d^2 f / d x_k^2 for a scalar f, as plain keir ops (f holds no derivative requests)."""
    gradient = keir_differentiate.differentiate(f, x, constant(1.0))
    return divergence(gradient, x)


EXPANSIONS: dict[str, Callable[[Node, Node], Node]] = {
    "trace": trace,
    "divergence": divergence,
    "laplacian": laplacian,
}


@functools.lru_cache(maxsize=512)
def expand(root: Node) -> Node:
    """root with every keir.laplacian, keir.divergence and keir.trace replaced, innermost first."""
    rebuilt: dict[Node, Node] = {}
    for node in topological(root):
        args = tuple(rebuilt[a] for a in node.args)
        if node.op in EXPANSIONS:
            rebuilt[node] = EXPANSIONS[node.op](keir_differentiate.expand(args[0]), args[1])
        elif args == node.args:
            rebuilt[node] = node
        else:
            rebuilt[node] = algebra.rebuild(node, args)
    return rebuilt[root]


@dataclass(frozen=True)
class KeirTrace:
    name: ClassVar[str] = "keir-trace"

    def __call__(self, kernel: Kernel) -> Kernel:
        return Kernel(kernel.name, expand(kernel.result), kernel.dtype)
