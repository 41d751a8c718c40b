"""keir-simplify: algebraic rewrites of keir formulas, exact on constants, that leave less work per pair.

Arithmetic (add, sub, neg, mul, div, square, pow) is read into a normal form -- a sum of terms, each an exact
rational coefficient (`fractions.Fraction`) times a product of factors with integer exponents -- and
written back out. Reading and writing the normal form does the arithmetic rewrites:

    constant folding, exactly       x / 3 * 3 => x             2 * (0.5 * x) => x        (x / 10) * 5 => 0.5 * x
    zero and one propagation        x * 0 => 0    x + 0 => x    x - x => 0 (finite x)    x * 1 => x    pow(x, 0) => 1
    sign pulling                    (-a) * b => -(a * b)        a - (-b) => a + b      -a - b => -(a + b)
                                    (a sign joins the factors computed outside the inner loop, if any)
    like terms and powers           x + x => 2 * x              x * x => square(x)     square(x) * x => pow(x, 3)
    exponentials                    exp(a) * exp(b) => exp(a + b)      (when neither exp is used elsewhere)
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
The rewrites run bottom-up, to a fixed point.

    %s = "keir.var"() {category = "p", index = 2 : i64}        %s = "keir.var"() {category = "p", index = 2 : i64}
    %t = "keir.mul"(%two, %s)                                   %q = "keir.square"(%s)
    %u = "keir.mul"(%t, %s)                           =>        %r = "keir.div"(%minus_half, %q)
    %n = "keir.neg"(%d)                                         %a = "keir.mul"(%r, %d)
    %a = "keir.div"(%n, %u)                                     %e = "keir.exp"(%a)
    %e = "keir.exp"(%a)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from keir.compiler.kernel import Kernel
from keir.compiler.loop_levels import inner_category, loop_level, order_key
from keir.dialect import algebra as A
from keir.dialect.catalogue import ELEMENTWISE
from keir.dialect.node import Node, constant, make, topological

# The normal range of each float type (smallest and largest magnitude) that folded constants stay in.
_NORMAL_RANGE = {"f32": (Fraction(2) ** -126, Fraction(2) ** 127), "f64": (Fraction(2) ** -1022, Fraction(2) ** 1023)}
MAX_ROUNDS = 8  # full bottom-up sweeps; formulas settle in two or three
MAX_DEPTH = 40  # nested rewrites of new nodes within one sweep (a guard: rules do not cycle)
ARITHMETIC = frozenset({"add", "sub", "neg", "mul", "div", "square", "pow"})

Factors = tuple[tuple[Node, int], ...]  # (factor, positive exponent), in canonical order
Rule = Callable[["Simplifier", Node], "Node | None"]


@dataclass(frozen=True)
class Term:
    """coefficient * prod(numerator f^k) / prod(denominator f^k)."""

    coefficient: Fraction
    numerator: Factors = ()
    denominator: Factors = ()

    @property
    def key(self) -> tuple[Factors, Factors]:
        return self.numerator, self.denominator

    @property
    def factors(self) -> list[Node]:
        return [f for f, _ in self.numerator + self.denominator]

    @property
    def dim(self) -> int:
        return max((f.dim for f in self.factors), default=1)

    def scaled(self, c: Fraction) -> Term:
        return Term(self.coefficient * c, self.numerator, self.denominator)


def _combine(a: Factors, b: Factors) -> dict[Node, int]:
    powers = dict(a)
    for f, k in b:
        powers[f] = powers.get(f, 0) + k
    return powers


class Simplifier:
    """One run of keir-simplify over a formula; `inner` is the category of the innermost loop.

    `rules` maps an op to its rewrites (`default` for the others); with `algebraic` off, products and sums
    are only regrouped (keir-hoist): no exponentials merged, no common factors taken out of sums, no sums
    of components gathered."""

    rules: dict[str, tuple[Rule, ...]]
    default: tuple[Rule, ...]
    algebraic = True

    def __init__(self, inner: str = "j", elem: str = "f64", assume_finite: bool = False,
                 max_rounds: int = MAX_ROUNDS, disabled: frozenset[str] = frozenset()):
        self.inner = inner
        self.max_rounds = max_rounds
        if disabled:
            self.rules, self.default = rule_table(disabled)
        # Folded constants stay within the normal range of the kernel's float type: beyond it, folding
        # x * c1 * c2 or x / c into one constant would overflow, underflow or divide by a subnormal.
        self.constant_range = _NORMAL_RANGE[elem]
        self.assume_finite = assume_finite
        self.uses: Counter[Node] = Counter()  # users in the DAG a sweep started from, by rewritten node
        self.done: dict[Node, Node] = {}
        self.depth = 0
        self._terms: dict[Node, Term] = {}
        self._sums: dict[Node, tuple[Term, ...]] = {}
        self._lifted: dict[Node, object] = {}
        self.exact: dict[Node, Fraction] = {}  # constants this run folded, with their exact rational values
        self.normal: set[Node] = set()  # products and sums written by build_*: already in normal form
        # the node a sweep is at, when its only user reads it as part of a longer chain of products or
        # sums (normalised as a whole, at the chain's end)
        self.read_by_user: Node | None = None

    # ---- driving ----------------------------------------------------------------------------------------------
    def simplify(self, root: Node) -> Node:
        for _ in range(self.max_rounds):
            new = self.sweep(root)
            if new is root:
                break
            root = new
        return root

    def sweep(self, root: Node) -> Node:
        order = topological(root)
        old_uses = Counter(a for node in order for a in node.args)
        inside_chain = {a for node in order for a in node.args if old_uses[a] == 1 and _read_through(node, a)}
        self.uses, self.done, self.normal = Counter(), {}, set()
        for node in order:
            args = tuple(self.done[a] for a in node.args)
            rebuilt = node if args == node.args else Node(node.op, args, node.attrs)
            self.read_by_user = rebuilt if node in inside_chain else None
            self.done[node] = self.done[rebuilt] = result = self.rewrite(rebuilt)
            self.done.setdefault(result, result)
            self.uses[result] += old_uses[node]
        return self.done[root]

    def settle(self, node: Node) -> Node:
        """A node built by a rule, simplified (its new operands first)."""
        stack = [(node, False)]
        while stack:
            item, operands_done = stack.pop()
            if item in self.done:
                continue
            if not operands_done:
                stack.append((item, True))
                stack.extend((a, False) for a in item.args if a not in self.done)
                continue
            args = tuple(self.done[a] for a in item.args)
            rebuilt = item if args == item.args else Node(item.op, args, item.attrs)
            result = self.rewrite(rebuilt)
            self.done[item] = self.done[rebuilt] = result
            self.done.setdefault(result, result)
        return self.done[node]

    def _mark_normal(self, node: Node, pieces: set[Node]) -> Node:
        """node, with the products and sums that build_* wrote it with from `pieces` (its factors or terms)
        marked as already in normal form."""
        stack = [node]
        while stack:
            item = stack.pop()
            if item.op in ARITHMETIC and item not in pieces and item not in self.done and item not in self.normal:
                self.normal.add(item)
                stack.extend(item.args)
        return node

    def rewrite(self, node: Node) -> Node:
        if self.depth > MAX_DEPTH:
            return node
        for rule in self.rules.get(node.op, self.default):
            result = rule(self, node)
            if result is not None and result is not node:
                if result.dim != node.dim:
                    result = A.fit(result, node.dim)
                self.depth += 1
                try:
                    return self.settle(result)
                finally:
                    self.depth -= 1
        return node

    def constant(self, value: Fraction) -> Node:
        """The float constant nearest to value, remembered as exactly value for later folding."""
        node = constant(_nearest(value))
        self.exact.setdefault(node, value)
        return node

    def level(self, node: Node) -> int:
        return loop_level(node, self.inner)

    def order(self, node: Node) -> tuple[int, bytes]:
        return order_key(node, self.inner)

    # ---- the normal form ------------------------------------------------------------------------------------
    def term(self, node: Node) -> Term:
        """node as one term (products, quotients, powers and signs flattened)."""
        found = self._terms.get(node)
        if found is None:
            found = self._terms[node] = self._read_term(node)
        return found

    def _shared(self, node: Node, memo: dict) -> bool:
        """Whether a chain being read stops at node and takes its own (remembered) normal form."""
        return self.uses[node] > 1 or node in memo

    def _read_term(self, node: Node) -> Term:
        """Walks the chain of products, quotients, powers and negations under node (without recursion, so a
        long chain costs its length), reading an operand used elsewhere too through its own term."""
        coefficient = Fraction(1)
        powers: tuple[dict[Node, int], dict[Node, int]] = ({}, {})  # numerator, denominator
        stack = [(node, 1)]
        while stack:
            item, k = stack.pop()
            value = A.constant_value(item)
            if value is not None and math.isfinite(value):
                value = self.exact.get(A.splat_value(item), Fraction(value))
                if (value == 0 and k < 0) or not self._foldable(coefficient * value**k):
                    return Term(Fraction(1), ((node, 1),))  # a division by zero stays as written, and so on
                coefficient *= value**k
                continue
            if item is not node and self._shared(item, self._terms):
                shared = self.term(item)
                if (shared.coefficient == 0 and k < 0) or not self._foldable(coefficient * shared.coefficient**k):
                    return Term(Fraction(1), ((node, 1),))
                coefficient *= shared.coefficient**k
                for part, sign in ((shared.numerator, 1), (shared.denominator, -1)):
                    for f, e in part:
                        side = powers[0] if sign * k > 0 else powers[1]
                        side[f] = side.get(f, 0) + abs(e * k)
                continue
            op = item.op
            if op == "mul":
                stack += [(a, k) for a in item.args]
            elif op == "div":
                stack += [(item.args[0], k), (item.args[1], -k)]
            elif op == "neg":
                coefficient *= Fraction(-1) ** k
                stack.append((item.args[0], k))
            elif op in ("square", "pow"):
                exponent = 2 if op == "square" else item.attr("exponent")
                if exponent:  # pow(a, 0) is 1
                    stack.append((item.args[0], k * exponent))
            else:
                side = powers[0] if k > 0 else powers[1]
                side[item] = side.get(item, 0) + abs(k)
        return self._cancelled(coefficient, *powers)

    def _foldable(self, value: Fraction) -> bool:
        low, high = self.constant_range
        return value == 0 or low <= abs(value) <= high

    def _factors(self, powers: dict[Node, int]) -> Factors:
        return tuple(sorted(powers.items(), key=lambda item: self.order(item[0])))

    def product(self, a: Term, b: Term) -> Term:
        return self._cancelled(a.coefficient * b.coefficient, _combine(a.numerator, b.numerator),
                               _combine(a.denominator, b.denominator))

    def _cancelled(self, coefficient: Fraction, numerator: dict[Node, int], denominator: dict[Node, int]) -> Term:
        """The term; where the formula may assume finite values, with powers of a parameter (or parameter-only
        factor) in both numerator and denominator cancelled: s^2 / s^4 => 1 / s^2. Otherwise nothing is
        cancelled: s / s is NaN at s = 0 or inf, and s^2 / s^4 is NaN at 0 where 1 / s^2 is inf. (Per-pair
        factors are never cancelled: x / x stays.)"""
        if not self.assume_finite:
            return Term(coefficient, self._factors({f: k for f, k in numerator.items() if k}),
                        self._factors({f: k for f, k in denominator.items() if k}))
        for f in [f for f in numerator if f in denominator and self.level(f) == 0]:
            common = min(numerator[f], denominator[f])
            numerator[f] -= common
            denominator[f] -= common
        return Term(coefficient, self._factors({f: k for f, k in numerator.items() if k}),
                    self._factors({f: k for f, k in denominator.items() if k}))

    def power(self, a: Term, n: int) -> Term:
        if n == 0:
            return Term(Fraction(1))
        numerator = tuple((f, k * abs(n)) for f, k in a.numerator)
        denominator = tuple((f, k * abs(n)) for f, k in a.denominator)
        if n < 0:
            numerator, denominator = denominator, numerator
        return Term(a.coefficient**n, numerator, denominator)

    def terms(self, node: Node) -> tuple[Term, ...]:
        """node as a sum of terms, like terms merged."""
        found = self._sums.get(node)
        if found is None:
            found = self._sums[node] = self._read_sum(node)
        return found

    def _read_sum(self, node: Node) -> tuple[Term, ...]:
        """Walks the chain of sums, differences and negations under node, like `_read_term`."""
        collected: list[Term] = []
        stack = [(node, 1)]
        while stack:
            item, sign = stack.pop()
            if item is not node and self._shared(item, self._sums):
                collected += [t.scaled(Fraction(sign)) for t in self.terms(item)]
            elif item.op == "add":
                stack += [(a, sign) for a in item.args]
            elif item.op == "sub":
                stack += [(item.args[0], sign), (item.args[1], -sign)]
            elif item.op == "neg":
                stack.append((item.args[0], -sign))
            else:
                t = self.term(item)
                inner = _lone_sum(t)
                if inner is not None:  # pow(a + b, 1), 1 * (a - b): read as the sum it is
                    stack.append((inner, sign * int(t.coefficient)))
                else:
                    collected.append(t.scaled(Fraction(sign)))
        return self._merge(collected)

    def _merge(self, terms: list[Term]) -> tuple[Term, ...]:
        """Like terms added up. Terms that cancel (x - x) are 0 only for finite x: unless the formula may
        assume finite values, they stay as one opaque factor x - x, which is NaN where x is NaN or infinite.
        (A term whose coefficient is 0 already, a product with a literal 0, is 0: x * 0 => 0.)"""
        merged: dict[tuple[Factors, Factors], Fraction] = {}
        cancelled = set()
        for t in terms:
            merged[t.key] = merged.get(t.key, Fraction(0)) + t.coefficient
            if t.coefficient != 0:
                cancelled.add(t.key)
        kept = []
        for key, c in merged.items():
            if c != 0:
                kept.append(Term(c, *key))
            elif key in cancelled and key != ((), ()) and not self.assume_finite:
                x = self.build_term(Term(Fraction(1), *key), max(f.dim for f, _ in key[0] + key[1]))
                kept.append(Term(Fraction(1), ((make("sub", x, x), 1),)))
        return tuple(kept)

    def term_level(self, t: Term) -> int:
        return max((self.level(f) for f in t.factors), default=0)

    # ---- writing the normal form back -----------------------------------------------------------------------
    def build_term(self, t: Term, dim: int) -> Node:
        if t.coefficient == 0:
            return A.zeros(dim)
        numerator, denominator = dict(t.numerator), dict(t.denominator)
        if self.algebraic:
            self._merge_exponentials(numerator, denominator)
            distributed = self._distributed(t.coefficient, numerator, denominator)
            if distributed is not None:
                return self.build_term(distributed, dim)
        magnitude, negative = abs(t.coefficient), t.coefficient < 0
        acc: Node | None = None
        if _nearest(magnitude) != 1.0:  # a coefficient that rounds to 1 is 1 in the kernel
            value = t.coefficient if negative else magnitude
            acc, negative = self.constant(value), False
        for level in (0, 1, 2):
            for f in sorted((f for f in numerator if self.level(f) == level), key=self.order):
                powered = _power(f, numerator[f])
                acc = powered if acc is None else make("mul", acc, powered)
            below = sorted((f for f in denominator if self.level(f) == level), key=self.order)
            if below:
                divisor = _chain([_power(f, denominator[f]) for f in below])
                acc = make("div", constant(1.0) if acc is None else acc, divisor)
            if level == 1 and negative and acc is not None:
                acc, negative = make("neg", acc), False  # the sign joins the hoisted part
        if acc is None:
            acc = constant(1.0)
        if negative:
            acc = make("neg", acc)
        return self._mark_normal(A.fit(acc, dim), {*numerator, *denominator})

    def _distributed(self, coefficient: Fraction, numerator: dict[Node, int],
                     denominator: dict[Node, int]) -> Term | None:
        """H K (a + h) => K (H a + H h), for H the factors computed outside the inner loop and (a + h) a sum
        (a scalar, used only here) with one term a computed per pair: no more work per pair (an fma, even),
        and the hand-written and derived forms of a formula meet (K (d - 3 s^2) / s^4 and
        K (d / s^4 - 3 / s^2) are one normal form). None when the product is not of that shape."""
        sums = [f for f, k in numerator.items() if k == 1 and f.op in ("add", "sub") and self.level(f) == 2
                and f.dim == 1 and self.uses[f] <= 1]  # a sum used elsewhere too stays one
        outside = Term(coefficient, self._factors({f: k for f, k in numerator.items() if self.level(f) < 2}),
                       self._factors({f: k for f, k in denominator.items() if self.level(f) < 2}))
        if len(sums) != 1 or (abs(coefficient) == 1 and not outside.factors):
            return None
        if outside.factors and not self.assume_finite:  # H inf and a + h > 0: H (a + h) = inf but H a + H h = NaN
            return None
        inner = self.terms(sums[0])
        if sum(self.term_level(u) == 2 for u in inner) != 1 or any(f is sums[0] for u in inner for f in u.factors):
            return None  # (a sum that reads as itself is a kept x - x: see _merge)
        # H may be wider than the scalar sum (a dimension-D factor times a scalar): the spread sum is as wide
        dim = max([sums[0].dim] + [f.dim for f in (*numerator, *denominator) if self.level(f) < 2])
        spread = self.settle(self.build_sum([self.product(outside, u) for u in inner], dim))
        rest = {f: k for f, k in numerator.items() if self.level(f) == 2 and f is not sums[0]}
        rest[spread] = rest.get(spread, 0) + 1
        return Term(Fraction(1), self._factors(rest),
                    self._factors({f: k for f, k in denominator.items() if self.level(f) == 2}))

    def _merge_exponentials(self, numerator: dict[Node, int], denominator: dict[Node, int]) -> None:
        """exp(a)^k * exp(b)^l / exp(c)^m => exp(k a + l b - m c), for exps used nowhere else."""
        exps = [(f, k) for f, k in numerator.items() if f.op == "exp" and self.uses[f] <= 1]
        exps += [(f, -k) for f, k in denominator.items() if f.op == "exp" and self.uses[f] <= 1]
        if len(exps) < 2:
            return
        argument: list[Term] = []
        for f, k in exps:
            numerator.pop(f, None)
            denominator.pop(f, None)
            argument += [t.scaled(Fraction(k)) for t in self.terms(f.args[0])]
        dim = max(f.dim for f, _ in exps)
        merged = make("exp", self.build_sum(list(self._merge(argument)), dim))
        numerator[merged] = numerator.get(merged, 0) + 1

    def build_sum(self, terms: list[Term] | tuple[Term, ...], dim: int) -> Node:
        if any(_lone_sum(t) is not None for t in terms):  # a term that is a sum itself joins this one
            terms = self._merge([u for t in terms for u in (
                (t,) if _lone_sum(t) is None else (v.scaled(t.coefficient) for v in self.terms(_lone_sum(t))))])
        terms = [t for t in terms if t.coefficient != 0]
        if not terms:
            return A.zeros(dim)
        hoisted = [t for t in terms if self.term_level(t) < 2]
        if self.algebraic:
            hoisted = self._sums_of_components(hoisted)
        hoisted.sort(key=lambda t: (self.term_level(t), self._term_order(t)))
        parts = [(self.term_level(t), t) for t in hoisted]
        parts += [(2, t) for t in self._factored([t for t in terms if self.term_level(t) == 2])]
        built: set[Node] = set()
        return self._mark_normal(A.fit(self._add_up(parts, built), dim), built)

    def _add_up(self, parts: list[tuple[int, Term]], built: set[Node]) -> Node:
        """The sum of (level, term) parts: level by level, positives before negatives, so that the low levels
        form one subexpression that leaves the inner loop; -(a + b) when every part is negative."""
        if len(parts) > 1 and all(t.coefficient < 0 for _, t in parts):
            return make("neg", self._add_up([(level, _magnitude(t)) for level, t in parts], built))
        acc: Node | None = None
        for level in (0, 1, 2):
            at_level = [t for lv, t in parts if lv == level]
            for t in [t for t in at_level if t.coefficient > 0] + [t for t in at_level if t.coefficient < 0]:
                piece = self.build_term(t if acc is None else _magnitude(t), t.dim)
                built.add(piece)
                acc = piece if acc is None else make("sub" if t.coefficient < 0 else "add", acc, piece)
        assert acc is not None
        return acc

    def _term_order(self, t: Term) -> tuple:
        return tuple(self.order(f) + (k,) for f, k in t.numerator), tuple(self.order(f) + (k,) for f, k in
                                                                           t.denominator)

    def _factored(self, terms: list[Term]) -> list[Term]:
        """Per-pair terms, with the factor common to most of them taken out, greedily; then sums of
        components gathered among what is left (after the common factors, so that K f(x0) + K f(x1) is
        K sum(f(x)) and the constant parts of each f(x_k) add up)."""
        terms = sorted(terms, key=self._term_order)
        if len(terms) < 2 or not self.algebraic:
            return terms
        counts: Counter[Node] = Counter(f for t in terms for f, _ in t.numerator if self.level(f) == 2)
        best = min(counts, key=lambda f: (-counts[f], self.order(f)), default=None)
        if best is None or counts[best] < 2:
            gathered = self._sums_of_components(terms)
            if len(gathered) < len(terms):
                return self._factored(gathered)
            magnitudes = {abs(t.coefficient) for t in terms}
            if len(magnitudes) == 1 and 1 not in magnitudes:  # c a + c b => c (a + b)
                (c,) = magnitudes
                inner = self.settle(self.build_sum([t.scaled(1 / c) for t in terms], max(t.dim for t in terms)))
                return [self.product(Term(c), self.term_of(inner))]
            return terms
        group = [_without(t, best) for t in terms if any(f is best for f, _ in t.numerator)]
        rest = [t for t in terms if not any(f is best for f, _ in t.numerator)]
        inner = self.settle(self.build_sum(group, max(t.dim for t in group)))
        factored = self.product(Term(Fraction(1), ((best, 1),)), self.term_of(inner))
        return [factored, *self._factored(rest)]

    def term_of(self, node: Node) -> Term:
        """node as one term; a sum stays one factor, but its sign joins the coefficient."""
        terms = self.terms(node)
        if len(terms) > 1 and all(t.coefficient < 0 for t in terms):
            return Term(Fraction(-1), ((self.settle(self.build_sum([t.scaled(Fraction(-1)) for t in terms],
                                                                   node.dim)), 1),))
        return self.term(node)

    # ---- sums of components: f(a[0]) + ... + f(a[D-1]) => sum(f(a)) ----------------------------------------------
    def _sums_of_components(self, terms: list[Term]) -> list[Term]:
        groups: dict[tuple, list[tuple[int, Term]]] = {}
        keep: list[Term] = []
        for t in terms:
            lifted = self._lift_term(t) if t.dim == 1 else None
            if lifted is None:
                keep.append(t)
                continue
            index, outside, vector = lifted
            groups.setdefault((outside.key, outside.coefficient, vector.key), []).append((index, t))
        for members in groups.values():
            t0 = members[0][1]
            _, outside, vector = self._lift_term(t0)
            if sorted(i for i, _ in members) != list(range(vector.dim)) or vector.dim < 2:
                keep += [t for _, t in members]
                continue
            total = make("sum", self.build_term(vector, vector.dim))
            keep.append(self.product(outside, Term(Fraction(1), ((total, 1),))))
        return keep

    def _lift_term(self, t: Term) -> tuple[int, Term, Term] | None:
        """(k, the factors without components, the vector whose component k the rest is) or None."""
        index, inside, outside, dims = None, [], [], set()
        for part, factors in (("n", t.numerator), ("d", t.denominator)):
            for f, k in factors:
                lifted = self._lift(f)
                if lifted is _FAIL:
                    return None
                if lifted is None:
                    outside.append((part, f, k))
                    continue
                vector, i = lifted
                if index not in (None, i):
                    return None
                index = i
                dims.add(vector.dim)
                inside.append((part, vector, k))
        if index is None or len(dims) != 1:
            return None

        def term(items: list, coefficient: Fraction) -> Term:
            return Term(coefficient, self._factors({f: k for p, f, k in items if p == "n"}),
                        self._factors({f: k for p, f, k in items if p == "d"}))

        return index, term(outside, t.coefficient), term(inside, Fraction(1))

    def _lift(self, node: Node):
        """(v, k) with node = component k of the vector formula v, None if node reads no component, or _FAIL."""
        if node in self._lifted:
            return self._lifted[node]
        if node.op == "elem" and node.args[0].dim > 1:
            result = (node.args[0], node.attr("index"))
        elif not node.args:
            result = None
        elif node.op in ELEMENTWISE and node.dim == 1:
            parts = [self._lift(a) for a in node.args]
            if any(p is _FAIL for p in parts):
                result = _FAIL
            elif all(p is None for p in parts):
                result = None
            else:
                found = {(p[0].dim, p[1]) for p in parts if p is not None}
                if len(found) != 1:
                    result = _FAIL
                else:
                    args = [a if p is None else p[0] for a, p in zip(node.args, parts)]
                    result = (Node(node.op, tuple(args), node.attrs), found.pop()[1])
        else:
            result = _FAIL if any(self._lift(a) is not None for a in node.args) else None
        self._lifted[node] = result
        return result


_FAIL = object()
PRODUCT_OPS = frozenset({"mul", "div", "neg", "square", "pow"})


def _read_through(user: Node, operand: Node) -> bool:
    """Whether the normal form of user reads operand's own products and sums: a sum reads every arithmetic
    operand, a product (or a negation) reads products only."""
    if user.op in ("add", "sub"):
        return operand.op in ARITHMETIC
    return user.op in PRODUCT_OPS and operand.op in PRODUCT_OPS


def _power(f: Node, k: int) -> Node:
    return f if k == 1 else make("square", f) if k == 2 else make("pow", f, exponent=k)


def _chain(factors: list[Node]) -> Node:
    acc = factors[0]
    for f in factors[1:]:
        acc = make("mul", acc, f)
    return acc


def _lone_sum(t: Term) -> Node | None:
    """The sum s if the term is +-s, else None."""
    if abs(t.coefficient) != 1 or t.denominator or len(t.numerator) != 1:
        return None
    factor, power = t.numerator[0]
    return factor if power == 1 and factor.op in ("add", "sub") else None


def _magnitude(t: Term) -> Term:
    return Term(abs(t.coefficient), t.numerator, t.denominator)


def _without(t: Term, factor: Node) -> Term:
    powers = {f: k - (f is factor) for f, k in t.numerator}
    return Term(t.coefficient, tuple((f, k) for f, k in powers.items() if k), t.denominator)


# ---- the rules, one entry per op ---------------------------------------------------------------------------------



def _fold(s: Simplifier, node: Node) -> Node | None:
    """The folding smart constructor of keir.dialect.algebra, where the op has one."""
    return A.rebuild(node, node.args)


def normal_form(s: Simplifier, node: Node) -> Node | None:
    if node in s.normal or node is s.read_by_user:
        return None
    return s.build_sum(s.terms(node), node.dim)


def _zero_piece(node: Node) -> bool:
    return node.op == "concat" and any(A.is_zero(a) or _zero_piece(a) for a in node.args)


def _split_concat(s: Simplifier, node: Node) -> Node | None:
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


def _scalar_and_vector(s: Simplifier, node: Node) -> tuple[Term, Term]:
    """node's term split into its scalar part (coefficient, dimension-1 factors) and its vector part."""
    t = s.term(node)
    scalar = Term(t.coefficient, tuple(x for x in t.numerator if x[0].dim == 1),
                  tuple(x for x in t.denominator if x[0].dim == 1))
    vector = Term(Fraction(1), tuple(x for x in t.numerator if x[0].dim > 1),
                  tuple(x for x in t.denominator if x[0].dim > 1))
    return scalar, vector


