"""Batch dimensions with NumPy broadcasting, and the rest of the LazyTensor surface (shape, .t(), str, out=)."""

import numpy as np
import pytest
import torch
from support.reference import relative_error

import keir.numpy as kn
import keir.torch as kt


def _gauss_dense(x, y, p):
    return np.exp(-((x - y) ** 2).sum(-1, keepdims=True) * p)


@pytest.mark.parametrize("x_shape,y_shape,p_shape", [
    ((3, 5, 1, 2), (1, 1, 7, 2), (1, 1, 1, 1)),          # batch on i only
    ((3, 5, 1, 2), (3, 1, 7, 2), (3, 1, 1, 1)),          # parameters with batch dimensions
    ((2, 1, 5, 1, 2), (1, 4, 1, 7, 2), (2, 4, 1, 1, 1)),  # successive singleton dimensions
    ((1, 1, 5, 1, 2), (2, 3, 1, 7, 2), (1, 3, 1, 1, 1)),
])
def test_batch_broadcasting(x_shape, y_shape, p_shape):
    rng = np.random.default_rng(len(x_shape))
    x, y, p = rng.random(x_shape), rng.random(y_shape), rng.random(p_shape)
    K = (-kn.LazyTensor(x).sqdist(kn.LazyTensor(y)) * kn.LazyTensor(p)).exp()
    dense = _gauss_dense(x, y, p)
    assert K.nbatchdims == len(x_shape) - 3
    assert K.full_shape == dense.shape[:-1] + (1,) and K.shape == dense.shape[:-1]  # pykeops drops a trailing 1
    nb = K.nbatchdims  # as in pykeops, a reduction's axis counts the batch dimensions
    assert relative_error(K.sum(axis=nb + 1), dense.sum(-2)) < 1e-14
    assert relative_error(K.sum(axis=nb), dense.sum(-3)) < 1e-14
    values, indices = K.max_argmax(axis=nb + 1)  # (-1 is the vector dimension in pykeops, not j)
    assert np.array_equal(indices[..., 0], dense[..., 0].argmax(-1))
    assert relative_error(values, dense.max(-2)) < 1e-14


def test_batch_errors():
    x, y = np.ones((3, 5, 1, 2)), np.ones((4, 1, 7, 2))
    with pytest.raises(ValueError, match="batch dimensions of the variables do not broadcast"):
        kn.LazyTensor(x).sqdist(kn.LazyTensor(y)).sum(axis=2)


def test_torch_batches():
    x, y = torch.rand(2, 6, 1, 3, dtype=torch.float64), torch.rand(2, 1, 8, 3, dtype=torch.float64)
    formula = kt.LazyTensor(x).sqdist(kt.LazyTensor(y))
    out = formula.sum(dim=2)  # as in pykeops, batch dimensions count: dim 2 of (B, M, N) is j
    assert isinstance(out, torch.Tensor) and out.shape == (2, 6, 1)
    assert torch.allclose(out, ((x - y) ** 2).sum(-1, keepdim=True).sum(2), rtol=1e-14)
    assert torch.allclose(formula.sum(dim=1), ((x - y) ** 2).sum(-1, keepdim=True).sum(1), rtol=1e-14)
    with pytest.raises(ValueError, match="axis is 1 \\(over i\\) or 2 \\(over j\\)"):
        formula.sum(dim=0)


def test_transpose_shape_str():
    x, y = np.random.rand(5, 3), np.random.rand(7, 3)
    K = (-kn.Vi(x).sqdist(kn.Vj(y))).exp()
    assert K.shape == (5, 7) and K.T.shape == (7, 5) and K.full_shape == (5, 7, 1) and K.ndim == 1 and K.dim() == 3
    assert np.allclose(K.t().sum(axis=1), K.sum(axis=0), rtol=1e-14)
    text = str(K)
    assert "Exp(-SqDist(Vi(0,3), Vj(1,3)))" in text and "(5, 7)" in text


def test_out_argument_and_backend():
    x, y = np.random.rand(5, 3), np.random.rand(7, 3)
    out = np.empty((5, 1))
    result = kn.Vi(x).sqdist(kn.Vj(y)).sum(axis=1, out=out, backend="CPU")
    assert result is out and np.allclose(out, ((x[:, None] - y[None]) ** 2).sum(-1).sum(1, keepdims=True))
    with pytest.raises(ValueError, match="out has shape"):
        kn.Vi(x).sqdist(kn.Vj(y)).sum(axis=1, out=np.empty((5, 2)))
