"""The contract between a lowered kernel and the runtime that calls it: the kernel's operands (which input,
in the loop's terms), the vector width of its j loop, and the layout of the j-variables' column blocks."""

from __future__ import annotations

from dataclasses import dataclass

from keir.dialect.node import Node, swap_i_j, variables

VECTOR_LANES = {"f32": 16, "f64": 8}  # the j loop's vector width
# A block-sparse kernel (pykeops' ranges) takes three more flat int64 memrefs of [start, end) pairs, and its %i0,
# %i1 count i-ranges, not rows: range r is the rows [%ranges[2r], %ranges[2r + 1]), each reduced over the
# j-intervals [%redranges[2s], %redranges[2s + 1]) for s in [%slices[2r], %slices[2r + 1]).
BLOCK_SPARSE = ("%ranges", "%slices", "%redranges")
WIDE_DIM = 8  # dot / sqdist of an i- and a j-variable this wide runs as a matrix product (lower_cpu's wide product)


@dataclass(frozen=True)
class Operand:
    """One input of a compiled kernel, in the loop's own terms ("i" rows, "j" columns, "p" parameters)."""

    index: int  # position in the user's argument list
    category: str
    dim: int


def loop_formula(reduce: Node) -> Node:
    """The formula of reduction `reduce` in the loop's terms: rows are "i" and the reduced axis "j", so a reduction
    over i (axis 0) swaps the roles of its i- and j-variables."""
    formula = reduce.args[0]
    return swap_i_j(formula) if reduce.attr("axis") == 0 else formula


def kernel_operands(reduce: Node) -> tuple[Operand, ...]:
    """The lowered function's inputs for reduction `reduce`, in the loop's terms (see `loop_formula`)."""
    return tuple(Operand(v.attr("index"), v.attr("category"), v.dim) for v in variables(loop_formula(reduce)))


def column_block_components(dim: int) -> int:
    """Vectors per column block of a j-variable of dimension `dim`: its components, then |y|^2 if it is wide."""
    return dim + 1 if dim >= WIDE_DIM else dim
