"""The dialect: IRDL definition and op table agree; emission and import are inverse; hash-consing."""

import re

import numpy as np

from keir.compiler.emit import emit_module
from keir.compiler.importer import parse_module
from keir.compiler.kernel import Kernel
from keir.dialect import IRDL_SOURCE, OPS, constant, make, var


def test_irdl_declares_exactly_the_op_table():
    declared = set(re.findall(r"irdl\.operation @(\w+)", IRDL_SOURCE))
    assert declared == set(OPS)
    for name, spec in OPS.items():
        block = IRDL_SOURCE.split(f"irdl.operation @{name} {{")[1].split("}\n")[0]
        operands = re.search(r"irdl\.operands\((.*)\)", block)
        assert (len(operands.group(1).split(",")) if operands else 0) == spec.arity, name
        declared_attrs = set(re.findall(r'"(\w+)" = %', block))
        expected = set(spec.attrs) - ({"dim"} if name == "var" else set())  # a var's dim is its type's
        assert declared_attrs == expected, name


def test_hash_consing_makes_equal_formulas_identical():
    x, y = var(0, "i", 3), var(1, "j", 3)
    a = make("exp", make("neg", make("sqdist", x, y)))
    b = make("exp", make("neg", make("sqdist", var(0, "i", 3), var(1, "j", 3))))
    assert a is b and hash(a) == hash(b)
    assert make("exp", make("sqdist", x, y)) is not a


def test_emit_then_import_is_identity():
    x, y, b, p = var(0, "i", 3), var(1, "j", 3), var(2, "j", 1), var(3, "p", 3)
    f = make("concat", make("mul", make("exp", make("neg", make("sqdist", x, y))), b),
             make("elem", make("div", make("pow", x - 0 if False else x, exponent=-2), p), index=1))
    f = make("add", f, make("extract", make("sqrt", make("abs", make("sub", x, y))), start=1, length=2))
    f = make("mul", f, constant(0.1))
    for dtype in ("f32", "f64"):
        kernel = Kernel("k", make("reduce", f, kind="sum", axis=0), dtype)
        (back,) = parse_module(emit_module([kernel]))
        assert back.result is kernel.result and back.dtype == dtype


def test_constants_round_trip_exactly():
    for value in (0.1, 1 / 3, -2.5e-300, 1e300, float("inf"), -float("inf")):
        kernel = Kernel("k", make("reduce", make("mul", var(0, "i", 1), constant(value)), kind="sum", axis=1),
                        "f64")
        (back,) = parse_module(emit_module([kernel]))
        got = [n for n in back.result.args[0].args if n.op == "constant"][0].attr("value")
        assert np.float64(got) == np.float64(value)
