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
    with pytest.raises(TypeError, match="float32 and float64 arrays, got int64"):
        kn.Vi(np.ones((4, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="needs a numpy array or a number, got list"):
        kn.LazyTensor([1.0, 2.0])
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


def test_reduction_without_i_or_j_variable():
    with pytest.raises(ValueError, match="needs a Vi \\(i-indexed\\) variable"):
        kn.Vj(np.ones((5, 3))).sqnorm2().sum(axis=1)
    with pytest.raises(ValueError, match="needs a Vj \\(j-indexed\\) variable"):
        kn.Vi(np.ones((5, 3))).sqnorm2().sum(axis=0)
    with pytest.raises(ValueError, match="axis is 0 \\(over i\\) or 1 \\(over j\\)"):
        kn.Vi(np.ones((5, 3))).sqdist(kn.Vj(np.ones((5, 3)))).sum(axis=2)


def test_non_integer_power():
    with pytest.raises(ValueError, match="integer exponent"):
        kn.Vi(np.ones((4, 3))) ** 1.5


def test_torch_device_and_dtype():
    with pytest.raises(TypeError, match="float32 and float64 arrays, got int32"):
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
