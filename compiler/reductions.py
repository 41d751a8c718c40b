"""How each reduction kind accumulates over the j loop, as one small class per kind.

A reduction keeps a loop-carried state of vectors (one lane per j residue class), updates it with the
formula's value at lanes j..j+L-1, and at the end folds the lanes into the row's outputs: floats (`%out`,
`float_width` per row) and/or int64 indices (`%out_idx`, `index_width` per row).

    sum            acc += f                                   (options: dtype_acc, sum_scheme)
    min / max      acc = min(acc, f)
    argmin/argmax  (value, index) per lane; ties go to the smallest index
    min_argmin, max_argmax   both
    kmin, argkmin, kmin_argkmin   the K smallest, sorted, per component (insertion network per lane)
    logsumexp      online maximum: m = max(m, f), s = s * exp(m_old - m) + exp(f - m), one exp per pair; a
                   vector whose terms all stay within SLACK above m adds exp(f - m) and leaves m (a branch)
    logsumexp_weight, sumsoftmaxweight   operand = concat(f, g): log sum exp(f) g,  sum exp(f) g / sum exp(f)

A formula of large dimension (lower_cpu's component loops) splits the state into a head, carried by the j
loop, and one slice per component of the formula from `head_dims` on, kept in memory and updated in a loop
over the components: the `head_*` and `component_*` methods. By default the head is empty and each component
is a reduction of dimension 1 (every kind treats its components independently but the weighted log-sum-exp,
whose head is the running maximum of f).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keir.compiler import literals, mathlib
from keir.compiler.mlir_text import Builder
from keir.dialect.ops import SUM_TYPE_KINDS

if TYPE_CHECKING:
    from keir.dialect.node import Node

INT64_MAX = (1 << 63) - 1


def default_sum_scheme(kind: str) -> str:
    """pykeops' default ("auto"): block_sum for the sum-type reductions, direct_sum for the others."""
    return "block_sum" if kind in SUM_TYPE_KINDS else "direct_sum"


@dataclass(frozen=True)
class ReductionOptions:
    kind: str
    dim: int  # the reduced formula's dimension
    k: int = 1  # for the K-min family
    sum_scheme: str = "direct_sum"  # direct_sum | block_sum | kahan_scheme
    dtype_acc: str | None = None  # "float64" to accumulate float32 sums in double

    @classmethod
    def of(cls, reduce: Node) -> ReductionOptions:
        """The options of keir.reduce node `reduce`: its attributes, the defaults for those it leaves out."""
        attrs = dict(reduce.attrs)
        return cls(attrs["kind"], reduce.args[0].dim, attrs.get("k", 1),
                   attrs.get("sum_scheme", default_sum_scheme(attrs["kind"])), attrs.get("dtype_acc"))


