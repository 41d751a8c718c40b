"""Formulas of large dimension, which the CPU lowering computes in loops over their components
(compiler/components.py) instead of unrolling them: against dense NumPy/torch float64 references, for every kind
of reduction of a wide formula (its state then lives in memory), every consumer of a wide value, the pieces of
concat/extract, i-only and parameter-only wide work, over either axis, with tails of rows and columns; and the
code size, which must not grow with the dimension (it is what made D = 990 take minutes to compile)."""

import numpy as np
import pytest

import keir.numpy as kn
from keir.compiler.components import LOOP_DIM

M, N = 7, 21  # a block of 4 rows and 3 more; two vectors of j and a masked tail (f64: 8 lanes, f32: 16)
D = 40


def _data(*shapes, seed=0, low=-1.0, high=1.0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, shape) for shape in shapes]


def _pairs(f, x, y, *rest):
    """f on the (M, N, ...) broadcast of x_i (M, D) and y_j (N, D)."""
    return f(x[:, None, :], y[None, :, :], *rest)


def _scan_arg(a, better):
    """Index of the first component that beats all before it (a NaN at 0 is never beaten, a NaN never wins)."""
    best, where = a[..., 0].copy(), np.zeros(a.shape[:-1])
    for k in range(1, a.shape[-1]):
        wins = better(a[..., k], best)
        best = np.where(wins, a[..., k], best)
        where = np.where(wins, k, where)
    return where[..., None]


def _close(got, want, rtol=1e-12):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    got, want = np.nan_to_num(got), np.nan_to_num(want)
    scale = np.abs(want).max(initial=0.0) or 1.0
    assert np.abs(got - want).max(initial=0.0) <= rtol * scale, np.abs(got - want).max() / scale


def test_pykeops_min_chunked_d990():
    """pykeops 2.3's test_LazyTensor_min_chunked: D = 990 (it took minutes to compile when unrolled)."""
    torch = pytest.importorskip("torch")
    from keir.torch import LazyTensor

    x, y = (torch.tensor(a) for a in _data((30, 990), (45, 990), seed=1, low=0.0))
    m, am = ((-((LazyTensor(x[:, None]) + LazyTensor(y[None])) ** 2)).exp()).sum(-1, keepdim=True).min_argmin(dim=0)
    want = ((-((x[:, None] + y[None]) ** 2)).exp()).sum(-1, keepdim=True).min(dim=0)
    _close(m, want.values)
    assert torch.equal(am, want.indices)


@pytest.mark.parametrize("axis", [0, 1])
def test_wide_output_d990(axis):
    """A sum whose value has 990 components: exp(x_i - y_j) * b_j."""
    x, y, b = _data((M, 990), (N, 990), (N if axis == 1 else M, 990), seed=2)
    bv = kn.Vj(b) if axis == 1 else kn.Vi(b)
    got = ((kn.Vi(x) - kn.Vj(y)).exp() * bv).sum(axis=axis)
    want = (np.exp(x[:, None] - y[None]) * (b[None] if axis == 1 else b[:, None])).sum(axis=axis)
    _close(got, want)


def test_code_size_does_not_grow_with_the_dimension():
    sizes = []
    for dim in (100, 990):
        x, y, b = _data((M, dim), (N, dim), (N, dim))
        wide_output = ((kn.Vi(x) - kn.Vj(y)).exp() * kn.Vj(b)).sum(axis=1, call=False)
        wide_inside = ((-((kn.Vi(x) + kn.Vj(y)) ** 2)).exp()).sum().min_argmin(axis=0, call=False)
        sizes.append([len(r.ir("loops").splitlines()) for r in (wide_output, wide_inside)])
    assert sizes[0] == sizes[1]
    assert max(sizes[1]) < 3000


# every reduction kind of a wide formula f = x_i * y_j + sin(y_j) (its accumulators in memory) -----------------
def _f(x, y):
    return x * y + np.sin(y)


def _lazy_f(x, y):
    return kn.Vi(x) * kn.Vj(y) + kn.Vj(y).sin()


@pytest.mark.parametrize("kind", ["min", "max", "argmin", "argmax", "min_argmin", "max_argmax", "kmin_argkmin",
                                  "logsumexp"])
