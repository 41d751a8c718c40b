"""Laplacians, divergences and traces (keir-trace), against torch double backward on dense float64 tensors,
and the trace pass itself against the dense trace of random linear maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.dag_numpy import evaluate
from support.reference import relative_error

import keir.numpy as kn
import keir.torch as kt
from keir.compiler.passes import keir_trace
from keir.dialect import algebra
from keir.dialect.node import constant, make, topological, var
from keir.dialect.ops import OPS

F64 = torch.float64

# ---- the kernels, on LazyTensors and on dense torch tensors: K(d2, s) with d2 = |x - y|^2 ---------------------


class _Lazy:
    sqrt = staticmethod(lambda a: a.sqrt())
    exp = staticmethod(lambda a: a.exp())
    rsqrt = staticmethod(lambda a: a.rsqrt())


class _Dense:
    sqrt = staticmethod(torch.sqrt)
    exp = staticmethod(torch.exp)
    rsqrt = staticmethod(torch.rsqrt)


def _matern52(m, d2, s):
    t = math.sqrt(5.0) * m.sqrt(d2) / s
    return (1.0 + t + t * t / 3.0) * m.exp(-t)


KERNELS = {
    "gaussian": lambda m, d2, s: m.exp(-d2 / (2.0 * s * s)),
    "cauchy": lambda m, d2, s: 1.0 / (1.0 + d2 / (s * s)),
    "laplace": lambda m, d2, s: m.exp(-m.sqrt(d2) / s),
    "inverse-multiquadric": lambda m, d2, s: m.rsqrt(s * s + d2),
    "matern52": _matern52,
}
SIGMA = 0.8


def _points(m: int, n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + dim)
    return rng.uniform(-1, 1, (m, dim)), rng.uniform(-1, 1, (n, dim))


def _sigma(kind: str, lazy_module):
    return SIGMA if kind == "float" else lazy_module.Pm(np.array([SIGMA]))


def _dense_laplacian(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sum_j Delta_x K(x_i, y_j) by torch double backward: one backward pass per coordinate."""
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y)
    values = KERNELS[name](_Dense, ((xt[:, None] - yt[None]) ** 2).sum(-1), SIGMA).sum(1)
    (gradient,) = torch.autograd.grad(values.sum(), xt, create_graph=True)
    total = sum(torch.autograd.grad(gradient[:, k].sum(), xt, retain_graph=True)[0][:, k] for k in range(x.shape[1]))
    return total.detach().numpy()[:, None]


@pytest.mark.parametrize("dim", [1, 2, 3, 10])
@pytest.mark.parametrize("sigma", ["float", "Pm"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_laplacian_of_kernels_matches_torch(name, sigma, dim):
    x, y = _points(13, 17, dim)
    K = KERNELS[name](_Lazy, kn.Vi(x).sqdist(kn.Vj(y)), _sigma(sigma, kn))
    got = K.laplacian(kn.Vi(x)).sum(axis=1)
    assert relative_error(got, _dense_laplacian(name, x, y)) < 1e-11


@pytest.mark.parametrize("dim", [1, 2, 3, 10])
@pytest.mark.parametrize("sigma", ["float", "Pm"])
def test_divergence_of_a_kernel_times_x_minus_y_matches_torch(sigma, dim):
    x, y = _points(11, 19, dim, seed=5)
    X, Y = kn.Vi(x), kn.Vj(y)
    field = KERNELS["gaussian"](_Lazy, X.sqdist(Y), _sigma(sigma, kn)) * (X - Y)
    got = field.divergence(X).sum(axis=1)
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y)
    diff = xt[:, None] - yt[None]
    dense = (KERNELS["gaussian"](_Dense, (diff**2).sum(-1, keepdim=True), SIGMA) * diff).sum(1)
    want = sum(torch.autograd.grad(dense[:, k].sum(), xt, retain_graph=True)[0][:, k] for k in range(dim))
    assert relative_error(got, want.numpy()[:, None]) < 1e-11


@pytest.mark.parametrize("name", ["gaussian", "matern52"])
def test_gradient_of_a_laplacian_matches_torch(name):
    x, y = _points(9, 14, 3, seed=2)
    weights = torch.tensor(np.random.default_rng(7).normal(size=(9, 1)))
    xt, sigma = torch.tensor(x, requires_grad=True), torch.tensor([SIGMA], dtype=F64, requires_grad=True)
    X = kt.Vi(xt)
    lap = KERNELS[name](_Lazy, X.sqdist(kt.Vj(torch.tensor(y))), kt.Pm(sigma)).laplacian(X).sum(axis=1)
    got = torch.autograd.grad((lap * weights).sum(), (xt, sigma))

    dx, ds = torch.tensor(x, requires_grad=True), torch.tensor([SIGMA], dtype=F64, requires_grad=True)
    values = KERNELS[name](_Dense, ((dx[:, None] - torch.tensor(y)[None]) ** 2).sum(-1), ds).sum(1)
    (gradient,) = torch.autograd.grad(values.sum(), dx, create_graph=True)
    dense = sum(torch.autograd.grad(gradient[:, k].sum(), dx, create_graph=True)[0][:, k] for k in range(3))
    torch.testing.assert_close(lap.detach(), dense.detach()[:, None], rtol=1e-10, atol=1e-12)
    want = torch.autograd.grad((dense[:, None] * weights).sum(), (dx, ds))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)