class Accumulator(ABC):
    """One reduction kind on vectors of `lanes` x `elem`."""

    needs_index = False
    # whether a step may add a term exp(u) * w to the state itself (`mathlib.exp_product_sums`)
    adds_exp_products = False

    def __init__(self, options: ReductionOptions, elem: str, lanes: int):
        self.options, self.elem, self.lanes = options, elem, lanes
        self.vtype = f"vector<{lanes}x{elem}>"
        self.itype = f"vector<{lanes}xi64>"

    @abstractmethod
    def state_types(self) -> list[str]:
        """The loop-carried vector types."""

    @abstractmethod
    def init(self, b: Builder) -> list[str]:
        """See the module docstring."""

    @abstractmethod
    def update(self, b: Builder, state: list[str], f: list[str], mask: str | None, j: str | None) -> list[str]:
        """See the module docstring."""

    def update_rows(self, b: Builder, states: list[list[str]], fs: list[list[str]], mask: str | None,
                    j: str | None) -> list[str]:
        """The updates of a block of rows at one step (their states, then their terms), state after state: by
        default, `update` for each row; a kind may test its rows once for a common path."""
        return [v for state, f in zip(states, fs) for v in self.update(b, state, f, mask, j)]

    @abstractmethod
    def finish(self, b: Builder, state: list[str]) -> tuple[list[str], list[str]]:
        """See the module docstring."""

    # helpers -------------------------------------------------------------------------------------------
    def splat(self, b: Builder, value: float) -> str:
        return b.const(value)

    def int_splat(self, b: Builder, value: int) -> str:
        return b.emit(literals.constant(value, self.itype), "c")

    def reduce_lanes(self, b: Builder, how: str, vector: str, vtype: str | None = None, elem: str | None = None) -> str:
        return b.emit(f"vector.reduction <{how}>, {vector} : {vtype or self.vtype} into {elem or self.elem}", "s")

    def select_i(self, b: Builder, mask: str, x: str, y: str) -> str:
        return b.emit(f"arith.select {mask}, {x}, {y} : vector<{self.lanes}xi1>, {self.itype}")

    def and_masks(self, b: Builder, x: str, y: str | None) -> str:
        return x if y is None else b.emit(f"arith.andi {x}, {y} : vector<{self.lanes}xi1>", "m")

    # wide formulas: a head and one slice per component (see the module docstring) -----------------------
    head_dims = 0  # leading components of the formula that the head takes

    @functools.cached_property
    def per_component(self) -> Accumulator:
        return type(self)(dataclasses.replace(self.options, dim=1), self.elem, self.lanes)

    def head_types(self) -> list[str]:
        return []

    def head_init(self, b: Builder) -> list[str]:
        return []

    def component_types(self) -> list[str]:
        return self.per_component.state_types()

    def component_init(self, b: Builder) -> list[str]:
        return self.per_component.init(b)

    def head_update(self, b: Builder, head: list[str], f: list[str], mask: str | None,
                    j: str | None) -> tuple[list[str], object]:
        """The new head, and what the components' updates share."""
        return [], None

    def component_update(self, b: Builder, context: object, state: list[str], f: str, mask: str | None,
                         j: str | None) -> list[str]:
        return self.per_component.update(b, state, [f], mask, j)

    def head_merge(self, b: Builder, outer: list[str], inner: list[str]) -> tuple[list[str], object]:
        return [], None

    def component_merge(self, b: Builder, context: object, outer: list[str], inner: list[str]) -> list[str]:
        return self.per_component.merge(b, outer, inner)

    def head_finish(self, b: Builder, head: list[str]) -> object:
        return None

    def component_finish(self, b: Builder, context: object, state: list[str]) -> tuple[list[str], list[str]]:
        return self.per_component.finish(b, state)


class Sum(Accumulator):
    def __init__(self, options: ReductionOptions, elem: str, lanes: int):
        super().__init__(options, elem, lanes)
        self.wide = options.dtype_acc == "float64" and elem == "f32"
        self.acc_type = f"vector<{lanes}xf64>" if self.wide else self.vtype
        self.kahan = options.sum_scheme == "kahan_scheme"
        self.adds_exp_products = not self.kahan and not self.wide  # a plain sum in the formula's dtype

    def state_types(self) -> list[str]:
        return [self.acc_type] * (self.options.dim * (2 if self.kahan else 1))

    def init(self, b: Builder) -> list[str]:
        zero = b.emit(literals.constant(0.0, self.acc_type), "z")
        return [zero] * len(self.state_types())

    def widen(self, b: Builder, value: str) -> str:
        return b.emit(f"arith.extf {value} : {self.vtype} to {self.acc_type}") if self.wide else value

    def update(self, b, state, f, mask, j):
        d = self.options.dim
        terms = [self.widen(b, v if mask is None else b.select(mask, v, b.const(0.0))) for v in f]
        add = lambda x, y: b.emit(f"arith.addf {x}, {y} : {self.acc_type}")  # noqa: E731
        sub = lambda x, y: b.emit(f"arith.subf {x}, {y} : {self.acc_type}")  # noqa: E731
        if not self.kahan:
            return [add(a, t) for a, t in zip(state, terms)]
        sums, carries = state[:d], state[d:]
        new_sums, new_carries = [], []
        zero = b.emit(literals.constant(0.0, self.acc_type), "z")
        for total, carry, term in zip(sums, carries, terms):  # Kahan: carry holds what the total lost
            y = sub(term, carry)
            t = add(total, y)
            lost = sub(sub(t, total), y)
            # Once the total is infinite, (t - total) - y is inf - inf = NaN, which would turn the next terms into
            # NaN: an unordered (NaN) carry is dropped, so that the total stays what plain summation gives.
            ordered = b.emit(f"arith.cmpf ord, {lost}, {lost} : {self.acc_type}", "m")
            new_carries.append(
                b.emit(f"arith.select {ordered}, {lost}, {zero} : vector<{self.lanes}xi1>, {self.acc_type}"))
            new_sums.append(t)
        return new_sums + new_carries

    def merge(self, b: Builder, outer: list[str], inner: list[str]) -> list[str]:
        """Fold a block's partial state into the running state (block_sum)."""
        return [b.emit(f"arith.addf {x}, {y} : {self.acc_type}") for x, y in zip(outer, inner)]

    def finish(self, b, state):
        d = self.options.dim
        acc_elem = "f64" if self.wide else self.elem
        out = []
        for k in range(d):
            total = state[k]
            if self.kahan:
                total = b.emit(f"arith.subf {total}, {state[d + k]} : {self.acc_type}")
            value = self.reduce_lanes(b, "add", total, self.acc_type, acc_elem)
            if self.wide:
                value = b.emit(f"arith.truncf {value} : f64 to f32")
            out.append(value)
        return out, []


