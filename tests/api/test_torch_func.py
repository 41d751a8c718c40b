"""torch.func transforms of keir reductions -- vmap, jvp, jacfwd, jacrev, hessian, grad, vjp, composed --
against the same transforms of dense float64 torch code (an independent reference: torch's own autograd
and batching on (M, N, D) tensors).

Forward mode is one keir reduction per jvp (the transpose of the VJP, see dialect.derivatives.
reduction_tangent); a test counts the kernel runs to hold it to that.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
func = torch.func

from keir.compiler.passes import keir_differentiate  # noqa: E402
from keir.dialect.derivatives import reduction_tangent  # noqa: E402
from keir.dialect.node import make, var, variables  # noqa: E402
from keir.reduction import Reduction  # noqa: E402
from keir.torch import LazyTensor  # noqa: E402

F64 = torch.float64
M, N, D = 5, 7, 3


def _random(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.5 + torch.rand(*shape, generator=g, dtype=F64)


def _inputs(batch: tuple[int, ...] = ()) -> tuple[torch.Tensor, ...]:
    """x_i (..., M, 1, D), y_j (..., 1, N, D), b_j (..., 1, N, 2), p (..., 1, 1, 1): pykeops' shapes."""
    return (_random(*batch, M, 1, D, seed=1), _random(*batch, 1, N, D, seed=2), _random(*batch, 1, N, 2, seed=3),
            _random(*batch, 1, 1, 1, seed=4))


# Each case: the same formula written on LazyTensors and on dense tensors, reduced the same way. `lazy` is
# True for the keir version (arguments wrapped in LazyTensor first).
def _gaussian(x, y, b, p, lazy):
    d2 = ((x - y) ** 2).sum(-1)
    k = (-p * d2).exp() if lazy else (-p[..., 0] * d2).exp()[..., None]
    return (k * b).sum(dim=-2 if not lazy else len(x.shape) - 2)


def _logsumexp(x, y, b, p, lazy):
    f = -p * ((x - y) ** 2).sum(-1) if lazy else (-p[..., 0] * ((x - y) ** 2).sum(-1))[..., None]
    axis = len(x.shape) - 2 if lazy else -2
    return f.logsumexp(axis) if lazy else f.logsumexp(axis)


def _logsumexp_weight(x, y, b, p, lazy):
    if lazy:
        return (-((x - y) ** 2).sum(-1)).logsumexp(len(x.shape) - 2, weight=b)
    return ((-((x - y) ** 2).sum(-1))[..., None] + b.log()).logsumexp(-2)


def _minimum(x, y, b, p, lazy):
    f = (x - y).abs().sum(-1) * p if lazy else ((x - y).abs().sum(-1) * p[..., 0])[..., None]
    return f.min(len(x.shape) - 2) if lazy else f.min(-2).values


def _maximum_over_i(x, y, b, p, lazy):
    f = (x * y).sum(-1) - p if lazy else ((x * y).sum(-1) - p[..., 0])[..., None]
    return f.max(len(x.shape) - 3) if lazy else f.max(-3).values


def _sum_over_i(x, y, b, p, lazy):
    f = (x - y).sin() * b.sum(-1) if lazy else (x - y).sin() * b.sum(-1, keepdim=True)
    return f.sum(len(x.shape) - 3) if lazy else f.sum(-3)


CASES = {f.__name__.lstrip("_"): f for f in (_gaussian, _logsumexp, _logsumexp_weight, _minimum, _maximum_over_i,
                                            _sum_over_i)}


def keir(case):
    def f(x, y, b, p):
        return CASES[case](LazyTensor(x), LazyTensor(y), LazyTensor(b), LazyTensor(p), lazy=True)

    return f


def dense(case):
    return lambda x, y, b, p: CASES[case](x, y, b, p, lazy=False)


