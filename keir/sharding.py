"""A reduction cut into pieces along its rows or its reduced axis: the pieces as reductions of their own, and
their states merged with keir.compiler.partials. Shared by multi-device calls (keir.devices), keir.distributed,
keir.dask and keir.streaming.

For out_i = Reduce_j F(x_i, y_j): the *kept* category is the one of the output rows (i for axis=1), the
*reduced* one is summed over (j). A piece over rows a:b of the reduced category yields a state (see
keir.compiler.partials); the states of pieces that tile the axis merge into the whole reduction's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from keir.compiler.partials import Partial, State, merge_all, partial
from keir.dtypes import HALF_DTYPES, compute_dtype

if TYPE_CHECKING:  # keir.reduction imports keir.devices, which imports this module
    from keir.reduction import Reduction


def reduced_category(reduction: Reduction) -> str:
    return "j" if reduction.axis == 1 else "i"


def kept_category(reduction: Reduction) -> str:
    return "i" if reduction.axis == 1 else "j"


def check_shardable(reduction: Reduction) -> Partial:
    """The reduction's Partial; ValueError for what cannot be cut into pieces."""
    if reduction.symbolic:
        raise ValueError("a sharded reduction needs its arrays: call it on them, or bind them first")
    if reduction.ranges is not None:
        raise ValueError("block-sparse ranges (ranges=) cannot be sharded: their blocks index the whole axes")
    form = partial(reduction.kind)
    reduced = reduced_category(reduction)
    if reduced not in reduction.lazy.categories:
        raise ValueError(f"a sharded reduction over {reduced} needs a {'Vj' if reduced == 'j' else 'Vi'} variable")
    return form


def check_real_full_precision(where: str, lazy: Any = None, dtypes: Sequence[str] = ()) -> None:
    """TypeError for a complex or half-precision formula (a LazyTensor, or the dtype names of its arrays), whose
    outputs `where` does not view as complex or round."""
    names = set(dtypes) | ({lazy.dtype} if lazy is not None else set())
    if (lazy is not None and lazy.is_complex) or names & {*HALF_DTYPES, "complex64", "complex128"}:
        raise TypeError(f"{where} takes float32 and float64 formulas; complex and half-precision ones run on one "
                        "process (or with device_ids=)")


def rows_of(reduction: Reduction, category: str) -> int:
    return reduction.sizes[category]


def arrays_of(reduction: Reduction, category: str) -> list[Any]:
    """The reduction's arrays of one category, in formula order."""
    return [a for a, c in zip(reduction.lazy.arrays, reduction.lazy.categories) if c == category]


def slice_rows(arrays: Sequence[Any], categories: Sequence[str], category: str, start: int, stop: int) -> list[Any]:
    """The arrays with those of `category` cut to rows start:stop (their axis -2; batch dimensions kept)."""
    return [a[..., start:stop, :] if c == category else a for a, c in zip(arrays, categories)]


def replace_arrays(arrays: Sequence[Any], categories: Sequence[str], category: str,
                   replacements: Sequence[Any]) -> list[Any]:
    """The arrays with those of `category` replaced, in order, by `replacements`."""
    given = iter(replacements)
    return [next(given) if c == category else a for a, c in zip(arrays, categories)]


def over(reduction: Reduction, arrays: Sequence[Any], kind: str | None = None, dtype: str | None = None,
         **options: Any) -> Reduction:
    """The reduction's formula over other arrays of the same categories (of `dtype`, default the reduction's),
    as `kind` (default its own), with its options (threads, backend, device_id, precision, k, sum_scheme,
    dtype_acc) updated by `options`."""
    # a piece is a reduction of the real components in the compute dtype (its arrays are already so): complex
    # views and half rounding are for the whole reduction's output only (Reduction._output)
    lazy = reduction.lazy.real_class.from_node(reduction.lazy.node, tuple(arrays), reduction.lazy.categories,
                                               compute_dtype(dtype or reduction.lazy.dtype))
    kind = kind or reduction.kind
    settings = {"threads": reduction.threads, "backend": reduction.backend, "device_id": reduction.device_id,
                "precision": reduction.precision, "rows": reduction.rows, **reduction.reduce_attrs, **options}
    if kind == "logsumexp" and reduction.kind == "sumsoftmaxweight":
        lazy = lazy[0]  # the log-sum-exp of f alone: the first component of the operand concat(f, g)
    return type(reduction)(lazy, kind, reduction.axis, **settings)


def state_of(reduction: Reduction, arrays: Sequence[Any], start: int = 0, **options: Any) -> State:
    """The state (keir.compiler.partials) of the reduction's formula over `arrays`, a piece whose reduced rows
    begin at global row `start`."""
    form = partial(reduction.kind)
    outputs: list[Any] = []
    for kind in form.state_kinds:
        result = over(reduction, arrays, kind, **options)()
        outputs += list(result) if isinstance(result, tuple) else [result]
    return form.offset(tuple(outputs), start)


def bounds(count: int, pieces: int) -> list[tuple[int, int]]:
    """`count` rows cut into at most `pieces` non-empty runs of nearly equal length."""
    if pieces < 1:
        raise ValueError(f"the number of pieces must be at least 1, got {pieces}")
    pieces = min(pieces, count) or 1
    edges = [count * p // pieces for p in range(pieces + 1)]
    return list(zip(edges[:-1], edges[1:]))


def merge_pieces(reduction: Reduction, pieces: Sequence[tuple[int, int]]) -> Any:
    """The reduction's outputs from pieces (start, stop) of its reduced axis that tile it, run one after the
    other, each as its own reduction: the plain form of what keir.devices, keir.distributed and keir.dask do."""
    form = check_shardable(reduction)
    reduced, arrays, categories = reduced_category(reduction), reduction.lazy.arrays, reduction.lazy.categories
    check_tiling(pieces, rows_of(reduction, reduced))
    states = [state_of(reduction, slice_rows(arrays, categories, reduced, start, stop), start)
              for start, stop in pieces]
    return form.finish(merge_all(form, states, reduction.k, reduction.lazy.node.dim))


def check_tiling(pieces: Sequence[tuple[int, int]], count: int) -> None:
    """ValueError unless the pieces are non-empty runs covering 0..count in order."""
    edge = 0
    for start, stop in pieces:
        if start != edge or stop <= start:
            raise ValueError(f"pieces must be non-empty runs that tile 0..{count} in order, got {list(pieces)}")
        edge = stop
    if edge != count:
        raise ValueError(f"pieces must be non-empty runs that tile 0..{count} in order, got {list(pieces)}")
