"""Half precision (issue 17): float16 and bfloat16 arrays, computed in float32, rounded at the end, for every
reduction kind on NumPy and torch, with torch gradients; against float64 references computed from the same
half-precision inputs. The bound is the rounding of the result to the half dtype (half an ulp: 2^-11 relative
for float16, 2^-8 for bfloat16) plus the float32 arithmetic (1e-5 of the largest value)."""

from __future__ import annotations

import numpy as np
import pytest

from keir.numpy import LazyTensor, Vi, Vj

torch = pytest.importorskip("torch", reason="torch's float16 and bfloat16 tensors")
import keir.torch as kt  # noqa: E402

ml_dtypes = pytest.importorskip("ml_dtypes", reason="NumPy has no bfloat16 of its own (ml_dtypes gives it)")

M, N, D = 37, 53, 3
HALF_ULP = {"float16": 2.0**-11, "bfloat16": 2.0**-8}
NUMPY_DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _inputs(name: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1, 1, shape).astype(NUMPY_DTYPES[name]) for shape in ((M, D), (N, D), (N, 2))]
    return arrays, [a.astype(np.float64) for a in arrays]


def _assert_within_half_rounding(got, want, name: str):
    got = np.asarray(got, dtype=np.float64)
    bound = HALF_ULP[name] * np.abs(want) + 1e-5 * np.abs(want).max() + 1e-30
    assert np.all(np.abs(got - want) <= bound), float(np.max(np.abs(got - want) / bound))


def _dense(x, y, b):
    f = -((x[:, None] - y[None]) ** 2).sum(-1)  # (M, N): -|x_i - y_j|^2
    return f, np.exp(f)[:, :, None] * b[None]


@pytest.mark.parametrize("name", sorted(HALF_ULP))
def test_every_reduction_kind_numpy(name):
    (x, y, b), (x64, y64, b64) = _inputs(name)
    f, terms = _dense(x64, y64, b64)
    K = -Vi(x).sqdist(Vj(y))
    cases = {
        "sum": ((K.exp() * Vj(b)).sum(axis=1), terms.sum(1)),
        "sum_block": ((K.exp() * Vj(b)).sum(axis=1, sum_scheme="kahan_scheme"), terms.sum(1)),
        "min": (K.min(axis=1), f.min(1, keepdims=True)),
        "max": (K.max(axis=1), f.max(1, keepdims=True)),
        "kmin": (K.Kmin(3, axis=1), np.sort(f, 1)[:, :3]),
        "logsumexp": (K.logsumexp(axis=1), np.log(np.exp(f).sum(1, keepdims=True))),
        "softmax": (K.sumsoftmaxweight(Vj(b), axis=1), (np.exp(f)[:, :, None] * b64[None]).sum(1)
                    / np.exp(f).sum(1)[:, None]),
    }
    for kind, (got, want) in cases.items():
        assert got.dtype == NUMPY_DTYPES[name], kind
        _assert_within_half_rounding(got, want, name)
    for reduce in ("argmin", "argmax"):  # an index whose value is the extremum (within float32 ties)
        index = getattr(K, reduce)(axis=1)
        assert index.dtype == np.int64
        picked = np.take_along_axis(f, index, 1)
        extreme = f.min(1, keepdims=True) if reduce == "argmin" else f.max(1, keepdims=True)
        np.testing.assert_allclose(picked, extreme, rtol=1e-6)
    values, indices = K.Kmin_argKmin(2, axis=1)
    assert values.dtype == NUMPY_DTYPES[name] and indices.dtype == np.int64
    _assert_within_half_rounding(np.take_along_axis(f, indices, 1), np.sort(f, 1)[:, :2], name)


@pytest.mark.parametrize("name", sorted(HALF_ULP))
def test_torch_values_and_gradients(name):
    dtype = getattr(torch, name)
    (x, y, b), _ = _inputs(name, seed=1)
    xs, ys, bs = (torch.from_numpy(a.astype(np.float32)).to(dtype) for a in (x, y, b))
    mine, theirs = xs.clone().requires_grad_(), xs.double().requires_grad_()
    out = ((-kt.Vi(mine).sqdist(kt.Vj(ys))).exp() * kt.Vj(bs)).sum(axis=1)
    want = (torch.exp(-((theirs[:, None] - ys.double()[None]) ** 2).sum(-1))[:, :, None] * bs.double()[None]).sum(1)
    assert out.dtype == dtype
    _assert_within_half_rounding(out.detach().double().numpy(), want.detach().numpy(), name)
    # the cotangent reaches keir in the half dtype: the reference gets the same rounded one
    weight = torch.linspace(-1, 1, out.numel()).reshape(out.shape).to(dtype).double()
    (out.double() * weight).sum().backward()
    (want * weight).sum().backward()
    assert mine.grad.dtype == dtype
    _assert_within_half_rounding(mine.grad.double().numpy(), theirs.grad.numpy(), name)
    lse = (-kt.Vi(xs).sqdist(kt.Vj(ys))).logsumexp(axis=1)
    assert lse.dtype == dtype


def test_half_arrays_meet_only_their_own_dtype():
    (x, y, _), _ = _inputs("float16")
    with pytest.raises(TypeError, match="mixed dtypes"):
        Vi(x).sqdist(Vj(y.astype(np.float32)))
    with pytest.raises(TypeError, match="mixed dtypes"):
        Vi(x).sqdist(Vj(y.astype(ml_dtypes.bfloat16)))
    with pytest.raises(TypeError, match="float16 and bfloat16"):
        LazyTensor(np.ones((3, 1, 2), dtype=np.int32))


def test_symbolic_variables_and_out_take_half_arrays():
    (x, y, b), (x64, y64, b64) = _inputs("float16", seed=2)
    routine = (-Vi(0, D).sqdist(Vj(1, D))).exp().sum(axis=1, call=False)
    out = np.empty((M, 1), np.float16)
    assert routine(x, y, out=out) is out
    _assert_within_half_rounding(out, np.exp(_dense(x64, y64, b64)[0]).sum(1, keepdims=True), "float16")


def test_device_ids_split_a_half_reduction():
    (x, y, b), _ = _inputs("float16", seed=3)
    K = (-Vi(x).sqdist(Vj(y))).exp() * Vj(b)
    split = K.sum(axis=1, device_ids=[0, 1, 2])
    assert split.dtype == np.float16
    np.testing.assert_allclose(split.astype(np.float32), K.sum(axis=1).astype(np.float32), rtol=2.0**-10)
