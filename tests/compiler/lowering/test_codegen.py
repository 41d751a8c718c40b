"""The object code check: a kernel that would need a library function is refused with a Python error, because
the in-process loader (llvmlite's memory manager, see runtime/cpu_loader.py) would abort the process on it."""

import numpy as np
import pytest

import keir.numpy as kn
from keir.compiler import codegen

CALLS_SINF = """
declare float @sinf(float)
define float @f(float %x) {
  %y = call float @sinf(float %x)
  %z = call float @llvm.sqrt.f32(float %y)
  ret float %z
}
declare float @llvm.sqrt.f32(float)
"""


def test_a_library_call_is_refused_before_loading():
    with pytest.raises(RuntimeError, match="refers to sinf"):
        codegen.llvm_ir_to_object(CALLS_SINF)


def test_kernels_are_self_contained():
    x = np.random.default_rng(0).random((10, 3))
    formula = ((kn.Vi(x) - kn.Vj(x)).sin().sum() / kn.Vi(x).sqdist(kn.Vj(x)).sqrt().log()).exp()
    llvm_ir = formula.sum(axis=1, call=False).ir("llvm")
    object_code = codegen.llvm_ir_to_object(llvm_ir)
    assert object_code[:4] == b"\x7fELF" and codegen.undefined_symbols(object_code) == []