class MinMax(Accumulator):
    """min, max, argmin, argmax, min_argmin, max_argmax."""

    def __init__(self, options: ReductionOptions, elem: str, lanes: int):
        super().__init__(options, elem, lanes)
        kind = options.kind
        self.is_max = "max" in kind
        self.values = kind in ("min", "max", "min_argmin", "max_argmax")
        self.indices = "arg" in kind
        self.needs_index = self.indices

    def state_types(self) -> list[str]:
        d = self.options.dim
        return [self.vtype] * d + ([self.itype] * d if self.indices else [])

    def init(self, b):
        start = self.splat(b, -math.inf if self.is_max else math.inf)
        state = [start] * self.options.dim
        if self.indices:
            state += [self.int_splat(b, INT64_MAX)] * self.options.dim
        return state

    def update(self, b, state, f, mask, j):
        d = self.options.dim
        new_values, new_indices = [], []
        for k in range(d):
            better = b.cmp("ogt" if self.is_max else "olt", f[k], state[k])
            better = self.and_masks(b, better, mask)
            new_values.append(b.select(better, f[k], state[k]))
            if self.indices:
                new_indices.append(self.select_i(b, better, j, state[d + k]))
        return new_values + new_indices

    def finish(self, b, state):
        d = self.options.dim
        values, indices = [], []
        for k in range(d):
            best = self.reduce_lanes(b, "maximumf" if self.is_max else "minimumf", state[k])
            values.append(best)
            if self.indices:
                vb = Builder(b.names, self.elem, self.lanes, b.lines, b.indent)
                hit = vb.cmp("oeq", state[k], b.emit(f"vector.broadcast {best} : {self.elem} to {self.vtype}"))
                candidates = self.select_i(b, hit, state[d + k], self.int_splat(b, INT64_MAX))
                index = self.reduce_lanes(b, "minsi", candidates, self.itype, "i64")
                # No term beat the start value (every term is +inf for argmin, or NaN): all of them tie, and the
                # first wins, as with every other tie (KeOps and NumPy give 0 too).
                none = b.emit(f"arith.cmpi eq, {index}, {b.emit(literals.constant(INT64_MAX, 'i64'), 'q')} : i64",
                              "m")
                first = b.emit(literals.constant(0, "i64"), "q")
                indices.append(b.emit(f"arith.select {none}, {first}, {index} : i64", "q"))
        return (values if self.values else []), indices


