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


@pytest.mark.parametrize("spec, message", [
    ("keir-simplify{bogus=1}", "unknown option 'bogus=1' of pass 'keir-simplify' .options: assume-finite"),
    ("keir-simplify{assume-finite=maybe}", "takes true or false"),
    ("keir-simplify{assume-finite=true", "name{key=value"),
    ("keir-cse{assume-finite=true}", "options: none"),
    ("keir-nothing", "unknown pass"),
])
def test_bad_options_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        get_pass(spec)
