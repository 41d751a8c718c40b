"""Reductions over data sharded by rows across the ranks of a torch.distributed process group.

Each rank holds its rows of the output's category (x_i for a reduction over j) and its slice of the reduced
one (y_j, b_j); parameters are the same on every rank. `reduce` computes each rank's rows of
out_i = Reduce_j F(x_i, y_j) over all the ranks' j: the j-slices travel around the ring (rank r sends to
r + 1), so that a rank holds its own slice and one other at a time, never all of y, and each slice's piece is
computed while the next one is in flight; slices that are small all together (DistributedOptions) are
all-gathered instead, in one collective. The pieces' states merge with keir.compiler.partials.

Gradients: the backward runs the ring again. A rank computes, for each slice passing by, its rows'
contribution to the gradients of that slice, which travel on with the slice and arrive back at its owner
summed over all ranks (all-gathered slices: the contributions are all-reduced). They are the gradients of the
sum of the ranks' losses (what DDP assumes), parameters' included (all-reduced). Every rank must call the
forward and the backward (collectives). First order only.

Failures: the shards' shapes, dtypes and the formula are compared across ranks first (the same ValueError on
every rank); a rank that raises later leaves its peers blocked on a receive until the process group's timeout
(`init_process_group(..., timeout=)`), after which they raise too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from keir import sharding
from keir.compiler.partials import Partial, State, merge_all
from keir.reduction import Reduction
from keir.symbolic import bind_symbolic


class PeerError(RuntimeError):
    """A collective of keir.distributed failed: another rank raised, exited or timed out."""


@dataclass(frozen=True)
class Layout:
    """Where each rank's rows lie, read from every rank's shards."""

    rank: int
    world: int
    kept_rows: tuple[int, ...]  # per rank
    reduced_rows: tuple[int, ...]  # per rank
    reduced_shapes: tuple[tuple[int, ...], ...]  # the shape of each reduced-category array, less its rows
    needs_reduced_grad: bool  # on some rank

    def reduced_start(self, rank: int) -> int:
        """The global index of rank's first reduced row."""
        return sum(self.reduced_rows[:rank])

    def reduced_bytes(self, itemsize: int) -> int:
        """The size of all the ranks' reduced arrays together."""
        per_row = sum(math.prod(shape) for shape in self.reduced_shapes) * itemsize
        return per_row * sum(self.reduced_rows)


@dataclass(frozen=True)
class DistributedOptions:
    """all_gather_below_bytes: when the reduced arrays of all ranks together are smaller than this, one
    all_gather hands every rank all the slices (and one all_reduce sums their gradients) instead of the ring's
    world-size steps; 0 always takes the ring."""

    all_gather_below_bytes: int = 1 << 20


def reduce(reduction: Reduction, *arrays: torch.Tensor, group: Any = None,
           options: DistributedOptions | None = None) -> Any:
    """This rank's rows of the reduction over all the ranks' shards. `reduction` is built from the local
    shards with `call=False` (`(Vi(x) * Vj(y)).sum(axis=1, call=False)`), or has symbolic variables whose
    arrays are `arrays`. group: the process group (default: the default group). Returns what the reduction
    returns (a tensor, or values and indices), this rank's rows; indices count the reduced axis across all
    ranks, in rank order."""
    options = options or DistributedOptions()
    if arrays:
        if not reduction.symbolic:
            raise ValueError("arrays are given for a reduction that already has its own: pass one or the other")
        lazy = bind_symbolic(reduction.lazy, arrays)
        sharding.check_real_full_precision("keir.distributed", lazy)
        reduction = sharding.over(reduction, lazy.arrays, dtype=lazy.dtype)
    sharding.check_real_full_precision("keir.distributed", reduction.lazy)
    if not all(isinstance(a, torch.Tensor) for a in reduction.lazy.arrays if not isinstance(a, float)):
        raise TypeError("keir.distributed takes torch tensors (keir.torch's LazyTensors)")
    form = sharding.check_shardable(reduction)
    layout = _layout(reduction, group)
    gather = layout.reduced_bytes(reduction.dtype.itemsize) < options.all_gather_below_bytes
    return _ShardedReduction.apply(_Call(reduction, form, layout, group, gather), *reduction.lazy.arrays)


@dataclass(frozen=True)
class _Call:
    reduction: Reduction
    form: Partial
    layout: Layout
    group: Any
    gather: bool  # all-gather the slices rather than pass them around the ring


