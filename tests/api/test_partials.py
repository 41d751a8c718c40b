"""The merge algebra of keir.compiler.partials: every reduction kind cut at random places of its reduced axis
(pieces of one row included), the pieces' states merged, against the unsplit keir result and a dense NumPy
float64 reference."""

import numpy as np
import pytest
import torch

from keir import sharding
from keir.compiler.partials import PARTIALS, merge_all, partial
from keir.numpy import Vi, Vj

M, N = 7, 12
rng0 = np.random.default_rng(0)
X, Y = rng0.standard_normal((M, 2)), rng0.standard_normal((N, 2))
B, W = rng0.standard_normal((N, 2)), rng0.random((N, 1)) + 0.1
SQ = ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1)  # (M, N) float64
DIFF = X[:, None, :] - Y[None, :, :]  # (M, N, 2)


def _kmin(values, k):  # values (M, N[, D]) -> sorted K smallest along N, ties by index (stable sort)
    order = np.argsort(values, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(values, order, axis=1), order


def _softmax(f, g):
    e = np.exp(f - f.max(1, keepdims=True))
    return (e[..., None] * g[None]).sum(1) / e.sum(1, keepdims=True)


# name: (the reduction, its dense float64 reference)
CASES = {
    "sum": (lambda: ((-Vi(X).sqdist(Vj(Y))).exp() * Vj(B)).sum(axis=1, call=False),
            lambda: np.exp(-SQ) @ B),
    "sum over i": (lambda: ((-Vi(X).sqdist(Vj(Y))).exp()).sum(axis=0, call=False),
                   lambda: np.exp(-SQ).sum(0)[:, None]),
    "min": (lambda: (Vi(X) - Vj(Y)).min(axis=1, call=False), lambda: DIFF.min(1)),
    "max": (lambda: Vi(X).sqdist(Vj(Y)).max(axis=1, call=False), lambda: SQ.max(1, keepdims=True)),
    "argmin": (lambda: Vi(X).sqdist(Vj(Y)).argmin(axis=1, call=False), lambda: SQ.argmin(1)[:, None]),
    "argmax": (lambda: (Vi(X) - Vj(Y)).argmax(axis=1, call=False), lambda: DIFF.argmax(1)),
    "min_argmin": (lambda: Vi(X).sqdist(Vj(Y)).min_argmin(axis=1, call=False),
                   lambda: (SQ.min(1, keepdims=True), SQ.argmin(1)[:, None])),
    "max_argmax": (lambda: Vi(X).sqdist(Vj(Y)).max_argmax(axis=1, call=False),
                   lambda: (SQ.max(1, keepdims=True), SQ.argmax(1)[:, None])),
    "kmin": (lambda: Vi(X).sqdist(Vj(Y)).Kmin(4, axis=1, call=False), lambda: _kmin(SQ, 4)[0]),
    "argkmin vector": (lambda: (Vi(X) - Vj(Y)).argKmin(3, axis=1, call=False), lambda: _kmin(DIFF, 3)[1]),
    "kmin_argkmin": (lambda: Vi(X).sqdist(Vj(Y)).Kmin_argKmin(5, axis=1, call=False), lambda: _kmin(SQ, 5)),
    "argkmin over i": (lambda: Vi(X).sqdist(Vj(Y)).argKmin(2, axis=0, call=False), lambda: _kmin(SQ.T, 2)[1]),
    "logsumexp": (lambda: (-Vi(X).sqdist(Vj(Y))).logsumexp(axis=1, call=False),
                  lambda: np.log(np.exp(-SQ).sum(1, keepdims=True))),
    "logsumexp_weight": (lambda: (-Vi(X).sqdist(Vj(Y))).logsumexp(axis=1, weight=Vj(W), call=False),
                         lambda: np.log(np.exp(-SQ) @ W)),
    "sumsoftmaxweight": (lambda: (-Vi(X).sqdist(Vj(Y))).sumsoftmaxweight(Vj(B), axis=1, call=False),
                         lambda: _softmax(-SQ, B)),
}


def _tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _random_pieces(rng, count):
    cuts = np.sort(rng.choice(np.arange(1, count), size=rng.integers(1, count - 1), replace=False))
    return [(int(a), int(b)) for a, b in zip([0, *cuts], [*cuts, count])]


def test_every_kind_has_a_case():
    assert {sharding.over(build(), build().lazy.arrays).kind for build, _ in CASES.values()} == set(PARTIALS)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(CASES))
