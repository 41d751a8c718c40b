"""The keir ops as data: arity, attributes and the rule that gives (and checks) the result's dimension.

Every keir value is a vector of a formula dimension (KeOps' `dim`). The table below is the single source of
truth for the Python side (formula building, importing MLIR, lowering); `keir.irdl.mlir` declares the same ops
to MLIR, and a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


class DimensionError(ValueError):
    """A formula combines operands whose dimensions do not fit the op."""


DimRule = Callable[[tuple[int, ...], Mapping[str, object]], int]


@dataclass(frozen=True)
class OpSpec:
    name: str
    arity: int
    attrs: tuple[str, ...]
    result_dim: DimRule
    doc: str
    optional_attrs: tuple[str, ...] = ()


def _leaf_dim(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    dim = attrs["dim"]
    if not isinstance(dim, int) or dim < 1:
        raise DimensionError(f"a variable's dimension must be a positive integer, got {dim!r}")
    return dim


def _scalar(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    return 1


def _same(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    return dims[0]


def _broadcast(name: str) -> DimRule:
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


def _equal_to_scalar(name: str) -> DimRule:
    def rule(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
        a, b = dims
        if a != b:
            raise DimensionError(f"keir.{name}: operands have dimensions {a} and {b}; they must be equal")
        return 1

    return rule


def _elem(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    k = attrs["index"]
    if not isinstance(k, int) or not 0 <= k < dims[0]:
        raise DimensionError(f"keir.elem: index {k!r} is out of range for a vector of dimension {dims[0]}")
    return 1


def _extract(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    start, length = attrs["start"], attrs["length"]
    if not (isinstance(start, int) and isinstance(length, int)) or start < 0 or length < 1 or (
        start + length > dims[0]
    ):
        raise DimensionError(
            f"keir.extract: components [{start}, {start}+{length}) do not fit a vector of dimension {dims[0]}"
        )
    return length


def _concat(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    return dims[0] + dims[1]


def _pow(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    if not isinstance(attrs["exponent"], int):
        raise DimensionError(f"keir.pow: the exponent must be an integer, got {attrs['exponent']!r}")
    return dims[0]


def _grad(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    f, x, e = dims
    if e != f:
        raise DimensionError(f"keir.grad: the cotangent has dimension {e}, but the formula has dimension {f}")
    return x


def _laplacian(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    if dims[0] != 1:
        raise DimensionError(f"keir.laplacian: the formula must be scalar (dimension 1), got dimension {dims[0]}")
    return 1


def _divergence(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    f, x = dims
    if f != x:
        raise DimensionError(f"keir.divergence: the formula has dimension {f} but the variable has dimension {x}")
    return 1


def _broadcast3(name: str) -> DimRule:
    def rule(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise DimensionError(
                f"keir.{name}: operands have dimensions {', '.join(map(str, dims))}; "
                "they must be equal or 1"
            )
        return sizes.pop() if sizes else 1
    return rule


def _one_hot(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    if dims[0] != 1:
        raise DimensionError(f"keir.one_hot: the operand must be scalar (dimension 1), got dimension {dims[0]}")
    size = attrs["dim"]
    if not isinstance(size, int) or size < 1:
        raise DimensionError(f"keir.one_hot: dim must be a positive integer, got {size!r}")
    return size


def _round(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    if not isinstance(attrs["digits"], int):
        raise DimensionError(f"keir.round: digits must be an integer, got {attrs['digits']!r}")
    return dims[0]


def _reduce(dims: tuple[int, ...], attrs: Mapping[str, object]) -> int:
    """The result holds the floats, then the indices, that each output row gets."""
    kind = attrs["kind"]
    if kind not in REDUCTION_KINDS:
        raise ValueError(f"keir.reduce: unknown reduction kind {kind!r}; known: {', '.join(REDUCTION_KINDS)}")
    if attrs["axis"] not in (0, 1):
        raise ValueError(f"keir.reduce: axis must be 0 (over i) or 1 (over j), got {attrs['axis']!r}")
    k = attrs.get("k", 1)
    if not isinstance(k, int) or k < 1 or ("k" in attrs) != kind.endswith("kmin"):
        raise ValueError(f"keir.reduce: kind {kind!r} {'needs' if kind.endswith('kmin') else 'takes no'} "
                         f"a positive integer k, got {attrs.get('k')!r}")
    if kind in ("logsumexp_weight", "sumsoftmaxweight") and dims[0] < 2:
        raise DimensionError(f"keir.reduce: kind {kind!r} reduces concat(f, weight); got dimension {dims[0]}")
    scheme = attrs.get("sum_scheme", "direct_sum")
    if scheme not in SUM_SCHEMES:
        raise ValueError(f"keir.reduce: sum_scheme must be one of {SUM_SCHEMES}, got {scheme!r}")
    if scheme != "direct_sum" and kind not in SUM_TYPE_KINDS:
        raise ValueError(f"keir.reduce: sum_scheme {scheme!r} applies to the sum-type reductions "
                         f"({', '.join(SUM_TYPE_KINDS)}), not to {kind!r}")
    if attrs.get("dtype_acc", "float64") != "float64":
        raise ValueError(f"keir.reduce: dtype_acc may only be 'float64', got {attrs.get('dtype_acc')!r}")
    if "dtype_acc" in attrs and kind not in SUM_TYPE_KINDS:
        raise ValueError(f"keir.reduce: dtype_acc applies to the sum-type reductions ({', '.join(SUM_TYPE_KINDS)}), "
                         f"not to {kind!r}")
    floats, indices = reduction_output_widths(kind, dims[0], k)
    return floats + indices


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
CATEGORIES = ("i", "j", "p")

_SPECS = [
    OpSpec("var", 0, ("index", "category", "dim"), _leaf_dim, "an input: i-indexed, j-indexed or a parameter"),
    OpSpec("constant", 0, ("value",), _scalar, "a scalar constant"),
    OpSpec("add", 2, (), _broadcast("add"), "a + b (a dimension-1 operand broadcasts)"),
    OpSpec("sub", 2, (), _broadcast("sub"), "a - b"),
    OpSpec("mul", 2, (), _broadcast("mul"), "a * b"),
    OpSpec("div", 2, (), _broadcast("div"), "a / b"),
    OpSpec("neg", 1, (), _same, "-a"),
    OpSpec("exp", 1, (), _same, "exp(a)"),
    OpSpec("log", 1, (), _same, "log(a)"),
    OpSpec("sqrt", 1, (), _same, "sqrt(a)"),
    OpSpec("rsqrt", 1, (), _same, "1/sqrt(a)"),
    OpSpec("square", 1, (), _same, "a * a"),
    OpSpec("pow", 1, ("exponent",), _pow, "a ** n, n an integer"),
    OpSpec("abs", 1, (), _same, "|a|"),
    OpSpec("sum", 1, (), _scalar, "the sum of a's components"),
    OpSpec("dot", 2, (), _equal_to_scalar("dot"), "<a, b>"),
    OpSpec("sqdist", 2, (), _equal_to_scalar("sqdist"), "|a - b|^2"),
    OpSpec("sqnorm2", 1, (), _scalar, "|a|^2"),
    OpSpec("elem", 1, ("index",), _elem, "component k of a"),
    OpSpec("extract", 1, ("start", "length"), _extract, "components start .. start+length-1 of a"),
    OpSpec("concat", 2, (), _concat, "(a, b) as one vector"),
    OpSpec("sin", 1, (), _same, "sin(a)"),
    OpSpec("cos", 1, (), _same, "cos(a)"),
    OpSpec("asin", 1, (), _same, "arcsin(a)"),
    OpSpec("acos", 1, (), _same, "arccos(a)"),
    OpSpec("atan", 1, (), _same, "arctan(a)"),
    OpSpec("atan2", 2, (), _broadcast("atan2"), "atan2(a, b), the angle of (b, a)"),
    OpSpec("sign", 1, (), _same, "-1, 0 or 1"),
    OpSpec("step", 1, (), _same, "1 where a >= 0, else 0"),
    OpSpec("relu", 1, (), _same, "max(a, 0)"),
    OpSpec("floor", 1, (), _same, "floor(a)"),
    OpSpec("round", 1, ("digits",), _round, "a rounded to `digits` decimals (halves away from zero)"),
    OpSpec("xlogx", 1, (), _same, "a log(a), 0 at 0"),
    OpSpec("sinxdivx", 1, (), _same, "sin(a) / a, 1 at 0"),
    OpSpec("lt", 2, (), _broadcast("lt"), "1 where a < b, else 0"),
    OpSpec("le", 2, (), _broadcast("le"), "1 where a <= b, else 0"),
    OpSpec("gt", 2, (), _broadcast("gt"), "1 where a > b, else 0"),
    OpSpec("ge", 2, (), _broadcast("ge"), "1 where a >= b, else 0"),
    OpSpec("eq", 2, (), _broadcast("eq"), "1 where a == b, else 0"),
    OpSpec("ne", 2, (), _broadcast("ne"), "1 where a != b, else 0"),
    OpSpec("clamp", 3, (), _broadcast3("clamp"), "a clamped to [b, c]"),
    OpSpec("ifelse", 3, (), _broadcast3("ifelse"), "b where a >= 0, else c"),
    OpSpec("min", 1, (), _scalar, "the smallest component of a"),
    OpSpec("max", 1, (), _scalar, "the largest component of a"),
    OpSpec("argmin", 1, (), _scalar, "the index of the smallest component of a (first on ties), as a float"),
    OpSpec("argmax", 1, (), _scalar, "the index of the largest component of a (first on ties), as a float"),
    OpSpec("one_hot", 1, ("dim",), _one_hot, "the one-hot vector of size dim of round(a)"),
    OpSpec("grad", 3, (), _grad, "the gradient of f with respect to variable x, contracted with e: e . df/dx"),
    OpSpec("laplacian", 2, (), _laplacian, "the Laplacian of scalar f with respect to variable x"),
    OpSpec("divergence", 2, (), _divergence, "the divergence of f with respect to variable x"),
    OpSpec("trace", 2, (), _divergence, "the trace of the map v -> f(v), f linear in the variable v"),
    OpSpec("reduce", 1, ("kind", "axis"), _reduce, "a reduction over i (axis 0) or j (axis 1)",
           ("k", "sum_scheme", "dtype_acc")),
]

OPS: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}

# Ops applied to every component independently: the lowering maps them lane by lane.
ELEMENTWISE_UNARY = frozenset({
    "neg", "exp", "log", "sqrt", "rsqrt", "square", "pow", "abs", "sin", "cos", "asin", "acos", "atan", "sign",
    "step", "relu", "floor", "round", "xlogx", "sinxdivx",
})
ELEMENTWISE_BINARY = frozenset({"add", "sub", "mul", "div", "atan2", "lt", "le", "gt", "ge", "eq", "ne"})
