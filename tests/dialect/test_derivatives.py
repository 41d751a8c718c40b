"""The derivative rules, the smart constructors and the keir-differentiate pass, checked symbolically.

Formulas are evaluated here by a small NumPy interpreter of the DAG (no compilation), and derivatives are
checked against central finite differences of that interpreter.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from support.dag_numpy import evaluate

from keir.compiler.kernel import Kernel
from keir.compiler.passes import run_pipeline
from keir.compiler.passes.keir_differentiate import differentiate, expand
from keir.compiler.pipeline import DEFAULT_PASSES
from keir.dialect import algebra
from keir.dialect import derivatives as D
from keir.dialect.node import Node, constant, make, topological, var
from keir.dialect.ops import OPS, REDUCTION_KINDS

X, Y = var(0, "i", 3), var(1, "j", 3)
S, P = var(2, "p", 1), var(3, "p", 3)
E1, E3 = var(4, "i", 1), var(5, "i", 3)

# One formula per differentiable op (and per broadcasting case), with values in each op's domain.
OP_FORMULAS = {
    "add": make("add", X, Y),
    "add-broadcast": make("add", X, S),
    "constant": make("add", make("mul", constant(2.0), X), Y),
    "sub": make("sub", X, make("mul", S, Y)),
    "mul": make("mul", X, Y),
    "div": make("div", X, Y),
    "div-broadcast": make("div", S, X),
    "neg": make("neg", make("mul", X, Y)),
    "exp": make("exp", make("sub", X, Y)),
    "log": make("log", make("add", X, Y)),
    "sqrt": make("sqrt", make("mul", X, Y)),
    "rsqrt": make("rsqrt", make("add", X, Y)),
    "square": make("square", make("sub", X, Y)),
    "pow": make("pow", make("sub", X, Y), exponent=3),
    "pow-negative": make("pow", make("add", X, Y), exponent=-2),
    "abs": make("abs", make("sub", X, Y)),
    "sum": make("sum", make("mul", X, Y)),
    "dot": make("dot", make("mul", X, P), Y),
    "sqdist": make("sqdist", X, Y),
    "sqnorm2": make("sqnorm2", make("sub", X, Y)),
    "elem": make("elem", make("mul", X, Y), index=1),
    "extract": make("extract", make("mul", X, Y), start=1, length=2),
    "concat": make("concat", make("exp", X), make("elem", Y, index=0)),
    "sin": make("sin", make("sub", X, Y)),
    "cos": make("cos", make("mul", X, Y)),
    "asin": make("asin", make("mul", constant(0.5), make("sub", X, Y))),
    "acos": make("acos", make("mul", constant(0.5), make("sub", X, Y))),
    "atan": make("atan", make("sub", X, Y)),
    "atan2": make("atan2", X, make("sub", Y, S)),
    "relu": make("relu", make("sub", X, Y)),
    "xlogx": make("xlogx", make("mul", X, Y)),
    "sinxdivx": make("sinxdivx", make("sub", X, Y)),
    "clamp": make("clamp", X, make("sub", Y, constant(0.2)), make("add", Y, constant(0.2))),
    "clamp-broadcast": make("clamp", X, S, make("add", S, constant(0.3))),
    "ifelse": make("ifelse", make("sub", X, Y), make("mul", X, Y), make("exp", X)),
    "min": make("min", make("mul", X, Y)),
    "max": make("max", make("sub", X, Y)),
    "piecewise-constant": make(
        "add",
        make("mul", make("sign", make("sub", X, Y)), make("step", make("sub", Y, X))),
        make("add", make("mul", make("floor", make("mul", constant(3.0), X)), make("round", Y, digits=1)),
             make("mul", make("lt", X, Y), make("one_hot", make("argmin", make("mul", X, Y)), dim=3))),
    ),
    "comparisons": make(
        "mul",
        make("add", make("add", make("le", X, Y), make("gt", X, Y)), make("add", make("ge", X, Y), make("eq", X, Y))),
        make("mul", make("ne", X, Y), make("mul", X, make("argmax", Y))),
    ),
}


def _env(rng: np.random.Generator) -> dict[Node, np.ndarray]:
    return {
        X: rng.uniform(0.5, 1.5, 3),
        Y: rng.uniform(0.5, 1.5, 3),
        S: rng.uniform(0.5, 1.5, 1),
        P: rng.uniform(0.5, 1.5, 3),
    }


def _numeric_gradient(f: Node, wrt: Node, e: np.ndarray, env: dict[Node, np.ndarray], h: float = 1e-6):
    out = np.zeros(wrt.dim)
    for k in range(wrt.dim):
        step = np.zeros(wrt.dim)
        step[k] = h
        up = evaluate(f, {**env, wrt: env[wrt] + step})
        down = evaluate(f, {**env, wrt: env[wrt] - step})
        out[k] = e @ (up - down) / (2 * h)
    return out


# ---- the tables -------------------------------------------------------------------------------------------------


def test_an_op_record_has_a_rule_or_states_why_not():
    record = OPS["exp"]
    with pytest.raises(ValueError, match="exactly one of a vjp rule"):
        dataclasses.replace(record, vjp=None)
    with pytest.raises(ValueError, match="exactly one of a vjp rule"):
        dataclasses.replace(record, not_differentiable="because")
    for name, op in OPS.items():
        assert (op.vjp is None) != (op.not_differentiable is None), name


def test_every_reduction_kind_has_a_rule_or_is_declared_non_differentiable():
    for kind in REDUCTION_KINDS:
        assert (kind in D.REDUCTION_VJP) != (kind in D.NON_DIFFERENTIABLE_REDUCTIONS), kind
    assert set(D.REDUCTION_VJP) | set(D.NON_DIFFERENTIABLE_REDUCTIONS) == set(REDUCTION_KINDS)


def test_the_formulas_here_exercise_the_ops_of_their_families():
    # every differentiable op is checked on its own against finite differences in tests/dialect/test_catalogue.py;
    # the formulas here compose them
    used = {n.op for f in OP_FORMULAS.values() for n in topological(f)}
    assert {"exp", "log", "mul", "div", "sqdist", "concat", "clamp", "ifelse", "atan2", "min"} <= used


@pytest.mark.parametrize(
    "inner",
    [make("laplacian", make("sqnorm2", X), X), make("divergence", X, X), make("trace", make("mul", X, S), X)],
    ids=lambda n: n.op,
)
def test_asking_a_gradient_through_a_non_differentiable_op_names_it(inner):
    with pytest.raises(D.NotDifferentiableError, match=f"keir.{inner.op} is not differentiable"):
        expand(make("grad", make("mul", inner, S), X, E1))


def test_a_gradient_with_respect_to_a_non_variable_is_refused():
    with pytest.raises(ValueError, match="keir.var"):
        differentiate(make("exp", X), make("exp", X), E3)


# ---- the rules, against finite differences --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OP_FORMULAS))
def test_first_derivative_matches_finite_differences(name):
    f = OP_FORMULAS[name]
    rng = np.random.default_rng(len(name))
    env = _env(rng)
    e_var = var(6, "i", f.dim)
    env[e_var] = rng.normal(size=f.dim)
    for wrt in (X, Y, S, P):
        got = evaluate(expand(make("grad", f, wrt, e_var)), env)
        np.testing.assert_allclose(got, _numeric_gradient(f, wrt, env[e_var], env), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(OP_FORMULAS))
def test_second_derivative_matches_finite_differences(name):
    f = OP_FORMULAS[name]
    rng = np.random.default_rng(100 + len(name))
    env = _env(rng)
    e_var = var(6, "i", f.dim)
    env[e_var] = rng.normal(size=f.dim)
    env[E3] = rng.normal(size=3)
    first = make("grad", f, X, e_var)  # expanded by the pass before the outer grad differentiates it
    for wrt in (X, Y):
        got = evaluate(expand(make("grad", first, wrt, E3)), env)
        want = _numeric_gradient(expand(first), wrt, env[E3], env, h=1e-5)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ---- the pass ---------------------------------------------------------------------------------------------------


def test_the_default_pipeline_expands_gradients():
    kernel = Kernel("k", make("reduce", make("grad", make("exp", X), X, E3), kind="sum", axis=1), "f64")
    ops = {n.op for n in topological(run_pipeline(kernel, DEFAULT_PASSES).result)}
    assert "grad" not in ops and "exp" in ops


@pytest.mark.parametrize("dim", [1, 3])
def test_grad_of_grad_of_a_sum_is_the_zero_formula(dim):
    x, y, e, f = var(0, "i", dim), var(1, "j", dim), var(2, "i", dim), var(3, "i", dim)
    result = expand(make("grad", make("grad", make("add", x, y), x, e), x, f))
    assert algebra.is_zero(result) and result.dim == dim
    if dim == 1:
        assert result is constant(0.0)


def test_a_variable_the_formula_does_not_use_has_a_zero_gradient():
    assert expand(make("grad", make("exp", X), Y, E3)) is algebra.zeros(3)


def test_a_shared_subexpression_is_differentiated_once(monkeypatch):
    calls = []
    rule = OPS["exp"].vjp
    monkeypatch.setitem(OPS, "exp", dataclasses.replace(OPS["exp"], vjp=lambda y, e: calls.append(y) or rule(y, e)))
    shared = make("exp", make("sum", X))
    f = make("add", make("mul", make("log", shared), make("sqrt", shared)), shared)
    expand.cache_clear()
    differentiate(f, X, E1)
    assert calls == [shared]


def test_nodes_off_the_path_to_the_variable_are_not_differentiated(monkeypatch):
    calls = []
    rule = OPS["log"].vjp
    monkeypatch.setitem(OPS, "log", dataclasses.replace(OPS["log"], vjp=lambda y, e: calls.append(y) or rule(y, e)))
    differentiate(make("mul", make("log", make("sum", Y)), make("exp", X)), X, E3)
    assert calls == []


def test_a_derivative_folds_the_formula_around_it():
    # (d/dx (x + y)) . e = e, so e * grad(...) - e * e is zero, and the whole formula folds away.
    g = make("grad", make("add", X, Y), X, E3)
    assert algebra.is_zero(expand(make("sub", make("mul", E3, g), make("mul", E3, E3))))


# ---- reductions -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
def test_the_gradient_of_a_reduction_is_a_reduction(axis):
    formula = make("mul", make("exp", make("neg", make("sqdist", X, Y))), S)
    reduction = make("reduce", formula, kind="sum", axis=axis)
    output = "i" if axis == 1 else "j"
    g, out = var(9, output, 1), var(10, output, 1)
    expected = {X: (axis if output == "i" else 1 - axis, False), Y: (axis if output == "j" else 1 - axis, False),
                S: (axis, True)}
    for wrt, (gradient_axis, sum_rows) in expected.items():
        gradient, summed = D.reduction_gradient(reduction, wrt, g, out)
        assert gradient.op == "reduce" and gradient.attr("axis") == gradient_axis and summed is sum_rows
        assert gradient.args[0] is make("grad", formula, wrt, g)
        assert gradient.dim == wrt.dim


def test_a_logsumexp_gradient_uses_the_output_row():
    formula = make("neg", make("sqdist", X, Y))
    reduction = make("reduce", formula, kind="logsumexp", axis=1)
    g, out = var(9, "i", 1), var(10, "i", 1)
    gradient, _ = D.reduction_gradient(reduction, Y, g, out)
    assert gradient.args[0] is make("grad", formula, Y, algebra.mul(g, algebra.exp(algebra.sub(formula, out))))


def test_a_reduction_gradient_needs_a_cotangent_indexed_like_the_output():
    reduction = make("reduce", make("mul", X, Y), kind="sum", axis=1)
    with pytest.raises(ValueError, match="i-variable"):
        D.reduction_gradient(reduction, X, var(9, "j", 3), var(10, "i", 3))


def test_a_non_differentiable_reduction_is_refused_by_name():
    reduction = make("reduce", make("sqdist", X, Y), kind="argmin", axis=1)
    with pytest.raises(D.NotDifferentiableError, match="keir.reduce of kind 'argmin'"):
        D.reduction_gradient(reduction, X, var(9, "i", 1), var(10, "i", 1))


# ---- the smart constructors -------------------------------------------------------------------------------------


def test_smart_constructors_fold_the_obvious():
    zero, one, two = constant(0.0), constant(1.0), constant(2.0)
    assert algebra.mul(zero, X) is algebra.zeros(3)
    assert algebra.add(X, zero) is X
    assert algebra.mul(one, X) is X
    assert algebra.mul(two, algebra.mul(constant(3.0), X)) is make("mul", constant(6.0), X)
    assert algebra.neg(algebra.neg(X)) is X
    assert algebra.sub(X, X) is algebra.zeros(3)
    assert algebra.power(X, 1) is X and algebra.power(X, 2) is make("square", X)
    assert algebra.sum_(algebra.splat(S, 3)) is make("mul", constant(3.0), S)
    assert algebra.exp(zero) is one
    assert algebra.add(algebra.zeros(3), S) is algebra.splat(S, 3)
    assert algebra.elem(make("concat", S, X), 2) is algebra.elem(X, 1)
    assert algebra.extract(algebra.concat(X, Y), 2, 2) is make("concat", make("elem", X, index=2),
                                                                make("elem", Y, index=0))


def _random_formula(rng: random.Random, depth: int) -> Node:
    leaves = [X, Y, S, P, constant(0.0), constant(1.0), constant(-1.0), constant(2.0), algebra.zeros(3),
              algebra.splat(constant(1.0), 3), algebra.splat(S, 3)]
    if depth == 0:
        return rng.choice(leaves)
    a = _random_formula(rng, depth - 1)
    kind = rng.choice(["binary", "binary", "unary", "component"])
    if kind == "binary":
        b = _random_formula(rng, depth - 1)
        if a.dim != b.dim and 1 not in (a.dim, b.dim):
            b = make("sum", b)
        return make(rng.choice(["add", "sub", "mul", "div"]), a, b)
    if kind == "unary":
        op = rng.choice(["neg", "exp", "square", "abs", "pow", "sum", "sqnorm2"])
        return make(op, a, exponent=rng.choice([-1, 0, 1, 2, 3])) if op == "pow" else make(op, a)
    if a.dim == 1:
        return make("concat", a, _random_formula(rng, depth - 1))
    start = rng.randrange(a.dim)
    return make("extract", a, start=start, length=rng.randrange(1, a.dim - start + 1))


def test_smart_constructors_keep_values_and_dimensions():
    rng = random.Random(0)
    env = _env(np.random.default_rng(0))
    checked = 0
    for _ in range(300):
        f = _random_formula(rng, 4)
        rebuilt: dict[Node, Node] = {}
        for node in topological(f):
            rebuilt[node] = node if node.op in ("var", "constant") else algebra.rebuild(
                node, tuple(rebuilt[a] for a in node.args)
            )
        simplified = rebuilt[f]
        assert simplified.dim == f.dim
        with np.errstate(all="ignore"):
            want, got = evaluate(f, env), evaluate(simplified, env)
        finite = np.isfinite(want) & (np.abs(want) < 1e12)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-9)
        checked += 1
    assert checked == 300