def _layout(reduction: Reduction, group: Any) -> Layout:
    """Every rank's rows, checked for agreement: the same ValueError on every rank when they disagree."""
    kept, reduced = sharding.kept_category(reduction), sharding.reduced_category(reduction)
    reduced_arrays = sharding.arrays_of(reduction, reduced)
    mine = {
        "formula": str(reduction.root), "dtype": reduction.lazy.dtype,
        "kept_rows": sharding.rows_of(reduction, kept), "reduced_rows": sharding.rows_of(reduction, reduced),
        "reduced_shapes": [tuple(a.shape[:-2]) + tuple(a.shape[-1:]) for a in reduced_arrays],
        "kept_shapes": [tuple(a.shape[:-2]) + tuple(a.shape[-1:]) for a in sharding.arrays_of(reduction, kept)],
        "needs_grad": any(a.requires_grad for a in reduced_arrays),
    }
    world = dist.get_world_size(group)
    everyone: list[Any] = [None] * world
    _collective(lambda: dist.all_gather_object(everyone, mine, group=group), "exchanging the shards' shapes")
    for field in ("formula", "dtype", "reduced_shapes", "kept_shapes"):
        values = [peer[field] for peer in everyone]
        if any(v != values[0] for v in values):
            raise ValueError(f"keir.distributed: the ranks' shards disagree on their {field.replace('_', ' ')}: "
                             + ", ".join(f"rank {r}: {v}" for r, v in enumerate(values)))
    empty = [r for r, peer in enumerate(everyone) if peer["kept_rows"] == 0]
    if empty:
        raise ValueError(f"keir.distributed: every rank needs at least one output row; rank(s) {empty} have none")
    if not any(peer["reduced_rows"] for peer in everyone):
        raise ValueError("keir.distributed: no rank holds a row of the reduced axis")
    return Layout(dist.get_rank(group), world, tuple(p["kept_rows"] for p in everyone),
                  tuple(p["reduced_rows"] for p in everyone), tuple(map(tuple, mine["reduced_shapes"])),
                  any(p["needs_grad"] for p in everyone))


def _collective(operation: Any, what: str) -> Any:
    try:
        return operation()
    except (RuntimeError, dist.DistBackendError) as error:
        raise PeerError(f"keir.distributed: {what} failed; another rank may have raised, exited or timed out "
                        f"({error})") from error


def _exchange(outgoing: list[torch.Tensor], incoming: list[torch.Tensor], layout: Layout, group: Any) -> list[Any]:
    """Start sending to the next rank and receiving from the previous one; the handles to wait for."""
    send_to, receive_from = (layout.rank + 1) % layout.world, (layout.rank - 1) % layout.world
    operations = [dist.P2POp(dist.isend, t, dist.get_global_rank(group, send_to) if group else send_to, group)
                  for t in outgoing]
    operations += [dist.P2POp(dist.irecv, t, dist.get_global_rank(group, receive_from) if group else receive_from,
                              group) for t in incoming]
    return _collective(lambda: dist.batch_isend_irecv(operations), "a ring exchange")


def _wait(handles: list[Any]) -> None:
    for handle in handles:
        _collective(handle.wait, "a ring exchange")