def close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("case", CASES)
def test_jvp_along_every_input(case):
    primals, tangents = _inputs(), tuple(t.neg() + 0.3 for t in _inputs())
    out, tangent = func.jvp(keir(case), primals, tangents)
    out_ref, tangent_ref = func.jvp(dense(case), primals, tangents)
    close(out, out_ref)
    close(tangent, tangent_ref)


@pytest.mark.parametrize("argnum", range(4))
def test_jvp_along_one_input(argnum):
    primals = _inputs()

    def along(f):
        def g(z):
            args = list(primals)
            args[argnum] = z
            return f(*args)

        return g

    tangent = torch.ones_like(primals[argnum])
    close(func.jvp(along(keir("gaussian")), (primals[argnum],), (tangent,))[1],
          func.jvp(along(dense("gaussian")), (primals[argnum],), (tangent,))[1])


@pytest.mark.parametrize("case, kernels", [("gaussian", 2), ("minimum", 3)])
def test_jvp_is_one_reduction(case, kernels, monkeypatch):
    """The forward, one tangent reduction (and, for a min, the argmin that says which pair was selected)."""
    runs = []
    compute = Reduction.compute
    monkeypatch.setattr(Reduction, "compute", lambda self, arrays: runs.append(self.kind) or compute(self, arrays))
    primals = _inputs()
    func.jvp(keir(case), primals, primals)
    assert len(runs) == kernels, runs


@pytest.mark.parametrize("kind", ["sum", "logsumexp", "min", "max"])
def test_the_tangent_placeholder_vanishes_from_the_expanded_formula(kind):
    """The tangent is the derivative of an expression linear in the placeholder, so no trace of it is left:
    the tangent kernel does not read it."""
    x, y, p = var(0, "i", 3), var(1, "j", 3), var(2, "p", 1)
    formula = make("mul", make("exp", make("neg", make("sqdist", x, y))), p)
    root = make("reduce", formula, kind=kind, axis=1)
    tangents = {x: var(3, "i", 3), y: var(4, "j", 3), p: var(5, "p", 1)}
    placeholder, output, selected = var(6, "i", 1), var(7, "i", 1), var(8, "j", 1)
    tangent = reduction_tangent(root, tangents, placeholder, output, selected if kind in ("min", "max") else None)
    expanded = keir_differentiate.expand(tangent.args[0])
    assert placeholder not in variables(expanded)
    assert set(tangents.values()) <= set(variables(expanded))


@pytest.mark.parametrize("case", CASES)
def test_vmap_over_a_leading_dimension(case):
    batched = _inputs((4,))
    close(func.vmap(keir(case))(*batched), func.vmap(dense(case))(*batched))


@pytest.mark.parametrize("in_dims", [(1, None, None, None), (None, 0, None, 0), (2, 0, 1, None)])
def test_vmap_in_dims_and_broadcast_batch_dimensions(in_dims):
    """Unbatched inputs broadcast against batched ones; vmapped dimensions anywhere, inputs with batch
    dimensions of their own (3 of them here) beside the vmapped one."""
    inputs = []
    for tensor, dim in zip(_inputs((3,)), in_dims):
        inputs.append(tensor if dim is None else torch.stack([tensor * (1 + k / 4) for k in range(4)], dim))
    for out_dims in (0, 1):
        close(func.vmap(keir("gaussian"), in_dims=in_dims, out_dims=out_dims)(*inputs),
              func.vmap(dense("gaussian"), in_dims=in_dims, out_dims=out_dims)(*inputs))


def test_nested_vmap():
    batched = _inputs((2, 3))
    close(func.vmap(func.vmap(keir("logsumexp")))(*batched), func.vmap(func.vmap(dense("logsumexp")))(*batched))


def test_vmap_of_index_and_pair_outputs():
    x, y = _random(4, M, D, seed=5), _random(N, D, seed=6)

    def indices(x):
        d = LazyTensor(x[:, None, :]).sqdist(LazyTensor(y[None, :, :]))
        return d.argKmin(3, dim=1), d.min_argmin(dim=1)

    (knn, (values, argmin)) = func.vmap(indices)(x)
    d = ((x[:, :, None, :] - y[None, None, :, :]) ** 2).sum(-1)
    assert torch.equal(knn, d.argsort(-1)[..., :3])
    close(values[..., 0], d.min(-1).values)
    assert torch.equal(argmin[..., 0], d.argmin(-1))


