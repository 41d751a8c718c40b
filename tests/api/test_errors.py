"""Bad input raises a Python exception that names the problem; nothing crashes the interpreter."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import keir.numpy as kn
import keir.torch as kt
from keir.compiler.passes import run_pipeline
from keir.dialect import DimensionError


def test_dimension_mismatch():
    with pytest.raises(DimensionError, match="keir.sqdist: operands have dimensions 3 and 2"):
        kn.Vi(np.ones((4, 3))).sqdist(kn.Vj(np.ones((5, 2))))
    with pytest.raises(DimensionError, match="keir.add: operands have dimensions 3 and 2"):
        kn.Vi(np.ones((4, 3))) + kn.Vj(np.ones((5, 2)))
    with pytest.raises(DimensionError, match="index 3 is out of range"):
        kn.Vi(np.ones((4, 3)))[3]
    with pytest.raises(DimensionError, match="needs a scalar kernel"):
        kn.Vi(np.ones((4, 3))) @ np.ones(4)


def test_mixed_dtypes():
    with pytest.raises(TypeError, match="mixed dtypes in one formula: float32 and float64"):
        kn.Vi(np.ones((4, 3), np.float32)).sqdist(kn.Vj(np.ones((5, 3))))


def test_unsupported_dtype_and_types():
    with pytest.raises(TypeError, match="float32, float64, float16 and bfloat16 arrays.*got int64"):
        kn.Vi(np.ones((4, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="LazyTensor needs a numpy array, a number, a list of numbers or"):
        kn.LazyTensor({"a": 1.0})  # (a list of numbers is a constant vector, as in pykeops)
    with pytest.raises(TypeError, match="got list"):
        kn.LazyTensor(["a"])
    with pytest.raises(TypeError, match="cannot combine a LazyTensor with str"):
        kn.Vi(np.ones((4, 3))) + "a"


def test_wrong_ranks():
    with pytest.raises(ValueError, match=r"Vi needs a 2D array of shape \(rows, dim\), got shape \(4,\)"):
        kn.Vi(np.ones(4))
    with pytest.raises(ValueError, match=r"Vj needs a 2D array.*got shape \(2, 4, 3\)"):
        kn.Vj(np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match=r"got shape \(4, 3\)"):
        kn.LazyTensor(np.ones((4, 3)))
    with pytest.raises(ValueError, match="Pm needs a number or a 1D array"):
        kn.Pm(np.ones((2, 2)))
    with pytest.raises(ValueError, match="at least one component"):
        kn.Vi(np.ones((4, 0)))


def test_mismatched_lengths():
    x, y = kn.Vi(np.ones((4, 3))), kn.Vi(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"same length; got shapes \[\(4, 3\), \(5, 3\)\]"):
        (x.sqdist(kn.Vj(np.ones((2, 3)))) + y.sum()).sum(axis=1)


def test_reduction_axis_errors():
    # (A formula without i or j variables reduces with M = 1 or N = 1, as in pykeops: see test_pykeops_idioms.)
    formula = kn.Vi(np.ones((5, 3))).sqdist(kn.Vj(np.ones((5, 3))))
    with pytest.raises(ValueError, match="axis is 0 \\(over i\\) or 1 \\(over j\\), got 3"):
        formula.sum(axis=3)
    with pytest.raises(ValueError, match="-1 is the vector dimension, which this reduction does not take"):
        formula.logsumexp(axis=-1)
    with pytest.raises(ValueError, match="got -2"):  # pykeops has no negative axes for i and j
        formula.sum(axis=-2)


def test_exponents():
    with pytest.raises(ValueError, match="the exponent must be a number or a LazyTensor, got str"):
        kn.Vi(np.ones((4, 3))) ** "2"
    with pytest.raises(DimensionError, match="the exponent has dimension 2; expected 1 or 3"):
        kn.Vi(np.ones((4, 3))) ** kn.Vj(np.ones((5, 2)))


def test_torch_device_and_dtype():
    with pytest.raises(TypeError, match="float16 and bfloat16 arrays.*got int32"):
        kt.Vi(torch.ones(4, 3, dtype=torch.int32))
    with pytest.raises(TypeError, match="mixed dtypes"):
        kt.Vi(torch.ones(4, 3)).sqdist(kt.Vj(torch.ones(4, 3, dtype=torch.float64)))
    meta = torch.ones(4, 3, device="meta")
    with pytest.raises(ValueError, match="CPU backend got a tensor on meta"):
        kt.Vi(meta).sqdist(kt.Vj(meta)).sum(axis=1)


def test_unknown_pass_name():
    from keir.compiler.kernel import Kernel
    from keir.dialect import var

    with pytest.raises(ValueError, match="unknown pass 'keir-frobnicate'"):
        run_pipeline(Kernel("k", var(0, "i", 1), "f32"), ["keir-frobnicate"])
    result = subprocess.run(
        [sys.executable, "-m", "keir.compiler.opt", "--keir-frobnicate"], input="", capture_output=True, text=True
    )
    assert result.returncode == 2 and "unknown pass 'keir-frobnicate'" in result.stderr


def test_invalid_ir_is_an_exception_not_an_abort():
    from keir.compiler.importer import KeirIRError, parse_module

    for text in ('func.func @f() { %x = "keir.exp"() : () -> vector<1xf32> return }', "this is not MLIR"):
        with pytest.raises(KeirIRError) as info:
            parse_module(text)
        assert info.value.diagnostics and info.value.diagnostics[0].message