def _pulled(s: Simplifier, scalar: Term, inner: Node) -> Node:
    return s.build_term(s.product(scalar, Term(Fraction(1), ((inner, 1),))), 1)


def _sum(s: Simplifier, node: Node) -> Node | None:
    (a,) = node.args
    folded = A.sum_(a)
    if folded is not node:
        return folded
    if a.op == "concat":
        return make("add", A.sum_(a.args[0]), A.sum_(a.args[1]))
    scalar, vector = _scalar_and_vector(s, a)
    if vector.denominator or not vector.numerator:
        return None
    if len(vector.numerator) == 1 and vector.numerator[0][1] == 2:
        inner = make("sqnorm2", vector.numerator[0][0])
    elif len(vector.numerator) == 2 and all(k == 1 for _, k in vector.numerator):
        inner = make("dot", vector.numerator[0][0], vector.numerator[1][0])
    elif scalar.key == ((), ()) and scalar.coefficient == 1:
        return None
    else:
        inner = make("sum", s.build_term(vector, a.dim))
    return _pulled(s, scalar, inner)


def _dot(s: Simplifier, node: Node) -> Node | None:
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
    (sa, va), (sb, vb) = _scalar_and_vector(s, a), _scalar_and_vector(s, b)
    scalar = s.product(sa, sb)
    if scalar.key == ((), ()) and scalar.coefficient == 1:
        return None
    left, right = s.build_term(va, a.dim), s.build_term(vb, b.dim)
    return _pulled(s, scalar, make("sqnorm2", left) if left is right else make("dot", left, right))


