"""Accuracy of the vectorisable elementary functions of keir.compiler.mathlib, in ULPs.

Each function is compiled twice per dtype through the real code generator: once on `vector<16xf32>` /
`vector<8xf64>` blocks with a masked tail (as the j loop of a kernel), once on scalars (as hoisted work). The
reference is NumPy in float64 (for f32) or in x87 long double (for f64), so it is far more accurate than the
functions tested. The error of a result is |got - exact| in units of the target format's ulp at the exact
value (2**(e - p + 1), subnormal spacing below the normal range). Special values must match exactly: NaN where
the reference is NaN, the same infinity, zeros with the reference's sign.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

from keir.compiler import mathlib
from keir.compiler.codegen import llvm_ir_to_object, loops_to_llvm_ir
from keir.compiler.mlir_text import Builder, Names
from keir.runtime.cpu_loader import c_function, load_symbol

LANES = {"f32": 16, "f64": 8}
DTYPES = {"f32": np.float32, "f64": np.float64}
MANTISSA = {"f32": 23, "f64": 52}
MIN_EXP = {"f32": -126, "f64": -1022}
EXTENDED = np.finfo(np.longdouble).nmant >= 63  # x87 80-bit long double: a reference for f64


def erf_reference(x: np.ndarray) -> np.ndarray:
    """erf in x87 long double (NumPy has no erf; float64's math.erf is too coarse to measure float64 to an ulp):
    |x| < 3: 2/sqrt(pi) * exp(-x*x) * sum (2x*x)**n * x / (1*3*...*(2n+1)), a series of positive terms; else
    1 - erfc(x), erfc from its continued fraction exp(-x*x)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).
    Checked against mpmath and math.erf in test_erf_reference. Returns x's dtype."""
    wide = x.astype(np.longdouble)
    a = np.abs(wide)
    pi = np.longdouble("3.14159265358979323846264338327950288")
    with np.errstate(all="ignore"):
        near = np.minimum(a, 3)
        term = near.copy()
        total = near.copy()
        for n in range(1, 64):
            term = term * (2 * near * near) / (2 * n + 1)
            total += term
        series = 2 / np.sqrt(pi) * np.exp(-near * near) * total
        far = np.maximum(a, 3)
        fraction = far.copy()
        for n in range(80, 0, -1):
            fraction = far + (n / np.longdouble(2)) / fraction
        tail = 1 - np.exp(-far * far) / np.sqrt(pi) / fraction
        magnitude = np.where(a < 3, series, np.where(np.isinf(a), 1, tail))
        return np.copysign(magnitude, wide).astype(x.dtype)  # NaN stays NaN


# name -> (arity, how the lowering computes it, reference on float64/long double arrays)
FUNCTIONS = {
    "exp": (1, lambda b, x: mathlib.exp(b, x), np.exp),
    "log": (1, lambda b, x: mathlib.log(b, x), np.log),
    "sin": (1, lambda b, x: mathlib.sin(b, x), np.sin),
    "cos": (1, lambda b, x: mathlib.cos(b, x), np.cos),
    "atan": (1, lambda b, x: mathlib.atan(b, x), np.arctan),
    "asin": (1, lambda b, x: mathlib.asin(b, x), np.arcsin),
    "acos": (1, lambda b, x: mathlib.acos(b, x), np.arccos),
    "atan2": (2, lambda b, y, x: mathlib.atan2(b, y, x), np.arctan2),
    "tanh": (1, lambda b, x: mathlib.tanh(b, x), np.tanh),
    "erf": (1, lambda b, x: mathlib.erf(b, x), erf_reference),
    "sqrt": (1, lambda b, x: b.math("sqrt", x), np.sqrt),
    "rsqrt": (1, lambda b, x: b.div(b.const(1.0), b.math("sqrt", x)), lambda x: 1 / np.sqrt(x)),
}


