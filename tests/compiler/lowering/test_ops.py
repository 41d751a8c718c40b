"""Every op under a sum reduction, against NumPy float64, in float32 and float64, for M, N in {1, 7, 1000, 12345}
(sizes that are no multiple of any block or vector width)."""

import itertools

import numpy as np
import pytest
from support.op_matrix import OPS
from support.reference import kernel_sum, relative_error

from keir.numpy import Pm, Vi, Vj

SIZES = [1, 7, 1000, 12345]
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


def _data(m, n, dtype, seed=0):
    rng = np.random.default_rng(seed + m + 7 * n)
    x = rng.uniform(0.5, 1.5, (m, 3)).astype(dtype)
    y = rng.uniform(0.5, 1.5, (n, 3)).astype(dtype)
    b = rng.uniform(0.5, 1.5, (n, 1)).astype(dtype)
    p = rng.uniform(0.5, 1.5, 3).astype(dtype)
    return x, y, b, p


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_sum_over_j(name, dtype):
    keir_formula, numpy_formula = OPS[name]
    for m, n in itertools.product(SIZES, SIZES):
        if name != "gaussian" and m * n > 1000 * 12345:
            continue  # the largest size runs for the Gaussian; every other op at every other pair of sizes
        x, y, b, p = _data(m, n, dtype)
        out = keir_formula(Vi(x), Vj(y), Vj(b), Pm(p)).sum(axis=1)
        want = kernel_sum(lambda x, y, b, p: numpy_formula(x, y, b, p), [x], [y, b], [p])
        assert out.shape == want.shape and out.dtype == dtype, (m, n)
        assert relative_error(out, want) < TOLERANCE[dtype], (name, m, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["gaussian", "concat", "div", "log"])
def test_op_sum_over_i(name, dtype):
    keir_formula, numpy_formula = OPS[name]
    for m, n in [(1, 7), (7, 1), (1000, 12345), (12345, 7)]:
        x, y, b, p = _data(m, n, dtype, seed=1)
        out = keir_formula(Vi(x), Vj(y), Vj(b), Pm(p)).sum(axis=0)
        want = kernel_sum(lambda x, y, b, p: numpy_formula(x, y, b, p), [x], [y, b], [p], axis=0)
        assert out.shape == want.shape == (n, want.shape[1])
        assert relative_error(out, want) < TOLERANCE[dtype], (name, m, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_vector_tails(name, dtype):
    """N = 1 ... 33 covers every tail length of the 16-lane (f32) and 8-lane (f64) j loop, and M = 1 ... 9
    every remainder of the 4-row blocks."""
    keir_formula, numpy_formula = OPS[name]
    for n in range(1, 34):
        m = 1 + n % 9
        x, y, b, p = _data(m, n, dtype, seed=2)
        out = keir_formula(Vi(x), Vj(y), Vj(b), Pm(p)).sum(axis=1)
        want = kernel_sum(lambda x, y, b, p: numpy_formula(x, y, b, p), [x], [y, b], [p])
        assert relative_error(out, want) < TOLERANCE[dtype], (name, m, n)
