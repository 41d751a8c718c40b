"""pykeops' wider op set (issue 7) under a sum reduction, against NumPy float64, in float32 and float64."""

import numpy as np
import pytest
from support.reference import kernel_sum, relative_error

import keir.numpy as kn

M, N = 37, 53


def _mat(a):  # a (..., 9) row-major 3x3 matrix
    return a.reshape(a.shape[:-1] + (3, 3))


def _outer(a, b):  # row-major outer product of the last axes, broadcast
    product = a[..., :, None] * b[..., None, :]
    return product.reshape(product.shape[:-2] + (-1,))


# name: (keir formula on x_i (3), y_j (3), m_i (9), t_j (1)), NumPy on broadcast float64 arrays)
OPS = {
    "sin": (lambda x, y, m, t: (x - y).sin(), lambda x, y, m, t: np.sin(x - y)),
    "cos": (lambda x, y, m, t: (x * y).cos(), lambda x, y, m, t: np.cos(x * y)),
    "asin": (lambda x, y, m, t: (x * y / 4).asin(), lambda x, y, m, t: np.arcsin(x * y / 4)),
    "acos": (lambda x, y, m, t: (x * y / 4).acos(), lambda x, y, m, t: np.arccos(x * y / 4)),
    "atan": (lambda x, y, m, t: (x * y).atan(), lambda x, y, m, t: np.arctan(x * y)),
    "atan2": (lambda x, y, m, t: x.atan2(y), lambda x, y, m, t: np.arctan2(x, y)),
    "sign": (lambda x, y, m, t: (x - y).sign(), lambda x, y, m, t: np.sign(x - y)),
    "step": (lambda x, y, m, t: (x - y).step(), lambda x, y, m, t: (x - y >= 0) * 1.0),
    "relu": (lambda x, y, m, t: (x - y).relu(), lambda x, y, m, t: np.maximum(x - y, 0)),
    "floor": (lambda x, y, m, t: (x * y).floor(), lambda x, y, m, t: np.floor(x * y)),
    "round": (lambda x, y, m, t: (x * y).round(1), lambda x, y, m, t: np.round(x * y, 1)),
    "xlogx": (lambda x, y, m, t: abs(x * y).xlogx(), lambda x, y, m, t: np.abs(x * y) * np.log(np.abs(x * y))),
    "sinxdivx": (lambda x, y, m, t: (x - y).sinxdivx(), lambda x, y, m, t: np.sin(x - y) / (x - y)),
    "sinc": (lambda x, y, m, t: (x - y).sinc(), lambda x, y, m, t: np.sinc(x - y)),
    "inv": (lambda x, y, m, t: (x * x + t).inv(), lambda x, y, m, t: 1 / (x * x + t)),
    "powf": (lambda x, y, m, t: abs(x).powf(abs(y)), lambda x, y, m, t: np.abs(x) ** np.abs(y)),
    "pow": (lambda x, y, m, t: (x - y).power(3), lambda x, y, m, t: (x - y) ** 3),
    "lt": (lambda x, y, m, t: x < y, lambda x, y, m, t: (x < y) * 1.0),
    "le": (lambda x, y, m, t: x <= y, lambda x, y, m, t: (x <= y) * 1.0),
    "gt": (lambda x, y, m, t: x > y, lambda x, y, m, t: (x > y) * 1.0),
    "ge": (lambda x, y, m, t: x >= y, lambda x, y, m, t: (x >= y) * 1.0),
    "eq": (lambda x, y, m, t: x.floor() == y.floor(), lambda x, y, m, t: (np.floor(x) == np.floor(y)) * 1.0),
    "ne": (lambda x, y, m, t: x.floor() != y.floor(), lambda x, y, m, t: (np.floor(x) != np.floor(y)) * 1.0),
    "clamp": (lambda x, y, m, t: (x * y).clamp(-1, t), lambda x, y, m, t: np.clip(x * y, -1, t)),
    "ifelse": (lambda x, y, m, t: (x - y).ifelse(x, y * 2), lambda x, y, m, t: np.where(x - y >= 0, x, y * 2)),
    "mod": (lambda x, y, m, t: (x * y).mod(0.7, 0.1), lambda x, y, m, t: x * y - 0.7 * np.floor((x * y - 0.1) / 0.7)),
    "min": (lambda x, y, m, t: (x - y).min(), lambda x, y, m, t: (x - y).min(-1, keepdims=True)),
    "max": (lambda x, y, m, t: (x - y).max(), lambda x, y, m, t: (x - y).max(-1, keepdims=True)),
    "argmin": (lambda x, y, m, t: (x - y).argmin(), lambda x, y, m, t: (x - y).argmin(-1)[..., None] * 1.0),
    "argmax": (lambda x, y, m, t: (x - y).argmax(), lambda x, y, m, t: (x - y).argmax(-1)[..., None] * 1.0),
    "one_hot": (lambda x, y, m, t: (x - y).argmax().one_hot(3), lambda x, y, m, t: np.eye(3)[(x - y).argmax(-1)]),
    "norm2": (lambda x, y, m, t: (x - y).norm2(), lambda x, y, m, t: np.linalg.norm(x - y, axis=-1, keepdims=True)),
    "norm": (lambda x, y, m, t: (x - y).norm(dim=-1), lambda x, y, m, t: np.linalg.norm(x - y, axis=-1, keepdims=True)),
    "normalize": (lambda x, y, m, t: (x - y).normalize(),
                  lambda x, y, m, t: (x - y) / np.linalg.norm(x - y, axis=-1, keepdims=True)),
    "weightedsqnorm_1": (lambda x, y, m, t: (x - y).weightedsqnorm(t),
                         lambda x, y, m, t: t * ((x - y) ** 2).sum(-1, keepdims=True)),
    "weightedsqnorm_d": (lambda x, y, m, t: (x - y).weightedsqnorm(x * x),
                         lambda x, y, m, t: (x * x * (x - y) ** 2).sum(-1, keepdims=True)),
    "weightedsqdist": (lambda x, y, m, t: x.weightedsqdist(y, m),
                       lambda x, y, m, t: np.einsum("...i,...ij,...j->...", x - y, _mat(m), x - y)[..., None]),
    "matvecmult": (lambda x, y, m, t: m.matvecmult(y), lambda x, y, m, t: np.einsum("...ij,...j->...i", _mat(m), y)),
    "vecmatmult": (lambda x, y, m, t: y.vecmatmult(m), lambda x, y, m, t: np.einsum("...i,...ij->...j", y, _mat(m))),
    "tensorprod": (lambda x, y, m, t: x.tensorprod(y), lambda x, y, m, t: _outer(x, y)),
    "tensordot": (lambda x, y, m, t: m.keops_tensordot(x.concat(y), (3, 3), (2, 3), (0,), (1,)),
                  lambda x, y, m, t: _tensordot(m, x, y)),
    "kron": (lambda x, y, m, t: x.keops_kron(y[:2], (3,), (2,)), lambda x, y, m, t: _outer(x, y[..., :2])),
}


