"""Vectorisable elementary functions written in arith/math ops.

LLVM turns `math.exp` on a vector into one scalar `expf` call per lane; these polynomial versions stay in
vector registers. Each works on any `Builder` (scalars or vectors, f32 or f64). Accuracy is tested against
NumPy float64 in tests/compiler/lowering/test_mathlib.py; the bounds are stated in the README.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mlir_text's Builder.routine calls these functions
    from keir.compiler.mlir_text import Builder


@dataclass(frozen=True)
class _Format:
    mantissa_bits: int
    bias: int
    exp_clamp: tuple[float, float]  # below: the result rounds to 0; above: it overflows to inf
    ln2_hi: float  # few significant bits, so k * ln2_hi is exact
    ln2_lo: float
    exp_series: tuple[float, ...]  # p(r) ~ exp(r) on [-ln2/2, ln2/2]: its coefficients from degree 0
    # log(1+f) = 2s + s*z*L(z), s = f/(2+f), z = s*s, 1+f in [sqrt(1/2), sqrt(2)]: L's coefficients, a
    # minimax fit (see below) of the atanh series 2/3 + 2z/5 + 2z**2/7 + ...
    log_series: tuple[float, ...]
    # expm1(r) = r + r*r*q(r) on [-ln2/2, ln2/2] (tanh): q's coefficients, for the relative error of expm1,
    # which exp's polynomial (fitted for exp's) leaves above 1e-8 in f32 near |r| = ln2/2 (tanh then reached 0.9 ulp)
    expm1_series: tuple[float, ...]


_FORMATS = {
    "f32": _Format(
        mantissa_bits=23,
        bias=127,
        exp_clamp=(-104.0, 89.0),
        ln2_hi=0.693145751953125,
        ln2_lo=1.428606765330187045e-06,
        # degree 6: 1 + r + r^2 q(r), q minimax for the relative error (3.8e-9 with these float32 coefficients,
        # Remez exchange), one term fewer than Taylor needs
        exp_series=(1.0, 1.0, 0.4999999403953552, 0.1666652113199234, 0.04166838899254799, 0.008368710055947304,
                    0.001381461275741458),
        log_series=(0.6666677829274387265, 0.39976077879948061384, 0.29925592603090684517),
        # degree 7 in all, fitted as erf's coefficients below (see there) for expm1's relative error: 4.3e-10
        expm1_series=(0.5, 0.1666666567325592, 0.04166649281978607, 0.008333546109497547, 0.0013932324945926666,
                      0.00019761671137530357),
    ),
    "f64": _Format(
        mantissa_bits=52,
        bias=1023,
        exp_clamp=(-746.0, 710.0),
        ln2_hi=6.93147180369123816490e-01,
        ln2_lo=1.90821492927058770002e-10,
        # degree 11: 1 + r + r^2 q(r), q a Chebyshev fit (mpmath.chebyfit, 60 digits) of (e^r - 1 - r) / r^2:
        # relative error 1.6e-17 with these float64 coefficients (Taylor needs degree 13 for 4e-18)
        exp_series=(1.0, 1.0, 0.5000000000000001, 0.16666666666666669, 0.041666666666624164, 0.008333333333330065,
                    0.0013888888917196719, 0.00019841269863040545, 2.4801521322368692e-05, 2.7557268480310024e-06,
                    2.7620075879983367e-07, 2.5100375832561234e-08),
        log_series=(
            0.66666666666667095388,
            0.39999999999519823484,
            0.28571428729284787536,
            0.2222219909089342018,
            0.18183571541169415259,
            0.1531316437507681579,
            0.14810519990824060043,
        ),
        expm1_series=tuple(1 / math.factorial(n) for n in range(2, 15)),  # Taylor, degree 14: 3e-19 relative
    ),
}


def _shifter(fmt: _Format) -> float:
    """1.5 * 2**mantissa_bits: added to x / ln2, it leaves round(x / ln2) in the sum's low bits."""
    return 1.5 * 2.0**fmt.mantissa_bits


def _float_bits(value: float, fmt: _Format) -> int:
    """The IEEE bits of `value` in the format, as a signed integer."""
    code = "<f" if fmt.mantissa_bits == 23 else "<d"
    return int.from_bytes(struct.pack(code, value), "little", signed=True)


def _power_of_two(b: Builder, k: str, fmt: _Format) -> str:
    """2**k for an integer k in the normal exponent range, built from its bits."""
    biased = b.int_op("addi", k, b.int_const(fmt.bias))
    return b.from_bits(b.int_op("shli", biased, b.int_const(fmt.mantissa_bits)))


def exp(b: Builder, x: str) -> str:
    """exp(x) = 2**k * p(r), x = k*ln2 + r, |r| <= ln2/2, rounded as p * 2**k would be by one multiplication:
    subnormal results exact, 0 and inf past the range. Three ways, which give the same bits where they overlap:

    - `_exp_normal`, where every result is normal: 2**k added to p's exponent field;
    - `_exp_bounded`, for any x up to `_exp_top` (a Gaussian's, underflowing or not): a clamp and three more
      operations, which round subnormal results to the subnormal grid (and, in f32, a vector whose every lane
      is past the clamp, so 0, is 0 without it);
    - `_exp_anywhere`, for any x (NaN, overflow), on scalars and in code that runs once per row.

    The first two have no operation with a subnormal operand or result: on many CPUs each such operation takes
    a microcode assist, which made an underflowing Gaussian sum about 2x slower when every vector with an
    underflowing lane took `_exp_anywhere`. On vectors the choice is per vector, so it costs a branch
    misprediction where vectors with and without underflowing lanes mix.

    In a GPU kernel (`Names.gpu_math`, float32) exp runs on the special-function unit instead: see
    `_exp_special_function_unit`."""
    if b.names.gpu_math in ("sfu", "fast") and b.elem == "f32":
        return _on_scalars(b, x, _exp_special_function_unit)
    if b.names.gpu_math is not None and not b.once:  # a GPU thread branches on its own x, as a vector on its lanes
        return _on_scalars(b, x, _exp_normal_or_anywhere)
    if b.lanes is None or b.once:
        return _exp_anywhere(b, x)
    bounded, normal = _normal_result(b, x)
    return b.branch(_every_lane(b, normal), lambda n: _exp_normal(n, x), lambda t: _exp_not_normal(t, x, bounded))


def exp_normal_result(b: Builder, x: str) -> str:
    """exp(x) where every lane's result is known normal: x in [`lowest_normal_exp_argument`, `_exp_top`]
    (scalars, masked tails and GPU threads: `exp`)."""
    if b.lanes is None or b.once or b.names.gpu_math is not None:
        return exp(b, x)
    return _exp_normal(b, x)


def exp_at_most_top(b: Builder, x: str) -> str:
    """exp(x) where every lane's x is known to be at most `_exp_top` (68.6 / 668.9) and not NaN: `exp` without
    its test for large or NaN lanes."""
    if b.lanes is None or b.once or b.names.gpu_math is not None:
        return exp(b, x)
    normal = b.cmp("oge", x, b.const(lowest_normal_exp_argument(b.elem)))
    return b.branch(_every_lane(b, normal), lambda n: _exp_normal(n, x),
                    lambda t: _unless_all_zero(t, x, lambda z: z.const(0.0), lambda e: _exp_bounded(e, x)))


def lowest_normal_exp_argument(elem: str) -> float:
    """The least x whose exp `_exp_normal` computes: k >= -(bias - 2), so that p * 2**k is normal (p >= 2**-0.5)."""
    return -(_FORMATS[elem].bias - 2) * math.log(2)


def _exp_not_normal(b: Builder, x: str, bounded: str) -> str:
    """exp of a vector with a lane whose result is not normal: `_exp_bounded` if every lane is at most
    `_exp_top`, else `_exp_anywhere`; in f32, a vector of zeros (every x past the clamp) skips the polynomial."""

    def some_subnormal_or_large(u: Builder) -> str:
        return u.branch(_every_lane(u, bounded), lambda v: _exp_bounded(v, x), lambda a: _exp_anywhere(a, x))

    return _unless_all_zero(b, x, lambda z: z.const(0.0), some_subnormal_or_large)


