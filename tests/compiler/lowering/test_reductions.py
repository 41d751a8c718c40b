"""Every reduction kind, over i and j, against NumPy float64: ties, K > 1, K > N, weights, options."""

import numpy as np
import pytest
import torch
from support.reference import relative_error

import keir.numpy as kn
import keir.torch as kt

SIZES = [(1, 1), (7, 33), (130, 45), (1000, 1237)]


def _dense(x, y):
    return ((x[:, None, :].astype(np.float64) - y[None, :, :].astype(np.float64)) ** 2).sum(-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("m,n", SIZES)
def test_min_max_arg(m, n, dtype):
    rng = np.random.default_rng(m * n)
    x, y = rng.random((m, 2)).astype(dtype), rng.random((n, 2)).astype(dtype)
    f = kn.Vi(x).sqdist(kn.Vj(y))
    d = _dense(x, y).astype(dtype).astype(np.float64)  # the values keir compares, rounded as keir rounds them
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert relative_error(f.min(axis=1)[:, 0], d.min(1)) < tol
    assert relative_error(f.max(axis=1)[:, 0], d.max(1)) < tol
    assert relative_error(f.min(axis=0)[:, 0], d.min(0)) < tol
    values, indices = f.max_argmax(axis=1)
    assert indices.dtype == np.int64 and relative_error(values[:, 0], d.max(1)) < tol
    # an index is right if its value is the extreme one (float32 rounding may tie distinct float64 values)
    chosen = d[np.arange(m), indices[:, 0]]
    assert relative_error(chosen, d.max(1)) < tol
    chosen = d[f.argmin(axis=0)[:, 0], np.arange(n)]
    assert relative_error(chosen, d.min(0)) < tol


def test_ties_go_to_the_smallest_index():
    x = np.zeros((5, 1))
    y = np.array([[3.0], [1.0], [2.0], [1.0], [1.0], [5.0]] * 7)  # value 1 at j = 1, 3, 4, 7, ...
    f = kn.Vi(x).sqdist(kn.Vj(y))
    assert np.all(f.argmin(axis=1) == 1)
    assert np.all(f.argKmin(4, axis=1) == [1, 3, 4, 7])
    assert np.all((-f).argmax(axis=1) == 1)
    vec = kn.Vi(np.array([[2.0, 1.0, 1.0, 3.0]])) + kn.Vj(np.zeros((3, 1)))
    assert np.all(vec.argmin().sum(axis=1) == 3 * 1.0)  # in-vector argmin: first of the tied components


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_kmin_argkmin(k, dtype):
    rng = np.random.default_rng(k)
    x, y = rng.random((300, 3)).astype(dtype), rng.random((517, 3)).astype(dtype)
    f = kn.Vi(x).sqdist(kn.Vj(y))
    d = _dense(x, y).astype(dtype).astype(np.float64)
    values, indices = f.Kmin_argKmin(k, axis=1)
    assert values.shape == indices.shape == (300, k) and indices.dtype == np.int64
    want = np.sort(d, axis=1)[:, :k]
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert relative_error(values, want) < tol
    assert relative_error(np.take_along_axis(d, indices, 1), want) < tol
    assert np.array_equal(f.argKmin(k, axis=1), indices)
    assert relative_error(f.Kmin(k, axis=0), np.sort(d, axis=0)[:k].T) < tol
    # K nearest neighbours of a vector formula: per component, shape (rows, K, D)
    g = kn.Vi(x) - kn.Vj(y)
    dense = (x[:, None, :].astype(np.float64) - y[None].astype(np.float64)).astype(dtype).astype(np.float64)
    assert relative_error(g.Kmin(k, axis=1), np.sort(dense, axis=1)[:, :k, :]) < tol


def test_k_larger_than_n():
    f = kn.Vi(np.zeros((3, 1))).sqdist(kn.Vj(np.array([[2.0], [1.0]])))
    values, indices = f.Kmin_argKmin(4, axis=1)
    assert np.array_equal(indices[0], [1, 0, -1, -1]) and np.array_equal(values[0, :2], [1.0, 4.0])
    assert np.all(np.isinf(values[:, 2:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("m,n", SIZES)
def test_logsumexp_and_softmax(m, n, dtype):
    rng = np.random.default_rng(n)
    x, y = rng.random((m, 3)).astype(dtype), rng.random((n, 3)).astype(dtype)
    w = rng.random((n, 2)).astype(dtype)
    f = -kn.Vi(x).sqdist(kn.Vj(y)) * 50.0  # large magnitudes: a naive sum of exp would underflow
    d = -50.0 * _dense(x, y)
    top = d.max(1, keepdims=True)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert relative_error(f.logsumexp(axis=1), top + np.log(np.exp(d - top).sum(1, keepdims=True))) < tol
    weighted = top + np.log(np.exp(d - top) @ w)
    assert relative_error(f.logsumexp(axis=1, weight=kn.Vj(w)), weighted) < tol
    soft = (np.exp(d - top) @ w) / np.exp(d - top).sum(1, keepdims=True)
    assert relative_error(f.sumsoftmaxweight(kn.Vj(w), axis=1), soft) < tol
    top0 = d.max(0, keepdims=True)
    assert relative_error(f.logsumexp(axis=0)[:, 0], (top0 + np.log(np.exp(d - top0).sum(0, keepdims=True)))[0]) < tol


def test_logsumexp_of_minus_infinity_and_vectors():
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [2.0], [5.0]])
    f = (kn.Vi(x) - kn.Vj(y)).log()  # log of negative numbers: NaN; of 0: -inf
    out = f.logsumexp(axis=1)
    assert out[0, 0] == -np.inf  # only exp(-inf) = 0 and NaN (skipped) terms
    vec = kn.Vi(x).concat(-kn.Vi(x)) * kn.Vj(y)
    d = np.stack([x * y[:, 0], -x * y[:, 0]], -1)  # (2, 3, 2)
    assert relative_error(vec.logsumexp(axis=1), np.log(np.exp(d).sum(1))) < 1e-14


@pytest.mark.parametrize("options", [{"sum_scheme": "direct_sum"}, {"sum_scheme": "block_sum"},
                                     {"sum_scheme": "kahan_scheme"}, {"dtype_acc": "float64"}])
def test_sum_options(options):
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 1), dtype=np.float32), rng.random((200_000, 1), dtype=np.float32)
    b = (1 + rng.random((200_000, 1))).astype(np.float32)
    out = (kn.Vi(x) * kn.Vj(b) + kn.Vj(y)).sum(axis=1, **options)
    want = x.astype(np.float64) * b.astype(np.float64).sum() + y.astype(np.float64).sum()
    error = relative_error(out, want)
    # 200 000 float32 terms: a plain sum drifts (measured 1e-6); blocks and compensation stay within a few
    # float32 roundings of the result (1.5e-7, 1.8e-7); a double accumulator within one (3.9e-8).
    bound = {"direct_sum": 2e-6, "block_sum": 3e-7, "kahan_scheme": 3e-7}.get(options.get("sum_scheme"), 6e-8)
    assert error < bound


