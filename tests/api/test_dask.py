"""keir.dask: every reduction kind over Dask arrays chunked by rows (uneven chunks, chunks of one row) equals
one keir call on the whole arrays; the threaded scheduler, a dask.distributed LocalCluster, NumPy memmaps."""

import dask
import dask.array as da
import numpy as np
import pytest

import keir.dask
from keir.compiler.partials import PARTIALS
from keir.numpy import Pm, Vi, Vj

M, N = 11, 17
rng0 = np.random.default_rng(3)
X, Y, B = rng0.standard_normal((M, 2)), rng0.standard_normal((N, 2)), rng0.standard_normal((N, 2))
S = np.array([0.8])
x, y, b, s = Vi(0, 2), Vj(1, 2), Vj(2, 2), Pm(3, 1)

REDUCTIONS = {
    "sum": ((-x.sqdist(y) * s).exp() * b).sum(axis=1),
    "sum over i": ((-x.sqdist(y)).exp() * x).sum(axis=0),
    "min": (x - y).min(axis=1),
    "max": (x.sqdist(y) * b).max(axis=1),
    "argmin": x.sqdist(y).argmin(axis=1),
    "argmax": (x - y).argmax(axis=1),
    "min_argmin": x.sqdist(y).min_argmin(axis=1),
    "max_argmax": x.sqdist(y).max_argmax(axis=1),
    "kmin": x.sqdist(y).Kmin(3, axis=1),
    "argkmin": (x - y).argKmin(4, axis=1),
    "kmin_argkmin over i": x.sqdist(y).Kmin_argKmin(2, axis=0),
    "logsumexp": (-x.sqdist(y)).logsumexp(axis=1),
    "logsumexp_weight": (-x.sqdist(y)).logsumexp(axis=1, weight=b.abs() + 0.1),
    "sumsoftmaxweight": (-x.sqdist(y)).sumsoftmaxweight(b, axis=1),
}


def _tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _used(reduction, arrays):
    """The arguments up to the largest variable index the formula uses (as its call takes them)."""
    return arrays[: 1 + max(a.index for a in reduction.lazy.arrays if hasattr(a, "index"))]


def _check(lazy_result, reduction, arrays):
    got, expected = _tuple(dask.compute(*_tuple(lazy_result))), _tuple(reduction(*arrays))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype
        if e.dtype.kind == "i":
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


def test_every_kind_has_a_case():
    assert {r.kind for r in REDUCTIONS.values()} == set(PARTIALS)


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_every_kind_over_uneven_chunks_equals_one_call(name):
    reduction = REDUCTIONS[name]
    chunked = [da.from_array(X, chunks=((1, 4, 6), 2)), da.from_array(Y, chunks=((5, 1, 8, 3), 2)),
               da.from_array(B, chunks=((9, 8), 1)), S]  # b's chunks differ from y's: rechunked like y
    with dask.config.set(scheduler="threads"):
        _check(keir.dask.reduce(reduction, *_used(reduction, chunked)), reduction, _used(reduction, (X, Y, B, S)))


def test_the_result_is_chunked_like_the_rows():
    out = keir.dask.reduce(REDUCTIONS["sum"], X, Y, B, S, chunk_rows=4)
    assert out.chunks == ((4, 4, 3), (2,))


def test_a_local_cluster_computes_the_same():
    distributed = pytest.importorskip("distributed")  # in the test extra; a plain install may lack it
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
    with cluster, distributed.Client(cluster):
        for name in ("sum", "kmin_argkmin over i", "sumsoftmaxweight"):
            arrays = _used(REDUCTIONS[name], (X, Y, B, S))
            _check(keir.dask.reduce(REDUCTIONS[name], *arrays, chunk_rows=5), REDUCTIONS[name], arrays)


def test_memmaps_are_read_chunk_by_chunk(tmp_path):
    files = []
    for name, array in (("x", X), ("y", Y), ("b", B)):
        mapped = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=np.float64, shape=array.shape)
        mapped[:] = array
        mapped.flush()
        files.append(np.load(tmp_path / f"{name}.npy", mmap_mode="r"))
    with dask.config.set(scheduler="threads"):
        _check(keir.dask.reduce(REDUCTIONS["sum"], *files, S, chunk_rows=3), REDUCTIONS["sum"], (X, Y, B, S))


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="symbolic variables"):
        keir.dask.reduce(Vi(X).sqdist(Vj(Y)).sum(axis=1, call=False), X, Y)
    with pytest.raises(ValueError, match="takes 4 arrays"):
        keir.dask.reduce(REDUCTIONS["sum"], X, Y, B)
    with pytest.raises(ValueError, match="give chunk_rows"):
        keir.dask.reduce(REDUCTIONS["sum"], X, Y, B, S)
    with pytest.raises(ValueError, match="same number of rows"):
        keir.dask.reduce(REDUCTIONS["sum"], X, Y, B[:5], S, chunk_rows=4)
    with pytest.raises(TypeError, match="parameter"):
        keir.dask.reduce(REDUCTIONS["sum"], X, Y, B, da.from_array(S), chunk_rows=4)
    with pytest.raises(ValueError, match="2-D"):
        keir.dask.reduce(REDUCTIONS["sum"], X[None], Y, B, S, chunk_rows=4)
