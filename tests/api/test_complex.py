"""Complex LazyTensors (issue 17) against dense NumPy / torch complex references: every complex operation and
mixing rule of pykeops' ComplexLazyTensor, the NUDFT against numpy.fft, torch gradients of complex inputs
against torch's own dense autograd, and the errors for what complex numbers do not have."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from keir.dialect.ops import DimensionError
from keir.numpy import ComplexLazyTensor, LazyTensor, Vi, Vj

torch = pytest.importorskip("torch", reason="the gradient tests compare with torch's complex autograd")
import keir.torch as kt  # noqa: E402

M, N, D = 6, 8, 3


def _csum(a):
    return a.sum(-1, keepdims=True) if isinstance(a, np.ndarray) else a.sum(-1, keepdim=True)


# The same formula on LazyTensors (through `ops` = keir's spellings) and on dense arrays broadcast to (M, N, D)
# (through NumPy's or torch's): x, y complex, r, s real (s of dimension 1), x indexed by i and the others by j.
KEIR = types.SimpleNamespace(exp=lambda a: a.exp(), conj=lambda a: a.conj(), abs=abs, angle=lambda a: a.angle(),
                             csum=lambda a: a.sum(-1), exp1j=lambda a: a.exp1j(),
                             real2complex=lambda a: a.real2complex(), imag2complex=lambda a: a.imag2complex())


def _dense_ops(xp):
    return types.SimpleNamespace(exp=xp.exp, conj=xp.conj, abs=xp.abs, angle=xp.angle, csum=_csum,
                                 exp1j=lambda a: xp.exp(1j * a), real2complex=lambda a: a + 0j,
                                 imag2complex=lambda a: 1j * a)


CASES = {
    "mult": lambda x, y, r, s, o: x * y,
    "complex_scalar_broadcasts": lambda x, y, r, s, o: x * o.csum(y),
    "add_sub": lambda x, y, r, s, o: x + y - x * y,
    "pykeops_test_complex_numpy": lambda x, y, r, s, o: (x * y) * y.real + x + x.real,
    "real_scalar": lambda x, y, r, s, o: x * s + s - s * y,
    "real_vector": lambda x, y, r, s, o: x * r - r + r * y,
    "divide": lambda x, y, r, s, o: x / y + x / s + r / x,
    "numbers": lambda x, y, r, s, o: (1 - 2j) * x + 0.5j - 3 * y + 2.0 / x - 1.5 + (3 - x) * 1j,
    "exp_conj": lambda x, y, r, s, o: o.exp(x - y) * o.conj(x * y),
    "abs_angle_real_imag": lambda x, y, r, s, o: o.abs(x - y) + o.angle(x * y) - (x * y).imag * x.real,
    "exp1j": lambda x, y, r, s, o: o.exp1j(r * s) * x,
    "real2complex_imag2complex": lambda x, y, r, s, o: o.real2complex(r) * x - o.imag2complex(r * s),
    "complex_sum": lambda x, y, r, s, o: o.csum(x * y) * s,
    "nudft_phase": lambda x, y, r, s, o: y * o.exp(-2 * math.pi * 1j * s * o.abs(x)),
}


def _data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    c = lambda shape: (rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape)).astype(dtype)  # noqa: E731
    real = np.float32 if dtype == np.complex64 else np.float64
    return (c((M, 1, D)), c((1, N, D)), rng.uniform(0.5, 1.5, (1, N, D)).astype(real),
            rng.uniform(0.5, 1.5, (1, N, 1)).astype(real))


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_matches_dense_numpy(name, dtype):
    arrays = _data(dtype)
    got = CASES[name](*map(LazyTensor, arrays), KEIR).sum(axis=1)
    want = CASES[name](*(a.astype(np.complex128 if a.dtype.kind == "c" else np.float64) for a in arrays),
                       _dense_ops(np)).sum(1)
    assert got.dtype == (np.complex128 if dtype == np.complex128 else np.complex64) or not np.iscomplexobj(want)
    assert got.shape == want.shape
    tolerance = 1e-12 if dtype == np.complex128 else 2e-5
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * np.abs(want).max())


@pytest.mark.parametrize("name", CASES)
def test_torch_gradients_match_torch_dense_autograd(name):
    arrays = [torch.from_numpy(a) for a in _data(np.complex128, seed=1)]
    mine = [a.clone().requires_grad_() for a in arrays]
    theirs = [a.clone().requires_grad_() for a in arrays]
    got = CASES[name](*map(kt.LazyTensor, mine), KEIR).sum(axis=1)
    want = CASES[name](*theirs, _dense_ops(torch)).sum(1)
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)
    weight = torch.randn(want.shape, dtype=want.dtype, generator=torch.Generator().manual_seed(2))
    loss = lambda out: (out * weight).real.sum() if out.is_complex() else (out * weight).sum()  # noqa: E731
    loss(got).backward()
    loss(want).backward()
    for k, (a, b) in enumerate(zip(mine, theirs)):
        if a.grad is None or b.grad is None:  # an input the formula does not use
            assert a.grad is None and b.grad is None, f"input {k} of {name}: a gradient on one side only"
            continue
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10, msg=f"d/d input {k} of {name}")


def test_nudft_matches_numpy_fft():
    # uniform points x_j = j / n and integer frequencies: the NUDFT sum_j c_j exp(-2 pi i k x_j) is the DFT
    n = 64
    rng = np.random.default_rng(3)
    c = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    k, points = np.arange(n, dtype=float)[:, None], (np.arange(n) / n)[:, None]
    out = (LazyTensor(c[None, :, None]) * (-2j * math.pi * Vi(k) * Vj(points)).exp()).sum(axis=1)
    np.testing.assert_allclose(out[:, 0], np.fft.fft(c), atol=1e-11)
    assert LazyTensor(c[None, :, None]).formula == "Vj(0,2)"  # as KeOps sees it: 2 real components


def test_matrix_products_with_complex_operands():
    x, y, _, _ = _data(np.complex128)
    b = (np.arange(N) - 2.5j).astype(np.complex128)
    K = (-Vi(x.real[:, 0]).sqdist(Vj(y.real[0]))).exp()  # a real kernel
    dense = np.exp(-((x.real[:, 0][:, None] - y.real[0][None]) ** 2).sum(-1))
    np.testing.assert_allclose(K @ b, dense @ b, rtol=1e-12)
    Z = (1j * K).exp()  # a complex scalar kernel
    np.testing.assert_allclose(Z @ b, np.exp(1j * dense) @ b, rtol=1e-12)
    np.testing.assert_allclose(Z @ b.real, np.exp(1j * dense) @ b.real, rtol=1e-12)


def test_shapes_dtypes_out_and_layouts():
    x, y, _, _ = _data(np.complex64)
    X, Y = LazyTensor(x), LazyTensor(y)
    assert isinstance(X, ComplexLazyTensor) and X.is_complex and not X.real.is_complex
    assert (X * Y).shape == (M, N, D) and (X * Y).sum(-1).shape == (M, N)
    out = np.empty((M, D), np.complex64)
    assert (X * Y).sum(axis=1, out=out) is out
    strided = np.asfortranarray(np.repeat(x, 2, axis=2)[:, :, ::2])  # not contiguous: copied
    np.testing.assert_allclose((LazyTensor(strided) * Y).sum(axis=1), out, rtol=1e-6)
    torch_out = (kt.LazyTensor(torch.from_numpy(x)).conj() * kt.LazyTensor(torch.from_numpy(y))).sum(axis=0)
    assert torch_out.dtype == torch.complex64 and torch_out.shape == (N, D)
    conj_bit = torch.from_numpy(x).conj()  # torch's lazy conjugate is resolved, not read as its storage
    np.testing.assert_allclose((kt.LazyTensor(conj_bit) * kt.LazyTensor(torch.from_numpy(y))).sum(axis=0).numpy(),
                               torch_out.numpy(), rtol=1e-6)


def test_what_complex_numbers_do_not_have_raises():
    x, y, r, _ = _data(np.complex128)
    X, Y = LazyTensor(x), LazyTensor(y)
    for build in (lambda: X.min(axis=1), lambda: (X * Y).reduction("ArgKMin", opt_arg=2, axis=1),
                  lambda: X.logsumexp(axis=1), lambda: X.log(), lambda: X < Y, lambda: X.sqdist(Y),
                  lambda: X ** 2, lambda: X.real2complex(),
                  lambda: ComplexLazyTensor(r)):
        with pytest.raises(TypeError):
            build()
    with pytest.raises(DimensionError, match="even dimension"):
        Vi(np.ones((3, 3))).op("complex_mult", Vj(np.ones((4, 3))))
    with pytest.raises(DimensionError, match="complex scalar"):
        (X * LazyTensor(np.ones((1, N, 2)) + 0j)).sum(axis=1)


def test_genred_reads_keops_complex_functions_on_interleaved_arrays():
    from keir.numpy import Genred

    x, y, _, s = _data(np.complex128)
    xr, yr = x[:, 0].view(np.float64), y[0].view(np.float64)  # KeOps' view: (re, im) pairs, dimension 2D
    formula = ("ComplexAdd(ComplexMult(x, ComplexExp(y)), ComplexDivide(x, y)) + "
               "ComplexRealScal(Sum(ComplexAbs(ComplexSubtract(x, y))), Conj(x)) + "
               "Real2Complex(ComplexAngle(x)) + ComplexSumT(ComplexSum(y), 6)")
    out = Genred(formula, ["x = Vi(6)", "y = Vj(6)"], reduction_op="Sum", axis=1)(xr, yr)
    a, b = x[:, 0][:, None], y[0][None]
    want = (a * np.exp(b) + a / b + np.abs(a - b).sum(-1, keepdims=True) * np.conj(a) + np.angle(a)
            + b.sum(-1, keepdims=True)).sum(1)
    np.testing.assert_allclose(out.view(np.complex128), want, rtol=1e-12)


def test_torch_compile_fullgraph_traces_a_complex_formula():
    c, x, xi = torch.randn(50, dtype=torch.complex64), torch.rand(50, 1), torch.rand(40, 1)

    def nudft(c, x, xi):
        return (kt.LazyTensor(c[None, :, None]) * (-2j * math.pi * kt.Vi(xi) * kt.Vj(x)).exp()).sum(axis=1)

    compiled = torch.compile(nudft, fullgraph=True, backend="aot_eager")(c, x, xi)
    want = torch.exp(-2j * math.pi * xi.double() * x.double().T) @ c.to(torch.complex128)
    assert compiled.dtype == torch.complex64
    torch.testing.assert_close(compiled[:, 0].to(torch.complex128), want, rtol=1e-5, atol=1e-5)


def test_device_ids_split_a_complex_reduction_and_the_others_refuse_it():
    x, y, _, _ = _data(np.complex128)
    X, Y = LazyTensor(x), LazyTensor(y)
    whole = (X * Y.exp()).sum(axis=1)
    np.testing.assert_allclose((X * Y.exp()).sum(axis=1, device_ids=[0, 1]), whole, rtol=1e-13)
    import keir.dask

    routine = (Vi(0, 2) * Vj(1, 2)).sum(axis=1, call=False)
    with pytest.raises(TypeError, match="complex and half-precision"):
        keir.dask.reduce(routine, x[:, 0], y[0], chunk_rows=3)
