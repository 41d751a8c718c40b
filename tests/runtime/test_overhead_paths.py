"""The per-call fast paths (cached layouts and argument templates, the buffer-protocol data address, the
inline small call) give the same answers as the general ones, and still reject bad input."""

import numpy as np
import pytest
import torch

import keir.numpy as kn
import keir.torch as kt
from keir import kernels
from keir.compiler.pipeline import CompileOptions
from keir.dialect.node import constant, var
from keir.runtime import cpu


def _gauss(api, x, y, b):
    return ((-api.Vi(x).sqdist(api.Vj(y)) / 0.5).exp() * api.Vj(b)).sum(axis=1)


def _reference(x, y, b):
    x, y, b = (np.asarray(a, dtype=np.float64) for a in (x, y, b))
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / 0.5) @ b


def _data(m, n, d, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((m, d)).astype(dtype), rng.standard_normal((n, d)).astype(dtype),
            rng.random((n, 1)).astype(dtype))


@pytest.mark.parametrize("n", [1, 5, 16, 17, 100, 1365, 1366, 3000])
@pytest.mark.parametrize("d", [2, 3, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_blocks_small_and_large_paths(n, d, dtype):
    """Both layouts (the cached scatter for small arrays, strided copies for large ones) agree with the
    definition, for C-ordered, Fortran-ordered and strided inputs."""
    lanes = 16 if dtype == np.float32 else 8
    array = np.random.default_rng(n * d).standard_normal((n, d)).astype(dtype)
    full, rest = divmod(n, lanes)
    want = np.zeros((full + (rest > 0), d, lanes), dtype)
    for j in range(n):
        want[j // lanes, :, j % lanes] = array[j]
    for view in (array, np.asfortranarray(array), array[::-1][::-1]):
        got = cpu._column_blocks(view, lanes)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_repeated_calls_are_bitwise_identical_across_layouts():
    x, y, b = _data(100, 100, 3)
    first = _gauss(kn, x, y, b)
    np.testing.assert_allclose(first, _reference(x, y, b), rtol=1e-5, atol=1e-6)
    for _ in range(3):
        np.testing.assert_array_equal(_gauss(kn, x, y, b), first)
    # non-contiguous, Fortran-ordered and read-only inputs take other paths to the same bits
    xf, yf = np.asfortranarray(x), np.asfortranarray(y)
    wide = np.zeros((100, 6), np.float32)
    wide[:, ::2] = x
    readonly = [a.copy() for a in (x, y, b)]
    for a in readonly:
        a.setflags(write=False)
    np.testing.assert_array_equal(_gauss(kn, xf, yf, b), first)
    np.testing.assert_array_equal(_gauss(kn, wide[:, ::2], y, b), first)
    np.testing.assert_array_equal(_gauss(kn, *readonly), first)
    np.testing.assert_array_equal(_gauss(kn, np.broadcast_to(x, (100, 3)), y, b), first)


def test_torch_front_matches_numpy():
    x, y, b = _data(100, 100, 3)
    want = _gauss(kn, x, y, b)
    got = _gauss(kt, *(torch.from_numpy(a) for a in (x, y, b)))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), want)
    # a tensor that requires grad goes through autograd, with the same forward
    xg = torch.from_numpy(x).requires_grad_()
    out = _gauss(kt, xg, torch.from_numpy(y), torch.from_numpy(b))
    np.testing.assert_array_equal(out.detach().numpy(), want)
    out.sum().backward()
    assert xg.grad is not None and xg.grad.shape == (100, 3)


def test_kernel_lookup_with_and_without_options():
    x, y, b = _data(50, 60, 3)
    reduction = ((-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp() * kn.Vj(b)).sum(axis=1, call=False)
    arrays = [x, y, b]
    default = kernels.cpu_kernel(reduction.root, reduction.dtype)
    assert kernels.cpu_kernel(reduction.root, reduction.dtype) is default  # found, not rebuilt
    explicit = kernels.cpu_kernel(reduction.root, reduction.dtype, CompileOptions())
    np.testing.assert_array_equal(default(arrays, 50, 60)[0], explicit(arrays, 50, 60)[0])


def test_interned_nodes_of_the_fast_constructors():
    assert var(1, "j", 3) is var(1, "j", 3)
    assert constant(0.5) is constant(0.5)
    assert var(1, "j", 3).attr("index") == 1 and var(1, "j", 3).dim == 3
    with pytest.raises(ValueError, match="category"):
        var(0, "q", 3)


def test_numbers_of_every_kind_lift_and_bools_do_not():
    x, y, b = _data(20, 30, 3, np.float64)
    want = ((kn.Vi(x).sqdist(kn.Vj(y)) * 2.0).exp() * kn.Vj(b)).sum(axis=1)
    for two in (2, np.float64(2.0), np.float32(2.0), np.int64(2)):
        got = ((kn.Vi(x).sqdist(kn.Vj(y)) * two).exp() * kn.Vj(b)).sum(axis=1)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="cannot combine a LazyTensor with bool"):
        kn.Vi(x) * True


def test_bad_input_still_raises_on_the_fast_paths():
    x, y, b = _data(100, 100, 3)
    _gauss(kn, x, y, b)  # the kernel is loaded: what follows may take every cached path
    with pytest.raises(TypeError, match="mixed dtypes"):
        _gauss(kn, x, y, b.astype(np.float64))
    with pytest.raises(TypeError, match="float16 and bfloat16 arrays.*got int64"):
        _gauss(kn, x, y, b.astype(np.int64))
    with pytest.raises(ValueError, match=r"same length; got shapes \[\(100, 3\), \(99, 1\)\]"):
        _gauss(kn, x, y, b[:99])
    with pytest.raises(Exception, match="dimensions 3 and 2"):
        _gauss(kn, x, y[:, :2], b)
    with pytest.raises(ValueError, match="Vj needs a 2D array"):
        _gauss(kn, x, y[0], b)
    with pytest.raises(TypeError, match="needs a numpy array"):
        _gauss(kn, x, torch.from_numpy(y), b)
    with pytest.raises(TypeError, match="needs a torch array"):
        _gauss(kt, torch.from_numpy(x), y, torch.from_numpy(b))
    out = np.empty((99, 1), np.float32)
    with pytest.raises(ValueError, match="out has shape"):
        ((-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp() * kn.Vj(b)).sum(axis=1, out=out)


def test_bad_thread_count_from_the_environment_raises_where_threads_are_used(monkeypatch):
    monkeypatch.setenv("KEIR_NUM_THREADS", "zero")
    x, y, b = _data(1000, 1000, 3)
    with pytest.raises(ValueError, match="KEIR_NUM_THREADS"):
        _gauss(kn, x, y, b)
    monkeypatch.setenv("KEIR_NUM_THREADS", "2")
    threaded = _gauss(kn, x, y, b)
    np.testing.assert_allclose(threaded, _reference(x, y, b), rtol=1e-5, atol=1e-6)
    small = _gauss(kn, *_data(10, 10, 3))  # small calls run inline
    assert small.shape == (10, 1)
