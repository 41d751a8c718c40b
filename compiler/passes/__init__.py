"""The keir pass registry: one module per pass, its name = its `keir-opt` flag = its lit file.

A pass is a function Kernel -> Kernel with a docstring that shows `before => after`. Passes rewrite the
formula DAG (the in-memory spelling of the keir dialect); `keir-opt` parses MLIR into it and prints it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from keir.compiler.kernel import Kernel
from keir.compiler.passes import keir_cse, keir_differentiate, keir_hoist, keir_simplify, keir_trace

Pass = Callable[[Kernel], Kernel]

PASSES: dict[str, Pass] = {
    "keir-cse": keir_cse.run,
    "keir-differentiate": keir_differentiate.run,
    "keir-hoist": keir_hoist.run,
    "keir-simplify": keir_simplify.run,
    "keir-trace": keir_trace.run,
}


def get_pass(name: str) -> Pass:
    try:
        return PASSES[name]
    except KeyError:
        raise ValueError(f"unknown pass {name!r}; known passes: {', '.join(sorted(PASSES))}") from None


def run_pipeline(kernel: Kernel, names: Iterable[str]) -> Kernel:
    for name in names:
        kernel = get_pass(name)(kernel)
    return kernel
