"""Pass options as MLIR writes them: name{key=value}."""

from __future__ import annotations

import pytest

from keir.compiler.kernel import Kernel
from keir.compiler.passes import get_pass
from keir.dialect.node import make, var

X = var(0, "j", 1)
KERNEL = Kernel("k", make("reduce", make("sub", make("exp", X), make("exp", X)), kind="sum", axis=1), "f64")


def test_assume_finite_lets_cancelling_terms_fold():
    assert get_pass("keir-simplify")(KERNEL).result.args[0].op == "sub"
    assert get_pass("keir-simplify{assume-finite=true}")(KERNEL).result.args[0].op == "constant"
    assert get_pass("keir-simplify{assume-finite=false}")(KERNEL).result.args[0].op == "sub"


def test_max_rounds_bounds_the_sweeps():
    deep = make("reduce", make("mul", make("add", X, X), make("add", X, X)), kind="sum", axis=1)
    kernel = Kernel("k", deep, "f64")
    assert get_pass("keir-simplify{max-rounds=8}")(kernel).result == get_pass("keir-simplify")(kernel).result
    assert get_pass("keir-simplify{max-rounds=1 assume-finite=true}").max_rounds == 1
    with pytest.raises(ValueError, match="max-rounds must be at least 1"):
        get_pass("keir-simplify{max-rounds=0}")(kernel)


def test_a_pass_is_a_frozen_dataclass_of_its_options():
    simplify = get_pass("keir-simplify{assume-finite=true}")
    assert simplify == get_pass("keir-simplify{assume-finite=1}") and hash(simplify)
    with pytest.raises(AttributeError):
        simplify.assume_finite = False


def test_a_disabled_rule_leaves_its_rewrite_undone():
    dot = Kernel("k", make("reduce", make("sum", make("mul", var(0, "i", 3), var(1, "j", 3))), kind="sum", axis=1),
                 "f64")
    assert get_pass("keir-simplify")(dot).result.args[0].op == "dot"
    assert get_pass("keir-simplify{disable=sum-of-products}")(dot).result.args[0].op == "sum"
    with pytest.raises(ValueError, match="unknown rule.*bogus.*rules: split-concat"):
        get_pass("keir-simplify{disable=bogus}")


@pytest.mark.parametrize("spec, message", [
    ("keir-simplify{bogus=1}",
     "unknown option 'bogus=1' of pass 'keir-simplify' .options: assume-finite, max-rounds, disable"),
    ("keir-simplify{assume-finite=maybe}", "takes true or false"),
    ("keir-simplify{max-rounds=two}", "takes an integer"),
    ("keir-simplify{assume-finite=true", "name{key=value"),
    ("keir-cse{assume-finite=true}", "options: none"),
    ("keir-nothing", "unknown pass"),
])
def test_bad_options_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        get_pass(spec)
