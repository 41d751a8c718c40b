"""The dense meaning of a formula, in torch float64 on the full (*batch, M, N, D) array, with an error bound.

Written from pykeops' documented semantics (KeOps' math_functions: relu(x) = x<0 ? 0 : x, step(x) = x<0 ? 0 : 1,
sign, clamp(x,a,b) = x<a ? a : (x>b ? b : x), ifelse(x,a,b) = x>=0 ? a : b, mod(x,n,d) = x - n floor((x-d)/n),
rsqrt(0) = 0, round halves away from zero, sinxdivx(0) = 1, xlogx(0) = 0, powf as C's powf); it shares
no code with keir.

Each node evaluates to a Bound: the float64 value of the exact formula on the (exactly representable) inputs, and
`error`, a bound on how far a correct implementation working in the case's dtype may be from it (inf where
nothing can be said: near a singularity, a discontinuity hit within rounding, an overflow of the dtype, or NaN
inputs to ops whose NaN behaviour pykeops leaves to the C compiler). Pointwise ops get their error by evaluating
the op at the corners of their operands' intervals (and at critical points inside), so discontinuities, kinks
and steep regions are accounted for without a rule per op.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .constants import number_value

Tensor = torch.Tensor
INF = float("inf")


@dataclass
class Bound:
    value: Tensor
    error: Tensor


@dataclass(frozen=True)
class Precision:
    """The case's dtype: unit roundoff, largest finite value, smallest normal."""

    unit: float
    largest: float
    tiny: float

    @staticmethod
    def of(dtype: str) -> Precision:
        info = torch.finfo(torch.float32 if dtype == "float32" else torch.float64)
        return Precision(info.eps / 2, info.max, info.tiny)

    def round(self, value: float) -> float:
        """value rounded to the dtype (inf where it overflows)."""
        if self.unit > 1e-10:
            return float(torch.tensor(value, dtype=torch.float64).to(torch.float32).item())
        return value


def _absdiff(y: Tensor, center: Tensor) -> Tensor:
    """|y - center|, 0 where equal (infinities included), inf where only one of them is NaN."""
    same = (y == center) | (torch.isnan(y) & torch.isnan(center))
    return torch.where(same, torch.zeros_like(y), (y - center).abs().nan_to_num(nan=INF, posinf=INF))


def _finish(center: Tensor, deviation: Tensor, p: Precision, relative: float) -> Bound:
    """Adds the rounding of one op to the deviation; inf where the dtype overflows."""
    finite = torch.isfinite(center)
    rounding = torch.where(finite, relative * p.unit * center.abs(), torch.zeros_like(center)) + 4 * p.tiny
    error = deviation + torch.where(finite, rounding, torch.zeros_like(center))
    overflow = finite & (center.abs() + error > p.largest / 2)
    error = torch.where(overflow, torch.full_like(error, INF), error).nan_to_num(nan=INF, posinf=INF)
    return Bound(center, error)


def pointwise(fn: Callable[..., Tensor], args: list[Bound], p: Precision, relative: float = 4.0,
              critical: tuple[float, ...] = ()) -> Bound:
    """fn applied elementwise; the error from fn at the corners of the operand intervals."""
    values = torch.broadcast_tensors(*[a.value for a in args])
    errors = torch.broadcast_tensors(*[a.error for a in args])
    center = fn(*values)
    deviation = torch.zeros_like(center)
    uncertain = [k for k, e in enumerate(errors) if bool((e > 0).any())]
    if uncertain:
        for signs in itertools.product((-1.0, 1.0), repeat=len(uncertain)):
            points = list(values)
            for k, sign in zip(uncertain, signs):
                points[k] = values[k] + sign * errors[k]
            deviation = torch.maximum(deviation, _absdiff(fn(*points), center))
        if len(args) == 1:  # extremes inside the interval (|x|, x^2, cos, ... at 0)
            lo, hi = values[0] - errors[0], values[0] + errors[0]
            for c in critical:
                inside = torch.clamp(torch.full_like(lo, c), lo, hi)
                deviation = torch.maximum(deviation, _absdiff(fn(inside), center))
        unknown = torch.zeros_like(center, dtype=torch.bool)
        for e in errors:
            unknown |= torch.isinf(e) | torch.isnan(e)
        deviation = torch.where(unknown, torch.full_like(deviation, INF), deviation)
    return _finish(center, deviation, p, relative)


