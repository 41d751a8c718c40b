"""Formula DAG -> keir dialect, as MLIR text in the generic form (the only form IRDL ops print in).

    reduce(exp(neg(sqdist(var i, var j)))) =>
    func.func @k() -> vector<1xf32> {
      %0 = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
      ...
      %5 = "keir.reduce"(%4) {kind = "sum", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
      return %5 : vector<1xf32>
    }
The text is canonical (operands before users, in a fixed order), so it is also the artifact cache's key.
"""

from __future__ import annotations

from collections.abc import Iterable

from keir.compiler.kernel import Kernel
from keir.compiler.literals import float_literal
from keir.dialect.catalogue import INTEGER_ATTRIBUTES
from keir.dialect.node import Node, topological


def _attr_text(name: str, value: object) -> str:
    if name in INTEGER_ATTRIBUTES:
        return f"{name} = {int(value)} : i64"
    if name == "value":
        return f"value = {float_literal(value, 'f64')} : f64"
    return f'{name} = "{value}"'


def emit_func(kernel: Kernel) -> str:
    names: dict[Node, str] = {}
    lines = []
    rtype = f"vector<{kernel.result.dim}x{kernel.dtype}>"
    order = topological(kernel.result)
    # Canonical order: variables by index, then constants, then the ops in operands-first order.
    leaves = sorted((n for n in order if n.op == "var"), key=lambda n: n.attr("index"))
    leaves += [n for n in order if n.op == "constant"]
    order = leaves + [n for n in order if n.args]
    for number, node in enumerate(order):
        names[node] = f"%{number}"
        attrs = [(k, v) for k, v in node.attrs if not (node.op == "var" and k == "dim")]
        attr_text = ""
        if attrs:
            attr_text = " {" + ", ".join(_attr_text(k, v) for k, v in attrs) + "}"
        operands = ", ".join(names[a] for a in node.args)
        in_types = ", ".join(f"vector<{a.dim}x{kernel.dtype}>" for a in node.args)
        out_type = f"vector<{node.dim}x{kernel.dtype}>"
        lines.append(f'    {names[node]} = "keir.{node.op}"({operands}){attr_text} : ({in_types}) -> {out_type}')
    body = "\n".join(lines)
    return (
        f"  func.func @{kernel.name}() -> {rtype} {{\n{body}\n"
        f"    return {names[kernel.result]} : {rtype}\n  }}"
    )


def emit_module(kernels: Iterable[Kernel]) -> str:
    return "module {\n" + "\n".join(emit_func(k) for k in kernels) + "\n}\n"
