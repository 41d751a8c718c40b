"""pykeops programs as users write them (k-means, K-NN, kernel interpolation, Sinkhorn, GP kernels), run with
keir and checked against dense NumPy / torch float64 references, and the pykeops rules they rely on: the axis
of `.sum(-1)`, `**`, arrays and tensors in binary operations, a missing i or j size being 1, symbolic
variables, the Genred formula language."""

import numpy as np
import pytest
import torch
from support.reference import relative_error

import keir.numpy as kn
import keir.torch as kt

rng = np.random.default_rng(13)


def _sqdist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


# the axis rule -------------------------------------------------------------------------------------------
def test_sum_minus_one_is_the_vector_dimension():
    x, y = rng.random((30, 3)), rng.random((40, 3))
    x_i, y_j = kn.LazyTensor(x[:, None, :]), kn.LazyTensor(y[None, :, :])
    for spelling in (lambda f: f.sum(-1), lambda f: f.sum(), lambda f: f.sum(dim=2), lambda f: f.sum(axis=2)):
        d_ij = spelling((x_i - y_j) ** 2)
        assert isinstance(d_ij, kn.LazyTensor) and d_ij.shape == (30, 40) and d_ij.full_shape == (30, 40, 1)
        assert relative_error(d_ij.sum(1), _sqdist(x, y).sum(1, keepdims=True)) < 1e-13
        assert relative_error(d_ij.sum(dim=0), _sqdist(x, y).sum(0)[:, None]) < 1e-13
    v = x_i - y_j
    for name in ("min", "max", "argmin", "argmax"):
        assert isinstance(getattr(v, name)(-1), kn.LazyTensor) and isinstance(getattr(v, name)(), kn.LazyTensor)
    assert relative_error(v.max(-1).sum(1), (x[:, None] - y[None]).max(-1).sum(1, keepdims=True)) < 1e-13


def test_axes_count_batch_dimensions():
    x, y = rng.random((2, 5, 1, 3)), rng.random((2, 1, 7, 3))
    d = ((kn.LazyTensor(x) - kn.LazyTensor(y)) ** 2).sum(3)  # with one batch dimension, axis 3 is the vector's
    dense = ((x - y) ** 2).sum(-1)
    assert d.shape == (2, 5, 7) and d.dim() == 4
    assert relative_error(d.sum(2), dense.sum(2)[..., None]) < 1e-13  # axis 2: over j
    assert relative_error(d.sum(dim=1), dense.sum(1)[..., None]) < 1e-13  # axis 1: over i
    with pytest.raises(ValueError, match="axis is 1 \\(over i\\) or 2 \\(over j\\), got 0"):
        d.sum(0)


def test_reductions_without_an_i_or_a_j_variable_take_size_one():
    x, p = rng.random((6, 3)), rng.random(4)
    # pykeops: no j variable, N = 1 (the sum over j is the formula itself); no i variable, M = 1
    assert relative_error(kn.Vi(x).sin().sum(axis=1), np.sin(x)) < 1e-13
    assert relative_error(kn.Vi(x).sinc().sum(0), np.sinc(x).sum(0, keepdims=True)) < 1e-13
    out = kn.LazyTensor(p[None, None, :]).exp().sum_reduction(dim=1)
    assert out.shape == (1, 4) and relative_error(out, np.exp(p)[None]) < 1e-13


# arrays, tensors and exponents in formulas ---------------------------------------------------------------
def test_tensors_and_arrays_in_binary_operations():
    x, y = torch.rand(20, 3, dtype=torch.float64), torch.rand(30, 3, dtype=torch.float64)
    c_ij = ((kt.LazyTensor(x[:, None]) - kt.LazyTensor(y[None])) ** 2).sum(-1)
    dense = ((x[:, None] - y[None]) ** 2).sum(-1)
    scale = torch.tensor([0.25], dtype=torch.float64)
    assert relative_error((c_ij * scale).sum(1), (dense * 0.25).sum(1, keepdim=True)) < 1e-13
    assert relative_error((scale * c_ij).sum(1), (dense * 0.25).sum(1, keepdim=True)) < 1e-13
    zero_d = torch.tensor(2.0, dtype=torch.float64)
    assert relative_error((c_ij / zero_d).sum(1), (dense / 2).sum(1, keepdim=True)) < 1e-13
    lengthscale = torch.full((1, 1, 1), 0.7, dtype=torch.float64)  # gpytorch's shape
    assert relative_error((c_ij * (-2.0 / lengthscale)).exp().sum(1),
                          (dense * (-2.0 / 0.7)).exp().sum(1, keepdim=True)) < 1e-13
    weights = [0.5, 2.0, -1.0]  # a list is a constant vector (a parameter in pykeops)
    v = kt.LazyTensor(x[:, None]) * weights
    dense_v = x * torch.tensor(weights, dtype=torch.float64)
    assert relative_error(v.sum(-1).sum(1), dense_v.sum(1, keepdim=True)) < 1e-13
    a = rng.random((10, 3))
    numpy_scale = np.array([3.0])
    assert relative_error((kn.Vi(a) * numpy_scale).sum(axis=1), 3 * a) < 1e-13


