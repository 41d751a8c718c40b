"""Wide products (dot and sqdist of an i- and a j-variable of dimension >= WIDE_DIM), which the CPU lowering runs
as a matrix product's micro-kernel with |y_j|^2 stored in the j layout: against NumPy float64, at every tail of
rows and columns, over either axis, mixed with other uses of the same variables, and at the edges (NaN, x = y)."""

import numpy as np
import pytest
from support.reference import kernel_sum, relative_error

import keir.numpy as kn
from keir.compiler.operands import WIDE_DIM

EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def _points(m: int, n: int, dim: int, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (m, dim)).astype(dtype), rng.uniform(-1, 1, (n, dim)).astype(dtype)


def _sqdist(x, y):
    return ((x - y) ** 2).sum(-1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [WIDE_DIM, WIDE_DIM + 1, 16, 35, 100])
@pytest.mark.parametrize(("m", "n"), [(1, 1), (3, 7), (4, 16), (5, 17), (11, 33), (9, 40)])
def test_sqdist_and_dot_sums_match_float64(dtype, dim, m, n):
    x, y = _points(m, n, dim, dtype)
    # |x|^2 + |y|^2 - 2 x.y loses about eps * (|x|^2 + |y|^2) per pair to cancellation
    scale = (x.astype(float) ** 2).sum(1).max() + (y.astype(float) ** 2).sum(1).max()
    got = kn.Vi(x).sqdist(kn.Vj(y)).sum(axis=1)
    want = kernel_sum(_sqdist, [x], [y], [])
    assert np.abs(got - want).max() <= 4 * EPS[dtype] * scale * n
    got = (kn.Vi(x) | kn.Vj(y)).sum(axis=1)
    want = kernel_sum(lambda x, y: (x * y).sum(-1, keepdims=True), [x], [y], [])
    assert np.abs(got - want).max() <= 4 * EPS[dtype] * scale * n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize(("m", "n"), [(6, 13), (17, 9), (33, 31)])
def test_gaussian_with_the_difference_vector_over_either_axis(dtype, axis, m, n):
    """exp(-|x-y|^2) (x - y) b: y is read both by the wide product and component by component."""
    x, y = _points(m, n, 12, dtype)
    b = np.random.default_rng(1).uniform(0.5, 1.5, (n, 1)).astype(dtype)
    formula = ((-kn.Vi(x).sqdist(kn.Vj(y))).exp() * (kn.Vi(x) - kn.Vj(y)) * kn.Vj(b)).sum(axis=axis)
    want = kernel_sum(lambda x, y, b: np.exp(-_sqdist(x, y)) * (x - y) * b, [x], [y, b], [], axis=axis)
    assert relative_error(formula, want) < (2e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmin_and_argmin_of_wide_distances(dtype):
    x, y = _points(21, 70, 20, dtype)
    d2 = ((x[:, None].astype(float) - y[None]) ** 2).sum(-1)
    got_values, got_indices = kn.Vi(x).sqdist(kn.Vj(y)).Kmin_argKmin(3, axis=1)
    want_indices = np.argsort(d2, axis=1)[:, :3]
    assert np.array_equal(got_indices, want_indices)
    tolerance = 8 * EPS[dtype] * float((x.astype(float) ** 2).sum(1).max() + (y.astype(float) ** 2).sum(1).max())
    assert np.abs(got_values - np.take_along_axis(d2, want_indices, 1)).max() <= tolerance


def test_coincident_points_give_a_distance_of_zero_not_a_negative_one():
    """x_i = y_i: the expanded form can round below zero; it is clamped, so sqrt stays finite."""
    x, _ = _points(50, 1, 30, np.float32)
    x = x * 100
    distances = kn.Vi(x).sqdist(kn.Vj(x)).sqrt().min(axis=1)
    assert np.isfinite(distances).all() and (distances >= 0).all()
    assert distances.max() <= np.sqrt(8 * EPS[np.float32] * 2 * (x.astype(float) ** 2).sum(1).max())


def test_nan_propagates_through_the_wide_product():
    x, y = _points(9, 20, 16, np.float64)
    y[3, 5] = np.nan
    x[2, 0] = np.nan
    out = (-kn.Vi(x).sqdist(kn.Vj(y))).exp().sum(axis=1)
    assert np.isnan(out).all()  # every row meets y_3
    out = (-kn.Vi(x).sqdist(kn.Vj(y[:3]))).exp().sum(axis=1)
    assert np.isnan(out[2]).all() and np.isfinite(np.delete(out, 2, axis=0)).all()


def test_results_do_not_depend_on_the_thread_count():
    x, y = _points(1003, 700, 40, np.float32)
    formula = (-kn.Vi(x).sqdist(kn.Vj(y)) / 40).exp() * (kn.Vi(x) | kn.Vj(y))
    one = formula.sum(axis=1, threads=1)
    for threads in (2, 3, 8):
        assert np.array_equal(formula.sum(axis=1, threads=threads), one)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("m", "n", "columns"), [(1, 1, 16), (3, 17, 17), (4, 16, 19), (7, 1025, 64), (9, 2100, 23),
                                                 (13, 600, 128), (5, 40, 200)])
