"""keir dialect (MLIR text) -> formula DAG, with keir's own verification.

MLIR parses the text and IRDL checks op names, operand counts and attribute kinds; this module then checks
what IRDL cannot say (dimension rules, one float type per kernel, declared result types) and reports each
problem as an `mlir-opt`-style diagnostic `file:line:col: error: message`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keir.compiler.kernel import Kernel
from keir.dialect.node import Node
from keir.dialect.ops import OPS, DimensionError


@dataclass(frozen=True)
class Diagnostic:
    line: int
    column: int
    message: str

    def format(self, filename: str, line_offset: int = 0) -> str:
        return f"{filename}:{self.line + line_offset}:{self.column}: error: {self.message}"


class KeirIRError(ValueError):
    """The input is not valid keir IR; `diagnostics` says where and why."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("; ".join(f"{d.line}:{d.column}: {d.message}" for d in diagnostics))


_LOC = re.compile(r'loc\("[^"]*":(\d+):(\d+)\)')
_VECTOR = re.compile(r"^vector<(\d+)x(f32|f64)>$")


def _where(location: object) -> tuple[int, int]:
    match = _LOC.search(str(location))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _vector_type(text: str) -> tuple[int, str] | None:
    match = _VECTOR.match(text)
    return (int(match.group(1)), match.group(2)) if match else None


def parse_module(text: str, context: object | None = None) -> list[Kernel]:
    """Parse keir IR; raise KeirIRError with diagnostics on any problem. Never aborts the process."""
    from mlir import ir

    from keir.compiler.mlir_context import keir_context

    ctx = context or keir_context()
    with ctx:
        try:
            module = ir.Module.parse(text)
        except ir.MLIRError as err:
            raise KeirIRError(
                [Diagnostic(*_where(d.location), d.message) for d in err.error_diagnostics]
            ) from None
        kernels: list[Kernel] = []
        for func in module.body.operations:
            if func.operation.name != "func.func":
                raise KeirIRError([Diagnostic(*_where(func.location), "expected only func.func ops at top level")])
            kernels.append(_import_func(func))
    return kernels


def _import_func(func) -> Kernel:
    from mlir import ir

    name = ir.StringAttr(func.attributes["sym_name"]).value
    values: dict[object, Node] = {}  # keyed by mlir Value
    dtype: str | None = None
    blocks = list(func.regions[0].blocks)
    if len(blocks) != 1 or list(blocks[0].arguments):
        raise KeirIRError([Diagnostic(*_where(func.location), "a keir kernel is one block with no arguments")])
    result: Node | None = None
    for op in blocks[0].operations:
        where = _where(op.location)
        op_name = op.operation.name
        if op_name == "func.return":
            operands = list(op.operands)
            if len(operands) != 1:
                raise KeirIRError([Diagnostic(*where, "a keir kernel returns exactly one value")])
            result = values[operands[0]]
            continue
        if not op_name.startswith("keir."):
            raise KeirIRError([Diagnostic(*where, f"'{op_name}' is not a keir op")])
        spec = OPS[op_name[5:]]
        (res,) = op.results
        parsed = _vector_type(str(res.type))
        if parsed is None:
            raise KeirIRError([Diagnostic(*where, f"keir values are vector<Dxf32|f64>, got {res.type}")])
        dim, elem = parsed
        if dtype is None:
            dtype = elem
        elif elem != dtype:
            raise KeirIRError([Diagnostic(*where, f"mixed float types in one kernel: {elem} and {dtype}")])
        attrs = {name: _attr_value(op.attributes[name]) for name in op.attributes}
        if spec.name == "var":
            attrs["dim"] = dim
        try:
            args = tuple(values[v] for v in op.operands)
            node = Node(spec.name, args, tuple(sorted(attrs.items())))
        except (DimensionError, ValueError) as err:
            raise KeirIRError([Diagnostic(*where, str(err))]) from None
        if node.dim != dim:
            raise KeirIRError(
                [Diagnostic(*where, f"keir.{spec.name} yields dimension {node.dim}, but its type says {dim}")]
            )
        values[res] = node
    if result is None:
        raise KeirIRError([Diagnostic(*_where(func.location), "a keir kernel must end with func.return")])
    return Kernel(name, result, dtype or "f32")


def _attr_value(attr) -> object:
    """IntegerAttr, FloatAttr and StringAttr (the bindings give them downcast) -> their Python value."""
    return attr.value if hasattr(attr, "value") else str(attr)
