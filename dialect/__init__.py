"""The keir dialect: its IRDL definition (keir.irdl.mlir), the op table and the formula DAG."""

from __future__ import annotations

from importlib import resources
from typing import Any

from keir.dialect.node import Node, constant, make, var
from keir.dialect.ops import OPS, DimensionError

IRDL_SOURCE = resources.files(__name__).joinpath("keir.irdl.mlir").read_text()


def load_dialect(context: Any) -> None:
    """Register the keir dialect with an MLIR context (needs `with context:` around it)."""
    from mlir import ir
    from mlir.dialects import irdl

    # Keep the IRDL module alive as long as the context: the loaded dialect refers to it.
    module = ir.Module.parse(IRDL_SOURCE)
    irdl.load_dialects(module)
    context._keir_irdl_module = module


__all__ = ["Node", "OPS", "DimensionError", "make", "var", "constant", "load_dialect", "IRDL_SOURCE"]
