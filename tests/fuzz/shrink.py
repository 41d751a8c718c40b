"""Smaller cases with the same failure signature, for readable reproducers.

Greedy: from the current case, try smaller sizes, no batch, plain layouts, no options, and formulas with a
subtree replaced by one of its operands or by a variable of the same dimension; keep the first candidate (in
that order) that still fails with the same signature; stop when nothing smaller fails or the budget is spent.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator

from .signatures import signature

Runner = Callable[[list[dict]], list[dict]]  # cases -> outcomes, in order


def tree_dim(tree: dict, dims: dict[str, int]) -> int:
    op, args = tree["op"], tree.get("args", [])
    if op == "var":
        return dims[tree["name"]]
    if op == "num":
        return 1
    sub = [tree_dim(arg, dims) for arg in args]
    attrs = tree["attrs"]
    if op in ("vsum", "sqnorm2", "norm2", "vmin", "vmax", "vargmin", "vargmax", "dot", "sqdist", "elem",
              "weightedsqnorm", "weightedsqdist"):
        return 1
    if op == "extract":
        return attrs["length"]
    if op == "concat":
        return sub[0] + sub[1]
    if op == "matvecmult":
        return sub[0] // sub[1]
    if op == "vecmatmult":
        return sub[1] // sub[0]
    if op == "tensorprod":
        return sub[0] * sub[1]
    if op == "one_hot":
        return attrs["size"]
    return max(sub)


def _nodes(tree: dict, path: tuple = ()) -> Iterator[tuple[tuple, dict]]:
    yield path, tree
    for k, arg in enumerate(tree.get("args", [])):
        yield from _nodes(arg, path + (k,))


def _replaced(tree: dict, path: tuple, new: dict) -> dict:
    if not path:
        return new
    copy_ = dict(tree, args=list(tree["args"]))
    copy_["args"][path[0]] = _replaced(tree["args"][path[0]], path[1:], new)
    return copy_


def _used_names(tree: dict | None) -> set[str]:
    if tree is None:
        return set()
    return {node["name"] for _, node in _nodes(tree) if node["op"] == "var"}


def _tidy(case: dict) -> dict:
    used = _used_names(case["formula"]) | _used_names(case["reduction"].get("weight"))
    case["vars"] = [v for v in case["vars"] if v["name"] in used]
    return case


def _size(case: dict) -> tuple:
    nodes = sum(1 for _ in _nodes(case["formula"]))
    return (nodes, len(case["vars"]), case["M"] * case["N"], len(case["batch"]))


def candidates(case: dict) -> Iterator[dict]:
    dims = {v["name"]: v["dim"] for v in case["vars"]}
    for path, node in sorted(_nodes(case["formula"]), key=lambda pn: len(pn[0])):
        if node["op"] in ("var", "num"):
            continue
        want = tree_dim(node, dims)
        for arg in node["args"]:
            if arg["op"] != "num" and tree_dim(arg, dims) == want:
                yield _tidy({**copy.deepcopy(case), "formula": _replaced(case["formula"], path, arg)})
        for name, dim in dims.items():
            if dim == want and path:
                yield _tidy({**copy.deepcopy(case), "formula": _replaced(case["formula"], path,
                                                                         {"op": "var", "name": name})})
    for m in (1, 2, 7):
        if m < case["M"]:
            yield {**copy.deepcopy(case), "M": m}
    for n in (1, 2, 7):
        if n < case["N"]:
            yield {**copy.deepcopy(case), "N": n}
    if case["batch"]:
        smaller = copy.deepcopy(case)
        smaller["batch"] = []
        for v in smaller["vars"]:
            v["batch"] = []
        yield smaller
    if case["reduction"]["options"]:
        smaller = copy.deepcopy(case)
        smaller["reduction"]["options"] = {}
        yield smaller
    if case["grad"] and case["grad"]["order"] == 2:
        yield {**copy.deepcopy(case), "grad": {"order": 1}}
    for k, v in enumerate(case["vars"]):
        data = v.get("data")
        if data and (data["layout"] != "c" or data["readonly"] or data["specials"]):
            for change in ({"layout": "c"}, {"readonly": False}, {"specials": []}):
                if any(data[key] != value for key, value in change.items()):
                    smaller = copy.deepcopy(case)
                    smaller["vars"][k]["data"].update(change)
                    yield smaller
        if v["spelling"] not in ("V", "Pm", "Pm_number") and not case["batch"]:
            smaller = copy.deepcopy(case)
            smaller["vars"][k]["spelling"] = "Pm" if v["category"] == "p" else "V"
            yield smaller


def shrink(case: dict, wanted: str, run: Runner, budget: int, batch: int = 2, deadline: float = float("inf")) -> dict:
    """The smallest case found (within `budget` runs, and before time.monotonic() passes `deadline`) that still
    fails with signature `wanted`."""
    best = case
    spent = 0
    while spent < budget and time.monotonic() < deadline:
        progress = False
        pool = list(candidates(best))
        for start in range(0, len(pool), batch):
            chunk = pool[start:start + batch][: budget - spent]
            if not chunk:
                break
            spent += len(chunk)
            for candidate, outcome in zip(chunk, run(chunk)):
                if signature(candidate, outcome) == wanted and _size(candidate) <= _size(best):
                    best, progress = candidate, True
                    break
            if progress or spent >= budget or time.monotonic() >= deadline:
                break
        if not progress:
            break
    return best
