"""Lowering helpers written against the builder protocol (see `record.py`), shared by the records' lowerings
and by the compiler's component loops: sums over components, integer powers, rounding, arg-extremes."""

from __future__ import annotations

from typing import Any

CHAINS = 4  # independent accumulation chains of a sum of products over components


def one(b: Any) -> str:
    return b.const(1.0)


def zero(b: Any) -> str:
    return b.const(0.0)


def indicator(b: Any, predicate: str, x: str, y: str) -> str:
    """1 where `x predicate y`, else 0."""
    return b.select(b.cmp(predicate, x, y), one(b), zero(b))


def tree_sum(b: Any, terms: list[str]) -> str:
    while len(terms) > 1:
        paired = [b.add(terms[k], terms[k + 1]) for k in range(0, len(terms) - 1, 2)]
        terms = paired + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def sum_of_products(b: Any, xs: list[str], ys: list[str] | None = None, subtract: bool = False) -> str:
    """sum_k xs[k] * ys[k] (ys = xs if None), or sum_k (xs[k] - ys[k])^2 if subtract, as four interleaved
    multiply-add chains, each term formed just before it is added: few live values (a wide formula would
    otherwise hold every term in a register) and enough independent work to fill the pipeline. Up to four
    terms, one chain: the rows of a block and the lanes already give the pipeline independent work."""
    count = 1 if len(xs) <= CHAINS else CHAINS
    chains: list[str] = []
    for k, x in enumerate(xs):
        y = x if ys is None else ys[k]
        if subtract:
            x = y = b.sub(x, y)
        if k < count:
            chains.append(b.mul(x, y))
        else:
            chains[k % count] = b.fma(x, y, chains[k % count])
    return tree_sum(b, chains)


def integer_power(b: Any, x: str, n: int) -> str:
    if n == 0:
        return one(b)
    result, base, m = None, x, abs(n)
    while m:
        if m & 1:
            result = base if result is None else b.mul(result, base)
        m >>= 1
        if m:
            base = b.mul(base, base)
    return b.div(one(b), result) if n < 0 else result


def round_to(b: Any, x: str, digits: int) -> str:
    """x rounded to `digits` decimals, halves away from zero."""
    if digits == 0:
        return b.math("round", x)
    scale = b.const(10.0**digits)
    return b.div(b.math("round", b.mul(x, scale)), scale)


def arg_extreme(b: Any, x: list[str], predicate: str) -> str:
    """The index (as a float) of the first component that wins `predicate` against all before it."""
    best, index = x[0], zero(b)
    for k, c in enumerate(x[1:], start=1):
        better = b.cmp(predicate, c, best)
        best = b.select(better, c, best)
        index = b.select(better, b.const(float(k)), index)
    return index


def extreme(b: Any, x: list[str], take: str) -> str:
    """min or max (take) of the components."""
    result = x[0]
    for c in x[1:]:
        result = getattr(b, take)(result, c)
    return result