def _unless_all_zero(b: Builder, x: str, zero: Callable[[Builder], str], otherwise: Callable[[Builder], str]) -> str:
    """zero(b) where, in f32, every lane's exp(x) is 0, else otherwise(b). Measured (benchmarks/cpu.py,
    underflow): in f64 the extra branch costs more than it saves, so f64 goes straight to otherwise."""
    if b.elem != "f32":
        return otherwise(b)
    past_the_clamp = b.cmp("olt", x, b.const(_FORMATS[b.elem].exp_clamp[0]))
    return b.branch(_every_lane(b, past_the_clamp), zero, otherwise)


def exp_times(b: Builder, x: str, w: str) -> str:
    """exp(x) * w, as `exp` then a multiplication, but where a vector's exp has a subnormal lane without
    subnormal arithmetic: a multiplication with a subnormal operand or result takes a microcode assist on many
    CPUs (about 10x the time on this project's AVX-512 machine), which made a Gaussian sum whose values
    underflow 8x slower than one whose values don't (benchmarks/cpu.py, underflow). On such vectors (every
    x <= 0 and |w| at most 2**(bias - c - 2), neither NaN: else exp then the multiplication) both roundings are
    done in a domain scaled by 2**c (see `_exp_times_scaled`, `_product_scale`): the same bits as exp then a
    multiplication, except that a subnormal product is rounded twice (to 24 / 53 bits, then to the subnormal
    grid), which can move it by one unit of that grid in a tie. Scalars and GPU threads: exp, then the
    multiplication. float64: exp, then the multiplication, too — measured (benchmarks/cpu.py, underflow):
    there the vectors that mix normal and underflowing lanes cost their branches, not assists, and the scaled
    product made the underflowing Gaussian slower (1.62x the non-underflowing one, against 1.44x)."""
    if b.lanes is None or b.once or b.names.gpu_math is not None or b.elem != "f32":
        return b.mul(exp(b, x), w)
    fmt = _FORMATS[b.elem]
    bounded, normal = _normal_result(b, x)
    weight_limit = b.const(2.0 ** (fmt.bias - _product_scale(fmt) - 2))

    def underflowing(t: Builder) -> str:
        magnitude = t.from_bits(t.int_op("andi", t.to_bits(w), _magnitude_bits(t)))
        scaled_is_exact = t.mask_op("andi", t.cmp("ole", x, t.const(0.0)), t.cmp("ole", magnitude, weight_limit))
        return t.branch(_every_lane(t, scaled_is_exact), lambda s: _exp_times_scaled(s, x, w),
                        lambda a: a.mul(_exp_not_normal(a, x, bounded), w))

    return b.branch(_every_lane(b, normal), lambda n: n.mul(_exp_normal(n, x), w),
                    lambda t: _unless_all_zero(t, x, lambda z: z.mul(z.const(0.0), w), underflowing))


def _product_scale(fmt: _Format) -> int:
    """The even c of `exp_times`. exp(x) * 2**c, x <= 0, rounded as exp(x) is, lies in [2**(c - s), 2**(c + 1))
    or is 0, s = bias - 1 + mantissa bits (2**-s is the least subnormal); its product with w is normal for |w|
    in [2**(1 - bias + s - c), 2**(bias - 2 - c)], and c centres that range on 1: [2**-51, 2**51] in f32,
    [2**-484, 2**485] in f64. (`_underflow_scale`'s c, the least that keeps exp(x) * 2**c normal, would leave
    the product subnormal for the least exp(x) and any w < 1: the assist again.)"""
    c = (fmt.bias - 2 + fmt.mantissa_bits) // 2  # (s - 1) / 2, rounded down
    return c - c % 2


def _exp_times_scaled(b: Builder, x: str, w: str) -> str:
    """exp(x) * w for x <= 0 and |w| <= 2**(bias - c - 2), not NaN (see `exp_times`). With y = exp(x) * 2**c
    (normal) and M = 2**(c + 1 - bias): Y = (y + max(y, M)) - max(y, M) is y rounded as `_exp_bounded` rounds
    exp(x) to the float grid (exact: Y = exp(x) * 2**c as a float), z = Y * w, and |z| * 2**-c rounded by the
    same addition (|z| < 2**(bias - 1), so 2|z| is finite), with z's sign."""
    c = _product_scale(_FORMATS[b.elem])
    z = b.to_bits(b.mul(_exp_rounded_scaled(b, x, c), w))
    magnitude = b.from_bits(b.int_op("andi", z, _magnitude_bits(b)))
    rounded = b.int_op("subi", b.to_bits(b.add(magnitude, _at_least_m(b, magnitude, c))), _m_bits(b, c))
    return b.from_bits(b.int_op("ori", rounded, b.int_op("andi", z, _sign_bit(b))))


def exp_product_sums(b: Builder, terms: list[tuple[str, str, str]]) -> list[str]:
    """acc + exp(x) * w, rounded once (an FMA), for each (x, w, acc) of terms, with exp(x) rounded as `exp`
    rounds it: one step of the sums of a j loop whose terms are such products (a Gaussian's rows; several terms
    may share an x, whose exp is computed once, or a w). Branches taken once for all the terms choose the path:

    - where every x is at most `_exp_top` and every w is 0, NaN, or at least 2**(c + 1 - bias) in magnitude
      (c = `_underflow_scale`): if every exp(x) is normal, `_exp_normal` and the FMA; else Y = exp(x) * 2**c
      (exact: `_exp_rounded_scaled`) and the FMA of Y with w * 2**-c (normal, exact, shared by the terms that
      share w), which gives the same bits without an operation on a subnormal operand or result: on many CPUs
      each such operation takes a microcode assist, which made a Gaussian sum whose values underflow 1.75x
      slower than one whose values don't (benchmarks/cpu.py, underflow). In float32, an x whose lanes all
      have exp(x) = 0 skips the polynomial;
    - else (overflow, NaN, tiny weights): `exp`, then the FMA."""
    fmt = _FORMATS[b.elem]
    c = _underflow_scale(fmt)
    xs = list(dict.fromkeys(x for x, _, _ in terms))
    ws = list(dict.fromkeys(w for _, w, _ in terms))
    types = [b.type] * len(terms)

    def every(t: Builder, masks: list[str]) -> str:
        mask = masks[0]
        for other in masks[1:]:
            mask = t.mask_op("andi", mask, other)
        return _every_lane(t, mask)

    def summed(t: Builder, exps: dict[str, str], weights: dict[str, str]) -> list[str]:
        return [t.fma(exps[x], weights[w], acc) for x, w, acc in terms]

    def normal(n: Builder) -> list[str]:
        return summed(n, {x: _exp_normal(n, x) for x in xs}, {w: w for w in ws})

    def scaled(s: Builder) -> list[str]:
        exps = {x: _unless_all_zero(s, x, lambda z: z.const(0.0), lambda e, x=x: _exp_rounded_scaled(e, x, c))
                for x in xs}
        return summed(s, exps, {w: s.mul(w, s.const(2.0**-c)) for w in ws})

    def bounded(t: Builder) -> list[str]:
        least = xs[0]  # no x is NaN here: the least tells whether every exp is normal (one compare)
        for x in xs[1:]:
            least = t.emit(f"arith.minimumf {least}, {x} fastmath<nnan> : {t.type}")
        normal_results = t.cmp("oge", least, t.const(lowest_normal_exp_argument(t.elem)))
        return t.branches(_every_lane(t, normal_results), types, normal, scaled)

    least_weight = b.const(2.0 ** (c + 1 - fmt.bias))
    masks = [b.cmp("ole", x, b.const(_exp_top(fmt))) for x in xs]
    for w in ws:  # w * 2**-c is exact: 0, NaN, or normal (inf included)
        magnitude = b.from_bits(b.int_op("andi", b.to_bits(w), _magnitude_bits(b)))
        masks.append(b.mask_op("ori", b.cmp("uge", magnitude, least_weight), b.cmp("oeq", w, b.const(0.0))))

    def anywhere(a: Builder) -> list[str]:
        return summed(a, {x: exp(a, x) for x in xs}, {w: w for w in ws})

    return b.branches(every(b, masks), types, bounded, anywhere)


