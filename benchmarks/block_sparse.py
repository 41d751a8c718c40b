"""`make bench`: block-sparse reductions (pykeops' ranges) against the dense reduction on the same data.

A truncated Gaussian sum_j exp(-|x_i - y_j|^2 / s^2) b_j on clustered points (M = N = 10^5, D = 3, float32,
all cores): the points are 400 Gaussian blobs in the unit cube, labelled by grid_cluster (cells of side 1/8:
about 200 points per cluster on average), sorted, and only the pairs of clusters whose centroids are nearest
are kept: 1 %, 5 % and 20 % of them (a threshold on the centroids' distance at that quantile). Each row gives
the time of one call with ranges (best of repeated calls, taken in turns with the dense call), the speed-up
over keir dense, the pairs of points computed, and the error of the truncation against dense float64 (on 300
rows), which shows that the kept blocks are the ones that matter.

    .venv/bin/python benchmarks/block_sparse.py [--size 100000] [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import Budget, cpu_description, interleaved_minimums, markdown_table, three_digits

import keir.numpy as kn
from keir.numpy.cluster import cluster_ranges_centroids, from_matrix, grid_cluster, sort_clusters

KEPT = (0.01, 0.05, 0.20)
TARGET = 10.0  # at 5 % kept: at least this much faster than dense


def clustered_points(rng: np.random.Generator, size: int) -> np.ndarray:
    centres = rng.random((400, 3))
    return (centres[rng.integers(0, 400, size)] + 0.03 * rng.standard_normal((size, 3))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="M = N = 2 * 10^4, fewer repeats")
    args = parser.parse_args()
    size = 20_000 if args.quick else args.size
    rng = np.random.default_rng(0)
    x, y = clustered_points(rng, size), clustered_points(rng, size)
    b = rng.standard_normal((size, 1)).astype(np.float32)
    x_labels, y_labels = grid_cluster(x, 1 / 8), grid_cluster(y, 1 / 8)
    x_ranges, x_centroids, _ = cluster_ranges_centroids(x, x_labels)
    y_ranges, y_centroids, _ = cluster_ranges_centroids(y, y_labels)
    x, _ = sort_clusters(x, x_labels)
    (y, b), _ = sort_clusters((y, b), y_labels)
    distances = ((x_centroids[:, None] - y_centroids[None]) ** 2).sum(-1)
    sigma = 0.05
    kernel = (-kn.Vi(x).sqdist(kn.Vj(y)) / sigma**2).exp() * kn.Vj(b)
    dense = kernel.sum(axis=1, call=False)
    budget = Budget(min_repeats=2 if args.quick else 3, max_repeats=10, seconds=2.0)
    check = slice(0, 300)
    x64, y64, b64 = x[check].astype(np.float64), y.astype(np.float64), b.astype(np.float64)
    exact = np.exp(-((x64[:, None] - y64[None]) ** 2).sum(-1) / sigma**2) @ b64
    scale = np.abs(exact).max()
    rows, speedups = [], {}
    print(f"# block-sparse: truncated Gaussian, M = N = {size}, D = 3, float32, {cpu_description()}")
    print(f"{len(x_ranges)} x {len(y_ranges)} clusters; sigma = {sigma}\n")
    for kept in KEPT:
        keep = distances <= np.quantile(distances, kept)
        ranges = from_matrix(x_ranges, y_ranges, keep)
        sparse = kernel.sum(axis=1, call=False, ranges=ranges)
        pairs = int(((x_ranges[:, 1] - x_ranges[:, 0])[:, None] * (y_ranges[:, 1] - y_ranges[:, 0])[None])[keep].sum())
        times = interleaved_minimums({"dense": dense, "sparse": sparse}, budget)
        error = np.abs(sparse()[check] - exact).max() / scale
        speedups[kept] = times["dense"] / times["sparse"]
        rows.append([f"{kept:.0%}", f"{pairs / size**2:.1%}", f"{times['dense'] * 1e3:.0f} ms",
                     f"{times['sparse'] * 1e3:.1f} ms", three_digits(speedups[kept]) + "x", f"{error:.1e}"])
    print(markdown_table(["cluster pairs kept", "point pairs computed", "keir dense", "keir ranges", "speed-up",
                          "truncation error"], rows, right_from=1))
    met = speedups[0.05] >= TARGET
    print(f"\ntarget: at 5 % kept, >= {TARGET:.0f}x faster than dense: {three_digits(speedups[0.05])}x "
          f"({'met' if met else 'MISSED'})")


if __name__ == "__main__":
    main()
