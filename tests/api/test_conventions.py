"""KeOps' numeric conventions where users would otherwise get NaN, and reductions at the edges of IEEE
arithmetic (infinite terms, every term equal to the accumulator's start value). The references are written
here from KeOps' definitions (keopscore's math functions) and torch float64 dense forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keir.numpy import Vi as np_Vi
from keir.numpy import Vj as np_Vj
from keir.torch import Vi, Vj

DTYPES = ["float32", "float64"]


def _column(values, dtype="float64") -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(-1, 1)


# ---- forward values at the kinks --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_kinks_take_keops_values(dtype):
    one = np.ones((1, 1), dtype)
    a = _column([-2.0, -0.0, 0.0, 3.0, np.nan], dtype)
    # KeOps: rsqrt(0) = 0, step(x) = x < 0 ? 0 : 1, relu(x) = x < 0 ? 0 : x, sign(0) = 0
    rsqrt = (np_Vj(a).abs().rsqrt() * np_Vi(one)).sum(axis=0)
    np.testing.assert_allclose(rsqrt[:4, 0], np.array([2.0**-0.5, 0.0, 0.0, 3.0**-0.5], dtype), rtol=1e-6)
    step = (np_Vj(a).step() * np_Vi(one)).sum(axis=0)[:, 0]
    np.testing.assert_array_equal(step, np.array([0, 1, 1, 1, 1], dtype))
    relu = (np_Vj(a).relu() * np_Vi(one)).sum(axis=0)[:, 0]
    np.testing.assert_array_equal(relu[:4], np.array([0, 0, 0, 3], dtype))
    assert np.isnan(relu[4])
    sign = (np_Vj(a).sign() * np_Vi(one)).sum(axis=0)[:, 0]
    np.testing.assert_array_equal(sign, np.array([-1, 0, 0, 1, 0], dtype))


def test_clamp_follows_keops_when_low_exceeds_high():
    """clamp(x, lo, hi) = lo if x < lo, else hi if x > hi, else x (torch instead gives hi everywhere)."""
    one = np.ones((1, 1))
    x = _column([-1.0, 0.5, 1.5, 2.5, 3.0])
    got = (np_Vj(x).clamp(2.0, 1.0) * np_Vi(one)).sum(axis=0)[:, 0]
    np.testing.assert_array_equal(got, np.where(x < 2.0, 2.0, np.where(x > 1.0, 1.0, x))[:, 0])


@pytest.mark.parametrize("modulus", [0, 0.0, -0.0])
def test_mod_by_a_literal_zero_is_nan(modulus):
    """x - 0 * floor(x / 0) is NaN in IEEE arithmetic (KeOps' Mod, C's fmod): the literal 0 must not fold it to x."""
    one = np.ones((1, 1))
    x = _column([-1.5, 0.0, 2.0])
    got = (np_Vj(x).mod(modulus) * np_Vi(one)).sum(axis=0)
    assert np.isnan(got).all()
    np.testing.assert_array_equal((np_Vj(x).mod(2.0) * np_Vi(one)).sum(axis=0), np.mod(x, 2.0))


# ---- derivatives at the kinks -----------------------------------------------------------------------------


def _grad(formula, x: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(formula.sum(axis=1).sum(), x)
    return g


def test_sqrt_derivative_is_zero_at_zero():
    """A Laplace kernel exp(-|x - y|) and an energy distance -|x - y| have finite gradients at x = y."""
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    laplace = _grad((-Vi(x).sqdist(Vj(y)).sqrt()).exp(), x)
    energy = _grad(-Vi(x).sqdist(Vj(y)).sqrt(), x)
    assert torch.isfinite(laplace).all() and torch.isfinite(energy).all()
    # Reference: the dense form with the coincident pair's contribution 0 (KeOps: sqrt'(0) = rsqrt(0)/2 = 0).
    xd = x.detach().clone().requires_grad_()
    diff = xd[:, None, :] - y[None, :, :]
    distance = (diff**2).sum(-1)
    distance = torch.where(distance > 0, distance, torch.ones_like(distance)).sqrt() * (distance > 0)
    (laplace_ref,) = torch.autograd.grad(torch.exp(-distance).sum(), xd, retain_graph=True)
    (energy_ref,) = torch.autograd.grad((-distance).sum(), xd)
    torch.testing.assert_close(laplace, laplace_ref)
    torch.testing.assert_close(energy, energy_ref)


def test_rsqrt_derivative_is_zero_at_zero():
    x = torch.tensor([[0.0], [4.0]], dtype=torch.float64, requires_grad=True)
    y = torch.zeros((1, 1), dtype=torch.float64)
    g = _grad((Vi(x) + Vj(y)).rsqrt(), x)
    torch.testing.assert_close(g, torch.tensor([[0.0], [-0.5 * 4.0**-1.5]], dtype=torch.float64))


def test_derivatives_at_kinks_follow_keops():
    """abs' = sign (0 at 0); relu' = step (1 at 0: KeOps; torch says 0); sign' = step' = 0."""
    x = torch.tensor([[-1.0], [0.0], [2.0]], dtype=torch.float64, requires_grad=True)
    zero = torch.zeros((1, 1), dtype=torch.float64)
    expected = {
        "abs": [-1.0, 0.0, 1.0],
        "relu": [0.0, 1.0, 1.0],
        "sign": [0.0, 0.0, 0.0],
        "step": [0.0, 0.0, 0.0],
    }
    for op, want in expected.items():
        formula = getattr(Vi(x) + Vj(zero), op)() * 3.0 + Vi(x) * Vj(zero)
        torch.testing.assert_close(_grad(formula, x)[:, 0], 3.0 * torch.tensor(want, dtype=torch.float64), msg=op)


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (1.0, 0.0)])
def test_clamp_gradient_agrees_with_its_forward(low, high):
    """Finite differences of keir's own forward (KeOps' clamp), for every operand, low > high included."""
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.uniform(-1, 2, (7, 1)), requires_grad=True)
    lo = torch.full((1, 1), low, dtype=torch.float64, requires_grad=True)
    hi = torch.full((1, 1), high, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(rng.uniform(0.5, 1.5, (3, 1)))

    def total(x, lo, hi):
        return (Vi(x).clamp(Vi(lo.expand(7, 1)), Vi(hi.expand(7, 1))) * Vj(y)).sum(axis=1).sum()

    grads = torch.autograd.grad(total(x, lo, hi), (x, lo, hi))
    h = 1e-6
    for k, tensor in enumerate((x, lo, hi)):
        for index in np.ndindex(*tensor.shape):
            shifted = [t.detach().clone() for t in (x, lo, hi)]
            shifted[k][index] += h
            up = total(*shifted).item()
            shifted[k][index] -= 2 * h
            down = total(*shifted).item()
            assert grads[k][index].item() == pytest.approx((up - down) / (2 * h), abs=1e-6), (k, index)


# ---- reductions at the edges ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_arg_reductions_of_all_infinite_terms_give_the_first_index(dtype):
    x, y = np.zeros((3, 1), dtype), np.zeros((5, 1), dtype)
    f = np_Vi(x) * np_Vj(y) + np.inf
    np.testing.assert_array_equal(f.argmin(axis=1)[:, 0], [0, 0, 0])
    np.testing.assert_array_equal((-f).argmax(axis=1)[:, 0], [0, 0, 0])
    np.testing.assert_array_equal(f.argKmin(3, axis=1), [[0, 1, 2]] * 3)
    np.testing.assert_array_equal(f.argKmin(7, axis=1), [[0, 1, 2, 3, 4, -1, -1]] * 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", [(7, 33, 4), (16, 257, 10), (3, 5, 7), (5, 16, 16)])
def test_kmin_with_many_ties_and_infinite_terms(dtype, m, n, k):
    """Ties go to the smallest index, +inf terms fill slots before the -1 of K > N (stable argsort)."""
    rng = np.random.default_rng(m * n + k)
    x = rng.integers(0, 5, (m, 1)).astype(dtype)
    y = rng.integers(0, 5, (n, 1)).astype(dtype)
    y[::3] = np.inf
    dense = (x[:, None, 0] - y[None, :, 0]) ** 2
    want = np.argsort(dense, axis=1, kind="stable")[:, :k]
    if k > n:
        want = np.concatenate([want, -np.ones((m, k - n), int)], axis=1)
    np.testing.assert_array_equal(np_Vi(x).sqdist(np_Vj(y)).argKmin(k, axis=1), want)
    values = np_Vi(x).sqdist(np_Vj(y)).Kmin(k, axis=1)
    np.testing.assert_array_equal(values[:, : min(k, n)], np.sort(dense, axis=1)[:, : min(k, n)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_an_infinite_term_is_infinite(dtype):
    x, y = _column([1.0, 2.0], dtype), _column([0.0, 1.0, 5.0], dtype)
    f = -(np_Vi(x) * np_Vj(y)).log()  # +inf where y = 0
    np.testing.assert_array_equal(f.logsumexp(axis=1)[:, 0], [np.inf, np.inf])
    assert np.isneginf((-(np_Vi(x) * np_Vj(y)) - np.inf).logsumexp(axis=1)).all()  # no term: -inf


@pytest.mark.parametrize("dtype", DTYPES)
def test_kahan_summation_of_an_infinite_term_is_infinite(dtype):
    x, y = _column([0.0, 1.0], dtype), _column([0.0, 1.0, np.inf, 3.0] + [1.0] * 40, dtype)
    for scheme in ("kahan_scheme", "block_sum", "direct_sum"):
        got = (np_Vi(x) + np_Vj(y)).sum(axis=1, sum_scheme=scheme)
        np.testing.assert_array_equal(got[:, 0], [np.inf, np.inf], err_msg=scheme)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["min", "max"])
@pytest.mark.parametrize("axis", [0, 1])
def test_min_max_gradients_reach_the_selected_pair(dtype, kind, axis):
    """The backward recomputes the formula in another association than the forward: the pair is found by
    its index, not by comparing values (which lost it for (x * 1.5 * y).max)."""
    torch.manual_seed(0)
    x = torch.randn(40, 3, dtype=dtype, requires_grad=True)
    y = torch.randn(50, 3, dtype=dtype, requires_grad=True)
    got = torch.autograd.grad(getattr(Vi(x) * 1.5 * Vj(y), kind)(axis=axis).sum(), (x, y))
    xd, yd = x.detach().double().requires_grad_(), y.detach().double().requires_grad_()
    dense = xd[:, None] * 1.5 * yd[None]
    want = torch.autograd.grad((dense.amin(axis) if kind == "min" else dense.amax(axis)).sum(), (xd, yd))
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-5)


def test_batched_parameter_gradients_stay_in_their_batch():
    torch.manual_seed(1)
    b, m, n, d = 3, 5, 4, 2
    tensors = [torch.randn(b, m, 1, d), torch.randn(1, 1, n, d), torch.rand(b, 1, 1, 1)]
    tensors = [t.double().requires_grad_() for t in tensors]
    from keir.torch import LazyTensor

    x, y, p = (LazyTensor(t) for t in tensors)
    got = torch.autograd.grad(((-(x - y).sqnorm2() * p).exp() * (x - y)).sum(axis=2).sum(), tensors)
    xd, yd, pd = (t.detach().clone().requires_grad_() for t in tensors)
    dense = (torch.exp(-((xd - yd) ** 2).sum(-1, keepdim=True) * pd) * (xd - yd)).sum(2)
    want = torch.autograd.grad(dense.sum(), (xd, yd, pd))
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w)


def test_min_max_gradients_of_a_formula_with_a_missing_size():
    """No variable indexed by the reduced axis: its size is 1 (pykeops' rule), the only pair is selected."""
    p = torch.randn(2, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    from keir.torch import Pm

    out = Pm(p).min(axis=0)
    torch.testing.assert_close(out[0], p.detach())
    (g,) = torch.autograd.grad(out.sum(), p)
    torch.testing.assert_close(g, torch.ones(2, dtype=torch.float64))
    (g,) = torch.autograd.grad((Vi(x) * 2.0).max(axis=1).sum(), x)
    torch.testing.assert_close(g, torch.full((4, 2), 2.0, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_powf_is_c_powf(dtype):
    """KeOps' Powf calls C's powf (keopscore's keops_powf): every special case of a negative, zero, one,
    infinite or NaN base and an integer, non-integer, zero, infinite or NaN exponent, as np.power (C's pow)."""
    bases = np.array([-2.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.0, np.inf, -np.inf, np.nan])
    exponents = np.array([0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, -0.5, 2.5, np.inf, -np.inf, np.nan, 1e20])
    x, y = (a.reshape(-1, 1).astype(dtype) for a in np.meshgrid(bases, exponents, indexing="ij"))
    got = (np_Vi(x).powf(np_Vi(y)) * np_Vj(np.ones((1, 1), dtype))).sum(axis=1)
    with np.errstate(all="ignore"):
        want = np.power(x, y)
    np.testing.assert_allclose(got, want, rtol=4e-6 if dtype == np.float32 else 1e-14)
    signed = ~np.isnan(want) & (want != 0)  # a sum's 0 + -0 is +0
    assert np.array_equal(np.signbit(got[signed]), np.signbit(want[signed]))  # -inf from -0 included


def test_a_large_power_of_a_quotient_does_not_overflow_its_parts():
    """(y / x) ** 2**31 is inf for |y / x| > 1, 0 below: not y^n / x^n = inf / inf (seed 13 case 2241)."""
    y, x = np.array([[3.0], [0.5]]), np.array([[2.0]])
    got = ((np_Vi(y) / np_Vj(x)) ** 2**31).sum(axis=1)
    assert got[0, 0] == np.inf and got[1, 0] == 0.0
