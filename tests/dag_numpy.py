"""A NumPy interpreter of the formula DAG, written independently of keir's lowering: the reference that
tests of the rewrite passes (differentiate, simplify, trace) compare against."""

import numpy as np

from keir.dialect.node import Node, topological

_EVAL = {
    "constant": lambda n: np.array([n.attr("value")]),
    "add": lambda n, a, b: a + b,
    "sub": lambda n, a, b: a - b,
    "mul": lambda n, a, b: a * b,
    "div": lambda n, a, b: a / b,
    "neg": lambda n, a: -a,
    "exp": lambda n, a: np.exp(a),
    "log": lambda n, a: np.log(a),
    "sqrt": lambda n, a: np.sqrt(a),
    "rsqrt": lambda n, a: np.where(a == 0, 0.0, 1.0 / np.sqrt(np.where(a == 0, 1.0, a))),  # KeOps: rsqrt(0) = 0
    "square": lambda n, a: a * a,
    "pow": lambda n, a: a ** float(n.attr("exponent")),
    "abs": lambda n, a: np.abs(a),
    "sum": lambda n, a: np.array([a.sum()]),
    "dot": lambda n, a, b: np.array([a @ b]),
    "sqdist": lambda n, a, b: np.array([((a - b) ** 2).sum()]),
    "sqnorm2": lambda n, a: np.array([(a * a).sum()]),
    "elem": lambda n, a: a[n.attr("index") : n.attr("index") + 1],
    "extract": lambda n, a: a[n.attr("start") : n.attr("start") + n.attr("length")],
    "concat": lambda n, a, b: np.concatenate([a, b]),
    "sin": lambda n, a: np.sin(a),
    "cos": lambda n, a: np.cos(a),
    "asin": lambda n, a: np.arcsin(a),
    "acos": lambda n, a: np.arccos(a),
    "atan": lambda n, a: np.arctan(a),
    "atan2": lambda n, a, b: np.arctan2(a, b),
    "sign": lambda n, a: np.sign(a),
    "step": lambda n, a: np.where(a < 0, 0.0, 1.0),  # KeOps: x < 0 ? 0 : 1
    "relu": lambda n, a: np.where(a < 0, 0.0, a),
    "floor": lambda n, a: np.floor(a),
    "round": lambda n, a: np.round(a, n.attr("digits")),
    "xlogx": lambda n, a: a * np.log(a),
    "sinxdivx": lambda n, a: np.sin(a) / a,
    "lt": lambda n, a, b: (a < b).astype(float),
    "le": lambda n, a, b: (a <= b).astype(float),
    "gt": lambda n, a, b: (a > b).astype(float),
    "ge": lambda n, a, b: (a >= b).astype(float),
    "eq": lambda n, a, b: (a == b).astype(float),
    "ne": lambda n, a, b: (a != b).astype(float),
    "clamp": lambda n, a, b, c: np.where(a < b, b, np.where(a > c, c, a)),  # KeOps' order: lo wins if lo > hi
    "ifelse": lambda n, a, b, c: np.where(a >= 0, b, c),
    "min": lambda n, a: np.array([a.min()]),
    "max": lambda n, a: np.array([a.max()]),
    "argmin": lambda n, a: np.array([float(a.argmin())]),
    "argmax": lambda n, a: np.array([float(a.argmax())]),
    "one_hot": lambda n, a: np.eye(n.attr("dim"))[int(round(a[0]))],
}


def evaluate(root: Node, env: dict[Node, np.ndarray]) -> np.ndarray:
    """root's value (a vector of root.dim float64s) for the variable values in env (a reduce node is
    evaluated as its operand)."""
    values: dict[Node, np.ndarray] = {}
    for node in topological(root):
        if node.op == "var":
            value = np.asarray(env[node], dtype=np.float64)
        elif node.op == "reduce":
            value = values[node.args[0]]
        else:
            value = np.asarray(_EVAL[node.op](node, *(values[a] for a in node.args)), dtype=np.float64)
        if value.shape == (1,) and node.dim > 1:  # only dimension-1 operands of a vector op broadcast
            value = np.broadcast_to(value, (node.dim,)).copy()
        assert value.shape == (node.dim,), f"{node.op}: shape {value.shape}, dim {node.dim}"
        values[node] = value
    return values[root]
