"""K.solve(b) against torch.linalg.solve on the dense kernel matrix, values and gradients."""

import numpy as np
import pytest
import torch

import keir.numpy as kn
import keir.torch as kt


def test_numpy_solve_matches_dense():
    rng = np.random.default_rng(0)
    x, b = rng.random((150, 2)), rng.random((150, 3))
    K = (-kn.Vi(x).sqdist(kn.Vj(x)) / 0.1).exp()
    a = K.solve(kn.Vi(b), alpha=0.5, eps=1e-12)
    dense = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / 0.1) + 0.5 * np.eye(150)
    assert np.abs(a - np.linalg.solve(dense, b)).max() < 1e-9
    a2 = K.solve(kn.LazyTensor(b[:, None, :]), alpha=0.5, eps=1e-12)  # pykeops spelling of b_i
    assert np.abs(a2 - a).max() < 1e-12


def test_torch_solve_is_differentiable():
    torch.manual_seed(0)
    x = torch.rand(120, 2, dtype=torch.float64, requires_grad=True)
    b = torch.rand(120, 2, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)
    a = (-kt.Vi(x).sqdist(kt.Vj(x)) / kt.Pm(s)).exp().solve(kt.Vi(b), alpha=0.3, eps=1e-13)
    grads = torch.autograd.grad((a**3).sum(), [x, b, s])
    dense = torch.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / s) + 0.3 * torch.eye(120, dtype=torch.float64)
    want = torch.linalg.solve(dense, b)
    want_grads = torch.autograd.grad((want**3).sum(), [x, b, s])
    assert torch.allclose(a, want, atol=1e-10, rtol=0)
    for got, expected in zip(grads, want_grads):
        assert torch.allclose(got, expected, rtol=1e-8, atol=1e-9)


def test_solve_errors():
    x = np.random.rand(10, 2)
    K = (-kn.Vi(x).sqdist(kn.Vj(x))).exp()
    with pytest.raises(ValueError, match="must have shape \\(10, D\\)"):
        K.solve(np.ones((9, 1)))
    with pytest.raises(ValueError, match="must be square"):
        (-kn.Vi(x).sqdist(kn.Vj(np.random.rand(11, 2)))).exp().solve(np.ones((10, 1)))
    with pytest.raises(ValueError, match="must be scalar"):
        (kn.Vi(x) - kn.Vj(x)).solve(np.ones((10, 1)))
    with pytest.raises(ValueError, match="must be an i-variable"):
        K.solve(kn.Vj(np.ones((10, 1))))
