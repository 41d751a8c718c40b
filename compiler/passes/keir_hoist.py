"""keir-hoist: regroups products and sums so that what depends only on the outer index or on parameters
leaves the inner loop.

The CPU and GPU lowerings compute every node that does not depend on the inner loop's index once per outer
row (once per call for constants and parameters) and broadcast it. A product or a sum, though, is a chain
of binary ops, and one per-pair operand early in the chain drags everything after it into the inner loop.
This pass reads each chain of mul/div/neg (a product) and add/sub/neg (a sum) as a whole and writes it back
ordered by loop level -- constants and parameters, then outer-only factors, then per-pair ones -- so that
the first ones form a single hoisted subexpression; a division by a hoisted denominator joins that
subexpression (one division per row, none per pair). The inner loop runs over j in a reduction over j
(axis 1) and over i in one over i (axis 0).

    (x, z: i-variables, y: a j-variable, h = z + s with s a parameter)
    %a = "keir.mul"(%x, %y)                                   %a = "keir.mul"(%x, %z)        once per row i
    %b = "keir.mul"(%a, %z)                            =>     %b = "keir.div"(%a, %h)        once per row i
    %c = "keir.div"(%b, %h)                                   %c = "keir.mul"(%b, %y)        per pair

Only regrouping (and the folding of the constants that regrouping brings together) is done here;
keir-simplify writes its normal forms in the same order, so after it this pass finds nothing to move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from keir.compiler.kernel import Kernel
from keir.compiler.loop_levels import inner_category
from keir.compiler.normal_form import ARITHMETIC, NormalForm
from keir.compiler.rewriter import Rewriter
from keir.dialect.node import Node


def hoist(root: Node, elem: str = "f64") -> Node:
    """root with its products and sums in the normal form's order, none of its algebraic rewrites done."""
    form = NormalForm(inner_category(root), elem, algebraic=False)
    return Rewriter({op: (form.rewrite,) for op in ARITHMETIC}, on_sweep=form.start_sweep).run(root)


@dataclass(frozen=True)
class KeirHoist:
    name: ClassVar[str] = "keir-hoist"

    def __call__(self, kernel: Kernel) -> Kernel:
        return Kernel(kernel.name, hoist(kernel.result, kernel.dtype), kernel.dtype)
