"""The rest of pykeops 2.3's public LazyTensor / Genred surface: matvec / rmatvec (scipy's LinearOperator
protocol), concatenate / cat, the reflected scalar product, Diff, GradMatrix, Factorize / AutoFactorize,
BSpline, SoftDTW_SqDist, DifferenceMatrix, their formula-language names, str() read back by Genred, and
pykeops' attribute and keyword names. Every value is checked against a float64 NumPy / torch reference
written here (finite differences for the derivatives), never against keir itself."""

import numpy as np
import pytest
import torch
from support.reference import relative_error

import keir.numpy as kn
import keir.torch as kt
from keir.dialect.ops import DimensionError

rng = np.random.default_rng(23)
FRONTS = [pytest.param(kn, id="numpy"), pytest.param(kt, id="torch")]


def _arrays(front, *arrays):
    return [torch.tensor(a) for a in arrays] if front is kt else list(arrays)


def _np(a):
    return a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _gaussian(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))


# 1. matvec / rmatvec ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("front", FRONTS)
def test_matvec_and_rmatvec(front):
    x, y, v, w = rng.random((7, 2)), rng.random((5, 2)), rng.random(5), rng.random((7, 3))
    xt, yt, vt, wt = _arrays(front, x, y, v, w)
    K = (-front.Vi(xt).sqdist(front.Vj(yt))).exp()
    dense = _gaussian(x, y)
    assert K.shape == (7, 5) and np.dtype(K.dtype) == np.float64  # what aslinearoperator reads
    assert _np(K.matvec(vt)).shape == (7,) and relative_error(K.matvec(vt), dense @ v) < 1e-13
    assert _np(K.rmatvec(wt)).shape == (5, 3) and relative_error(K.rmatvec(wt), dense.T @ w) < 1e-13


def test_matvec_drives_a_linear_solver():
    """What scipy's cg does with aslinearoperator(K): only K.matvec, here in a plain conjugate gradient."""
    x, b = rng.random((9, 2)), rng.random(9)
    K = (-kn.Vi(x).sqdist(kn.Vj(x))).exp()
    a, r = np.zeros(9), b.copy()
    p, rr = r.copy(), r @ r
    for _ in range(200):
        if rr < 1e-28:
            break
        q = K.matvec(p) + p  # (K + Id) p
        step = rr / (p @ q)
        a, r = a + step * p, r - step * q
        rr, rr_old = r @ r, rr
        p = r + (rr / rr_old) * p
    assert relative_error(a, np.linalg.solve(_gaussian(x, x) + np.eye(9), b)) < 1e-10


def test_scipy_linear_operator():
    sparse_linalg = pytest.importorskip("scipy.sparse.linalg")
    x = rng.random((9, 2))
    K = (-kn.Vi(x).sqdist(kn.Vj(x))).exp()
    values = sparse_linalg.eigsh(sparse_linalg.aslinearoperator(K), k=2, return_eigenvectors=False)
    assert relative_error(np.sort(values), np.linalg.eigvalsh(_gaussian(x, x))[-2:]) < 1e-10


# 2. concatenate / cat --------------------------------------------------------------------------------------
@pytest.mark.parametrize("front", FRONTS)
def test_concatenate_and_cat(front):
    x, y, z = rng.random((4, 2)), rng.random((3, 1)), rng.random((4, 3))
    xt, yt, zt = _arrays(front, x, y, z)
    LT = front.LazyTensor
    parts = (front.Vi(xt), front.Vj(yt), front.Vi(zt))
    want = np.concatenate([np.broadcast_to(a, (4, 3, a.shape[-1])) for a in (x[:, None], y[None], z[:, None])],
                          -1).sum(1)
    for joined in (LT.concatenate(parts), LT.concatenate(parts, axis=2), LT.cat(parts, -1), LT.cat(parts, 2)):
        assert joined.ndim == 6 and relative_error(joined.sum(axis=1), want) < 1e-13
    assert LT.concatenate(parts[:1]) is parts[0]
    with pytest.raises(ValueError, match="tuples"):
        LT.concatenate(list(parts))
    with pytest.raises(ValueError, match="empty"):
        LT.cat((), -1)
    with pytest.raises(ValueError, match="last axis"):
        LT.concatenate(parts, axis=1)
    with pytest.raises(TypeError, match="needs LazyTensors"):
        LT.concatenate((1.0, parts[0]))
    batched = LT(_arrays(front, rng.random((2, 4, 1, 3)))[0])
    assert LT.cat((batched, batched), 3).ndim == 6  # with a batch dimension the last axis is 3
    with pytest.raises(ValueError, match="last axis"):
        LT.cat((batched, batched), 2)