@pytest.mark.parametrize("exponent,dense", [
    (2, lambda b: b * b), (3, lambda b: b ** 3), (-1, lambda b: 1 / b), (0.5, np.sqrt),
    (-0.5, lambda b: 1 / np.sqrt(b)), (1.7, lambda b: b ** 1.7), (-2.3, lambda b: b ** -2.3),
    (2.0, lambda b: b * b),
])
def test_power_with_numbers(exponent, dense):
    x = rng.random((12, 3)) + 0.1
    assert relative_error((kn.Vi(x) ** exponent).sum(axis=1), dense(x)) < 1e-12
    assert relative_error(kn.Vi(x).power(exponent).sum(axis=1), dense(x)) < 1e-12


def test_power_with_a_lazytensor_exponent_is_powf():
    x, e = rng.random((12, 3)) + 0.1, rng.random((9, 1)) * 3 - 1
    got = (kn.Vi(x) ** kn.Vj(e)).sum(axis=1)
    assert relative_error(got, (x[:, None, :] ** e[None, :, :]).sum(1)) < 1e-12
    assert relative_error(kn.Vi(x).power(kn.Vj(e)).sum(axis=1), got) < 1e-15
    assert relative_error((kn.Vi(x) ** np.array([0.3, 1.0, 2.5])).sum(axis=1), x ** np.array([0.3, 1.0, 2.5])) < 1e-12


# symbolic variables --------------------------------------------------------------------------------------
def test_symbolic_variables_are_given_at_call_time():
    x, y, b = rng.random((15, 3)), rng.random((25, 3)), rng.random((25, 2))
    want = np.exp(-_sqdist(x, y)) @ b
    gauss = (-kn.Vi(0, 3).sqdist(kn.Vj(1, 3))).exp() * kn.Vj(2, 2)
    reduction = gauss.sum(axis=1)  # a callable, as in pykeops
    assert relative_error(reduction(x, y, b), want) < 1e-13
    triplets = (-kn.LazyTensor((0, 3, 0)).sqdist(kn.LazyTensor((1, 3, 1)))).exp() * kn.LazyTensor((2, 2, 1))
    assert relative_error(triplets.sum(axis=1)(x, y, b), want) < 1e-13
    scaled = (-(kn.Vi(0, 3).sqdist(kn.Vj(1, 3))) * kn.Pm(2, 1)).exp().sum(axis=1)
    assert relative_error(scaled(x, y, np.array([0.5])), np.exp(-0.5 * _sqdist(x, y)).sum(1, keepdims=True)) < 1e-13
    with pytest.raises(ValueError, match=r"argument 1 \(j-variable\) must have shape \(rows, 3\)"):
        reduction(x, b, b)