def test_random_pieces_merge_to_the_whole(name, seed):
    build, dense = CASES[name]
    reduction = build()
    rng = np.random.default_rng(seed)
    count = sharding.rows_of(reduction, sharding.reduced_category(reduction))
    pieces = [(0, 1), (1, count)] if seed == 0 else _random_pieces(rng, count)  # seed 0: a piece of one row
    merged = _tuple(sharding.merge_pieces(reduction, pieces))
    whole, reference = _tuple(reduction()), _tuple(dense())
    for got, unsplit, expected in zip(merged, whole, reference):
        assert got.shape == unsplit.shape == expected.shape
        if got.dtype.kind == "i":  # indices: exact (ties have probability zero with these data)
            np.testing.assert_array_equal(got, unsplit)
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, unsplit, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_ties_go_to_the_smaller_index_whatever_the_order_of_the_pieces():
    form = partial("min_argmin")
    late, early = (np.array([[1.0]]), np.array([[9]])), (np.array([[1.0]]), np.array([[2]]))
    for a, b in ((late, early), (early, late)):
        assert form.merge(a, b)[1][0, 0] == 2
    kmin = partial("kmin_argkmin")
    a = (np.array([[0.5, 1.0, np.inf]]), np.array([[7, 8, -1]]))  # -1: fewer than K terms
    b = (np.array([[1.0, np.inf, np.inf]]), np.array([[3, -1, -1]]))
    values, indices = kmin.merge(a, b, k=3)
    np.testing.assert_array_equal(values, [[0.5, 1.0, 1.0]])
    np.testing.assert_array_equal(indices, [[7, 3, 8]])


def test_an_all_minus_infinity_softmax_piece_contributes_nothing():
    form = partial("sumsoftmaxweight")
    empty = (np.array([[-np.inf]]), np.array([[np.nan]]))
    full = (np.array([[0.3]]), np.array([[2.5]]))
    assert form.merge(empty, full)[1][0, 0] == 2.5


def test_merges_of_torch_states_keep_the_graph():
    form = partial("logsumexp")
    a = torch.tensor([[0.1]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[0.7]], dtype=torch.float64, requires_grad=True)
    (total,) = merge_all(form, [(a,), (b,)])
    total.sum().backward()
    np.testing.assert_allclose(a.grad + b.grad, [[1.0]])  # the softmax weights of the two pieces
    np.testing.assert_allclose(b.grad, np.exp(0.7) / (np.exp(0.1) + np.exp(0.7)))


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="no partial form for reduction kind 'median'"):
        partial("median")
    with pytest.raises(ValueError, match="needs k"):
        partial("kmin").merge((np.ones((1, 1)), np.zeros((1, 1))), (np.ones((1, 1)), np.zeros((1, 1))))
    with pytest.raises(ValueError, match="has 2 entries"):
        partial("argmin").merge((np.ones(1),), (np.ones(1),))
    reduction = CASES["sum"][0]()
    with pytest.raises(ValueError, match="tile 0..12"):
        sharding.merge_pieces(reduction, [(0, 5), (6, 12)])
    with pytest.raises(ValueError, match="tile 0..12"):
        sharding.merge_pieces(reduction, [(0, 5)])
    with pytest.raises(ValueError, match="block-sparse"):
        sharding.check_shardable(Vi(X).sqdist(Vj(Y)).sum(axis=1, call=False, ranges=_dense_ranges()))


def _dense_ranges():
    rows, columns, one = np.array([[0, M]]), np.array([[0, N]]), np.array([1])
    return rows, one, columns, columns, one, rows  # one block: all of i against all of j


def test_bounds_cut_into_nearly_equal_runs():
    assert sharding.bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert sharding.bounds(2, 4) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="at least 1"):
        sharding.bounds(5, 0)


def test_batched_reductions_merge_along_their_rows():
    from keir.numpy import LazyTensor

    rng = np.random.default_rng(2)
    x, y, b = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 8, 3)), rng.standard_normal((1, 8, 1))
    x_i, y_j = LazyTensor(x[:, :, None, :]), LazyTensor(y[:, None, :, :])
    for reduction in (((-x_i.sqdist(y_j)).exp() * LazyTensor(b[:, None, :, :])).sum(axis=2, call=False),
                      x_i.sqdist(y_j).Kmin_argKmin(3, axis=2, call=False)):
        assert reduction.batch_shape == (2,)
        for got, expected in zip(_tuple(sharding.merge_pieces(reduction, [(0, 1), (1, 5), (5, 8)])),
                                 _tuple(reduction())):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
