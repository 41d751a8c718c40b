"""Genred formula strings against the LazyTensor spelling of the same formula; the parser's errors."""

import numpy as np
import pytest
import torch
from support.reference import relative_error

import keir.numpy as kn
import keir.torch as kt
from keir.formula_parser import FormulaSyntaxError

rng = np.random.default_rng(0)
X, Y, B, G = rng.random((40, 3)), rng.random((60, 3)), rng.random((60, 1)), np.array([0.7])


@pytest.mark.parametrize("formula,aliases,lazy", [
    ("Exp(-SqDist(x, y) * g) * b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"],
     lambda x, y, g, b: (-x.sqdist(y) * g).exp() * b),
    ("Exp(-SqDist(Vi(0,3), Vj(1,3)) * Pm(2,1)) * Vj(3,1)", [], lambda x, y, g, b: (-x.sqdist(y) * g).exp() * b),
    ("Var(3,1,1) / (IntCst(1) + SqNorm2(Var(0,3,0) - Var(1,3,1)))", [],
     lambda x, y, g, b: b / (1 + (x - y).sqnorm2())),
    ("(x | y) - 2.5e-1 * Pow(Sum(x - y), 3) + Square(Elem(x, 2)) * Extract(y, 1, 1)",
     ["x = Vi(0, 3)", "y = Vj(1, 3)", "g = Pm(2, 1)", "b = Vj(3, 1)"],
     lambda x, y, g, b: (x | y) - 0.25 * (x - y).sum() ** 3 + x[2].square() * y[1:2]),
    ("Concat(Sqrt(x | x), Log(b)) * -g + Minus(Rsqrt(b))", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"],
     lambda x, y, g, b: x.dot(x).sqrt().concat(b.log()) * -g + -(b.rsqrt())),
])
@pytest.mark.parametrize("axis", [0, 1])
def test_formula_strings_match_lazytensors(formula, aliases, lazy, axis):
    routine = kn.Genred(formula, aliases, reduction_op="Sum", axis=axis)
    out = routine(X, Y, G, B)
    want = lazy(kn.Vi(X), kn.Vj(Y), kn.Pm(G), kn.Vj(B)).sum(axis=axis)
    assert out.shape == want.shape and relative_error(out, want) < 1e-14


@pytest.mark.parametrize("op,options,method", [
    ("Min", {}, lambda f: f.min(axis=1)),
    ("ArgMax", {}, lambda f: f.argmax(axis=1)),
    ("KMin_ArgKMin", {"opt_arg": 3}, lambda f: f.Kmin_argKmin(3, axis=1)),
    ("LogSumExp", {}, lambda f: f.logsumexp(axis=1)),
])
def test_reduction_ops(op, options, method):
    routine = kn.Genred("SqDist(x, y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op=op, axis=1, **options)
    got, want = routine(X, Y), method(kn.Vi(X).sqdist(kn.Vj(Y)))
    for g, w in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
        assert np.array_equal(g, w)


def test_weighted_reductions_and_generic_helpers():
    weight = rng.random((60, 2))
    lse = kn.Genred("-SqDist(x, y)", ["x = Vi(3)", "y = Vj(3)", "w = Vj(2)"], reduction_op="LogSumExp", axis=1,
                    formula2="w")
    want = (-kn.Vi(X).sqdist(kn.Vj(Y))).logsumexp(axis=1, weight=kn.Vj(weight))
    assert relative_error(lse(X, Y, weight), want) < 1e-14
    soft = kn.Genred("-SqDist(x, y)", ["x = Vi(3)", "y = Vj(3)", "w = Vj(2)"], reduction_op="SumSoftMaxWeight",
                     axis=1, formula2="w")
    assert relative_error(soft(X, Y, weight),
                          (-kn.Vi(X).sqdist(kn.Vj(Y))).sumsoftmaxweight(kn.Vj(weight), axis=1)) < 1e-14
    s = kn.generic_sum("Exp(-SqDist(x, y)) * b", "s = Vi(1)", "x = Vi(3)", "y = Vj(3)", "b = Vj(1)")
    assert relative_error(s(X, Y, B), ((-kn.Vi(X).sqdist(kn.Vj(Y))).exp() * kn.Vj(B)).sum(axis=1)) < 1e-14
    s0 = kn.generic_sum("Exp(-SqDist(x, y))", "s = Vj(1)", "x = Vi(3)", "y = Vj(3)")
    assert s0(X, Y).shape == (60, 1)
    a = kn.generic_argkmin("SqDist(x, y)", "a = Vi(4)", 4, "x = Vi(3)", "y = Vj(3)")
    assert np.array_equal(a(X, Y), kn.Vi(X).sqdist(kn.Vj(Y)).argKmin(4, axis=1))
    lse2 = kn.generic_logsumexp("-SqDist(x, y)", "a = Vi(1)", "x = Vi(3)", "y = Vj(3)")
    assert relative_error(lse2(X, Y), (-kn.Vi(X).sqdist(kn.Vj(Y))).logsumexp(axis=1)) < 1e-14


def test_torch_genred():
    x, y = torch.rand(10, 2, dtype=torch.float64), torch.rand(20, 2, dtype=torch.float64)
    out = kt.Genred("Exp(-SqDist(x,y))", ["x = Vi(2)", "y = Vj(2)"], axis=1)(x, y)
    dense = torch.exp(-torch.cdist(x, y) ** 2).sum(1, keepdim=True)
    assert isinstance(out, torch.Tensor) and torch.allclose(out, dense, rtol=1e-12)


@pytest.mark.parametrize("formula,message,column", [
    ("Exq(-SqDist(x,y))", "unknown function 'Exq'", 1),
    ("Exp(-SqDist(x,y)", "expected ')', found the end of the formula", 17),
    ("Exp(-SqDist(x,z))", "unknown name 'z' (not an alias)", 15),
    ("Exp(x) $ 2", "unexpected character '$'", 8),
    ("Pow(x, 1.5)", "Pow needs an integer constant here", 1),
    ("x y", "unexpected 'y' after a complete formula", 3),
    ("Var(0, 3, 7)", "Var takes (index, dim, category 0|1|2)", 1),
    ("SqDist(x, )", "expected a number, a name or '(', found ')'", 11),
])
def test_parser_errors_point_at_the_token(formula, message, column):
    with pytest.raises(FormulaSyntaxError) as info:
        kn.Genred(formula, ["x = Vi(3)", "y = Vj(3)"], axis=1)
    assert message in str(info.value) and f"at column {column}" in str(info.value)
    assert info.value.position == column - 1
    assert str(info.value).splitlines()[-1].index("^") == 2 + column - 1


def test_call_errors():
    routine = kn.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    with pytest.raises(ValueError, match="takes 2 arrays"):
        routine(X)
    with pytest.raises(ValueError, match=r"argument 1 \(j-variable\) must have shape \(rows, 3\), got \(60, 2\)"):
        routine(X, Y[:, :2])
    with pytest.raises(ValueError, match="unknown reduction_op 'Median'"):
        kn.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Median")
    with pytest.raises(ValueError, match="needs opt_arg"):
        kn.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="KMin")
    with pytest.raises(FormulaSyntaxError, match="an alias is Vi"):
        kn.Genred("x", ["x = Foo(3)"])