def _exp_rounded_scaled(b: Builder, x: str, c: int) -> str:
    """exp(x) * 2**c, exp(x) rounded as `exp` rounds it (to the subnormal grid below the normal range), for x
    up to `_exp_top` (c = `_underflow_scale`) or up to 0 (c = `_product_scale`): y = exp(x) * 2**c (normal) and
    M = 2**(c + 1 - bias) as in `_exp_bounded`, and (y + max(y, M)) - max(y, M) is y rounded to the multiples
    of ulp(M) where y < M, else y (2y - y, exact)."""
    y = _exp_scaled(b, x, c)
    y_larger = _at_least_m(b, y, c)
    return b.sub(b.add(y, y_larger), y_larger)


# GPU math (the `gpu_math` of keir.compiler.pipeline.CompileOptions): "sfu" exp is ex2.approx after an exact
# reduction, "fast" is ex2.approx(x * log2(e)) as KeOps' -use_fast_math compiles it, "ieee" the polynomials.
GPU_MATH = ("sfu", "fast", "ieee")


def check_gpu_math(value: str) -> None:
    """Refuse a `precision` (gpu_math) that is not one of GPU_MATH, naming the choices."""
    if value not in GPU_MATH:
        raise ValueError(f"precision must be one of {', '.join(map(repr, GPU_MATH))}, got {value!r}")


_LN2_HI = struct.unpack("<f", struct.pack("<f", math.log(2)))[0]  # ln 2 = _LN2_HI + _LN2_LO to 2**-48
_LN2_LO = math.log(2) - _LN2_HI
# below it, exp is 0 in float32 (exp(-104) < 2**-150): ex2.approx sees no -inf, whose reduction would be NaN
_SFU_FLOOR = -200.0


def _on_scalars(b: Builder, x: str, routine) -> str:
    """routine on a scalar builder; a vector<1xT> (an accumulator's state on the GPU) is taken apart and back."""
    if b.lanes is None:
        return routine(b, x)
    if b.lanes != 1:
        raise ValueError(f"GPU math works on scalars, not vector<{b.lanes}x{b.elem}>")
    scalar = dataclasses.replace(b, lanes=None)  # the same names and lines
    value = routine(scalar, scalar.emit(f"vector.extract {x}[0] : {b.elem} from {b.type}"))
    return b.emit(f"vector.broadcast {value} : {b.elem} to {b.type}")


def _exp_special_function_unit(b: Builder, x: str) -> str:
    """exp(x) = 2**h * e**r, h = x * log2(e) rounded to float32, r = x - h * ln 2 computed by two FMAs to about
    2**-40 (|r| <= ulp(h) * ln2 / 2 <= 2**-17); 2**h is the special-function unit's `ex2.approx.f32` (which keeps
    subnormal results) and e**r = 1 + r to 2**-35, applied by one FMA: the result is ex2.approx's own error
    (CUDA documents 2 ulp for its exp2f, which nvcc builds on this instruction; only a device measures it) plus
    half an ulp. h is clamped at 128, where 2**h is
    already inf: there r >= 0, so that inf * (1 + r) stays inf (x = +inf included), and x below -200 (-inf) is
    taken as -200, whose result is 0 as well. NaN propagates (minimumf/maximumf). With gpu_math "fast", KeOps'
    form: ex2.approx.ftz(x * log2(e)), two instructions, a relative error of about (2 + 1.2 |x|) ulp and
    results below 2**-126 flushed to 0."""
    log2e = b.const(1 / math.log(2))
    if b.names.gpu_math == "fast":
        return b.emit(f"math.exp2 {b.mul(x, log2e)} fastmath<afn> : {b.type}")
    clamped = b.max(x, b.const(_SFU_FLOOR))
    h = b.min(b.mul(clamped, log2e), b.const(128.0))
    r = b.fma(h, b.const(-_LN2_LO), b.fma(h, b.const(-_LN2_HI), clamped))
    power = b.emit(f"math.exp2 {h} : {b.type}")
    return b.fma(power, r, power)


def _normal_result(b: Builder, x: str) -> tuple[str, str]:
    """The masks of the x at most `_exp_top` and of those whose exp is moreover normal (both false for NaN)."""
    fmt = _FORMATS[b.elem]
    bounded = b.cmp("ole", x, b.const(_exp_top(fmt)))  # NaN compares false
    return bounded, b.mask_op("andi", bounded, b.cmp("oge", x, b.const(lowest_normal_exp_argument(b.elem))))


def _exp_normal_or_anywhere(b: Builder, x: str) -> str:
    """exp of a scalar on the GPU: `_exp_normal` where the result is normal, else (underflow, overflow, NaN)
    `_exp_anywhere`; the branch diverges only in warps that mix both."""
    return b.branch(_normal_result(b, x)[1], lambda n: _exp_normal(n, x), lambda a: _exp_anywhere(a, x))


def _every_lane(b: Builder, mask: str) -> str:
    return b.emit(f"vector.reduction <and>, {mask} : {b.mask_type} into i1", "m")


def _exp_reduction(b: Builder, x: str, offset: int = 0) -> tuple[str, str, str, str]:
    """x = k*ln2 + r for x in the clamp range: (-k, x - k*ln2_hi (exact), r, x / ln2 + 1.5 * 2**mantissa_bits
    + offset). The sum's low bits hold k + offset, k = round(x / ln2), as an integer (a float -> int64
    conversion has no AVX2 instruction and is done lane by lane). The offset is even, so that rounding to
    nearest even gives the same k."""
    assert offset % 2 == 0
    fmt = _FORMATS[b.elem]
    shifter = b.const(_shifter(fmt) + offset)
    shifted = b.fma(x, b.const(1 / math.log(2)), shifter)
    minus_k = b.neg(b.sub(shifted, shifter))
    r_hi = b.fma(minus_k, b.const(fmt.ln2_hi), x)
    r = b.fma(minus_k, b.const(fmt.ln2_lo), r_hi)
    return minus_k, r_hi, r, shifted


def _exp_reduced(b: Builder, x: str, offset: int = 0) -> tuple[str, str]:
    """(p(r), the shifted sum of `_exp_reduction`)."""
    _, _, r, shifted = _exp_reduction(b, x, offset)
    return b.horner(r, list(_FORMATS[b.elem].exp_series)), shifted


def _exponent_term(b: Builder, shifted: str) -> str:
    """(k + offset) << mantissa_bits, from the shifted sum of `_exp_reduced`: the shifter's low bits are zero,
    so the sum's bits, shifted left, are that term (exact as a signed integer while |k + offset| < 2**(exponent
    bits))."""
    return b.int_op("shli", b.to_bits(shifted), b.int_const(_FORMATS[b.elem].mantissa_bits))


def _exp_normal(b: Builder, x: str) -> str:
    """exp(x) where the result is normal: k << mantissa_bits added to p's bits."""
    p, shifted = _exp_reduced(b, x)
    return b.from_bits(b.int_op("addi", b.to_bits(p), _exponent_term(b, shifted)))


def _underflow_scale(fmt: _Format) -> int:
    """The least even c such that y = p * 2**(k + c) is normal for every k of the clamp range (k >= round(lo /
    ln2), p >= 2**-1): 26 for f32, 56 for f64. Even: it is the offset of `_exp_reduced`."""
    c = 1 - (fmt.bias - 1 + round(fmt.exp_clamp[0] / math.log(2)))
    return c + c % 2


