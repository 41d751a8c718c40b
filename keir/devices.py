"""One reduction over several devices of one process: `.sum(axis=1, device_ids=[0, 1])`.

The output rows are cut into one run per device when there are enough of them to fill each device, else the
reduced axis is, and the pieces' states merge with keir.compiler.partials. Each device's piece is launched
from its own thread: keir's kernels are ctypes (CPU) or CUDA driver calls made with the GIL released, so the
pieces run at the same time (benchmarks/scaling.py measures it). Results are gathered where the inputs were
(torch tensors) or on the host (NumPy arrays). Torch autograd records through the pieces and the merge.

On the GPU backend (backend="GPU", or CUDA tensors) the ids are CUDA devices. On the CPU the ids only cut the
work: the pieces' row blocks share keir's one pool of `threads` workers (the CPU is one device), which runs
the same shard-and-merge path that the GPUs take.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from keir import sharding
from keir.compiler.partials import merge_all

if TYPE_CHECKING:  # keir.reduction imports this module (device_ids=)
    from keir.reduction import Reduction

# Rows per device below which the reduced axis is cut instead of the rows: a GPU needs some thousands of
# rows (one thread each) to fill its multiprocessors.
ROWS_PER_DEVICE = 4096
SPLITS = ("auto", "rows", "reduced")


def reduce_on_devices(reduction: Reduction, device_ids: Sequence[int], split: str = "auto") -> Any:
    """The reduction's outputs, computed in one piece per device (see the module docstring). split: "rows"
    (the output rows), "reduced" (the reduced axis) or "auto" (rows if each device gets ROWS_PER_DEVICE)."""
    ids = _checked_ids(device_ids)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    form = sharding.check_shardable(reduction)
    on_gpu = reduction.backend.startswith("GPU") or reduction.adapter.on_cuda(reduction.lazy.arrays)
    kept, reduced = sharding.kept_category(reduction), sharding.reduced_category(reduction)
    rows = sharding.rows_of(reduction, kept)
    if split == "auto":
        split = "rows" if rows >= ROWS_PER_DEVICE * len(ids) and kept in reduction.lazy.categories else "reduced"
    category = kept if split == "rows" else reduced
    if category not in reduction.lazy.categories:
        raise ValueError(f"split={split!r} cuts the {category} axis, which this formula has no variable of")
    pieces = sharding.bounds(sharding.rows_of(reduction, category), len(ids))
    arrays, categories = reduction.lazy.arrays, reduction.lazy.categories

    def run(index: int) -> Any:
        device = ids[index]
        options = {"backend": "GPU", "device_id": device} if on_gpu else {"backend": "CPU"}
        piece = [_to_device(a, device) if on_gpu else a
                 for a in sharding.slice_rows(arrays, categories, category, *pieces[index])]
        if split == "rows":
            return sharding.over(reduction, piece, **options)()
        return sharding.state_of(reduction, piece, pieces[index][0], **options)

    with ThreadPoolExecutor(max_workers=len(pieces), thread_name_prefix="keir-device") as pool:
        results = list(pool.map(run, range(len(pieces))))
    home = _home(reduction)
    if split == "rows":
        axis = len(reduction.batch_shape)  # the rows' axis of every output
        outputs = [r if isinstance(r, tuple) else (r,) for r in results]
        gathered = tuple(_concatenate([_to_home(o[k], home) for o in outputs], axis) for k in range(len(outputs[0])))
        return gathered[0] if len(gathered) == 1 else gathered
    states = [tuple(_to_home(s, home) for s in state) for state in results]
    return form.finish(merge_all(form, states, reduction.k, reduction.lazy.node.dim))


def _checked_ids(device_ids: Sequence[int]) -> tuple[int, ...]:
    ids = tuple(device_ids)
    if not ids or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in ids):
        raise ValueError(f"device_ids must be a non-empty list of device numbers (>= 0), got {device_ids!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"device_ids lists a device twice: {list(ids)}")
    return ids


def _to_device(array: Any, device: int) -> Any:
    """A torch tensor moved to CUDA device `device` (a differentiable copy); NumPy arrays stay on the host,
    keir's GPU path copies them to the device it runs on."""
    if type(array).__module__.startswith("torch"):
        return array.to(f"cuda:{device}")
    return array


def _home(reduction: Reduction) -> Any:
    """Where the results are gathered: the device of the first torch tensor input, None for NumPy."""
    for array in reduction.lazy.arrays:
        if type(array).__module__.startswith("torch"):
            return array.device
    return None


def _to_home(array: Any, home: Any) -> Any:
    return array if home is None else array.to(home)


def _concatenate(arrays: list[Any], axis: int) -> Any:
    if type(arrays[0]).__module__.startswith("torch"):
        import torch

        return torch.cat(arrays, dim=axis)
    import numpy

    return numpy.concatenate(arrays, axis=axis)
