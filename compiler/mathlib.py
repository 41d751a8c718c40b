"""Vectorisable elementary functions written in arith/math ops.

LLVM turns `math.exp` on a vector into one scalar `expf` call per lane; these polynomial versions stay in
vector registers. Each works on any `Builder` (scalars or vectors, f32 or f64). Accuracy is tested against
NumPy float64 in tests/compiler/test_mathlib.py; the bounds are stated in the README.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keir.compiler.mlir_text import Builder


@dataclass(frozen=True)
class _Format:
    mantissa_bits: int
    bias: int
    exp_clamp: tuple[float, float]  # below: the result rounds to 0; above: it overflows to inf
    ln2_hi: float  # few significant bits, so k * ln2_hi is exact
    ln2_lo: float
    exp_terms: int  # Taylor terms of exp on [-ln2/2, ln2/2]
    log_terms: int  # terms of the atanh series of log on [sqrt(1/2), sqrt(2)]


_FORMATS = {
    "f32": _Format(23, 127, (-104.0, 89.0), 0.693145751953125, 1.428606765330187045e-06, 8, 5),
    "f64": _Format(52, 1023, (-746.0, 710.0), 6.93147180369123816490e-01, 1.90821492927058770002e-10, 14, 11),
}


def _power_of_two(b: Builder, k: str, fmt: _Format) -> str:
    """2**k for an integer k in the normal exponent range, built from its bits."""
    biased = b.int_op("addi", k, b.int_const(fmt.bias))
    return b.from_bits(b.int_op("shli", biased, b.int_const(fmt.mantissa_bits)))


def exp(b: Builder, x: str) -> str:
    """exp(x) = 2**k * p(r), x = k*ln2 + r, |r| <= ln2/2; 2**k applied in two halves so that results in the
    subnormal range are rounded once and results past the float range overflow to inf."""
    fmt = _FORMATS[b.elem]
    lo, hi = fmt.exp_clamp
    clamped = b.max(b.min(x, b.const(hi)), b.const(lo))
    k = b.math("roundeven", b.mul(clamped, b.const(1 / math.log(2))))
    minus_k = b.neg(k)
    r = b.fma(minus_k, b.const(fmt.ln2_hi), clamped)
    r = b.fma(minus_k, b.const(fmt.ln2_lo), r)
    p = b.horner(r, [1 / math.factorial(n) for n in range(fmt.exp_terms)])
    k_int = b.to_int(k)
    k_half = b.int_op("shrsi", k_int, b.int_const(1))
    k_rest = b.int_op("subi", k_int, k_half)
    result = b.mul(b.mul(p, _power_of_two(b, k_half, fmt)), _power_of_two(b, k_rest, fmt))
    return b.select(b.cmp("uno", x, x), x, result)


def log(b: Builder, x: str) -> str:
    """log(x) = e*ln2 + log(m), m in [sqrt(1/2), sqrt(2)); log(m) = 2*atanh(s), s = (m-1)/(m+1)."""
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
    f = b.sub(m, b.const(1.0))
    s = b.div(f, b.add(f, b.const(2.0)))
    z = b.mul(s, s)
    series = b.horner(z, [1.0 / (2 * n + 1) for n in range(fmt.log_terms)])
    two_s = b.add(s, s)
    log_m = b.mul(two_s, series)
    result = b.fma(e, b.const(fmt.ln2_hi), b.fma(e, b.const(fmt.ln2_lo), log_m))
    result = b.select(b.cmp("oeq", x, b.const(math.inf)), x, result)
    result = b.select(b.cmp("oeq", x, b.const(0.0)), b.const(-math.inf), result)
    result = b.select(b.cmp("olt", x, b.const(0.0)), b.const(math.nan), result)
    return b.select(b.cmp("uno", x, x), x, result)