def test_vmap_of_a_number_parameter():
    x, y = _random(4, M, 1, D, seed=7), _random(1, N, D, seed=8)

    def f(x, scale):
        return (-(LazyTensor(x) - LazyTensor(y)).square().sum(-1) * scale).exp().sum(1)

    close(func.vmap(lambda x: f(x, 0.5))(x), (-((x - y) ** 2).sum(-1) * 0.5).exp().sum(-1, keepdim=True))


def _scalar(f):
    return lambda x, y, b, p: f(x, y, b, p).square().sum()


@pytest.mark.parametrize("case", ["gaussian", "logsumexp_weight", "minimum"])
def test_jacrev_and_jacfwd(case):
    inputs = _inputs()
    for transform in (func.jacrev, func.jacfwd):
        got = transform(keir(case), argnums=(0, 1, 2, 3))(*inputs)
        want = transform(dense(case), argnums=(0, 1, 2, 3))(*inputs)
        for g, w in zip(got, want):
            close(g, w)


@pytest.mark.parametrize("case", ["gaussian", "logsumexp"])
def test_hessian(case):
    inputs = _inputs()
    for argnums in (0, 3):
        close(func.hessian(_scalar(keir(case)), argnums=argnums)(*inputs),
              func.hessian(_scalar(dense(case)), argnums=argnums)(*inputs))


def test_per_sample_gradients_vmap_of_grad():
    batched = _inputs((3,))
    got = func.vmap(func.grad(_scalar(keir("gaussian")), argnums=(0, 1)))(*batched)
    want = func.vmap(func.grad(_scalar(dense("gaussian")), argnums=(0, 1)))(*batched)
    for g, w in zip(got, want):
        close(g, w)


def test_grad_of_jvp_and_jvp_of_grad():
    primals, tangents = _inputs(), _inputs()

    def tangent_norm(f):
        return lambda *args: func.jvp(f, args, tangents)[1].square().sum()

    for got, want in zip(func.grad(tangent_norm(keir("logsumexp")), argnums=(0, 1, 2, 3))(*primals),
                         func.grad(tangent_norm(dense("logsumexp")), argnums=(0, 1, 2, 3))(*primals)):
        close(got, want)
    grad_keir = func.grad(_scalar(keir("gaussian")), argnums=(0, 1))
    grad_dense = func.grad(_scalar(dense("gaussian")), argnums=(0, 1))
    for got, want in zip(func.jvp(grad_keir, primals, tangents)[1], func.jvp(grad_dense, primals, tangents)[1]):
        close(got, want)


def test_jvp_keeps_the_sum_options():
    """A reduction accumulated in float64 (dtype_acc) gets its tangent accumulated the same way."""
    runs = []
    compute = Reduction.compute

    def record(self, arrays):
        runs.append(dict(self.reduce_attrs))
        return compute(self, arrays)

    x, y = _random(M, 1, D, seed=9).float(), _random(1, N, D, seed=10).float()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Reduction, "compute", record)
        func.jvp(lambda x: (-(LazyTensor(x) - LazyTensor(y)).square().sum(-1)).exp().sum(1, dtype_acc="float64"),
                 (x,), (torch.ones_like(x),))
    assert runs == [{"dtype_acc": "float64"}] * 2


def test_a_reduction_with_index_outputs_has_no_tangent_for_them():
    x, y = _random(M, 1, D, seed=11), _random(1, N, D, seed=12)

    def f(x):
        return (LazyTensor(x) - LazyTensor(y)).square().sum(-1).argmin(1)

    out, tangent = func.jvp(f, (x,), (torch.ones_like(x),))
    assert not out.is_floating_point()
    assert tangent is None or not tangent.any()