def _exp_top(fmt: _Format) -> float:
    """The largest x that `_exp_bounded` takes: k <= bias - c - 2, so that 2y = p * 2**(k + c + 1), p < 2, is
    finite (68.6 for f32, 668.9 for f64)."""
    return (fmt.bias - _underflow_scale(fmt) - 2) * math.log(2)


def _exp_bounded(b: Builder, x: str) -> str:
    """exp(x) for x <= `_exp_top`, not NaN: normal, subnormal or zero results.

    With y = p * 2**(k + c) (normal, see `_underflow_scale`) and M = 2**(c + 1 - bias): a result p * 2**k below
    the smallest normal 2**(1 - bias) has y < M, and y + M, rounded, is M plus y rounded to a multiple of
    ulp(M) = 2**(c + 1 - bias - mantissa_bits), i.e. p * 2**k rounded to the subnormal grid: bits(y + M) -
    bits(M) are the result's bits (0 included, and the smallest normal where it rounds up). A normal result
    has y >= M, and its bits are bits(2y) - bits(M). So the result is bits(y + max(y, M)) - bits(M)."""
    c = _underflow_scale(_FORMATS[b.elem])
    y = _exp_scaled(b, x, c)
    return b.from_bits(b.int_op("subi", b.to_bits(b.add(y, _at_least_m(b, y, c))), _m_bits(b, c)))


def _exp_scaled(b: Builder, x: str, c: int) -> str:
    """exp(x) * 2**c from the exponent bits, x (not NaN) clamped below (where exp(x) is 0, and k would leave c's
    range)."""
    clamp = b.const(_FORMATS[b.elem].exp_clamp[0])  # x is not NaN (see the callers): one max instruction
    p, shifted = _exp_reduced(b, b.emit(f"arith.maximumf {x}, {clamp} fastmath<nnan,nsz> : {b.type}"), offset=c)
    return b.from_bits(b.int_op("addi", b.to_bits(p), _exponent_term(b, shifted)))


def _at_least_m(b: Builder, y: str, c: int) -> str:
    """max(y, M), M = 2**(c + 1 - bias), for y >= 0 not NaN: the flags make it one max instruction (else tests
    for NaN and -0)."""
    m = 2.0 ** (c + 1 - _FORMATS[b.elem].bias)
    return b.emit(f"arith.maximumf {y}, {b.const(m)} fastmath<nnan,nsz> : {b.type}")


def _m_bits(b: Builder, c: int) -> str:
    fmt = _FORMATS[b.elem]
    return b.int_const(_float_bits(2.0 ** (c + 1 - fmt.bias), fmt))


def _exp_anywhere(b: Builder, x: str) -> str:
    """exp(x) for any x: 2**k applied in two halves so that results in the subnormal range are rounded once and
    results past the float range overflow to inf. The multiplication that rounds a result to a subnormal (or to
    0) takes a microcode assist on many CPUs; this path is for code that runs once per row, scalars and vectors
    with a NaN or a large lane, where that is rare or cheap, and it is the smaller code."""
    fmt = _FORMATS[b.elem]
    lo, hi = fmt.exp_clamp
    clamped = b.max(b.min(x, b.const(hi)), b.const(lo))  # a NaN stays NaN (minimumf), and so does the result
    p, shifted = _exp_reduced(b, clamped)
    k = b.int_op("subi", b.to_bits(shifted), b.int_const(_float_bits(_shifter(fmt), fmt)))
    k_half = b.int_op("shrsi", k, b.int_const(1))
    k_rest = b.int_op("subi", k, k_half)
    return b.mul(b.mul(p, _power_of_two(b, k_half, fmt)), _power_of_two(b, k_rest, fmt))


def log(b: Builder, x: str) -> str:
    """log(x) = e*ln2 + log(1+f), 1+f in [sqrt(1/2), sqrt(2)). With s = f/(2+f), log(1+f) = 2*atanh(s)
    = 2s + s*R, R = z*L(z), z = s*s; evaluated as f - (f*f/2 - s*(f*f/2 + R)) so that the rounding errors
    of s only reach the small correction term (f itself is exact)."""
    fmt = _FORMATS[b.elem]
    smallest_normal = 2.0 ** (1 - fmt.bias)
    subnormal = b.cmp("olt", x, b.const(smallest_normal))
    scaled = b.select(subnormal, b.mul(x, b.const(2.0**fmt.mantissa_bits)), x)
    bits = b.to_bits(scaled)
    exponent_bits = b.int_op("shrui", bits, b.int_const(fmt.mantissa_bits))
    exponent = b.int_op("subi", exponent_bits, b.int_const(fmt.bias))
    mantissa_mask = (1 << fmt.mantissa_bits) - 1
    one_bits = fmt.bias << fmt.mantissa_bits
    m = b.from_bits(b.int_op("ori", b.int_op("andi", bits, b.int_const(mantissa_mask)), b.int_const(one_bits)))
    above = b.cmp("ogt", m, b.const(math.sqrt(2.0)))
    m = b.select(above, b.mul(m, b.const(0.5)), m)
    e = b.to_float(exponent)
    e = b.add(e, b.select(above, b.const(1.0), b.const(0.0)))
    e = b.sub(e, b.select(subnormal, b.const(float(fmt.mantissa_bits)), b.const(0.0)))
    f = b.sub(m, b.const(1.0))  # exact
    s = b.div(f, b.add(f, b.const(2.0)))
    z = b.mul(s, s)
    r = b.mul(z, b.horner(z, list(fmt.log_series)))
    half_f2 = b.mul(b.mul(f, f), b.const(0.5))
    correction = b.fma(s, b.add(half_f2, r), b.mul(e, b.const(fmt.ln2_lo)))
    result = b.fma(e, b.const(fmt.ln2_hi), b.sub(f, b.sub(half_f2, correction)))  # e*ln2_hi is exact
    result = b.select(b.cmp("oeq", x, b.const(math.inf)), x, result)
    result = b.select(b.cmp("oeq", x, b.const(0.0)), b.const(-math.inf), result)
    result = b.select(b.cmp("olt", x, b.const(0.0)), b.const(math.nan), result)
    return b.select(b.cmp("uno", x, x), x, result)


# trigonometric and inverse trigonometric functions ------------------------------------------------------
#
# Polynomial coefficients below are weighted minimax fits (Remez exchange in 80-digit arithmetic) of the
# part of each Taylor series after its leading term(s), for relative error of the whole function; the
# constants pi/2, pi/4, ... are split into pieces so that hi + lo carries twice the working precision.


@dataclass(frozen=True)
class _Trig:
    pio2: tuple[float, float, float]  # pi/2 = sum, each piece exact in the format (Cody-Waite reduction)
    pio4: tuple[float, float]
    three_pio4: tuple[float, float]
    pi: tuple[float, float]
    sin: tuple[float, ...]  # sin(r) = r + r*z*S(z), z = r*r, |r| <= pi/4
    cos: tuple[float, ...]  # cos(r) = 1 - z/2 + z*z*C(z)
    atan: tuple[float, ...]  # atan(t) = t + t*z*A(z), |t| <= tan(pi/8)
    asin: tuple[float, ...]  # asin(s) = s + s*z*P(z), 0 <= s <= 1/2