# 3. the reflected scalar product ----------------------------------------------------------------------------
@pytest.mark.parametrize("front", FRONTS)
def test_reflected_scalar_product(front):
    x, u = rng.random((5, 3)), rng.random(3)
    xt, ut = _arrays(front, x, u)
    for left in (ut, [float(v) for v in u]):
        product = left | front.Vi(xt)
        assert isinstance(product, front.LazyTensor) and product.ndim == 1
        assert relative_error(product.sum(axis=1), x @ u[:, None]) < 1e-13
    assert relative_error((2.0 | front.Vi(xt[:, :1])).sum(axis=1), 2 * x[:, :1]) < 1e-13
    with pytest.raises(DimensionError):
        [1.0, 2.0] | front.Vi(xt)


# 4. diff: forward differentiation ------------------------------------------------------------------------
def _diff_formula(x, y):
    return (x * y).sin() * x.sqnorm2() + y


def _diff_dense(x, y):  # the same formula, dense, x (M, 1, 3) and y (1, N, 3)
    return np.sin(x * y) * (x**2).sum(-1, keepdims=True) + y


def test_diff_against_finite_differences():
    x, y, e, w = rng.random((5, 3)), rng.random((6, 3)), rng.random((5, 3)), rng.random((6, 3))
    h = 1e-6

    def rows(x_, y_):
        return _diff_dense(x_[:, None], y_[None]).sum(1)

    xi, yj = kn.Vi(x), kn.Vj(y)
    f = _diff_formula(xi, yj)
    dx = f.diff(xi, kn.Vi(e))
    assert dx.ndim == 3 and "Diff" not in str(dx)  # expanded: the auxiliary variable is gone
    want = (rows(x + h * e, y) - rows(x - h * e, y)) / (2 * h)
    assert relative_error(dx.sum(axis=1), want) < 1e-8
    dy = f.diff(yj, kn.Vj(w)).sum(axis=1)
    assert relative_error(dy, (rows(x, y + h * w) - rows(x, y - h * w)) / (2 * h)) < 1e-8
    p, q = rng.random(3), rng.random(3)
    g = (kn.Vi(x) * kn.Pm(p)).exp().sum()  # scalar, differentiated along the parameter in direction q
    dp = g.diff(kn.Pm(p), kn.Pm(q)).sum(axis=1)
    dense = lambda p_: np.exp(x * p_).sum(-1, keepdims=True)  # noqa: E731
    assert relative_error(dp, (dense(p + h * q) - dense(p - h * q)) / (2 * h)) < 1e-8
    # no dependence: zeros; Diff through a Grad (the Hessian applied to e)
    assert relative_error(kn.Vi(x).exp().diff(kn.Vj(y), kn.Vj(w)).sum(axis=1), np.zeros((5, 3))) == 0
    s = kn.Vi(x).sqdist(kn.Vj(y)).exp()
    hess_e = s.grad(kn.Vi(x), 1.0).diff(kn.Vi(x), kn.Vi(e)).sum(axis=1)

    def grad_rows(x_):
        d = x_[:, None] - y[None]
        return (2 * d * np.exp((d**2).sum(-1, keepdims=True))).sum(1)

    assert relative_error(hess_e, (grad_rows(x + h * e) - grad_rows(x - h * e)) / (2 * h)) < 1e-7


def test_diff_errors():
    xi, yj = kn.Vi(rng.random((4, 3))), kn.Vj(rng.random((5, 3)))
    with pytest.raises(TypeError, match="with respect to a variable"):
        (xi * yj).diff(xi * 2, xi)
    with pytest.raises(DimensionError, match="direction has dimension 2"):
        (xi * yj).diff(xi, kn.Vi(rng.random((4, 2))))


