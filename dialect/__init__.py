"""The keir dialect: the op catalogue, the formula DAG, and the IRDL definition generated from the catalogue."""

from __future__ import annotations

from typing import Any

from keir.dialect.catalogue import irdl_text  # importing the catalogue fills OPS
from keir.dialect.node import Node, constant, make, var
from keir.dialect.ops import OPS, DimensionError

IRDL_SOURCE = irdl_text()


def load_dialect(context: Any) -> None:
    """Register the keir dialect with an MLIR context (needs `with context:` around it)."""
    from mlir import ir
    from mlir.dialects import irdl

    # Keep the IRDL module alive as long as the context: the loaded dialect refers to it.
    module = ir.Module.parse(IRDL_SOURCE)
    irdl.load_dialects(module)
    context._keir_irdl_module = module


__all__ = ["Node", "OPS", "DimensionError", "make", "var", "constant", "load_dialect", "IRDL_SOURCE"]