_TRIG = {
    "f32": _Trig(
        pio2=(1.5707963705062866, -4.371138828673793e-08, -1.7151245100058819e-15),
        pio4=(0.7853981852531433, -2.1855694143368964e-08),
        three_pio4=(2.356194496154785, -5.962440319251527e-09),
        pi=(3.1415927410125732, -8.742277657347586e-08),
        sin=(-0.16666666644211150896, 0.008333329327904400101, -0.00019839261153558070259, 2.7173456508792843381e-6),
        cos=(0.041666654648208036417, -0.0013887654138661666766, 0.000024463803885606119591),
        atan=(
            -0.33333318649941886352,
            0.1999853263797735412,
            -0.14242959876114991528,
            0.10581396868117681127,
            -0.060330084583253755198,
        ),
        asin=(
            0.16666731183039671183,
            0.074956662216643697541,
            0.045466005566445824042,
            0.024055376816554525013,
            0.042556639311101913234,
        ),
    ),
    "f64": _Trig(
        pio2=(1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33),
        pio4=(0.7853981633974483, 3.061616997868383e-17),
        three_pio4=(2.356194490192345, 9.184850993605148e-17),
        pi=(3.141592653589793, 1.2246467991473532e-16),
        sin=(
            -0.16666666666666642162,
            0.0083333333333236669969,
            -0.00019841269830148834664,
            2.7557313653520473452e-6,
            -2.5050734844906136131e-8,
            1.5894726933558495253e-10,
        ),
        cos=(
            0.041666666666666651338,
            -0.0013888888888882842158,
            0.000024801587294630783747,
            -2.7557315739656447573e-7,
            2.0875897910014890308e-9,
            -1.1367992111475878557e-11,
        ),
        atan=(
            -0.33333333333333268386,
            0.1999999999996928125,
            -0.14285714281380127817,
            0.11111110826354570277,
            -0.090908986059027613964,
            0.076920696344360342277,
            -0.066631575672705288696,
            0.058479531814491726397,
            -0.050383615084424570459,
            0.038014239175787850339,
            -0.017827685730497712076,
        ),
        asin=(
            0.16666666666666701054,
            0.074999999999844897795,
            0.044642857163662851772,
            0.030381943143024431313,
            0.022372204983146829229,
            0.017351755628379204612,
            0.013979484045369723267,
            0.011407040170748350287,
            0.010748736863712903044,
            0.0037780256164478260458,
            0.021636646031789188068,
            -0.021030468141701413236,
            0.032722447523801353505,
        ),
    ),
}


def _two_sum(b: Builder, x: str, y: str) -> tuple[str, str]:
    """(x + y rounded, its rounding error), exactly (Knuth's TwoSum; no ordering of |x|, |y| needed)."""
    total = b.add(x, y)
    y_part = b.sub(total, x)
    x_part = b.sub(total, y_part)
    return total, b.add(b.sub(x, x_part), b.sub(y, y_part))


def _fast_two_sum(b: Builder, x: str, y: str) -> tuple[str, str]:
    """(x + y rounded, its rounding error), exactly when |x| >= |y| (or x = 0)."""
    total = b.add(x, y)
    return total, b.sub(y, b.sub(total, x))


def _sign_bit(b: Builder) -> str:
    width = int(b.elem[1:])
    return b.int_const(-(1 << (width - 1)))


def _magnitude_bits(b: Builder) -> str:
    """The mask of every bit but the sign."""
    return b.int_const((1 << (int(b.elem[1:]) - 1)) - 1)


def _sin_cos(b: Builder, x: str, cosine: bool) -> str:
    """sin or cos of |x| = k*pi/2 + r, |r| <= pi/4: one of +-sin(r), +-cos(r) by the quadrant k mod 4. In f32,
    arguments past the Cody-Waite range take the Payne-Hanek reduction (only vectors that hold one do)."""
    trig = _TRIG[b.elem]
    ax = b.math("absf", x)
    k = b.math("roundeven", b.mul(ax, b.const(2 / math.pi)))
    minus_k = b.neg(k)
    # r = |x| - k*pi/2 as r_hi + r_lo: the first step is exact (an fma whose result needs no more bits than
    # |x| has), the second is an error-free product and sum, the third piece only reaches r_lo
    r1 = b.fma(minus_k, b.const(trig.pio2[0]), ax)
    product = b.mul(k, b.const(trig.pio2[1]))
    product_error = b.fma(k, b.const(trig.pio2[1]), b.neg(product))
    r, sum_error = _two_sum(b, r1, b.neg(product))
    r_lo = b.fma(minus_k, b.const(trig.pio2[2]), b.sub(sum_error, product_error))
    # Past the accurate range r is garbage; the clamp keeps it (and so the result) bounded. NaN stays NaN.
    r = b.max(b.min(r, b.const(1.0)), b.const(-1.0))
    # k mod 4, exactly, in floating point (0 once k is a multiple of 4); NaN (x = +-inf or NaN) -> 0
    quadrant = b.sub(k, b.mul(b.math("floor", b.mul(k, b.const(0.25))), b.const(4.0)))
    quadrant = b.select(b.cmp("uno", quadrant, quadrant), b.const(0.0), quadrant)
    value = _sin_cos_reduced(b, r, r_lo, b.to_int(quadrant), x, cosine)
    value = b.max(b.min(value, b.const(1.0)), b.const(-1.0))  # only acts past the accurate range
    if b.elem != "f32":
        return value
    large = b.mask_op("andi", b.cmp("ogt", ax, b.const(_CODY_WAITE_LIMIT_F32)), b.cmp("olt", ax, b.const(math.inf)))
    any_large = large if b.lanes is None else b.emit(f"vector.reduction <or>, {large} : {b.mask_type} into i1", "m")
    return b.branch(any_large, lambda t: t.select(large, _sin_cos_payne_hanek_f32(t, x, cosine), value),
                    lambda t: value)


def _sin_cos_reduced(b: Builder, r: str, r_lo: str, q: str, x: str, cosine: bool) -> str:
    """sin or cos of x from its reduction |x| = k*pi/2 + r + r_lo, q = k mod 4 (an int of the builder's width)."""
    trig = _TRIG[b.elem]
    if cosine:
        q = b.int_op("addi", q, b.int_const(1))
    z = b.mul(r, r)
    # sin(r + r_lo) ~ r + (r_lo + r*z*S(z)); cos(r + r_lo) ~ 1 - z/2 + (z*z*C(z) - r*r_lo)
    sin_r = b.add(r, b.fma(b.mul(r, z), b.horner(z, list(trig.sin)), r_lo))
    half_z = b.mul(z, b.const(0.5))
    w = b.sub(b.const(1.0), half_z)
    w_error = b.sub(b.sub(b.const(1.0), w), half_z)  # exact: the rounding error of w
    cos_tail = b.fma(b.mul(z, z), b.horner(z, list(trig.cos)), b.fma(b.neg(r), r_lo, w_error))
    cos_r = b.add(w, cos_tail)
    odd = b.int_cmp("ne", b.int_op("andi", q, b.int_const(1)), b.int_const(0))
    value = b.select(odd, cos_r, sin_r)
    width = int(b.elem[1:])
    flip = b.int_op("shli", b.int_op("andi", q, b.int_const(2)), b.int_const(width - 2))
    if not cosine:  # sin is odd
        flip = b.int_op("xori", flip, b.int_op("andi", b.to_bits(x), _sign_bit(b)))
    return b.from_bits(b.int_op("xori", b.to_bits(value), flip))


# Payne-Hanek reduction of a float32 argument: floor(2/pi * 2**198) (fdlibm's table of 2/pi starts the same,
# 0xA2F9836E...; tests/compiler/lowering/test_mathlib.py recomputes it from Machin's formula), as 32-bit words,
# least significant first. 198 bits: the float32 exponent reaches 127, and 71 more bits keep the fraction.
TWO_OVER_PI_F32 = 0x28BE60DB9391054A7F09D5F47D4D377036D8A5664F10E4107F
_TWO_OVER_PI_WORDS = tuple((TWO_OVER_PI_F32 >> (32 * k)) & 0xFFFFFFFF for k in range(7))
_CODY_WAITE_LIMIT_F32 = 2.0**20  # the f32 Cody-Waite reduction is within 1 ulp up to here