def test_diff_gradients_torch():
    x = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
    y = torch.rand(4, 2, dtype=torch.float64, requires_grad=True)
    e = torch.rand(3, 2, dtype=torch.float64)

    def run(x_, y_):
        xi, yj = kt.Vi(x_), kt.Vj(y_)
        return (-(xi.sqdist(yj))).exp().diff(xi, kt.Vi(e)).sum(axis=1)

    def dense(x_, y_):
        d = x_[:, None] - y_[None]
        return (-2 * (d * e[:, None]).sum(-1, keepdim=True) * torch.exp(-(d**2).sum(-1, keepdim=True))).sum(1)

    assert relative_error(run(x, y).detach(), dense(x, y).detach()) < 1e-13
    assert torch.autograd.gradcheck(run, (x, y))


# 5. grad_matrix ------------------------------------------------------------------------------------------
def test_grad_matrix_component_order():
    x, y, h = rng.random((4, 3)), rng.random((5, 3)), 1e-6
    xi, yj = kn.Vi(x), kn.Vj(y)
    f = (xi | yj).sin().concat(xi[0] * yj[2] + xi[1].square())  # dimension 2, x of dimension 3

    def rows(x_):
        dense_x, dense_y = x_[:, None], y[None]
        first = np.sin((dense_x * dense_y).sum(-1, keepdims=True))
        second = dense_x[..., :1] * dense_y[..., 2:] + dense_x[..., 1:2] ** 2
        return np.concatenate([first, second], -1).sum(1)

    matrix = f.grad_matrix(xi)
    assert matrix.ndim == 6
    out = matrix.sum(axis=1)
    for l in range(3):  # component k*3 + l is d f_k / d x_l
        step = np.zeros(3)
        step[l] = h
        column = (rows(x + step) - rows(x - step)) / (2 * h)
        for k in range(2):
            assert relative_error(out[:, 3 * k + l], column[:, k]) < 1e-8
    scalar = (xi | yj).exp().grad_matrix(yj).sum(axis=1)  # a scalar formula: its gradient
    want = (np.exp((x[:, None] * y[None]).sum(-1, keepdims=True)) * x[:, None]).sum(1)
    assert relative_error(scalar, want) < 1e-13
    with pytest.raises(TypeError, match="with respect to a variable"):
        f.grad_matrix(xi + 1)


# 6. factorize / auto_factorize ----------------------------------------------------------------------------
@pytest.mark.parametrize("front", FRONTS)
def test_factorize_does_not_change_the_value(front):
    x, y = rng.random((5, 3)), rng.random((6, 3))
    xt, yt = _arrays(front, x, y)
    xi, yj = front.Vi(xt), front.Vj(yt)
    d = xi.sqdist(yj)
    f = (-d).exp() * d + d.sqrt()
    dense_d = ((x[:, None] - y[None]) ** 2).sum(-1, keepdims=True)
    want = (np.exp(-dense_d) * dense_d + np.sqrt(dense_d)).sum(1)
    for hinted in (f.factorize(d), f.auto_factorize(), f.factorize(xi - yj).auto_factorize()):
        assert hinted.formula == f.formula and relative_error(hinted.sum(axis=1), want) < 1e-13
    # pykeops joins the factor's variables: a j-variable there gives the formula N columns
    assert front.Vi(xt).exp().factorize(front.Vj(yt)).shape == (5, 6, 3)


# 7. bspline ----------------------------------------------------------------------------------------------
def _bspline_reference(t: np.ndarray, x: float, k: int) -> np.ndarray:
    """Cox-de Boor from the textbook definition, 0/0 taken as 0; order 0 is the indicator of [t_i, t_i+1)."""

    def basis(i: int, p: int) -> float:
        if p == 0:
            return float(t[i] <= x < t[i + 1])
        left = 0.0 if t[i + p] == t[i] else (x - t[i]) / (t[i + p] - t[i]) * basis(i, p - 1)
        right = 0.0 if t[i + p + 1] == t[i + 1] else (
            (t[i + p + 1] - x) / (t[i + p + 1] - t[i + 1]) * basis(i + 1, p - 1))
        return left + right

    return np.array([basis(i, k) for i in range(len(t) - k - 1)])


