"""Which loop a formula node is computed in, and a process-independent structural order of nodes: the
analysis that keir-cse (canonical operand order), keir-simplify and keir-hoist (products and sums ordered by
loop level) share."""

from __future__ import annotations

import hashlib
import weakref

from keir.dialect.node import Node, topological

_DIGESTS: weakref.WeakKeyDictionary[Node, bytes] = weakref.WeakKeyDictionary()


def structural_key(node: Node) -> bytes:
    """A digest of node's structure (op, attributes, operands), the same in every process."""
    found = _DIGESTS.get(node)
    if found is not None:
        return found
    for item in topological(node):
        if item in _DIGESTS:
            continue
        text = repr((item.op, item.attrs)).encode() + b"".join(_DIGESTS[a] for a in item.args)
        _DIGESTS[item] = hashlib.blake2b(text, digest_size=12).digest()
    return _DIGESTS[node]


def inner_category(root: Node) -> str:
    """The category the innermost loop runs over: the one a keir.reduce at the root reduces (j by default)."""
    if root.op == "reduce" and root.attr("axis") == 0:
        return "i"
    return "j"


def loop_level(node: Node, inner: str) -> int:
    """0: constants and parameters (computed once per call); 1: no dependence on the inner loop's index
    (once per outer row); 2: computed for every pair."""
    if node.deps <= {"p"}:
        return 0
    return 1 if inner not in node.deps else 2


def order_key(node: Node, inner: str) -> tuple[int, bytes]:
    return loop_level(node, inner), structural_key(node)