# ---- the three routes of the benchmark: same values, (almost) the same ops -------------------------------------


def _routes(dim: int, sigma, x: np.ndarray, y: np.ndarray) -> dict[str, kn.LazyTensor]:
    X, Y = kn.Vi(x), kn.Vj(y)
    d2 = X.sqdist(Y)
    K = (-d2 / (2 * sigma * sigma)).exp()
    hessian = None
    for k in range(dim):
        term = K.grad(X, 1.0).elem(k).grad(X, 1.0).elem(k)
        hessian = term if hessian is None else hessian + term
    return {"hand-written": K * (d2 - dim * sigma * sigma) / (sigma * sigma * sigma * sigma),
            "laplacian": K.laplacian(X), "per-coordinate Hessian": hessian}


def _keir_ops(reduction) -> int:
    return reduction.ir("opt").count('"keir.')


@pytest.mark.parametrize("sigma", ["float", "Pm"])
def test_laplacian_costs_what_the_hand_written_formula_costs(sigma):
    x, y = _points(40, 50, 3)
    routes = {name: f.sum(axis=1, call=False) for name, f in _routes(3, _sigma(sigma, kn), x, y).items()}
    counts = {name: _keir_ops(r) for name, r in routes.items()}
    assert counts["laplacian"] <= counts["hand-written"] + 2
    assert counts["per-coordinate Hessian"] <= counts["hand-written"] + 2
    want = routes["hand-written"]()
    for name in ("laplacian", "per-coordinate Hessian"):
        assert "keir.laplacian" not in routes[name].ir("opt") and "keir.grad" not in routes[name].ir("opt")
        assert relative_error(routes[name](), want) < 1e-12


# ---- trace_operator --------------------------------------------------------------------------------------------


def test_trace_operator_of_a_linear_map():
    rng = np.random.default_rng(4)
    x, y, v = rng.normal(size=(6, 3)), rng.normal(size=(8, 3)), rng.normal(size=(6, 3))
    X, Y, V = kn.Vi(x), kn.Vj(y), kn.Vi(v)
    swap = V.elem(1).concat(V[0]).concat(V[2:3])  # (v1, v0, v2): a permutation with one fixed point
    linear = X * V + (V | Y) * X - 2.0 * swap + V.elem(1).concat(V[0:2])  # diag(x) + x y^T - 2 P + (trace 0)
    got = linear.trace_operator(V).sum(axis=1)
    want = (x.sum(1, keepdims=True) + x @ y.T).sum(1, keepdims=True) - 2.0 * 8 * 1.0  # tr P = 1 (one fixed point)
    assert relative_error(got, want) < 1e-12


def test_a_trace_of_a_non_linear_map_is_refused():
    V, Y = kn.Vi(np.ones((2, 3))), kn.Vj(np.ones((4, 3)))
    with pytest.raises(ValueError, match="not linear in its variable: keir.mul"):
        (V * V + Y).trace_operator(V).sum(axis=1)
    with pytest.raises(ValueError, match="keir.exp"):
        keir_trace.trace(make("exp", var(0, "i", 2)), var(0, "i", 2))


def test_derivative_requests_check_their_arguments():
    x = np.ones((4, 3))
    X = kn.Vi(x)
    with pytest.raises(TypeError, match="variable"):
        X.sqnorm2().laplacian(X * 2)
    with pytest.raises(ValueError, match="scalar"):
        X.laplacian(X)
    with pytest.raises(ValueError, match="dimension"):
        X.sqnorm2().divergence(X)


# ---- the trace pass on random linear maps ------------------------------------------------------------------------

V = var(0, "i", 3)
U, W = var(1, "j", 3), var(2, "p", 3)
A, B = var(3, "j", 1), var(4, "i", 1)
INDEPENDENT = {1: (A, B, constant(2.0)), 3: (U, W)}