KNOTS = np.array([0.0, 0.0, 0.0, 0.7, 1.5, 1.5, 2.0, 3.0, 3.0, 3.0])  # clamped, with a repeated inner knot
POINTS = np.array([0.0, 0.35, 0.7, 1.1, 1.5, 1.75, 2.0, 2.9, 3.0, -0.2, 3.4]).reshape(-1, 1)  # knots, outside


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_bspline_against_cox_de_boor(k):
    out = kn.Pm(KNOTS).bspline(kn.Vi(POINTS), k)
    assert out.ndim == len(KNOTS) - k - 1
    want = np.stack([_bspline_reference(KNOTS, v, k) for v in POINTS[:, 0]])
    got = out.sum(axis=1)
    assert np.abs(got - want).max() < 1e-14
    inside = (POINTS[:, 0] >= 0) & (POINTS[:, 0] < 3)
    assert np.all(got[~inside] == 0)  # zero at the last knot and outside
    if k == 2:  # with triple end knots, a partition of unity on [t_0, t_-1)
        assert np.abs(got[inside].sum(1) - 1.0).max() < 1e-14


def test_bspline_knots_per_point_and_torch():
    """Knots as a j-variable (one knot vector per j), on torch, odd sizes."""
    knots = np.sort(rng.random((3, 6)) * 4, axis=1)
    knots[1, 2] = knots[1, 3]  # a repeated knot in one of them
    points = rng.random((5, 1)) * 4
    out = kt.Vj(torch.tensor(knots)).bspline(kt.Vi(torch.tensor(points)), 2).sum(axis=1)
    want = sum(np.stack([_bspline_reference(t, v, 2) for v in points[:, 0]]) for t in knots)
    assert isinstance(out, torch.Tensor) and relative_error(out, want) < 1e-13


