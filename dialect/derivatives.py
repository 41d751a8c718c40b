"""Differentiation of keir formulas: the helpers the ops' VJP rules are built from, and the rules of the
reductions.

Each op's rule is in its catalogue record (`keir.dialect.catalogue`): `vjp(y, e)` is the vector-Jacobian
product of the node y = op(a, b, ...) with a cotangent e of y's dimension: one contribution per operand,
e . dy/da, e . dy/db, ..., each of its operand's dimension (None where there is nothing to add). Rules
build with the smart constructors of `keir.dialect.algebra`, so that zeros and ones fold away as the
derivative is built. `keir-differentiate` applies them in reverse topological order; a record without a
rule states the reason, and asking for its gradient raises `NotDifferentiableError` naming the op.

A reduction's rule is keyed by reduction kind in `REDUCTION_VJP`, with the same signature: for y =
reduce(f), it gives the cotangent of f at one (i, j) pair from the cotangent e of the output row, and may
use y itself as the value of that output row (the logsumexp rule does: e * exp(f - y)). The gradient of a
whole reduction with respect to a variable is then another reduction (`reduction_gradient`), in which y
is replaced by a variable holding the forward output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from keir.dialect import algebra as A
from keir.dialect.node import Node, constant, make, substitute
from keir.dialect.ops import OPS


class NotDifferentiableError(ValueError):
    """A gradient was asked through an op that has no derivative rule."""


Contributions = tuple[Node | None, ...]
VjpRule = Callable[[Node, Node], Contributions]


def unbroadcast(contribution: Node, operand: Node) -> Node:
    """An operand of dimension 1 was broadcast to the result's components: its cotangent is their sum."""
    return contribution if contribution.dim == operand.dim else A.sum_(contribution)


def binary(rule: Callable[[Node, Node, Node, Node], tuple[Node, Node]]) -> VjpRule:
    def vjp(y: Node, e: Node) -> Contributions:
        a, b = y.args
        da, db = rule(y, e, a, b)
        return unbroadcast(da, a), unbroadcast(db, b)

    return vjp


def leaf(y: Node, e: Node) -> Contributions:
    return ()


def piecewise_constant(y: Node, e: Node) -> Contributions:
    """Ops whose value is locally constant (comparisons, rounding, indices): derivative zero almost
    everywhere, so nothing flows back (as in torch)."""
    return (None,) * len(y.args)


def reduction_rule(kind: str) -> VjpRule:
    """The rule of a reduction kind; NotDifferentiableError naming the kind if it has none."""
    rule = REDUCTION_VJP.get(kind)
    if rule is not None:
        return rule
    reason = NON_DIFFERENTIABLE_REDUCTIONS.get(kind, "no derivative rule is registered for it")
    raise NotDifferentiableError(f"keir.reduce of kind {kind!r} is not differentiable: {reason}")


def reduce_vjp(y: Node, e: Node) -> Contributions:
    return reduction_rule(y.attr("kind"))(y, e)


def _logsumexp_weight(y: Node, e: Node) -> Contributions:
    # y = log sum_j exp(f_j) w_j (f scalar, w a vector): dy/df_j = exp(f_j - y) w_j and dy/dw_j = exp(f_j - y).
    (formula,) = y.args
    f, w = A.elem(formula, 0), A.extract(formula, 1, formula.dim - 1)
    dw = A.mul(e, A.exp(A.sub(f, y)))
    return (A.concat(A.dot(dw, w), dw),)


# The cotangent of a reduction's formula at (i, j), from the cotangent e of the output row (y stands for the
# output row's value). Every kind in REDUCTION_KINDS has a rule here or a reason in
# NON_DIFFERENTIABLE_REDUCTIONS (tests/dialect/test_derivatives.py keeps the tables in step with REDUCTION_KINDS).
REDUCTION_VJP: dict[str, VjpRule] = {
    "sum": lambda y, e: (e,),
    "logsumexp": lambda y, e: (A.mul(e, A.exp(A.sub(y.args[0], y))),),  # dy/df_j = softmax_j = exp(f_j - y)
    "logsumexp_weight": _logsumexp_weight,
    # the cotangent goes to the pair the forward selected: reduction_gradient restricts e to it (`selected`)
    "min": lambda y, e: (e,),
    "max": lambda y, e: (e,),
}

# A min or max reduction gives its cotangent to the pair that reached the extreme. Finding that pair by
# comparing the recomputed formula with the output (f_ij == y_i) loses it whenever the backward's formula
# rounds differently from the forward's, so the caller runs the arg-reduction of the same formula and passes
# reduction_gradient the indicator of the selected pairs, built from its indices.
SELECTING_ARG: dict[str, str] = {"min": "argmin", "max": "argmax"}

_WITH_INDICES = "its output holds indices; differentiate the value-only reduction (min, max) instead"
NON_DIFFERENTIABLE_REDUCTIONS: dict[str, str] = {
    "kmin": "its gradient needs the K selected pairs, which the output does not identify",
    "min_argmin": _WITH_INDICES,
    "max_argmax": _WITH_INDICES,
    "kmin_argkmin": _WITH_INDICES,
    "argmin": "its output is integer indices",
    "argmax": "its output is integer indices",
    "argkmin": "its output is integer indices",
    "sumsoftmaxweight": "its gradient needs the normaliser sum_j exp(f) as a second reduction",
}

