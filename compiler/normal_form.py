"""The normal form of keir arithmetic: sums of products with exact rational coefficients, ordered by loop level.

keir-simplify and keir-hoist read each chain of add, sub, neg, mul, div, square and pow into this form and
write it back out: keir-simplify with the algebraic rewrites below, keir-hoist with only the regrouping.

A `Term` is coefficient * prod(f^k for the numerator) / prod(f^k for the denominator): the coefficient an exact
`fractions.Fraction`, numerator and denominator (factor, positive integer exponent) pairs in canonical order
(loop level, then structure: `keir.compiler.loop_levels`). A node in normal form is a sum of terms.

Reading (`term`, `terms`) walks the chain of products, quotients, powers and negations (a term), or of sums,
differences and negations (a sum), under a node without recursion, so a long chain costs its length. An
operand used elsewhere too, or read before, is read through its own remembered normal form, so a shared
subexpression is one factor. Constants join the coefficient exactly: a constant this form wrote is
remembered as the rational it stands for (x / 3 * 3 => x). Like factors add their exponents, like terms
their coefficients.

Writing (`build_term`, `build_sum`) gives a chain of binary ops back: a term's coefficient first (left out
where it rounds to 1), then its factors level by level -- constants and parameters, then what depends on the
outer index only, then what is computed per pair -- each level's denominator one division, so that the
first levels form one subexpression that leaves the inner loop (a sign joins that part); a sum's terms level
by level likewise, positives before negatives. What is written is marked as in normal form for the rest of
the sweep, so that the normal-form rule (`rewrite`) leaves it.

With `algebraic` (keir-simplify; keir-hoist turns it off) writing also
    merges exponentials used nowhere else     exp(a) * exp(b) / exp(c) => exp(a + b - c)   (with assume_finite:
                                              exp(1000) * exp(-1000) is inf * 0 = NaN, exp(0) is 1; and the
                                              merged exp's error grows with |a + b|)
    spreads a hoisted part over a sum         H (a + h) => H a + H h   (a + h a scalar used only here, a the only
                                              per-pair term; H the coefficient, and factors with assume_finite)
    takes common factors out of sums          K a + K b => K (a + b)   (greedily, factors computed per pair)
    gathers sums of components                f(x[0]) + ... + f(x[D-1]) => sum(f(x))

Invariants:
    Nothing that is NaN for NaN or infinite values becomes a number. Terms that cancel (x - x) stay, as one
    opaque factor x - x, and nothing is cancelled between numerator and denominator (x / x stays; s^2 / s^4
    too, being NaN at 0) -- unless the formula may assume finite values (`assume_finite`): then cancelled
    terms are 0 and powers of factors computed once per call cancel (s^2 / s^4 => 1 / s^2; x / x still stays).
    A term whose coefficient is 0, a product with a literal 0, is 0 (x * 0 => 0).
    Folded constants stay in the normal range of the kernel's float type (`elem`): a product whose coefficient
    would leave it (overflow, underflow, division by a subnormal) or that divides by 0 stays as written, one
    factor. A coefficient is written as the float64 nearest to it (±inf beyond float64's range).

A `NormalForm` serves one run of a pass over one formula and remembers what it read across sweeps. The run's
`keir.compiler.rewriter.Rewriter` hands it each sweep (`start_sweep`), of which it reads `uses` (a node used
more than once stays one factor, is not spread or merged), `done` (where marking normal forms stops),
`current` and `only_user` (a node that its only user reads as part of a longer chain is left to the chain's
end), and calls `settle` on the sums it builds inside a term.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from keir.compiler.loop_levels import loop_level, order_key
from keir.compiler.rewriter import Rewriter
from keir.dialect import algebra as A
from keir.dialect.catalogue import ELEMENTWISE
from keir.dialect.node import Node, constant, make

# The normal range of each float type (smallest and largest magnitude) that folded constants stay in.
NORMAL_RANGE = {"f32": (Fraction(2) ** -126, Fraction(2) ** 127), "f64": (Fraction(2) ** -1022, Fraction(2) ** 1023)}

# The most bits a folded power may take to compute. An exact power past it is far outside every float range
# (unless the base is 0 or +-1), and computing it would not end: 0.25 ** 10**20, from `(x * 0.25) ** 1e20`.
POWER_BITS = 1 << 14
# (a b)^n is read as a^n b^n only for |n| up to this: a^n or b^n alone can overflow (or underflow) where (a b)^n
# does not, (y / x)^(2^31) = inf / inf = NaN, and the larger n, the more ordinary the values that do it.
DISTRIBUTED_POWER = 4


def _bounded_power(value: Fraction, k: int) -> Fraction | None:
    """value ** k exactly; None for a division by zero or a power that would need more than POWER_BITS bits."""
    if value == 0:
        return None if k < 0 else Fraction(0 if k else 1)
    if abs(value) == 1:
        return value if k % 2 else Fraction(1)
    if abs(k) * max(value.numerator.bit_length(), value.denominator.bit_length()) > POWER_BITS:
        return None
    return value**k


ARITHMETIC = frozenset({"add", "sub", "neg", "mul", "div", "square", "pow"})  # the ops read into the normal form
PRODUCT_OPS = frozenset({"mul", "div", "neg", "square", "pow"})

Factors = tuple[tuple[Node, int], ...]  # (factor, positive exponent), in canonical order


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


class NormalForm:
    """Reads and writes the normal form for one formula whose innermost loop runs over category `inner`;
    `elem` is the kernel's float type, `algebraic` turns on the rewrites beyond regrouping."""

    sweep: Rewriter  # the sweep under way, handed over by start_sweep

    def __init__(self, inner: str, elem: str = "f64", assume_finite: bool = False, algebraic: bool = True):
        self.inner = inner
        # Folded constants stay within the normal range of the kernel's float type: beyond it, folding
        # x * c1 * c2 or x / c into one constant would overflow, underflow or divide by a subnormal.
        self.constant_range = NORMAL_RANGE[elem]
        self.assume_finite = assume_finite
        self.algebraic = algebraic
        self._terms: dict[Node, Term] = {}
        self._sums: dict[Node, tuple[Term, ...]] = {}
        self._lifted: dict[Node, object] = {}
        self._exact: dict[Node, Fraction] = {}  # constants this form wrote, with their exact rational values
        self._normal: set[Node] = set()  # products and sums written by build_* this sweep: in normal form

    def start_sweep(self, sweep: Rewriter) -> None:
        """The rewriter's `on_sweep`: reads go to the new sweep, and the last sweep's normal forms are forgotten
        (the new one reads them with its own use counts)."""
        self.sweep = sweep
        self._normal = set()

    def rewrite(self, node: Node) -> Node | None:
        """The normal-form rule: node read and written back. Left alone when written in normal form already,
        or when its only user reads it as part of a longer chain of products or sums (normalised as a whole,
        at the chain's end)."""
        sweep = self.sweep
        if node in self._normal or (node is sweep.current and sweep.only_user is not None
                                   and _read_through(sweep.only_user, node)):
            return None
        return self.build_sum(self.terms(node), node.dim)

    def _mark_normal(self, node: Node, pieces: set[Node]) -> Node:
        """node, with the products and sums that build_* wrote it with from `pieces` (its factors or terms)
        marked as already in normal form."""
        done, stack = self.sweep.done, [node]
        while stack:
            item = stack.pop()
            if item.op in ARITHMETIC and item not in pieces and item not in done and item not in self._normal:
                self._normal.add(item)
                stack.extend(item.args)
        return node

    def _constant(self, value: Fraction) -> Node:
        """The float constant nearest to value, remembered as exactly value for later folding."""
        node = constant(_nearest(value))
        self._exact.setdefault(node, value)
        return node

    def _level(self, node: Node) -> int:
        return loop_level(node, self.inner)

    def _order(self, node: Node) -> tuple[int, bytes]:
        return order_key(node, self.inner)

    # ---- reading the normal form ----------------------------------------------------------------------------
    def term(self, node: Node) -> Term:
        """node as one term (products, quotients, powers and signs flattened)."""
        found = self._terms.get(node)
        if found is None:
            found = self._terms[node] = self._read_term(node)
        return found

    def _shared(self, node: Node, memo: dict) -> bool:
        """Whether a chain being read stops at node and takes its own (remembered) normal form."""
        return self.sweep.uses[node] > 1 or node in memo

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
                value = self._exact.get(A.splat_value(item), Fraction(value))
                power = _bounded_power(value, k)
                if power is None or not self._foldable(coefficient * power):
                    return Term(Fraction(1), ((node, 1),))  # a division by zero stays as written, and so on
                coefficient *= power
                continue
            if item is not node and self._shared(item, self._terms):
                shared = self.term(item)
                power = _bounded_power(shared.coefficient, k)
                if power is None or not self._foldable(coefficient * power):
                    return Term(Fraction(1), ((node, 1),))
                coefficient *= power
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
                base = item.args[0]
                if abs(k * exponent) > DISTRIBUTED_POWER:  # signs come out; a product stays one factor
                    while base.op == "neg":
                        coefficient *= -1 if (k * exponent) % 2 else 1
                        base = base.args[0]
                    if base.op in ("mul", "div"):
                        factor = item if base is item.args[0] else make("pow", base, exponent=exponent)
                        side = powers[0] if k > 0 else powers[1]
                        side[factor] = side.get(factor, 0) + abs(k)
                        continue
                if exponent:  # pow(a, 0) is 1
                    stack.append((base, k * exponent))
            else:
                side = powers[0] if k > 0 else powers[1]
                side[item] = side.get(item, 0) + abs(k)
        return self._cancelled(coefficient, *powers)

    def _foldable(self, value: Fraction) -> bool:
        low, high = self.constant_range
        return value == 0 or low <= abs(value) <= high

    def _factors(self, powers: dict[Node, int]) -> Factors:
        return tuple(sorted(powers.items(), key=lambda item: self._order(item[0])))

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
        for f in [f for f in numerator if f in denominator and self._level(f) == 0]:
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

    def _term_level(self, t: Term) -> int:
        return max((self._level(f) for f in t.factors), default=0)

    # ---- writing the normal form back -----------------------------------------------------------------------
    def build_term(self, t: Term, dim: int) -> Node:
        if t.coefficient == 0:
            return A.zeros(dim)
        numerator, denominator = dict(t.numerator), dict(t.denominator)
        if self.algebraic:
            if self.assume_finite:
                self._merge_exponentials(numerator, denominator)
            distributed = self._distributed(t.coefficient, numerator, denominator)
            if distributed is not None:
                return self.build_term(distributed, dim)
        magnitude, negative = abs(t.coefficient), t.coefficient < 0
        acc: Node | None = None
        if _nearest(magnitude) != 1.0:  # a coefficient that rounds to 1 is 1 in the kernel
            value = t.coefficient if negative else magnitude
            acc, negative = self._constant(value), False
        for level in (0, 1, 2):
            for f in sorted((f for f in numerator if self._level(f) == level), key=self._order):
                powered = _power(f, numerator[f])
                acc = powered if acc is None else make("mul", acc, powered)
            below = sorted((f for f in denominator if self._level(f) == level), key=self._order)
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
        sums = [f for f, k in numerator.items() if k == 1 and f.op in ("add", "sub") and self._level(f) == 2
                and f.dim == 1 and self.sweep.uses[f] <= 1]  # a sum used elsewhere too stays one
        outside = Term(coefficient, self._factors({f: k for f, k in numerator.items() if self._level(f) < 2}),
                       self._factors({f: k for f, k in denominator.items() if self._level(f) < 2}))
        if len(sums) != 1 or (abs(coefficient) == 1 and not outside.factors):
            return None
        if outside.factors and not self.assume_finite:  # H inf and a + h > 0: H (a + h) = inf but H a + H h = NaN
            return None
        inner = self.terms(sums[0])
        if sum(self._term_level(u) == 2 for u in inner) != 1 or any(f is sums[0] for u in inner for f in u.factors):
            return None  # (a sum that reads as itself is a kept x - x: see _merge)
        # H may be wider than the scalar sum (a dimension-D factor times a scalar): the spread sum is as wide
        dim = max([sums[0].dim] + [f.dim for f in (*numerator, *denominator) if self._level(f) < 2])
        spread = self.sweep.settle(self.build_sum([self.product(outside, u) for u in inner], dim))
        rest = {f: k for f, k in numerator.items() if self._level(f) == 2 and f is not sums[0]}
        rest[spread] = rest.get(spread, 0) + 1
        return Term(Fraction(1), self._factors(rest),
                    self._factors({f: k for f, k in denominator.items() if self._level(f) == 2}))

    def _merge_exponentials(self, numerator: dict[Node, int], denominator: dict[Node, int]) -> None:
        """exp(a)^k * exp(b)^l / exp(c)^m => exp(k a + l b - m c), for exps used nowhere else."""
        exps = [(f, k) for f, k in numerator.items() if f.op == "exp" and self.sweep.uses[f] <= 1]
        exps += [(f, -k) for f, k in denominator.items() if f.op == "exp" and self.sweep.uses[f] <= 1]
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
        hoisted = [t for t in terms if self._term_level(t) < 2]
        if self.algebraic:
            hoisted = self._sums_of_components(hoisted)
        hoisted.sort(key=lambda t: (self._term_level(t), self._term_order(t)))
        parts = [(self._term_level(t), t) for t in hoisted]
        parts += [(2, t) for t in self._factored([t for t in terms if self._term_level(t) == 2])]
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
        return tuple(self._order(f) + (k,) for f, k in t.numerator), tuple(self._order(f) + (k,) for f, k in
                                                                           t.denominator)

    def _factored(self, terms: list[Term]) -> list[Term]:
        """Per-pair terms, with the factor common to most of them taken out, greedily; then sums of
        components gathered among what is left (after the common factors, so that K f(x0) + K f(x1) is
        K sum(f(x)) and the constant parts of each f(x_k) add up)."""
        terms = sorted(terms, key=self._term_order)
        if len(terms) < 2 or not self.algebraic:
            return terms
        counts: Counter[Node] = Counter(f for t in terms for f, _ in t.numerator if self._level(f) == 2)
        best = min(counts, key=lambda f: (-counts[f], self._order(f)), default=None)
        if best is None or counts[best] < 2:
            gathered = self._sums_of_components(terms)
            if len(gathered) < len(terms):
                return self._factored(gathered)
            magnitudes = {abs(t.coefficient) for t in terms}
            if len(magnitudes) == 1 and 1 not in magnitudes:  # c a + c b => c (a + b)
                (c,) = magnitudes
                inner = self.sweep.settle(self.build_sum([t.scaled(1 / c) for t in terms], max(t.dim for t in terms)))
                return [self.product(Term(c), self._term_of(inner))]
            return terms
        group = [_without(t, best) for t in terms if any(f is best for f, _ in t.numerator)]
        rest = [t for t in terms if not any(f is best for f, _ in t.numerator)]
        inner = self.sweep.settle(self.build_sum(group, max(t.dim for t in group)))
        factored = self.product(Term(Fraction(1), ((best, 1),)), self._term_of(inner))
        return [factored, *self._factored(rest)]

    def _term_of(self, node: Node) -> Term:
        """node as one term; a sum stays one factor, but its sign joins the coefficient."""
        terms = self.terms(node)
        if len(terms) > 1 and all(t.coefficient < 0 for t in terms):
            return Term(Fraction(-1), ((self.sweep.settle(self.build_sum([t.scaled(Fraction(-1)) for t in terms],
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


_FAIL = object()  # _lift: the node reads components, but not of one vector at one index


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



def _nearest(value: Fraction) -> float:
    """The float64 nearest to value; ±inf beyond float64's range (a sum of large constants), as arithmetic gives."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)