def test_bspline_gradients_torch():
    knots = torch.tensor([0.0, 0.4, 1.1, 1.6, 2.5, 3.0], dtype=torch.float64, requires_grad=True)
    points = torch.tensor([[0.2], [0.9], [1.3], [2.2], [2.8]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, x: kt.Pm(t).bspline(kt.Vi(x), 2).sum(axis=1), (knots, points))


def test_bspline_errors():
    t, x = kn.Pm(KNOTS), kn.Vi(POINTS)
    with pytest.raises(ValueError, match="must be >= 0, got -1"):
        t.bspline(x, -1)
    with pytest.raises(TypeError, match="must be an integer"):
        t.bspline(x, 1.5)
    with pytest.raises(DimensionError, match="scalar values, got x of dimension 2"):
        t.bspline(kn.Vi(rng.random((3, 2))), 1)
    with pytest.raises(DimensionError, match="order 3 need at least 5 knots, got 4"):
        kn.Pm(KNOTS[:4]).bspline(x, 3)


# 8. softdtw_sqdist, difference_matrix --------------------------------------------------------------------
def _softdtw_reference(a: np.ndarray, b: np.ndarray, gamma: float) -> float:
    """The soft-DTW recursion from its definition: R[0, 0] = 0, R = inf on the other borders,
    R[i, j] = (a_i - b_j)^2 + softmin_gamma(R[i-1, j-1], R[i-1, j], R[i, j-1])."""
    r = np.full((len(a) + 1, len(b) + 1), np.inf)
    r[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            previous = np.array([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]])
            low = previous.min()
            soft = low - gamma * np.log(np.exp(-(previous - low) / gamma).sum())
            r[i, j] = (a[i - 1] - b[j - 1]) ** 2 + soft
    return r[-1, -1]


def _softdtw_torch(a: torch.Tensor, b: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """The same definition in torch (for torch's autograd): borders have a single predecessor."""
    r: dict = {}
    for i in range(len(a)):
        for j in range(len(b)):
            previous = [r[p] for p in ((i - 1, j - 1), (i - 1, j), (i, j - 1)) if p in r]
            soft = -gamma * torch.logsumexp(-torch.stack(previous) / gamma, 0) if previous else 0
            r[i, j] = (a[i] - b[j]) ** 2 + soft
    return r[len(a) - 1, len(b) - 1]


@pytest.mark.parametrize("front", FRONTS)
def test_softdtw_sqdist(front):
    x, y = rng.random((4, 3)), rng.random((5, 2))  # series of lengths 3 and 2 (the formula Genred reads below)
    xt, yt = _arrays(front, x, y)
    want = np.array([[sum(_softdtw_reference(a, b, 0.25) for b in y)] for a in x])
    assert relative_error(front.Vi(xt).softdtw_sqdist(front.Vj(yt), 0.25).sum(axis=1), want) < 1e-13
    short = front.Vi(xt[:, :1]).softdtw_sqdist(front.Vj(yt), 0.25)  # n = 1: a plain sum of the costs
    assert relative_error(short.sum(axis=1), ((x[:, None, :1] - y[None]) ** 2).sum(-1).sum(1, keepdims=True)) < 1e-13


def test_softdtw_gradients_torch():
    """gamma a parameter; gradients with respect to x and gamma against torch's autograd of the reference (y's
    is x's with the roles exchanged; each input's gradient is one more kernel to compile)."""
    x = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
    y = torch.rand(4, 2, dtype=torch.float64)
    gamma = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)
    out = kt.Vi(x).softdtw_sqdist(kt.Vj(y), kt.Pm(gamma)).sum(axis=1).sum()
    want = sum(_softdtw_torch(a, b, gamma[0]) for a in x for b in y)
    assert relative_error(out.detach(), want.detach()) < 1e-13
    for got, expected in zip(torch.autograd.grad(out, (x, gamma)), torch.autograd.grad(want, (x, gamma))):
        assert relative_error(got, expected) < 1e-12


def test_softdtw_errors():
    x, y = kn.Vi(rng.random((3, 3))), kn.Vj(rng.random((2, 2)))
    with pytest.raises(DimensionError, match="gamma must be a scalar"):
        x.softdtw_sqdist(y, kn.Pm(np.array([0.1, 0.2])))


@pytest.mark.parametrize("front", FRONTS)
def test_difference_matrix(front):
    x, y = rng.random((4, 3)), rng.random((5, 2))
    xt, yt = _arrays(front, x, y)
    out = front.Vi(xt).difference_matrix(front.Vj(yt))
    assert out.ndim == 6
    # component j*n + i is x_i - y_j (n = 3)
    want = np.stack([x[:, None, i] - y[None, :, j] for j in range(2) for i in range(3)], -1).sum(1)
    assert relative_error(out.sum(axis=1), want) < 1e-13


# 9. formula-language names and str() read back by Genred -------------------------------------------------
def test_genred_names():
    x, y, e = rng.random((4, 3)), rng.random((5, 2)), rng.random((4, 3))
    cases = [
        ("BSpline(t, p, 2)", ["t = Pm(10)", "p = Vi(1)"], (KNOTS, POINTS),
         np.stack([_bspline_reference(KNOTS, v, 2) for v in POINTS[:, 0]])),
        ("SoftDTW_SqDist(x, y, IntInv(4))", ["x = Vi(3)", "y = Vj(2)"], (x, y),  # gamma = 1/4
         np.array([[sum(_softdtw_reference(a, b, 0.25) for b in y)] for a in x])),
        ("DifferenceMatrix(x, y)", ["x = Vi(3)", "y = Vj(2)"], (x, y),
         np.stack([x[:, None, i] - y[None, :, j] for j in range(2) for i in range(3)], -1).sum(1)),
        ("Diff(Exp(x) * Sum(y), x, e)", ["x = Vi(3)", "y = Vj(2)", "e = Vi(3)"], (x, y, e),
         np.exp(x) * e * y.sum()),
        ("GradMatrix(Exp(x) * Sum(y), x)", ["x = Vi(3)", "y = Vj(2)"], (x, y),
         (np.einsum("ik,kl->ikl", np.exp(x), np.eye(3)) * y.sum()).reshape(4, 9)),
        ("AutoFactorize(Factorize(Exp(x) * Exp(x), Exp(x)))", ["x = Vi(3)"], (x,), np.exp(2 * x)),
        ("ElemT(Sum(x), 4, 1) + ExtractT(x, 1, 4)", ["x = Vi(3)"], (x,),
         np.stack([0 * x[:, 0], x.sum(1) + x[:, 0], x[:, 1], x[:, 2]], -1)),
        ("DiffClampInt(x, 0, 1) * RatCst(3, 4)", ["x = Vi(3)"], (x * 3 - 1,),
         ((x * 3 - 1 >= 0) & (x * 3 - 1 <= 1)) * 0.75),
    ]
    for formula, aliases, arrays, want in cases:
        out = kn.Genred(formula, aliases, axis=1)(*arrays)
        assert relative_error(out, want) < 1e-13, formula


def test_str_reads_back_through_genred():
    x, y, e = rng.random((4, 3)), rng.random((5, 2)), rng.random((4, 3))
    xi, yj = kn.Vi(x), kn.Vj(y)
    formulas = [
        kn.Pm(KNOTS).bspline(kn.Vi(POINTS), 2),
        xi.softdtw_sqdist(yj, 0.25),
        xi.difference_matrix(yj),
        (xi.exp() * yj.sum()).diff(xi, kn.Vi(e)),
        (xi.exp() * yj.sum()).grad_matrix(xi),  # holds constant vectors, written Concat(1, 0)
        xi.extract(1, 2).concat(kn.LazyTensor([1.0, 2.0])),  # Extract(x, start, length)
    ]
    for lazy in formulas:
        formula = str(lazy).split("formula: ")[1].splitlines()[0]
        got = kn.Genred(formula, [], axis=1)(*lazy.arrays)
        assert relative_error(got, lazy.sum(axis=1)) < 1e-14, formula
        if lazy is formulas[0]:
            want = np.stack([_bspline_reference(KNOTS, v, 2) for v in POINTS[:, 0]])
            assert relative_error(got, want) < 1e-13


# pykeops' attributes, methods and keyword names -----------------------------------------------------------
def test_attributes_and_named_arithmetic():
    x, y, b = rng.random((4, 3)), rng.random((5, 3)), rng.random((2, 4, 1, 3))
    xi, yj = kn.Vi(x), kn.Vj(y)
    f = xi - yj
    assert (f.ni, f.nj, f.batchdims, xi.nj) == (4, 5, None, None)
    assert kn.LazyTensor(b).batchdims == (2,) and f.is_complex is False
    assert f.formula == "(Vi(0,3) - Vj(1,3))" and f.variables[0] is x and f.variables[1] is y
    s = kn.Vi(0, 3) * kn.Vj(2, 1)
    assert s.symbolic_variables == ((0, 3, 0), (2, 1, 1)) and s.variables == ()
    # the named arithmetic is the operators' (which the rest of the suite checks against NumPy)
    for name, op in (("addop", "__add__"), ("subop", "__sub__"), ("mulop", "__mul__"), ("divop", "__truediv__")):
        assert getattr(xi, name)(yj).node is getattr(xi, op)(yj).node
        assert getattr(xi, name)(2.0, rversion=True).node is getattr(xi, op.replace("__", "__r", 1))(2.0).node
    assert f.__min__().node is f.min().node
    assert relative_error(f.__max__(axis=1), (x[:, None] - y[None]).max(1)) < 1e-15


def test_pykeops_keyword_names():
    """pykeops' parameter names, so that calls written with keywords work (the formulas are the same)."""
    xi, yj = kn.Vi(rng.random((4, 3))), kn.Vj(rng.random((5, 3)))
    e, s = kn.Vi(rng.random((4, 3))), kn.Pm(rng.random(3))
    same = [
        (xi.elem(i=1), xi.elem(1)), (xi.extract(i=1, d=2), xi.extract(1, 2)), (xi[0].one_hot(D=4), xi[0].one_hot(4)),
        (xi.round(other=2), xi.round(2)), (xi.power(other=3), xi**3), (xi.clamp(other1=0, other2=1), xi.clamp(0, 1)),
        (xi.ifelse(other1=yj, other2=e), xi.ifelse(yj, e)), (xi.weightedsqnorm(other=s), xi.weightedsqnorm(s)),
        (xi.weightedsqdist(g=yj, s=s), xi.weightedsqdist(yj, s)), (xi.grad(yj, gradin=e), xi.grad(yj, e)),
        (xi.diff(other=yj, diffin=e), xi.diff(yj, e)), (xi.grad_matrix(other=xi), xi.grad_matrix(xi)),
        (xi.sqnorm2().laplacian(var=xi), xi.sqnorm2().laplacian(xi)), (xi.divergence(var=xi), xi.divergence(xi)),
        (xi.trace_operator(var=xi), xi.trace_operator(xi)),
        (xi.keops_kron(other=yj, dimfself=[3], dimfother=[3]), xi.keops_kron(yj, [3], [3])),
        (xi.bspline(x=xi[0], k=1), xi.bspline(xi[0], 1)), (xi.softdtw_sqdist(other=yj, gamma=0.1),
                                                            xi.softdtw_sqdist(yj, 0.1)),
        (kn.LazyTensor.concatenate(tuple_of_lt=(xi, yj), axis=-1), xi.concat(yj)),
    ]
    for keyword, positional in same:
        assert keyword.node is positional.node
    matrix = kn.Pm(rng.random(9))
    assert matrix.matvecmult(other=xi).node is matrix.matvecmult(xi).node
    assert xi.vecmatmult(other=matrix).node is xi.vecmatmult(matrix).node
    v = rng.random(5)
    K = (-xi.sqdist(yj)).exp()
    assert relative_error(K.__matmul__(v=v), K @ v) == 0 and relative_error(K.matvec(v=v), K @ v) == 0


# ---- LazyTensor.reduction (pykeops' reduction by name) and LazyTensor.op (a catalogue op by name) ---------------


@pytest.mark.parametrize("front", FRONTS)
def test_reduction_by_pykeops_name_matches_dense(front):
    x, y, b = rng.random((40, 3)), rng.random((30, 3)), rng.random((30, 2))
    xs, ys, bs = _arrays(front, x, y, b)
    d = front.Vi(xs).sqdist(front.Vj(ys))
    dense = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)  # (M, N)
    np.testing.assert_allclose(_np(d.reduction("Sum", axis=1)), dense.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(_np(d.reduction("Min", axis=0)), dense.min(0)[:, None], rtol=1e-12)
    assert (_np(d.reduction("ArgKMin", opt_arg=4, axis=1)) == np.argsort(dense, 1)[:, :4]).all()
    weights = np.exp(-dense)
    lse = np.log(weights @ b)
    np.testing.assert_allclose(_np((-d).reduction("LogSumExp", other=front.Vj(bs), axis=1)), lse, rtol=1e-12)
    softmax = weights @ b / weights.sum(1, keepdims=True)
    np.testing.assert_allclose(_np((-d).reduction("SumSoftMaxWeight", other=front.Vj(bs), dim=1)), softmax,
                               rtol=1e-12)
    reduction = d.reduction("Max", axis=1, call=False)  # a callable Reduction, as with call=False elsewhere
    np.testing.assert_allclose(_np(reduction()), dense.max(1, keepdims=True), rtol=1e-12)


def test_reduction_by_name_rejects_what_it_cannot_do():
    d = kn.Vi(rng.random((5, 3))).sqdist(kn.Vj(rng.random((6, 3))))
    for call, message in [(lambda: d.reduction("Median", axis=1), "unknown reduction_op 'Median'"),
                          (lambda: d.reduction("KMin", axis=1), "needs opt_arg"),
                          (lambda: d.reduction("Sum", opt_arg=3, axis=1), "takes no opt_arg"),
                          (lambda: d.reduction("Sum", other=d, axis=1), "takes no weight"),
                          (lambda: d.reduction("SumSoftMaxWeight", axis=1), "needs the weight"),
                          (lambda: d.reduction("Sum", axis=1, is_complex=True), "needs a complex LazyTensor")]:
        with pytest.raises(ValueError, match=message):
            call()


def test_op_applies_a_catalogue_op_by_name():
    x, y = rng.random((5, 3)), rng.random((6, 3))
    xi, yj = kn.Vi(x), kn.Vj(y)
    got = xi.op("atan2", yj).op("elem", index=2).sum(axis=1)
    np.testing.assert_allclose(got, np.arctan2(x[:, None, 2], y[None, :, 2]).sum(1, keepdims=True), rtol=1e-12)
    for args, message in [(("nope",), "unknown keir op 'nope'"), (("add",), "takes 2 operand"),
                          (("elem",), "needs attributes"), (("reduce",), "not keir.reduce")]:
        with pytest.raises(ValueError, match=message):
            xi.op(*args)