def _buffers(layout: Layout, owner: int, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Empty tensors for the reduced arrays of `owner`'s slice."""
    rows = layout.reduced_rows[owner]
    return [torch.empty(shape[:-1] + (rows, shape[-1]), dtype=t.dtype, device=t.device)
            for shape, t in zip(layout.reduced_shapes, like)]


def _ring_order(layout: Layout) -> list[int]:
    """The owners of the slices a rank holds at each step: its own, then its predecessors'."""
    return [(layout.rank - step) % layout.world for step in range(layout.world)]


class _ShardedReduction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, call: _Call, *arrays: Any) -> Any:
        reduction, layout = call.reduction, call.layout
        reduced, categories = sharding.reduced_category(reduction), reduction.lazy.categories
        arrays = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in arrays)
        own = [a.contiguous() for a, c in zip(arrays, categories) if c == reduced]
        states: dict[int, State] = {}
        slices = _gathered(own, layout, call.group) if call.gather else _ring(own, layout, call.group)
        for owner, current in slices:
            if layout.reduced_rows[owner]:
                piece = sharding.replace_arrays(arrays, categories, reduced, current)
                states[owner] = sharding.state_of(reduction, piece, layout.reduced_start(owner))
        ctx.call, ctx.states, ctx.arrays = call, states, arrays
        result = call.form.finish(merge_all(call.form, [states[o] for o in sorted(states)], reduction.k,
                                            reduction.lazy.node.dim))
        outputs = result if isinstance(result, tuple) else (result,)
        ctx.mark_non_differentiable(*(out for out in outputs if not out.is_floating_point()))
        return result

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> tuple[Any, ...]:
        call, arrays = ctx.call, ctx.arrays
        reduction = call.reduction
        reduced, categories = sharding.reduced_category(reduction), reduction.lazy.categories
        cotangents = _state_cotangents(call.form, ctx.states, reduction, grad_outputs)
        # the local inputs whose gradients stay here (x_i, parameters), by position
        local = [k for k, (a, c) in enumerate(zip(arrays, categories))
                 if c != reduced and isinstance(a, torch.Tensor) and a.is_floating_point() and
                 (ctx.needs_input_grad[k + 1] or c == "p")]  # every rank joins the parameters' all-reduce
        local_grads = {k: torch.zeros_like(arrays[k]) for k in local}
        current = [a.contiguous() for a, c in zip(arrays, categories) if c == reduced]
        if call.gather:
            travelling = _gathered_gradients(call, arrays, current, cotangents, local, local_grads)
        else:
            travelling = _ring_gradients(call, arrays, current, cotangents, local, local_grads)
        own = iter(travelling)
        grads: list[Any] = [None]  # the _Call argument
        for k, category in enumerate(categories):
            grad = next(own) if category == reduced else local_grads.get(k)
            if category == "p" and grad is not None:  # the same parameters on every rank: gradients summed
                _collective(lambda g=grad: dist.all_reduce(g, group=call.group), "summing parameter gradients")
            grads.append(grad if ctx.needs_input_grad[k + 1] else None)
        return tuple(grads)


def _ring_gradients(call: _Call, arrays: Sequence[Any], current: list[torch.Tensor],
                    cotangents: dict[int, tuple[Any, ...]], local: Sequence[int],
                    local_grads: dict[int, torch.Tensor]) -> list[torch.Tensor]:
    """The gradients of this rank's reduced arrays, summed over the ranks by passing each slice and its
    gradients around the ring (adding to the local gradients on the way)."""
    reduction, layout = call.reduction, call.layout
    travelling = [torch.zeros_like(t) for t in current]  # the gradients of the slice in hand
    order = _ring_order(layout)
    for step, owner in enumerate(order):
        if layout.reduced_rows[owner]:
            _add_piece_gradients(reduction, arrays, current, cotangents[owner], local, local_grads,
                                 travelling if layout.needs_reduced_grad else None)
        last = step + 1 == layout.world
        # pass the slice on with its gradients; after the last step only the gradients go, home to the owner
        outgoing = travelling if last else current + travelling
        next_owner = layout.rank if last else order[step + 1]
        incoming = _buffers(layout, next_owner, current)
        if not last:
            incoming += _buffers(layout, next_owner, current)
        if layout.world > 1:
            _wait(_exchange(outgoing, incoming, layout, call.group))
        else:
            incoming = outgoing
        current, travelling = (current, incoming) if last else (incoming[: len(current)], incoming[len(current):])
    return travelling


def _gathered_gradients(call: _Call, arrays: Sequence[Any], own: list[torch.Tensor],
                        cotangents: dict[int, tuple[Any, ...]], local: Sequence[int],
                        local_grads: dict[int, torch.Tensor]) -> list[torch.Tensor]:
    """The gradients of this rank's reduced arrays: every rank's contributions to every slice, all-reduced
    (padded to the longest slice, as the all_gather of the forward was)."""
    layout = call.layout
    longest = max(layout.reduced_rows)
    totals = [t.new_zeros((layout.world,) + t.shape[:-2] + (longest, t.shape[-1])) for t in own]
    for owner, current in _gathered(own, layout, call.group):
        if layout.reduced_rows[owner]:
            rows = layout.reduced_rows[owner]
            travelling = [total[owner][..., :rows, :] for total in totals]  # views: added to in place
            _add_piece_gradients(call.reduction, arrays, current, cotangents[owner], local, local_grads,
                                 travelling if layout.needs_reduced_grad else None)
    if layout.needs_reduced_grad:
        for total in totals:
            _collective(lambda t=total: dist.all_reduce(t, group=call.group), "summing slice gradients")
    return [total[layout.rank][..., : layout.reduced_rows[layout.rank], :] for total in totals]


