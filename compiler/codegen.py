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
        return str(llvm_dialect.translate_module_to_llvmir(module.operation))


def llvm_ir_to_object(llvm_ir: str) -> bytes:
    llvm = _llvm()
    module = llvm.parse_assembly(llvm_ir)
    module.verify()
    machine = target_machine()
    builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=3))
    builder.getModulePassManager().run(module, builder)
    return machine.emit_object(module)
