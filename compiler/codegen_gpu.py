"""gpu.module text -> NVVM -> PTX, in process (no nvcc, NVRTC or CUDA SDK): the driver compiles the PTX at load.

    math.* ops -> llvm.call_intrinsic "llvm.<op>.<type>"     exact NVPTX instructions (see below)
    nvvm-attach-target{chip=sm_90 features=+ptx78 O=3}      the gpu.module learns its target
    gpu.module(convert-scf-to-cf, convert-gpu-to-nvvm)      loops to branches first, then gpu/memref/arith -> llvm/nvvm
    reconcile-unrealized-casts
    dynamic workgroup memory declared extern                 `.extern .shared .b8 __dynamic_shmem__0[]`
    gpu-module-to-binary{format=isa}                        LLVM's NVPTX back end at -O3; PTX text in a gpu.binary

The PTX ISA version is the oldest one that knows the arch: any driver that runs the device can JIT it.

`convert-gpu-to-nvvm` lowers math ops itself: f32 sqrt to `sqrt.approx`, and fma, floor, roundeven, ... to calls
of libdevice's `__nv_*` functions, which exist only in a CUDA SDK. keir's math is written in arith ops plus a
few math ops that NVPTX has exact instructions for (sqrt.rn, fma.rn, abs, cvt.rni, copysign, ...), so those are
rewritten first into calls of the LLVM intrinsics, which the conversion leaves alone, and `math.exp2` on f32,
which keir's GPU exp uses for the special-function unit's `ex2.approx` (keir.compiler.mathlib); any other math
op is a Python error, and so is any call left to an undefined function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keir.compiler.kernel import Kernel
from keir.compiler.lower_gpu import lower_gpu
from keir.compiler.operands import Operand

# sm_XX -> the first PTX ISA version (x10) that supports it, from the PTX ISA release notes.
_FIRST_PTX_ISA = {
    60: 50, 61: 50, 62: 50, 70: 60, 72: 61, 75: 63, 80: 70, 86: 71, 87: 74, 89: 78, 90: 78,
    100: 86, 101: 86, 103: 88, 110: 90, 120: 87, 121: 88,
}
_ARCH = re.compile(r"sm_(\d+)([af]?)")
# arch-specific (sm_90a) and family (sm_100f) variants need these PTX ISA versions at least.
_SUFFIX_PTX_ISA = {"a": 80, "f": 88}


@dataclass(frozen=True)
class NvptxTarget:
    arch: str  # sm_XX
    ptx_isa: int  # PTX ISA version x10, e.g. 78 for 7.8

    @property
    def features(self) -> str:
        return f"+ptx{self.ptx_isa}"

    @property
    def key(self) -> str:
        return f"nvptx64/{self.arch}/{self.features}"


def nvptx_target(arch: str) -> NvptxTarget:
    """Validate `arch` (e.g. "sm_90") before MLIR sees it: an unknown chip must be a Python error."""
    match = _ARCH.fullmatch(arch)
    if match is None or int(match.group(1)) not in _FIRST_PTX_ISA:
        known = ", ".join(f"sm_{n}" for n in sorted(_FIRST_PTX_ISA))
        raise ValueError(f"unknown GPU architecture {arch!r}; known: {known} (with an optional 'a' or 'f')")
    isa = _FIRST_PTX_ISA[int(match.group(1))]
    if match.group(2):
        isa = max(isa, _SUFFIX_PTX_ISA[match.group(2)])
    return NvptxTarget(arch, isa)


def _pipeline(target: NvptxTarget) -> str:
    return (
        f"builtin.module(nvvm-attach-target{{chip={target.arch} features={target.features} O=3}},"
        "gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm),reconcile-unrealized-casts)"
    )


# math op -> LLVM intrinsic that NVPTX selects to one correctly rounded instruction (or an exact expansion)
_INTRINSICS = {
    "math.sqrt": "sqrt", "math.absf": "fabs", "math.fma": "fma", "math.roundeven": "roundeven",
    "math.round": "round", "math.floor": "floor", "math.ceil": "ceil", "math.trunc": "trunc",
    "math.copysign": "copysign",
}


# math op -> NVVM intrinsic of the special-function unit, f32 only; with fastmath<afn> its flush-to-zero form
_APPROXIMATE = {"math.exp2": ("llvm.nvvm.ex2.approx.f32", "llvm.nvvm.ex2.approx.ftz.f32")}


def _intrinsic_name(op) -> str:
    """The LLVM intrinsic that math op `op` becomes (see _INTRINSICS and _APPROXIMATE)."""
    if op.name in _APPROXIMATE:
        if str(op.results[0].type) != "f32":
            raise ValueError(f"{op.name} has a special-function-unit instruction for f32 only, not "
                             f"{op.results[0].type}")
        flush = "afn" in str(op.attributes["fastmath"]) if "fastmath" in op.attributes else False
        return _APPROXIMATE[op.name][flush]
    intrinsic = _INTRINSICS.get(op.name)
    if intrinsic is None:
        raise ValueError(f"{op.name} has no exact NVPTX instruction; keir's GPU lowering cannot use it")
    return f"llvm.{intrinsic}.{_intrinsic_suffix(op.results[0].type)}"


def _intrinsic_suffix(value_type) -> str:
    """LLVM's overload suffix: f32, f64, v1f32, ..."""
    from mlir import ir

    if isinstance(value_type, ir.VectorType):
        return f"v{'x'.join(map(str, value_type.shape))}{value_type.element_type}"
    return str(value_type)


