"""The op table: for each op, the operand dimensions it takes and how it is spelled through the public API.

A formula is a tree of plain dicts (JSON data, so that cases cross process boundaries):
  {"op": "var", "name": "x0"}                       a variable (its category and array are in the case)
  {"op": "num", "text": "1e-05"}                    a Python number, as source text
  {"op": name, "args": [...], "attrs": {...}}       an op of this table
The meaning of each op (the reference) is in semantics.py; this module only knows about shapes and spelling.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# A plan is the list of operand slots (dimension, whether a Python number may fill it) and the op's attributes.
Slot = tuple[int, bool]
Plan = tuple[list[Slot], dict]
Planner = Callable[[random.Random, int, int], "Plan | None"]


@dataclass(frozen=True)
class Op:
    name: str
    plan: Planner  # (rng, output dimension, largest dimension allowed) -> plan, None if impossible
    spell: Callable[[list[str], dict], str]  # operand sources and attributes -> source of the op
    smooth: bool = False  # differentiable where the fuzzer draws its data (used for gradient cases)
    weight: float = 1.0  # how often the generator picks it


def _unary(rng: random.Random, dim: int, max_dim: int) -> Plan:
    return [(dim, False)], {}


def _pick_spelling(rng: random.Random, count: int) -> dict:
    return {"spelling": rng.randrange(count)}


def _method(name: str, *spellings: str) -> Callable[[list[str], dict], str]:
    """`a.name()` or one of the alternative spellings (format strings over a)."""
    forms = (f"{{0}}.{name}()",) + spellings
    return lambda args, attrs: forms[attrs.get("spelling", 0) % len(forms)].format(*args)


def _unary_with_spellings(count: int) -> Planner:
    return lambda rng, dim, max_dim: ([(dim, False)], _pick_spelling(rng, count))


def _broadcast_pair(rng: random.Random, dim: int, lazy_first: bool) -> list[Slot]:
    """Operand dimensions of an elementwise binary op with dimension-1 broadcasting; at most one number."""
    dims = [(dim, dim), (dim, 1), (1, dim)][rng.randrange(3)] if dim > 1 else (1, 1)
    number_first = not lazy_first and dims[0] == 1 and rng.random() < 0.15
    return [(dims[0], number_first), (dims[1], dims[1] == 1 and not number_first)]


def _binary(lazy_first: bool = False) -> Planner:
    return lambda rng, dim, max_dim: (_broadcast_pair(rng, dim, lazy_first), {})


def _infix(symbol: str) -> Callable[[list[str], dict], str]:
    return lambda args, attrs: f"({args[0]} {symbol} {args[1]})"


def _exponent(rng: random.Random, dim: int, max_dim: int) -> Plan:
    """pykeops' Powf(x, y): y of x's dimension or of dimension 1 (not the other way round)."""
    exponent = dim if rng.random() < 0.5 else 1
    return [(dim, False), (exponent, exponent == 1)], {}


def _ternary(rng: random.Random, dim: int, max_dim: int) -> Plan:
    slots = [(dim, False)] + [((dim if rng.random() < 0.5 else 1), True) for _ in range(2)]
    return [(d, d == 1 and ok) for d, ok in slots], {}


def _pow_int(rng: random.Random, dim: int, max_dim: int) -> Plan:
    exponent = rng.choice(["0", "1", "2", "3", "4", "-1", "-2", "-3", "2.0", "3.0", "5"])
    return [(dim, False)], {"exponent": exponent, "spelling": rng.randrange(3)}


def _spell_pow(args: list[str], attrs: dict) -> str:
    n = attrs["exponent"]
    return [f"({args[0]} ** {n})", f"{args[0]}.power({n})", f"{args[0]}.pow({n})"][attrs.get("spelling", 0)]


def _pow_float(rng: random.Random, dim: int, max_dim: int) -> Plan:
    # pykeops: ** 0.5 is Sqrt, ** -0.5 is Rsqrt, any other float is Powf
    return [(dim, False)], {"exponent": rng.choice(["0.5", "-0.5", "1.5", "-1.5", "0.25", "2.5", "1e-05"])}


def _round(rng: random.Random, dim: int, max_dim: int) -> Plan:
    return [(dim, False)], {"decimals": rng.choice([0, 0, 1, 2, 3])}


def _clampint(rng: random.Random, dim: int, max_dim: int) -> Plan:
    low = rng.randint(-3, 2)
    return [(dim, False)], {"low": low, "high": low + rng.randint(-1, 4)}


def _mod(rng: random.Random, dim: int, max_dim: int) -> Plan:
    with_offset = rng.random() < 0.5
    slots = [(dim, False), (1, True)] + ([(1, True)] if with_offset else [])
    return slots, {}


def _spell_mod(args: list[str], attrs: dict) -> str:
    return f"{args[0]}.mod({', '.join(args[1:])})"


def _to_scalar(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    if dim != 1:
        return None
    return [(rng.randint(1, max_dim), False)], _pick_spelling(rng, 2)


def _pair_to_scalar(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    if dim != 1:
        return None
    d = rng.randint(1, max_dim)
    return [(d, False), (d, False)], _pick_spelling(rng, 2)


def _weighted(operands: int) -> Planner:
    def plan(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
        if dim != 1:
            return None
        d = rng.randint(1, min(max_dim, 4))
        weight = rng.choice([w for w in (1, d, d * d) if w <= max_dim])
        return [(d, False)] * operands + [(weight, False)], {}

    return plan


def _elem(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    if dim != 1:
        return None
    d = rng.randint(1, max_dim)
    return [(d, False)], {"index": rng.randrange(d), "operand_dim": d, "spelling": rng.randrange(3)}


def _spell_elem(args: list[str], attrs: dict) -> str:
    k, form = attrs["index"], attrs.get("spelling", 0)
    if form == 0:
        return f"{args[0]}.elem({k})"
    return f"{args[0]}[{k}]" if form == 1 else f"{args[0]}[{k - attrs['operand_dim']}]"


def _extract(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    if dim >= max_dim:
        return None
    d = rng.randint(dim + 1, max_dim)
    return [(d, False)], {"start": rng.randint(0, d - dim), "length": dim, "spelling": rng.randrange(2)}


def _spell_extract(args: list[str], attrs: dict) -> str:
    start, length = attrs["start"], attrs["length"]
    if attrs.get("spelling", 0) == 0:
        return f"{args[0]}.extract({start}, {length})"
    return f"{args[0]}[{start}:{start + length}]"


def _concat(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    if dim < 2:
        return None
    first = rng.randint(1, dim - 1)
    return [(first, False), (dim - first, False)], {}


def _divisor_pairs(dim: int) -> list[tuple[int, int]]:
    return [(a, dim // a) for a in range(1, dim + 1) if dim % a == 0]


def _matvecmult(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    m = rng.randint(1, 4)
    if dim * m > max_dim:
        return None
    return [(dim * m, False), (m, False)], {}


def _vecmatmult(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    n = rng.randint(1, 4)
    if dim * n > max_dim:
        return None
    return [(n, False), (n * dim, False)], {}


def _tensorprod(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    n, m = rng.choice(_divisor_pairs(dim))
    return [(n, False), (m, False)], {}


def _one_hot(rng: random.Random, dim: int, max_dim: int) -> Plan | None:
    return [(1, False)], {"size": dim}


def _fn(name: str) -> Callable[[list[str], dict], str]:
    return lambda args, attrs: f"{args[0]}.{name}({', '.join(args[1:])})"


OPS: list[Op] = [
    Op("add", _binary(), _infix("+"), smooth=True, weight=3),
    Op("sub", _binary(), _infix("-"), smooth=True, weight=3),
    Op("mul", _binary(), _infix("*"), smooth=True, weight=3),
    Op("div", _binary(), _infix("/"), smooth=True, weight=2),
    Op("neg", _unary, lambda a, t: f"(-{a[0]})", smooth=True),
    Op("abs", _unary_with_spellings(2), lambda a, t: [f"abs({a[0]})", f"{a[0]}.abs()"][t["spelling"]]),
    Op("exp", _unary, _method("exp"), smooth=True, weight=2),
    Op("log", _unary, _method("log"), smooth=True),
    Op("sin", _unary, _method("sin"), smooth=True),
    Op("cos", _unary, _method("cos"), smooth=True),
    Op("sqrt", _unary, _method("sqrt"), smooth=True),
    Op("rsqrt", _unary, _method("rsqrt"), smooth=True),
    Op("square", _unary, _method("square"), smooth=True),
    Op("inv", _unary, _method("inv"), smooth=True),
    Op("sign", _unary, _method("sign")),
    Op("step", _unary, _method("step")),
    Op("relu", _unary, _method("relu")),
    Op("atan", _unary, _method("atan"), smooth=True),
    Op("asin", _unary, _method("asin")),
    Op("acos", _unary, _method("acos")),
    Op("floor", _unary, _method("floor")),
    Op("round", _round, lambda a, t: f"{a[0]}.round({t['decimals']})" if t["decimals"] else f"{a[0]}.round()"),
    Op("xlogx", _unary, _method("xlogx"), smooth=True),
    Op("sinxdivx", _unary, _method("sinxdivx"), smooth=True),
    Op("sinc", _unary, _method("sinc"), smooth=True),
    Op("atan2", _binary(lazy_first=True), _fn("atan2"), smooth=True),
    Op("pow_int", _pow_int, _spell_pow, smooth=True, weight=2),
    Op("pow_float", _pow_float, lambda a, t: f"({a[0]} ** {t['exponent']})", smooth=True),
    Op("pow_lazy", _exponent, lambda a, t: f"({a[0]} ** {a[1]})", smooth=True),
    Op("powf", _exponent, _fn("powf"), smooth=True),
    Op("clamp", _ternary, _fn("clamp")),
    Op("clampint", _clampint, lambda a, t: f"{a[0]}.clampint({t['low']}, {t['high']})"),
    Op("ifelse", _ternary, _fn("ifelse")),
    Op("mod", _mod, _spell_mod),
    Op("lt", _binary(), _infix("<"), weight=0.4),
    Op("le", _binary(), _infix("<="), weight=0.4),
    Op("gt", _binary(), _infix(">"), weight=0.4),
    Op("ge", _binary(), _infix(">="), weight=0.4),
    Op("eq", _binary(), _infix("=="), weight=0.3),
    Op("ne", _binary(), _infix("!="), weight=0.3),
    Op("vsum", _to_scalar, lambda a, t: f"{a[0]}.sum()", smooth=True),
    Op("sqnorm2", _to_scalar, _method("sqnorm2"), smooth=True),
    Op("norm2", _to_scalar, _method("norm2", "{0}.norm(-1)"), smooth=True),
    Op("vmin", _to_scalar, _method("min")),
    Op("vmax", _to_scalar, _method("max")),
    Op("vargmin", _to_scalar, _method("argmin")),
    Op("vargmax", _to_scalar, _method("argmax")),
    Op("dot", _pair_to_scalar, lambda a, t: [f"({a[0]} | {a[1]})", f"{a[0]}.dot({a[1]})"][t["spelling"]],
       smooth=True, weight=2),
    Op("sqdist", _pair_to_scalar, _fn("sqdist"), smooth=True, weight=3),
    Op("weightedsqnorm", _weighted(1), _fn("weightedsqnorm"), smooth=True),
    Op("weightedsqdist", _weighted(2), _fn("weightedsqdist"), smooth=True),
    Op("normalize", _unary, _method("normalize"), smooth=True),
    Op("elem", _elem, _spell_elem, smooth=True),
    Op("extract", _extract, _spell_extract, smooth=True),
    Op("concat", _concat, _fn("concat"), smooth=True),
    Op("matvecmult", _matvecmult, _fn("matvecmult"), smooth=True),
    Op("vecmatmult", _vecmatmult, _fn("vecmatmult"), smooth=True),
    Op("tensorprod", _tensorprod, _fn("tensorprod"), smooth=True),
    Op("one_hot", _one_hot, lambda a, t: f"{a[0]}.one_hot({t['size']})", weight=0.3),
]

BY_NAME = {op.name: op for op in OPS}


def spell(name: str, args: list[str], attrs: dict) -> str:
    return BY_NAME[name].spell(args, attrs)
