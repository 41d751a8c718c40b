"""Symbolic variables: formula inputs whose arrays are given when the reduction is called.

pykeops spells them `Vi(0, 3)`, `Vj(1, 3)`, `Pm(2, 1)`, `LazyTensor((index, dim, category))`, and Genred's
aliases are the same thing. In a LazyTensor, a `SymbolicVariable` stands where an array would be; the
reduction of such a formula is a callable that takes the arrays in the order of the variables' indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keir.dtypes import HALF_DTYPES, check_supported

CATEGORY_NUMBERS = {0: "i", 1: "j", 2: "p"}  # pykeops' (index, dim, category) triplets


@dataclass(frozen=True)
class SymbolicVariable:
    """Stands for the array of variable `index` until a call provides it."""

    index: int
    category: str  # "i", "j" or "p"
    dim: int

    @property
    def shape(self) -> tuple[int, ...]:
        """A stand-in shape (no rows yet), so that code reading a variable's dimension works unchanged."""
        return (self.dim,) if self.category == "p" else (0, self.dim)


def symbolic_variable(index: Any, dim: Any, category: Any) -> SymbolicVariable:
    """A SymbolicVariable from pykeops' integers, checked."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, dim, category)):
        raise ValueError(f"a symbolic variable is (index, dim, category), three integers; got {(index, dim, category)}")
    if category not in CATEGORY_NUMBERS or index < 0 or dim < 1:
        raise ValueError(f"a symbolic variable needs index >= 0, dim >= 1 and category 0 (i), 1 (j) or 2 "
                         f"(parameter); got {(index, dim, category)}")
    return SymbolicVariable(index, CATEGORY_NUMBERS[category], dim)


def has_symbolic_variables(lazy: Any) -> bool:
    for array in lazy.arrays:  # a loop, not any(generator): this runs on every reduction
        if type(array) is SymbolicVariable:
            return True
    return False


def batch_dims(arrays: tuple, variables: dict[int, SymbolicVariable]) -> int:
    """The number of batch dimensions of a call, read as pykeops does from the first i- or j-argument: each
    i/j argument is then (batch..., rows, dim) and each parameter (batch..., dim), batch dimensions of size
    1 broadcasting."""
    for index in sorted(variables):
        if variables[index].category != "p":
            return max(len(getattr(arrays[index], "shape", ())) - 2, 0)
    return 0


def check_argument(index: int, array: Any, variable: SymbolicVariable, batch: int = 0) -> None:
    """The array given for `variable` has its shape: (batch..., rows, dim) for i and j variables, (batch...,
    dim) for parameters, with `batch` batch dimensions."""
    expected = (1 if variable.category == "p" else 2) + batch
    shape = tuple(getattr(array, "shape", ()))
    if len(shape) != expected or shape[-1] != variable.dim:
        batch_text = "batch..., " * (batch > 0)
        wanted = f"({batch_text}{variable.dim},)" if variable.category == "p" else f"({batch_text}rows, {variable.dim})"
        also = f" (this call has {batch} batch dimension(s), read from its first i or j argument)" if batch else ""
        raise ValueError(f"argument {index} ({variable.category}-variable) must have shape {wanted}, got "
                         f"{shape}{also}")


def bind_symbolic(lazy: Any, arrays: tuple, count: int | None = None) -> Any:
    """`lazy` with each symbolic variable replaced by arrays[its index]; `arrays` has one entry per index up to
    the largest, or `count` entries (an index that no variable uses takes any array, as in pykeops)."""
    variables = {a.index: a for a in lazy.arrays if type(a) is SymbolicVariable}
    count = max(variables) + 1 if count is None else count
    if len(arrays) != count:
        raise ValueError(f"this reduction takes {count} arrays (one per variable index), got {len(arrays)}")
    batch = batch_dims(arrays, variables)
    for index, variable in variables.items():
        check_argument(index, arrays[index], variable, batch)
    bound = tuple(arrays[a.index] if type(a) is SymbolicVariable else a for a in lazy.arrays)
    dtypes = {lazy.adapter.dtype_name(a) for a in bound if not isinstance(a, float)}
    if len(dtypes) > 1:
        raise TypeError(f"mixed dtypes in one formula: {' and '.join(sorted(dtypes))}")
    for name in dtypes:
        check_supported(name)
    if dtypes & set(HALF_DTYPES):  # computed in float32 (keir.dtypes)
        bound = tuple(a if isinstance(a, float) else lazy.adapter.to_float32(a) for a in bound)
    return lazy.from_node(lazy.node, bound, lazy.categories, dtypes.pop() if dtypes else lazy.dtype)
