"""keir inside torch.compile(fullgraph=True) and torch.export: formulas built in the compiled function, the
reduction a custom op (keir::reduce) in the graph, gradients through it, dynamic sizes without re-tracing.

Compiled results are compared with eager keir, and eager keir with dense torch float64 (so that both are
checked against an independent reference). Most tests use the "aot_eager" backend: it runs Dynamo,
AOTAutograd and the fake (meta) implementation like the default backend, without Inductor's C++ build time;
one test runs the default backend.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402

from keir import kernels  # noqa: E402
from keir.torch import LazyTensor, Vi, Vj  # noqa: E402

F64 = torch.float64
warnings.filterwarnings("ignore", message=".*lru_cache.*")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _data(m: int = 30, n: int = 40, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(m, 3, generator=g, dtype=F64), torch.rand(n, 3, generator=g, dtype=F64),
            torch.rand(n, 2, generator=g, dtype=F64))


def _dense_sqdist(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


scale = torch.tensor([0.7], dtype=F64)

# name: (keir formula in pykeops idioms, the dense float64 torch reference)
CASES = {
    "gaussian @ b": (lambda x, y, b: (-((LazyTensor(x[:, None]) - LazyTensor(y[None, :])) ** 2).sum(-1)).exp() @ b,
                     lambda x, y, b: (-_dense_sqdist(x, y)).exp() @ b),
    "tensor constant": (lambda x, y, b: (-(Vi(x).sqdist(Vj(y))) * scale).exp().sum(1),
                        lambda x, y, b: (-_dense_sqdist(x, y) * 0.7).exp().sum(1, keepdim=True)),
    "tensor on the left": (lambda x, y, b: (scale * -(Vi(x).sqdist(Vj(y))) / 1e-1).exp().sum(1),
                           lambda x, y, b: (-_dense_sqdist(x, y) * 7).exp().sum(1, keepdim=True)),
    "logsumexp": (lambda x, y, b: (-Vi(x).sqdist(Vj(y))).logsumexp(dim=1),
                  lambda x, y, b: (-_dense_sqdist(x, y)).logsumexp(1, keepdim=True)),
    "argKmin": (lambda x, y, b: Vi(x).sqdist(Vj(y)).argKmin(4, dim=1),
                lambda x, y, b: _dense_sqdist(x, y).argsort(1)[:, :4]),
    "min_argmin": (lambda x, y, b: Vi(x).sqdist(Vj(y)).min_argmin(dim=0),
                   lambda x, y, b: tuple(t[:, None] for t in _dense_sqdist(x, y).min(0))),
    "laplacian": (lambda x, y, b: (lambda x_i: ((-x_i.sqdist(Vj(y))).exp().laplacian(x_i) * Vj(b)).sum(1))(Vi(x)),
                  lambda x, y, b: ((4 * _dense_sqdist(x, y) - 6) * (-_dense_sqdist(x, y)).exp()) @ b),
}


def _same(got, want):
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        if g.is_floating_point():
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
        else:
            assert torch.equal(g, w)


@pytest.mark.parametrize("case", CASES)
def test_fullgraph_matches_eager_and_dense(case):
    formula, reference = CASES[case]
    data = _data()
    eager = formula(*data)
    _same(eager, reference(*data))
    _same(torch.compile(formula, fullgraph=True, backend="aot_eager")(*data), eager)


@pytest.mark.parametrize("case", ["gaussian @ b", "logsumexp"])
def test_no_graph_break(case):
    explanation = torch._dynamo.explain(CASES[case][0])(*_data())
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_the_default_backend():
    formula, reference = CASES["gaussian @ b"]
    _same(torch.compile(formula, fullgraph=True)(*_data()), reference(*_data()))


@pytest.mark.parametrize("case", ["gaussian @ b", "logsumexp", "laplacian"])
def test_gradients_through_the_compiled_reduction(case):
    formula, reference = CASES[case]
    x, y, b = (t.requires_grad_() for t in _data())
    weights = torch.rand(30, 2 if case != "logsumexp" else 1, dtype=F64)

    def loss(f):
        return lambda x, y, b: (f(x, y, b) * weights).sum()

    inputs = (x, y) if case == "logsumexp" else (x, y, b)
    got = torch.autograd.grad(torch.compile(loss(formula), fullgraph=True, backend="aot_eager")(x, y, b), inputs)
    want = torch.autograd.grad(loss(reference)(x, y, b), inputs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)


def test_new_sizes_reuse_the_trace_and_the_kernel():
    counter = CompileCounterWithBackend("aot_eager")
    formula, reference = CASES["gaussian @ b"]
    compiled = torch.compile(formula, fullgraph=True, dynamic=True, backend=counter)
    compiles = []
    real = kernels._load_or_compile
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "_load_or_compile", lambda *a: compiles.append(a) or real(*a))
        for m, n in ((30, 40), (17, 55), (64, 9)):
            data = _data(m, n, seed=m)
            _same(compiled(*data), reference(*data))
    assert counter.frame_count == 1
    assert len(compiles) <= 1  # one keir kernel for every size (none if an earlier test compiled it)


def test_fake_implementation_gives_shapes_without_compiling():
    from torch._subclasses.fake_tensor import FakeTensorMode

    compiles = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "_load_or_compile", lambda *a: compiles.append(a))
        with FakeTensorMode() as mode:
            x, y = mode.from_tensor(torch.empty(1, 11, 1, 3)), mode.from_tensor(torch.empty(5, 1, 7, 3))
            x_i, y_j = LazyTensor(x), LazyTensor(y)
            values, indices = x_i.sqdist(y_j).Kmin_argKmin(3, dim=2)
            wide = (x_i - y_j).exp().sum(1)
    assert tuple(values.shape) == (5, 11, 3) and values.dtype == torch.float32
    assert tuple(indices.shape) == (5, 11, 3) and indices.dtype == torch.int64
    assert tuple(wide.shape) == (5, 7, 3)
    assert not compiles  # the operator's fake implementation gave the shapes; no kernel was compiled


def test_torch_export():
    class Kernel(torch.nn.Module):
        def forward(self, x, y, b):
            return (-Vi(x).sqdist(Vj(y))).exp() @ b

    data = _data()
    program = torch.export.export(Kernel(), data)
    assert "keir.reduce" in str(program.graph)
    _same(program.module()(*data), Kernel()(*data))


def _rbf_training(compiled: bool, steps: int = 4) -> list[float]:
    """An RBF-network layer (learned centres and weights) and a Sinkhorn-style log-sum-exp term, trained a
    few steps with SGD."""
    g = torch.Generator().manual_seed(1)
    x, target = torch.rand(50, 3, generator=g, dtype=F64), torch.rand(50, 1, generator=g, dtype=F64)
    centres = torch.nn.Parameter(torch.rand(12, 3, generator=g, dtype=F64))
    weights = torch.nn.Parameter(torch.rand(12, 1, generator=g, dtype=F64))
    optimizer = torch.optim.SGD([centres, weights], lr=0.05)

    def loss(x, target, centres, weights):
        kernel = (-((LazyTensor(x[:, None, :]) - LazyTensor(centres[None, :, :])) ** 2).sum(-1) / 0.5).exp()
        fit = ((kernel @ weights - target) ** 2).mean()
        spread = (-(Vi(centres).sqdist(Vj(x))) / 0.1).logsumexp(dim=1).mean()
        return fit - 0.01 * spread

    step = torch.compile(loss, fullgraph=True, backend="aot_eager") if compiled else loss
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        value = step(x, target, centres, weights)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    return losses


def test_a_small_model_trains_the_same_compiled():
    eager, compiled = _rbf_training(False), _rbf_training(True)
    assert eager[-1] < eager[0]
    assert compiled == pytest.approx(eager, rel=1e-12)


def test_a_tensor_on_the_left_of_matmul_is_refused_in_eager():
    x, y, b = _data()
    kernel = (-Vi(x).sqdist(Vj(y))).exp()
    with pytest.raises(TypeError):
        torch.rand(5, 30, dtype=F64) @ kernel


def test_the_op_called_directly_runs_and_differentiates():
    """keir::reduce outside any compiler: its autograd kernel runs plain tensors at once, records the
    reduction for autograd where an input requires grad (gradcheck against finite differences), and leaves
    the indices of an arg-reduction non-differentiable."""
    from keir import torch_ops

    x, y, b = _data(5, 6)
    gaussian = ((-Vi(x).sqdist(Vj(y))).exp() * Vj(b)).sum(axis=1, call=False)
    text = torch_ops._kernel_text(gaussian.root, "float64")
    (plain,) = torch.ops.keir.reduce(text, "ijj", -1, -1, [x, y, b])
    torch.testing.assert_close(plain, (-_dense_sqdist(x, y)).exp() @ b, rtol=1e-12, atol=1e-14)
    leaves = [t.clone().requires_grad_() for t in (x, y, b)]
    assert torch.autograd.gradcheck(lambda *t: torch.ops.keir.reduce(text, "ijj", -1, -1, list(t))[0], leaves)
    nearest = Vi(x).sqdist(Vj(y)).min_argmin(dim=1, call=False)
    values, indices = torch.ops.keir.reduce(torch_ops._kernel_text(nearest.root, "float64"), "ij", -1, -1, leaves[:2])
    assert values.requires_grad and not indices.requires_grad
    assert torch.equal(indices[:, 0], _dense_sqdist(x, y).argmin(1))


def test_the_op_reuses_its_reduction_for_inputs_of_the_same_shapes():
    """A compiled graph calls keir::reduce again and again: the op builds its Reduction once per kernel and
    input signature (shapes, dtypes, devices) and runs it on each call's tensors. Checked on new values,
    new shapes, batch dimensions, a non-contiguous input, values with indices, and a vanishing formula (the
    plain path)."""
    from keir import torch_ops

    torch_ops._template.cache_clear()
    gaussian = ((-Vi(*_data()[:1]).sqdist(Vj(_data()[1]))).exp() * Vj(_data()[2])).sum(axis=1, call=False)
    text = torch_ops._kernel_text(gaussian.root, "float64")
    for m, n, seed in ((30, 40, 1), (30, 40, 2), (7, 3, 3), (30, 40, 4)):
        x, y, b = _data(m, n, seed)
        if seed == 4:
            y = torch.rand(3, n, dtype=F64).T  # not contiguous
        (out,) = torch.ops.keir.reduce(text, "ijj", -1, -1, [x, y, b])
        torch.testing.assert_close(out, (-_dense_sqdist(x, y)).exp() @ b, rtol=1e-12, atol=1e-14)
    assert torch_ops._template.cache_info().misses == 2  # (30, 40) and (7, 3)
    xb, yb = torch.rand(2, 5, 1, 3, dtype=F64), torch.rand(1, 1, 6, 3, dtype=F64)
    batched = (-LazyTensor(xb).sqdist(LazyTensor(yb))).exp().sum(2, call=False)
    (out,) = torch.ops.keir.reduce(torch_ops._kernel_text(batched.root, "float64"), "ij", -1, -1,
                                   list(batched.lazy.arrays))  # (2, 5, 3) and (1, 6, 3)
    torch.testing.assert_close(out, (-((xb - yb) ** 2).sum(-1)).exp().sum(-1)[..., None], rtol=1e-12, atol=1e-14)
    x, y, _ = _data(9, 11)
    nearest = Vi(x).sqdist(Vj(y)).Kmin_argKmin(3, dim=1, call=False)
    values, indices = torch.ops.keir.reduce(torch_ops._kernel_text(nearest.root, "float64"), "ij", -1, -1, [x, y])
    dense = _dense_sqdist(x, y)
    assert torch.equal(indices, dense.argsort(1)[:, :3])
    torch.testing.assert_close(values, dense.sort(1).values[:, :3], rtol=1e-12, atol=1e-14)
    zero = (Vi(x) * 0.0 * Vj(y)).sum(axis=1, call=False)
    (out,) = torch.ops.keir.reduce(torch_ops._kernel_text(zero.root, "float64"), "ij", -1, -1, [x, y])
    assert out.shape == (9, 3) and not out.any()
