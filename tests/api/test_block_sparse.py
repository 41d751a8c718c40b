"""Block-sparse reductions (pykeops' `ranges`) against a dense, masked float64 reference.

The reference (tests/support/block_sparse.py, and torch autograd of the masked dense form for gradients) is
written without keir; the ranges are random: clusters of odd sizes, intervals that start and end inside a vector
of lanes, several intervals per block of rows, empty ones, rows no range covers.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.block_sparse import dense_reduction, mask_of, random_ranges

import keir.numpy as kn
from keir.numpy.cluster import from_matrix
from keir.ranges import RangesError

KINDS = ("sum", "min", "max", "argmin", "argmax", "min_argmin", "max_argmax", "kmin", "argkmin", "kmin_argkmin",
         "logsumexp", "logsumexp_weight", "sumsoftmaxweight")


def _keir(kind: str, K, axis: int, ranges, weight, k: int = 3):
    if kind in ("kmin", "argkmin", "kmin_argkmin"):
        return getattr(K, {"kmin": "Kmin", "argkmin": "argKmin", "kmin_argkmin": "Kmin_argKmin"}[kind])(
            k, axis=axis, ranges=ranges)
    if kind == "logsumexp_weight":
        return K.logsumexp(axis=axis, weight=weight, ranges=ranges)
    if kind == "sumsoftmaxweight":
        return K.sumsoftmaxweight(weight, axis=axis, ranges=ranges)
    return getattr(K, kind)(axis=axis, ranges=ranges)


def _compare(got, want, dtype) -> None:
    got, want = (got if isinstance(got, tuple) else (got,)), (want if isinstance(want, tuple) else (want,))
    for g, w in zip(got, want):
        g, w = np.asarray(g, dtype=np.float64).reshape(w.shape), np.asarray(w, dtype=np.float64)
        tolerance = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_every_reduction_kind_against_a_masked_dense_reference(kind, dtype):
    rng = np.random.default_rng(hash((kind, dtype.__name__)) % 2**32)
    m, n = 123, 211
    x, y = rng.standard_normal((m, 3)), rng.standard_normal((n, 3))
    ranges, mask = random_ranges(rng, m, n)
    terms = ((x[:, None] - y[None]) ** 2).sum(-1, keepdims=True)
    for axis in (1, 0):
        weight_rows = n if axis == 1 else m
        w = rng.random((weight_rows, 1)) + 0.5
        K = kn.Vi(x.astype(dtype)).sqdist(kn.Vj(y.astype(dtype)))
        if kind == "logsumexp" or kind.startswith(("logsumexp", "sumsoftmax")):
            K = -K
            signed = -terms
        else:
            signed = terms
        weight = (kn.Vj if axis == 1 else kn.Vi)(w.astype(dtype))
        with np.errstate(divide="ignore", invalid="ignore"):  # log 0 and 0 / 0 on the rows with no terms
            want = dense_reduction(kind, signed, mask, axis, weight=w)
        _compare(_keir(kind, K, axis, ranges, weight), want, dtype)


@pytest.mark.parametrize("formula", ["gaussian", "wide", "wide_root"])
@pytest.mark.parametrize("sum_scheme", ["direct_sum", "block_sum", "kahan_scheme"])
def test_sums_of_every_loop_shape(formula, sum_scheme):
    """The loop nest's variants: narrow, a wide product (D >= 8), a wide formula (its state in memory), each
    with every summation scheme; sizes that leave partial vectors everywhere."""
    rng = np.random.default_rng(7)
    m, n, d = 77, 1003, 3 if formula == "gaussian" else 20
    x, y, b = rng.standard_normal((m, d)), rng.standard_normal((n, d)), rng.standard_normal((n, 17))
    ranges, mask = random_ranges(rng, m, n, density=0.3)
    gauss = np.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / d)
    K = (-kn.Vi(x).sqdist(kn.Vj(y)) / d).exp()
    if formula == "wide_root":
        K, terms = K * kn.Vj(b), gauss[..., None] * b[None]
    else:
        terms = gauss[..., None]
    got = K.sum(axis=1, ranges=ranges, sum_scheme=sum_scheme)
    np.testing.assert_allclose(got, dense_reduction("sum", terms, mask, 1), rtol=1e-10, atol=1e-10)


def test_ranges_attribute_transpose_genred_and_batches():
    rng = np.random.default_rng(3)
    m, n = 40, 57
    x, y, b = rng.random((m, 2)), rng.random((n, 2)), rng.random((n, 1))
    ranges, mask = random_ranges(rng, m, n)
    K = (-kn.Vi(x).sqdist(kn.Vj(y))).exp()
    dense = np.exp(-((x[:, None] - y[None]) ** 2).sum(-1)) * mask
    K.ranges = ranges
    np.testing.assert_allclose(K @ b, dense @ b, rtol=1e-12)  # carried from K to K * b
    c = rng.random((m, 1))
    np.testing.assert_allclose(K.t() @ c, dense.T @ c, rtol=1e-12)  # .t() swaps the halves
    genred = kn.Genred("Exp(-SqDist(x,y)) * b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], reduction_op="Sum", axis=1)
    np.testing.assert_allclose(genred(x, y, b, ranges=ranges), dense @ b, rtol=1e-12)
    genred0 = kn.Genred("Exp(-SqDist(x,y))", ["x = Vi(2)", "y = Vj(2)"], reduction_op="Sum", axis=0)
    np.testing.assert_allclose(genred0(x, y, ranges=ranges), dense.sum(0)[:, None], rtol=1e-12)
    # batch dimensions with ranges: the same blocks in every batch entry (KeOps cannot combine them)
    xb, yb = rng.random((3, m, 1, 2)), rng.random((3, 1, n, 2))
    Kb = (-kn.LazyTensor(xb).sqdist(kn.LazyTensor(yb))).exp()
    got = Kb.sum(axis=2, ranges=ranges)
    want = (np.exp(-((xb - yb) ** 2).sum(-1)) * mask).sum(2)[..., None]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_solve_and_kernel_solve_with_ranges():
    """(alpha Id + K) a = b with K block-sparse (symmetric blocks): the masked dense system's solution."""
    rng = np.random.default_rng(4)
    m = 90
    x, b = rng.random((m, 2)), rng.random((m, 1))
    clusters = np.array([[0, 20], [20, 51], [51, 90]])
    keep = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    ranges, mask = from_matrix(clusters, clusters, keep), mask_of(clusters, clusters, keep, m, m)
    dense = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1)) * mask
    want = np.linalg.solve(0.5 * np.eye(m) + dense, b)
    K = (-kn.Vi(x).sqdist(kn.Vj(x))).exp()
    np.testing.assert_allclose(K.solve(b, alpha=0.5, eps=1e-12, ranges=ranges), want, rtol=1e-8, atol=1e-10)
    solver = kn.KernelSolve("Exp(-SqDist(x,y)) * b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], "b", axis=1)
    np.testing.assert_allclose(solver(x, x, b, alpha=0.5, eps=1e-12, ranges=ranges), want, rtol=1e-8, atol=1e-10)


def test_threads_share_the_work_of_large_calls():
    rng = np.random.default_rng(11)
    m, n = 3000, 2000
    x, y = rng.random((m, 3)), rng.random((n, 3))
    ranges, mask = random_ranges(rng, m, n, density=0.5)
    K = (-kn.Vi(x).sqdist(kn.Vj(y))).exp()
    dense = np.exp(-((x[:, None] - y[None]) ** 2).sum(-1)) * mask
    for threads in (1, 2, 3):
        np.testing.assert_allclose(K.sum(axis=1, ranges=ranges, threads=threads)[:, 0], dense.sum(1), rtol=1e-12)


def _valid():
    return from_matrix(np.array([[0, 2], [2, 4]]), np.array([[0, 3], [3, 5]]), np.array([[True, False], [True, True]]))


@pytest.mark.parametrize("damage, message", [
    (lambda r: r[:5], "6-tuple"),
    (lambda r: (r[0].astype(float), *r[1:]), "must hold integers"),
    (lambda r: (np.array([[0, 2, 0], [2, 4, 0]]), *r[1:]), r"shape \(count, 2\)"),
    (lambda r: (np.array([[3, 2], [2, 4]]), *r[1:]), r"ranges_i\[0\] = \[3, 2\] is not a \[start, end\) range"),
    (lambda r: (r[0], np.array([2, 1]), *r[2:]), "non-decreasing"),
    (lambda r: (r[0], r[1], np.array([[0, 3], [0, 2], [3, 5]]), *r[3:]), "different blocks"),
])
def test_malformed_ranges_are_clear_errors(damage, message):
    x = np.random.rand(4, 1)
    K = kn.Vi(x).sqdist(kn.Vj(np.random.rand(5, 1)))
    with pytest.raises(RangesError, match=message):
        K.sum(axis=1, ranges=damage(_valid()))
    with pytest.raises(RangesError, match=message):
        K.ranges = damage(_valid())


def test_overlapping_or_out_of_bounds_ranges_are_clear_errors():
    x, y = np.random.rand(4, 1), np.random.rand(5, 1)
    K = kn.Vi(x).sqdist(kn.Vj(y))
    overlapping_rows = from_matrix(np.array([[0, 3], [2, 4]]), np.array([[0, 5]]), np.array([[True], [True]]))
    with pytest.raises(RangesError, match=r"ranges_i has overlapping ranges \[0, 3\] and \[2, 4\]"):
        K.sum(axis=1, ranges=overlapping_rows)
    twice = from_matrix(np.array([[0, 4]]), np.array([[0, 3], [2, 5]]), np.array([[True, True]]))
    with pytest.raises(RangesError, match="redranges_j has overlapping ranges"):
        K.sum(axis=1, ranges=twice)
    too_long = from_matrix(np.array([[0, 4]]), np.array([[0, 6]]), np.array([[True]]))
    with pytest.raises(RangesError, match=r"redranges_j\[0\] = \[0, 6\] ends past 5"):
        K.sum(axis=1, ranges=too_long)
    with pytest.raises(ValueError, match="different block-sparse ranges"):
        a, b = kn.Vi(x), kn.Vj(y)
        a.ranges, b.ranges = _valid(), too_long
        a * b


def test_gradients_of_any_order_are_block_sparse():
    """Gradients with respect to i-variables (reductions over j) and j-variables (over i: the transposed half),
    and a second derivative, against torch autograd of the masked dense float64 form."""
    torch = pytest.importorskip("torch")
    import keir.torch as kt

    rng = np.random.default_rng(5)
    m, n = 50, 70
    ranges, mask = random_ranges(rng, m, n)
    x, y, b = (torch.tensor(rng.standard_normal(s), requires_grad=True) for s in ((m, 2), (n, 2), (n, 3)))
    dense_mask = torch.tensor(mask)

    def dense(kind):
        d2 = ((x[:, None] - y[None]) ** 2).sum(-1)
        if kind == "sum":
            return (torch.exp(-d2) * dense_mask) @ b
        if kind == "min":
            return torch.where(dense_mask, d2, torch.inf).min(1).values[:, None]
        f = torch.where(dense_mask, -d2, -torch.inf)
        return torch.logsumexp(f, 1)[:, None]

    def sparse(kind):
        D = kt.Vi(x).sqdist(kt.Vj(y))
        if kind == "sum":
            return ((-D).exp() * kt.Vj(b)).sum(axis=1, ranges=ranges)
        if kind == "min":
            return D.min(axis=1, ranges=ranges)
        return (-D).logsumexp(axis=1, ranges=ranges)

    for kind in ("sum", "min", "logsumexp"):
        got, want = sparse(kind), dense(kind)
        finite = torch.isfinite(want)
        assert torch.equal(finite, torch.isfinite(got))
        cotangent = torch.where(finite, torch.tensor(rng.standard_normal(want.shape)), 0.0)
        inputs = (x, y, b) if kind == "sum" else (x, y)
        for g, w in zip(torch.autograd.grad(got, inputs, cotangent, create_graph=True),
                        torch.autograd.grad(want, inputs, cotangent, create_graph=True)):
            torch.testing.assert_close(g, torch.nan_to_num(w), rtol=1e-9, atol=1e-9)
    # second order: d/dy of <d/dx sum, v>
    v = torch.tensor(rng.standard_normal((m, 2)))
    (gx,) = torch.autograd.grad(sparse("sum").sum(), x, create_graph=True)
    (wx,) = torch.autograd.grad(dense("sum").sum(), x, create_graph=True)
    torch.testing.assert_close(torch.autograd.grad((gx * v).sum(), y)[0], torch.autograd.grad((wx * v).sum(), y)[0],
                               rtol=1e-9, atol=1e-9)


def test_torch_cluster_helpers_and_multiscale_sinkhorn_as_ot_libraries_write_it():
    """Cluster, sort, centroids, from_matrix, then `ranges=` on generic_logsumexp, as geomloss' multiscale
    Sinkhorn does: with every pair of clusters kept it equals the dense result; with a truncation, the blocks
    left out change it by no more than their (tiny) weight."""
    torch = pytest.importorskip("torch")
    import keir.torch as kt
    from keir.torch.cluster import cluster_ranges_centroids, from_matrix, grid_cluster, sort_clusters

    rng = np.random.default_rng(2)
    x = torch.tensor(rng.random((600, 2)))
    y = torch.tensor(rng.random((500, 2)) * 0.8 + 0.1)
    a, b = torch.full((600,), 1 / 600, dtype=torch.float64), torch.full((500,), 1 / 500, dtype=torch.float64)
    x_lab, y_lab = grid_cluster(x, 0.1), grid_cluster(y, 0.1)
    assert x_lab.dtype == torch.int32 and int(x_lab.max()) + 1 == len(torch.unique(x_lab))
    x_ranges, x_c, x_w = cluster_ranges_centroids(x, x_lab, weights=a)
    y_ranges, y_c, y_w = cluster_ranges_centroids(y, y_lab, weights=b)
    (x, a), x_lab = sort_clusters((x, a), x_lab)
    (y, b), y_lab = sort_clusters((y, b), y_lab)
    assert torch.all(x_lab[x_ranges[:, 0]] == torch.arange(len(x_ranges), dtype=torch.int32))
    torch.testing.assert_close(x_c[x_lab.long()].sub(x).abs().max(dim=0).values <= 0.1, torch.tensor([True, True]))
    torch.testing.assert_close(x_w.sum(), torch.tensor(1.0, dtype=torch.float64))
    eps = 0.01
    softmin = kt.generic_logsumexp("( B - SqDist(X,Y) / E )", "A = Vi(1)", "X = Vi(2)", "Y = Vj(2)", "B = Vj(1)",
                                   "E = Pm(1)")
    cost = ((x_c[:, None] - y_c[None]) ** 2).sum(-1)

    def sinkhorn(ranges, iterations=30):
        f, g = torch.zeros(600, 1, dtype=torch.float64), torch.zeros(500, 1, dtype=torch.float64)
        e = torch.tensor([eps], dtype=torch.float64)
        swapped = None if ranges is None else (*ranges[3:], *ranges[:3])
        for _ in range(iterations):
            f = -eps * softmin(x, y, (g / eps + b.log()[:, None]), e, ranges=ranges)
            g = -eps * kt.generic_logsumexp("( B - SqDist(X,Y) / E )", "A = Vi(1)", "X = Vi(2)", "Y = Vj(2)",
                                            "B = Vj(1)", "E = Pm(1)")(y, x, (f / eps + a.log()[:, None]), e,
                                                                      ranges=swapped)
        return f, g

    dense_f, dense_g = sinkhorn(None)
    everything = from_matrix(x_ranges, y_ranges, torch.ones_like(cost, dtype=torch.bool))
    f, g = sinkhorn(everything)
    torch.testing.assert_close(f, dense_f, rtol=1e-10, atol=1e-10)
    # pairs of cells whose centroids are 0.5 apart hold points at least 0.36 apart: exp(-0.36^2 / eps) ~ 2e-6
    truncated = from_matrix(x_ranges, y_ranges, cost < 0.5**2)
    kept = float((cost < 0.5**2).double().mean())
    assert 0.05 < kept < 0.8
    f, g = sinkhorn(truncated)
    torch.testing.assert_close(f, dense_f, rtol=0, atol=1e-6)


def test_cluster_helpers_give_pykeops_results():
    """The examples of pykeops' docstrings, on NumPy and on torch."""
    torch = pytest.importorskip("torch")
    import keir.numpy.cluster as nc
    import keir.torch.cluster as tc

    x = np.array([[0.0], [0.1], [0.9], [0.05], [0.5]])
    assert nc.grid_cluster(x, 0.2).tolist() == [0, 0, 2, 0, 1]
    assert tc.grid_cluster(torch.tensor(x), 0.2).tolist() == [0, 0, 2, 0, 1]
    points, labels = np.array([[0.0], [5.0], [0.4], [0.3], [2.0]]), np.array([0, 2, 0, 0, 1])
    for cluster, wrap in ((nc, np.asarray), (tc, torch.tensor)):
        sorted_points, sorted_labels = cluster.sort_clusters(wrap(points), wrap(labels))
        assert np.asarray(sorted_points).ravel().tolist() == [0.0, 0.4, 0.3, 2.0, 5.0]
        assert np.asarray(cluster.cluster_ranges(sorted_labels)).tolist() == [[0, 3], [3, 4], [4, 5]]
        centroids = cluster.cluster_centroids(wrap(np.array([[0.0], [1.0], [4.0], [5.0], [6.0]])),
                                              wrap(np.array([0, 0, 1, 1, 1])),
                                              weights=wrap(np.array([0.5, 0.5, 2.0, 1.0, 1.0])))
        np.testing.assert_allclose(np.asarray(centroids).ravel(), [0.5, 4.75])
        ranges, centroids, weights = cluster.cluster_ranges_centroids(
            wrap(np.array([[0.0], [0.5], [1.0], [2.0], [3.0]])), wrap(np.array([0, 0, 1, 1, 1])),
            weights=wrap(np.array([1.0, 0.5, 1.0, 1.0, 10.0])))
        assert np.asarray(ranges).tolist() == [[0, 2], [2, 5]]
        np.testing.assert_allclose(np.asarray(centroids).ravel(), [1 / 3 * 0.5, 2.75])
        np.testing.assert_allclose(np.asarray(weights), [1.5, 12.0])
        result = cluster.from_matrix(wrap(np.array([[2, 5], [7, 12]])), wrap(np.array([[1, 4], [4, 9], [20, 30]])),
                                     wrap(np.array([[True, True, False], [False, True, False]])))
        assert [np.asarray(r).tolist() for r in result] == [
            [[2, 5], [7, 12]], [2, 3], [[1, 4], [4, 9], [4, 9]],
            [[1, 4], [4, 9], [20, 30]], [1, 3, 3], [[2, 5], [2, 5], [7, 12]]]
        assert cluster.swap_axes(None) is None and cluster.swap_axes(tuple(range(6))) == (3, 4, 5, 0, 1, 2)


@pytest.mark.parametrize("spelling", ["int32", "strided", "torch", "lists"])
def test_ranges_of_every_spelling(spelling):
    """int32 arrays, non-contiguous views, torch tensors and nested lists give the same result."""
    rng = np.random.default_rng(12)
    m, n = 41, 67
    x, y = rng.random((m, 2)), rng.random((n, 2))
    ranges, mask = random_ranges(rng, m, n)
    if spelling == "int32":
        ranges = tuple(r.astype(np.int32) for r in ranges)
    elif spelling == "strided":
        ranges = tuple(np.repeat(r, 2, axis=0)[::2] for r in ranges)
        assert not ranges[0].flags.c_contiguous
    elif spelling == "torch":
        torch = pytest.importorskip("torch")
        ranges = tuple(torch.from_numpy(r) for r in ranges)
    else:
        ranges = tuple(r.tolist() for r in ranges)
    got = kn.Vi(x).sqdist(kn.Vj(y)).sum(axis=1, ranges=ranges)
    want = (((x[:, None] - y[None]) ** 2).sum(-1) * mask).sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_no_block_kept_gives_the_reduction_of_no_terms():
    x, y = np.random.rand(5, 2), np.random.rand(7, 2)
    nothing = from_matrix(np.array([[0, 5]]), np.array([[0, 7]]), np.array([[False]]))
    no_ranges = tuple(np.zeros((0, 2), dtype=int) if k % 3 != 1 else np.zeros(0, dtype=int) for k in range(6))
    D = kn.Vi(x).sqdist(kn.Vj(y))
    assert np.array_equal(D.sum(axis=1, ranges=nothing), np.zeros((5, 1)))
    assert np.array_equal(D.argmin(axis=1, ranges=nothing), np.full((5, 1), -1))
    assert np.array_equal(D.max(axis=0, ranges=no_ranges), np.full((7, 1), -np.inf))
