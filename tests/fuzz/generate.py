"""Random cases. A case is JSON data: the variables (category, dimension, spelling, how their array is made),
the formula tree, the reduction, and optionally a gradient request. Everything comes from one
random.Random(f"{seed}:{index}"), so a case is reproducible from (seed, index) alone."""

from __future__ import annotations

import copy
import random
from typing import Any

from . import catalog
from .constants import random_number

SIZES = [1, 2, 7, 16, 33, 257, 1000]
# Elements of the largest dense array the reference may build (B*M*N*D), to keep a case in memory and time.
DENSE_BUDGET = 1_500_000
GRAD_DENSE_BUDGET = 120_000

REDUCTIONS = {  # kind -> relative frequency
    "sum": 6, "min": 1, "max": 1, "argmin": 1, "argmax": 1, "min_argmin": 0.6, "max_argmax": 0.6,
    "Kmin": 1, "argKmin": 1, "Kmin_argKmin": 0.6, "logsumexp": 1.5, "logsumexp_weight": 1, "sumsoftmaxweight": 1,
}
# sumsoftmaxweight is left out: pykeops does not document its gradient either
# so is Kmin (KeOps has no derivative for its K-min reductions)
GRAD_REDUCTIONS = {"sum": 6, "logsumexp": 1.5, "logsumexp_weight": 1, "min": 0.5, "max": 0.5}
DISTRIBUTIONS = ["normal", "normal", "uniform", "uniform", "positive", "ints", "wide", "tiny", "large"]
NUMPY_LAYOUTS = ["c", "c", "c", "f", "strided", "reversed", "broadcast"]
TORCH_LAYOUTS = ["c", "c", "c", "t", "strided", "expanded"]


class _Builder:
    """The variables of one case, created on demand while the formula is drawn."""

    def __init__(self, rng: random.Random, case: dict, smooth_only: bool):
        self.rng, self.case, self.smooth_only = rng, case, smooth_only
        self.ops = [op for op in catalog.OPS if op.smooth or not smooth_only]
        self.weights = [op.weight for op in self.ops]

    def variable(self, dim: int, category: str | None = None) -> dict:
        rng = self.rng
        category = category or rng.choices(["i", "j", "p"], [0.4, 0.4, 0.2])[0]
        same = [v for v in self.case["vars"] if v["category"] == category and v["dim"] == dim]
        if same and rng.random() < 0.5:
            return {"op": "var", "name": rng.choice(same)["name"]}
        name = f"{'xyp'['ijp'.index(category)]}{len(self.case['vars'])}"
        self.case["vars"].append(self._new_variable(name, category, dim))
        return {"op": "var", "name": name}

    def _new_variable(self, name: str, category: str, dim: int) -> dict:
        rng, case = self.rng, self.case
        batched = bool(case["batch"])
        if category == "p" and dim == 1 and not batched and not case["grad"] and rng.random() < 0.25:
            return {"name": name, "category": "p", "dim": 1, "spelling": "Pm_number", "number": random_number(rng)}
        if batched:
            spelling = "LazyTensor"
        elif category == "p":
            spelling = rng.choice(["Pm", "LazyTensor1d", "LazyTensor"])
        else:
            spelling = rng.choice(["V", "V", "LazyTensor"])
        layouts = TORCH_LAYOUTS if case["api"] == "torch" else NUMPY_LAYOUTS
        distribution = rng.choice(DISTRIBUTIONS)
        if self.smooth_only:
            distribution = rng.choice(["normal", "uniform", "positive"])
        data = {
            "seed": rng.randrange(2**31),
            "dist": distribution,
            "layout": "c" if case["grad"] else rng.choice(layouts),
            "readonly": case["api"] == "numpy" and rng.random() < 0.15,
            "specials": [] if (case["grad"] or rng.random() > 0.06) else
            [rng.choice(["float('inf')", "-float('inf')", "float('nan')", "0.0", "-0.0"]) for _ in range(2)],
        }
        batch = [b if rng.random() < 0.7 else 1 for b in case["batch"]]
        if batched and all(b == 1 for b in batch):
            batch = list(case["batch"])
        return {"name": name, "category": category, "dim": dim, "spelling": spelling, "batch": batch, "data": data}

    def number(self) -> dict:
        return {"op": "num", "text": random_number(self.rng, allow_non_finite=not self.smooth_only)}

    def formula(self, depth: int, dim: int) -> dict:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.2:
            return self.variable(dim)
        for _ in range(20):
            op = rng.choices(self.ops, self.weights)[0]
            plan = op.plan(rng, dim, self.case["max_dim"])
            if plan is not None:
                break
        else:
            return self.variable(dim)
        slots, attrs = plan
        args = [self.number() if number_ok and rng.random() < 0.35 else self.formula(depth - 1, d)
                for d, number_ok in slots]
        return {"op": op.name, "args": args, "attrs": attrs}