def vjp_rule(op: str) -> VjpRule:
    """The rule of op; NotDifferentiableError naming the op if it has none."""
    record = OPS[op]
    if record.vjp is not None:
        return record.vjp
    reason = record.not_differentiable
    raise NotDifferentiableError(f"keir.{op} is not differentiable: {reason}")


def reduction_gradient(reduction: Node, wrt: Node, cotangent: Node, output: Node,
                       selected: Node | None = None) -> tuple[Node, bool]:
    """The gradient of reduction (a keir.reduce) with respect to variable wrt, contracted with cotangent: a
    new keir.reduce, and whether its rows must then be summed. cotangent and output are variables indexed
    like the reduction's output rows: the cotangent of the output, and the output itself (which rules such
    as logsumexp's use). For out_i = sum_j f(x_i, y_j, p) and cotangent g_i:

        d/dx_i: sum_j  grad(f, x, g_i)        a reduction over j (the same axis)
        d/dy_j: sum_i  grad(f, y, g_i)        a reduction over i (the other axis)
        d/dp:   sum_i (sum_j grad(f, p, g_i))  a reduction over j whose rows are then summed

    For a kind in SELECTING_ARG, `selected` is the indicator (1 or 0 per component, at each pair) of the
    pairs that the forward selected.
    """
    if reduction.op != "reduce":
        raise ValueError(f"reduction_gradient needs a keir.reduce, got keir.{reduction.op}")
    if wrt.op != "var":
        raise ValueError(f"a gradient is taken with respect to a keir.var, got keir.{wrt.op}")
    reduction_rule(reduction.attr("kind"))  # a non-differentiable kind is refused first, by name
    axis = reduction.attr("axis")
    output_category, reduced_category = ("i", "j") if axis == 1 else ("j", "i")
    for name, node in (("cotangent", cotangent), ("output", output)):
        if node.op != "var" or node.attr("category") != output_category or node.dim != reduction.dim:
            raise ValueError(
                f"the {name} of a reduction over axis {axis} is an {output_category}-variable of dimension "
                f"{reduction.dim}, got {node!r}"
            )
    formula = make("grad", reduction.args[0], wrt, _formula_cotangent(reduction, cotangent, output, selected))
    category = wrt.attr("category")
    gradient_axis = 1 - axis if category == reduced_category else axis
    return make("reduce", formula, kind="sum", axis=gradient_axis), category == "p"


def reduction_tangent(reduction: Node, tangents: dict[Node, Node], placeholder: Node, output: Node,
                      selected: Node | None = None) -> Node:
    """The forward-mode derivative (JVP) of reduction (a keir.reduce) along `tangents`, which maps input
    variables to variables of the same category and dimension holding their tangents: a new keir.reduce over
    the same axis, whose rows are the output rows' tangents.

    It is the transpose of the VJP, built from the same rules, so forward mode needs no second rule per op:
    with R(u) the cotangent of the formula f at (i, j) for an output cotangent u (REDUCTION_VJP, linear in
    u), the tangent of row i is  sum_j d/du <sum_k grad(f, x_k, R(u)), t_k>,  a derivative of an expression
    linear in u, so that u -- `placeholder`, an output-indexed variable like `output` -- disappears when
    keir-differentiate expands the grads. `output` and `selected` are as for reduction_gradient."""
    if reduction.op != "reduce":
        raise ValueError(f"reduction_tangent needs a keir.reduce, got keir.{reduction.op}")
    reduction_rule(reduction.attr("kind"))
    formula_cotangent = _formula_cotangent(reduction, placeholder, output, selected)
    formula = reduction.args[0]
    terms = []
    for wrt, tangent in tangents.items():
        if wrt.op != "var" or tangent.op != "var" or (wrt.attr("category"), wrt.dim) != (
                tangent.attr("category"), tangent.dim):
            raise ValueError(f"a tangent is a keir.var of its variable's category and dimension; got {tangent!r} "
                             f"for {wrt!r}")
        terms.append(A.dot(make("grad", formula, wrt, formula_cotangent), tangent))
    linear = functools.reduce(A.add, terms, constant(0.0))
    return make("reduce", make("grad", linear, placeholder, constant(1.0)), kind="sum", axis=reduction.attr("axis"))


def _formula_cotangent(reduction: Node, cotangent: Node, output: Node, selected: Node | None) -> Node:
    """The cotangent of the reduction's formula at a pair, from the cotangent of the output row (the
    reduction's rule, with the output variable for its value; restricted to the selected pairs for a min or
    max)."""
    kind = reduction.attr("kind")
    if kind in SELECTING_ARG:
        if selected is None or selected.dim != reduction.dim:
            raise ValueError(f"a derivative of a {kind} reduction needs the indicator of the selected pairs, "
                             f"of dimension {reduction.dim}")
        cotangent = A.mul(cotangent, selected)
    (formula_cotangent,) = reduce_vjp(reduction, cotangent)
    return substitute(formula_cotangent, {reduction: output})