def exp_by_multiplications(b: Builder, x: str) -> str:
    """exp the straightforward way (as keir computed it on every vector with a non-normal result, before the
    subnormal-free path): p * 2**k_half * 2**k_rest, a product in the normal range then one that rounds once
    (to the subnormal grid, to 0 or inf where due). mathlib.exp must give its bits everywhere."""
    fmt = mathlib._FORMATS[b.elem]
    lo, hi = fmt.exp_clamp
    clamped = b.max(b.min(x, b.const(hi)), b.const(lo))
    p, shifted = mathlib._exp_reduced(b, clamped)
    k = b.int_op("subi", b.to_bits(shifted), b.int_const(mathlib._float_bits(mathlib._shifter(fmt), fmt)))
    k_half = b.int_op("shrsi", k, b.int_const(1))
    k_rest = b.int_op("subi", k, k_half)

    def power_of_two(k: str) -> str:  # 2**k for k in the normal exponent range, from its bits
        biased = b.int_op("addi", k, b.int_const(fmt.bias))
        return b.from_bits(b.int_op("shli", biased, b.int_const(fmt.mantissa_bits)))

    return b.mul(b.mul(p, power_of_two(k_half)), power_of_two(k_rest))


# reference formulations, compiled like FUNCTIONS but not measured for accuracy (exp_times: measured below)
FORMULATIONS = {
    "exp_by_multiplications": (1, exp_by_multiplications, None),
    "exp_times": (2, lambda b, x, w: mathlib.exp_times(b, x, w), None),
    "exp_then_multiply": (2, lambda b, x, w: b.mul(mathlib.exp(b, x), w), None),
    # the first of two terms (a second row's x, 30 lower, shares w and acc and takes part in the choice of path)
    "exp_product_sums": (3, lambda b, x, w, a: mathlib.exp_product_sums(
        b, [(x, w, a), (b.sub(x, b.const(30.0)), w, a)])[0], None),
    "exp_then_fma": (3, lambda b, x, w, a: b.fma(mathlib.exp(b, x), w, a), None),
}


# compiling ----------------------------------------------------------------------------------------------
def loop_text(symbol: str, elem: str, arity: int, apply, vector: bool) -> str:
    """func.func @symbol(%in0, [%in1,] %out: memref<?xT>, %i0, %i1, %n: index): out[k] = f(in[k]), k < n.
    The signature is the lowering's (memrefs, then i0, i1, n), so `c_function` calls it; i0, i1 are unused."""
    names = Names()
    mem = f"memref<?x{elem}>"
    ins = [f"%in{a}" for a in range(arity)]
    args = ", ".join([f"{name}: {mem}" for name in ins] + [f"%out: {mem}", "%i0: index", "%i1: index", "%n: index"])
    lines = [f"func.func @{symbol}({args}) {{", "  %zero = arith.constant 0 : index"]
    if not vector:
        b = Builder(names, elem, None, indent="    ")
        xs = [b.emit(f"memref.load {name}[%j] : {mem}", "x") for name in ins]
        y = apply(b, *xs)
        lines += ["  %one = arith.constant 1 : index", "  scf.for %j = %zero to %n step %one {"]
        lines += b.lines + [f"    memref.store {y}, %out[%j] : {mem}", "  }"]
    else:
        lanes = LANES[elem]
        vt, mt = f"vector<{lanes}x{elem}>", f"vector<{lanes}xi1>"
        lines += [
            f"  %lanes = arith.constant {lanes} : index",
            "  %rem = arith.remui %n, %lanes : index",
            "  %full = arith.subi %n, %rem : index",
            "  scf.for %j = %zero to %full step %lanes {",
        ]
        b = Builder(names, elem, lanes, indent="    ")
        xs = [b.emit(f"vector.load {name}[%j] : {mem}, {vt}", "x") for name in ins]
        y = apply(b, *xs)
        lines += b.lines + [f"    vector.store {y}, %out[%j] : {mem}, {vt}", "  }"]
        lines += ["  %has_tail = arith.cmpi ne, %rem, %zero : index", "  scf.if %has_tail {"]
        t = Builder(names, elem, lanes, indent="    ")
        mask = t.emit(f"vector.create_mask %rem : {mt}", "mask")
        pad = t.const(1.0)
        xs = [
            t.emit(f"vector.maskedload {name}[%full], {mask}, {pad} : {mem}, {mt}, {vt} into {vt}", "x") for name in ins
        ]
        y = apply(t, *xs)
        lines += t.lines + [f"    vector.maskedstore %out[%full], {mask}, {y} : {mem}, {mt}, {vt}", "  }"]
    lines += ["  return", "}"]
    return "module {\n" + "\n".join(lines) + "\n}\n"


