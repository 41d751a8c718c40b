"""`make bench`: K nearest neighbours, keir's argKmin against FAISS' exact IndexFlatL2, at equal threads.

    .venv/bin/python benchmarks/knn.py [--quick]

K = 10, float32, uniform points in the unit cube, queries = the data set (M = N), both at all cores: keir
`Vi(x).sqdist(Vj(x)).argKmin(10, axis=1)`, FAISS `IndexFlatL2(D).add(x); search(x, 10)` (faiss-cpu, from the
bench extra; the row says so when it is missing). Each time is the best of two calls. The neighbour sets are
compared through the distances of the K found for the first 2000 queries (ties may pick different indices):
the largest difference of the sorted distances, relative to the K-th distance, is printed.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import available_cores, best_of, cpu_description, markdown_table, three_digits

import keir.numpy as kn

K = 10
CASES = ((3, 100_000), (16, 100_000), (64, 50_000), (128, 50_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes divided by 10")
    args = parser.parse_args()
    threads = available_cores()
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        faiss = None
    print(f"# K-NN, K = {K}, float32, {threads} threads, {cpu_description()}\n")
    rows = []
    for dim, size in CASES:
        size = size // 10 if args.quick else size
        x = np.random.default_rng(dim).random((size, dim), dtype=np.float32)
        reduction = kn.Vi(x).sqdist(kn.Vj(x)).argKmin(K, axis=1, call=False)
        reduction()  # compile
        keir_time, found = best_of(reduction)
        if faiss is None:
            rows.append([str(dim), f"{size:.0e}", f"{keir_time:.2f} s", "not installed", "", ""])
            continue
        index = faiss.IndexFlatL2(dim)
        index.add(x)
        faiss_time, (_, faiss_found) = best_of(lambda index=index, x=x: index.search(x, K))
        sample = x[:2000, None, :]  # the check on the first 2000 queries
        keir_d = np.sort(((sample - x[found[:2000]]) ** 2).sum(-1), axis=1)
        faiss_d = np.sort(((sample - x[faiss_found[:2000]]) ** 2).sum(-1), axis=1)
        difference = float(np.abs(keir_d - faiss_d).max() / max(faiss_d[:, -1].max(), 1e-30))
        rows.append([str(dim), f"{size:.0e}", f"{keir_time:.2f} s", f"{faiss_time:.2f} s",
                     three_digits(faiss_time / keir_time) + "x", f"{difference:.1e}"])
    print(markdown_table(["D", "M = N", "keir", "FAISS IndexFlatL2", "keir speed-up", "distances differ by"], rows,
                         right_from=1))


if __name__ == "__main__":
    main()
