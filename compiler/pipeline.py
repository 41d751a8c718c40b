"""The named stages of compiling one kernel, each printable (DESIGN §4).

    "keir"  the keir dialect as emitted from the formula DAG
    "opt"   after the keir pass pipeline
    "loops" lowered to scf/arith/math/vector/memref
    "llvm"  LLVM IR (before LLVM's own optimisation)
    object code: native, for the host CPU
    "gpu"   lowered to a gpu.module (R output rows per thread, j-tiles in workgroup memory)
    "ptx"   PTX for options.target when it is "sm_XX", else sm_80

MLIR is imported by the stages that need it, never by `import keir`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

from keir.compiler.emit import emit_module
from keir.compiler.errors import INTERNAL_ONLY, USER_ERRORS, CompilerError
from keir.compiler.kernel import Kernel
from keir.compiler.lower_cpu import LoopKernel, lower_cpu
from keir.compiler.mathlib import check_gpu_math
from keir.compiler.operands import kernel_operands
from keir.compiler.passes import run_pipeline
from keir.compiler.register_tiles import RegisterTiles

STAGES = ("keir", "opt", "loops", "llvm", "gpu", "ptx")
# keir-trace first: a gradient of a Laplacian differentiates the Laplacian's expansion.
DEFAULT_PASSES: tuple[str, ...] = ("keir-trace", "keir-differentiate", "keir-simplify", "keir-cse", "keir-hoist")


@dataclass(frozen=True)
class CompileOptions:
    """Everything besides the formula that changes the generated code; hashed into the cache key."""

    passes: tuple[str, ...] = DEFAULT_PASSES
    target: str = "cpu"
    block_sparse: bool = False  # reduce over lists of j-intervals (pykeops' ranges; operands.BLOCK_SPARSE)
    # GPU kernels' float32 exp: "sfu" (special-function unit, exact reduction), "fast", "ieee" (see mathlib.GPU_MATH)
    gpu_math: str = "sfu"
    # CPU: the lowering's register tiles (None: sized for the host's vector registers, register_tiles.py)
    register_tiles: RegisterTiles | None = None

    def __post_init__(self) -> None:
        check_gpu_math(self.gpu_math)


def cache_key(keir_text: str, options: CompileOptions, target_key: str) -> str:
    text = "\n".join([compiler_fingerprint(), repr(options), target_key, keir_text])
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def compiler_fingerprint() -> str:
    """keir's version and a hash of the code that generates kernels (the compiler and dialect packages), so
    that an artifact made by another build of keir is never taken for this one's."""
    from importlib import resources

    from keir import __version__

    digest = hashlib.sha256(__version__.encode())
    for package in ("keir.compiler", "keir.compiler.passes", "keir.dialect"):
        for entry in sorted(resources.files(package).iterdir(), key=lambda e: e.name):
            if entry.name.endswith((".py", ".mlir")):
                digest.update(entry.name.encode() + entry.read_bytes())
    return digest.hexdigest()


def _stage(name: str, answers: tuple[type[BaseException], ...] = USER_ERRORS):
    """Run a stage of a Compilation; an exception that is not among its `answers` to the user becomes a
    CompilerError. Past the lowering, nothing the user did can fail: every exception there is keir's bug."""

    def wrap(method):
        @functools.wraps(method)
        def run(self: Compilation):
            try:
                return method(self)
            except answers:
                raise
            except Exception as err:
                raise CompilerError(name, self.kernel, err) from err

        return run

    return wrap


@dataclass
class Compilation:
    """One kernel's way through the stages; each stage is computed on first use."""

    kernel: Kernel
    options: CompileOptions = field(default_factory=CompileOptions)

    @functools.cached_property
    @_stage("keir")
    def keir(self) -> str:
        return emit_module([self.kernel])

    @functools.cached_property
    @_stage("opt")
    def optimized(self) -> Kernel:
        return run_pipeline(self.kernel, self.options.passes)

    @functools.cached_property
    def opt(self) -> str:
        return emit_module([self.optimized])

    @functools.cached_property
    @_stage("loops")
    def loop_kernel(self) -> LoopKernel:
        return lower_cpu(self.optimized, kernel_operands(self.kernel.result), self.options.block_sparse,
                         self.options.register_tiles)

    @property
    def loops(self) -> str:
        return self.loop_kernel.text

    @functools.cached_property
    @_stage("llvm", answers=INTERNAL_ONLY)
    def llvm(self) -> str:
        from keir.compiler.codegen import loops_to_llvm_ir

        return loops_to_llvm_ir(self.loops)

    @functools.cached_property
    @_stage("gpu")
    def gpu_kernel(self):
        from keir.compiler.lower_gpu import lower_gpu

        return lower_gpu(self.optimized, kernel_operands(self.kernel.result), self.options.block_sparse,
                         self.options.gpu_math)

    @property
    def gpu(self) -> str:
        return self.gpu_kernel.text

    @functools.cached_property
    @_stage("ptx")
    def ptx(self) -> str:
        from keir.compiler.codegen_gpu import gpu_to_ptx

        return gpu_to_ptx(self.gpu, self.options.target if self.options.target.startswith("sm_") else "sm_80")

    @_stage("object code", answers=INTERNAL_ONLY)
    def object_code(self) -> bytes:
        from keir.compiler.codegen import llvm_ir_to_object

        return llvm_ir_to_object(self.llvm)

    def stage(self, name: str) -> str:
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
        return getattr(self, name)
