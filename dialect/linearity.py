"""How each keir op is linear in its operands, as data beside the op table, with the rule that moves a
matrix cotangent from the op's result to a linear operand (its transpose).

keir-trace computes tr(T) for a formula T(v) that is linear in a variable v of dimension D (T has
dimension D too). It walks T backwards from its result, like reverse-mode differentiation, but the
cotangent it carries to a node n of dimension m is a D x m *matrix* W_n, with

    tr(T) = sum over the nodes n that read v directly of tr(W_n L_n),   L_n the m x D matrix of n(v) = L_n v.

At the result W = I (the D x D identity); at v itself the contribution is tr(W_v). A rule of the table
rule gives W_a for an operand a of n from W_n, for the operands that n is linear in. W is never stored
as D x m numbers: it is a short sum of structured terms whose entries are formulas,

    Diagonal(scale, row, col, size)   W[row + l, col + l] = scale_l   (l < size; scale of dimension size or 1)
    Outer(left, right)                W = left right^T                 (left: dimension D, right: dimension m)

so that the identity is one Diagonal, a scaling by an independent factor rescales `scale` or `right`, a
sum or dot product makes an Outer, and component access shifts columns. The trace of a Diagonal is the sum
of its scale when it sits on the main diagonal (row == col), and the trace of an Outer is <left, right>:
neither the Hessian nor D separate derivatives are ever formed.

An op's record (`keir.dialect.catalogue`) holds its `Linearity`: which operands it is linear in, and
whether jointly (a sum: all of them may depend on v at once) or separately (a product: one of them may, the
others are held fixed), with the transpose rule. An op without one is not linear in any operand: keir-trace
refuses a formula in which such an op depends on v.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keir.dialect import algebra as A
from keir.dialect.node import Node, constant


@dataclass(frozen=True)
class Diagonal:
    """W[row + l, col + l] = scale_l for l < size; scale has dimension size, or 1 for one value throughout."""

    scale: Node
    row: int
    col: int
    size: int


@dataclass(frozen=True)
class Outer:
    """W = left right^T: left has the traced variable's dimension D, right the node's dimension."""

    left: Node
    right: Node


Term = Diagonal | Outer
TransposeRule = Callable[[Node, tuple[Term, ...], int, int], list[Term]]


@dataclass(frozen=True)
class Linearity:
    """The operands an op is linear in; `jointly`: in all of them at once (else in one, the others fixed).
    `transpose(node, W, k, D)` gives W for operand k from the cotangent W of node (D: the variable's dimension)."""

    operands: tuple[int, ...]
    jointly: bool
    transpose: TransposeRule


# ---- acting with a cotangent ------------------------------------------------------------------------------------


def _part(node: Node, start: int, length: int) -> Node:
    """Components start.. of node, or node itself when it is a scalar standing for every component."""
    return node if node.dim == 1 else A.extract(node, start, length)


def apply(W: tuple[Term, ...], u: Node, dim: int) -> Node:
    """W u: the cotangent applied to a vector u of the node's dimension (or a scalar u, spread), dimension dim."""
    total = A.zeros(dim)
    for term in W:
        if isinstance(term, Diagonal):
            piece = A.mul(term.scale, _part(u, term.col, term.size))
            total = A.add(total, A.embed(A.fit(piece, term.size), term.row, dim))
        else:
            weight = A.dot(term.right, A.fit(u, term.right.dim))
            total = A.add(total, A.mul(weight, term.left))
    return A.fit(total, dim)


def column(W: tuple[Term, ...], dim: int) -> Node:
    """The single column of the cotangent of a scalar node (W u with u = 1), a vector of dimension dim."""
    return apply(W, constant(1.0), dim)


def scale_columns(W: tuple[Term, ...], s: Node) -> list[Term]:
    """W diag(s): column l of W times s_l (s of the node's dimension, or a scalar)."""
    terms: list[Term] = []
    for term in W:
        if isinstance(term, Diagonal):
            terms.append(Diagonal(A.mul(term.scale, _part(s, term.col, term.size)), term.row, term.col, term.size))
        else:
            terms.append(Outer(term.left, A.mul(term.right, A.fit(s, term.right.dim))))
    return terms


def negate(W: tuple[Term, ...]) -> list[Term]:
    return scale_columns(W, constant(-1.0))


def shift_columns(W: tuple[Term, ...], start: int, width: int) -> list[Term]:
    """The cotangent of a vector of dimension `width` whose components start.. the node is (extract, elem)."""
    terms: list[Term] = []
    for term in W:
        if isinstance(term, Diagonal):
            terms.append(Diagonal(term.scale, term.row, term.col + start, term.size))
        else:
            terms.append(Outer(term.left, A.embed(term.right, start, width)))
    return terms


def restrict_columns(W: tuple[Term, ...], start: int, length: int) -> list[Term]:
    """The columns start .. start+length-1 of W, renumbered from 0 (the operands of a concat)."""
    terms: list[Term] = []
    for term in W:
        if isinstance(term, Outer):
            terms.append(Outer(term.left, A.extract(term.right, start, length)))
            continue
        first, last = max(term.col, start), min(term.col + term.size, start + length)
        if first < last:
            scale = _part(term.scale, first - term.col, last - first)
            terms.append(Diagonal(scale, term.row + first - term.col, first - start, last - first))
    return terms


def trace_at_variable(W: tuple[Term, ...]) -> Node:
    """tr(W) for the cotangent W that reached the variable itself (a D x D matrix)."""
    total = constant(0.0)
    for term in W:
        if isinstance(term, Diagonal):
            if term.row == term.col:
                total = A.add(total, A.mul(constant(float(term.size)), term.scale) if term.scale.dim == 1
                              else A.sum_(term.scale))
        else:
            total = A.add(total, A.dot(term.left, term.right))
    return total


# ---- the rules ------------------------------------------------------------------------------------------------


def elementwise_factor(node: Node, W: tuple[Term, ...], k: int, dim: int, factor: Node) -> list[Term]:
    """The cotangent of operand k of an elementwise node = operand * factor (either side broadcast)."""
    if node.args[k].dim == node.dim:
        return scale_columns(W, factor)
    # a scalar operand spread over node's components: one column, W times the factor's components
    return [Outer(apply(W, A.fit(factor, node.dim), dim), constant(1.0))]


def merge(terms: list[Term]) -> tuple[Term, ...]:
    """One sum of terms, with Diagonals on the same entries and Outers sharing a side added together."""
    diagonals: dict[tuple[int, int, int], Node] = {}
    by_left: dict[Node, Node] = {}
    for term in terms:
        if isinstance(term, Diagonal):
            key = (term.row, term.col, term.size)
            previous = diagonals.get(key)
            diagonals[key] = term.scale if previous is None else A.add(previous, term.scale)
        else:
            previous = by_left.get(term.left)
            by_left[term.left] = term.right if previous is None else A.add(previous, term.right)
    merged: list[Term] = [Diagonal(s, *key) for key, s in diagonals.items() if not A.is_zero(s)]
    by_right: dict[Node, Node] = {}
    for left, right in by_left.items():
        if A.is_zero(left) or A.is_zero(right):
            continue
        previous = by_right.get(right)
        by_right[right] = left if previous is None else A.add(previous, left)
    merged += [Outer(left, right) for right, left in by_right.items()]
    return tuple(merged)


__all__ = ["Linearity", "Diagonal", "Outer", "Term", "apply", "column", "elementwise_factor", "merge",
           "negate", "restrict_columns", "scale_columns", "shift_columns", "trace_at_variable"]