# ---- batch dimensions: (batch..., rows, dim) arguments, (batch..., dim) parameters, as pykeops --------------------

@pytest.mark.parametrize("axis", [0, 1])
def test_batched_arguments_broadcast_like_pykeops(axis):
    """x (2, 1, M, 3) and y (1, 3, N, 3) broadcast to 2 x 3 batches; g (2, 1, 1) is one parameter per batch row.
    Against a dense float64 NumPy evaluation of the same kernel."""
    x, y, b, g = rng.random((2, 1, 5, 3)), rng.random((1, 3, 7, 3)), rng.random((1, 3, 7, 2)), rng.random((2, 1, 1))
    routine = kn.Genred("Exp(-g * SqDist(x, y)) * b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)", "g = Pm(1)"],
                        reduction_op="Sum", axis=axis)
    kernel = np.exp(-g[..., None] * ((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1))  # (2, 3, M, N)
    terms = kernel[..., None] * b[..., None, :, :]
    want = terms.sum(-2) if axis == 1 else terms.sum(-3)
    out = routine(x, y, b, g)
    assert out.shape == want.shape and relative_error(out, want) < 1e-13


def test_symbolic_variables_take_batched_arrays():
    x, y = rng.random((2, 5, 3)), rng.random((2, 7, 3))
    out = kn.Vi(0, 3).sqdist(kn.Vj(1, 3)).sum(axis=1)(x, y)
    want = ((x[:, :, None] - y[:, None]) ** 2).sum(-1).sum(-1, keepdims=True)
    assert out.shape == want.shape and relative_error(out, want) < 1e-14


def test_batched_torch_genred_is_differentiable():
    x = torch.rand(2, 5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 7, 3, dtype=torch.float64)
    routine = kt.Genred("Exp(-SqDist(x, y))", ["x = Vi(3)", "y = Vj(3)"], reduction_op="LogSumExp", axis=1)
    (grad,) = torch.autograd.grad(routine(x, y).sum(), x)
    x_ = x.detach().requires_grad_()
    dense = torch.exp(-((x_[:, :, None] - y[:, None]) ** 2).sum(-1)).logsumexp(-1)
    (want,) = torch.autograd.grad(dense.sum(), x_)
    torch.testing.assert_close(grad, want)


@pytest.mark.parametrize("arguments, message", [
    (lambda x, y: (x, y[0]), r"argument 1 \(j-variable\) must have shape \(batch\.\.\., rows, 3\), got \(7, 3\)"),
    (lambda x, y: (x[0], y), r"argument 1 \(j-variable\) must have shape \(rows, 3\), got \(2, 7, 3\)"),
])
def test_batch_dimensions_must_agree(arguments, message):
    x, y = rng.random((2, 5, 3)), rng.random((2, 7, 3))
    routine = kn.Genred("SqDist(x, y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min", axis=1)
    with pytest.raises(ValueError, match=message):
        routine(*arguments(x, y))


def test_an_unknown_keyword_is_refused_not_ignored():
    """pykeops' code generation switches are accepted (they change nothing in keir); anything else raises."""
    routine = kn.Genred("SqDist(x, y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min", axis=1,
                        enable_chunks=False, use_fast_math=False, rec_multVar_highdim=True, cuda_type="float64")
    with pytest.raises(TypeError, match="bogus"):
        routine(X, Y, bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        kn.Genred("SqDist(x, y)", ["x = Vi(3)", "y = Vj(3)"], bogus=2)
    with pytest.raises(TypeError, match="bogus"):
        kn.KernelSolve("SqDist(x, y) * b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], "b", bogus=3)
