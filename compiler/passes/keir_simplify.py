"""keir-simplify: algebraic rewrites of keir formulas, exact on constants, that leave less work per pair.

Arithmetic (add, sub, neg, mul, div, square, pow) is read into a normal form -- a sum of terms, each an exact
rational coefficient (`fractions.Fraction`) times a product of factors with integer exponents -- and
written back out. Reading and writing the normal form does the arithmetic rewrites:

    constant folding, exactly       x / 3 * 3 => x             2 * (0.5 * x) => x        (x / 10) * 5 => 0.5 * x
    zero and one propagation        x * 0 => 0    x + 0 => x    x - x => 0 (finite x)    x * 1 => x    pow(x, 0) => 1
    sign pulling                    (-a) * b => -(a * b)        a - (-b) => a + b      -a - b => -(a + b)
                                    (a sign joins the factors computed outside the inner loop, if any)
    like terms and powers           x + x => 2 * x              x * x => square(x)     square(x) * x => pow(x, 3)
    exponentials                    exp(a) * exp(b) => exp(a + b)      (used nowhere else; assume_finite only)
    factors and terms by loop level products and sums are rebuilt with constants and parameters first, then
                                    what depends on the outer index only, then the rest, so that the first
                                    ones form one subexpression that leaves the inner loop; division by such
                                    a subexpression is one division outside the loop:
                                    exp(-d / (2 * s * s)) => exp(d * (-0.5 / square(s)))   (s a parameter)
    common factors of sums          K * a + K * b => K * (a + b)   (greedily, factors computed per pair)
    sums of components              f(x[0], y[0]) + ... + f(x[D-1], y[D-1]) => sum(f(x, y))
                                    (once common factors have left the sum: K (c + f(x0)) + K (c + f(x1))
                                    => K (2 c + sum(f(x))))

Structural rules (each rewrite family a named rule of `RULES`, listed by `keir-opt --list-rules` and left
out by keir-simplify{disable=name,...}):

    sum(a * b) => dot(a, b)    sum(square(a)) => sqnorm2(a)    dot(a, a) => sqnorm2(a)
    sqnorm2(a - b) => sqdist(a, b)    scalar factors leave sum, dot, sqnorm2: sum(s * v) => s * sum(v)
    elem(f(a, b), k) => f(elem(a, k), elem(b, k))  for an elementwise f
    mul/add/sum/dot of a concat with a zero piece are split at the concat, so zeros fold away
    the folding smart constructors of `keir.dialect.algebra` (exp(0) => 1, elem(concat(a, b), 0) => a, ...)

Every rewrite keeps the formula's value (up to float rounding, and except where the original multiplies
a literal 0 by infinity or NaN: x * 0 => 0 as in differentiation). Nothing that is NaN for NaN or infinite
values becomes a number: terms that cancel (x - x) and sqdist(x, x) stay, and division is never cancelled
(x / x stays; s^2 / s^4 for a parameter s too, being NaN at 0), unless the pass may assume finite values
(`assume_finite`, keir-simplify{assume-finite=true}), which lets them fold (per-pair quotients excepted).
The rewrites run bottom-up, to a fixed point (`keir.compiler.rewriter`); the normal form, with its
invariants, is `keir.compiler.normal_form`.

    %s = "keir.var"() {category = "p", index = 2 : i64}        %s = "keir.var"() {category = "p", index = 2 : i64}
    %t = "keir.mul"(%two, %s)                                   %q = "keir.square"(%s)
    %u = "keir.mul"(%t, %s)                           =>        %r = "keir.div"(%minus_half, %q)
    %n = "keir.neg"(%d)                                         %a = "keir.mul"(%r, %d)
    %a = "keir.div"(%n, %u)                                     %e = "keir.exp"(%a)
    %e = "keir.exp"(%a)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import ClassVar

from keir.compiler.kernel import Kernel
from keir.compiler.loop_levels import inner_category
from keir.compiler.normal_form import NormalForm, Term
from keir.compiler.rewriter import MAX_ROUNDS, Rewriter
from keir.dialect import algebra as A
from keir.dialect.catalogue import ELEMENTWISE
from keir.dialect.node import Node, make

Rule = Callable[[NormalForm, Node], "Node | None"]  # a rewrite, reading and writing through the normal form


def _fold(form: NormalForm, node: Node) -> Node | None:
    """The folding smart constructor of keir.dialect.algebra, where the op has one."""
    return A.rebuild(node, node.args)


def _zero_piece(node: Node) -> bool:
    return node.op == "concat" and any(A.is_zero(a) or _zero_piece(a) for a in node.args)


def _split_concat(form: NormalForm, node: Node) -> Node | None:
    """op(concat(a1, a2), b) => concat(op(a1, b1), op(a2, b2)) for an elementwise op, when a piece is zero
    (mul, div's numerator, add, sub) or both operands are concats split at the same place."""
    a, b = node.args
    if node.dim == 1:
        return None
    pieces = [x for x in (a, b) if x.op == "concat" and x.dim == node.dim]
    if not pieces:
        return None
    split = pieces[0].args[0].dim
    same_split = all(x.op == "concat" and x.args[0].dim == split for x in (a, b))
    if not same_split and not (_zero_piece(a) or (node.op != "div" and _zero_piece(b))):
        return None

    def part(x: Node, start: int, length: int) -> Node:
        return x if x.dim == 1 else A.extract(x, start, length)

    rest = node.dim - split
    return A.concat(make(node.op, part(a, 0, split), part(b, 0, split)),
                    make(node.op, part(a, split, rest), part(b, split, rest)))


def _scalar_and_vector(form: NormalForm, node: Node) -> tuple[Term, Term]:
    """node's term split into its scalar part (coefficient, dimension-1 factors) and its vector part."""
    t = form.term(node)
    scalar = Term(t.coefficient, tuple(x for x in t.numerator if x[0].dim == 1),
                  tuple(x for x in t.denominator if x[0].dim == 1))
    vector = Term(Fraction(1), tuple(x for x in t.numerator if x[0].dim > 1),
                  tuple(x for x in t.denominator if x[0].dim > 1))
    return scalar, vector


def _pulled(form: NormalForm, scalar: Term, inner: Node) -> Node:
    return form.build_term(form.product(scalar, Term(Fraction(1), ((inner, 1),))), 1)


def _sum(form: NormalForm, node: Node) -> Node | None:
    (a,) = node.args
    folded = A.sum_(a)
    if folded is not node:
        return folded
    if a.op == "concat":
        return make("add", A.sum_(a.args[0]), A.sum_(a.args[1]))
    scalar, vector = _scalar_and_vector(form, a)
    if vector.denominator or not vector.numerator:
        return None
    if len(vector.numerator) == 1 and vector.numerator[0][1] == 2:
        inner = make("sqnorm2", vector.numerator[0][0])
    elif len(vector.numerator) == 2 and all(k == 1 for _, k in vector.numerator):
        inner = make("dot", vector.numerator[0][0], vector.numerator[1][0])
    elif scalar.key == ((), ()) and scalar.coefficient == 1:
        return None
    else:
        inner = make("sum", form.build_term(vector, a.dim))
    return _pulled(form, scalar, inner)


def _dot(form: NormalForm, node: Node) -> Node | None:
    a, b = node.args
    folded = A.dot(a, b)
    if folded is not node:
        return folded
    if a is b:
        return make("sqnorm2", a)
    for x, y in ((a, b), (b, a)):
        if x.op == "concat":
            split, rest = x.args[0].dim, x.dim - x.args[0].dim
            return make("add", A.dot(x.args[0], A.extract(y, 0, split)), A.dot(x.args[1], A.extract(y, split, rest)))
    (sa, va), (sb, vb) = _scalar_and_vector(form, a), _scalar_and_vector(form, b)
    scalar = form.product(sa, sb)
    if scalar.key == ((), ()) and scalar.coefficient == 1:
        return None
    left, right = form.build_term(va, a.dim), form.build_term(vb, b.dim)
    return _pulled(form, scalar, make("sqnorm2", left) if left is right else make("dot", left, right))


def _sqnorm2(form: NormalForm, node: Node) -> Node | None:
    (a,) = node.args
    folded = A.sqnorm2(a)
    if folded is not node:
        return folded
    if a.op == "sub":
        return make("sqdist", *(A.fit(x, a.dim) for x in a.args))
    if a.op == "concat":
        return make("add", A.sqnorm2(a.args[0]), A.sqnorm2(a.args[1]))
    scalar, vector = _scalar_and_vector(form, a)
    if scalar.key == ((), ()) and abs(scalar.coefficient) == 1:
        return None if scalar.coefficient == 1 else make("sqnorm2", form.build_term(vector, a.dim))
    return _pulled(form, form.power(scalar, 2), make("sqnorm2", form.build_term(vector, a.dim)))


def _sqdist(form: NormalForm, node: Node) -> Node | None:
    """The smart constructor's folds, except sqdist(x, x) => 0: like x - x, it is NaN where x is NaN or
    infinite, so it stays unless the formula may assume finite values (a 0 there would let a product with it
    fold: powf(y, sqdist(x, x)) = exp(sqdist(x, x) log y) is NaN for y < 0, not exp(0) = 1)."""
    a, b = node.args
    if a is b and not form.assume_finite:
        return None
    return A.sqdist(a, b)


def _elem(form: NormalForm, node: Node) -> Node | None:
    (a,) = node.args
    k = node.attr("index")
    folded = A.elem(a, k)
    if folded is not node:
        return folded
    if a.op in ELEMENTWISE:
        return Node(a.op, tuple(x if x.dim == 1 else A.elem(x, k) for x in a.args), a.attrs)
    return None


@dataclass(frozen=True)
class RewriteRule:
    """A named family of keir-simplify's rewrites, tried on the nodes of `ops` (on every op without a rule of
    its own if `ops` is empty), in the order of RULES; `apply` gives the rewritten node or None."""

    name: str
    ops: tuple[str, ...]
    apply: Rule
    summary: str  # before => after


RULES: tuple[RewriteRule, ...] = (
    RewriteRule("split-concat", ("add", "sub", "mul", "div"), _split_concat,
                "mul(concat(a, 0), b) => concat(mul(a, b[0:k]), 0); op(concat(a, b), concat(c, d)) split alike"),
    RewriteRule("normal-form", ("add", "sub", "mul", "div", "neg", "square", "pow"), NormalForm.rewrite,
                "x / 3 * 3 => x, x + x => 2 * x, x * x => square(x), exp(a) * exp(b) => exp(a + b) (assume-finite), "
                "K a + K b => K (a + b), factors ordered by loop level (see the module docstring)"),
    RewriteRule("sum-of-products", ("sum",), _sum,
                "sum(a * b) => dot(a, b), sum(square(a)) => sqnorm2(a), sum(s * v) => s * sum(v)"),
    RewriteRule("dot-products", ("dot",), _dot, "dot(a, a) => sqnorm2(a), dot(s * a, b) => s * dot(a, b)"),
    RewriteRule("squared-norms", ("sqnorm2",), _sqnorm2, "sqnorm2(a - b) => sqdist(a, b), sqnorm2(s * a) => "
                "square(s) * sqnorm2(a)"),
    RewriteRule("squared-distances", ("sqdist",), _sqdist, "sqdist(a, 0) => sqnorm2(a) (sqdist(x, x) => 0 only "
                "with assume-finite)"),
    RewriteRule("components", ("elem",), _elem, "elem(f(a, b), k) => f(elem(a, k), elem(b, k)) for an "
                "elementwise f; elem(concat(a, b), 0) => a"),
    RewriteRule("fold", (), _fold, "the folding constructors of keir.dialect.algebra: exp(0) => 1, "
                "extract(extract(a, 1, 3), 1, 2) => extract(a, 2, 2), ..."),
)
RULE_NAMES = tuple(rule.name for rule in RULES)


def rule_table(disabled: frozenset[str] = frozenset()) -> tuple[dict[str, tuple[Rule, ...]], tuple[Rule, ...]]:
    """The rewrites to try per op, and for the other ops, with the rules named in `disabled` left out."""
    unknown = disabled - set(RULE_NAMES)
    if unknown:
        raise ValueError(f"keir-simplify: unknown rule(s) {', '.join(sorted(unknown))}; rules: {', '.join(RULE_NAMES)}")
    table: dict[str, tuple[Rule, ...]] = {}
    for rule in RULES:
        for op in rule.ops:
            table.setdefault(op, ())
            if rule.name not in disabled:
                table[op] += (rule.apply,)
    default = tuple(rule.apply for rule in RULES if not rule.ops and rule.name not in disabled)
    return table, default


def simplify(root: Node, inner: str | None = None, elem: str = "f64", assume_finite: bool = False,
             max_rounds: int = MAX_ROUNDS, disabled: frozenset[str] = frozenset()) -> Node:
    """root rewritten by RULES (those named in `disabled` left out) to a fixed point; `inner` is the category of
    the innermost loop (by default the one root's reduction runs over), `elem` the kernel's float type."""
    form = NormalForm(inner or inner_category(root), elem, assume_finite)
    table, default = rule_table(disabled)
    rules = {op: tuple(partial(rule, form) for rule in tried) for op, tried in table.items()}
    return Rewriter(rules, tuple(partial(rule, form) for rule in default), max_rounds, form.start_sweep).run(root)


@dataclass(frozen=True)
class KeirSimplify:
    """The pass: options `assume-finite` (rewrites that need finite values, such as y - y => 0),
    `max-rounds` (full bottom-up sweeps at most) and `disable` (rules of RULES left out, comma-separated:
    keir-simplify{disable=split-concat,components}; `keir-opt --list-rules` lists them)."""

    name: ClassVar[str] = "keir-simplify"
    assume_finite: bool = False
    max_rounds: int = MAX_ROUNDS
    disable: str = ""

    def __post_init__(self) -> None:
        if self.max_rounds < 1:
            raise ValueError(f"keir-simplify: max-rounds must be at least 1, got {self.max_rounds}")
        rule_table(self.disabled)  # an unknown rule name is refused when the pass is made

    @property
    def disabled(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.disable.split(",") if name.strip())

    def __call__(self, kernel: Kernel) -> Kernel:
        result = simplify(kernel.result, elem=kernel.dtype, assume_finite=self.assume_finite,
                          max_rounds=self.max_rounds, disabled=self.disabled)
        return Kernel(kernel.name, result, kernel.dtype)