def _sqnorm2(s: Simplifier, node: Node) -> Node | None:
    (a,) = node.args
    folded = A.sqnorm2(a)
    if folded is not node:
        return folded
    if a.op == "sub":
        return make("sqdist", *(A.fit(x, a.dim) for x in a.args))
    if a.op == "concat":
        return make("add", A.sqnorm2(a.args[0]), A.sqnorm2(a.args[1]))
    scalar, vector = _scalar_and_vector(s, a)
    if scalar.key == ((), ()) and abs(scalar.coefficient) == 1:
        return None if scalar.coefficient == 1 else make("sqnorm2", s.build_term(vector, a.dim))
    return _pulled(s, s.power(scalar, 2), make("sqnorm2", s.build_term(vector, a.dim)))


def _sqdist(s: Simplifier, node: Node) -> Node | None:
    """The smart constructor's folds, except sqdist(x, x) => 0: like x - x, it is NaN where x is NaN or
    infinite, so it stays unless the formula may assume finite values (a 0 there would let a product with it
    fold: powf(y, sqdist(x, x)) = exp(sqdist(x, x) log y) is NaN for y < 0, not exp(0) = 1)."""
    a, b = node.args
    if a is b and not s.assume_finite:
        return None
    return A.sqdist(a, b)


def _elem(s: Simplifier, node: Node) -> Node | None:
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
    RewriteRule("normal-form", ("add", "sub", "mul", "div", "neg", "square", "pow"), normal_form,
                "x / 3 * 3 => x, x + x => 2 * x, x * x => square(x), exp(a) * exp(b) => exp(a + b), K a + K b => "
                "K (a + b), factors ordered by loop level (see the module docstring)"),
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


Simplifier.rules, Simplifier.default = rule_table()


def _nearest(value: Fraction) -> float:
    """The float64 nearest to value; ±inf beyond float64's range (a sum of large constants), as arithmetic gives."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def simplify(root: Node, inner: str | None = None, elem: str = "f64", assume_finite: bool = False,
             max_rounds: int = MAX_ROUNDS, disabled: frozenset[str] = frozenset()) -> Node:
    return Simplifier(inner or inner_category(root), elem, assume_finite, max_rounds, disabled).simplify(root)


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
