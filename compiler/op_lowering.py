"""The emission of one formula node, shared by the CPU and GPU lowerings: dispatched to the lowering in the op's
catalogue record (keir.dialect.catalogue), on a builder of scalars or vectors."""

from __future__ import annotations

from keir.compiler.mlir_text import Builder
from keir.dialect.node import Node
from keir.dialect.ops import OPS


def elementwise_component(b: Builder, node: Node, xs: list[str]) -> str:
    """One component of elementwise `node`, given that component of each operand (a dimension-1 operand's only
    one): the op's lowering in its catalogue record."""
    return OPS[node.op].lower(b, node, *xs)


def compute(b: Builder, node: Node, args: list[list[str]]) -> list[str]:
    """The components of `node` given its operands' components, on builder b (scalars or vectors)."""
    record = OPS[node.op]
    if record.lower is None:
        raise ValueError(f"keir.{node.op} has no per-op lowering: {record.lowered_by}")
    if record.elementwise:  # dimension-1 operands broadcast
        return [elementwise_component(b, node, [a[k if len(a) > 1 else 0] for a in args]) for k in range(node.dim)]
    return record.lower(b, node, args)
