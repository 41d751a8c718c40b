"""What the CPU and GPU lowerings write the same way around the formula: a function's index constants and the
memref arguments through which the runtime passes its inputs and outputs, the stores of an output row, and the
loads of the block-sparse schedule (their layouts: keir.compiler.operands and each lowering's docstring)."""

from __future__ import annotations

from keir.compiler import literals
from keir.compiler.mlir_text import Builder
from keir.compiler.operands import Operand


class IndexConstants:
    """The function's `index` constants, each emitted once into `builder`, a block that runs before every use."""

    def __init__(self, builder: Builder):
        self.builder = builder
        self.names: dict[int, str] = {}

    def __call__(self, value: int) -> str:
        if value not in self.names:
            self.names[value] = self.builder.emit(literals.constant(value, "index"), "k")
        return self.names[value]


def memref_arguments(operands: tuple[Operand, ...], elem: str, float_width: int, index_width: int) -> list[str]:
    """One flat memref per operand (%a<its index>), then the outputs the kernel writes: %out (floats), %out_idx
    (int64 indices)."""
    args = [f"%a{op.index}: memref<?x{elem}>" for op in operands]
    if float_width:
        args.append(f"%out: memref<?x{elem}>")
    if index_width:
        args.append("%out_idx: memref<?xi64>")
    return args


def store_row(b: Builder, index: IndexConstants, row: str, values: list[str], memref: str, elem: str) -> None:
    """values[k] into memref[row * len(values) + k]: one row of an output, row-major as the runtime reads it."""
    if not values:
        return
    start = b.emit(f"arith.muli {row}, {index(len(values))} : index", "o")
    for k, value in enumerate(values):
        offset = b.emit(f"arith.addi {start}, {index(k)} : index", "o")
        b.lines.append(f"{b.indent}memref.store {value}, {memref}[{offset}] : memref<?x{elem}>")


def load_pair(b: Builder, memref: str, k: str, index: IndexConstants) -> tuple[str, str]:
    """(start, end), as indices, of the k-th [start, end) pair of a flat (K, 2) int64 memref (the block-sparse
    schedule's arrays, keir.compiler.operands.BLOCK_SPARSE)."""
    at = b.emit(f"arith.muli {k}, {index(2)} : index", "o")
    pair = []
    for offset in (at, b.emit(f"arith.addi {at}, {index(1)} : index", "o")):
        value = b.emit(f"memref.load {memref}[{offset}] : memref<?xi64>", "q")
        pair.append(b.emit(f"arith.index_cast {value} : i64 to index", "o"))
    return pair[0], pair[1]