def _tensordot(m, x, y):  # sum_i M[i, j] * XY[k, i], XY = (x, y) as a 2 x 3 matrix
    x, y = np.broadcast_arrays(x, y)
    m = np.broadcast_to(m, x.shape[:-1] + (9,))
    xy = np.stack([x, y], -2)
    out = np.einsum("...ij,...ki->...jk", _mat(m), xy)
    return out.reshape(out.shape[:-2] + (6,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_op(name, dtype):
    rng = np.random.default_rng(len(name))
    x, y = rng.uniform(-2, 2, (M, 3)).astype(dtype), rng.uniform(-2, 2, (N, 3)).astype(dtype)
    m, t = rng.uniform(-1, 1, (M, 9)).astype(dtype), rng.uniform(0.5, 1.5, (N, 1)).astype(dtype)
    keir_formula, numpy_formula = OPS[name]
    out = keir_formula(kn.Vi(x), kn.Vj(y), kn.Vi(m), kn.Vj(t)).sum(axis=1)
    want = kernel_sum(lambda x, m, y, t: numpy_formula(x, y, m, t), [x, m], [y, t], [])
    discontinuous = name in ("sign", "step", "floor", "round", "lt", "le", "gt", "ge", "eq", "ne", "mod",
                             "argmin", "argmax", "one_hot", "ifelse")
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    if discontinuous and dtype == np.float32:
        # a float32 input may land on the other side of a jump than its float64 value: compare with the
        # reference computed from the float32 inputs themselves
        want32 = kernel_sum(lambda x, m, y, t: numpy_formula(x, y, m, t), [x.astype(np.float64), m],
                            [y.astype(np.float64), t], [])
        assert relative_error(out, want32) < 1e-4
    else:
        assert relative_error(out, want) < tolerance, name


def test_dimension_errors_of_linear_algebra():
    x = kn.Vi(np.ones((2, 3)))
    with pytest.raises(kn.LazyTensor.__mro__[1].__module__ and ValueError, match="weightedsqnorm"):
        x.weightedsqnorm(kn.Vj(np.ones((2, 2))))
    with pytest.raises(ValueError, match="matvecmult"):
        kn.Vi(np.ones((2, 4))).matvecmult(x)
    with pytest.raises(ValueError, match="keops_tensordot"):
        x.keops_tensordot(x, (3,), (3,), (0,), (0,)) if False else x.keops_tensordot(x, (2,), (3,), (0,), (0,))
