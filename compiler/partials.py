"""Reductions computed in pieces: what each piece of the reduced axis yields (its state), how two states merge,
and the reduction's outputs from a merged state.

The Accumulator classes (keir.compiler.reductions) merge lane states inside a kernel; this module is the same
algebra one level up, on the outputs of whole reductions over slices of the reduced axis (a shard of j on a
device, a rank, a Dask chunk). One definition serves multi-device calls, keir.distributed and keir.dask:

    sum                      s = s1 + s2
    min / max                the smaller (larger) value
    argmin, min_argmin, ...  (value, index) from min_argmin / max_argmax; ties go to the smaller index
    kmin, argkmin, ...       (values, indices) from kmin_argkmin: the two sorted lists merged, the first K kept
                             (ties: the smaller index; index -1, "fewer than K terms", sorts last)
    logsumexp, logsumexp_weight   logaddexp(l1, l2); a weighted shard needs sum exp(f) g > 0 (log of it)
    sumsoftmaxweight         (logsumexp f, softmax mean of g): l = logaddexp(l1, l2), w = w1 e^(l1-l) + w2 e^(l2-l)

Indices in a state are global: a piece's state is offset by the start of its slice (`offset`) before merging.
The functions take NumPy arrays or torch tensors (torch's ops keep autograd's graph through a merge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from keir.compiler.reductions import INT64_MAX

State = tuple[Any, ...]
_WITH_INDICES = ("min_argmin", "max_argmax", "kmin_argkmin")  # the kinds that return (values, indices)


class _NumpyOps:
    """The array functions the merges use, on NumPy arrays; _TorchOps spells them for torch tensors (whose ops
    autograd records). where, logaddexp and exp are the same name in both modules."""

    xp: Any = np

    def where(self, condition, x, y):
        return self.xp.where(condition, x, y)

    def logaddexp(self, x, y):
        return self.xp.logaddexp(x, y)

    def exp(self, x):
        return self.xp.exp(x)

    def concatenate(self, arrays, axis):
        return np.concatenate(arrays, axis=axis)

    def stable_argsort(self, x, axis):
        return np.argsort(x, axis=axis, kind="stable")

    def take_along_axis(self, x, indices, axis):
        return np.take_along_axis(x, indices, axis=axis)


class _TorchOps(_NumpyOps):
    def __init__(self):
        import torch  # only when merging torch tensors: keir.compiler does not need torch otherwise

        self.xp = torch

    def concatenate(self, arrays, axis):
        return self.xp.cat(arrays, dim=axis)

    def stable_argsort(self, x, axis):
        return self.xp.argsort(x, dim=axis, stable=True)

    def take_along_axis(self, x, indices, axis):
        return self.xp.gather(x, axis, indices)


def _ops(array: Any) -> _NumpyOps:
    return _TorchOps() if type(array).__module__.startswith("torch") else _NumpyOps()


def _merge_sum(a: State, b: State, k: int, dim: int) -> State:
    return (a[0] + b[0],)


def _merge_min(a: State, b: State, k: int, dim: int) -> State:
    return (_ops(a[0]).where(b[0] < a[0], b[0], a[0]),)


def _merge_max(a: State, b: State, k: int, dim: int) -> State:
    return (_ops(a[0]).where(b[0] > a[0], b[0], a[0]),)


def _merge_arg(better: Callable[[Any, Any], Any]) -> Callable[[State, State, int, int], State]:
    def merge(a: State, b: State, k: int, dim: int) -> State:
        (va, ia), (vb, ib) = a, b
        take_b = better(vb, va) | ((vb == va) & (ib < ia))  # the order of the pieces does not matter
        ops = _ops(va)
        return ops.where(take_b, vb, va), ops.where(take_b, ib, ia)

    return merge


def _merge_kmin(a: State, b: State, k: int, dim: int) -> State:
    """The K smallest of two sorted lists (on axis -1 for a scalar formula's (rows, K), else on axis -2 of
    (rows, K, D)), by value then index: two stable sorts, the index first."""
    (va, ia), (vb, ib) = a, b
    ops = _ops(va)
    axis = -1 if dim == 1 else -2
    values, indices = ops.concatenate([va, vb], axis), ops.concatenate([ia, ib], axis)
    order = ops.stable_argsort(ops.where(indices < 0, INT64_MAX, indices), axis)
    values, indices = ops.take_along_axis(values, order, axis), ops.take_along_axis(indices, order, axis)
    order = ops.stable_argsort(values, axis)
    values, indices = ops.take_along_axis(values, order, axis), ops.take_along_axis(indices, order, axis)
    keep = slice(0, k)
    if axis == -1:
        return values[..., keep], indices[..., keep]
    return values[..., keep, :], indices[..., keep, :]


def _merge_logsumexp(a: State, b: State, k: int, dim: int) -> State:
    return (_ops(a[0]).logaddexp(a[0], b[0]),)


def _merge_softmax(a: State, b: State, k: int, dim: int) -> State:
    (la, wa), (lb, wb) = a, b
    ops = _ops(la)
    total = ops.logaddexp(la, lb)
    # a piece whose weights all vanish (l = -inf) contributes nothing, not 0 * NaN
    scaled_a = ops.where(la == -float("inf"), 0.0, ops.exp(la - total) * wa)
    scaled_b = ops.where(lb == -float("inf"), 0.0, ops.exp(lb - total) * wb)
    return total, scaled_a + scaled_b


@dataclass(frozen=True)
class Partial:
    """How one reduction kind is computed in pieces. `state_kinds`: the reductions each piece runs (their
    outputs, in order, are the piece's state); `indexed`: whether the state's last entry holds indices;
    `outputs`: which entries of a state the kind returns."""

    kind: str
    state_kinds: tuple[str, ...]
    merge_states: Callable[[State, State, int, int], State]
    outputs: tuple[int, ...]
    indexed: bool = False

    def merge(self, a: State, b: State, k: int | None = None, dim: int = 1) -> State:
        """The state of the two pieces together. k: the K of the K-min family; dim: the formula's dimension
        (a K-min state is (rows, K) for a scalar formula, (rows, K, D) otherwise)."""
        if len(a) != self.entries or len(b) != self.entries:
            raise ValueError(f"a {self.kind} state has {self.entries} entries, got {len(a)} and {len(b)}")
        if self.merge_states is _merge_kmin and k is None:
            raise ValueError(f"merging {self.kind} states needs k")
        return self.merge_states(a, b, k or 1, dim)

    @property
    def entries(self) -> int:
        """The number of arrays in a state: one per output of each state kind."""
        return sum(2 if kind in _WITH_INDICES else 1 for kind in self.state_kinds)

    def offset(self, state: State, start: int) -> State:
        """A piece's state with its indices (counted from the piece's first row) made global."""
        if not self.indexed or start == 0:
            return state
        indices = state[-1]
        return (*state[:-1], _ops(indices).where(indices >= 0, indices + start, indices))

    def finish(self, state: State) -> Any:
        """The kind's outputs: one array, or a tuple (values, indices)."""
        chosen = tuple(state[i] for i in self.outputs)
        return chosen[0] if len(chosen) == 1 else chosen


