"""keir-cse: structural common-subexpression elimination and dead-op removal for keir ops.

Upstream `cse` cannot touch keir ops (IRDL gives them no Pure trait). Here the kernel is rebuilt from its
result through the hash-consing constructor: structurally equal ops become one node and ops that do not
reach the result are dropped.

    %0 = "keir.var"() {category = "i", index = 0 : i64}      %0 = "keir.var"() {category = "i", index = 0 : i64}
    %1 = "keir.exp"(%0)                                 =>   %1 = "keir.exp"(%0)
    %2 = "keir.exp"(%0)                                      %2 = "keir.add"(%1, %1)
    %3 = "keir.log"(%0)          (dead)
    %4 = "keir.add"(%1, %2)
"""

from __future__ import annotations

from keir.compiler.kernel import Kernel


def run(kernel: Kernel) -> Kernel:
    # Nodes are interned when built (also by the MLIR importer), so equal ops are already one node and
    # emission walks only what the result reaches: the kernel, as a DAG, is its own CSE'd form.
    return kernel
