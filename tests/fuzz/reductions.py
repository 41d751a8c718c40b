"""The dense meaning of each reduction and the check of keir's answer against it.

The terms arrive as a Bound of shape (*batch, rows, n, D): the reduced index is the second last axis. Every check
is designed so that a correct implementation passes: values are compared within the propagated error bound plus
the reduction's own rounding (a direct sum in the dtype may lose (n + 2) u sum|terms|); an arg reduction is checked
through the value at the index it returned; a K-min through order statistics of the term intervals.
"""

from __future__ import annotations

import numpy as np
import torch

from .semantics import INF, Bound, Precision

Tensor = torch.Tensor
SAFETY = 2.0  # the error bounds are estimates (corner evaluation): allow twice them


class Mismatch(Exception):
    """keir's answer differs from the reference: the message says where and by how much. `relative` is the
    largest relative difference (inf for NaN or a wrong index): small ones are accuracy findings, not wrong maths."""

    def __init__(self, message: str, relative: float = float("inf")):
        super().__init__(message)
        self.relative = relative


def as_numpy(x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _where_first(mask: np.ndarray) -> tuple:
    return tuple(int(k) for k in np.argwhere(mask)[0])


def compare_values(got: np.ndarray, value: Tensor, error: Tensor, p: Precision, what: str) -> int:
    """Raises Mismatch unless got is within the bound; returns how many entries were actually checked."""
    value_np, error_np = value.numpy(), error.numpy()
    if tuple(got.shape) != tuple(value_np.shape):
        raise Mismatch(f"{what}: shape {tuple(got.shape)}, expected {tuple(value_np.shape)}")
    got = got.astype(np.float64)
    known = np.isfinite(error_np)
    with np.errstate(invalid="ignore", over="ignore"):
        tolerance = SAFETY * error_np + 4 * p.unit * np.abs(np.nan_to_num(value_np, posinf=0, neginf=0)) + 4 * p.tiny
        close = np.abs(got - value_np) <= tolerance
    exact_special = ~np.isfinite(value_np)
    same_special = (got == value_np) | (np.isnan(got) & np.isnan(value_np))
    good = np.where(exact_special, same_special, close & ~np.isnan(got))
    bad = known & ~good
    if bad.any():
        at = _where_first(bad)
        with np.errstate(all="ignore"):
            relative = np.where(bad, np.abs(got - value_np) / (np.abs(value_np) + tolerance), 0)
        worst = float(relative.max()) if np.isfinite(relative).all() else float("inf")
        raise Mismatch(f"{what}{list(at)}: got {got[at]!r}, expected {value_np[at]!r} ± {SAFETY * error_np[at]:.3g} "
                       f"({int(bad.sum())} of {bad.size} entries differ)", worst)
    return int(known.sum())


def _rows_unknown(terms: Bound) -> Tensor:
    """Rows (per component) where a term is unknown: nothing can be said about an extreme over them."""
    return torch.isinf(terms.error).any(-2) | torch.isnan(terms.error).any(-2)


def expected_sum(terms: Bound, p: Precision) -> Bound:
    n = terms.value.shape[-2]
    value = terms.value.sum(-2)
    finite = torch.where(torch.isfinite(terms.value), terms.value.abs(), torch.zeros_like(terms.value))
    magnitude = finite.sum(-2)
    error = terms.error.sum(-2) + (n + 2) * p.unit * magnitude
    overflow = magnitude > p.largest / 2
    return Bound(value, torch.where(overflow | torch.isnan(error), INF, error))


def _order_bounds(terms: Bound, k: int, smallest: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(center, low, high) of the k smallest (largest) terms, sorted, shape (*, rows, k, D); +inf (-inf) past n."""
    sign = 1.0 if smallest else -1.0
    v = sign * terms.value
    lo, hi = v - terms.error, v + terms.error
    n = v.shape[-2]
    pad = k - n
    if pad > 0:
        filler = torch.full((*v.shape[:-2], pad, v.shape[-1]), INF, dtype=torch.float64)
        v, lo, hi = (torch.cat([t, filler], -2) for t in (v, lo, hi))
    center, low, high = (torch.sort(t, dim=-2).values[..., :k, :] for t in (v, lo, hi))
    if smallest:
        return center, low, high
    return -center, -high, -low


def _unclear_rows(terms: Bound) -> Tensor:
    """(*, rows, 1, D): rows where an order statistic means nothing (unknown terms, NaN terms)."""
    return (_rows_unknown(terms) | torch.isnan(terms.value).any(-2)).unsqueeze(-2)


def check_extremes(got: np.ndarray, terms: Bound, p: Precision, k: int, smallest: bool, what: str) -> int:
    """K smallest (largest) values, sorted: each within the interval of the matching order statistic."""
    center, low, high = _order_bounds(terms, k, smallest)
    error = torch.maximum(center - low, high - center)
    error = torch.where(low == high, torch.zeros_like(error), error).nan_to_num(nan=INF, posinf=INF)
    error = torch.where(_unclear_rows(terms).expand_as(error), INF, error)
    return compare_values(got, center, error, p, what)


def check_indices(got: np.ndarray, terms: Bound, p: Precision, k: int, smallest: bool, what: str) -> int:
    """Indices of the K smallest (largest): valid, distinct, -1 past n, and each pointing at a term whose interval
    meets the interval of its order statistic."""
    _, low, high = _order_bounds(terms, k, smallest)
    n = terms.value.shape[-2]
    if tuple(got.shape) != tuple(low.shape):
        raise Mismatch(f"{what}: shape {tuple(got.shape)}, expected {tuple(low.shape)}")
    if not np.all(np.equal(np.mod(got, 1), 0)):
        raise Mismatch(f"{what}: indices that are not integers: {got.ravel()[:5]}")
    idx = got.astype(np.int64)
    unclear = _unclear_rows(terms).expand_as(low).numpy()
    ks = np.arange(k).reshape((1,) * (idx.ndim - 2) + (k, 1))
    past_n = np.broadcast_to(ks >= n, idx.shape)
    wrong_padding = past_n & (idx != -1) & ~unclear
    if wrong_padding.any():
        at = _where_first(wrong_padding)
        raise Mismatch(f"{what}{list(at)}: got index {idx[at]} for K > n = {n}, expected -1")
    valid = ~past_n & ~unclear
    out_of_range = valid & ((idx < 0) | (idx >= n))
    if out_of_range.any():
        at = _where_first(out_of_range)
        raise Mismatch(f"{what}{list(at)}: index {idx[at]} out of range [0, {n})")
    safe = torch.from_numpy(np.clip(idx, 0, max(n - 1, 0)))
    picked_v = terms.value.gather(-2, safe)
    picked_e = terms.error.gather(-2, safe)
    tol = (SAFETY - 1) * picked_e + 4 * p.unit * picked_v.abs().nan_to_num(posinf=0, neginf=0) + 4 * p.tiny
    meets = (picked_v - picked_e - tol <= high) & (picked_v + picked_e + tol >= low)
    meets |= (picked_v == low) | (picked_v == high)  # infinite values
    bad = valid & ~meets.numpy()
    if bad.any():
        at = _where_first(bad)
        raise Mismatch(f"{what}{list(at)}: index {idx[at]} has value {picked_v[at].item()!r}, expected "
                       f"in [{low[at].item()!r}, {high[at].item()!r}]")
    if k > 1 and n > 1:
        rows = np.sort(np.where(past_n, -1 - ks, idx), axis=-2)
        duplicate = (np.diff(rows, axis=-2) == 0) & ~unclear[..., 1:, :]
        if duplicate.any():
            raise Mismatch(f"{what}: an index repeats in one row: {idx[_where_first(duplicate)[:-2]].ravel()[:8]}")
    return int(valid.sum())


def expected_logsumexp(terms: Bound, weight: Bound | None, p: Precision) -> Bound:
    """log sum exp(f) (times g): the interval from the term intervals (LSE is monotone), plus rounding."""
    v, e = terms.value, terms.error
    n = v.shape[-2]
    finite_v = torch.where(torch.isfinite(v), v, torch.full_like(v, -INF))
    m = finite_v.amax(-2, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    unclear = torch.isinf(e).any(-2) | (v == INF).any(-2) | torch.isnan(v).any(-2) | (v == -INF).all(-2)
    if weight is None:
        total = torch.exp(v - m).sum(-2)
        lo = torch.exp(v - e - m).sum(-2)
        hi = torch.exp(v + e - m).sum(-2)
    else:
        g, ge = torch.broadcast_tensors(weight.value, weight.error)
        corners = [torch.exp(v + s * e - m) * (g + t * ge) for s in (-1, 1) for t in (-1, 1)]
        total = (torch.exp(v - m) * g).sum(-2)
        stacked = torch.stack(corners)
        lo, hi = stacked.amin(0).sum(-2), stacked.amax(0).sum(-2)
        magnitude = stacked.abs().amax(0).sum(-2)
        lo, hi = lo - (n + 8) * p.unit * magnitude, hi + (n + 8) * p.unit * magnitude
        unclear = unclear | torch.isinf(ge).any(-2) | ~torch.isfinite(g).all(-2) | (lo <= 0)
    mm = m.squeeze(-2)
    value = mm + torch.log(total)
    with np.errstate(all="ignore"):
        spread = torch.maximum(mm + torch.log(hi) - value, value - mm - torch.log(lo))
    scale = v.abs().nan_to_num(posinf=0, neginf=0).amax(-2)
    error = spread + 8 * p.unit * (scale + value.abs().nan_to_num(posinf=0)) + (n + 8) * p.unit
    unclear = unclear.expand_as(error) | torch.isnan(error)
    # a certain +inf or NaN term gives +inf or NaN; keep those exact rather than unclear
    plus_inf = (v == INF).any(-2) & ~torch.isnan(v).any(-2) & ~torch.isinf(e).any(-2)
    nan = torch.isnan(v).any(-2) & ~torch.isinf(e).any(-2)
    if weight is None:
        value = torch.where(plus_inf, INF, torch.where(nan, float("nan"), value))
        unclear = unclear & ~(plus_inf | nan)
    return Bound(value, torch.where(unclear, INF, error))


def expected_softmax_weight(terms: Bound, weight: Bound, p: Precision) -> Bound:
    """sum exp(f - max) g / sum exp(f - max): the ratio of the numerator and denominator intervals."""
    v, e = terms.value, terms.error
    n = v.shape[-2]
    g, ge = torch.broadcast_tensors(weight.value, weight.error)
    m = v.amax(-2, keepdim=True)
    numerator = (torch.exp(v - m) * g).sum(-2)
    denominator = torch.exp(v - m).sum(-2)
    value = numerator / denominator
    corners = torch.stack([torch.exp(v + s * e - m) * (g + t * ge) for s in (-1, 1) for t in (-1, 1)])
    rounding = (n + 8) * p.unit * corners.abs().amax(0).sum(-2)
    num_lo, num_hi = corners.amin(0).sum(-2) - rounding, corners.amax(0).sum(-2) + rounding
    den_lo = torch.exp(v - e - m).sum(-2) * (1 - (n + 8) * p.unit)
    den_hi = torch.exp(v + e - m).sum(-2) * (1 + (n + 8) * p.unit)
    ratios = torch.stack([a / b for a in (num_lo, num_hi) for b in (den_lo, den_hi)])
    error = torch.maximum(ratios.amax(0) - value, value - ratios.amin(0))
    unclear = ~torch.isfinite(v).all(-2) | torch.isinf(e).any(-2) | ~torch.isfinite(g).all(-2)
    unclear = unclear | torch.isinf(ge).any(-2) | torch.isnan(error) | ~torch.isfinite(m.squeeze(-2))
    return Bound(value, torch.where(unclear.expand_as(error), INF, error))


def check(kind: str, k: int | None, result: object, terms: Bound, weight: Bound | None, p: Precision) -> int:
    """Raises Mismatch if keir's result is wrong; returns the number of entries checked."""
    if kind == "sum":
        expected = expected_sum(terms, p)
        return compare_values(as_numpy(result), expected.value, expected.error, p, "sum")
    if kind in ("min", "max"):
        return check_extremes(_one_row(as_numpy(result), kind), terms, p, 1, kind == "min", kind)
    if kind in ("argmin", "argmax"):
        return check_indices(_one_row(as_numpy(result), kind), terms, p, 1, kind == "argmin", kind)
    if kind in ("min_argmin", "max_argmax"):
        values, indices = _pair(result, kind)
        smallest = kind == "min_argmin"
        return (check_extremes(_one_row(values, kind), terms, p, 1, smallest, kind + ".values")
                + check_indices(_one_row(indices, kind), terms, p, 1, smallest, kind + ".indices"))
    if kind in ("Kmin", "argKmin", "Kmin_argKmin"):
        return _check_k(kind, int(k or 1), result, terms, p)
    if kind in ("logsumexp", "logsumexp_weight"):
        expected = expected_logsumexp(terms, weight, p)
        return compare_values(as_numpy(result), expected.value, expected.error, p, kind)
    if kind == "sumsoftmaxweight":
        assert weight is not None
        expected = expected_softmax_weight(terms, weight, p)
        return compare_values(as_numpy(result), expected.value, expected.error, p, kind)
    raise ValueError(f"the fuzzer has no reference for reduction kind {kind!r}")


def _one_row(x: np.ndarray, what: str) -> np.ndarray:
    """(*, rows, D) -> (*, rows, 1, D): a single order statistic."""
    if x.ndim < 2:
        raise Mismatch(f"{what}: shape {x.shape}, expected (..., rows, D)")
    return x[..., None, :]


def _pair(result: object, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise Mismatch(f"{kind}: expected a (values, indices) pair, got {type(result).__name__}")
    return as_numpy(result[0]), as_numpy(result[1])


def _with_component_axis(x: np.ndarray, d: int, k: int, what: str) -> np.ndarray:
    """pykeops gives (*, rows, K) for a scalar formula and (*, rows, K, D) otherwise."""
    if d == 1:
        if x.shape[-1:] != (k,):
            raise Mismatch(f"{what}: shape {x.shape}, expected (..., {k}) for a scalar formula")
        return x[..., None]
    return x


def _check_k(kind: str, k: int, result: object, terms: Bound, p: Precision) -> int:
    d = terms.value.shape[-1]
    if kind == "Kmin":
        return check_extremes(_with_component_axis(as_numpy(result), d, k, kind), terms, p, k, True, kind)
    if kind == "argKmin":
        return check_indices(_with_component_axis(as_numpy(result), d, k, kind), terms, p, k, True, kind)
    values, indices = _pair(result, kind)
    return (check_extremes(_with_component_axis(values, d, k, kind), terms, p, k, True, kind + ".values")
            + check_indices(_with_component_axis(indices, d, k, kind), terms, p, k, True, kind + ".indices"))
