"""keir-differentiate: expands every keir.grad into plain keir ops, by reverse mode over the DAG.

`grad(f, x, e)` is e . df/dx. The cotangent of f is e; walking f's DAG from f back towards the variable x
(reverse topological order), each node's cotangent -- the sum of what its users contributed -- is pushed to
its operands by the node's VJP rule (`keir.dialect.derivatives.VJP`). Every node is visited once, so a
shared subexpression is differentiated once, and only nodes on a path to x are visited at all. The
rules build through `keir.dialect.algebra`, so zeros and ones fold as the derivative is built. The kernel is
rebuilt operands first, so a grad nested in f is expanded before f is differentiated: that is how a
gradient of a gradient works.

    %x = "keir.var"() {category = "i", index = 0 : i64}       %0 = "keir.var"() {category = "i", index = 0 : i64}
    %e = "keir.var"() {category = "i", index = 1 : i64}       %1 = "keir.var"() {category = "i", index = 1 : i64}
    %s = "keir.square"(%x)                               =>   %2 = "keir.constant"() {value = 2.0 : f64}
    %f = "keir.exp"(%s)                                       %3 = "keir.square"(%0)
    %g = "keir.grad"(%f, %x, %e)                              %4 = "keir.exp"(%3)
                                                              %5 = "keir.mul"(%1, %4)       e exp(x^2)
                                                              %6 = "keir.mul"(%2, %5)
                                                              %7 = "keir.mul"(%6, %0)       2 e exp(x^2) x
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from keir.compiler.kernel import Kernel
from keir.dialect import algebra
from keir.dialect.derivatives import vjp_rule
from keir.dialect.node import Node, topological


def differentiate(f: Node, x: Node, e: Node) -> Node:
    """e . df/dx as a formula of plain keir ops (f must hold no keir.grad: `expand` sees to that)."""
    if x.op != "var":
        raise ValueError(f"keir.grad differentiates with respect to a keir.var, not keir.{x.op}")
    if e.dim != f.dim:
        raise ValueError(f"keir.grad: the cotangent has dimension {e.dim}, the formula {f.dim}")
    order = topological(f)
    on_path: set[Node] = set()  # the nodes x reaches: the only ones whose cotangent matters
    for node in order:
        if node is x or any(a in on_path for a in node.args):
            on_path.add(node)
    if x not in on_path:
        return algebra.zeros(x.dim)
    cotangents: dict[Node, Node] = {f: e}
    for node in reversed(order):
        if node is x or node not in cotangents:
            continue
        contributions = vjp_rule(node.op)(node, cotangents.pop(node))
        for operand, contribution in zip(node.args, contributions):
            if contribution is None or operand not in on_path:
                continue
            previous = cotangents.get(operand)
            cotangents[operand] = contribution if previous is None else algebra.add(previous, contribution)
    return algebra.fit(cotangents.get(x, algebra.zeros(x.dim)), x.dim)


@functools.lru_cache(maxsize=512)
def expand(root: Node) -> Node:
    """root with every keir.grad replaced by its derivative, innermost first."""
    rebuilt: dict[Node, Node] = {}
    for node in topological(root):
        args = tuple(rebuilt[a] for a in node.args)
        if node.op == "grad":
            rebuilt[node] = differentiate(*args)
        elif args == node.args:
            rebuilt[node] = node
        else:  # an operand was a derivative: simplify around it (a zero derivative folds its users away)
            rebuilt[node] = algebra.rebuild(node, args)
    return rebuilt[root]


@dataclass(frozen=True)
class KeirDifferentiate:
    name: ClassVar[str] = "keir-differentiate"

    def __call__(self, kernel: Kernel) -> Kernel:
        return Kernel(kernel.name, expand(kernel.result), kernel.dtype)
