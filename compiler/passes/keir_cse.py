"""keir-cse: structural common-subexpression elimination and dead-op removal for keir ops.

Upstream `cse` cannot touch keir ops (IRDL gives them no Pure trait). Here the kernel is rebuilt from its
result through the hash-consing constructor: structurally equal ops become one node and ops that do not
reach the result are dropped. The operands of commutative ops are put in one canonical order first, so that
a*b and b*a (or sqdist(x, y) and sqdist(y, x)) are one op too.

    %0 = "keir.var"() {category = "i", index = 0 : i64}      %0 = "keir.var"() {category = "i", index = 0 : i64}
    %1 = "keir.exp"(%0)                                 =>   %1 = "keir.exp"(%0)
    %2 = "keir.exp"(%0)                                      %2 = "keir.mul"(%1, %0)
    %3 = "keir.log"(%0)          (dead)                      %3 = "keir.add"(%2, %2)
    %4 = "keir.mul"(%1, %0)
    %5 = "keir.mul"(%0, %2)
    %6 = "keir.add"(%4, %5)

The canonical order puts operands by loop level (parameters and constants, then what depends on the outer
index only, then the rest: the order keir-hoist and keir-simplify build products in), then by a structural
digest of the operand that does not depend on the process (Python's own hashes of strings do), so the
printed IR -- the artifact cache's key -- is the same in every process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from keir.compiler.kernel import Kernel
from keir.compiler.loop_levels import inner_category, order_key
from keir.dialect.catalogue import COMMUTATIVE
from keir.dialect.node import Node, topological


def canonicalize(root: Node) -> Node:
    """root with the operands of every commutative op in canonical order (rebuilding only what changed)."""
    inner = inner_category(root)
    rebuilt: dict[Node, Node] = {}
    for node in topological(root):
        args = tuple(rebuilt[a] for a in node.args)
        if node.op in COMMUTATIVE and order_key(args[1], inner) < order_key(args[0], inner):
            args = (args[1], args[0])
        rebuilt[node] = node if args == node.args else Node(node.op, args, node.attrs)
    return rebuilt[root]


@dataclass(frozen=True)
class KeirCse:
    name: ClassVar[str] = "keir-cse"

    def __call__(self, kernel: Kernel) -> Kernel:
        # Nodes are interned when built (also by the MLIR importer), so equal ops are already one node, and
        # emission walks only what the result reaches: once commutative operands are ordered, the kernel is
        # its own CSE'd form.
        return Kernel(kernel.name, canonicalize(kernel.result), kernel.dtype)