def _operations(module) -> list:
    """Every operation nested in `module`, outer ones first."""
    found = []

    def visit(op) -> None:
        for region in op.regions:
            for block in region.blocks:
                for child in block.operations:
                    found.append(child.operation)
                    visit(child.operation)

    visit(module.operation)
    return found


def _math_to_intrinsics(module) -> None:
    """Rewrite every math op of `module` into `llvm.call_intrinsic` (see the module docstring)."""
    from mlir import ir

    for op in [op for op in _operations(module) if op.name.startswith("math.")]:
        result_type = op.results[0].type
        attributes = {
            "intrin": ir.StringAttr.get(_intrinsic_name(op)),
            "fastmathFlags": ir.Attribute.parse("#llvm.fastmath<none>"),
            "op_bundle_sizes": ir.Attribute.parse("array<i32>"),
            "operandSegmentSizes": ir.Attribute.parse(f"array<i32: {len(op.operands)}, 0>"),
        }
        call = ir.Operation.create(
            "llvm.call_intrinsic", results=[result_type], operands=list(op.operands), attributes=attributes,
            loc=op.location, ip=ir.InsertionPoint(op),
        )
        op.results[0].replace_all_uses_with(call.results[0])
        op.erase()


def _extern_dynamic_shared_memory(module) -> None:
    """`convert-gpu-to-nvvm` declares the dynamic workgroup memory as an internal zero-sized global, which NVPTX
    then demotes to a 1-byte static `.shared` variable that the kernel indexes past. External linkage gives the
    PTX form of dynamic shared memory instead, `.extern .shared .align 16 .b8 __dynamic_shmem__0[];` (what CUDA
    C++'s `extern __shared__` becomes)."""
    from mlir import ir

    for op in _operations(module):
        if op.name == "llvm.mlir.global" and ir.StringAttr(op.attributes["sym_name"]).value.startswith(
            "__dynamic_shmem__"
        ):
            op.attributes["linkage"] = ir.Attribute.parse("#llvm.linkage<external>")


def _to_nvvm(gpu_text: str, target: NvptxTarget):
    """Parse the gpu.module text and lower it to the llvm/nvvm dialects (call inside keir_context())."""
    from mlir import ir, passmanager

    module = ir.Module.parse(gpu_text)
    _math_to_intrinsics(module)
    passmanager.PassManager.parse(_pipeline(target)).run(module.operation)
    _extern_dynamic_shared_memory(module)
    _reject_external_calls(module)
    return module


def gpu_to_ptx(gpu_text: str, arch: str) -> str:
    """PTX for every kernel of the gpu.module in `gpu_text`."""
    from mlir import passmanager
    from mlir.dialects import gpu

    from keir.compiler.mlir_context import keir_context

    target = nvptx_target(arch)
    with keir_context():
        module = _to_nvvm(gpu_text, target)
        passmanager.PassManager.parse("builtin.module(gpu-module-to-binary{format=isa})").run(module.operation)
        (binary,) = [op for op in module.body.operations if op.operation.name == "gpu.binary"]
        return gpu.ObjectAttr(binary.attributes["objects"][0]).object.decode()


def _reject_external_calls(module) -> None:
    """A kernel that calls a function it does not define (a libdevice `__nv_*` routine) cannot be linked here.
    Raised before gpu-module-to-binary, which would otherwise go looking for libdevice."""
    from mlir import ir

    external = [
        ir.StringAttr(op.attributes["sym_name"]).value
        for op in _operations(module)
        if op.name == "llvm.func" and len(op.regions[0].blocks) == 0
    ]
    if external:
        raise ValueError(
            f"the GPU kernel calls {', '.join(sorted(external))}, which needs libdevice (a CUDA SDK); "
            "keir's GPU lowering must express every op in arith/math ops that NVPTX selects directly"
        )


def ptx_for(kernel: Kernel, arch: str, operands: tuple[Operand, ...] | None = None) -> str:
    """The PTX of `kernel` (as given: keir passes are the caller's) for `arch`, e.g. "sm_90"."""
    return gpu_to_ptx(lower_gpu(kernel, operands).text, arch)