class KMin(Accumulator):
    """The K smallest values per component, sorted, with their indices (ties: smallest index first).

    An empty slot holds NaN (index INT64_MAX), which every term beats under an unordered comparison, so that a
    term of +inf still fills a slot; a NaN term counts as +inf. A new term v goes to the first slot it is
    strictly smaller than (a later index loses ties) and everything after that slot moves down by one: with
    c_s = (v < slot_s), slot_s takes slot_(s-1) if c_(s-1), else v if c_s, else keeps its own. The K
    comparisons are independent of each other (no chain through the displaced values)."""

    needs_index = True

    def state_types(self) -> list[str]:
        d, k = self.options.dim, self.options.k
        return [self.vtype] * (d * k) + [self.itype] * (d * k)

    def init(self, b):
        n = self.options.dim * self.options.k
        return [self.splat(b, math.nan)] * n + [self.int_splat(b, INT64_MAX)] * n

    def update(self, b, state, f, mask, j):
        """The insertion runs only where some lane's term beats its K-th best (rare once K good terms are in):
        otherwise one comparison and a branch."""
        d, k = self.options.dim, self.options.k
        values, indices = list(state[: d * k]), list(state[d * k :])
        for c in range(d):
            value = b.select(b.cmp("uno", f[c], f[c]), b.const(math.inf), f[c])
            slots = range(c * k, (c + 1) * k)
            old = [values[s] for s in slots] + [indices[s] for s in slots]
            beats_last = self.and_masks(b, b.cmp("ult", value, values[slots[-1]]), mask)
            some = b.emit(f"vector.reduction <or>, {beats_last} : vector<{self.lanes}xi1> into i1", "m")
            new = b.branches(some, [self.vtype] * k + [self.itype] * k,
                             lambda side, value=value, old=old: self._insert(side, value, old, mask, j),
                             lambda side, old=old: old)
            for n, s in enumerate(slots):
                values[s], indices[s] = new[n], new[k + n]
        return values + indices

    def _insert(self, b: Builder, value: str, old: list[str], mask: str | None, j: str) -> list[str]:
        """The component's K slots (values, then indices) with `value` inserted where it beats a slot."""
        k = self.options.k
        old_values, old_indices = old[:k], old[k:]
        beats = [self.and_masks(b, b.cmp("ult", value, v), mask) for v in old_values]
        new_values, new_indices = [], []
        for n in range(k):
            new_value = b.select(beats[n], value, old_values[n])
            new_index = self.select_i(b, beats[n], j, old_indices[n])
            if n > 0:
                new_value = b.select(beats[n - 1], old_values[n - 1], new_value)
                new_index = self.select_i(b, beats[n - 1], old_indices[n - 1], new_index)
            new_values.append(new_value)
            new_indices.append(new_index)
        return new_values + new_indices

    def finish(self, b, state):
        d, k = self.options.dim, self.options.k
        values, indices = list(state[: d * k]), list(state[d * k :])
        vb = Builder(b.names, self.elem, self.lanes, b.lines, b.indent)
        values = [vb.select(vb.cmp("uno", v, v), vb.const(math.inf), v) for v in values]  # empty slots: +inf
        out_values, out_indices = [], []
        big = self.int_splat(b, INT64_MAX)
        for c in range(d):
            slots = range(c * k, (c + 1) * k)
            for _ in range(k):  # pick the overall smallest, then strike it out
                lane_min = values[slots[0]]
                for s in slots[1:]:
                    lane_min = vb.min(lane_min, values[s])
                best = self.reduce_lanes(b, "minimumf", lane_min)
                best_v = b.emit(f"vector.broadcast {best} : {self.elem} to {self.vtype}")
                candidate = big
                for s in slots:
                    hit = vb.cmp("oeq", values[s], best_v)
                    candidate = b.emit(
                        f"arith.minsi {candidate}, {self.select_i(b, hit, indices[s], big)} : {self.itype}"
                    )
                chosen = self.reduce_lanes(b, "minsi", candidate, self.itype, "i64")
                chosen_v = b.emit(f"vector.broadcast {chosen} : i64 to {self.itype}")
                for s in slots:
                    same = b.emit(f"arith.cmpi eq, {indices[s]}, {chosen_v} : {self.itype}", "m")
                    values[s] = vb.select(same, vb.const(math.inf), values[s])
                    indices[s] = self.select_i(b, same, big, indices[s])
                out_values.append(best)
                out_indices.append(chosen)
        kind = self.options.kind
        return (out_values if kind != "argkmin" else []), (out_indices if kind != "kmin" else [])


