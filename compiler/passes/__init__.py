"""The keir pass registry: one module per pass, its name = its `keir-opt` flag = its lit file.

A pass is a function Kernel -> Kernel with a docstring that shows `before => after`. Passes rewrite the
formula DAG (the in-memory spelling of the keir dialect); `keir-opt` parses MLIR into it and prints it back.
"""

from __future__ import annotations

import functools
import inspect
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


def get_pass(spec: str) -> Pass:
    """The pass named by `spec`: a name, or a name with options as MLIR writes them,
    `keir-simplify{assume-finite=true}` (an option is a keyword argument of the pass's `run`)."""
    name, _, options = spec.partition("{")
    try:
        run = PASSES[name.strip()]
    except KeyError:
        raise ValueError(f"unknown pass {name!r}; known passes: {', '.join(sorted(PASSES))}") from None
    if not options:
        return run
    if not options.endswith("}"):
        raise ValueError(f"pass options are written name{{key=value ...}}, got {spec!r}")
    values = {}
    accepted = inspect.signature(run).parameters
    for item in options[:-1].split():
        key, equals, value = item.partition("=")
        keyword = key.replace("-", "_")
        if not equals or keyword not in accepted or keyword == "kernel":
            known = ", ".join(k.replace("_", "-") for k in accepted if k != "kernel") or "none"
            raise ValueError(f"unknown option {item!r} of pass {name!r} (options: {known})")
        if value not in ("true", "false", "1", "0"):
            raise ValueError(f"option {key!r} of pass {name!r} takes true or false, got {value!r}")
        values[keyword] = value in ("true", "1")
    return functools.partial(run, **values)


def run_pipeline(kernel: Kernel, names: Iterable[str]) -> Kernel:
    for name in names:
        kernel = get_pass(name)(kernel)
    return kernel