def _sin_cos_payne_hanek_f32(b: Builder, x: str, cosine: bool) -> str:
    """sin or cos of a float32 x with 2**20 < |x| < inf (other lanes give garbage), in 64-bit integer and float
    arithmetic on the same lanes. |x| = m * 2**(e-23) with m a 24-bit integer, so x*2/pi mod 4 needs only the bits
    of 2/pi of weight below 2**(25-e): 96 of them, F = floor(2/pi * 2**(e+71)) mod 2**96, give
    Q = (m*F mod 2**96) / 2**32 = (x*2/pi mod 4) * 2**62 within 2**-8 of a unit, the quadrant in its top two bits
    and r = the rest * pi/2 * 2**-62, accurate to 2**-70 absolutely (|r| > 2**-31 for every float32 x)."""
    d = dataclasses.replace(b, elem="f64")  # the same block (lines shared), 64-bit values
    bits = b.int_op("andi", b.to_bits(x), b.int_const(0x7FFFFFFF))
    wide = b.emit(f"arith.extui {bits} : {b.int_type} to {d.int_type}", "q")
    mantissa = d.int_op("ori", d.int_op("andi", wide, d.int_const(0x7FFFFF)), d.int_const(0x800000))
    exponent = d.int_op("subi", d.int_op("shrui", wide, d.int_const(23)), d.int_const(127))
    exponent = d.int_op("maxsi", d.int_op("minsi", exponent, d.int_const(127)), d.int_const(20))
    shift = d.int_op("subi", d.int_const(127), exponent)  # F = (2/pi table >> shift) mod 2**96
    word_shift = d.int_op("shrui", shift, d.int_const(5))
    bit_shift = d.int_op("andi", shift, d.int_const(31))
    is_word = [d.int_cmp("eq", word_shift, d.int_const(q)) for q in range(1, 4)]

    def table_word(j: int) -> str:  # table word word_shift + j
        word = d.int_const(_TWO_OVER_PI_WORDS[j])
        for q in range(1, 4):
            word = d.select(is_word[q - 1], d.int_const(_TWO_OVER_PI_WORDS[q + j]), word, of_int=True)
        return word

    window = [table_word(j) for j in range(4)]
    low_bits = d.int_const(0xFFFFFFFF)
    up_shift = d.int_op("subi", d.int_const(32), bit_shift)
    f = [d.int_op("andi", d.int_op("ori", d.int_op("shrui", window[k], bit_shift),
                                   d.int_op("shli", window[k + 1], up_shift)), low_bits) for k in range(3)]
    products = [d.int_op("muli", mantissa, word) for word in f]  # each < 2**56: exact
    q_value = d.int_op("addi", d.int_op("addi", d.int_op("shli", products[2], d.int_const(32)), products[1]),
                       d.int_op("shrui", products[0], d.int_const(32)))  # mod 2**64
    rounded = d.int_op("addi", q_value, d.int_const(1 << 61))  # to the nearest quadrant
    quadrant = d.int_op("shrui", rounded, d.int_const(62))
    fraction = d.int_op("subi", d.int_op("andi", rounded, d.int_const((1 << 62) - 1)), d.int_const(1 << 61))
    r = d.mul(d.to_float(fraction), d.const(math.pi / 2 * 2.0**-62))
    x64 = b.emit(f"arith.extf {x} : {b.type} to {d.type}")
    value = _sin_cos_reduced(d, r, d.const(0.0), quadrant, x64, cosine)
    return b.emit(f"arith.truncf {value} : {d.type} to {b.type}")


def sin(b: Builder, x: str) -> str:
    """sin(x): Cody-Waite reduction by pi/2 in three pieces, then a minimax polynomial on [-pi/4, pi/4]; in f32,
    the Payne-Hanek reduction past |x| = 2**20 (evaluated in f64).

    Within 1 ulp (see README) for every f32 and for |x| <= 2**47 in f64. Beyond, in f64, the rounded product
    |x|*2/pi can round to the wrong integer k, so r leaves [-pi/4, pi/4] where the polynomials were fitted: about
    an ulp up to 2**49, then absolute errors up to ~0.1 below 2**51, growing until from 2**53 the result is an
    arbitrary value in [-1, 1] (f64 has no Payne-Hanek reduction). It is never inf or NaN for a finite x;
    sin(+-inf) and sin(NaN) are NaN; sin(-0) = -0."""
    return _sin_cos(b, x, cosine=False)


def cos(b: Builder, x: str) -> str:
    """cos(x), as `sin` (same reduction, same range of accuracy)."""
    return _sin_cos(b, x, cosine=True)


def _atan_first_quadrant(b: Builder, ay: str, ax: str, x_negative: str | None) -> str:
    """atan(ay/ax) for ay, ax >= 0 (pi - that if `x_negative`), reduced to t = num/den, |t| <= tan(pi/8):
    ay/ax < tan(pi/8): atan(ay/ax); up to tan(3pi/8): pi/4 + atan((ay-ax)/(ay+ax)); else pi/2 - atan(ax/ay).
    The rounding errors of num, den and the division are carried to first order in t_lo."""
    trig = _TRIG[b.elem]
    infinity = b.const(math.inf)
    both_inf = b.mask_op("andi", b.cmp("oeq", ay, infinity), b.cmp("oeq", ax, infinity))
    big = b.cmp("ogt", ay, b.mul(ax, b.const(2.414213562373095)))
    mid = b.mask_op("ori", b.cmp("ogt", ay, b.mul(ax, b.const(0.41421356237309503))), both_inf)
    difference, difference_error = _two_sum(b, ay, b.neg(ax))
    total, total_error = _two_sum(b, ay, ax)
    zero = b.const(0.0)
    num = b.select(big, b.neg(ax), b.select(mid, difference, ay))
    den = b.select(big, ay, b.select(mid, total, ax))
    num_error = b.select(big, zero, b.select(mid, difference_error, zero))
    den_error = b.select(big, zero, b.select(mid, total_error, zero))
    num = b.select(both_inf, zero, num)  # atan2(+-inf, +-inf): pi/4 or 3pi/4
    den = b.select(b.cmp("oeq", den, zero), b.const(1.0), den)  # atan2(+-0, +-0)
    den = b.select(both_inf, b.const(1.0), den)
    t = b.div(num, den)
    # (num + num_error)/(den + den_error) - t ~ (num - t*den + num_error - t*den_error)/den
    residual = b.add(b.fma(b.neg(t), den, num), b.fma(b.neg(t), den_error, num_error))
    residual = b.select(b.cmp("uno", residual, residual), zero, residual)  # den = inf (then t = 0)
    t_lo = b.div(residual, den)
    z = b.mul(t, t)
    p_lo = b.fma(b.mul(t, z), b.horner(z, list(trig.atan)), t_lo)

    def pick(values: tuple[float, float, float]) -> str:
        return b.select(big, b.const(values[0]), b.select(mid, b.const(values[1]), b.const(values[2])))

    base_hi = pick((trig.pio2[0], trig.pio4[0], 0.0))
    base_lo = pick((trig.pio2[1], trig.pio4[1], 0.0))
    if x_negative is not None:  # pi - base - p
        base_hi = b.select(x_negative, pick((trig.pio2[0], trig.three_pio4[0], trig.pi[0])), base_hi)
        base_lo = b.select(x_negative, pick((trig.pio2[1], trig.three_pio4[1], trig.pi[1])), base_lo)
        t = b.select(x_negative, b.neg(t), t)
        p_lo = b.select(x_negative, b.neg(p_lo), p_lo)
    # base_hi + t + (base_lo + p_lo), the first sum split exactly so that only one rounding remains
    high, high_error = _two_sum(b, base_hi, t)
    return b.add(high, b.add(high_error, b.add(base_lo, p_lo)))


def atan(b: Builder, x: str) -> str:
    """atan(x) = sign(x) * atan(|x|), reduced to |t| <= tan(pi/8) and a minimax polynomial in t*t.
    atan(+-inf) = +-pi/2 (rounded), atan(-0) = -0, atan(NaN) = NaN."""
    magnitude = _atan_first_quadrant(b, b.math("absf", x), b.const(1.0), None)
    return b.math_binary("copysign", magnitude, x)