@pytest.mark.parametrize("axis", [0, 1])
def test_every_kind_of_wide_formula(kind, axis):
    x, y = _data((M, D), (N, D), seed=3)
    formula = _lazy_f(x, y)
    values = _pairs(_f, x, y)  # (M, N, D)
    if kind == "kmin_argkmin":
        got_values, got_indices = formula.Kmin_argKmin(3, axis=axis)
        order = np.argsort(values, axis=axis, kind="stable")
        order = order[:, :3] if axis == 1 else np.moveaxis(order[:3], 0, 1)  # (rows, 3, D)
        picked = np.take_along_axis(values if axis == 1 else np.moveaxis(values, 0, 1), order, 1)
        assert np.array_equal(got_indices, order)
        _close(got_values, picked)
        return
    if kind == "logsumexp":
        top = values.max(axis=axis)
        want = top + np.log(np.exp(values - np.expand_dims(top, axis)).sum(axis=axis))
        _close(formula.logsumexp(axis=axis), want)
        return
    result = getattr(formula, kind)(axis=axis)
    extreme = np.min if "min" in kind else np.max
    arg = np.argmin if "min" in kind else np.argmax
    if kind in ("min", "max"):
        _close(result, extreme(values, axis=axis))
    elif kind in ("argmin", "argmax"):
        assert np.array_equal(result, arg(values, axis=axis))
    else:
        _close(result[0], extreme(values, axis=axis))
        assert np.array_equal(result[1], arg(values, axis=axis))


@pytest.mark.parametrize("kind", ["logsumexp_weight", "sumsoftmaxweight"])
@pytest.mark.parametrize("scheme", ["direct_sum", "block_sum", "kahan_scheme"])
def test_weighted_log_sum_exp_with_a_wide_weight(kind, scheme):
    x, y, w = _data((M, 3), (601, 3), (601, D), seed=4)  # block_sum: more than one block of j (64 vectors)
    w = np.abs(w) + 0.1
    scores = -kn.Vi(x).sqdist(kn.Vj(y))
    f = -((x[:, None] - y[None]) ** 2).sum(-1)  # (M, n)
    e = np.exp(f - f.max(1, keepdims=True))
    if kind == "logsumexp_weight":
        got = scores.logsumexp(axis=1, weight=kn.Vj(w), sum_scheme=scheme)
        want = f.max(1, keepdims=True) + np.log(e @ w)
    else:
        got = scores.sumsoftmaxweight(kn.Vj(w), axis=1, sum_scheme=scheme)
        want = (e @ w) / e.sum(1, keepdims=True)
    _close(got, want)


