"""`make bench`: a Gaussian sum over 10^8 memmapped float32 points, out of core (keir.streaming).

    .venv/bin/python benchmarks/out_of_core.py [--n 100000000] [--m 500] [--budget-mib 256]

Writes y (N x 3) and b (N x 1) as raw float32 files under a temporary folder of /tmp (1.6 GB for N = 1e8),
maps them read-only, computes out_i = sum_j exp(-|x_i - y_j|^2 / 2) b_j for M points x_i chunk by chunk
within the memory budget, and reports the time and the process's peak resident memory (getrusage), against
its resident memory before the call; the first rows are checked against NumPy in float64. The files are
deleted at the end.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from common import cpu_description, markdown_table, rate

from keir import streaming
from keir.numpy import Vi, Vj
from keir.streaming import StreamOptions

_WRITE_ROWS = 1 << 22  # rows generated and written at a time (64 MB of y): the writer stays small too


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def write_files(folder: Path, n: int) -> tuple[Path, Path]:
    """Raw float32 files, written by plain writes of small blocks (not through a map, whose dirty pages would
    count in this process's resident memory)."""
    rng = np.random.default_rng(0)
    paths = folder / "y.f32", folder / "b.f32"
    with open(paths[0], "wb") as y_file, open(paths[1], "wb") as b_file:
        for start in range(0, n, _WRITE_ROWS):
            rows = min(_WRITE_ROWS, n - start)
            rng.standard_normal((rows, 3), dtype=np.float32).tofile(y_file)
            rng.random((rows, 1), dtype=np.float32).tofile(b_file)
    return paths


def reference_rows(x: np.ndarray, y: np.memmap, b: np.memmap, rows: int) -> np.ndarray:
    """The first rows of the result in float64, by NumPy, block by block."""
    total = np.zeros((rows, 1))
    for start in range(0, len(y), _WRITE_ROWS):
        block = np.asarray(y[start : start + _WRITE_ROWS], dtype=np.float64)
        weights = np.asarray(b[start : start + _WRITE_ROWS], dtype=np.float64)
        squared = ((x[:rows, None, :].astype(np.float64) - block[None]) ** 2).sum(-1)
        total += np.exp(-squared / 2) @ weights
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**8, help="source points (default 1e8)")
    parser.add_argument("--m", type=int, default=500, help="target points (default 500)")
    parser.add_argument("--budget-mib", type=int, default=256, help="memory budget of one chunk (MiB)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="keir-out-of-core-", dir="/tmp"))
    try:
        began = time.perf_counter()
        y_path, b_path = write_files(folder, args.n)
        written_s = time.perf_counter() - began
        y = np.memmap(y_path, dtype=np.float32, mode="r", shape=(args.n, 3))
        b = np.memmap(b_path, dtype=np.float32, mode="r", shape=(args.n, 1))
        x = np.random.default_rng(1).standard_normal((args.m, 3), dtype=np.float32)
        gauss = ((-Vi(x).sqdist(Vj(y)) / 2).exp() * Vj(b)).sum(axis=1, call=False)
        ((-Vi(x).sqdist(Vj(y[:64])) / 2).exp() * Vj(b[:64])).sum(axis=1)  # compile outside the timing
        before = current_rss_mib()
        options = StreamOptions(memory_budget_bytes=args.budget_mib << 20)
        began = time.perf_counter()
        out = streaming.reduce_in_chunks(gauss, options)
        seconds = time.perf_counter() - began
        peak = peak_rss_mib()
        check = reference_rows(x, y, b, 2)
        error = float(np.abs(out[:2] - check).max() / np.abs(check).max())
        chunk = streaming.chunk_rows(gauss, options.memory_budget_bytes)
        files_mib = (y_path.stat().st_size + b_path.stat().st_size) / 2**20
    finally:
        shutil.rmtree(folder)
    print(f"## Out of core: a Gaussian sum over memmapped float32 files ({cpu_description()})\n")
    print(markdown_table(
        ["N", "M", "files", "budget", "chunks", "time", "pairs/s", "RSS before", "peak RSS", "error (2 rows)"],
        [[f"{args.n:.0e}", str(args.m), f"{files_mib:.0f} MiB", f"{args.budget_mib} MiB",
          f"{-(-args.n // chunk)} x {chunk} rows", f"{seconds:.1f} s", f"{rate(args.n * args.m, seconds):.3g}e9",
          f"{before:.0f} MiB", f"{peak:.0f} MiB", f"{error:.1e}"]], right_from=0))
    print(f"\n(files written in {written_s:.1f} s, then deleted; peak RSS is the process's whole life, "
          "the writing and the check included)")


if __name__ == "__main__":
    main()