def _unknown_where(bound: Bound, mask: Tensor) -> Bound:
    return Bound(bound.value, torch.where(mask, torch.full_like(bound.error, INF), bound.error))


def _contains_zero(b: Bound) -> Tensor:
    """The interval contains 0 but is not exactly 0 (exact zeros follow IEEE rules)."""
    return (b.value.abs() <= b.error) & (b.error > 0)


def _nan_unclear(result: Bound, args: list[Bound]) -> Bound:
    """NaN operands of an op whose NaN result depends on how the C compiler orders a comparison."""
    mask = torch.zeros_like(result.value, dtype=torch.bool)
    for a in args:
        mask = mask | torch.isnan(a.value).expand_as(result.value)
    return _unknown_where(result, mask)


# pointwise meanings -----------------------------------------------------------------------------------------
DERIVATIVE_ARGUMENT = 2.0**14  # see Evaluator.derivatives_known: the gradient check's ROUNDING
SINXDIVX_CANCELLATION = math.sqrt(3 / DERIVATIVE_ARGUMENT)


def _literal_zero(text: str) -> bool:
    """Whether a number's source text is a zero: the Python int 0, or 0.0 or -0.0."""
    return number_value(text) == 0


def _round_half_away(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _rsqrt(x: Tensor) -> Tensor:
    return torch.where(x == 0, torch.zeros_like(x), 1.0 / torch.sqrt(x))


class _SinXDivX(torch.autograd.Function):
    """sin(x)/x, 1 at 0, with KeOps' derivative Cos(f)/f - Sin(f)/f^2 (NaN at 0, as in pykeops: a gradient there
    is not compared), itself differentiable for second derivatives."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        safe = torch.where(x == 0, torch.ones_like(x), x)
        return torch.where(x == 0, torch.ones_like(x), torch.sin(safe) / safe)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * (torch.cos(x) / x - torch.sin(x) / x**2)


def _sinxdivx(x: Tensor) -> Tensor:
    return _SinXDivX.apply(x)


def _xlogx(x: Tensor) -> Tensor:
    safe = torch.where(x == 0, torch.ones_like(x), x)
    return torch.where(x == 0, torch.zeros_like(x), safe * torch.log(safe))


def _pow_int(x: Tensor, n: int) -> Tensor:
    """x**n; past int64 (`x ** 3.4e38` takes the integer route) as a float exponent, C's pow of an integer."""
    return torch.ones_like(x) if n == 0 else x ** (n if abs(n) < 2**62 else float(n))


def _one(x: Tensor) -> Tensor:
    return torch.ones_like(x)


def _zero(x: Tensor) -> Tensor:
    return torch.zeros_like(x)


UNARY: dict[str, tuple[Callable[[Tensor], Tensor], tuple[float, ...]]] = {
    # op -> (meaning, critical points where the function has an extreme or a kink)
    "neg": (lambda x: -x, ()),
    "abs": (torch.abs, (0.0,)),
    "exp": (torch.exp, ()),
    "log": (torch.log, ()),
    "sqrt": (torch.sqrt, (0.0,)),
    "rsqrt": (_rsqrt, ()),
    "square": (lambda x: x * x, (0.0,)),
    "inv": (lambda x: 1.0 / x, ()),
    "sign": (lambda x: torch.where(x > 0, _one(x), torch.where(x < 0, -_one(x), _zero(x))), (0.0,)),
    "step": (lambda x: torch.where(x < 0, _zero(x), _one(x)), (0.0,)),
    "relu": (lambda x: torch.where(x < 0, _zero(x), x), (0.0,)),
    "atan": (torch.atan, ()),
    "asin": (torch.asin, ()),
    "acos": (torch.acos, ()),
    "floor": (torch.floor, ()),
    "xlogx": (_xlogx, (0.0, math.exp(-1.0))),
}
NAN_UNCLEAR = {"sign", "step", "relu", "clamp", "clampint", "ifelse", "lt", "le", "gt", "ge", "eq", "ne"}

BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "atan2": torch.atan2,
    "lt": lambda x, y: (x < y).double(),
    "le": lambda x, y: (x <= y).double(),
    "gt": lambda x, y: (x > y).double(),
    "ge": lambda x, y: (x >= y).double(),
    "eq": lambda x, y: (x == y).double(),
    "ne": lambda x, y: (x != y).double(),
}


