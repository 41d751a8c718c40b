"""keir-simplify keeps NaN results: a rewrite may not turn what is NaN for NaN, infinite (or zero) values into
a number, unless the pass may assume finite values. Each case here was a fold that did (the first one found
by the differential fuzzer, seed 1 case 152)."""

from __future__ import annotations

import numpy as np
import pytest
from support.dag_numpy import evaluate

import keir.numpy as kn
from keir.compiler.passes import keir_simplify
from keir.dialect.node import Node, constant, make, topological, var

X = var(0, "i", 2)
Y = var(1, "j", 1)
S = var(2, "p", 1)
A = var(3, "i", 1)


def _value(root: Node, env: dict[Node, np.ndarray], assume_finite: bool = False) -> np.ndarray:
    with np.errstate(all="ignore"):
        return evaluate(keir_simplify.simplify(root, assume_finite=assume_finite), env)


def _powf_of_sqdist_of_itself(x: Node) -> Node:
    """powf(y, sqdist(x, x)) as the front end spells Powf: exp(sqdist(x, x) * log(y))."""
    return make("exp", make("mul", make("sqdist", x, x), make("log", Y)))


@pytest.mark.parametrize("spelling", ["sqdist", "sqnorm2 of a difference"])
def test_sqdist_of_itself_stays(spelling):
    """sqdist(x, x) is NaN where x is NaN or infinite, like x - x; folded to 0, it let exp(0 * log y) fold to 1
    where y < 0 makes log y, and so the formula, NaN."""
    distance = make("sqdist", X, X) if spelling == "sqdist" else make("sqnorm2", make("sub", X, X))
    formula = make("exp", make("mul", distance, make("log", Y)))
    env = {X: np.array([0.3, -1.2]), Y: np.array([-0.5])}
    assert np.isnan(_value(formula, env)[0])
    assert any(n.op in ("sqdist", "sub") for n in topological(keir_simplify.simplify(formula)))
    assert np.isnan(_value(make("sqdist", X, X), {X: np.array([np.inf, 1.0])})[0])
    assert _value(formula, env, assume_finite=True)[0] == 1.0  # with finite values it is 1: the fold is allowed
    assert keir_simplify.simplify(make("sqdist", X, X), assume_finite=True) is constant(0.0)


def test_powers_of_a_parameter_cancel_only_for_finite_values():
    """a * s / s is NaN at s = 0 or inf and a * s^2 / s^4 is NaN at s = 0 (1 / s^2 would be inf)."""
    for formula in (make("div", make("mul", A, S), S),
                    make("div", make("mul", A, make("square", S)), make("pow", S, exponent=4))):
        for s in (0.0, np.inf):
            assert np.isnan(_value(formula, {A: np.array([0.7]), S: np.array([s])})[0]), (formula, s)
        assert _value(formula, {A: np.array([0.7]), S: np.array([2.0])})[0] == pytest.approx(
            0.7 if formula.args[1] is S else 0.7 / 4)
    cancelled = keir_simplify.simplify(make("div", make("mul", A, S), S), assume_finite=True)
    assert cancelled is A


def test_the_fuzzer_reproducer_through_the_api():
    """seed 1 case 152: y.powf(x.sqdist(x)) is C's powf(y, 0) = 1 (KeOps' Powf calls powf), for y < 0 too, and
    powf(y, NaN) = NaN where x is infinite: sqdist(x, x) is not folded to 0."""
    x = np.array([[0.3, -1.2], [np.inf, 0.0]])
    y = np.array([[-0.5], [2.0]])
    got = kn.Vj(y).powf(kn.Vi(x).sqdist(kn.Vi(x))).sum(axis=1)  # one value per i
    assert got[0, 0] == 2.0 and np.isnan(got[1, 0])
