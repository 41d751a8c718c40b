"""Loop nest (scf/arith/math/vector/memref) -> LLVM dialect -> LLVM IR -> native object code.

MLIR's upstream conversions produce the LLVM dialect and translate it to LLVM IR; llvmlite (built on the same
LLVM 22) optimises it for the host CPU at -O3 and emits an object file, which the runtime loads without MLIR.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

TO_LLVM_PIPELINE = (
    "builtin.module(convert-scf-to-cf,convert-vector-to-llvm,convert-math-to-llvm,convert-arith-to-llvm,"
    "finalize-memref-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,reconcile-unrealized-casts)"
)

# A kernel is linked against nothing (the runtime's loader resolves no symbols), so LLVM must not turn its loops
# into library calls: without this attribute, loop-idiom recognition turns an initialising loop into `memset` on
# some CPUs (seen with AVX-512 on the arg-reductions' index rows).
NO_LIBRARY_CALLS = "no-builtins"


@dataclass(frozen=True)
class HostTarget:
    triple: str
    cpu: str
    features: str

    @property
    def key(self) -> str:
        return f"{self.triple}/{self.cpu}/{self.features}"


@functools.cache
def _llvm():
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


@functools.cache
def host_target() -> HostTarget:
    llvm = _llvm()
    return HostTarget(llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())


@functools.cache
def target_machine():
    llvm = _llvm()
    host = host_target()
    target = llvm.Target.from_triple(host.triple)
    return target.create_target_machine(cpu=host.cpu, features=host.features, opt=3, reloc="pic", codemodel="default")


def loops_to_llvm_ir(loop_text: str) -> str:
    """Lower the loop nest to the LLVM dialect and translate it to LLVM IR text."""
    from mlir import ir, passmanager
    from mlir.dialects import llvm as llvm_dialect

    from keir.compiler.mlir_context import keir_context

    with keir_context():
        module = ir.Module.parse(loop_text)
        passmanager.PassManager.parse(TO_LLVM_PIPELINE).run(module.operation)
        for op in module.body.operations:
            if op.operation.name == "llvm.func":  # see NO_LIBRARY_CALLS
                op.operation.attributes["passthrough"] = ir.ArrayAttr.get([ir.StringAttr.get(NO_LIBRARY_CALLS)])
        return str(llvm_dialect.translate_module_to_llvmir(module.operation))


def llvm_ir_to_object(llvm_ir: str) -> bytes:
    llvm = _llvm()
    module = llvm.parse_assembly(llvm_ir)
    module.verify()
    machine = target_machine()
    builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=3))
    builder.getModulePassManager().run(module, builder)
    object_code = machine.emit_object(module)
    missing = undefined_symbols(object_code)
    if missing:  # the loader's memory manager reserves no room to link them: it would abort the process
        raise RuntimeError(f"keir: the kernel's object code refers to {', '.join(missing)}, which kernels must not "
                           "call (a math op lowered to a library call?)")
    return object_code


def undefined_symbols(object_code: bytes) -> list[str]:
    """The symbols an ELF64 little-endian object refers to without defining them ([] for other formats)."""
    if object_code[:6] != b"\x7fELF\x02\x01":
        return []
    section_offset = int.from_bytes(object_code[0x28:0x30], "little")
    entry_size, count = (int.from_bytes(object_code[k : k + 2], "little") for k in (0x3A, 0x3C))
    sections = [object_code[section_offset + k * entry_size : section_offset + (k + 1) * entry_size]
                for k in range(count)]
    missing = []
    for header in sections:
        if int.from_bytes(header[4:8], "little") != 2:  # SHT_SYMTAB
            continue
        offset, size = (int.from_bytes(header[k : k + 8], "little") for k in (0x18, 0x20))
        strings = sections[int.from_bytes(header[0x28:0x2C], "little")]
        string_offset = int.from_bytes(strings[0x18:0x20], "little")
        for symbol in range(offset, offset + size, 24):
            name = int.from_bytes(object_code[symbol : symbol + 4], "little")
            if name and object_code[symbol + 6 : symbol + 8] == b"\0\0":  # defined in section 0: SHN_UNDEF
                end = object_code.index(b"\0", string_offset + name)
                missing.append(object_code[string_offset + name : end].decode())
    return missing
