"""The formula DAG: hash-consed nodes of keir ops.

A `Node` is one keir op applied to other nodes. Nodes are interned: building the same formula twice gives
the same object, so structural equality is identity, a node is its own cache key, and common subexpressions
are shared for free. The DAG and the keir dialect in MLIR are two spellings of one IR; `keir.compiler.emit`
and `keir.compiler.importer` convert between them.
"""

from __future__ import annotations

import functools
import struct
import weakref
from typing import Any

from keir.dialect.ops import CATEGORIES, OPS, DimensionError

Attrs = tuple[tuple[str, Any], ...]


class Node:
    __slots__ = ("op", "args", "attrs", "dim", "deps", "_hash", "__weakref__")

    op: str
    args: tuple[Node, ...]
    attrs: Attrs
    dim: int
    deps: frozenset[str]  # categories ("i", "j", "p") of the variables this node depends on

    # key -> weak reference to the node: a plain dict of weakrefs looks up faster than a WeakValueDictionary
    # (building formulas is on the per-call path); a dying node's callback removes its own entry.
    _interned: dict[tuple, weakref.ref] = {}

    def __new__(cls, op: str, args: tuple[Node, ...] = (), attrs: Attrs = ()) -> Node:
        key = _key(op, args, attrs)
        ref = cls._interned.get(key)
        if ref is not None:
            node = ref()
            if node is not None:
                return node
        spec = OPS.get(op)
        if spec is None:
            raise ValueError(f"unknown keir op {op!r}; known ops: {', '.join(sorted(OPS))}")
        if len(args) != spec.arity:
            raise ValueError(f"keir.{op} takes {spec.arity} operand(s), got {len(args)}")
        attr_map = dict(attrs)
        if not set(spec.attrs) <= set(attr_map) <= set(spec.attrs) | set(spec.optional_attrs):
            raise ValueError(
                f"keir.{op} needs attributes {sorted(spec.attrs)} (optional: {sorted(spec.optional_attrs)}), "
                f"got {sorted(attr_map)}"
            )
        dim = spec.result_dim(tuple(a.dim for a in args), attr_map)
        node = object.__new__(cls)
        node.op, node.args, node.attrs, node.dim = op, args, attrs, dim
        if op == "var":
            if attr_map["category"] not in CATEGORIES:
                raise ValueError(f"keir.var: category must be one of {CATEGORIES}, got {attr_map['category']!r}")
            node.deps = frozenset(attr_map["category"])
        else:
            node.deps = frozenset().union(*(a.deps for a in args))
        node._hash = hash(key)
        cls._interned[key] = weakref.ref(node, functools.partial(_forget, cls._interned, key))
        return node

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other

    def __reduce__(self):
        return (Node, (self.op, self.args, self.attrs))

    def attr(self, name: str) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        raise KeyError(name)

    def __repr__(self) -> str:
        inner = ", ".join([repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.attrs])
        return f"{self.op}({inner})"


def _key(op: str, args: tuple[Node, ...], attrs: Attrs) -> tuple:
    """The intern-table key. A constant is keyed by its bits too: 0.0 == -0.0 in Python, and NaN equals no
    NaN, but a formula with -0.0 is not the formula with 0.0, and every NaN constant is one node."""
    if op == "constant":
        return (op, struct.pack("<d", attrs[0][1]))
    return (op, args, attrs)


def _forget(interned: dict, key: tuple, ref: weakref.ref) -> None:
    # The table comes bound, not as Node._interned: nodes held by var()'s cache die at interpreter exit, after
    # this module's globals are cleared.
    if interned.get(key) is ref:
        del interned[key]


def make(op: str, *args: Node, **attrs: Any) -> Node:
    """Build (or find) the node `op(args) {attrs}`; raises DimensionError/ValueError on bad input."""
    return interned(op, args, tuple(sorted(attrs.items())) if attrs else ())


def interned(op: str, args: tuple[Node, ...], attrs: Attrs) -> Node:
    """Node(op, args, attrs), attrs sorted by name. The usual case, a node that exists, is looked up here:
    calling the class costs as much again (formulas are rebuilt on every call)."""
    ref = Node._interned.get((op, args, attrs) if op != "constant" else _key(op, args, attrs))
    node = ref() if ref is not None else None
    return node if node is not None else Node(op, args, attrs)


# Held strongly: merging two formulas renumbers variables through var() nodes that the result may not keep,
# and a node nobody holds is dropped from the intern table, then rebuilt (slowly) on every formula build.
@functools.lru_cache(maxsize=4096)
def var(index: int, category: str, dim: int) -> Node:
    return Node("var", (), (("category", category), ("dim", dim), ("index", index)))  # attrs in sorted order


def constant(value: float) -> Node:
    return interned("constant", (), (("value", float(value)),))


def constant_vector(values: list[float]) -> Node:
    """The constant vector of these numbers (a concat of constants; one number: a constant)."""
    return functools.reduce(lambda a, b: make("concat", a, b), [constant(v) for v in values])


def topological(root: Node) -> list[Node]:
    """Every node reachable from root, operands before users, each once."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(node.args) if id(a) not in seen)
    return order


def variables(root: Node) -> list[Node]:
    """The var nodes under root, sorted by index."""
    return sorted((n for n in topological(root) if n.op == "var"), key=lambda n: n.attr("index"))


def substitute(root: Node, mapping: dict[Node, Node]) -> Node:
    """root with every node in mapping replaced (rebuilding only what changed)."""
    memo: dict[Node, Node] = dict(mapping)
    for node in topological(root):
        if node in memo:
            continue
        new_args = tuple(memo[a] for a in node.args)
        memo[node] = node if new_args == node.args else Node(node.op, new_args, node.attrs)
    return memo[root]


def swap_i_j(root: Node) -> Node:
    """The same formula with its i and j variables exchanged (the transposed kernel matrix)."""
    swap = {"i": "j", "j": "i", "p": "p"}
    mapping = {}
    for v in variables(root):
        attrs = {**dict(v.attrs), "category": swap[v.attr("category")]}
        mapping[v] = Node("var", (), tuple(sorted(attrs.items())))
    return substitute(root, mapping)


__all__ = ["Node", "DimensionError", "make", "interned", "var", "constant", "topological", "variables", "substitute",
           "swap_i_j"]