def test_kernel_times_wide_variable_as_a_blocked_product(dtype, m, n, columns):
    """K @ B and (K * Vj(B)).sum(1), B of 16 to 200 columns: the tiled product (K's block in a stack tile,
    groups of 4 components in registers; `lower_cpu._kernel_times_variable` recognises it) against float64,
    at tails of rows (not a multiple of the row block), of columns (a group of fewer than 4, past the 128 of
    one kernel), of j (a partial block_sum block, a masked tail, several blocks); Kahan and direct_sum take
    the general path and agree."""
    from keir.compiler.lower_cpu import _kernel_times_variable
    from keir.compiler.reductions import ReductionOptions

    rng = np.random.default_rng(m * n + columns)
    x, y = rng.uniform(-1, 1, (m, 3)).astype(dtype), rng.uniform(-1, 1, (n, 3)).astype(dtype)
    b = rng.standard_normal((n, columns)).astype(dtype)
    kernel = (-kn.Vi(x).sqdist(kn.Vj(y))).exp()
    want = np.exp(-_sqdist(x[:, None].astype(float), y[None].astype(float))[..., 0]) @ b.astype(float)
    scale = np.abs(b).astype(float).sum(0).max()
    for got in (kernel @ b, (kn.Vj(b) * kernel).sum(axis=1), (kernel * kn.Vj(b)).sum(axis=1, sum_scheme="kahan_scheme"),
                (kernel * kn.Vj(b)).sum(axis=1, sum_scheme="direct_sum")):
        assert np.abs(got - want).max() <= 8 * EPS[dtype] * scale * max(np.sqrt(n), 4)
    product = (kernel * kn.Vj(b)).sum(axis=1, call=False).root.args[0]
    assert _kernel_times_variable(product, ReductionOptions("sum", columns, sum_scheme="block_sum")) is not None
    kahan = ReductionOptions("sum", columns, sum_scheme="kahan_scheme")
    assert _kernel_times_variable(product, kahan) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_blocks_share_chunks_of_j(dtype):
    """A loop-carried state over a wide product (K-min, min, argmin) runs groups of row blocks over chunks of
    j (`_Rows.chunked_loop`): N of several chunks and a partial one, M of whole groups, a partial group and
    single rows; every row's K nearest against float64 (the distances: ties at float precision may swap)."""
    from keir.compiler.kernel import Kernel
    from keir.compiler.lower_cpu import SHARED_CHUNK_BLOCKS, lower_cpu
    from keir.compiler.register_tiles import host_register_tiles

    rows = host_register_tiles().wide_rows * SHARED_CHUNK_BLOCKS
    x, y = _points(2 * rows + 7, 7001, 20, dtype)
    lazy = kn.Vi(x).sqdist(kn.Vj(y))
    elem = "f32" if dtype == np.float32 else "f64"

    def chunked(reduction) -> bool:
        return "scf.for %jc" in lower_cpu(Kernel("k", reduction.root, elem)).func_text

    assert chunked(lazy.argKmin(4, axis=1, call=False))
    d2 = ((x[:, None].astype(float) - y[None]) ** 2).sum(-1)
    tolerance = 8 * EPS[dtype] * float((x.astype(float) ** 2).sum(1).max() + (y.astype(float) ** 2).sum(1).max())
    found = lazy.argKmin(4, axis=1)
    assert np.abs(np.take_along_axis(d2, found, 1) - np.sort(d2, axis=1)[:, :4]).max() <= tolerance
    assert np.abs(lazy.min(axis=1)[:, 0] - d2.min(1)).max() <= tolerance
    nearest = lazy.argmin(axis=1)[:, 0]
    assert np.abs(d2[np.arange(len(x)), nearest] - d2.min(1)).max() <= tolerance
    assert not chunked(lazy.sum(axis=1, call=False))  # block_sum: blocks of j, no chunks
    # sums without block_sum carry their state (and Kahan's carry) through the chunks too
    gaussian = (-lazy * 0.1).exp()
    want = np.exp(-0.1 * d2).sum(1)
    for scheme in ("direct_sum", "kahan_scheme"):
        assert chunked(gaussian.sum(axis=1, call=False, sum_scheme=scheme))
        got = gaussian.sum(axis=1, sum_scheme=scheme)[:, 0]
        assert np.abs(got - want).max() <= (1e-4 if dtype == np.float32 else 1e-11) * want.max()
