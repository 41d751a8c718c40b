"""The keir pass registry: one module per pass, its name = its `keir-opt` flag = its lit file.

A pass is a frozen dataclass whose fields are its options and whose instances are called on a Kernel; its
module docstring shows `before => after`. Passes rewrite the formula DAG (the in-memory spelling of the keir
dialect); `keir-opt` parses MLIR into it and prints it back. Options are written as MLIR writes them,
`keir-simplify{assume-finite=true max-rounds=4}`. The registry names each pass's class and imports its
module when the pass is first asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable

from keir.compiler.kernel import Kernel

Pass = Callable[[Kernel], Kernel]

# pass name -> the class in keir.compiler.passes.<module> (module = the name with - as _)
REGISTRY: dict[str, str] = {
    "keir-cse": "KeirCse",
    "keir-differentiate": "KeirDifferentiate",
    "keir-hoist": "KeirHoist",
    "keir-simplify": "KeirSimplify",
    "keir-trace": "KeirTrace",
}
PASSES = tuple(REGISTRY)
# Lowerings leave the keir dialect, so they end a pipeline: name -> the module whose lower_module(kernels) gives
# the lowered MLIR text.
LOWERINGS: dict[str, str] = {"keir-lower-cpu": "keir.compiler.lower_cpu", "keir-lower-gpu": "keir.compiler.lower_gpu"}


def pass_class(name: str) -> type:
    """The class of pass `name` (its module imported on first use)."""
    try:
        class_name = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown pass {name!r}; known passes: {', '.join(sorted(REGISTRY))}") from None
    module = importlib.import_module(f"keir.compiler.passes.{name.replace('-', '_')}")
    return getattr(module, class_name)


def lowering(name: str) -> Callable[[list[Kernel]], str]:
    """The lowering `name` (its module imported on first use)."""
    return importlib.import_module(LOWERINGS[name]).lower_module


_PARSERS: dict[str, Callable[[str], object]] = {
    "bool": lambda text: {"true": True, "1": True, "false": False, "0": False}[text],
    "int": int,
    "str": str,
}
_EXPECTED = {"bool": "true or false", "int": "an integer", "str": "a string"}


def get_pass(spec: str) -> Pass:
    """The pass named by `spec`: a name, or a name with options as MLIR writes them,
    `keir-simplify{assume-finite=true max-rounds=4}` (an option is a field of the pass's dataclass)."""
    name, _, options = spec.partition("{")
    cls = pass_class(name.strip())
    if not options:
        return cls()
    if not options.endswith("}"):
        raise ValueError(f"pass options are written name{{key=value ...}}, got {spec!r}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    values = {}
    for item in options[:-1].split():
        key, equals, text = item.partition("=")
        field = fields.get(key.replace("-", "_"))
        if not equals or field is None:
            known = ", ".join(f.replace("_", "-") for f in fields) or "none"
            raise ValueError(f"unknown option {item!r} of pass {name!r} (options: {known})")
        kind = str(field.type)
        try:
            values[field.name] = _PARSERS[kind](text)
        except (KeyError, ValueError):
            raise ValueError(f"option {key!r} of pass {name!r} takes {_EXPECTED[kind]}, got {text!r}") from None
    return cls(**values)


def run_pipeline(kernel: Kernel, names: Iterable[str]) -> Kernel:
    for name in names:
        kernel = get_pass(name)(kernel)
    return kernel
