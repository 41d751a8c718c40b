"""The record of one keir op: every fact about it, in one place.

A record says what the op is (operands, attributes, the rule that gives and checks its result's dimension),
how it behaves under the passes (elementwise, commutative, its folding constructor, its derivative rule or
the reason it has none, how it is linear in its operands), how it is lowered (against the builder protocol
below, shared by the CPU and GPU lowerings), how users spell it (its KeOps formula-language name, its
LazyTensor method) and what it computes (a NumPy float64 reference, components on the last axis).
Everything else -- the IRDL text, the tables of the passes, Genred's function table, `str()` of a formula,
the conformance test -- is derived from these records (`keir.dialect.catalogue`).

The builder protocol (`keir.compiler.mlir_text.Builder` implements it, for scalars or vectors, f32 or f64):
values are SSA names (str); b.const(x), b.add/sub/mul/div/fma/min/max, b.neg, b.cmp(predicate, a, b) (an
`arith.cmpf` predicate), b.select(mask, a, b), b.math(name, a) (a `math` op the GPU lowers exactly:
sqrt, absf, floor, round, roundeven, copysign, ...), and b.routine(name, *xs), one of the vectorised
elementary functions of `keir.compiler.mathlib` by name (exp, log, sin, ..., tanh, erf).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keir.dialect.ops import DimRule

# Every attribute of every op, by name, with its type (an attribute means the same thing wherever it appears).
ATTRIBUTE_TYPES: Mapping[str, type] = {
    "index": int, "category": str, "dim": int, "value": float, "exponent": int, "start": int, "length": int,
    "digits": int, "kind": str, "axis": int, "k": int, "sum_scheme": str, "dtype_acc": str,
}

# lower(b, node, *components) -> component, for an elementwise op (one component of each operand; a
# dimension-1 operand's only one); lower(b, node, operands) -> components, for the others (operands: the
# list of every operand's components).
Lowering = Callable[..., Any]


@dataclass(frozen=True)
class Op:
    name: str
    operands: tuple[str, ...]  # operand names (IRDL's), so the arity is len(operands)
    result_dim: DimRule
    doc: str
    attrs: tuple[str, ...] = ()  # required, in the order KeOps' spelling takes them: Extract(x, start, length)
    optional_attrs: tuple[str, ...] = ()
    elementwise: bool = False  # applied to every component independently (dimension-1 operands broadcast)
    commutative: bool = False  # op(a, b) = op(b, a) exactly (keir-cse orders such operands canonically)
    keops: str | None = None  # its name in KeOps' formula language: str() writes it, Genred reads it
    method: str | None = None  # its LazyTensor method
    # NumPy float64 reference: reference(*operands, **attrs), operands with components on the last axis
    reference: Callable[..., Any] | None = None
    domain: tuple[float, float] = (-3.0, 3.0)  # where the conformance test samples its operands
    build: Callable[..., Any] | None = None  # the smart constructor (keir.dialect.algebra) that folds it
    vjp: Callable[..., tuple] | None = None  # vjp(y, e) -> cotangents of the operands (keir.dialect.derivatives)
    not_differentiable: str | None = None  # the reason, where there is no vjp
    linearity: Any = None  # a keir.dialect.linearity.Linearity, for an op linear in some operands
    lower: Lowering | None = None
    lowered_by: str | None = None  # where there is no per-op lowering: what lowers it instead

    def __post_init__(self) -> None:
        if (self.vjp is None) == (self.not_differentiable is None):
            raise ValueError(f"keir.{self.name}: give exactly one of a vjp rule and the reason it has none")
        if (self.lower is None) == (self.lowered_by is None):
            raise ValueError(f"keir.{self.name}: give exactly one of a lowering and what lowers it instead")
        unknown = set(self.attrs + self.optional_attrs) - set(ATTRIBUTE_TYPES)
        if unknown:
            raise ValueError(f"keir.{self.name}: attributes {sorted(unknown)} have no type in ATTRIBUTE_TYPES")
        if self.elementwise and self.reference is None:
            raise ValueError(f"keir.{self.name}: an elementwise op needs a NumPy reference")

    @property
    def arity(self) -> int:
        return len(self.operands)
