"""Load native object code into this process with llvmlite's MCJIT (no MLIR import needed).

One execution engine holds every kernel of the process; it owns its own target machine (MCJIT takes
ownership of the one it is given, so it is never shared with the code generator).
"""

from __future__ import annotations

import ctypes
import functools
import threading

import llvmlite.binding as llvm

_lock = threading.Lock()  # guards the engine: its creation and every object added to it


# Called with _lock held: two threads racing here would make two engines, and the code of the kernels loaded
# into the one that is not kept would be freed with it.
@functools.cache
def _engine() -> llvm.ExecutionEngine:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    machine = target.create_target_machine(opt=3, reloc="pic", codemodel="default")
    # llvmlite's memory manager places each object's code and data in one reservation. LLVM's default one
    # maps them separately, and where other mappings crowd the address space (CUDA reserves tens of GiB)
    # they can land over 2 GiB apart: a 32-bit PC-relative relocation then overflows and LLVM aborts.
    return llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine, use_lmm=True)


def load_symbol(object_code: bytes, symbol: str) -> int:
    """Add an object file to the process and return the address of `symbol`."""
    with _lock:
        engine = _engine()
        address = engine.get_function_address(symbol)
        if address:  # already loaded (the same kernel compiled twice in this process)
            return address
        engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
        engine.finalize_object()
        address = engine.get_function_address(symbol)
    if not address:
        raise RuntimeError(f"keir: symbol {symbol!r} not found in its object code")
    return address


def c_function(address: int, n_memrefs: int) -> ctypes._CFuncPtr:
    """The ctypes callable of a lowered kernel: each memref<?xT> is (ptr, ptr, offset, size, stride), then
    i0, i1, n. ctypes releases the GIL during the call, so threads run kernels in parallel.

    Every argument is declared c_void_p, the int64 ones too: on the 64-bit ABIs keir targets (x86-64 System V,
    AArch64) a pointer and an int64 travel the same way, and ctypes converts a Python int to c_void_p about
    twice as fast as to c_int64, which is a microsecond per call. The values are never negative."""
    count = 5 * n_memrefs + 3
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * count)(address)