def _sizes(rng: random.Random, budget: int, batch: list[int]) -> tuple[int, int, int]:
    """M, N and the largest dimension, within the dense budget."""
    for _ in range(100):
        m, n = rng.choice(SIZES), rng.choice(SIZES)
        b = 1
        for s in batch:
            b *= s
        room = budget // (b * m * n)
        if room >= 1:
            return m, n, max(1, min(17, room, rng.choice([1, 2, 3, 4, 5, 8, 9, 16, 17])))
    return 1, 1, 1


def _k_choices(n: int) -> list[int]:
    """K <= n and K > n; K near n only for small n (K is unrolled in the kernel, by pykeops too)."""
    return [1, 2, 3, 5] + ([max(1, n), n + 1, n + 3] if n <= 16 else [16])


def _reduction(rng: random.Random, kinds: dict[str, float], n_reduced: int) -> dict:
    kind = rng.choices(list(kinds), list(kinds.values()))[0]
    reduction: dict[str, Any] = {"kind": kind, "axis": rng.choice([0, 1, 1]), "spelling": rng.randrange(3)}
    if kind.startswith("K") or kind.startswith("argK"):
        reduction["k"] = rng.choice(_k_choices(n_reduced))
    options: dict[str, Any] = {}
    if kind in ("sum", "logsumexp", "logsumexp_weight", "sumsoftmaxweight") and rng.random() < 0.25:
        options["sum_scheme"] = rng.choice(["direct_sum", "block_sum", "kahan_scheme"])
    if kind == "sum" and rng.random() < 0.1:
        options["dtype_acc"] = "float64"
    if rng.random() < 0.1:
        options["threads"] = rng.choice([1, 2])
    reduction["options"] = options
    return reduction


def random_case(seed: int, index: int, profile: str = "full") -> dict:
    """profile "ci": shallower formulas and fewer second derivatives, so that a slice compiles in CI time
    (keir's compile time, about 0.2-2 s per kernel, dominates a case)."""
    rng = random.Random(f"{seed}:{index}:{profile}")
    quick = profile == "ci"
    api = rng.choice(["numpy", "torch"])
    grad = None
    if api == "torch" and rng.random() < (0.25 if quick else 0.35):
        grad = {"order": rng.choice([1, 1, 1, 1, 1, 2] if quick else [1, 1, 1, 2])}
    batch = rng.choice([[2], [3], [2, 3]]) if rng.random() < 0.12 else []
    m, n, max_dim = _sizes(rng, GRAD_DENSE_BUDGET if grad else DENSE_BUDGET, batch)
    case: dict[str, Any] = {
        "seed": seed, "index": index, "api": api,
        "dtype": "float64" if grad else rng.choice(["float32", "float64"]),
        "batch": batch, "M": m, "N": n, "max_dim": max_dim, "vars": [], "grad": grad,
    }
    builder = _Builder(rng, case, smooth_only=grad is not None)
    kinds = GRAD_REDUCTIONS if grad else REDUCTIONS
    reduction = _reduction(rng, kinds, n)
    scalar = reduction["kind"] in ("logsumexp", "logsumexp_weight", "sumsoftmaxweight")
    out_dim = 1 if scalar or rng.random() < 0.5 else rng.randint(1, max_dim)
    if grad and (grad["order"] == 2 or quick):
        depth = rng.choice([1, 2])
    else:
        depth = rng.choice([1, 2, 2, 3] if quick else [1, 2, 2, 3, 3, 4])
    for _ in range(10):  # a reduction needs an i and a j variable (a few cases go without, on purpose)
        case["vars"] = []
        case["formula"] = builder.formula(depth, out_dim)
        categories = {v["category"] for v in case["vars"] if _used(case["formula"], v["name"])}
        if {"i", "j"} <= categories or rng.random() < 0.03:
            break
    if (reduction["kind"] == "sum" and reduction["axis"] == 1 and out_dim == 1 and not batch and not grad
            and not reduction["options"] and rng.random() < 0.15):
        reduction["matmul"] = rng.randrange(2**31)  # f @ b, b an array of shape (N,) drawn with this seed
    if reduction["axis"] == 0 and "k" in reduction:
        reduction["k"] = rng.choice(_k_choices(m))
    if reduction["kind"] in ("logsumexp_weight", "sumsoftmaxweight"):
        reduction["weight"] = builder.formula(rng.choice([0, 1]), rng.choice([1, 1, min(3, max_dim)]))
    case["vars"] = [v for v in case["vars"] if _used(case["formula"], v["name"]) or
                    _used(reduction.get("weight"), v["name"])]
    case["reduction"] = reduction
    return case


def _used(tree: dict | None, name: str) -> bool:
    if tree is None:
        return False
    if tree["op"] == "var":
        return tree["name"] == name
    return any(_used(arg, name) for arg in tree.get("args", []))


def case_running(code: str) -> dict:
    """A small case whose array set-up runs `code` (the fuzzer's data lines take literal special values): how the
    fuzzer's own tests make a worker abort or hang."""
    case = copy.deepcopy(random_case(0, 3, "ci"))
    case["vars"][0]["data"]["specials"] = [code]
    return case