@functools.cache
def compiled(name: str, elem: str, vector: bool):
    """f(*arrays) -> array, the mathlib function `name` compiled for `elem` (once per process)."""
    arity, apply, _ = {**FUNCTIONS, **FORMULATIONS}[name]
    symbol = f"keir_test_mathlib_{name}_{elem}_{'vector' if vector else 'scalar'}"
    obj = llvm_ir_to_object(loops_to_llvm_ir(loop_text(symbol, elem, arity, apply, vector)))
    function = c_function(load_symbol(obj, symbol), arity + 1)

    def run(*arrays: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        arrays = [np.ascontiguousarray(a, dtype=DTYPES[elem]) for a in arrays]
        n = arrays[0].size
        if out is None:
            out = np.empty(n, DTYPES[elem])
        descriptors = []
        for a in [*arrays, out]:
            descriptors += [a.ctypes.data, a.ctypes.data, 0, a.size, 1]
        function(*descriptors, 0, n, n)
        return out

    return run


# measuring ----------------------------------------------------------------------------------------------
def reference(name: str, elem: str, *args: np.ndarray) -> np.ndarray:
    wide = np.longdouble if elem == "f64" else np.float64
    with np.errstate(all="ignore"):
        return FUNCTIONS[name][2](*[a.astype(wide) for a in args])


def ulp_errors(got: np.ndarray, exact: np.ndarray, elem: str) -> np.ndarray:
    """|got - exact| in ulps of `elem` at `exact`; inf where a special value (NaN, inf, signed 0) differs."""
    with np.errstate(all="ignore"):
        rounded = exact.astype(DTYPES[elem])
        _, exponent = np.frexp(np.abs(exact))  # |exact| = m * 2**exponent, m in [0.5, 1)
        exponent = np.maximum(exponent - 1, MIN_EXP[elem])
        ulp = np.ldexp(np.ones_like(exact), exponent - MANTISSA[elem])
        error = np.abs(got.astype(exact.dtype) - exact) / ulp
    nan = np.isnan(exact) | np.isnan(got)
    error[nan] = np.where(np.isnan(exact) & np.isnan(got), 0.0, np.inf)[nan]
    infinite = ~nan & (np.isinf(got) | np.isinf(rounded))
    error[infinite] = np.where(got == rounded, 0.0, np.inf)[infinite]
    zero = ~nan & (exact == 0)
    same_zero = (got == 0) & (np.signbit(got) == np.signbit(exact))
    error[zero] = np.where(same_zero, 0.0, np.inf)[zero]
    return error


def measure(name: str, elem: str, *args: np.ndarray) -> tuple[float, np.ndarray]:
    """Max ulp error over both code paths (vector and scalar), which must agree bit for bit."""
    args = [np.asarray(a, dtype=DTYPES[elem]) for a in args]
    got = compiled(name, elem, True)(*args)
    scalar = compiled(name, elem, False)(*args)
    assert_same_bits(got, scalar)
    errors = ulp_errors(got, reference(name, elem, *args), elem)
    return float(errors.max()), errors


def assert_same_bits(a: np.ndarray, b: np.ndarray) -> None:
    both_nan = np.isnan(a) & np.isnan(b)
    differ = a.view(f"u{a.itemsize}") != b.view(f"u{b.itemsize}")
    bad = np.flatnonzero(differ & ~both_nan)
    assert bad.size == 0, f"vector and scalar paths differ at {bad[:5]}: {a[bad[:5]]!r} vs {b[bad[:5]]!r}"


# inputs -------------------------------------------------------------------------------------------------
def special_values(elem: str) -> np.ndarray:
    t = np.finfo(DTYPES[elem])
    tiny = float(t.smallest_subnormal)
    normal = float(t.smallest_normal)
    values = [0.0, tiny, 2 * tiny, normal - tiny, normal, normal + tiny, 0.5, 1.0, 2.0, 1 - t.epsneg, 1 + t.eps]
    values += [float(t.max), float(t.max) / 2, 1e10, 1e30, np.pi / 2, np.pi, 100.0, 1e5]
    values += [88.0, 88.7, 88.72, 88.73, 89.0, -87.3, -87.4, -103.0, -103.3, -103.9, -104.0, -104.1]
    values += [709.0, 709.78, 709.79, 710.0, -708.4, -708.5, -744.4, -744.5, -745.1, -745.2, -746.0]
    values = np.array(values, dtype=np.float64)
    values = np.concatenate([values, -values, [np.inf, -np.inf, np.nan]])
    return np.unique(values.astype(DTYPES[elem]))  # unique sorts NaN last and keeps it


def log_uniform(rng: np.random.Generator, count: int, elem: str, lo: float, hi: float, signs: bool) -> np.ndarray:
    """Magnitudes log-uniform in [lo, hi] (in the target format), random signs if `signs`."""
    values = np.exp2(rng.uniform(np.log2(lo), np.log2(hi), count))
    if signs:
        values *= rng.choice([-1.0, 1.0], count)
    return values.astype(DTYPES[elem])


def domain(name: str, elem: str, count: int = 50_000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Random inputs over the domain where the bound is asserted, plus the special values."""
    rng = np.random.default_rng([seed, *map(ord, name + elem)])
    t = np.finfo(DTYPES[elem])
    tiny, top = float(t.smallest_subnormal), float(t.max)
    everything = log_uniform(rng, count, elem, tiny, top, signs=True)
    specials = special_values(elem)
    if name == "atan2":
        y = np.concatenate([everything, log_uniform(rng, count, elem, 1e-3, 1e3, True)])
        x = np.concatenate(
            [log_uniform(rng, count, elem, tiny, top, True), log_uniform(rng, count, elem, 1e-3, 1e3, True)]
        )
        grid = np.array(list(itertools.product(specials, repeat=2)), dtype=DTYPES[elem])
        return np.concatenate([y, grid[:, 0]]), np.concatenate([x, grid[:, 1]])
    if name == "exp":
        lo, hi = (-110.0, 95.0) if elem == "f32" else (-750.0, 715.0)
        sweep = rng.uniform(lo, hi, count)
        near_zero = log_uniform(rng, count // 4, elem, tiny, 1.0, signs=True)
        parts = [sweep, near_zero, everything]
    elif name in ("log", "sqrt", "rsqrt"):
        near_one = 1 + rng.uniform(-0.3, 0.3, count)
        parts = [np.abs(everything), near_one, everything[: count // 10]]
    elif name in ("sin", "cos"):
        limit = TRIG_LIMIT[elem]
        parts = [rng.uniform(-10, 10, count), log_uniform(rng, count, elem, tiny, limit, signs=True)]
        specials = specials[~(np.abs(specials) > limit) | ~np.isfinite(specials)]
    elif name in ("asin", "acos"):
        near_one = 1 - log_uniform(rng, count // 4, elem, float(t.epsneg), 0.5, signs=False)
        parts = [rng.uniform(-1, 1, count), near_one, -near_one, log_uniform(rng, count // 4, elem, tiny, 1, True)]
        parts.append(everything[: count // 10])
    elif name == "tanh":  # the reduction's k = 0, -1, ... and the clamp where tanh rounds to 1
        limit = 10.0 if elem == "f32" else 20.0
        parts = [everything, rng.uniform(-limit, limit, count), log_uniform(rng, count, elem, tiny, limit, True)]
    elif name == "erf":  # the pieces' edges (0.75, 1, 1.25, 1.5) and the saturation
        limit = mathlib._ERF[elem].saturation
        parts = [everything, rng.uniform(-limit - 0.5, limit + 0.5, count), rng.uniform(0.7, 1.55, count // 2)]
        parts += [rng.uniform(limit - 0.2, limit + 0.1, count // 4), log_uniform(rng, count, elem, tiny, limit, True)]
    else:  # atan
        parts = [everything, rng.uniform(-3, 3, count)]
    return (np.concatenate([*(np.asarray(p, DTYPES[elem]) for p in parts), specials]),)


# |x| up to which sin and cos meet their bounds: every float32 (Payne-Hanek past 2**20), 2**47 in float64 (Cody-Waite)
TRIG_LIMIT = {"f32": float(np.finfo(np.float32).max), "f64": 2.0**47}

# Max ulp error asserted: measured (see the README table), then rounded up a little; the same for f32 and f64.
_BOUND = {"exp": 1.0, "log": 1.0, "sin": 1.0, "cos": 1.0, "atan": 1.0, "atan2": 1.0, "asin": 1.0, "acos": 1.0,
          "tanh": 1.0, "erf": 1.0, "sqrt": 0.5, "rsqrt": 1.5}
BOUNDS = {"f32": _BOUND, "f64": _BOUND}
CASES = [(name, elem) for elem in ("f32", "f64") for name in FUNCTIONS]


def needs_reference(elem: str) -> None:
    if elem == "f64" and not EXTENDED:
        pytest.skip("no extended-precision long double here to measure float64 results against")


@pytest.mark.parametrize("name,elem", CASES)
def test_max_ulp_error(name: str, elem: str) -> None:
    needs_reference(elem)
    worst, errors = measure(name, elem, *domain(name, elem))
    assert worst <= BOUNDS[elem][name], f"{name} {elem}: max error {worst:.3f} ulp > {BOUNDS[elem][name]}"


@pytest.mark.parametrize("name,elem", CASES)
def test_special_values_exact(name: str, elem: str) -> None:
    """0, -0, subnormals, 1, thresholds of overflow/underflow, max, +-inf, NaN (all pairs for atan2):
    NaN, infinities and signed zeros exactly as NumPy's, finite values within the bound."""
    needs_reference(elem)
    specials = special_values(elem)
    if name == "atan2":
        grid = np.array(list(itertools.product(specials, repeat=2)), dtype=DTYPES[elem])
        args = (grid[:, 0], grid[:, 1])
    else:
        args = (specials,)
    worst, errors = measure(name, elem, *args)
    if name in ("sin", "cos"):  # past TRIG_LIMIT only boundedness is promised (test_sin_cos_huge_float64_arguments)
        errors = errors[~(np.abs(args[0]) > TRIG_LIMIT[elem])]
    bad = np.flatnonzero(errors > BOUNDS[elem][name])
    assert bad.size == 0, f"{name} {elem} wrong at {[a[bad[:8]] for a in args]}"


@pytest.mark.parametrize("name,elem", CASES)
def test_lengths_and_tails(name: str, elem: str) -> None:
    """N = 0..33: every length gives the same values as one long call, and nothing past N is written."""
    arity = FUNCTIONS[name][0]
    rng = np.random.default_rng(7)
    pool = [np.concatenate([special_values(elem), rng.uniform(-2, 2, 40)]).astype(DTYPES[elem]) for _ in range(arity)]
    pool = [rng.permutation(p)[:33] for p in pool]
    for vector in (True, False):
        run = compiled(name, elem, vector)
        full = run(*pool)
        for n in range(34):
            out = np.full(n + 20, 12345.0, DTYPES[elem])
            run(*[p[:n] for p in pool], out=out[:n])
            assert_same_bits(out[:n], full[:n])
            assert np.all(out[n:] == 12345.0), f"{name} {elem} (vector={vector}) wrote past N = {n}"


@pytest.mark.parametrize("elem", ["f32", "f64"])
def test_sin_cos_near_multiples_of_pi_over_2(elem: str) -> None:
    """The hardest arguments of the reduction: the floats nearest to k*pi/2 (and their neighbours), where
    sin or cos is tiny and every bit of the reduced argument counts. k*pi/2 is computed exactly (integers),
    for k up to the largest float32 / TRIG_LIMIT in float64."""
    needs_reference(elem)
    rng = np.random.default_rng(11)
    top_bits = 127 if elem == "f32" else 46
    k = sorted({int(rng.integers(1, 2**31)) << int(rng.integers(0, top_bits - 30)) for _ in range(10_000)}
               | set(range(1, 2000)))
    scale = 1 << 300
    half_pi = _machin_pi(300) // 2
    nearest = np.array([float(_round_to_float(kk * half_pi, scale, elem)) for kk in k], DTYPES[elem])
    x = np.concatenate([nearest, np.nextafter(nearest, np.inf), np.nextafter(nearest, -np.inf)])
    x = np.concatenate([x, -x])
    x = x[np.isfinite(x)]
    for name in ("sin", "cos"):
        worst, _ = measure(name, elem, x)
        assert worst <= BOUNDS[elem][name], f"{name} {elem}: {worst:.3f} ulp near multiples of pi/2"


def _machin_pi(bits: int) -> int:
    """floor(pi * 2**bits) (within a few units), by Machin's formula in integers."""
    def arctan_of_inverse(n: int) -> int:
        total, term, k, sign = 0, (1 << (bits + 16)) // n, 1, 1
        while term:
            total, term, k, sign = total + sign * (term // k), term // (n * n), k + 2, -sign
        return total
    return (4 * (4 * arctan_of_inverse(5) - arctan_of_inverse(239))) >> 16


def _round_to_float(numerator: int, scale: int, elem: str) -> float:
    """numerator / scale rounded to the nearest float of `elem` (via the correctly rounded float64 division)."""
    value = numerator / scale  # Python's int / int is correctly rounded
    return float(np.float32(value)) if elem == "f32" else value


def test_float32_table_of_two_over_pi() -> None:
    """The Payne-Hanek table is floor(2/pi * 2**198), recomputed here from Machin's formula."""
    pi = _machin_pi(400)
    assert mathlib.TWO_OVER_PI_F32 == (1 << (198 + 401)) // pi


def test_sin_cos_huge_float64_arguments() -> None:
    """Past TRIG_LIMIT (float64 has no Payne-Hanek reduction) the results are not accurate, but finite and in
    [-1, 1]; +-inf and NaN give NaN (float32: test_max_ulp_error covers every magnitude)."""
    rng = np.random.default_rng(13)
    top = float(np.finfo(np.float64).max)
    x = log_uniform(rng, 20_000, "f64", TRIG_LIMIT["f64"], top, signs=True)
    x = np.concatenate([x, [top, -top, np.inf, -np.inf, np.nan]])
    for name in ("sin", "cos"):
        for vector in (True, False):
            y = compiled(name, "f64", vector)(x)
            assert np.all(np.isfinite(y[:-3])) and np.all(np.abs(y[:-3]) <= 1), f"{name} f64 not in [-1, 1]"
            assert np.all(np.isnan(y[-3:])), f"{name} f64: inf or NaN must give NaN"


def test_sin_cos_float32_bits_anywhere_in_a_vector() -> None:
    """Vectors that mix small and huge arguments (one lane past 2**20 takes the Payne-Hanek path for the whole
    vector): every lane gives the bits it gets alone."""
    rng = np.random.default_rng(19)
    small = rng.uniform(-10, 10, 4096).astype(np.float32)
    huge = log_uniform(rng, 4096, "f32", 2.0**20, float(np.finfo(np.float32).max), signs=True).astype(np.float32)
    mixed = np.where(rng.random(4096) < 0.1, huge, small).astype(np.float32)
    for name in ("sin", "cos"):
        vector, scalar = compiled(name, "f32", True), compiled(name, "f32", False)
        assert_same_bits(vector(mixed), scalar(mixed))
        assert_same_bits(vector(mixed)[mixed == small], vector(small)[mixed == small])


def test_erf_reference() -> None:
    """The long double erf against math.erf (float64, within an ulp of it) and, where installed, mpmath."""
    rng = np.random.default_rng(23)
    x = np.concatenate([rng.uniform(-7, 7, 2000), np.exp2(rng.uniform(-1074, 3, 500)), [2.9999999, 3.0, 3.0000001]])
    ours = erf_reference(x.astype(np.longdouble))
    theirs = np.array([math.erf(v) for v in x])
    assert np.all(np.abs(ours.astype(np.float64) - theirs) <= np.spacing(np.abs(theirs)))
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    exact = np.array([mpmath.erf(mpmath.mpf(float(v))) for v in x[::5]], dtype=object)
    error = [abs(mpmath.mpf(np.format_float_scientific(o, precision=25, unique=False)) - e) / abs(e)
             for o, e in zip(ours[::5], exact, strict=True)]
    assert float(max(error)) < 2.0**-58  # 1/32 ulp of float64


@pytest.mark.parametrize("elem", ["f32", "f64"])
@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_tanh_erf_exact_values_and_oddness(name: str, elem: str) -> None:
    """f(+-0) = +-0, f(+-inf) = +-1, NaN -> NaN, exactly +-1 past the saturation, tanh(x) = x for tiny x (no
    cancellation), and f(-x) = -f(x) bit for bit, on both paths."""
    dtype = DTYPES[elem]
    t = np.finfo(dtype)
    saturation = {"tanh": {"f32": 9.02, "f64": 19.07}, "erf": {"f32": 3.92, "f64": 5.93}}[name][elem]
    past = np.array([saturation, 10 * saturation, 1e6, float(t.max), np.inf], dtype)
    tiny = np.array([t.smallest_subnormal, 3 * t.smallest_subnormal, t.smallest_normal, 2.0**-40], dtype)
    x = np.concatenate([[0.0], past, tiny, domain(name, elem, count=5_000)[0]]).astype(dtype)
    x = x[~np.isnan(x)]
    for vector in (True, False):
        run = compiled(name, elem, vector)
        y, minus = run(x), run(-x)
        assert_same_bits(minus, -y)
        assert np.signbit(y[0]) == 0 and np.signbit(minus[0]) == 1 and y[0] == 0
        assert np.all(y[1:6] == 1), f"{name} {elem}: {y[1:6]!r} past the saturation"
        if name == "tanh":
            assert_same_bits(y[6:10], x[6:10])
        assert np.isnan(run(np.array([np.nan, -np.nan], dtype))).all()


def test_exp_and_log_float32_at_most_2_ulp_over_the_whole_domain() -> None:
    """The contract of the kernels' exp and log: <= 2 ulp in float32, whatever the argument."""
    assert BOUNDS["f32"]["exp"] <= 2 and BOUNDS["f32"]["log"] <= 2
    rng = np.random.default_rng(17)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    for name in ("exp", "log"):
        worst, _ = measure(name, "f32", bits)
        assert worst <= 2, f"{name} f32: {worst:.3f} ulp on random bit patterns"


@pytest.mark.parametrize("elem", ["f32", "f64"])
def test_exp_fast_path_gives_the_general_paths_bits(elem: str) -> None:
    """On vectors, exp adds 2**k to the exponent field when every lane's result is normal, else rounds
    subnormal results with an addition (x up to a bound) or takes the path of scalars: sorted arguments give
    whole vectors of each kind."""
    bias = 127 if elem == "f32" else 1023
    edge = np.log(2) * np.array([-(bias - 2), bias])  # the fast path's range, about
    rng = np.random.default_rng(5)
    x = np.sort(np.concatenate([rng.uniform(edge[0] - 20, edge[1] + 5, 50_000), edge, np.nextafter(edge, 0)]))
    x = x.astype(DTYPES[elem])
    assert_same_bits(compiled("exp", elem, True)(x), compiled("exp", elem, False)(x))


def float_range(lo: float, hi: float, elem: str) -> np.ndarray:
    """Every float of the format in [lo, hi] (lo < hi < 0 or 0 < lo < hi), in order."""
    dtype = DTYPES[elem]
    ints = np.int32 if elem == "f32" else np.int64
    ends = np.sort(np.array([lo, hi], dtype).view(ints))
    return np.arange(ends[0], ends[1] + 1, dtype=ints).view(dtype)


def assert_exp_as_by_multiplications(x: np.ndarray, elem: str) -> None:
    reference = compiled("exp_by_multiplications", elem, False)(x)
    for vector in (True, False):
        assert_same_bits(compiled("exp", elem, vector)(x), reference)


def test_exp_float32_bits_in_the_underflow_and_overflow_ranges() -> None:
    """Every float32 in [-110, -80] (subnormal results, 0 and the normal ones next to them), in [60, 70] (the
    top of the vector paths without overflow), in [85, 90] (overflow to inf) and in a stretch around -1e4
    (clamped; sorted, whole vectors of zeros): the same bits as the multiplications give, sorted and shuffled
    (vectors of mixed lanes)."""
    parts = [float_range(-110.0, -80.0, "f32"), float_range(60.0, 70.0, "f32"), float_range(85.0, 90.0, "f32")]
    x = np.concatenate([*parts, float_range(-1.0001e4, -0.9999e4, "f32"), special_values("f32")])
    assert_exp_as_by_multiplications(x, "f32")
    assert_exp_as_by_multiplications(np.random.default_rng(3).permutation(x), "f32")


def test_exp_float64_bits_in_the_underflow_and_overflow_ranges() -> None:
    """float64: random arguments over the subnormal range and past it, near the top of the vector paths
    without overflow and past the overflow, every float64 in stretches around where results turn subnormal,
    round to 0 and overflow, the -1e4 region: the multiplications' bits, sorted and shuffled."""
    rng = np.random.default_rng(19)
    parts = [rng.uniform(-750.0, -700.0, 2_000_000), rng.uniform(600.0, 712.0, 400_000), special_values("f64")]
    parts.append(rng.uniform(-1.1e4, -0.9e4, 100_000))
    # exp(x) = 2**-1022 (smallest normal), 2**-1075 (half the smallest subnormal), 2**1024 (overflow)
    for edge in (-1022 * np.log(2), -1075 * np.log(2), 1024 * np.log(2), mathlib._exp_top(mathlib._FORMATS["f64"])):
        parts.append(float_range(np.nextafter(edge, -np.inf, dtype=np.float64) - 1e-8, edge + 1e-8, "f64"))
    x = np.concatenate(parts)
    assert_exp_as_by_multiplications(x, "f64")
    assert_exp_as_by_multiplications(rng.permutation(x), "f64")


def exp_times_inputs(elem: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, w) in runs of whole vectors of each kind exp_times tells apart — normal exp results, underflowing
    ones (x <= 0) with weights of every magnitude, all past the clamp, x > 0 mixed with underflow, weights
    beyond the scaled product's limit, special weights — then the same pairs shuffled (mixed vectors)."""
    rng = np.random.default_rng([23, len(elem)])
    t = np.finfo(DTYPES[elem])
    lo = -110.0 if elem == "f32" else -750.0
    count = 40_000
    runs = [
        (rng.uniform(-20, 0, count), rng.uniform(-1, 1, count)),
        (rng.uniform(lo, 0, count), rng.uniform(0, 1, count)),
        (rng.uniform(lo, lo * 0.75, count), log_uniform(rng, count, elem, float(t.smallest_subnormal), 1e6, True)),
        (rng.uniform(2 * lo, lo, count), rng.uniform(-1, 1, count)),
        (rng.uniform(lo, 30, count), rng.uniform(-1, 1, count)),
        (rng.uniform(lo, 0, count), log_uniform(rng, count, elem, 1e-30, float(t.max), True)),
    ]
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, float(t.smallest_subnormal), float(t.max)])
    runs.append((rng.uniform(lo, 0, count), rng.choice(specials, count)))
    runs.append((special_values(elem).astype(np.float64), rng.uniform(-2, 2, special_values(elem).size)))
    x = np.concatenate([r[0] for r in runs]).astype(DTYPES[elem])
    w = np.concatenate([r[1] for r in runs]).astype(DTYPES[elem])
    order = rng.permutation(x.size)
    return np.concatenate([x, x[order]]), np.concatenate([w, w[order]])


@pytest.mark.parametrize("elem", ["f32", "f64"])
def test_exp_times_gives_exp_then_a_multiplication(elem: str) -> None:
    """exp_times(x, w), the j loop's exp(u) * w, on vectors: the bits of exp then a multiplication, except a
    subnormal product, which may differ by one unit of the subnormal grid (rounded twice, in a tie); on
    scalars: exp then the multiplication. The inputs take every path (checked by the share of subnormal
    products and of products whose exp is subnormal but which are not)."""
    x, w = exp_times_inputs(elem)
    got = compiled("exp_times", elem, True)(x, w)
    plain = compiled("exp_then_multiply", elem, True)(x, w)
    finfo = np.finfo(DTYPES[elem])
    subnormal = (plain != 0) & (np.abs(plain) < finfo.smallest_normal)
    assert_same_bits(got[~subnormal], plain[~subnormal])
    assert np.abs(got[subnormal].astype(np.float64) - plain[subnormal]).max() <= float(finfo.smallest_subnormal)
    with np.errstate(all="ignore"):
        exp_subnormal = np.abs(np.exp(x.astype(np.float64))) < finfo.smallest_normal
    assert subnormal.mean() > 0.02 and (exp_subnormal & ~subnormal & (plain != 0)).mean() > 0.005
    assert_same_bits(compiled("exp_times", elem, False)(x, w), plain)


@pytest.mark.parametrize("elem", ["f32", "f64"])
def test_exp_product_sums_give_exp_then_a_fused_multiply_add(elem: str) -> None:
    """exp_product_sums, the step of a Gaussian's sums: the bits of exp then one FMA into the sum, on every
    path (normal results, underflowing ones computed in the scaled domain, vectors whose exp is all 0, tiny
    weights and overflow or NaN, which take exp), with sums of every kind (0 shows the product's own
    rounding, subnormal, normal, infinite, NaN)."""
    x, w = exp_times_inputs(elem)
    t = np.finfo(DTYPES[elem])
    rng = np.random.default_rng([29, len(elem)])
    kinds = [np.zeros(x.size), log_uniform(rng, x.size, elem, float(t.smallest_subnormal), float(t.smallest_normal),
                                          True), log_uniform(rng, x.size, elem, 1e-30, 1e30, True)]
    acc = np.choose(rng.choice(3, x.size, p=[0.6, 0.2, 0.2]), kinds).astype(DTYPES[elem])
    acc[rng.choice(x.size, 200, replace=False)] = rng.choice([np.inf, -np.inf, np.nan], 200)
    got = compiled("exp_product_sums", elem, True)(x, w, acc)
    assert_same_bits(got, compiled("exp_then_fma", elem, True)(x, w, acc))
    with np.errstate(all="ignore"):
        product = np.exp(x.astype(np.float64)) * w
    assert (np.abs(product[acc == 0]) < t.smallest_normal).mean() > 0.02  # subnormal products, exact
