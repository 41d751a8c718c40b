"""A small builder for MLIR text in the arith/math/vector dialects, scalar or vector typed.

The lowering writes the loop nest as text (fast to produce, easy to read in `.ir("loops")`) and hands it to
MLIR to parse and verify. A `Builder` hands out fresh SSA names and knows the value type it works on, so one
piece of code (e.g. the polynomial `exp`) serves scalars (hoisted work) and vectors (the j loop) alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from keir.compiler import literals


@dataclass
class Names:
    """Fresh SSA names shared by every builder of one function, and the function's choice of math routines."""

    count: int = 0
    # GPU kernels: exp by the special-function unit's ex2.approx after an exact reduction (keir.compiler.mathlib),
    # "fast" without the reduction (KeOps' -use_fast_math), "ieee" the polynomials the CPU uses
    gpu_math: str | None = None

    def fresh(self, hint: str = "v") -> str:
        self.count += 1
        return f"%{hint}{self.count}"


@dataclass
class Builder:
    """Appends ops on values of type `elem` (f32/f64) or `vector<lanes x elem>` to `lines`."""

    names: Names
    elem: str
    lanes: int | None  # None: scalars
    lines: list[str] = field(default_factory=list)
    indent: str = "    "
    once: bool = False  # code that runs once per row (a masked tail): small code over fast paths

    @property
    def type(self) -> str:
        return self.elem if self.lanes is None else f"vector<{self.lanes}x{self.elem}>"

    @property
    def int_type(self) -> str:
        width = self.elem[1:]
        return f"i{width}" if self.lanes is None else f"vector<{self.lanes}xi{width}>"

    @property
    def mask_type(self) -> str:
        return "i1" if self.lanes is None else f"vector<{self.lanes}xi1>"

    def emit(self, text: str, hint: str = "v") -> str:
        name = self.names.fresh(hint)
        self.lines.append(f"{self.indent}{name} = {text}")
        return name

    # constants -----------------------------------------------------------------------------------------
    def const(self, value: float) -> str:
        return self.emit(literals.constant(value, self.type), "c")

    def int_const(self, value: int) -> str:
        return self.emit(literals.constant(value, self.int_type), "c")

    # float arithmetic ----------------------------------------------------------------------------------
    def binary(self, op: str, a: str, b: str) -> str:
        return self.emit(f"arith.{op} {a}, {b} : {self.type}")

    def add(self, a: str, b: str) -> str:
        return self.binary("addf", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.binary("subf", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.binary("mulf", a, b)

    def div(self, a: str, b: str) -> str:
        return self.binary("divf", a, b)

    def neg(self, a: str) -> str:
        return self.emit(f"arith.negf {a} : {self.type}")

    def fma(self, a: str, b: str, c: str) -> str:
        return self.emit(f"math.fma {a}, {b}, {c} : {self.type}")

    def math(self, op: str, a: str) -> str:
        return self.emit(f"math.{op} {a} : {self.type}")

    def routine(self, name: str, *operands: str) -> str:
        """keir.compiler.mathlib's vectorised routine `name` (exp, log, sin, ...) on the operands."""
        from keir.compiler import mathlib  # mathlib builds on this module

        return getattr(mathlib, name)(self, *operands)

    def math_binary(self, op: str, a: str, b: str) -> str:
        """A two-operand math op, e.g. copysign, atan2, powf."""
        return self.emit(f"math.{op} {a}, {b} : {self.type}")

    def mask_op(self, op: str, a: str, b: str) -> str:
        """andi / ori / xori of two masks (results of cmp)."""
        return self.emit(f"arith.{op} {a}, {b} : {self.mask_type}", "m")

    def min(self, a: str, b: str) -> str:
        return self.binary("minimumf", a, b)

    def max(self, a: str, b: str) -> str:
        return self.binary("maximumf", a, b)

    def cmp(self, predicate: str, a: str, b: str) -> str:
        return self.emit(f"arith.cmpf {predicate}, {a}, {b} : {self.type}", "m")

    def select(self, mask: str, a: str, b: str, of_int: bool = False) -> str:
        ty = self.int_type if of_int else self.type
        if self.lanes is None:
            return self.emit(f"arith.select {mask}, {a}, {b} : {ty}")
        return self.emit(f"arith.select {mask}, {a}, {b} : {self.mask_type}, {ty}")

    # bits ----------------------------------------------------------------------------------------------
    def to_bits(self, a: str) -> str:
        return self.emit(f"arith.bitcast {a} : {self.type} to {self.int_type}", "q")

    def from_bits(self, a: str) -> str:
        return self.emit(f"arith.bitcast {a} : {self.int_type} to {self.type}")

    def int_op(self, op: str, a: str, b: str) -> str:
        return self.emit(f"arith.{op} {a}, {b} : {self.int_type}", "q")

    def to_int(self, a: str) -> str:
        return self.emit(f"arith.fptosi {a} : {self.type} to {self.int_type}", "q")

    def to_float(self, a: str) -> str:
        return self.emit(f"arith.sitofp {a} : {self.int_type} to {self.type}")

    def int_cmp(self, predicate: str, a: str, b: str) -> str:
        return self.emit(f"arith.cmpi {predicate}, {a}, {b} : {self.int_type}", "m")

    def branch(self, condition: str, then: Callable[[Builder], str], otherwise: Callable[[Builder], str]) -> str:
        """scf.if on an i1 `condition`, each side built by its function on a nested builder; the value it gives."""
        return self.branches(condition, [self.type], lambda side: [then(side)], lambda side: [otherwise(side)])[0]

    def branches(self, condition: str, types: list[str], then: Callable[[Builder], list[str]],
                 otherwise: Callable[[Builder], list[str]]) -> list[str]:
        """scf.if on an i1 `condition` giving values of `types`, each side built by its function on a nested
        builder (which returns the side's values)."""
        type_list = ", ".join(types)
        sides = []
        for build in (then, otherwise):
            side = Builder(self.names, self.elem, self.lanes, indent=self.indent + "  ", once=self.once)
            values = build(side)
            sides.append(side.lines + [f"{side.indent}scf.yield {', '.join(values)} : {type_list}"])
        result = self.names.fresh("if")
        self.lines += ([f"{self.indent}{result}:{len(types)} = scf.if {condition} -> ({type_list}) {{"] + sides[0]
                       + [f"{self.indent}}} else {{"] + sides[1] + [f"{self.indent}}}"])
        return [f"{result}#{k}" for k in range(len(types))]

    def horner(self, x: str, coefficients: list[float]) -> str:
        """c[0] + x*(c[1] + x*(c[2] + ...)) with fused multiply-adds."""
        acc = self.const(coefficients[-1])
        for c in reversed(coefficients[:-1]):
            acc = self.fma(acc, x, self.const(c))
        return acc

