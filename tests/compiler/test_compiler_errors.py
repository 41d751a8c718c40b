"""A failure inside keir on a formula it accepted reaches the user as keir's CompilerError, naming the stage
and the formula, never as MLIRError/KeyError/AssertionError."""

from __future__ import annotations

import numpy as np
import pytest

from keir.compiler import pipeline
from keir.compiler.errors import CompilerError
from keir.numpy import Vi, Vj


def _fresh_formula():
    x = np.random.default_rng(0).random((5, 2))
    return (Vi(x) * Vj(x) * 1.2345678).sum(axis=1, call=False)


def test_mlir_rejecting_generated_loops_is_a_compiler_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KEIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pipeline.Compilation, "loops", property(lambda self: "func.func @broken( {"))
    with pytest.raises(CompilerError, match=r"stage 'llvm' \(MLIRError.*formula was: reduce\(") as info:
        _fresh_formula().compilation().object_code()
    assert info.value.stage == "llvm"


def test_a_pass_crashing_is_a_compiler_error(monkeypatch):
    def crash(*args, **kwargs):
        raise KeyError("some node")

    monkeypatch.setattr(pipeline, "run_pipeline", crash)
    with pytest.raises(CompilerError, match=r"stage 'opt' \(KeyError"):
        _fresh_formula().ir("opt")


def test_user_errors_pass_through_unchanged(monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("keir.floor is not differentiable: piecewise constant")

    monkeypatch.setattr(pipeline, "run_pipeline", refuse)
    with pytest.raises(ValueError, match="not differentiable"):
        _fresh_formula().ir("opt")

