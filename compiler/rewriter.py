"""A bottom-up rewrite driver for formula DAGs: the engine that keir-simplify and keir-hoist run their rules with.

A rule takes a node and gives its rewrite, or None to leave it. A `Rewriter` holds the rules to try per op
(`default` for the ops the table does not name) and rewrites a formula in sweeps. A sweep visits every node,
operands before users, rebuilds it on its rewritten operands and gives it to the first rule that changes it;
the node a rule returns is settled -- its new operands rewritten first, then itself -- before the sweep goes
on. Sweeps repeat until one changes nothing, `max_rounds` at most.

What rules may read of the sweep under way (`on_sweep(rewriter)` is called as each sweep starts, for rules
that remember something per sweep):

    uses         the users of each rewritten node in the DAG the sweep started from
    done         each node visited, before and after rebuilding, -> its rewrite
    current      the node the sweep is at, rebuilt on its rewritten operands (while the nodes a rule
                 built settle too)
    only_user    current's only user in the DAG the sweep started from, None if it has several or none
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

from keir.dialect import algebra as A
from keir.dialect.node import Node, topological

Rule = Callable[[Node], "Node | None"]

MAX_ROUNDS = 8  # full bottom-up sweeps; formulas settle in two or three
MAX_DEPTH = 40  # nested rewrites of new nodes within one sweep (a guard: rules do not cycle)


class Rewriter:
    """Rewrites formulas with `rules` (op -> rules tried in order; `default` for other ops), to a fixed point."""

    def __init__(self, rules: Mapping[str, tuple[Rule, ...]], default: tuple[Rule, ...] = (),
                 max_rounds: int = MAX_ROUNDS, on_sweep: Callable[[Rewriter], None] | None = None):
        self.rules = rules
        self.default = default
        self.max_rounds = max_rounds
        self.on_sweep = on_sweep
        self.uses: Counter[Node] = Counter()
        self.done: dict[Node, Node] = {}
        self.current: Node | None = None
        self.only_user: Node | None = None
        self._depth = 0

    def run(self, root: Node) -> Node:
        """root rewritten: sweeps until one changes nothing, `max_rounds` at most."""
        for _ in range(self.max_rounds):
            new = self.sweep(root)
            if new is root:
                break
            root = new
        return root

    def sweep(self, root: Node) -> Node:
        """One bottom-up pass over root's DAG."""
        order = topological(root)
        old_uses = Counter(a for node in order for a in node.args)
        only_users = {a: node for node in order for a in node.args if old_uses[a] == 1}
        self.uses, self.done = Counter(), {}
        if self.on_sweep is not None:
            self.on_sweep(self)
        for node in order:
            args = tuple(self.done[a] for a in node.args)
            rebuilt = node if args == node.args else Node(node.op, args, node.attrs)
            self.current, self.only_user = rebuilt, only_users.get(node)
            self.done[node] = self.done[rebuilt] = result = self.rewrite(rebuilt)
            self.done.setdefault(result, result)
            self.uses[result] += old_uses[node]
        return self.done[root]

    def settle(self, node: Node) -> Node:
        """A node built by a rule, rewritten (its new operands first)."""
        stack = [(node, False)]
        while stack:
            item, operands_done = stack.pop()
            if item in self.done:
                continue
            if not operands_done:
                stack.append((item, True))
                stack.extend((a, False) for a in item.args if a not in self.done)
                continue
            args = tuple(self.done[a] for a in item.args)
            rebuilt = item if args == item.args else Node(item.op, args, item.attrs)
            result = self.rewrite(rebuilt)
            self.done[item] = self.done[rebuilt] = result
            self.done.setdefault(result, result)
        return self.done[node]

    def rewrite(self, node: Node) -> Node:
        """node after the first of its rules that changes it (settled), or node."""
        if self._depth > MAX_DEPTH:
            return node
        for rule in self.rules.get(node.op, self.default):
            result = rule(node)
            if result is not None and result is not node:
                if result.dim != node.dim:  # a rule may give a scalar standing for a vector (0 for x - x)
                    result = A.fit(result, node.dim)
                self._depth += 1
                try:
                    return self.settle(result)
                finally:
                    self._depth -= 1
        return node