def _ring(own: list[torch.Tensor], layout: Layout, group: Any) -> Iterator[tuple[int, list[torch.Tensor]]]:
    """(owner, slice) for every rank's slice, passed around the ring: the next one is in flight while the
    caller works on the one it was given."""
    current, order = own, _ring_order(layout)
    for step, owner in enumerate(order):
        handles, incoming = [], []
        if step + 1 < layout.world:
            incoming = _buffers(layout, order[step + 1], current)
            handles = _exchange(current, incoming, layout, group)
        yield owner, current
        _wait(handles)
        current = incoming


def _gathered(own: list[torch.Tensor], layout: Layout, group: Any) -> Iterator[tuple[int, list[torch.Tensor]]]:
    """(owner, slice) for every rank's slice, all gathered at once (padded to the longest slice)."""
    longest = max(layout.reduced_rows)
    everyone = []
    for tensor in own:
        padded = tensor.new_zeros(tensor.shape[:-2] + (longest, tensor.shape[-1]))
        padded[..., : tensor.shape[-2], :] = tensor
        parts = [torch.empty_like(padded) for _ in range(layout.world)]
        _collective(lambda p=parts, t=padded: dist.all_gather(p, t, group=group), "gathering the slices")
        everyone.append(parts)
    for owner in _ring_order(layout):
        rows = layout.reduced_rows[owner]
        yield owner, [parts[owner][..., :rows, :] for parts in everyone]


def _add_piece_gradients(reduction: Reduction, arrays: Sequence[Any], slice_arrays: Sequence[torch.Tensor],
                         cotangent: tuple[Any, ...], local: Sequence[int], local_grads: dict[int, torch.Tensor],
                         travelling: list[torch.Tensor] | None) -> None:
    """Add one piece's contribution (the rows of this rank against the slice in hand) to the local gradients
    and, unless None, to the slice's travelling gradients."""
    reduced, categories = sharding.reduced_category(reduction), reduction.lazy.categories
    leaves = [a.detach().requires_grad_() if k in local else a for k, a in enumerate(arrays)]
    slice_leaves = [t.detach().requires_grad_(travelling is not None) for t in slice_arrays]
    wrt = [leaves[k] for k in local] + (slice_leaves if travelling is not None else [])
    if not wrt:
        return
    with torch.enable_grad():
        state = sharding.state_of(reduction, sharding.replace_arrays(leaves, categories, reduced, slice_leaves), 0)
        pairs = [(s, g) for s, g in zip(state, cotangent) if g is not None and s.requires_grad]
        if not pairs:
            return
        grads = torch.autograd.grad([s for s, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True)
    for k, grad in zip(local, grads):
        if grad is not None:
            local_grads[k] += grad
    if travelling is not None:
        for index, grad in enumerate(grads[len(local):]):
            if grad is not None:
                travelling[index] += grad


def _state_cotangents(form: Partial, states: dict[int, State], reduction: Reduction,
                      grad_outputs: Sequence[torch.Tensor]) -> dict[int, tuple[Any, ...]]:
    """The cotangent of each piece's state, from the outputs' (the merge's own backward)."""
    leaves = {owner: tuple(s.detach().requires_grad_() if s.is_floating_point() else s for s in state)
              for owner, state in states.items()}
    with torch.enable_grad():
        owners = sorted(leaves)
        result = form.finish(merge_all(form, [leaves[o] for o in owners], reduction.k, reduction.lazy.node.dim))
        outputs = result if isinstance(result, tuple) else (result,)
        pairs = [(out, g) for out, g in zip(outputs, grad_outputs) if out.is_floating_point() and g is not None]
        flat = [s for o in owners for s in leaves[o] if s.is_floating_point()]
        grads = iter(torch.autograd.grad([o for o, _ in pairs], flat, [g for _, g in pairs], allow_unused=True))
    cotangents = {}
    for owner in owners:
        entries = []
        for s in leaves[owner]:
            if s.is_floating_point():
                grad = next(grads)
                entries.append(torch.zeros_like(s) if grad is None else grad)
            else:
                entries.append(None)
        cotangents[owner] = tuple(entries)
    return cotangents
