"""What every keir op shares: the dimension rules, the reduction kinds, and the op registry.

Every keir value is a vector of a formula dimension (KeOps' `dim`). Each op is one record (`Op`) in the
catalogue (`keir.dialect.catalogue`), which fills `OPS` when `keir.dialect` is imported; the dimension rules
common to many ops are here, the others beside their op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keir.dialect.catalogue.record import Op


class DimensionError(ValueError):
    """A formula combines operands whose dimensions do not fit the op."""


DimRule = Callable[[tuple[int, ...], Mapping[str, object]], int]

# name -> record, every op of the dialect (filled by keir.dialect.catalogue, in its family order)
OPS: dict[str, Op] = {}
CATEGORIES = ("i", "j", "p")


def scalar(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    return 1


def same(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    return dims[0]


def broadcast(name: str) -> DimRule:
    """Two operands of equal dimensions, or one of them 1 (it is broadcast)."""
    def rule(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
        a, b = dims
        if a == b or b == 1:
            return a
        if a == 1:
            return b
        raise DimensionError(
            f"keir.{name}: operands have dimensions {a} and {b}; they must be equal or one of them must be 1"
        )

    return rule


def broadcast3(name: str) -> DimRule:
    """Three operands of equal dimensions, or 1 (broadcast)."""
    def rule(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise DimensionError(
                f"keir.{name}: operands have dimensions {', '.join(map(str, dims))}; they must be equal or 1"
            )
        return sizes.pop() if sizes else 1

    return rule


def equal_to_scalar(name: str) -> DimRule:
    def rule(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
        a, b = dims
        if a != b:
            raise DimensionError(f"keir.{name}: operands have dimensions {a} and {b}; they must be equal")
        return 1

    return rule


REDUCTION_KINDS = (
    "sum", "min", "max", "argmin", "argmax", "min_argmin", "max_argmax",
    "kmin", "argkmin", "kmin_argkmin", "logsumexp", "logsumexp_weight", "sumsoftmaxweight",
)
SUM_SCHEMES = ("direct_sum", "block_sum", "kahan_scheme")
# The reductions whose accumulator is a sum, to which sum_scheme and dtype_acc apply (as in pykeops: Sum,
# Max_SumShiftExp and Max_SumShiftExpWeight).
SUM_TYPE_KINDS = ("sum", "logsumexp", "logsumexp_weight", "sumsoftmaxweight")


def reduction_output_widths(kind: str, dim: int, k: int = 1) -> tuple[int, int]:
    """(floats, int64 indices) that a reduction of a dimension-`dim` formula writes per output row."""
    if kind in ("sum", "min", "max", "logsumexp"):
        return dim, 0
    if kind in ("argmin", "argmax"):
        return 0, dim
    if kind in ("min_argmin", "max_argmax"):
        return dim, dim
    if kind == "kmin":
        return k * dim, 0
    if kind == "argkmin":
        return 0, k * dim
    if kind == "kmin_argkmin":
        return k * dim, k * dim
    return dim - 1, 0  # logsumexp_weight, sumsoftmaxweight: the weight's dimension
