"""The one literal printer: every number that reaches MLIR reads back bit-exactly from a compiled kernel."""

from __future__ import annotations

import math
import pathlib
import re
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keir.compiler import literals
from keir.numpy import Vi, Vj

PACKAGE_DIRS = ("compiler", "dialect", "keir", "runtime")
ROOT = pathlib.Path(__file__).resolve().parents[3]

# -0.0 is not among them: keir-simplify folds a product with a literal zero to +0.0, as KeOps does.
F32_EDGES = [0.0, math.inf, -math.inf, 2.0**-149, -(2.0**-149), 2.0**-126, 2.0**-126 - 2.0**-149,
             3.4028234663852886e38, -3.4028234663852886e38, 1e-5, 3e-07, 1e20, 1.0, 0.1]
F64_EDGES = [0.0, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
             -1.7976931348623157e308, 1e-300, 1e-5, 3e-07, 1e20, 1e300, 0.1]


def _f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _read_back(values: list[float], dtype: str) -> np.ndarray:
    """A kernel whose output k is 1 * values[k] (min over one column: exact for -0.0, inf and subnormals)."""
    one = np.ones((1, 1), dtype)
    formula = None
    for value in values:
        term = Vi(one) * value * Vj(one)
        formula = term if formula is None else formula.concat(term)
    return formula.min(axis=1)[0]


def _assert_bits(got: np.ndarray, wanted: list[float], dtype: str) -> None:
    expected = np.array(wanted, dtype=dtype)
    assert got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes(), list(zip(got.tolist(), expected.tolist()))


def test_printer_writes_a_decimal_point_mlir_can_read():
    assert literals.float_literal(1e-5, "f64") == "1.0e-05"
    assert literals.float_literal(1e20, "f64") == "1.0e+20"
    assert literals.float_literal(-0.0, "f32") == "-0.0"
    assert literals.float_literal(3, "f64") == "3.0"


def test_printer_rounds_to_the_element_type_first():
    assert float(literals.float_literal(0.1, "f32")) == float(np.float32(0.1))
    assert literals.float_literal(1e300, "f32") == "0x7F800000"  # past float32's range: inf, as NumPy stores it
    assert literals.float_literal(-1e300, "f32") == "0xFF800000"
    assert literals.float_literal(1e-300, "f32") == "0.0"
    assert literals.float_literal(-1e-300, "f32") == "-0.0"
    assert literals.float_literal(math.nan, "f64") == "0x7FF8000000000000"


def test_constant_ops_for_every_type():
    assert literals.constant(3, "index") == "arith.constant 3 : index"
    assert literals.constant(-1, "vector<8xi64>") == "arith.constant dense<-1> : vector<8xi64>"
    assert literals.constant(1e-5, "f64") == "arith.constant 1.0e-05 : f64"
    with pytest.raises(ValueError, match="not an integer"):
        literals.constant(0.5, "i64")


@pytest.mark.parametrize("dtype, edges", [("float32", F32_EDGES), ("float64", F64_EDGES)])
def test_edge_values_read_back_exactly(dtype, edges):
    _assert_bits(_read_back(edges, dtype), edges, dtype)


def test_negative_zero_reaches_the_kernel_distinct_from_zero():
    one = np.ones((1, 1), "float32")
    text = (Vi(one) * Vj(one) + -0.0).concat(Vi(one) * Vj(one) + 0.0).sum(axis=0, call=False).ir("keir")
    assert "value = -0.0 : f64" in text and "value = 0.0 : f64" in text


def test_nan_reads_back_as_nan():
    one = np.ones((1, 1), "float32")
    assert np.isnan((Vi(one) * math.nan * Vj(one)).sum(axis=1)).all()


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=16, max_size=16))
def test_float32_bit_patterns_read_back_exactly(patterns):
    values = [_f32(bits) for bits in patterns]
    # NaN: checked above (a min reduction skips NaN terms); -0.0: a product with a zero folds to +0.0
    values = [0.0 if math.isnan(v) or v == 0 else v for v in values]
    _assert_bits(_read_back(values, "float32"), values, "float32")


@settings(max_examples=12, deadline=None)
@given(st.lists(st.floats(allow_nan=False, width=64), min_size=16, max_size=16))
def test_float64_values_read_back_exactly(values):
    values = [0.0 if v == 0 else v for v in values]
    _assert_bits(_read_back(values, "float64"), values, "float64")


@pytest.mark.parametrize("scale", [1e-5, 3e-07, 1e20, 1e-20, 100000.0, 1 / 3])
def test_constants_of_every_spelling_compile_in_a_gaussian(scale):
    rng = np.random.default_rng(0)
    x, y, b = rng.random((9, 3)), rng.random((11, 3)), rng.random((11, 1))
    got = ((-Vi(x).sqdist(Vj(y)) * scale).exp() * Vj(b)).sum(axis=1)
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(got, np.exp(-d2 * scale) @ b, rtol=1e-12)


def test_constants_keir_derives_itself_compile():
    """Folded constants: sigma = 100.0 folds to -5e-05; x*1e9 squared folds to 1e18; a Matern-style sqrt."""
    rng = np.random.default_rng(1)
    x, y = rng.random((5, 3)), rng.random((6, 3))
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    sigma = 100.0
    got = (-Vi(x).sqdist(Vj(y)) / (2 * sigma**2)).exp().sum(axis=1)
    np.testing.assert_allclose(got[:, 0], np.exp(-d2 / (2 * sigma**2)).sum(1), rtol=1e-12)
    got = ((Vi(x) * 1e9) * (Vi(x) * 1e9) * Vj(y)).sum(axis=1)
    np.testing.assert_allclose(got, (x * 1e9) ** 2 * y.sum(0), rtol=1e-12)
    got = (Vi(x).sqdist(Vj(y)) + 1e-20).sqrt().sum(axis=1)
    np.testing.assert_allclose(got[:, 0], np.sqrt(d2 + 1e-20).sum(1), rtol=1e-12)


def test_gpu_kernels_take_every_constant():
    x = np.ones((4, 3), "float32")
    text = ((-Vi(x).sqdist(Vj(x)) * 1e-05).exp()).sum(axis=1, call=False).ir("gpu")
    assert "9.999999747378752e-06" in text


def test_no_arith_constant_is_written_outside_the_printer():
    """Every literal goes through keir.compiler.literals (the bug this prevents: four printers, two of them
    writing `1e-05`, which MLIR cannot parse)."""
    offenders = []
    for directory in PACKAGE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            if path.name == "literals.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"arith\.constant", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