# the programs --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("front", ["numpy", "torch"])
def test_kmeans(front):
    x, c = rng.random((200, 2)), rng.random((6, 2))
    dense_x, dense_c = x.copy(), c.copy()
    for _ in range(5):  # Lloyd's iterations, dense float64
        labels = _sqdist(dense_x, dense_c).argmin(1)
        dense_c = np.stack([dense_x[labels == k].mean(0) for k in range(6)])
    if front == "torch":
        x_t, c_t = torch.tensor(x), torch.tensor(c)
        x_i = kt.LazyTensor(x_t.view(200, 1, 2))
        for _ in range(5):
            c_j = kt.LazyTensor(c_t.view(1, 6, 2))
            d_ij = ((x_i - c_j) ** 2).sum(-1)
            cl = d_ij.argmin(dim=1).long().view(-1)
            c_t = torch.zeros(6, 2, dtype=torch.float64).scatter_add_(0, cl[:, None].repeat(1, 2), x_t)
            c_t /= torch.bincount(cl, minlength=6).type_as(c_t).view(6, 1)
        got_labels, got_c = cl.numpy(), c_t.numpy()
    else:
        x_i = kn.LazyTensor(x[:, None, :])
        c_np = c.copy()
        for _ in range(5):
            d_ij = ((x_i - kn.LazyTensor(c_np[None, :, :])) ** 2).sum(-1)
            cl = d_ij.argmin(axis=1).astype(int).reshape(-1)
            c_np = np.stack([x[cl == k].mean(0) for k in range(6)])
        got_labels, got_c = cl, c_np
    assert np.array_equal(got_labels, labels) and relative_error(got_c, dense_c) < 1e-13


@pytest.mark.parametrize("front", ["numpy", "torch"])
def test_knn(front):
    x, y = rng.random((50, 3)), rng.random((80, 3))
    want = np.argsort(_sqdist(x, y), axis=1, kind="stable")[:, :5]
    if front == "torch":
        x_i, y_j = kt.LazyTensor(torch.tensor(x)[:, None, :]), kt.LazyTensor(torch.tensor(y)[None, :, :])
        got = ((x_i - y_j) ** 2).sum(-1).argKmin(5, dim=1).numpy()
    else:
        got = ((kn.LazyTensor(x[:, None, :]) - kn.LazyTensor(y[None, :, :])) ** 2).sum(-1).argKmin(K=5, axis=1)
    assert np.array_equal(got, want)


def test_kernel_interpolation_with_solve():
    x, b = rng.random((60, 2)), rng.random((60, 3))
    x_i, x_j = kn.LazyTensor(x[:, None, :]), kn.LazyTensor(x[None, :, :])
    k_xx = (-((x_i - x_j) ** 2).sum(-1) / (2 * 0.3**2)).exp()
    a = k_xx.solve(kn.LazyTensor(b[:, None, :]), alpha=0.5, eps=1e-12)
    want = np.linalg.solve(0.5 * np.eye(60) + np.exp(-_sqdist(x, x) / (2 * 0.3**2)), b)
    assert relative_error(a, want) < 1e-9


