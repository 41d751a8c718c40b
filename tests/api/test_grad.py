"""Gradients of keir reductions through torch autograd and torch.func, to any order, and LazyTensor.grad.

gradcheck/gradgradcheck run in float64 on small M, N (every kernel they need is compiled once and cached);
values are also compared with torch autograd on dense (M, N, D) float64 tensors, an independent reference.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from keir import kernels  # noqa: E402
from keir import numpy as knp  # noqa: E402
from keir.dialect.derivatives import NotDifferentiableError  # noqa: E402
from keir.dialect.node import make  # noqa: E402
from keir.torch import Pm, Vi, Vj  # noqa: E402

F64 = torch.float64


def _inputs(m: int, n: int, seed: int = 0, dtype=F64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def uniform(*shape: int) -> torch.Tensor:
        return (0.5 + torch.rand(*shape, generator=g, dtype=F64)).to(dtype).requires_grad_()

    return {"x": uniform(m, 3), "y": uniform(n, 3), "b": uniform(n, 2), "s": uniform(1), "p": uniform(3)}


# ---- every differentiable op: gradcheck and gradgradcheck -------------------------------------------------------

def _apply(op: str, first, *rest, **attrs):
    """keir op `op` on LazyTensors (for ops with no LazyTensor method)."""
    nodes = []
    lazy = first
    for other in rest:
        lazy = lazy._combine(other, lambda mine, theirs: nodes.append(theirs) or mine)
    return lazy.from_node(make(op, first.node, *nodes, **attrs), lazy.arrays, lazy.categories, lazy.dtype)


# name -> (formula on Vi(x), Vj(y), Vj(b), Pm(s), Pm(p); the inputs it uses); values stay in each op's domain.
OPS = {
    "add": (lambda x, y, b, s, p: x + y, "xy"),
    "add-broadcast": (lambda x, y, b, s, p: x + b.elem(0), "xb"),
    "sub": (lambda x, y, b, s, p: x - y * s, "xys"),
    "mul": (lambda x, y, b, s, p: x * y, "xy"),
    "div": (lambda x, y, b, s, p: x / y, "xy"),
    "div-broadcast": (lambda x, y, b, s, p: s / (x * y), "xys"),
    "neg": (lambda x, y, b, s, p: -(x * y), "xy"),
    "exp": (lambda x, y, b, s, p: (x - y).exp(), "xy"),
    "log": (lambda x, y, b, s, p: (x + y).log(), "xy"),
    "sqrt": (lambda x, y, b, s, p: (x * y).sqrt(), "xy"),
    "rsqrt": (lambda x, y, b, s, p: (x + y).rsqrt(), "xy"),
    "square": (lambda x, y, b, s, p: (x - y).square(), "xy"),
    "pow": (lambda x, y, b, s, p: (x - y) ** 3, "xy"),
    "pow-negative": (lambda x, y, b, s, p: (x + y) ** -2, "xy"),
    "abs": (lambda x, y, b, s, p: (x - y).abs(), "xy"),
    "sum": (lambda x, y, b, s, p: (x * y).sum(), "xy"),
    "dot": (lambda x, y, b, s, p: (x * p) | y, "xyp"),
    "sqdist": (lambda x, y, b, s, p: x.sqdist(y), "xy"),
    "sqnorm2": (lambda x, y, b, s, p: (x - y).sqnorm2(), "xy"),
    "elem": (lambda x, y, b, s, p: (x * y)[1], "xy"),
    "extract": (lambda x, y, b, s, p: (x * y)[1:3], "xy"),
    "concat": (lambda x, y, b, s, p: x.exp().concat(b), "xb"),
    "constant": (lambda x, y, b, s, p: 2.0 * x - y / 3.0, "xy"),
    "sin": (lambda x, y, b, s, p: _apply("sin", x - y), "xy"),
    "cos": (lambda x, y, b, s, p: _apply("cos", x * y), "xy"),
    "asin": (lambda x, y, b, s, p: _apply("asin", (x - y) * 0.5), "xy"),
    "acos": (lambda x, y, b, s, p: _apply("acos", (x - y) * 0.5), "xy"),
    "atan": (lambda x, y, b, s, p: _apply("atan", x - y), "xy"),
    "atan2": (lambda x, y, b, s, p: _apply("atan2", x, y - s), "xys"),
    "relu": (lambda x, y, b, s, p: _apply("relu", x - y), "xy"),
    "xlogx": (lambda x, y, b, s, p: _apply("xlogx", x * y), "xy"),
    "sinxdivx": (lambda x, y, b, s, p: _apply("sinxdivx", x - y), "xy"),
    "clamp": (lambda x, y, b, s, p: _apply("clamp", x, y - 0.2, y + 0.2), "xy"),
    "clamp-broadcast": (lambda x, y, b, s, p: _apply("clamp", x * y, s, s + 0.5), "xys"),
    "ifelse": (lambda x, y, b, s, p: _apply("ifelse", x - y, x * y, x.exp()), "xy"),
    "min": (lambda x, y, b, s, p: _apply("min", x * y), "xy"),
    "max": (lambda x, y, b, s, p: _apply("max", x - y), "xy"),
    "piecewise-constant": (
        lambda x, y, b, s, p: _apply("sign", x - y) * x + _apply("step", y - x) * _apply("floor", y * 3.0)
        + _apply("round", x, digits=1) * _apply("lt", x, y) * _apply("one_hot", _apply("argmax", y), dim=3),
        "xy",
    ),
}


def _reduction(formula, used: str, axis: int = 1):
    order = "xybsp"
    wrap = {"x": Vi, "y": Vj, "b": Vj, "s": Pm, "p": Pm}

    def run(*tensors):
        given = dict(zip(used, tensors))
        lazy = [wrap[k](given[k]) if k in given else None for k in order]
        return formula(*lazy).sum(axis=axis)

    return run


@pytest.mark.parametrize("name", sorted(OPS))
def test_gradcheck_and_gradgradcheck_of_every_op(name):
    formula, used = OPS[name]
    inputs = _inputs(3, 4, seed=len(name))
    tensors = tuple(inputs[k] for k in used)
    f = _reduction(formula, used)
    assert torch.autograd.gradcheck(f, tensors)
    assert torch.autograd.gradgradcheck(f, tensors)


@pytest.mark.parametrize("name", ["exp", "sqdist", "dot"])
def test_gradcheck_of_a_reduction_over_i(name):
    formula, used = OPS[name]
    inputs = _inputs(4, 3, seed=7)
    tensors = tuple(inputs[k] for k in used)
    f = _reduction(formula, used, axis=0)
    assert torch.autograd.gradcheck(f, tensors)
    assert torch.autograd.gradgradcheck(f, tensors)


# ---- kernel sums: gradcheck and dense references ----------------------------------------------------------------


def _kernels(lazy: bool):
    """name -> K(x_i, y_j, s) in keir (lazy=True: on LazyTensors) or dense torch (on (M, 1, 3), (1, N, 3))."""
    if lazy:
        def sqdist(x, y):
            return x.sqdist(y)
    else:
        def sqdist(x, y):
            return ((x - y) ** 2).sum(-1, keepdim=True)
    root = (lambda d: d.sqrt()) if lazy else torch.sqrt
    exp = (lambda d: d.exp()) if lazy else torch.exp
    return {
        "gaussian": lambda x, y, s: exp(-sqdist(x, y) / (2.0 * s * s)),
        "cauchy": lambda x, y, s: 1.0 / (1.0 + sqdist(x, y) / (s * s)),
        "laplace": lambda x, y, s: exp(-root(sqdist(x, y)) / s),
        "inverse-multiquadric": lambda x, y, s: ((s * s + sqdist(x, y)).rsqrt() if lazy
                                                  else 1.0 / torch.sqrt(s * s + sqdist(x, y))),
    }


KEIR_KERNELS, DENSE_KERNELS = _kernels(lazy=True), _kernels(lazy=False)


def keir_kernel_sum(name: str):
    return lambda x, y, b, s: (KEIR_KERNELS[name](Vi(x), Vj(y), Pm(s)) * Vj(b)).sum(axis=1)


def dense_kernel_sum(name: str):
    return lambda x, y, b, s: (DENSE_KERNELS[name](x[:, None, :], y[None, :, :], s) * b[None, :, :]).sum(1)


@pytest.mark.parametrize("name", sorted(KEIR_KERNELS))
def test_gradcheck_and_gradgradcheck_of_kernel_sums(name):
    inputs = _inputs(3, 4, seed=1)
    tensors = (inputs["x"], inputs["y"], inputs["b"], inputs["s"])
    assert torch.autograd.gradcheck(keir_kernel_sum(name), tensors)
    assert torch.autograd.gradgradcheck(keir_kernel_sum(name), tensors)


@pytest.mark.parametrize("m", [1, 13, 500])
@pytest.mark.parametrize("n", [1, 13, 500])
@pytest.mark.parametrize("name", sorted(KEIR_KERNELS))
def test_kernel_sum_gradients_match_dense_torch(name, m, n):
    inputs = _inputs(m, n, seed=m + n)
    tensors = (inputs["x"], inputs["y"], inputs["b"], inputs["s"])
    weights = torch.randn(m, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    direction = torch.randn(m, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    results = []
    for f in (keir_kernel_sum(name), dense_kernel_sum(name)):
        out = f(*tensors)
        first = torch.autograd.grad((out * weights).sum(), tensors, create_graph=True)
        # a second derivative: the derivative of <d/dx, direction> with respect to every input
        second = torch.autograd.grad((first[0] * direction).sum(), tensors)
        results.append((out, *first, *second))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


# ---- other reductions ---------------------------------------------------------------------------------------------


def _neg_sqdist(x, y):
    return -(x.sqdist(y)) if not isinstance(x, torch.Tensor) else -((x - y) ** 2).sum(-1, keepdim=True)


REDUCTIONS = {
    "logsumexp": (lambda x, y, b: _neg_sqdist(x, y).logsumexp(axis=1),
                  lambda x, y, b: torch.logsumexp(_neg_sqdist(x, y), dim=1)),
    "logsumexp-vector": (lambda x, y, b: (x * y).logsumexp(axis=1),
                         lambda x, y, b: torch.logsumexp(x * y, dim=1)),
    "logsumexp-weight": (lambda x, y, b: _neg_sqdist(x, y).logsumexp(axis=1, weight=b),
                         lambda x, y, b: torch.log((torch.exp(_neg_sqdist(x, y)) * b).sum(1))),
    "min": (lambda x, y, b: (x - y).square().min(axis=1), lambda x, y, b: ((x - y) ** 2).amin(1)),
    "max": (lambda x, y, b: (x * y - b.elem(0)).max(axis=1), lambda x, y, b: (x * y - b[..., :1]).amax(1)),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_gradcheck_and_dense_reference_of_other_reductions(name):
    keir_f, dense_f = REDUCTIONS[name]
    tensors = tuple(_inputs(4, 5, seed=2)[k] for k in "xyb")

    def f(x, y, b):
        return keir_f(Vi(x), Vj(y), Vj(b))

    def dense(x, y, b):
        return dense_f(x[:, None, :], y[None, :, :], b[None, :, :])

    assert torch.autograd.gradcheck(f, tensors)
    assert torch.autograd.gradgradcheck(f, tensors)
    weights = torch.randn_like(f(*tensors))
    got = torch.autograd.grad((f(*tensors) * weights).sum(), tensors, allow_unused=True, materialize_grads=True)
    want = torch.autograd.grad((dense(*tensors) * weights).sum(), tensors, allow_unused=True,
                               materialize_grads=True)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)


def test_float32_min_reduction_gradient_finds_its_pairs():
    # the gradient kernel finds the pair the forward selected by its index (from the argmin reduction)
    x, y = (_inputs(40, 50, dtype=torch.float32)[k] for k in "xy")
    (got,) = torch.autograd.grad(Vi(x).sqdist(Vj(y)).min(axis=1).sum(), x)
    dense_x = x.detach().double().requires_grad_()
    (want,) = torch.autograd.grad(((dense_x[:, None] - y.detach().double()[None]) ** 2).sum(-1).amin(1).sum(), dense_x)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)


def test_a_non_differentiable_reduction_names_its_kind():
    x, y = (_inputs(4, 5)[k] for k in "xy")
    values = Vi(x).sqdist(Vj(y)).Kmin(2, axis=1)
    with pytest.raises(NotDifferentiableError, match="kind 'kmin'"):
        values.sum().backward()


# ---- torch.func, higher orders, special inputs ------------------------------------------------------------------


def _gauss(x, y, b, s):
    return keir_kernel_sum("gaussian")(x, y, b, s)


def _gauss_dense(x, y, b, s):
    return dense_kernel_sum("gaussian")(x, y, b, s)


def test_torch_func_grad_and_grad_of_grad():
    x, y, b, s = (_inputs(5, 6)[k].detach() for k in "xybs")
    for order in (1, 2):
        results = []
        for f in (_gauss, _gauss_dense):
            g = torch.func.grad(lambda x, f=f: f(x, y, b, s).sum(), argnums=0)
            if order == 2:
                g = torch.func.grad(lambda x, g=g: g(x).square().sum())
            results.append(g(x))
        torch.testing.assert_close(*results, rtol=1e-10, atol=1e-12)


def test_torch_func_vjp_with_respect_to_every_input():
    tensors = tuple(_inputs(5, 6)[k].detach() for k in "xybs")
    out, vjp = torch.func.vjp(_gauss, *tensors)
    out_ref, vjp_ref = torch.func.vjp(_gauss_dense, *tensors)
    cotangent = torch.randn_like(out)
    torch.testing.assert_close(out, out_ref)
    for got, want in zip(vjp(cotangent), vjp_ref(cotangent)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_third_order_gradients():
    tensors = tuple(_inputs(4, 5)[k] for k in "xybs")
    results = []
    for f in (_gauss, _gauss_dense):
        (gx,) = torch.autograd.grad(f(*tensors).square().sum(), tensors[0], create_graph=True)
        (gy,) = torch.autograd.grad(gx.sin().sum(), tensors[1], create_graph=True)
        results.append(torch.autograd.grad(gy.sum(), tensors))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_one_tensor_as_both_i_and_j_variable():
    x = _inputs(6, 6)["x"]

    def f(x):
        return (-(Vi(x).sqdist(Vj(x)))).exp().sum(axis=1)

    def dense(x):
        return torch.exp(-((x[:, None] - x[None]) ** 2).sum(-1)).sum(1, keepdim=True)

    assert torch.autograd.gradcheck(f, (x,))
    torch.testing.assert_close(torch.autograd.grad(f(x).sum(), x)[0], torch.autograd.grad(dense(x).sum(), x)[0])


def test_broadcast_vector_parameter_and_python_number_parameter():
    inputs = _inputs(4, 5)
    x, y, p = inputs["x"], inputs["y"], inputs["p"]

    def f(x, y, p):
        return ((Vi(x) * Pm(p)).sqdist(Vj(y)) * Pm(0.5)).exp().sum(axis=1)

    assert torch.autograd.gradcheck(f, (x, y, p))
    assert torch.autograd.gradgradcheck(f, (x, y, p))


def test_float32_gradients():
    tensors = tuple(_inputs(13, 17, dtype=torch.float32)[k] for k in "xybs")
    dense = tuple(t.detach().double().requires_grad_() for t in tensors)
    got = torch.autograd.grad(_gauss(*tensors).sum(), tensors)
    want = torch.autograd.grad(_gauss_dense(*dense).sum(), dense)
    for g, w in zip(got, want):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g.double(), w, rtol=1e-4, atol=1e-5)


def test_gradient_kernels_are_compiled_once(monkeypatch):
    tensors = tuple(_inputs(4, 5, seed=11)[k] for k in "xybs")
    torch.autograd.grad(_gauss(*tensors).sum(), tensors)
    compiled = []
    original = kernels._load_or_compile
    monkeypatch.setattr(kernels, "_load_or_compile", lambda *a: compiled.append(a) or original(*a))
    torch.autograd.grad(_gauss(*tensors).sum(), tensors)
    assert compiled == []


def test_a_vanishing_second_derivative_is_zeros_without_a_kernel(monkeypatch):
    inputs = _inputs(3, 4)
    x, y = inputs["x"], inputs["y"]
    f = _reduction(OPS["add"][0], "xy")
    (gx,) = torch.autograd.grad(f(x, y).sum(), x, create_graph=True)

    def refuse(*args, **kwargs):
        raise AssertionError("a zero formula must not be compiled")

    monkeypatch.setattr(kernels, "cpu_kernel", refuse)
    (gxx,) = torch.autograd.grad((gx * x).sum(), x, allow_unused=True)
    # d/dx <d/dx sum_j (x_i + y_j), x> = N (from the explicit x) + 0 (the second derivative is zero)
    torch.testing.assert_close(gxx, torch.full_like(x, 4.0))


# ---- LazyTensor.grad ----------------------------------------------------------------------------------------------


def test_lazytensor_grad_on_numpy_arrays():
    rng = np.random.default_rng(0)
    x, y, b, e = rng.normal(size=(7, 3)), rng.normal(size=(9, 3)), rng.normal(size=(9, 1)), rng.normal(size=(7, 1))
    x_i, y_j = knp.Vi(x), knp.Vj(y)
    k = (-(x_i.sqdist(y_j))).exp() * knp.Vj(b)
    g = k.grad(x_i, knp.Vi(e))
    assert g.ndim == 3
    reduction = g.sum(axis=1, call=False)
    assert "keir.grad" in reduction.ir("keir") and "keir.grad" not in reduction.ir("opt")
    kernel = np.exp(-((x[:, None] - y[None]) ** 2).sum(-1))
    want = -2 * ((e * kernel * b[:, 0][None])[:, :, None] * (x[:, None] - y[None])).sum(1)
    np.testing.assert_allclose(reduction(), want, rtol=1e-12, atol=1e-12)


def test_lazytensor_grad_of_grad_of_a_sum_is_zero_without_a_kernel(monkeypatch):
    rng = np.random.default_rng(1)
    x, y, e, f = (rng.normal(size=(5, 3)) for _ in range(4))
    x_i = knp.Vi(x)
    g = (x_i + knp.Vj(y)).grad(x_i, knp.Vi(e)).grad(x_i, knp.Vi(f))
    monkeypatch.setattr(kernels, "cpu_kernel", lambda *a, **k: pytest.fail("a zero formula was compiled"))
    out = g.sum(axis=1)
    assert out.shape == (5, 3) and not out.any()


def test_lazytensor_grad_with_torch_is_differentiable():
    inputs = _inputs(4, 5)
    x, y = inputs["x"], inputs["y"]
    e = torch.randn(4, 1, dtype=F64, requires_grad=True)

    def f(x, y, e):
        x_i = Vi(x)
        return (-(x_i.sqdist(Vj(y)))).exp().grad(x_i, Vi(e)).sum(axis=1)

    assert torch.autograd.gradcheck(f, (x, y, e))
    assert torch.autograd.gradgradcheck(f, (x, y, e))


def test_lazytensor_grad_needs_a_variable():
    x_i = knp.Vi(np.ones((3, 2)))
    with pytest.raises(TypeError, match="variable"):
        x_i.exp().grad(x_i * 2.0, knp.Vi(np.ones((3, 2))))


def test_a_gradient_that_vanishes_is_zeros_as_in_torch():
    """d/dx of sum_j (x_i - x_i): zeros, so that torch.autograd.grad does not call x unused and .grad is set (seed
    15 case 352); no kernel runs for it."""
    import torch

    from keir.torch import Vi

    x = torch.rand(3, 1, dtype=torch.float64, requires_grad=True)
    result = (Vi(x) - Vi(x)).sum(dim=0)
    (grad,) = torch.autograd.grad(result, [x], torch.ones_like(result))
    assert torch.equal(grad, torch.zeros_like(x))
    (Vi(x) - Vi(x)).sum(dim=0).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