class LogSumExp(Accumulator):
    """logsumexp per component; or, with a weight (operand = concat(f, g)), log sum exp(f) g and
    sum exp(f) g / sum exp(f). State: a reference m and sums s scaled by exp(-m); without Kahan sums, also the
    running maximum t of f, which m trails by at most SLACK (see `update`); with "kahan_scheme", a carry per
    sum (what the sum lost, scaled with it) and m = t; with dtype_acc="float64" on float32, all of it in
    float64. "block_sum" merges the states of blocks of j."""

    # How far a term may exceed the reference m and still be added as exp(f - m) without moving m: the sums
    # stay below N e^SLACK (no overflow for N < 1e31 in float32), and the larger it is, the rarer the branch
    # to the online update (a record of f by more than SLACK). Measured, float32 LSE of a Gaussian, M = N =
    # 1e4, one thread: the online update alone 80 ms; SLACK = 0 (the branch at every new maximum of a lane,
    # each a misprediction) 92 ms; SLACK = 16 64 ms.
    SLACK = 16.0

    def __init__(self, options: ReductionOptions, elem: str, lanes: int):
        super().__init__(options, elem, lanes)
        self.weighted = options.kind != "logsumexp"
        self.softmax = options.kind == "sumsoftmaxweight"
        self.kahan = options.sum_scheme == "kahan_scheme"
        self.wide = options.dtype_acc == "float64" and elem == "f32"
        self.acc_elem = "f64" if self.wide else elem

    def _groups(self) -> int:
        return 1 if self.weighted else self.options.dim

    def _sums(self) -> int:  # per group
        if not self.weighted:
            return 1
        return self.options.dim - 1 + (1 if self.softmax else 0)

    def _tops(self) -> int:
        """How many running maxima t the state keeps apart from the references m (with Kahan sums, m = t)."""
        return 0 if self.kahan else self._groups()

    def _split(self, state: list[str]) -> tuple[list[str], list[str], list[str], list[str]]:
        """(references m, running maxima t, sums, carries) of one row's state."""
        groups, sums = self._groups(), self._groups() * self._sums()
        start = groups + self._tops()
        tops = state[groups:start] if self._tops() else state[:groups]
        return state[:groups], tops, state[start : start + sums], state[start + sums :]

    def _joined(self, maxima: list[str], tops: list[str], totals: list[str], carries: list[str]) -> list[str]:
        return maxima + (tops if self._tops() else []) + totals + carries

    def _acc(self, b: Builder) -> Builder:
        """A builder of the accumulator's type that appends to b's lines."""
        return Builder(b.names, self.acc_elem, b.lanes, b.lines, b.indent, b.once)

    def state_types(self) -> list[str]:
        vtype = f"vector<{self.lanes}x{self.acc_elem}>"
        return [vtype] * (self._groups() + self._tops() + self._groups() * self._sums() * (2 if self.kahan else 1))

    def init(self, b):
        a = self._acc(b)
        zeros = [a.const(0.0)] * (self._groups() * self._sums() * (2 if self.kahan else 1))
        return [a.const(-math.inf)] * (self._groups() + self._tops()) + zeros

    def _widened(self, b: Builder, values: list[str]) -> list[str]:
        if not self.wide:
            return values
        wide_type = f"vector<{self.lanes}xf64>" if b.lanes is not None else "f64"
        return [b.emit(f"arith.extf {v} : {b.type} to {wide_type}") for v in values]

    def update(self, b, state, f, mask, j):
        return self.update_rows(b, [state], [f], mask, j)

    def update_rows(self, b, states, fs, mask, j):
        """Where every lane's term of every row is within SLACK above its reference m and has a normal exp(f -
        m) (the usual case once a few terms are in), m stays, each sum adds exp(f - m) w and t = max(t, f):
        one exp, a subtraction, a maximum and an FMA per term, and one test for the rows. Otherwise each row
        tests its own: within SLACK, the same with exp's path for underflowing lanes, else (and in the masked
        tail, and with Kahan sums) the online update of `_update_online`, which sets m = t."""
        if mask is not None or self.kahan:
            return [v for state, f in zip(states, fs) for v in self._update_online(b, state, f, mask)]
        a = self._acc(b)
        wide_fs = [self._widened(b, f) for f in fs]
        gaps = [self._gaps(a, state, f) for state, f in zip(states, wide_fs)]

        def usual(side: Builder) -> list[str]:
            return [v for state, wide_f, row in zip(states, wide_fs, gaps)
                    for v in self._common(side, state, wide_f, row, mathlib.exp_normal_result)]

        def per_row(side: Builder) -> list[str]:
            return [v for state, f, wide_f, row in zip(states, fs, wide_fs, gaps)
                    for v in self._update_row(side, state, f, wide_f, row)]

        if b.names.gpu_math is not None:  # a GPU thread's exp needs no test of its own: the rows' tests only
            return per_row(b)
        lowest = a.const(mathlib.lowest_normal_exp_argument(self.acc_elem))
        unusual = [a.mask_op("ori", a.cmp("ult", d, lowest), a.cmp("ugt", d, a.const(self.SLACK)))
                   for row in gaps for d in row]  # so neither NaN nor -inf
        return b.branches(self._any_lane(a, unusual), self.state_types() * len(states), per_row, usual)

    def _gaps(self, a: Builder, state: list[str], wide_f: list[str]) -> list[str]:
        """f - m for each group of the row."""
        maxima = self._split(state)[0]
        return [a.sub(wide_f[g] if not self.weighted else wide_f[0], m) for g, m in enumerate(maxima)]

    def _common(self, side: Builder, state: list[str], wide_f: list[str], gaps: list[str], exp) -> list[str]:
        """The update where every gap is at most SLACK (not NaN) and each sum may add exp(gap) w: m stays."""
        s = self._acc(side)
        maxima, tops, totals, _ = self._split(state)
        sums, new_totals = self._sums(), []
        weights = self._weights(s, wide_f)
        for g, d in enumerate(gaps):
            e = exp(s, d)
            new_totals += [s.fma(e, w, t) for w, t in zip(weights, totals[g * sums : (g + 1) * sums])]
        values = [wide_f[g] if not self.weighted else wide_f[0] for g in range(self._groups())]
        # neither is NaN (a gap within SLACK is a number, and t is NaN only where m is): one max instruction
        new_tops = [s.emit(f"arith.maximumf {t}, {value} fastmath<nnan,nsz> : {s.type}")
                    for t, value in zip(tops, values)]
        return self._joined(maxima, new_tops, new_totals, [])

    def _update_row(self, b: Builder, state: list[str], f: list[str], wide_f: list[str], gaps: list[str]) -> list[str]:
        """One row's update where some term of the block is unusual: a gap above SLACK or NaN (a NaN term; -inf
        - -inf before the first finite term) and, with a weight, a term of -inf (the online update skips it,
        where exp(f - m) w would be 0 * w: NaN for an infinite weight) take the online update."""
        a = self._acc(b)
        rare = [a.cmp("ugt", d, a.const(self.SLACK)) for d in gaps]
        if self.weighted:
            rare = [a.mask_op("ori", r, a.cmp("oeq", d, a.const(-math.inf))) for r, d in zip(rare, gaps)]
        return b.branches(self._any_lane(a, rare), self.state_types(),
                          lambda o: self._update_online(o, state, f, None),
                          lambda c: self._common(c, state, wide_f, gaps, mathlib.exp_at_most_top))

    def _any_lane(self, a: Builder, masks: list[str]) -> str:
        """Whether a lane of any of the masks is set (an i1)."""
        some = functools.reduce(lambda x, y: a.mask_op("ori", x, y), masks)
        if a.lanes is None:
            return some
        return a.emit(f"vector.reduction <or>, {some} : {a.mask_type} into i1", "m")

    def _weights(self, a: Builder, f: list[str]) -> list[str]:
        """What a term adds to each sum, times exp(f - m): 1; with a weight g, g (and 1, softmax's denominator)."""
        weights = [a.const(1.0)] if not self.weighted else list(f[1:])
        return weights + [a.const(1.0)] if self.softmax else weights

    def _update_online(self, b: Builder, state: list[str], f: list[str], mask: str | None) -> list[str]:
        """The online update, one exp per term, after the sums have caught up with the running maximum (m = t)."""
        groups, sums = self._groups(), self._sums()
        a = self._acc(b)
        f = self._widened(b, f)
        maxima, tops, totals, carries = self._split(state)
        if self._tops():
            # m < t only where both are finite (a term above m + SLACK, -inf or NaN takes this path first)
            scales = [a.select(a.cmp("oeq", m, t), a.const(1.0), mathlib.exp(a, a.sub(m, t)))
                      for m, t in zip(maxima, tops)]
            totals = [a.mul(s, scales[k // sums]) for k, s in enumerate(totals)]
            maxima = tops
        new_maxima, new_totals, new_carries = [], [], []
        weights = self._weights(a, f)
        for g in range(groups):
            value = f[g] if not self.weighted else f[0]
            new_m, context = self._context(a, maxima[g], value, mask)
            new_maxima.append(new_m)
            for k, (w, s) in enumerate(zip(weights, totals[g * sums : (g + 1) * sums])):
                new_s, new_c = self._add_term(a, context, w, s, carries[g * sums + k] if self.kahan else None)
                new_totals.append(new_s)
                if self.kahan:
                    new_carries.append(new_c)
        return self._joined(new_maxima, new_maxima, new_totals, new_carries)

    def _context(self, a: Builder, m: str, value: str, mask: str | None) -> tuple[str, tuple[str, str, str]]:
        """The new maximum after term `value`, and (valid, grows, e) for the sums' updates."""
        valid = a.cmp("ogt", value, a.const(-math.inf))  # exp(-inf) adds nothing; skip it (and NaN)
        valid = self.and_masks(a, valid, mask)
        d = a.sub(value, m)
        grows = a.cmp("ogt", d, a.const(0.0))
        e = mathlib.exp(a, a.neg(a.math("absf", d)))
        return a.select(valid, a.max(m, value), m), (valid, grows, e)

    def _add_term(self, a: Builder, context: tuple[str, str, str], w: str, s: str,
                  c: str | None) -> tuple[str, str | None]:
        """One sum (and its Kahan carry) after a term of weight w."""
        valid, grows, e = context
        if not self.kahan:
            rescaled = a.fma(s, e, w)  # the maximum moved: old sum scaled down, new term weight 1
            added = a.fma(e, w, s)
            return a.select(valid, a.select(grows, rescaled, added), s), None
        # Kahan: the carry is scaled with the sum when the maximum moves
        base, carry = a.select(grows, a.mul(s, e), s), a.select(grows, a.mul(c, e), c)
        y = a.sub(a.select(grows, w, a.mul(e, w)), carry)
        t = a.add(base, y)
        lost = a.sub(a.sub(t, base), y)
        lost = a.select(a.cmp("ord", lost, lost), lost, a.const(0.0))  # dropped once the sum is inf
        return a.select(valid, t, s), a.select(valid, lost, c)

    def _merge_context(self, a: Builder, m1: str, m2: str) -> tuple[str, list[str]]:
        m = a.max(m1, m2)
        # exp(-inf - -inf) is NaN: a side that has seen no term contributes nothing
        scales = [a.select(a.cmp("oeq", x, a.const(-math.inf)), a.const(0.0), mathlib.exp(a, a.sub(x, m)))
                  for x in (m1, m2)]
        return m, scales

    @staticmethod
    def _merge_sum(a: Builder, scales: list[str], x1: str, x2: str) -> str:
        return a.fma(x1, scales[0], a.mul(x2, scales[1]))

    def merge(self, b: Builder, outer: list[str], inner: list[str]) -> list[str]:
        """block_sum: the running state and a block's, row by row: m = max(m1, m2), s = s1 e^(m1-m) + s2 e^(m2-m),
        t = max(t1, t2) (so t - m stays within SLACK)."""
        a = self._acc(b)
        width = len(self.state_types())
        merged = []
        for start in range(0, len(outer), width):
            (m1, t1, s1, c1), (m2, t2, s2, c2) = (self._split(x[start : start + width]) for x in (outer, inner))
            maxima, scaled, carried = [], [], []
            sums = self._sums()
            for g in range(self._groups()):
                m, scales = self._merge_context(a, m1[g], m2[g])
                maxima.append(m)
                for k in range(g * sums, (g + 1) * sums):
                    scaled.append(self._merge_sum(a, scales, s1[k], s2[k]))
                    if self.kahan:
                        carried.append(self._merge_sum(a, scales, c1[k], c2[k]))
            merged += self._joined(maxima, [a.max(x, y) for x, y in zip(t1, t2)], scaled, carried)
        return merged

    def finish(self, b, state):
        groups, sums = self._groups(), self._sums()
        a = self._acc(b)
        va = Builder(b.names, self.acc_elem, self.lanes, b.lines, b.indent)
        vtype = f"vector<{self.lanes}x{self.acc_elem}>"
        maxima, tops, totals, carries = self._split(state)
        if self.kahan:
            totals = [va.sub(s, c) for s, c in zip(totals, carries)]
        out = []
        for g in range(groups):
            m = maxima[g]  # each lane's sums are scaled by exp(-m); its terms are at most its t <= top
            top = self.reduce_lanes(a, "maximumf", tops[g], vtype, self.acc_elem)
            empty = a.cmp("oeq", top, a.const(-math.inf))
            safe_top = a.select(empty, a.const(0.0), top)
            scale = mathlib.exp(va, va.sub(m, a.emit(f"vector.broadcast {safe_top} : {self.acc_elem} to {vtype}")))
            group_sums = totals[g * sums : (g + 1) * sums]
            group_totals = [self.reduce_lanes(a, "add", va.mul(s, scale), vtype, self.acc_elem) for s in group_sums]
            if self.softmax:  # a term of +inf makes this inf/inf = NaN, as torch.softmax does
                out += [a.div(t, group_totals[-1]) for t in group_totals[:-1]]
            else:  # no term: -inf; a term of +inf: +inf (the sums are NaN then: exp(inf - inf))
                infinite = a.cmp("oeq", top, a.const(math.inf))
                out += [a.select(empty, a.const(-math.inf), a.select(infinite, top, a.add(top, mathlib.log(a, t))))
                        for t in group_totals]
        if self.wide:
            out = [b.emit(f"arith.truncf {v} : f64 to f32") for v in out]
        return out, []

    # wide formulas: with a weight, the head is the running maximum m of f (and sumsoftmaxweight's denominator,
    # the sum of weight 1), each weight component has its sum (and carry)
    @property
    def head_dims(self) -> int:
        return 1 if self.weighted else 0

    def _vtype(self) -> str:
        return f"vector<{self.lanes}x{self.acc_elem}>"

    def head_types(self) -> list[str]:
        if not self.weighted:
            return []
        return [self._vtype()] * (1 + ((2 if self.kahan else 1) if self.softmax else 0))

    def head_init(self, b: Builder) -> list[str]:
        if not self.weighted:
            return []
        a = self._acc(b)
        return [a.const(-math.inf)] + [a.const(0.0)] * (len(self.head_types()) - 1)

    def component_types(self) -> list[str]:
        return super().component_types() if not self.weighted else [self._vtype()] * (2 if self.kahan else 1)

    def component_init(self, b: Builder) -> list[str]:
        if not self.weighted:
            return super().component_init(b)
        return [self._acc(b).const(0.0)] * len(self.component_types())

    def head_update(self, b, head, f, mask, j):
        if not self.weighted:
            return super().head_update(b, head, f, mask, j)
        a = self._acc(b)
        new_m, context = self._context(a, head[0], self._widened(b, f)[0], mask)
        if not self.softmax:
            return [new_m], context
        total, carry = self._add_term(a, context, a.const(1.0), head[1], head[2] if self.kahan else None)
        return [new_m, total] + ([carry] if self.kahan else []), context

    def component_update(self, b, context, state, f, mask, j):
        if not self.weighted:
            return super().component_update(b, context, state, f, mask, j)
        a = self._acc(b)
        total, carry = self._add_term(a, context, self._widened(b, [f])[0], state[0], state[1] if self.kahan else None)
        return [total] + ([carry] if self.kahan else [])

    def head_merge(self, b, outer, inner):
        if not self.weighted:
            return super().head_merge(b, outer, inner)
        a = self._acc(b)
        m, scales = self._merge_context(a, outer[0], inner[0])
        return [m] + [self._merge_sum(a, scales, x, y) for x, y in zip(outer[1:], inner[1:])], scales

    def component_merge(self, b, context, outer, inner):
        if not self.weighted:
            return super().component_merge(b, context, outer, inner)
        a = self._acc(b)
        return [self._merge_sum(a, context, x, y) for x, y in zip(outer, inner)]

    def _total(self, b: Builder, scale: str, state: list[str]) -> str:
        """The lanes of a sum (less its carry), scaled to the row's maximum, added up."""
        va = Builder(b.names, self.acc_elem, self.lanes, b.lines, b.indent)
        s = va.sub(state[0], state[1]) if self.kahan else state[0]
        return self.reduce_lanes(self._acc(b), "add", va.mul(s, scale), self._vtype(), self.acc_elem)

    def head_finish(self, b, head):
        if not self.weighted:
            return super().head_finish(b, head)
        a = self._acc(b)
        va = Builder(b.names, self.acc_elem, self.lanes, b.lines, b.indent)
        m = head[0]
        top = self.reduce_lanes(a, "maximumf", m, self._vtype(), self.acc_elem)
        empty = a.cmp("oeq", top, a.const(-math.inf))
        safe_top = a.select(empty, a.const(0.0), top)
        scale = mathlib.exp(va, va.sub(m, a.emit(f"vector.broadcast {safe_top} : {self.acc_elem} to {self._vtype()}")))
        if self.softmax:
            return scale, self._total(b, scale, head[1:])
        return scale, (top, empty, a.cmp("oeq", top, a.const(math.inf)))

    def component_finish(self, b, context, state):
        if not self.weighted:
            return super().component_finish(b, context, state)
        a = self._acc(b)
        scale, rest = context
        total = self._total(b, scale, state)
        if self.softmax:
            out = a.div(total, rest)
        else:
            top, empty, infinite = rest
            out = a.select(empty, a.const(-math.inf), a.select(infinite, top, a.add(top, mathlib.log(a, total))))
        if self.wide:
            out = b.emit(f"arith.truncf {out} : f64 to f32")
        return [out], []


_CLASSES = {"sum": Sum, "kmin": KMin, "argkmin": KMin, "kmin_argkmin": KMin, "logsumexp": LogSumExp,
            "logsumexp_weight": LogSumExp, "sumsoftmaxweight": LogSumExp}


def accumulator(options: ReductionOptions, elem: str, lanes: int) -> Accumulator:
    return _CLASSES.get(options.kind, MinMax)(options, elem, lanes)