def atan2(b: Builder, y: str, x: str) -> str:
    """atan2(y, x) in (-pi, pi], with C99's special values (signed zeros, infinities); NaN if y or x is."""
    fmt = _FORMATS[b.elem]
    ay, ax = b.math("absf", y), b.math("absf", x)
    # Scale both by a power of two (exact) to keep ay + ax finite, and ax*tan(pi/8) and the division's
    # residual out of the subnormal range. A value that loses bits in this is so much smaller than the other
    # that it cannot change the result.
    larger = b.max(ay, ax)
    up = 2.0 ** (2 * fmt.mantissa_bits + 2)
    scale = b.select(b.cmp("olt", larger, b.const(2.0 ** (1 - fmt.bias) * up)), b.const(up), b.const(1.0))
    scale = b.select(b.cmp("ogt", larger, b.const(2.0 ** (fmt.bias - 1))), b.const(0.25), scale)
    ay, ax = b.mul(ay, scale), b.mul(ax, scale)
    x_negative = b.int_cmp("ne", b.int_op("andi", b.to_bits(x), _sign_bit(b)), b.int_const(0))
    magnitude = _atan_first_quadrant(b, ay, ax, x_negative)
    result = b.math_binary("copysign", magnitude, y)
    return b.select(b.cmp("uno", y, x), b.add(y, x), result)


def _asin_kernel(b: Builder, x: str) -> tuple[str, str, str, str]:
    """Shared by asin and acos. |x| <= 1/2: s = |x|, z = x*x; else z = (1-|x|)/2 (exact), s = sqrt(z).
    Returns (big, s, s_error, tail) with asin(s) ~ s + (s_error + tail), tail = s*z*P(z); s_error is
    the rounding error of the square root (0 for |x| <= 1/2)."""
    trig = _TRIG[b.elem]
    fmt = _FORMATS[b.elem]
    ax = b.math("absf", x)
    big = b.cmp("ogt", ax, b.const(0.5))
    half_gap = b.mul(b.sub(b.const(1.0), ax), b.const(0.5))  # < 0 (so NaN below) for |x| > 1
    z = b.select(big, half_gap, b.mul(x, x))
    s = b.select(big, b.math("sqrt", half_gap), ax)
    residual = b.select(big, b.fma(b.neg(s), s, z), b.const(0.0))  # z - s*s, exactly
    smallest_normal = 2.0 ** (1 - fmt.bias)
    s_error = b.div(residual, b.max(b.add(s, s), b.const(smallest_normal)))  # s = 0 only if |x| is 0 or 1
    tail = b.mul(b.mul(s, z), b.horner(z, list(trig.asin)))
    return big, s, s_error, tail


def asin(b: Builder, x: str) -> str:
    """asin(x) for |x| <= 1 (NaN outside): |x| <= 1/2: the polynomial; else pi/2 - 2*asin(sqrt((1-|x|)/2))."""
    trig = _TRIG[b.elem]
    big, s, s_error, tail = _asin_kernel(b, x)
    small = b.add(s, tail)  # s_error is 0 here
    # pi/2 - 2*(s + s_error + tail), pio2_hi - 2s split exactly (|2s| <= 1 < pio2_hi)
    high, high_error = _fast_two_sum(b, b.const(trig.pio2[0]), b.neg(b.add(s, s)))
    low = b.sub(b.add(high_error, b.const(trig.pio2[1])), b.mul(b.add(s_error, tail), b.const(2.0)))
    return b.math_binary("copysign", b.select(big, b.add(high, low), small), x)


def acos(b: Builder, x: str) -> str:
    """acos(x) for |x| <= 1 (NaN outside): |x| <= 1/2: pi/2 - asin(x); x > 1/2: 2*asin(sqrt((1-x)/2));
    x < -1/2: pi - 2*asin(sqrt((1+x)/2))."""
    trig = _TRIG[b.elem]
    big, s, s_error, tail = _asin_kernel(b, x)
    negative = b.cmp("olt", x, b.const(0.0))
    # |x| <= 1/2: pio2_hi - x + (pio2_lo - sign(x)*tail), pio2_hi - x split exactly
    high, high_error = _fast_two_sum(b, b.const(trig.pio2[0]), b.neg(x))
    low = b.sub(b.add(high_error, b.const(trig.pio2[1])), b.math_binary("copysign", tail, x))
    middle = b.add(high, low)
    correction = b.add(s_error, tail)
    positive_big = b.mul(b.add(s, correction), b.const(2.0))
    high, high_error = _fast_two_sum(b, b.const(trig.pi[0]), b.neg(b.add(s, s)))
    low = b.sub(b.add(high_error, b.const(trig.pi[1])), b.mul(correction, b.const(2.0)))
    negative_big = b.add(high, low)
    return b.select(big, b.select(negative, negative_big, positive_big), middle)


# hyperbolic tangent and error function ------------------------------------------------------------------


def tanh(b: Builder, x: str) -> str:
    """tanh(x) = sign(x) * -u / (2 + u), u = expm1(-2|x|) in (-1, 0], carried as a double-word u_hi + u_lo.

    u comes from exp's reduction: -2|x| = k*ln2 + r (+ r_lo, the reduction's rounding error), and with
    exp(r) = 1 + s, s = r + r*r*q(r) (q: `expm1_series`; s kept as a pair s_hi + s_lo),
    u = (2**k - 1) + 2**k * s: 2**k - 1 and the sum split exactly, so u keeps its relative accuracy for small |x|
    (k = 0: u = s, no cancellation; tiny x, subnormals included, give x) and near the saturation. The quotient
    is corrected once with its residual, so the result is rounded about once.
    |x| is clamped where tanh rounds to 1 (the results stay 1, no inf/inf); tanh(+-0) = +-0, tanh(+-inf) = +-1,
    NaN -> NaN. Cost (f32 / f64): 50 / 57 operations, 14 / 21 of them fmas, and one division."""
    fmt = _FORMATS[b.elem]
    # tanh rounds to 1 from 9.01 (f32) / 19.06 (f64) on; there 2**k stays normal and 2**k - 1 splits exactly
    limit = 9.5 if b.elem == "f32" else 19.5
    a = b.min(b.math("absf", x), b.const(limit))  # NaN stays NaN
    minus_k, r_hi, r, shifted = _exp_reduction(b, b.mul(a, b.const(-2.0)))
    # the reduction's rounding error (r_hi - r is exact: r_hi and r are within a factor 2 where r is not tiny)
    r_lo = b.fma(minus_k, b.const(fmt.ln2_lo), b.sub(r_hi, r))
    tail = b.mul(b.mul(r, r), b.horner(r, list(fmt.expm1_series)))
    s_hi, s_error = _fast_two_sum(b, r, tail)  # |tail| < |r|
    s_lo = b.add(s_error, b.fma(r, r_lo, r_lo))  # exp(r + r_lo) - exp(r) ~ (1 + r) * r_lo
    two_k = b.from_bits(b.int_op("addi", _exponent_term(b, shifted), b.int_const(_float_bits(1.0, fmt))))
    c, c_error = _fast_two_sum(b, b.const(-1.0), two_k)  # 2**k - 1, exactly as a pair (k <= 0)
    u_hi, u_error = _fast_two_sum(b, c, b.mul(two_k, s_hi))  # c = 0 (k = 0) or |c| >= 1/2 > |2**k * s|
    u_lo = b.add(u_error, b.fma(two_k, s_lo, c_error))
    # -u / (2 + u): d = 2 + u as a pair, t = -u_hi / d_hi, then t + residual / d_hi
    d_hi, d_error = _fast_two_sum(b, b.const(2.0), u_hi)
    d_lo = b.add(d_error, u_lo)
    inverse = b.div(b.const(1.0), d_hi)  # d_hi in [1, 2]
    minus_u = b.neg(u_hi)
    t = b.mul(minus_u, inverse)
    residual = b.sub(b.fma(b.neg(t), d_hi, minus_u), b.fma(t, d_lo, u_lo))  # (-u) - t*d, to first order
    magnitude = b.fma(residual, inverse, t)
    result = b.math_binary("copysign", magnitude, x)
    return b.select(b.cmp("uno", x, x), x, result)


