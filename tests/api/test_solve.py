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


# ---- pykeops' solve(other, var=, call=, **reduction options) --------------------------------------------------

def test_solve_with_a_symbolic_unknown_matches_dense():
    """pykeops' form: the formula is linear in var, a symbolic j-variable; here K_ij * var_j with K Gaussian,
    against numpy.linalg.solve of the dense (alpha Id + K)."""
    rng = np.random.default_rng(3)
    x, b = rng.random((25, 2)), rng.random((25, 3))
    kernel = (-kn.Vi(x).sqdist(kn.Vj(x)) / 0.1).exp()
    dense = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / 0.1)
    want = np.linalg.solve(0.5 * np.eye(25) + dense, b)
    got = (kernel * kn.Vj(0, 3)).solve(kn.Vi(b), var=kn.Vj(0, 3), alpha=0.5, eps=1e-12)
    assert np.abs(got - want).max() < 1e-9
    # the same system through the option-carrying plain form
    plain = kernel.solve(b, alpha=0.5, eps=1e-12, backend="CPU", dtype_acc="float64", sum_scheme="kahan_scheme")
    assert np.abs(plain - want).max() < 1e-9


def test_torch_solve_with_var_is_differentiable():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(12, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.rand(12, 1, generator=g, dtype=torch.float64, requires_grad=True)

    def keir_solution(x, b):
        kernel = (-kt.Vi(x).sqdist(kt.Vj(x)) / 0.2).exp() * kt.Vj(0, 1)
        return kernel.solve(kt.Vi(b), var=kt.Vj(0, 1), alpha=0.3, eps=1e-13)

    def dense_solution(x, b):
        dense = torch.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / 0.2)
        return torch.linalg.solve(0.3 * torch.eye(12, dtype=torch.float64) + dense, b)

    weights = torch.rand(12, 1, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((keir_solution(x, b) * weights).sum(), (x, b))
    want = torch.autograd.grad((dense_solution(x, b) * weights).sum(), (x, b))
    for g_, w in zip(got, want):
        torch.testing.assert_close(g_, w, rtol=1e-7, atol=1e-9)


def test_solve_refuses_what_it_does_not_do():
    x = np.random.default_rng(5).random((6, 2))
    kernel = (-kn.Vi(x).sqdist(kn.Vj(x))).exp()
    with pytest.raises(TypeError, match="bogus"):
        kernel.solve(x, bogus=1)
    with pytest.raises(ValueError, match=r"ranges_i must have shape \(count, 2\)"):
        kernel.solve(x, ranges=(1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="call=False"):
        kernel.solve(x, call=False)
    with pytest.raises(ValueError, match="symbolic j-variable"):
        (kernel * kn.Vj(0, 2)).solve(x, var=kn.Vj(x))
    with pytest.raises(ValueError, match="only symbolic variable"):
        (kernel * kn.Vj(0, 2)).solve(x, var=kn.Vj(1, 2))
