"""`make bench`: one reduction over 1 and 2 gloo processes (keir.distributed), over Dask chunks (keir.dask),
and launched from two threads (device_ids' launches).

    .venv/bin/python benchmarks/scaling.py [--quick] [--max-processes 2]

The Gaussian sum out_i = sum_j exp(-|x_i - y_j|^2) b_j, float32, D = 3, M = N = 1e5 (--quick: 3e4):
- processes: P local gloo ranks, each holding M / P rows of x and N / P of y, b and running its kernels on
  cores / P threads; the forward, and forward + backward (gradients with respect to x, y and b); best of 3,
  the slowest rank's time;
- Dask: the threaded scheduler over x and y cut into C row chunks each (C^2 tasks, a merge tree per chunk
  of x), keir's threads shared by the tasks;
- threads: 2 x 400 small calls (500 x 500 pairs, D = 64, each run on its calling thread) made in sequence,
  then from two Python threads at once, which device_ids does: with the GIL released during a kernel, the
  second takes less time (minimums of interleaved repeats: the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import numpy as np
from common import Budget, available_cores, best_of, cpu_description, interleaved_minimums, markdown_table

REPEATS = 3


def data(size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((size, 3), dtype=np.float32), rng.random((size, 3), dtype=np.float32),
            rng.random((size, 1), dtype=np.float32)]


def rank_main(rank: int, world: int, port: int, size: int, threads: int) -> None:
    """One rank: time keir.distributed.reduce on its shard, print {"forward": s, "backward": s} as JSON."""
    import torch
    import torch.distributed as dist

    import keir.distributed
    from keir.torch import Vi, Vj

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    x, y, b = (torch.tensor(a[size * rank // world : size * (rank + 1) // world]).requires_grad_()
               for a in data(size))

    def forward():
        gauss = ((-Vi(x).sqdist(Vj(y))).exp() * Vj(b)).sum(axis=1, call=False, threads=threads)
        return keir.distributed.reduce(gauss)

    def both():
        forward().sum().backward()

    timings = {}
    for name, call in (("forward", lambda: forward().detach()), ("backward", both)):
        call()  # compile
        best = float("inf")
        for _ in range(REPEATS):
            dist.barrier()
            began = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - began)
        slowest = torch.tensor([best])
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        timings[name] = float(slowest)
    if rank == 0:
        print(json.dumps(timings))
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes(world: int, size: int) -> dict[str, float]:
    port, threads = free_port(), max(1, available_cores() // world)
    command = [sys.executable, __file__, "--rank-of", str(world), "--port", str(port), "--size", str(size),
               "--threads", str(threads)]
    ranks = [subprocess.Popen(command + ["--rank", str(r)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)}) for r in range(world)]
    outputs = [rank.communicate(timeout=600)[0] for rank in ranks]
    if any(rank.returncode for rank in ranks):
        raise RuntimeError(f"a rank failed: {outputs}")
    return json.loads(outputs[0].strip().splitlines()[-1])


def dask_chunks(size: int, chunks: int) -> float:
    import dask
    import dask.array as da

    import keir.dask
    from keir.numpy import Vi, Vj

    x, y, b = data(size)
    gauss = ((-Vi(0, 3).sqdist(Vj(1, 3))).exp() * Vj(2, 1)).sum(axis=1)
    rows = -(-size // chunks)
    arrays = [da.from_array(a, chunks=(rows, -1)) for a in (x, y, b)]
    with dask.config.set(scheduler="threads"):
        seconds, _ = best_of(lambda: keir.dask.reduce(gauss, *arrays).compute(), REPEATS)
    return seconds


def thread_launches() -> tuple[float, float]:
    from keir.numpy import Vi, Vj

    rng = np.random.default_rng(0)
    x, y = rng.random((500, 64), dtype=np.float32), rng.random((500, 64), dtype=np.float32)
    small = (-Vi(x).sqdist(Vj(y))).exp().sum(axis=1, call=False)  # below keir's pool threshold: no pool

    def calls(_: object = None) -> None:
        for _ in range(400):
            small()

    calls()
    with ThreadPoolExecutor(2) as pool:
        times = interleaved_minimums({"sequence": lambda: (calls(), calls()),
                                      "threads": lambda: list(pool.map(calls, range(2)))},
                                     Budget(seconds=4, min_repeats=3, max_repeats=9))
    return times["sequence"], times["threads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="M = N = 3e4")
    parser.add_argument("--max-processes", type=int, default=2, help="up to this many gloo ranks (default 2)")
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rank-of", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank is not None:
        rank_main(args.rank, args.rank_of, args.port, args.size, args.threads)
        return
    size = 30_000 if args.quick else 100_000
    print(f"## Scaling: the Gaussian sum, float32, D = 3, M = N = {size:.0e} ({cpu_description()})\n")
    worlds = [w for w in (1, 2, 4, 8) if w <= args.max_processes]
    timings = {world: processes(world, size) for world in worlds}
    print(markdown_table(["gloo processes", "threads each", "forward", "forward + backward"],
                         [[str(w), str(max(1, available_cores() // w)), f"{t['forward']:.3f} s",
                           f"{t['backward']:.3f} s"] for w, t in timings.items()], right_from=1))
    print()
    print(markdown_table(["Dask chunks of x and y", "tasks", "time (threads scheduler)"],
                         [[str(c), str(c * c), f"{dask_chunks(size, c):.3f} s"] for c in (1, 2, 4, 8)], right_from=1))
    in_sequence, in_threads = thread_launches()
    print()
    print(markdown_table(["2 x 400 calls of 500 x 500 pairs, D = 64", "time"],
                         [["in sequence", f"{in_sequence:.3f} s"], ["from two threads", f"{in_threads:.3f} s"]],
                         right_from=1))
    print(f"\nFrom two threads: {in_threads / in_sequence:.2f} of the time in sequence.")


if __name__ == "__main__":
    main()