@pytest.mark.parametrize("scheme", ["block_sum", "kahan_scheme"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wide_sum_schemes(scheme, dtype):
    x, y = _data((M, D), (600, D), seed=5)
    got = _lazy_f(x.astype(dtype), y.astype(dtype)).sum(axis=1, sum_scheme=scheme)
    _close(got, _pairs(_f, x, y).sum(1), 1e-12 if dtype == np.float64 else 1e-5)


def test_wide_sum_accumulated_in_float64():
    x, y = (a.astype(np.float32) for a in _data((M, D), (600, D), seed=6))
    got = _lazy_f(x, y).sum(axis=1, dtype_acc="float64")
    assert got.dtype == np.float32
    _close(got, _pairs(_f, x.astype(float), y.astype(float)).sum(1), 1e-6)


# consumers of wide values, pieces, hoisted wide work ---------------------------------------------------------
def _consumer_cases():
    x, y, p = _data((M, D), (N, D), (D,), seed=7)
    X, Y, P = kn.Vi(x), kn.Vj(y), kn.Pm(p)
    xe, ye, pe = x[:, None], y[None], p
    d = xe - ye
    return {
        # loop consumers of a j-dependent wide value, fused in one loop (sum, max) or not (max feeds the sum)
        "sum_and_max": ((X - Y).exp().sum() + (X - Y).exp().max(),
                        np.exp(d).sum(-1, keepdims=True) + np.exp(d).max(-1, keepdims=True)),
        "softmax_like": (((X - Y) - (X - Y).max()).exp().sum(),
                         np.exp(d - d.max(-1, keepdims=True)).sum(-1, keepdims=True)),
        "sqnorm2_dot_sqdist": ((X * Y).sqnorm2() + (X.exp() | Y) + X.sqdist(Y.sin()),
                               ((xe * ye) ** 2).sum(-1, keepdims=True) + (np.exp(xe) * ye).sum(-1, keepdims=True)
                               + ((xe - np.sin(ye)) ** 2).sum(-1, keepdims=True)),
        "min_argmin_argmax": ((X * Y).min() + (X - Y).argmin() - (X + Y).argmax(),
                              (xe * ye).min(-1, keepdims=True) + np.argmin(d, -1)[..., None]
                              - np.argmax(xe + ye, -1)[..., None]),
        # j-only wide work shared by the rows; i-only and parameter-only wide work stored once per row / call
        "hoisted": ((Y.exp() * X.sin() * P.exp()).sum() + Y.sqnorm2() * X.exp().sum() + P.exp().sum(),
                    (np.exp(ye) * np.sin(xe) * np.exp(pe)).sum(-1, keepdims=True)
                    + (ye**2).sum(-1, keepdims=True) * np.exp(xe).sum(-1, keepdims=True) + np.exp(pe).sum()),
        # pieces: concat of a narrow and a wide value, extract across the seam, elem, one_hot
        "pieces": ((X.concat(Y)[D - 10 : D + 30] * Y.concat(X)[5 : 45]).sum() + (X - Y).exp().elem(30)
                   + (X.concat(Y).sum()) + (X[:3].concat(Y)).sin().sum(),
                   (np.concatenate([xe + 0 * ye, ye + 0 * xe], -1)[..., D - 10 : D + 30]
                    * np.concatenate([ye + 0 * xe, xe + 0 * ye], -1)[..., 5:45]).sum(-1, keepdims=True)
                   + np.exp(d)[..., 30:31] + xe.sum(-1, keepdims=True) + ye.sum(-1, keepdims=True)
                   + np.sin(xe[..., :3]).sum(-1, keepdims=True) + np.sin(ye).sum(-1, keepdims=True)),
        "one_hot": (((X.elem(0) * 10).abs().one_hot(D) * Y).sum(),
                    np.take_along_axis(ye + 0 * xe, np.round(np.abs(xe[..., :1] * 10)).astype(int), -1)),
    }


@pytest.mark.parametrize("name", list(_consumer_cases()))
@pytest.mark.parametrize("axis", [0, 1])
def test_consumers_of_wide_values(name, axis):
    lazy, dense = _consumer_cases()[name]
    _close(lazy.sum(axis=axis), np.broadcast_to(dense, (M, N, 1)).sum(axis=axis))


def test_wide_float32():
    x, y, b = (a.astype(np.float32) for a in _data((M, 300), (N, 300), (N, 300), seed=8))
    got = ((-(kn.Vi(x) - kn.Vj(y)) ** 2).exp().sum() * kn.Vj(b)).sum(axis=1)
    want = (np.exp(-((x[:, None].astype(float) - y[None]) ** 2)).sum(-1, keepdims=True) * b[None]).sum(1)
    _close(got, want, 2e-5)


def test_argmin_over_components_ties_and_nan():
    """The scan of the unrolled lowering: ties to the first index; NaN at component 0 wins, elsewhere loses."""
    x, y = _data((M, D), (N, D), seed=9)
    x = np.round(x * 3) / 3  # many ties
    x[1, 0] = np.nan
    x[2, 17] = np.nan
    got = (kn.Vi(x) * kn.Vj(y).abs()).argmin().sum(axis=1)
    values = x[:, None] * np.abs(y[None])
    want = _scan_arg(values, np.less).sum(1)
    assert np.array_equal(got, want)
    assert LOOP_DIM <= D


@pytest.mark.parametrize("kind", ["sum", "kmin_argkmin", "sumsoftmaxweight"])
def test_state_too_large_for_the_stack_is_taken_in_chunks(kind, monkeypatch, tmp_path):
    """Past WIDE_STATE_BYTES per row, the components are reduced chunk by chunk (one pass over j each)."""
    from keir.compiler import lower_cpu

    monkeypatch.setattr(lower_cpu, "WIDE_STATE_BYTES", 512)  # 8 components of f64 sums (8 lanes) per chunk
    monkeypatch.setenv("KEIR_CACHE_DIR", str(tmp_path))  # no artifact compiled without the patch
    x, y, w = _data((M, D), (N, D), (N, D), seed=10)
    f = _lazy_f(x, y) * 0.625  # a formula of its own: not in this process's kernel table either
    values = _pairs(_f, x, y) * 0.625
    if kind == "sum":
        reduction = f.sum(axis=1, call=False)
        assert reduction.ir("loops").count("vector.create_mask") == D // 8
        _close(reduction(), values.sum(1))
    elif kind == "kmin_argkmin":
        got_values, got_indices = f.Kmin_argKmin(2, axis=1)
        order = np.argsort(values, axis=1, kind="stable")[:, :2]
        assert np.array_equal(got_indices, order)
        _close(got_values, np.take_along_axis(values, order, 1))
    else:
        scores = (-kn.Vi(x[:, :3]).sqdist(kn.Vj(y[:, :3]))) * 0.625
        got = scores.sumsoftmaxweight(kn.Vj(w), axis=1)
        s = -((x[:, None, :3] - y[None, :, :3]) ** 2).sum(-1) * 0.625
        e = np.exp(s - s.max(1, keepdims=True))
        _close(got, (e @ w) / e.sum(1, keepdims=True))
