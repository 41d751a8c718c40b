"""A NumPy interpreter of the formula DAG from the ops' NumPy references in the catalogue (written
independently of keir's lowering): the reference that tests of the rewrite passes (differentiate, simplify,
trace) compare against."""

import numpy as np

from keir.dialect.node import Node, topological
from keir.dialect.ops import OPS


def evaluate(root: Node, env: dict[Node, np.ndarray]) -> np.ndarray:
    """root's value (a vector of root.dim float64s) for the variable values in env (a reduce node is
    evaluated as its operand)."""
    values: dict[Node, np.ndarray] = {}
    for node in topological(root):
        if node.op == "var":
            value = np.asarray(env[node], dtype=np.float64)
        elif node.op == "constant":
            value = np.array([node.attr("value")], dtype=np.float64)
        elif node.op == "reduce":
            value = values[node.args[0]]
        else:
            with np.errstate(all="ignore"):
                value = OPS[node.op].reference(*(values[a] for a in node.args), **dict(node.attrs))
            value = np.asarray(value, dtype=np.float64)
        if value.shape == (1,) and node.dim > 1:  # only dimension-1 operands of a vector op broadcast
            value = np.broadcast_to(value, (node.dim,)).copy()
        assert value.shape == (node.dim,), f"{node.op}: shape {value.shape}, dim {node.dim}"
        values[node] = value
    return values[root]