PARTIALS: dict[str, Partial] = {
    "sum": Partial("sum", ("sum",), _merge_sum, (0,)),
    "min": Partial("min", ("min",), _merge_min, (0,)),
    "max": Partial("max", ("max",), _merge_max, (0,)),
    "argmin": Partial("argmin", ("min_argmin",), _merge_arg(lambda x, y: x < y), (1,), indexed=True),
    "argmax": Partial("argmax", ("max_argmax",), _merge_arg(lambda x, y: x > y), (1,), indexed=True),
    "min_argmin": Partial("min_argmin", ("min_argmin",), _merge_arg(lambda x, y: x < y), (0, 1), indexed=True),
    "max_argmax": Partial("max_argmax", ("max_argmax",), _merge_arg(lambda x, y: x > y), (0, 1), indexed=True),
    "kmin": Partial("kmin", ("kmin_argkmin",), _merge_kmin, (0,), indexed=True),
    "argkmin": Partial("argkmin", ("kmin_argkmin",), _merge_kmin, (1,), indexed=True),
    "kmin_argkmin": Partial("kmin_argkmin", ("kmin_argkmin",), _merge_kmin, (0, 1), indexed=True),
    "logsumexp": Partial("logsumexp", ("logsumexp",), _merge_logsumexp, (0,)),
    "logsumexp_weight": Partial("logsumexp_weight", ("logsumexp_weight",), _merge_logsumexp, (0,)),
    # the first state is the log-sum-exp of f alone (the operand's first component)
    "sumsoftmaxweight": Partial("sumsoftmaxweight", ("logsumexp", "sumsoftmaxweight"), _merge_softmax, (1,)),
}


def partial(kind: str) -> Partial:
    """The Partial of a reduction kind; ValueError for a kind that has none."""
    found = PARTIALS.get(kind)
    if found is None:
        raise ValueError(f"no partial form for reduction kind {kind!r}; known: {', '.join(PARTIALS)}")
    return found


def merge_all(form: Partial, states: list[State], k: int | None = None, dim: int = 1) -> State:
    """The merge of several pieces' states, as a balanced tree (log2 of the count of merges deep)."""
    if not states:
        raise ValueError(f"merging {form.kind} states needs at least one")
    while len(states) > 1:
        paired = [form.merge(states[i], states[i + 1], k, dim) for i in range(0, len(states) - 1, 2)]
        states = paired + ([states[-1]] if len(states) % 2 else [])
    return states[0]
