"""The schedule a block-sparse kernel runs (keir.compiler.operands.BLOCK_SPARSE), shared by the CPU and GPU
runtimes: ranges of rows covering every output row once, each with its list of intervals of the reduced index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlockSparse:
    """Every array C-contiguous int64. `work` is the cumulative number of pairs up to each range, by which the
    CPU's threads share them; `empty_rows` are the rows reduced over no index (an arg-reduction gives -1)."""

    ranges: np.ndarray  # (R, 2) [start, end) of rows, none empty
    slices: np.ndarray  # (R, 2) range r is reduced over redranges[slices[r, 0] : slices[r, 1]]
    redranges: np.ndarray  # (S, 2) [start, end) of the reduced index
    work: np.ndarray  # (R,) non-decreasing
    empty_rows: np.ndarray

    @classmethod
    def of(cls, ranges: np.ndarray, slices: np.ndarray, redranges: np.ndarray, piece_rows: int) -> BlockSparse:
        """The schedule of non-empty row ranges with their slices of `redranges`, each range cut into pieces of at
        most `piece_rows` rows (a GPU block's rows; on the CPU, a share of work small enough to balance)."""
        lengths = ranges[:, 1] - ranges[:, 0]
        pieces = -(-lengths // piece_rows)
        owner = np.repeat(np.arange(len(ranges)), pieces)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        lo = ranges[owner, 0] + offset * piece_rows
        hi = np.minimum(lo + piece_rows, ranges[owner, 1])
        out_slices = np.ascontiguousarray(slices[owner], dtype=np.int64)
        widths = np.concatenate(([0], np.cumsum(redranges[:, 1] - redranges[:, 0])))
        columns = widths[out_slices[:, 1]] - widths[out_slices[:, 0]]
        empty = columns == 0
        counts = (hi - lo)[empty]
        empty_rows = np.repeat(lo[empty] - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        return cls(np.ascontiguousarray(np.stack((lo, hi), axis=1), dtype=np.int64), out_slices,
                   np.ascontiguousarray(redranges, dtype=np.int64),
                   np.cumsum((hi - lo) * (columns + 16)),  # a row costs its columns, and a little for itself
                   empty_rows)

    @property
    def longest(self) -> int:
        """The most rows of one range."""
        return int((self.ranges[:, 1] - self.ranges[:, 0]).max(initial=0))

    def cut(self, piece_rows: int) -> BlockSparse:
        """This schedule with ranges of at most `piece_rows` rows."""
        if self.longest <= piece_rows:
            return self
        return BlockSparse.of(self.ranges, self.slices, self.redranges, piece_rows)