def test_torch_reductions_return_int64_tensors():
    x, y = torch.rand(20, 3), torch.rand(30, 3)
    values, indices = kt.Vi(x).sqdist(kt.Vj(y)).Kmin_argKmin(2, dim=1)
    assert isinstance(indices, torch.Tensor) and indices.dtype == torch.int64
    dense = torch.cdist(x.double(), y.double()) ** 2
    assert torch.equal(torch.sort(dense, 1).indices[:, :2], indices) or relative_error(
        torch.gather(dense, 1, indices).numpy(), torch.sort(dense, 1).values[:, :2].numpy()) < 1e-6


def test_bad_reduction_arguments():
    f = kn.Vi(np.ones((3, 2))).sqdist(kn.Vj(np.ones((4, 2))))
    with pytest.raises(ValueError, match="K must be a positive integer"):
        f.Kmin(0, axis=1)
    with pytest.raises(ValueError, match="sum_scheme must be one of .*, got 'fast'"):
        f.sum(axis=1, sum_scheme="fast")
    with pytest.raises(ValueError, match="dtype_acc applies to the sum-type reductions .* not to 'min'"):
        f.min(axis=1, dtype_acc="float64")
    with pytest.raises(ValueError, match="dtype_acc may only be 'float64'"):
        f.sum(axis=1, dtype_acc="float16")
    with pytest.raises(kn.LazyTensor.__module__ and ValueError, match="needs a scalar formula"):
        (kn.Vi(np.ones((3, 2))) - kn.Vj(np.ones((4, 2)))).sumsoftmaxweight(kn.Vj(np.ones((4, 2))), axis=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme", ["direct_sum", "block_sum", "kahan_scheme"])
@pytest.mark.parametrize("dtype_acc", [None, "float64"])
def test_sum_schemes_and_dtype_acc_apply_to_logsumexp(dtype, scheme, dtype_acc):
    """As in pykeops, sum_scheme and dtype_acc apply to the log-sum-exp family (Max_SumShiftExp[Weight])."""
    rng = np.random.default_rng(5)
    m, n = 6, 4100  # several block_sum blocks and a tail
    x, y = (rng.standard_normal((k, 2)).astype(dtype) * 3 for k in (m, n))
    w = rng.random((n, 2)).astype(dtype)
    d = -((x[:, None, :].astype(float) - y[None].astype(float)) ** 2).sum(-1)
    top = d.max(1, keepdims=True)
    scaled = np.exp(d - top)
    options = {"sum_scheme": scheme, **({"dtype_acc": dtype_acc} if dtype_acc else {})}
    f = -kn.Vi(x).sqdist(kn.Vj(y))
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f.logsumexp(axis=1, **options), top + np.log(scaled.sum(1, keepdims=True)), atol=tol)
    np.testing.assert_allclose(f.logsumexp(axis=1, weight=kn.Vj(w), **options), top + np.log(scaled @ w), atol=tol)
    np.testing.assert_allclose(f.sumsoftmaxweight(kn.Vj(w), axis=1, **options),
                               (scaled @ w) / scaled.sum(1, keepdims=True), atol=tol)