def _clamp(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(x < a, a, torch.where(x > b, b, x))


def _ifelse(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(x >= 0, a, b)


# vector ops ---------------------------------------------------------------------------------------------
def _finite_abs(x: Tensor) -> Tensor:
    return torch.where(torch.isfinite(x), x.abs(), torch.zeros_like(x))


def component_sum(b: Bound, p: Precision) -> Bound:
    """Sum of the components (keepdim), error: the terms' errors and (D + 2) roundings of the magnitudes."""
    d = b.value.shape[-1]
    value = b.value.sum(-1, keepdim=True)
    error = b.error.sum(-1, keepdim=True) + (d + 2) * p.unit * _finite_abs(b.value).sum(-1, keepdim=True)
    return _finish(value, error, p, 0.0)


def _mul(a: Bound, b: Bound, p: Precision) -> Bound:
    return pointwise(torch.mul, [a, b], p, relative=1.0)


def dot(a: Bound, b: Bound, p: Precision) -> Bound:
    return component_sum(_mul(a, b, p), p)


def sqdist(a: Bound, b: Bound, p: Precision) -> Bound:
    """|a - b|^2; the error also allows the |a|^2 + |b|^2 - 2<a, b> form (cancellation ~ u (|a|^2 + |b|^2)), which
    keir uses for wide vectors, as torch.cdist does."""
    diff = pointwise(torch.sub, [a, b], p, relative=1.0)
    square = pointwise(lambda x: x * x, [diff], p, relative=1.0, critical=(0.0,))
    total = component_sum(square, p)
    a2, b2 = (a.value**2).sum(-1, keepdim=True), (b.value**2).sum(-1, keepdim=True)
    d = a.value.shape[-1]
    cancellation = 4 * (d + 2) * p.unit * (a2 + b2)
    error = torch.where(torch.isfinite(cancellation), total.error + cancellation, torch.full_like(total.error, INF))
    return _finish(total.value, torch.where(a2 + b2 > p.largest / 4, INF, error), p, 0.0)


def _select(b: Bound, start: int, length: int) -> Bound:
    return Bound(b.value[..., start:start + length], b.error[..., start:start + length])


def concat(parts: list[Bound]) -> Bound:
    shape = torch.broadcast_shapes(*[part.value.shape[:-1] for part in parts])
    values = [part.value.expand(*shape, part.value.shape[-1]) for part in parts]
    errors = [part.error.expand(*shape, part.error.shape[-1]) for part in parts]
    return Bound(torch.cat(values, -1), torch.cat(errors, -1))


def component_extreme(b: Bound, smallest: bool) -> Bound:
    """min() / max() over the components: 1-Lipschitz in the max norm; NaN components are unclear."""
    value = b.value.amin(-1, keepdim=True) if smallest else b.value.amax(-1, keepdim=True)
    error = b.error.amax(-1, keepdim=True)
    result = Bound(value, error)
    return _unknown_where(result, torch.isnan(b.value).any(-1, keepdim=True))


def component_arg_extreme(b: Bound, smallest: bool) -> Bound:
    """argmin() / argmax() over the components, as a float; first index among exact ties, unknown at near ties."""
    signed = b.value if smallest else -b.value
    index = signed.argmin(-1, keepdim=True)
    best = signed.gather(-1, index)
    best_error = b.error.gather(-1, index)
    others = torch.ones_like(signed, dtype=torch.bool).scatter(-1, index, False)
    rivals = others & (signed - b.error <= best + best_error) & ((b.error > 0) | (best_error > 0))
    unknown = rivals.any(-1, keepdim=True) | torch.isnan(b.value).any(-1, keepdim=True)
    unknown |= torch.isinf(b.error).any(-1, keepdim=True)
    value = index.double()
    return Bound(value, torch.where(unknown, INF, torch.zeros_like(value)))


def _one_hot(b: Bound, size: int, p: Precision) -> Bound:
    ks = torch.arange(size, dtype=torch.float64)
    result = pointwise(lambda x: (_round_half_away(x) == ks).double(), [b], p)
    halves = (b.value - torch.floor(b.value)) == 0.5  # KeOps rounds with C's round(); keir may round to even
    return _unknown_where(result, halves.expand_as(result.value))


# the evaluator ------------------------------------------------------------------------------------------
class Evaluator:
    """Evaluates formula trees over dense variables (Bounds of shape (*batch, M or 1, N or 1, D))."""

    def __init__(self, variables: dict[str, Bound], precision: Precision):
        self.variables, self.p = variables, precision
        # whether every sin, cos and sinxdivx argument is known to DERIVATIVE_ARGUMENT units of the dtype: a
        # derivative of theirs is off by about the argument's uncertainty (relative to the derivative's own size,
        # which does not shrink with |x| as sinxdivx's values do), which past that exceeds what the gradient check
        # allows (sin'(u) at u = 1e20 in float64, whose rounding alone is 1e4)
        self.derivatives_known = True

    def number(self, text: str) -> Bound:
        value = number_value(text)
        rounded = self.p.round(value)
        error = 0.0 if rounded == value or math.isnan(value) else abs(value - rounded)
        return Bound(torch.tensor(value, dtype=torch.float64), torch.tensor(error, dtype=torch.float64))

    def __call__(self, tree: dict) -> Bound:
        op = tree["op"]
        if op == "var":
            return self.variables[tree["name"]]
        if op == "num":
            return self.number(tree["text"])
        if op == "pow_lazy" and tree["args"][1]["op"] == "num":  # `x ** 2.5`: the API dispatches on the number
            return self._pow_number(self(tree["args"][0]), tree["args"][1]["text"])
        args = [self(arg) for arg in tree["args"]]
        if op == "mul" and any(arg["op"] == "num" and _literal_zero(arg["text"]) for arg in tree["args"]):
            # pykeops makes a Python int an IntCst, and IntCst(0) is KeOps' Zero, which a product folds to: 0 * f
            # is 0 even where f is NaN or infinite. A float 0.0 or -0.0 is a parameter in pykeops (IEEE's 0.0 *
            # NaN = NaN); keir folds it too, a difference the README states (conventions)
            shape = torch.broadcast_shapes(*(a.value.shape for a in args))
            zero = torch.zeros(shape, dtype=torch.float64)
            return Bound(zero, zero.clone())
        return self.apply(op, args, tree["attrs"])

    def _pow_number(self, base: Bound, text: str) -> Bound:
        """pykeops' `x ** y` for a Python number y: an int is Pow, 0.5 Sqrt, -0.5 Rsqrt, other floats Powf (keir
        takes an integer-valued float as Pow, the values of the C pow that KeOps' Powf calls)."""
        exponent = number_value(text)
        if exponent in (0.5, -0.5):
            return self.apply("sqrt" if exponent == 0.5 else "rsqrt", [base], {})
        if exponent.is_integer():
            return self.apply("pow_int", [base], {"exponent": repr(exponent)})
        return self._powf(base, self.number(text))

    def apply(self, op: str, args: list[Bound], attrs: dict) -> Bound:
        p = self.p
        if op in ("powf", "pow_lazy"):
            result = self._powf(args[0], args[1])
        elif op in ("sin", "cos"):  # 1-Lipschitz; the argument itself carries u |x| (range reduction)
            result = pointwise(torch.sin if op == "sin" else torch.cos, args, p)
            x = args[0]
            self._note_argument(x)
            error = torch.maximum(result.error, x.error + 2 * p.unit * x.value.abs() + p.unit)
            result = Bound(result.value, torch.where(error > 2, INF, error))
        elif op == "sinxdivx":  # sin(x) / x: sin's error (as above, at most 2) over |x|; Lipschitz 1 below |x| = 1
            result = pointwise(_sinxdivx, args, p, critical=(0.0,))
            x = args[0]
            self._note_argument(x)
            # KeOps' derivative cos(x)/x - sin(x)/x^2 cancels near 0: two terms of size 1/|x| for a value of -x/3,
            # a relative rounding of 3u/x^2, past the gradient check's 2^14 u below |x| = sqrt(3 / 2^14)
            near_zero = (x.value != 0) & (x.value.abs() < SINXDIVX_CANCELLATION)
            if bool(near_zero.any()):
                self.derivatives_known = False
            sin_error = torch.clamp(x.error + 2 * p.unit * x.value.abs() + p.unit, max=2.0)
            result = Bound(result.value, torch.maximum(result.error, sin_error / torch.clamp(x.value.abs(), min=1.0)))
        elif op in UNARY:
            fn, critical = UNARY[op]
            result = pointwise(fn, args, p, critical=critical)
            if op in ("inv", "rsqrt"):
                result = _unknown_where(result, _contains_zero(args[0]).expand_as(result.value))
        elif op in BINARY:
            result = pointwise(BINARY[op], args, p)
            if op in ("add", "sub"):  # keir-simplify may reassociate sums: rounding of the operands' magnitudes
                magnitude = _finite_abs(args[0].value) + _finite_abs(args[1].value)
                result = Bound(result.value, result.error + 4 * p.unit * magnitude)
            if op == "div":
                result = _unknown_where(result, _contains_zero(args[1]).expand_as(result.value))
            if op == "atan2":
                both = (args[0].value.abs() <= args[0].error) & (args[1].value.abs() <= args[1].error)
                result = _unknown_where(result, both.expand_as(result.value))
            if op in ("eq", "ne"):  # equality within rounding: the corners of the intervals skip the point itself
                spread = args[0].error + args[1].error
                close = ((args[0].value - args[1].value).abs() <= spread) & (spread > 0)
                result = _unknown_where(result, close.expand_as(result.value))
        elif op == "pow_int":
            n = int(float(attrs["exponent"]))
            result = pointwise(lambda x: _pow_int(x, n), args, p, relative=4.0 + 2 * abs(n), critical=(0.0,))
            if n < 0:
                result = _unknown_where(result, _contains_zero(args[0]))
        elif op == "pow_float":  # pykeops: ** 0.5 is Sqrt, ** -0.5 Rsqrt, other floats Powf(x, y) = exp(y log x)
            y = float(attrs["exponent"])
            if y in (0.5, -0.5):
                result = self.apply("sqrt" if y == 0.5 else "rsqrt", args, {})
            else:
                result = self._powf(args[0], self.number(attrs["exponent"]))
        elif op == "round":
            scale = self.number(repr(10.0 ** attrs["decimals"]))
            rounded = pointwise(_round_half_away, [self.apply("mul", [args[0], scale], {})], p)
            result = self.apply("div", [rounded, scale], {}) if attrs["decimals"] else rounded
        elif op == "clamp":
            result = pointwise(_clamp, args, p)
        elif op == "clampint":
            lo, hi = float(attrs["low"]), float(attrs["high"])
            result = pointwise(lambda x: _clamp(x, torch.full_like(x, lo), torch.full_like(x, hi)), args, p)
        elif op == "ifelse":
            result = pointwise(_ifelse, args, p)
        elif op == "mod":  # x - n floor((x - d) / n), each step rounded in the dtype
            x, n = args[0], args[1]
            quotient = self.apply("div", [self.apply("sub", [x, args[2]], {}) if len(args) == 3 else x, n], {})
            # past 1/u the floor of the quotient is not an integer the dtype can tell apart: nothing to compare
            quotient = _unknown_where(quotient, quotient.value.abs() * p.unit > 0.25)
            floored = self.apply("floor", [quotient], {})
            result = self.apply("sub", [x, self.apply("mul", [n, floored], {})], {})
        elif op == "sinc":
            result = self.apply("sinxdivx", [self.apply("mul", [self.number("math.pi"), args[0]], {})], {})
        else:
            result = self._vector(op, args, attrs)
        if op in NAN_UNCLEAR:
            result = _nan_unclear(result, args)
        return result

    def _vector(self, op: str, args: list[Bound], attrs: dict) -> Bound:
        p = self.p
        if op == "vsum":
            return component_sum(args[0], p)
        if op == "sqnorm2":
            return dot(args[0], args[0], p)
        if op == "norm2":
            return self.apply("sqrt", [dot(args[0], args[0], p)], {})
        if op == "normalize":
            return _mul(args[0], self.apply("rsqrt", [dot(args[0], args[0], p)], {}), p)
        if op in ("vmin", "vmax"):
            return component_extreme(args[0], op == "vmin")
        if op in ("vargmin", "vargmax"):
            return component_arg_extreme(args[0], op == "vargmin")
        if op == "dot":
            return dot(args[0], args[1], p)
        if op == "sqdist":
            return sqdist(args[0], args[1], p)
        if op == "weightedsqnorm":
            return self._weighted_sqnorm(args[0], args[1])
        if op == "weightedsqdist":
            return self._weighted_sqnorm(pointwise(torch.sub, args[:2], p, relative=1.0), args[2])
        if op == "elem":
            return _select(args[0], attrs["index"], 1)
        if op == "extract":
            return _select(args[0], attrs["start"], attrs["length"])
        if op == "concat":
            return concat(args)
        if op == "matvecmult":
            return self._matvec(args[0], args[1])
        if op == "vecmatmult":
            vector, matrix = args
            n = vector.value.shape[-1]
            m = matrix.value.shape[-1] // n
            columns = [dot(vector, Bound(matrix.value[..., c::m], matrix.error[..., c::m]), p) for c in range(m)]
            return concat(columns)
        if op == "tensorprod":
            a, b = args
            return concat([_mul(_select(a, r, 1), b, p) for r in range(a.value.shape[-1])])
        if op == "one_hot":
            return _one_hot(args[0], attrs["size"], p)
        raise ValueError(f"the fuzzer has no reference for op {op!r}")

    def _note_argument(self, x: Bound) -> None:
        uncertainty = x.error + 2 * self.p.unit * x.value.abs()
        if bool((uncertainty.nan_to_num(nan=INF) > DERIVATIVE_ARGUMENT * self.p.unit).any()):
            self.derivatives_known = False

    def _powf(self, x: Bound, y: Bound) -> Bound:
        """KeOps' Powf(x, y): C's powf (keopscore's keops_powf). Its magnitude as exp(y log |x|), each step rounded
        in the dtype; the sign and the special cases from torch.pow (C's pow): a negative base has the sign of an
        odd integer exponent and is NaN for a non-integer one; pow(x, 0) = pow(1, y) = 1. Where an uncertain y
        meets a negative base (whether y is an integer is unknown), or the base's interval straddles 0, anything
        goes."""
        magnitude = self.apply("exp", [self.apply("mul", [y, self.apply("log", [self.apply("abs", [x], {})], {})],
                                                  {})], {})
        xv, yv = torch.broadcast_tensors(x.value, y.value)
        exact = torch.pow(xv, yv)
        special = torch.isnan(exact) | (yv == 0) | (xv == 1) | torch.isinf(xv) | torch.isinf(yv)
        error = torch.where(special, torch.zeros_like(exact), magnitude.error.expand_as(exact))
        xe, ye = torch.broadcast_tensors(x.error, y.error)
        one = ((yv == 0) & (ye == 0)) | ((xv == 1) & (xe == 0))  # 1 whatever the other operand is
        unknown = ~one & (((xv < 0) & (ye > 0)) | ((xv.abs() <= xe) & (xe > 0)) | (special & ((xe > 0) | (ye > 0))))
        return _unknown_where(Bound(exact, error), unknown)

    def _matvec(self, matrix: Bound, vector: Bound) -> Bound:
        m = vector.value.shape[-1]
        rows = matrix.value.shape[-1] // m
        return concat([dot(_select(matrix, r * m, m), vector, self.p) for r in range(rows)])

    def _weighted_sqnorm(self, x: Bound, w: Bound) -> Bound:
        """pykeops WeightedSqNorm: s|x|^2 (s of dimension 1), sum s_k x_k^2 (dimension D), x^T S x (D*D)."""
        p = self.p
        d, wd = x.value.shape[-1], w.value.shape[-1]
        squares = pointwise(lambda v: v * v, [x], p, relative=1.0, critical=(0.0,))
        if wd == d:
            return component_sum(_mul(w, squares, p), p)
        if wd == 1:
            return _mul(w, component_sum(squares, p), p)
        return dot(x, self._matvec(w, x), p)
