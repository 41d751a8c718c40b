"""The user-facing API: pykeops shapes, Python numbers, @, axis=0, torch in/out, call=False and IR stages,
any memory layout, thread counts."""

import numpy as np
import pytest
import torch
from support.reference import kernel_sum, relative_error

import keir.numpy as kn
import keir.torch as kt


def gauss_ref(x, y, b, scale=0.5):
    return kernel_sum(lambda x, y, b: np.exp(-((x - y) ** 2).sum(-1, keepdims=True) / scale) * b, [x], [y, b], [])


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.random((300, 3)), rng.random((500, 3)), rng.random((500, 1))


def test_readme_example_numpy(data):
    x, y, b = data
    K = (-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp()
    out = (K * kn.Vj(b)).sum(axis=1)
    out2 = K @ b[:, 0]
    want = gauss_ref(x, y, b)
    assert out.shape == (300, 1) and out2.shape == (300,)
    assert relative_error(out, want) < 1e-12
    assert relative_error(out2, want[:, 0]) < 1e-12
    assert relative_error(K @ np.hstack([b, 2 * b]), np.hstack([want, 2 * want])) < 1e-12


def test_pykeops_shapes_and_numbers(data):
    x, y, b = data
    xi, yj, bj = kn.LazyTensor(x[:, None, :]), kn.LazyTensor(y[None, :, :]), kn.LazyTensor(b[None, :, :])
    K = (-xi.sqdist(yj) / 0.5).exp()
    assert relative_error((K * bj).sum(axis=1), gauss_ref(x, y, b)) < 1e-12
    base = kernel_sum(lambda x, y: np.exp(-((x - y) ** 2).sum(-1, keepdims=True) / 0.5), [x], [y], [])
    sq = kernel_sum(lambda x, y: np.exp(-((x - y) ** 2).sum(-1, keepdims=True) / 0.5) ** 2, [x], [y], [])
    assert relative_error((2 * K).sum(axis=1), 2 * base) < 1e-12
    assert relative_error((K / 0.5).sum(axis=1), 2 * base) < 1e-12
    assert relative_error((K**2).sum(axis=1), sq) < 1e-12
    assert relative_error((1 - K + 3).sum(axis=1), 4 * 500 - base) < 1e-12
    p = kn.LazyTensor(np.array([0.25, 0.5, 2.0]))  # a 1D array is a parameter
    want = kernel_sum(lambda x, y, p: ((x - y) * p).sum(-1, keepdims=True), [x], [y], [np.array([0.25, 0.5, 2.0])])
    assert relative_error(((xi - yj) * p).sum().sum(axis=1), want) < 1e-12


def test_scalar_parameter_takes_formula_dtype(data):
    x, y, b = (a.astype(np.float32) for a in data)
    out = (kn.Vi(x).sqdist(kn.Vj(y)) * kn.Pm(2.0)).sum(axis=1)
    assert out.dtype == np.float32
    assert relative_error(out, 2 * kernel_sum(lambda x, y: ((x - y) ** 2).sum(-1, keepdims=True), [x], [y], [])) < 1e-5


def test_sum_over_i(data):
    x, y, b = data
    K = (-kn.Vi(x).sqdist(kn.Vj(y))).exp()
    out = (K * kn.Vi(x[:, :1])).sum(axis=0)
    want = kernel_sum(lambda x, w, y: np.exp(-((x - y) ** 2).sum(-1, keepdims=True)) * w, [x, x[:, :1]], [y], [],
                      axis=0)
    assert out.shape == (500, 1) and relative_error(out, want) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_in_torch_out(dtype):
    torch.manual_seed(0)
    x, y, b = torch.rand(200, 3, dtype=dtype), torch.rand(300, 3, dtype=dtype), torch.rand(300, 1, dtype=dtype)
    K = (-kt.Vi(x).sqdist(kt.Vj(y)) / 0.5).exp()
    out = (K * kt.Vj(b)).sum(axis=1)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == (200, 1)
    dense = torch.exp(-((x[:, None, :].double() - y[None].double()) ** 2).sum(-1) / 0.5) @ b.double()
    assert relative_error(out.numpy(), dense.numpy()) < (1e-5 if dtype == torch.float32 else 1e-12)
    out2 = kt.LazyTensor(x[:, None, :]).sqdist(kt.LazyTensor(y[None, :, :])).sum(dim=1)
    assert isinstance(out2, torch.Tensor) and out2.shape == (200, 1)
    assert isinstance(K @ b[:, 0], torch.Tensor)


def test_any_memory_layout(data):
    x, y, b = data
    xt = np.asfortranarray(x)  # column-major
    y_view = np.repeat(y, 2, axis=1)[:, ::2]  # strided view
    b_view = np.hstack([b, b])[:, :1]
    out = ((-kn.Vi(xt).sqdist(kn.Vj(y_view)) / 0.5).exp() * kn.Vj(b_view)).sum(axis=1)
    assert relative_error(out, gauss_ref(x, y, b)) < 1e-12
    assert relative_error(kn.Vi(x[::-1]).sqdist(kn.Vj(y)).sum(axis=1)[::-1],
                          kn.Vi(x).sqdist(kn.Vj(y)).sum(axis=1)) < 1e-15


def test_results_identical_for_any_thread_count():
    rng = np.random.default_rng(5)
    x, y, b = (rng.random((2000, 3), dtype=np.float32), rng.random((3000, 3), dtype=np.float32),
               rng.random((3000, 1), dtype=np.float32))
    formula = (-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp() * kn.Vj(b)
    one = formula.sum(axis=1, threads=1)
    for threads in (2, 3, 8):
        assert np.array_equal(formula.sum(axis=1, threads=threads), one)


def test_call_false_and_ir_stages(data):
    x, y, b = data
    reduction = ((-kn.Vi(x).sqdist(kn.Vj(y))).exp() * kn.Vj(b)).sum(axis=1, call=False)
    keir_ir = reduction.ir("keir")
    assert '"keir.sqdist"' in keir_ir and '"keir.reduce"' in keir_ir
    assert '"keir.reduce"' in reduction.ir("opt")
    loops = reduction.ir("loops")
    assert "scf.for" in loops and "vector<8xf64>" in loops and "keir." not in loops
    llvm_ir = reduction.ir("llvm")
    assert "define void @keir_kernel" in llvm_ir and "<8 x double>" in llvm_ir
    with pytest.raises(ValueError, match="unknown stage 'asm'"):
        reduction.ir("asm")
    assert relative_error(reduction(), kernel_sum(
        lambda x, y, b: np.exp(-((x - y) ** 2).sum(-1, keepdims=True)) * b, [x], [y, b], [])) < 1e-12


def test_empty_sizes():
    x, y = np.zeros((0, 2)), np.ones((4, 2))
    assert kn.Vi(x).sqdist(kn.Vj(y)).sum(axis=1).shape == (0, 1)
    out = kn.Vi(y).sqdist(kn.Vj(np.zeros((0, 2)))).sum(axis=1)
    assert out.shape == (4, 1) and np.all(out == 0)


def test_precision_chooses_the_gpu_exp_and_is_kept_by_calls_and_gradients(monkeypatch):
    """precision="sfu" (default), "fast" or "ieee" picks the GPU's float32 exp (its PTX shows it); the CPU runs
    its polynomial whatever the choice, so the CPU results are the same; a bad value is refused at once; calls
    and the gradient reductions of torch autograd keep the choice."""
    from keir import autograd

    x = np.random.default_rng(0).random((20, 3), dtype=np.float32)
    gaussian = (-kn.Vi(x).sqdist(kn.Vj(x))).exp()
    ptx = {p: gaussian.sum(axis=1, precision=p, call=False).ir("ptx") for p in ("sfu", "fast", "ieee")}
    assert "ex2.approx.f32" in ptx["sfu"] and "ex2.approx.ftz.f32" in ptx["fast"] and "ex2.approx" not in ptx["ieee"]
    results = [gaussian.sum(axis=1, precision=p) for p in ("sfu", "fast", "ieee")]
    assert all(np.array_equal(results[0], r) for r in results[1:])
    assert gaussian.sum(axis=1, precision="ieee", call=False)._with((), {"threads": 1}).precision == "ieee"
    with pytest.raises(ValueError, match="precision must be one of 'sfu', 'fast', 'ieee', got 'exact'"):
        gaussian.sum(axis=1, precision="exact")

    seen = []
    original = autograd.Plan.sum

    def spy(plan, *args, **kwargs):
        seen.append(plan.precision)
        return original(plan, *args, **kwargs)

    monkeypatch.setattr(autograd.Plan, "sum", spy)
    xt = torch.tensor(x, requires_grad=True)
    out = (-kt.Vi(xt).sqdist(kt.Vj(xt))).exp().sum(axis=1, precision="fast")
    torch.autograd.grad(out.sum(), xt)
    assert seen and set(seen) == {"fast"}