@pytest.mark.parametrize("front", ["numpy", "torch"])
def test_kernel_solve(front):
    x, b = rng.random((40, 3)), rng.random((40, 2))
    formula, aliases = "Exp(-oos2 * SqDist(x, y)) * b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)", "oos2 = Pm(1)"]
    matrix = 0.1 * np.eye(40) + np.exp(-2.0 * _sqdist(x, x))
    want = np.linalg.solve(matrix, b)
    if front == "numpy":
        got = kn.KernelSolve(formula, aliases, "b", axis=1)(x, x, b, np.array([2.0]), alpha=0.1, eps=1e-12)
        assert relative_error(got, want) < 1e-9
        return
    xt = torch.tensor(x, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    got = kt.KernelSolve(formula, aliases, "b", axis=1)(xt, xt, bt, torch.tensor([2.0], dtype=torch.float64),
                                                       alpha=0.1, eps=1e-12)
    assert relative_error(got.detach().numpy(), want) < 1e-9
    e = torch.tensor(rng.random((40, 2)))
    gx, gb = torch.autograd.grad(got, [xt, bt], e)
    xd, bd = torch.tensor(x, requires_grad=True), torch.tensor(b, requires_grad=True)
    dense = torch.linalg.solve(0.1 * torch.eye(40, dtype=torch.float64)
                               + torch.exp(-2.0 * ((xd[:, None] - xd[None]) ** 2).sum(-1)), bd)
    wx, wb = torch.autograd.grad(dense, [xd, bd], e)
    assert relative_error(gx, wx) < 1e-7 and relative_error(gb, wb) < 1e-7


def test_sinkhorn_with_logsumexp_strings_and_tensor_constants():
    x, y = torch.rand(70, 2), torch.rand(90, 2)  # float32, as geomloss would have it
    a_log, b_log = torch.full((70, 1), -np.log(70.0)), torch.full((90, 1), -np.log(90.0))
    eps = 0.1
    c_ij = ((kt.LazyTensor(x[:, None, :]) - kt.LazyTensor(y[None, :, :])) ** 2).sum(-1) / 2
    softmin = kt.generic_logsumexp("G - P * SqDist(X, Y) / 2", "A = Vi(1)", "X = Vi(2)", "Y = Vj(2)", "G = Vj(1)",
                                   "P = Pm(1)")
    f, g = torch.zeros(70, 1), torch.zeros(90, 1)
    cost = (x[:, None].double() - y[None].double()).pow(2).sum(-1) / 2
    fd, gd = torch.zeros(70, 1, dtype=torch.float64), torch.zeros(90, 1, dtype=torch.float64)
    for _ in range(10):
        f = -eps * softmin(x, y, b_log + g / eps, torch.Tensor([1 / eps]))
        g = -eps * (kt.LazyTensor((a_log + f / eps)[:, None, :]) - c_ij * torch.Tensor([1 / eps])).logsumexp(dim=0)
        fd = -eps * torch.logsumexp(b_log.double().T + gd.T / eps - cost / eps, dim=1, keepdim=True)
        gd = -eps * torch.logsumexp(a_log.double() + fd / eps - cost / eps, dim=0)[:, None]
    assert relative_error(f.double(), fd) < 1e-4 and relative_error(g.double(), gd) < 1e-4


def test_gp_kernel_with_batches():
    x1, x2 = torch.rand(3, 20, 2, dtype=torch.float64), torch.rand(3, 30, 2, dtype=torch.float64)
    v = torch.rand(3, 30, 4, dtype=torch.float64)
    lengthscale = torch.full((1, 1, 1), 0.4, dtype=torch.float64)
    x1_ = kt.LazyTensor(x1[..., :, None, :] / lengthscale)
    x2_ = kt.LazyTensor(x2[..., None, :, :] / lengthscale)
    k = (((x1_ - x2_) ** 2).sum(-1) * -0.5).exp()
    assert k.shape == (3, 20, 30) and k.nbatchdims == 1
    dense = torch.exp(-0.5 * ((x1[:, :, None] - x2[:, None]) ** 2).sum(-1) / 0.16)
    assert relative_error(k @ v, dense @ v) < 1e-13
    assert relative_error(k @ v[0], dense @ v[0]) < 1e-13  # an unbatched v broadcasts over the batch
    single = k.sum(-1)  # the sum over the vector dimension of a scalar is itself
    assert relative_error(single.sum(dim=2), dense.sum(2, keepdim=True)) < 1e-13


def test_matmul_with_a_vector():
    x, y, b = rng.random((20, 3)), rng.random((25, 3)), rng.random(25)
    k = (-kn.Vi(x).sqdist(kn.Vj(y))).exp()
    out = k @ b
    assert out.shape == (20,) and relative_error(out, np.exp(-_sqdist(x, y)) @ b) < 1e-13


# the Genred formula language -----------------------------------------------------------------------------
_X, _Y = rng.random((9, 3)), rng.random((11, 3))


def _outer(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The row-major outer product of the last axes, flattened (TensorProd, Kron of vectors)."""
    x, y = np.broadcast_arrays(x, y)
    return (x[..., :, None] * y[..., None, :]).reshape(x.shape[:-1] + (x.shape[-1] * y.shape[-1],))


@pytest.mark.parametrize("formula,dense", [
    ("Norm2(x - y)", lambda x, y: np.linalg.norm(x - y, axis=-1, keepdims=True)),
    ("Inv(IntCst(1) + SqDist(x, y))", lambda x, y: 1 / (1 + ((x - y) ** 2).sum(-1, keepdims=True))),
    ("Step(x - y) + ReLU(x - y) + Sign(x - y)", lambda x, y: (x >= y) + np.maximum(x - y, 0) + np.sign(x - y)),
    ("Powf(SqNorm2(x - y) + 1, Elem(x, 0))", lambda x, y: (((x - y) ** 2).sum(-1, keepdims=True) + 1) ** x[..., :1]),
    ("WeightedSqDist(Elem(x, 1), x, y)", lambda x, y: x[..., 1:2] * ((x - y) ** 2).sum(-1, keepdims=True)),
    ("Atan(x - y) + Sin(x) * Cos(y)", lambda x, y: np.arctan(x - y) + np.sin(x) * np.cos(y)),
    ("Clamp(x - y, -0.2, 0.3)", lambda x, y: np.clip(x - y, -0.2, 0.3)),
    ("IfElse(x - y, x, y)", lambda x, y: np.where(x - y >= 0, x, y)),
    ("Max(x - y) + ArgMin(x - y)", lambda x, y: (x - y).max(-1, keepdims=True) + (x - y).argmin(-1)[..., None]),
    ("TensorProd(x, y)", _outer),
    ("MatVecMult(TensorProd(x, y), y)", lambda x, y: x * (y * y).sum(-1, keepdims=True)),
    ("Normalize(x - y)", lambda x, y: (x - y) / np.linalg.norm(x - y, axis=-1, keepdims=True)),
    ("SumT(Sum(x), 3)", lambda x, y: np.repeat(x.sum(-1, keepdims=True), 3, axis=-1) + 0 * y),
    ("OneHot(Floor(Elem(x, 0) * 3), 3)", lambda x, y: np.eye(3)[np.floor(x[..., 0] * 3).astype(int)] + 0 * y),
    ("Mod(x - y, 0.3, 0.1)", lambda x, y: x - y - 0.3 * np.floor((x - y - 0.1) / 0.3)),
    ("Round(x * 10, 1) + Zero(3)", lambda x, y: np.round(x * 10, 1) + 0 * y),
    ("Kron(x, y, [3], [3])", _outer),
    ("TensorDot(x, y, [3], [3], [0], [0])", lambda x, y: (x * y).sum(-1, keepdims=True)),
])
def test_genred_functions(formula, dense):
    routine = kn.Genred(formula, ["x = Vi(3)", "y = Vj(3)"], reduction_op="Sum", axis=1)
    want = dense(_X[:, None, :], _Y[None, :, :]).sum(1)
    assert relative_error(routine(_X, _Y), want) < 1e-12


def test_genred_sizes_from_unused_aliases_and_size_one():
    per_row = _X.sum(1, keepdims=True)
    # y is declared but unused: N comes from its argument, as in pykeops
    assert relative_error(kn.Genred("Sum(x)", ["x = Vi(3)", "y = Vj(3)"], axis=1)(_X, _Y), 11 * per_row) < 1e-13
    assert relative_error(kn.Genred("Sum(x)", ["x = Vi(3)"], axis=1)(_X), per_row) < 1e-13  # no j: N = 1
    out = np.empty((9, 1))
    result = kn.Genred("SqDist(x, y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)(_X, _Y, out=out, backend="auto",
                                                                         device_id=-1)
    assert result is out and relative_error(out, _sqdist(_X, _Y).sum(1, keepdims=True)) < 1e-13


def test_generic_argmin_and_pickle():
    import pickle

    argmin = kn.generic_argmin("SqDist(x, y)", "a = Vi(1)", "x = Vi(3)", "y = Vj(3)")
    assert np.array_equal(argmin(_X, _Y)[:, 0], _sqdist(_X, _Y).argmin(1))
    again = pickle.loads(pickle.dumps(argmin))
    assert np.array_equal(again(_X, _Y), argmin(_X, _Y))


def test_logsumexp_weight_spellings():
    x, y, b = rng.random((8, 2)), rng.random((10, 2)), rng.random((10, 1)) + 0.5
    f = -kn.Vi(x).sqdist(kn.Vj(y))
    want = np.log((np.exp(-_sqdist(x, y)) * b.T).sum(1, keepdims=True))
    assert relative_error(f.logsumexp(dim=1, weight=kn.Vj(b)), want) < 1e-13
    assert relative_error(f.logsumexp(axis=1, other=kn.Vj(b)), want) < 1e-13  # pykeops passes it on as `other`
    with pytest.raises(TypeError, match="unexpected option"):
        f.sum(axis=1, frobnicate=True)


def test_out_is_refused_for_two_results():
    f = kn.Vi(_X).sqdist(kn.Vj(_Y))
    with pytest.raises(ValueError, match="out= takes one array"):
        f.min_argmin(axis=1, out=np.empty((9, 1)))