def test_sum_options_are_refused_for_other_kinds_by_name():
    x = np.random.default_rng(0).random((4, 2))
    with pytest.raises(ValueError, match="sum_scheme 'kahan_scheme' applies to the sum-type reductions"):
        kn.Vi(x).sqdist(kn.Vj(x)).min(axis=1, sum_scheme="kahan_scheme")


def test_a_kernel_times_weight_fuses_into_exp_times_and_keeps_its_values():
    """The j loop computes exp(u) * w as mathlib.exp_times where the exp has no other use (a Gaussian's value
    times its weight): sums whose kernel values underflow (scale 100: subnormal and zero values in f32),
    weights of every sign and magnitude, against float64 sums of the float32 terms exp then a multiplication
    gives, and the exp reused elsewhere or j-free keeps its own value."""
    from keir.compiler.lower_cpu import _exp_products
    from keir.dialect.node import topological

    rng = np.random.default_rng(8)
    x, y = rng.random((37, 3)).astype(np.float32), rng.random((301, 3)).astype(np.float32)
    w = (rng.standard_normal((301, 1)) * 10.0 ** rng.integers(-20, 20, (301, 1))).astype(np.float32)
    w[:5] = [[0.0], [-0.0], [1e-40], [3e38], [-1e-30]]
    kernel = (-kn.Vi(x).sqdist(kn.Vj(y)) * 100.0).exp()
    gaussian = (kernel * kn.Vj(w)).sum(axis=1, call=False)
    (product,) = _exp_products(topological(gaussian.root.args[0]))
    assert product is gaussian.root.args[0]
    with np.errstate(all="ignore"):
        terms = np.exp(np.float32(-100.0) * _dense(x, y).astype(np.float32)) * w[:, 0]  # float32, rounded twice
    exact = terms.astype(np.float64).sum(1, keepdims=True)
    scale = np.abs(terms.astype(np.float64)).sum(1, keepdims=True)
    assert np.all(np.abs(gaussian() - exact) <= 2e-5 * scale + 1e-44)  # float32 summation of 301 terms
    reused = (kernel * kn.Vj(w) + kernel).sum(axis=1, call=False)
    assert not _exp_products(topological(reused.root.args[0]))
    i_only = ((-kn.Vi(x).sqnorm2()).exp() * kn.Vj(w)).sum(axis=1, call=False)
    assert not _exp_products(topological(i_only.root.args[0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_sums_of_exp_products_take_every_path_of_a_block(dtype):
    """A sum of exp(u) * w adds a row block's products at once (mathlib.exp_product_sums): blocks of normal,
    underflowing and zero exps, an exp that overflows or is NaN in some rows, weights of several columns, tiny
    weights (below the scaled path's 2**-100 / 2**-966) and weights that depend on i, against float64 sums of
    the terms exp then a multiplication gives in the dtype (which an FMA rounds once: within the sum's own
    rounding), with inf and NaN where those sums have them."""
    rng = np.random.default_rng(31)
    m, n = 23, 203
    x, y = rng.random((m, 2)).astype(dtype), rng.random((n, 2)).astype(dtype)
    scale = np.where(rng.random((m, 1)) < 0.5, 1.0, 500.0).astype(dtype)  # rows of normal and underflowing exps
    shift = np.zeros((m, 1), dtype)
    shift[3], shift[7], shift[11] = 800.0, np.nan, 50.0  # exp overflows (or is large) in some rows, NaN in one
    b = rng.standard_normal((n, 3)).astype(dtype)
    b[5:9] = np.finfo(dtype).smallest_subnormal * 3
    a = (rng.standard_normal((m, 1)) * 10.0 ** rng.integers(-3, 3, (m, 1))).astype(dtype)
    u = kn.Vi(shift) - kn.Vi(scale) * kn.Vi(x).sqdist(kn.Vj(y))
    with np.errstate(all="ignore"):
        kernel = np.exp((shift - scale * _dense(x, y).astype(dtype)).astype(dtype))
        for weights, expected in (
            (kn.Vj(b), kernel[:, :, None] * b[None]),
            (kn.Vi(a) * kn.Vj(b[:, :1]), kernel[:, :, None] * (a[:, None] * b[None, :, :1])),
        ):
            got = (u.exp() * weights).sum(axis=1)
            terms = expected.astype(np.float64)
            exact, size = terms.sum(1), np.abs(terms).sum(1)
            finite = np.isfinite(exact)
            assert np.array_equal(np.isnan(got), np.isnan(exact))
            assert np.array_equal(got[~finite & ~np.isnan(exact)], exact[~finite & ~np.isnan(exact)])
            tolerance = 4 * np.finfo(dtype).eps * size[finite] + 4 * float(np.finfo(dtype).smallest_subnormal)
            assert np.all(np.abs(got[finite] - exact[finite]) <= tolerance)


def _climbing_terms(rng, n: int) -> np.ndarray:
    """Terms in an order that moves the log-sum-exp's running maximum often: climbs by steps of every size
    around the accumulator's slack (less than 1, several units, 16 and either side of it, 40), drops, plateaus,
    in [-200, 50]."""
    steps = rng.choice([0.0, 0.25, 3.0, 15.9, 16.0, 16.1, 40.0, -30.0], size=n,
                       p=[.3, .2, .15, .05, .05, .05, .05, .15])
    return np.mod(np.cumsum(steps), 250.0) - 200.0


def _near_zero_terms(rng, n: int) -> np.ndarray:
    """A dominant term 1e-3 that two terms of -10 precede in its lane and block_sum block (16 or 8 lanes, blocks
    of 1024 or 512 j), over a background of terms near -200 that never exceed the lanes' references: the
    dominant term arrives within the slack, so the reference still trails it at the end."""
    v = -200.0 - rng.random(n)
    v[1024 + 16], v[1024 + 32], v[1024 + 48] = -10.0 + 1e-3, -10.0 + 1e-3, 1e-3
    return v


@pytest.mark.parametrize("dtype,options", [(d, o) for d in ("float32", "float64")
                                           for o in ({}, {"sum_scheme": "direct_sum"}, {"dtype_acc": "float64"})
                                           if not (o.get("dtype_acc") and d == "float64")])  # f32 inputs only
@pytest.mark.parametrize("terms,n,roundings", [(_climbing_terms, 3001, 4), (_near_zero_terms, 3072, 1.5)],
                         ids=["climbing", "near-zero"])
def test_logsumexp_terms_that_move_the_maximum_in_every_way(dtype, options, terms, n, roundings):
    """A reference m that trails the running maximum (keir's common path adds exp(f - m) while f <= m + 16)
    keeps the accuracy of the online update: on terms that climb by less and more than that slack (N = 3001:
    several block_sum blocks and a masked tail), and where the result is near 0 and m trails the maximum by 10
    at the end (N = 3072, no tail), so that only the sums' own roundings may show (measured: at most 1 ulp of 1
    where the result takes the running maximum as its reference; 1.7 to 4 with the trailing reference)."""
    rng = np.random.default_rng(11)
    v = terms(rng, n).astype(dtype)
    scale = np.array([[1.0], [1.5], [0.25], [-1.0]]).astype(dtype)  # f_ij = a_i v_j (a sum would be hoisted)
    f = kn.Vi(scale) * kn.Vj(v[:, None])
    w = rng.random((n, 2)).astype(dtype)
    exact = (scale * v[None, :]).astype(np.float64)  # the terms as keir computes them, rounded to dtype
    top = exact.max(1, keepdims=True)
    scaled = np.exp(exact - top)
    eps = np.finfo(np.float64 if options.get("dtype_acc") else dtype).eps
    out_eps = np.finfo(dtype).eps / 2  # the result's rounding

    def check(actual, want, terms):
        # a few roundings of the sum (relative) and of the reference m (absolute), then the result's
        tol = roundings * eps * (1 + np.abs(top) + np.abs(np.log(terms))) + out_eps * np.abs(want)
        assert (np.abs(actual - want) <= tol).all(), (actual - want, tol)

    check(f.logsumexp(axis=1, **options), top + np.log(scaled.sum(1, keepdims=True)), scaled.sum(1, keepdims=True))
    check(f.logsumexp(axis=1, weight=kn.Vj(w), **options), top + np.log(scaled @ w), scaled @ w)
    soft = (scaled @ w) / scaled.sum(1, keepdims=True)
    np.testing.assert_allclose(f.sumsoftmaxweight(kn.Vj(w), axis=1, **options), soft, rtol=64 * eps + out_eps)


def test_logsumexp_special_terms_after_the_maximum_settles():
    """-inf terms (skipped, also with an infinite weight), NaN terms (skipped) and a late +inf term (+inf), on
    the common path: after the first vectors, when no term moves the maximum."""
    n = 100
    v = -np.arange(n, dtype=np.float64) / 10
    w = np.ones((n, 1))
    v[50], v[60], v[70] = -np.inf, np.nan, -np.inf
    w[50, 0] = np.inf
    kept = np.isfinite(v)
    f = kn.Vi(np.zeros((2, 1))) + kn.Vj(v[:, None])
    want = np.log(np.exp(v[kept]).sum())
    np.testing.assert_allclose(f.logsumexp(axis=1), np.full((2, 1), want), rtol=1e-14)
    np.testing.assert_allclose(f.logsumexp(axis=1, weight=kn.Vj(w)), np.full((2, 1), want), rtol=1e-14)
    v[80] = np.inf
    g = kn.Vi(np.zeros((2, 1))) + kn.Vj(v[:, None])
    assert (g.logsumexp(axis=1) == np.inf).all()
