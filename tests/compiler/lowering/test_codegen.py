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


# A loop that fills a buffer with one byte value: the idiom LLVM's loop-idiom recognition turns into `memset`
# (it did on AVX-512 hosts for the arg-reductions' index rows, which the loader cannot link).
FILL_LOOP = """
func.func @fill(%buffer: memref<?xi8>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %byte = arith.constant -1 : i8
  scf.for %k = %c0 to %n step %c1 {
    memref.store %byte, %buffer[%k] : memref<?xi8>
  }
  return
}
"""


def test_an_initialising_loop_stays_a_loop():
    object_code = codegen.llvm_ir_to_object(codegen.loops_to_llvm_ir(FILL_LOOP))
    assert codegen.undefined_symbols(object_code) == []


def test_without_the_attribute_the_same_loop_becomes_memset():  # the test above can fail
    llvm_ir = codegen.loops_to_llvm_ir(FILL_LOOP)
    llvm_ir = llvm_ir.replace(" #0 {", " {").replace(f'attributes #0 = {{ "{codegen.NO_LIBRARY_CALLS}" }}', "")
    with pytest.raises(RuntimeError, match="memset"):
        codegen.llvm_ir_to_object(llvm_ir)
