"""The error keir raises when it fails on a formula it accepted: a bug in keir, never the user's fault.

Validation of the user's formula raises ValueError/TypeError (with subclasses that name the problem) before
anything is compiled. Whatever else goes wrong later — MLIR refusing keir's own generated IR, a KeyError in a
pass — is caught at the stage where it happened and re-raised as a CompilerError that names the stage and the
formula, so that no foreign exception (MLIRError, KeyError, AssertionError) reaches the user.
"""

from __future__ import annotations

from keir.compiler.kernel import Kernel


class CompilerError(RuntimeError):
    """keir could not compile a formula it had accepted (a bug in keir: please report it with the formula)."""

    def __init__(self, stage: str, kernel: Kernel, cause: BaseException):
        self.stage = stage
        self.kernel = kernel
        self.cause = cause
        detail = "; ".join(line.strip() for line in str(cause).strip().splitlines()[:3]) or "no message"
        super().__init__(
            f"keir failed to compile a formula at stage {stage!r} ({type(cause).__name__}: {detail}). "
            f"This is a bug in keir; the formula was: {kernel.result!r}"
        )


# Exceptions that are answers to the user, not failures of keir: they pass every stage unchanged.
USER_ERRORS = (ValueError, TypeError, MemoryError, CompilerError)
# Past the lowering only running out of memory is not keir's fault.
INTERNAL_ONLY = (MemoryError, CompilerError)
