"""One MLIR context per process with the keir dialect loaded (MLIR is imported only when compiling)."""

from __future__ import annotations

import functools


@functools.cache
def keir_context():
    from mlir import ir

    from keir.dialect import load_dialect

    context = ir.Context()
    with context:
        load_dialect(context)
    return context
