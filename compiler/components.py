"""Component loops: how the CPU lowering handles values of large dimension without unrolling them.

A value of dimension D < LOOP_DIM is D SSA values (one per component), as the rest of `lower_cpu` has it. A
value of dimension D >= LOOP_DIM is never held whole: it is a recipe for its component k, emitted where a
loop over k needs it (`_Rows.component` in lower_cpu), so the code stays the same size whatever D is:

    sum_k exp(-(x_ik + y_jk)^2)   =>   scf.for %d = 0 to D - D % 4 step 4 iter_args(chains...) {
                                          <component %d, %d+1, %d+2, %d+3 of exp(-(x_i + y_j)^2): one load of
                                           y_j[d] per component, one of x_i[d] per row, the polynomial exp>
                                          chains += them }
                                        <the last D % 4 components>, then the sum of the chains

- What reads a wide value component by component is a consumer: `sum sqnorm2 dot sqdist min max argmin
  argmax` (a loop, below), `elem` and short `extract`s (single components), and the reduction itself when the
  formula is wide (its accumulators then live in memory, one slice per component: `lower_cpu`).
- `concat` and `extract` cut a wide value into pieces: `breaks` gives the points where the recipe changes,
  and a loop runs piece by piece (a piece shorter than LOOP_DIM is unrolled, with static components).
- A wide value computed at an outer loop level (i-only work per row, parameter-only work per call) is read
  from memory in the j loop: an input variable directly, anything else from a buffer written once per row or
  call by a loop of its own, so the hoisting of i-only work is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keir.compiler.mlir_text import Builder
from keir.dialect.catalogue.lowering import CHAINS, tree_sum
from keir.dialect.node import Node

LOOP_DIM = 16  # values of this dimension or more are computed in loops over their components
UNROLL = 4  # components per iteration of a component loop (cheap components)
# ops whose components cost tens of instructions: their loops take one component per iteration (the code
# stays small, and the work per iteration already fills the pipeline)
EXPENSIVE = frozenset({"exp", "log", "sin", "cos", "asin", "acos", "atan", "atan2", "xlogx", "sinxdivx"})
LOOP_CONSUMERS = frozenset({"sum", "sqnorm2", "dot", "sqdist", "min", "max", "argmin", "argmax"})


@dataclass(frozen=True)
class Index:
    """Component `base + offset` of a value (base: a loop's index value, or None for a static component),
    known to lie in the piece [lo, hi) of the value's `breaks`; `residue` is its remainder modulo CHAINS where
    that is known statically (it picks the accumulation chain)."""

    base: str | None
    offset: int
    lo: int
    hi: int
    residue: int | None

    @staticmethod
    def static(k: int) -> Index:
        return Index(None, k, k, k + 1, k % CHAINS)

    @property
    def key(self) -> tuple[str | None, int]:
        return (self.base, self.offset)

    def shifted(self, delta: int) -> Index:
        """The same component as seen by an operand whose component 0 is this value's component -delta."""
        return Index(self.base, self.offset + delta, self.lo + delta, self.hi + delta, None)


def is_wide(node: Node) -> bool:
    return node.dim >= LOOP_DIM


def level_of(node: Node) -> str:
    """The innermost loop a node's value changes in: "j" (the vectorised loop), "i" (rows) or "p" (per call)."""
    return "j" if "j" in node.deps else "i" if "i" in node.deps else "p"


class Breaks:
    """The points 0 < t < D where a wide value's recipe changes (a concat's seam, carried through
    elementwise ops and extracts). Values of an outer level are read from memory: no breaks."""

    def __init__(self) -> None:
        self._memo: dict[tuple[Node, str], tuple[int, ...]] = {}

    def __call__(self, node: Node, level: str) -> tuple[int, ...]:
        key = (node, level)
        if key not in self._memo:
            self._memo[key] = self._compute(node, level)
        return self._memo[key]

    def _compute(self, node: Node, level: str) -> tuple[int, ...]:
        if not is_wide(node) or level_of(node) != level or node.op in ("var", "one_hot"):
            return ()
        if node.op == "concat":
            a, b = node.args
            return (*self(a, level), a.dim, *(a.dim + t for t in self(b, level)))
        if node.op == "extract":
            start, length = node.attr("start"), node.attr("length")
            return tuple(t - start for t in self(node.args[0], level) if start < t < start + length)
        points: set[int] = set()
        for a in node.args:
            if a.dim == node.dim:
                points.update(self(a, level))
        return tuple(sorted(points))

    def pieces(self, nodes: list[Node], level: str) -> tuple[tuple[int, int], ...]:
        """The pieces [lo, hi) of the union of the breaks of `nodes` (all of one dimension)."""
        dim = nodes[0].dim
        points = sorted({0, dim}.union(*(self(n, level) for n in nodes)))
        return tuple(zip(points[:-1], points[1:]))


class Consumer:
    """A reduction over the components of a wide value, as loop-carried state: `init`, then `step` for each
    component (given the component of each operand), then `finish`."""

    def __init__(self, op: str, chains: int):
        self.op, self.chains = op, chains

    @staticmethod
    def state_size(op: str) -> int:
        """Vectors carried per (consumer, row), with one chain."""
        return 2 if op in ("argmin", "argmax") else 1

    @staticmethod
    def start(op: str) -> int:
        """The first component the loop visits: arg-extrema start from component 0 (ties and NaN: see `Arg`)."""
        return 1 if op in ("argmin", "argmax") else 0


class Chains(Consumer):
    """sum, sqnorm2, dot, sqdist, min, max: `chains` independent chains, component k on chain k % chains,
    then a tree over the chains: for sqnorm2/dot/sqdist with 4 chains, the operations of `_sum_of_products`
    (which starts each chain with its first product: -0.0 + p is p, so the chains start at -0.0). min and max
    (minimumf/maximumf, NaN-propagating, -0 below +0) are associative and commutative: any order gives the
    same bits."""

    def init(self, b: Builder, first: list[str] | None) -> list[str]:
        identity = {"min": math.inf, "max": -math.inf}.get(self.op, -0.0)
        return [b.const(identity)] * self.chains

    def step(self, b: Builder, state: list[str], comps: list[str], index: Index, index_float) -> list[str]:
        c = 0 if self.chains == 1 or index.residue is None else index.residue % self.chains
        acc, op = state[c], self.op
        if op == "sum":
            new = b.add(acc, comps[0])
        elif op == "sqnorm2":
            new = b.fma(comps[0], comps[0], acc)
        elif op == "dot":
            new = b.fma(comps[0], comps[1], acc)
        elif op == "sqdist":
            t = b.sub(comps[0], comps[1])
            new = b.fma(t, t, acc)
        elif op == "min":
            new = b.min(acc, comps[0])
        else:
            new = b.max(acc, comps[0])
        return state[:c] + [new] + state[c + 1 :]

    def finish(self, b: Builder, state: list[str]) -> str:
        if self.op in ("min", "max"):
            extreme = b.min if self.op == "min" else b.max
            result = state[0]
            for s in state[1:]:
                result = extreme(result, s)
            return result
        return tree_sum(b, list(state))


class Arg(Consumer):
    """argmin, argmax: (best value, its index as a float), component 0 first, then one comparison per
    component in order: a later component wins only if strictly better, so ties go to the first index, a NaN
    never wins, and a NaN at component 0 is never beaten (index 0), as `_arg_extreme` does."""

    def init(self, b: Builder, first: list[str] | None) -> list[str]:
        assert first is not None
        return [first[0], b.const(0.0)]

    def step(self, b: Builder, state: list[str], comps: list[str], index: Index, index_float) -> list[str]:
        best, where = state
        better = b.cmp("olt" if self.op == "argmin" else "ogt", comps[0], best)
        return [b.select(better, comps[0], best), b.select(better, index_float(), where)]

    def finish(self, b: Builder, state: list[str]) -> str:
        return state[1]


def consumer(op: str, chains: int) -> Consumer:
    return Arg(op, 1) if op in ("argmin", "argmax") else Chains(op, chains)
