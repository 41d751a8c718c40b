"""Genred and the generic_* helpers: reductions written in KeOps' formula language.

    routine = Genred("Exp(-SqDist(x, y)) * b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], reduction_op="Sum", axis=1)
    out = routine(x, y, b)                      # arrays in the order of the aliases / variable indices

The formula is parsed by keir.formula_parser into LazyTensor operations on placeholder variables; a call
substitutes the arrays and runs the reduction, so Genred and LazyTensor share one implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keir.dialect.node import var
from keir.formula_parser import VariableSpec, parse_alias, parse_formula

# KeOps function name -> how to build it on LazyTensors (args: LazyTensors or Python numbers).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "Exp": lambda x: x.exp(), "Log": lambda x: x.log(), "Sqrt": lambda x: x.sqrt(), "Rsqrt": lambda x: x.rsqrt(),
    "Square": lambda x: x.square(), "Abs": lambda x: abs(x), "Minus": lambda x: -x,
    "Add": lambda x, y: x + y, "Subtract": lambda x, y: x - y, "Mult": lambda x, y: x * y,
    "Divide": lambda x, y: x / y, "Scalprod": lambda x, y: x | y,
    "Pow": lambda x, n: x ** _integer(n, "Pow"), "Sum": lambda x: x.sum(),
    "SqDist": lambda x, y: x.sqdist(y), "SqNorm2": lambda x: x.sqnorm2(),
    "Elem": lambda x, k: x.elem(_integer(k, "Elem")),
    "Extract": lambda x, start, length: x.extract(_integer(start, "Extract"), _integer(length, "Extract")),
    "Concat": lambda x, y: x.concat(y),
    "Grad": lambda f, x, e: f.grad(x, e),
}

REDUCTIONS = {
    "Sum": "sum", "Min": "min", "Max": "max", "ArgMin": "argmin", "ArgMax": "argmax",
    "Min_ArgMin": "min_argmin", "Max_ArgMax": "max_argmax", "KMin": "kmin", "ArgKMin": "argkmin",
    "KMin_ArgKMin": "kmin_argkmin", "LogSumExp": "logsumexp", "SumSoftMaxWeight": "sumsoftmaxweight",
}


def _integer(value: Any, where: str) -> int:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    raise TypeError(f"{where} needs an integer constant here, got {value!r}")


@dataclass(frozen=True)
class _Slot:
    """Stands for the array of one variable until a call provides it."""

    spec: VariableSpec

    @property
    def shape(self) -> tuple[int, int]:
        return (0, self.spec.dim)


class Genred:
    """A reduction compiled from a KeOps formula string (pykeops' Genred). Call it with the arrays."""

    lazy_class: type = None  # set by keir.numpy / keir.torch

    def __init__(self, formula: str, aliases: list[str], reduction_op: str = "Sum", axis: int = 0,
                 dtype: Any = None, opt_arg: int | None = None, formula2: str | None = None,
                 dtype_acc: str = "auto", sum_scheme: str = "auto", **ignored: Any):
        if reduction_op not in REDUCTIONS:
            raise ValueError(f"unknown reduction_op {reduction_op!r}; known: {', '.join(REDUCTIONS)}")
        if axis not in (0, 1):
            raise ValueError(f"axis is 0 (reduce over i) or 1 (reduce over j), got {axis!r}")
        self.kind, self.axis = REDUCTIONS[reduction_op], axis
        self.options: dict[str, Any] = {}
        if self.kind.endswith("kmin"):
            if opt_arg is None:
                raise ValueError(f"reduction {reduction_op} needs opt_arg = K")
            self.options["k"] = _integer(opt_arg, "opt_arg")
        if dtype_acc not in ("auto", None):
            self.options["dtype_acc"] = dtype_acc
        if sum_scheme not in ("auto", None):
            self.options["sum_scheme"] = sum_scheme
        self.slots: dict[int, _Slot] = {}
        names = {}
        for position, alias in enumerate(aliases):
            name, spec = parse_alias(alias, position)
            names[name] = self._variable(spec)
        self.lazy = self._parse(formula, names)
        self.weight = self._parse(formula2, names) if formula2 else None
        if self.kind == "sumsoftmaxweight" and self.weight is None:
            raise ValueError("SumSoftMaxWeight needs formula2, the weight")
        if self.kind == "logsumexp" and self.weight is not None:
            self.kind = "logsumexp_weight"
        self.arity = max(self.slots, default=-1) + 1  # an index no alias or formula uses takes any array

    def _variable(self, spec: VariableSpec) -> Any:
        known = self.slots.get(spec.index)
        if known is not None and known.spec != spec:
            raise ValueError(f"variable {spec.index} is declared twice, as {known.spec} and {spec}")
        slot = self.slots.setdefault(spec.index, _Slot(spec))
        return self.lazy_class._new(var(0, spec.category, spec.dim), (slot,), (spec.category,), None)

    def _parse(self, text: str, names: dict[str, Any]) -> Any:
        lazy = parse_formula(text, FUNCTIONS, names, self._variable, lambda value: value)
        if not isinstance(lazy, self.lazy_class):
            raise ValueError(f"the formula {text!r} has no variable")
        return lazy

    def __call__(self, *arrays: Any, backend: str = "auto", device_id: int = -1, **ignored: Any) -> Any:
        if len(arrays) != self.arity:
            raise ValueError(f"this Genred takes {self.arity} arrays (one per variable index), got {len(arrays)}")
        for index, slot in self.slots.items():
            array, spec = arrays[index], slot.spec
            expected = 1 if spec.category == "p" else 2
            shape = tuple(getattr(array, "shape", ()))
            if len(shape) != expected or shape[-1] != spec.dim:
                wanted = f"({spec.dim},)" if expected == 1 else f"(rows, {spec.dim})"
                raise ValueError(f"argument {index} ({spec.category}-variable) must have shape {wanted}, got {shape}")
        lazy = self._bind(self.lazy, arrays)
        if self.weight is None:
            return lazy._reduce(self.kind, self.axis, True, dict(self.options))
        return lazy._weighted(self.kind, self.axis, self._bind(self.weight, arrays), True, dict(self.options))

    def _bind(self, lazy: Any, arrays: tuple) -> Any:
        bound = tuple(arrays[slot.spec.index] for slot in lazy.arrays)
        dtypes = {lazy.adapter.dtype_name(a) for a in bound}
        if len(dtypes) > 1:
            raise TypeError(f"mixed dtypes in one formula: {' and '.join(sorted(dtypes))}")
        return lazy._new(lazy.node, bound, lazy.categories, dtypes.pop())


def make_generic(genred: type) -> tuple[Callable[..., Genred], ...]:
    """generic_sum, generic_logsumexp, generic_argkmin for a Genred class (numpy or torch). The output alias
    ("s = Vi(1)") says which index the result is indexed by, hence the axis reduced."""

    def axis_of(output: str) -> int:
        return 1 if parse_alias(output, 0)[1].category == "i" else 0

    def generic_sum(formula: str, output: str, *aliases: str, **options: Any) -> Genred:
        return genred(formula, list(aliases), reduction_op="Sum", axis=axis_of(output), **options)

    def generic_logsumexp(formula: str, output: str, *aliases: str, **options: Any) -> Genred:
        return genred(formula, list(aliases), reduction_op="LogSumExp", axis=axis_of(output), **options)

    def generic_argkmin(formula: str, output: str, K: int, *aliases: str, **options: Any) -> Genred:  # noqa: N803
        return genred(formula, list(aliases), reduction_op="ArgKMin", axis=axis_of(output), opt_arg=K, **options)

    return generic_sum, generic_logsumexp, generic_argkmin