def test_the_linearity_table_covers_what_derivatives_produce():
    # every op a VJP rule routes a cotangent through, and the structural ops of vectors
    linearity = {name: op.linearity for name, op in OPS.items() if op.linearity is not None}
    assert {"add", "sub", "neg", "mul", "div", "sum", "dot", "elem", "extract", "concat", "ifelse"} <= set(linearity)
    for op, rule in linearity.items():
        assert rule.operands and callable(rule.transpose), op


def _independent(dim: int):
    leaves = st.sampled_from(INDEPENDENT[dim])
    return st.one_of(leaves, st.tuples(leaves, leaves).map(lambda t: make("mul", t[0], make("exp", t[1]))))


def linear_maps(dim: int, depth: int):
    """Random formulas of dimension dim linear (or affine) in V, through every op of the linearity table."""
    if depth == 0:
        return st.just(V) if dim == 3 else st.integers(0, 2).map(lambda k: make("elem", V, index=k))
    same, scalar, vector = linear_maps(dim, depth - 1), linear_maps(1, depth - 1), linear_maps(3, depth - 1)
    options = [
        st.tuples(same, _independent(dim)).map(lambda t: make("mul", *t)),
        st.tuples(_independent(1), same).map(lambda t: make("mul", *t)),
        st.tuples(same, _independent(dim)).map(lambda t: make("div", t[0], make("add", make("square", t[1]),
                                                                                 constant(1.0)))),
        st.tuples(same, same).map(lambda t: make("add", *t)),
        st.tuples(same, same).map(lambda t: make("sub", *t)),
        st.tuples(same, _independent(dim)).map(lambda t: make("add", *t)),  # affine: the constant part drops
        same.map(lambda a: make("neg", a)),
        st.tuples(_independent(dim), same, same).map(lambda t: make("ifelse", make("sub", t[0], constant(1.0)),
                                                                     t[1], t[2])),
    ]
    if dim == 1:
        options += [
            vector.map(lambda a: make("sum", a)),
            st.tuples(vector, _independent(3)).map(lambda t: make("dot", *t)),
            st.tuples(_independent(3), vector).map(lambda t: make("dot", *t)),
            st.tuples(vector, st.integers(0, 2)).map(lambda t: make("elem", t[0], index=t[1])),
        ]
    else:
        options += [
            st.tuples(scalar, _independent(3)).map(lambda t: make("mul", *t)),
            st.tuples(scalar, scalar, scalar).map(lambda t: make("concat", t[0], make("concat", t[1], t[2]))),
            st.tuples(vector, scalar, st.integers(0, 1)).map(
                lambda t: make("concat", make("extract", t[0], start=t[2], length=2), t[1])),
            st.tuples(vector, scalar).map(lambda t: make("concat", t[1], make("extract", t[0], start=1, length=2))),
        ]
    return st.one_of(*options)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=linear_maps(3, 3), seed=st.integers(0, 3))
def test_the_trace_of_random_linear_maps_is_the_dense_trace(f, seed):
    rng = np.random.default_rng(seed)
    env = {n: rng.uniform(0.5, 1.5, n.dim) for n in (U, W, A, B)}
    offset = evaluate(f, {**env, V: np.zeros(3)})
    dense = sum((evaluate(f, {**env, V: np.eye(3)[k]}) - offset)[k] for k in range(3))
    traced = keir_trace.trace(f, V)
    assert V not in topological(traced)
    np.testing.assert_allclose(evaluate(traced, env), [dense], rtol=1e-10, atol=1e-10)


def test_the_pass_expands_nested_requests_innermost_first():
    x = var(0, "i", 2)
    f = make("sqnorm2", make("mul", x, x))  # sum x_k^4: Laplacian 12 sum x_k^2, whose Laplacian is 24 D
    twice = keir_trace.expand(make("laplacian", make("laplacian", f, x), x))
    assert not {"laplacian", "grad", "trace"} & {n.op for n in topological(twice)}
    np.testing.assert_allclose(evaluate(twice, {x: np.array([0.3, -1.2])}), [48.0])
    div = keir_trace.expand(make("divergence", make("grad", f, x, constant(1.0)), x))
    np.testing.assert_allclose(evaluate(div, {x: np.array([0.5, 2.0])}), [12 * (0.25 + 4.0)])
    assert algebra.is_zero(keir_trace.expand(make("laplacian", make("dot", x, var(1, "j", 2)), x)))


def test_a_constant_map_has_zero_trace():
    assert keir_trace.trace(U, V) is constant(0.0)