@dataclass(frozen=True)
class _Erf:
    small: float  # below: the series
    series: tuple[float, ...]  # erf(x) = x + x*E(z), z = x*x: E's coefficients (E(0) = 2/sqrt(pi) - 1)
    # pieces of width 1/4 from `small` on: (centre c, erf(c) rounded, M's coefficients), erf(c + d) = erf(c) + M(d)
    # for |d| <= 1/8 (M(0): the rounding error of erf(c))
    middle: tuple[tuple[float, float, tuple[float, ...]], ...]
    saturation: float  # erf rounds to 1 from here on (erfc(x) < half an ulp of 1)
    # past the pieces: 1 - erfc(x), erfc(x) = exp(-x*x) * P(x)/Q(x): P's and Q's coefficients (Q(0) = 1)
    numerator: tuple[float, ...]
    denominator: tuple[float, ...]

    @property
    def large(self) -> float:
        return self.small + len(self.middle) / 4


# The coefficients are ours: near-minimax fits by least squares on Chebyshev nodes with Lawson's iterative
# reweighting (mpmath, 40 digits): E for the relative error of erf on [0, small**2]; each M for the absolute
# error on [-1/8, 1/8]; P/Q linearised (P - f*Q, reweighted by 1/Q of the previous pass) for the absolute error
# of exp(-x*x) * P/Q, i.e. of erf, on [large, saturation]. Each coefficient was rounded to the format from the
# lowest degree up, the higher ones refitted after each rounding. Fit errors, in units of 2**-24 (f32) / 2**-53
# (f64) of the result: f32 E 0.027, M 0.004, P/Q 0.011; f64 E 0.099 (E(0) itself, rounded), M 0.014, P/Q 0.006.
_ERF = {
    "f32": _Erf(
        small=0.75,
        series=(0.12837916612625122, -0.3761261999607086, 0.11283379048109055, -0.026834335178136826,
                0.005113156978040934, -0.0006737583316862583),
        middle=(
            (0.875, 0.7840750813484192, (-2.0288560165226954e-08, 0.5247450470924377, -0.4591519236564636,
                                         0.09292091429233551, 0.11239822208881378, -0.06676841527223587,
                                         -0.010465621948242188)),
            (1.125, 0.8883882164955139, (1.520619363759579e-08, 0.31827396154403687, -0.35805821418762207,
                                         0.16245049238204956, 0.02797607332468033, -0.06107106804847717,
                                         0.015309568494558334)),
            (1.375, 0.9481700658798218, (6.902268534503264e-09, 0.1703597754240036, -0.2342446893453598,
                                         0.1579374521970749, -0.030499804764986038, -0.0306168794631958,
                                         0.022045521065592766)),
        ),
        saturation=3.92,
        numerator=(0.9820857048034668, 0.4931797683238983, 0.0018689939752221107),
        denominator=(1.0, 1.5412012338638306, 0.9135757684707642),
    ),
    "f64": _Erf(
        small=0.75,
        series=(0.1283791670955126, -0.37612638903183887, 0.11283791670959022, -0.02686617064554284,
                0.0052239776260598, -0.0008548326800232459, 0.00012055311622282507, -1.4924699131925571e-05,
                1.6437719259092036e-06, -1.599519778795019e-07, 1.1657784628737886e-08),
        middle=(
            (0.875, 0.7840750610598597, (-3.204544978890348e-17, 0.5247450452901482, -0.4591519146288837,
                                         0.0929236017701376, 0.11239656243900284, -0.06721587738419303,
                                         -0.010367786892010882, 0.018595726699225275, -0.0018459975515808305,
                                         -0.003256843295774756, 0.0008893566955906756, 0.0003887405000966796)),
            (1.125, 0.8883882317017078, (-1.158643993739769e-17, 0.3182739585007693, -0.35805820331336824,
                                         0.16245233298478412, 0.02797329713656452, -0.061323683610801434,
                                         0.015536834622321602, 0.009606895032580887, -0.006031152146932239,
                                         -0.00036025963341061495, 0.0011468261459517128, -0.00017406717687126712)),
            (1.375, 0.9481700727820903, (1.071691533519912e-17, 0.1703597736875156, -0.2342446888203333,
                                         0.15793770685613936, -0.03050061052406191, -0.03060597627132417,
                                         0.02216123543483426, -0.001419061877630247, -0.0042610556495358415,
                                         0.0015778636588428224, 0.00032489498021132085, -0.00033683739610871976)),
        ),
        saturation=5.93,
        numerator=(1.0000080495361465, 1.2016582331654353, 0.7002692229083106, 0.2167480895478742,
                   0.031259083758288154, -1.3621238264349152e-07),
        denominator=(1.0, 2.3301010373797753, 2.3292639064186726, 1.2677909611868268, 0.38429299208185913,
                     0.05539753484592222),
    ),
}


def _pick(b: Builder, below: list[str], values: list[float]) -> str:
    """values[i] on the lanes where below[i] holds and no below[j], j < i, does (each mask implies the next);
    values[-1] elsewhere."""
    value = b.const(values[-1])
    for mask, choice in zip(reversed(below), reversed(values[:-1])):
        value = b.select(mask, b.const(choice), value)
    return value


def _piecewise_horner(b: Builder, t: str, below: list[str], pieces: list[tuple[float, ...]]) -> str:
    """One Horner evaluation in t, each lane's coefficients those of its piece (chosen as by `_pick`)."""
    degree = max(len(p) for p in pieces)
    columns = [[p[j] if j < len(p) else 0.0 for p in pieces] for j in range(degree)]
    acc = _pick(b, below, columns[-1])
    for column in reversed(columns[:-1]):
        acc = b.fma(acc, t, _pick(b, below, column))
    return acc


def erf(b: Builder, x: str) -> str:
    """erf(x) = sign(x) * erf(|x|), three forms computed on every lane and one selected, each rounded about once
    at the end (what was rounded before is small next to the result):

    - |x| < small: fma(|x|, E(z), |x|), z = x*x;
    - up to large, in pieces of width 1/4: erf(c) + M(|x| - c), the piece's coefficients selected per lane (one
      polynomial evaluated), |x| - c exact;
    - beyond: 1 - exp(-x*x) * P(|x|)/Q(|x|), x*x = z + z_error split exactly with an fma, exp(-z) by exp's
      polynomial (normal: |x| is clamped at the saturation), exp(-z_error) ~ 1 - z_error, the last step an fma.
      erfc is below 0.034 there, so its few roundings cost little.

    erf(+-0) = +-0, erf(+-inf) = +-1 (and from the saturation on), NaN -> NaN. Cost (f32 / f64): 72 / 105
    operations, 28 / 51 of them fmas and 21 / 31 selects (most choosing the pieces' coefficients), one division."""
    erf_ = _ERF[b.elem]
    a = b.min(b.math("absf", x), b.const(erf_.saturation))  # NaN stays NaN
    z = b.mul(a, a)
    small = b.fma(a, b.horner(z, list(erf_.series)), a)
    below = [b.cmp("olt", a, b.const(c + 0.125)) for c, _, _ in erf_.middle[:-1]]
    centre = _pick(b, below, [c for c, _, _ in erf_.middle])
    value = _pick(b, below, [v for _, v, _ in erf_.middle])
    middle = b.add(value, _piecewise_horner(b, b.sub(a, centre), below, [m for _, _, m in erf_.middle]))
    z_error = b.fma(a, a, b.neg(z))
    e = _exp_normal(b, b.neg(z))
    ratio = b.div(b.horner(a, list(erf_.numerator)), b.horner(a, list(erf_.denominator)))
    erfc_scaled = b.fma(b.neg(z_error), ratio, ratio)  # ratio * exp(-z_error)
    large = b.fma(b.neg(e), erfc_scaled, b.const(1.0))
    magnitude = b.select(b.cmp("olt", a, b.const(erf_.large)), middle, large)
    magnitude = b.select(b.cmp("olt", a, b.const(erf_.small)), small, magnitude)
    result = b.math_binary("copysign", magnitude, x)
    return b.select(b.cmp("uno", x, x), x, result)
