"""One rank of tests/api/test_distributed.py: `python distributed_worker.py RANK WORLD PORT SCENARIO OUT`.

Every rank draws the same full data (a fixed seed), keeps its rows (uneven cuts, a rank with no j rows when
there are four), runs each case through keir.distributed and, for reference, through one ordinary keir call
on the full data, and saves both (outputs, and gradients of the sum of the ranks' losses) to OUT/rank{R}.npz.
Scenarios: "cases" (every kind), "mismatch" (rank 1's x and y have another dimension), "failure" (rank 1 raises in
the middle of the forward and stays alive, so that rank 0's backward waits for it until the timeout)."""

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import keir.distributed
from keir import sharding
from keir.torch import Pm, Vi, Vj

M, N = 9, 10
# per world size, the cuts of the M rows of x (i) and of the N rows of y, b (j)
CUTS = {2: ([0, 4, 9], [0, 7, 10]), 3: ([0, 2, 5, 9], [0, 1, 6, 10]), 4: ([0, 1, 4, 6, 9], [0, 3, 3, 8, 10])}
# every rank needs an output row: where the output rows are those of y (a reduction over i), no empty j shard
OUTPUT_J_CUTS = {4: [0, 3, 4, 8, 10]}
TIMEOUT_S = 4

# name: (the reduction of x (i), y, b (j), sigma (a parameter), whether it is differentiable)
CASES = {
    "sum": (lambda x, y, b, s: ((-Vi(x).sqdist(Vj(y)) * Pm(s)).exp() * Vj(b)).sum(axis=1, call=False), True),
    "sum_over_i": (lambda x, y, b, s: ((-Vi(x).sqdist(Vj(y))).exp() * Vi(x)).sum(axis=0, call=False), True),
    "min": (lambda x, y, b, s: (Vi(x) - Vj(y)).min(axis=1, call=False), True),
    "max": (lambda x, y, b, s: (Vi(x).sqdist(Vj(y)) * Vj(b)).max(axis=1, call=False), True),
    "argmin": (lambda x, y, b, s: Vi(x).sqdist(Vj(y)).argmin(axis=1, call=False), False),
    "argmax": (lambda x, y, b, s: (Vi(x) - Vj(y)).argmax(axis=1, call=False), False),
    "min_argmin": (lambda x, y, b, s: Vi(x).sqdist(Vj(y)).min_argmin(axis=1, call=False), False),
    "max_argmax": (lambda x, y, b, s: Vi(x).sqdist(Vj(y)).max_argmax(axis=1, call=False), False),
    "kmin": (lambda x, y, b, s: Vi(x).sqdist(Vj(y)).Kmin(3, axis=1, call=False), False),
    "argkmin": (lambda x, y, b, s: (Vi(x) - Vj(y)).argKmin(4, axis=1, call=False), False),
    "kmin_argkmin": (lambda x, y, b, s: Vi(x).sqdist(Vj(y)).Kmin_argKmin(2, axis=1, call=False), False),
    "logsumexp": (lambda x, y, b, s: (-Vi(x).sqdist(Vj(y))).logsumexp(axis=1, call=False), True),
    "logsumexp_weight": (lambda x, y, b, s: (-Vi(x).sqdist(Vj(y))).logsumexp(axis=1, weight=Vj(b.abs() + 0.1),
                                                                               call=False), True),
    "sumsoftmaxweight": (lambda x, y, b, s: (-Vi(x).sqdist(Vj(y))).sumsoftmaxweight(Vj(b), axis=1, call=False),
                         False),
    # symbolic variables: the reduction is given its arrays by keir.distributed.reduce (and by its own call)
    "symbolic": (lambda x, y, b, s: ((-Vi(0, 2).sqdist(Vj(1, 2))).exp() * Vj(2, 2)).sum(axis=1), True),
}
SYMBOLIC = {"symbolic"}
# also run with the slices all-gathered (the default for slices this small; the others take the ring)
GATHERED = ("sum", "sum_over_i", "min", "kmin_argkmin", "sumsoftmaxweight", "symbolic")
RING = keir.distributed.DistributedOptions(all_gather_below_bytes=0)


def data(seed=0):
    rng = np.random.default_rng(seed)
    x, y, b = rng.standard_normal((M, 2)), rng.standard_normal((N, 2)), rng.standard_normal((N, 2))
    return [torch.tensor(a) for a in (x, y, b, np.array([0.7]))]


def tensors(arrays, differentiable):
    return [a.clone().requires_grad_(differentiable) for a in arrays]


def run_case(name, rank, world, saved, options=RING):
    build, differentiable = CASES[name]
    full = tensors(data(), differentiable)
    x_cut, y_cut = CUTS[world]
    reduction = build(*full)
    kept = sharding.kept_category(reduction)  # over i the roles swap: x reduced, the output rows those of y
    y_cut = OUTPUT_J_CUTS.get(world, y_cut) if kept == "j" else y_cut
    cuts = {"i": x_cut, "j": y_cut}
    shard = tensors([full[0].detach()[x_cut[rank]:x_cut[rank + 1]], full[1].detach()[y_cut[rank]:y_cut[rank + 1]],
                     full[2].detach()[y_cut[rank]:y_cut[rank + 1]], full[3].detach()], differentiable)
    if name in SYMBOLIC:
        result, reference = keir.distributed.reduce(reduction, *shard[:3], options=options), reduction(*full[:3])
    else:
        result, reference = keir.distributed.reduce(build(*shard), options=options), reduction()
    name = name if options is RING else f"{name}@gather"
    rows = slice(cuts[kept][rank], cuts[kept][rank + 1])
    outputs = result if isinstance(result, tuple) else (result,)
    references = reference if isinstance(reference, tuple) else (reference,)
    for k, (got, expected) in enumerate(zip(outputs, references)):
        saved[f"{name}/out{k}"] = got.detach().numpy()
        saved[f"{name}/ref{k}"] = expected.detach()[rows].numpy()
    if differentiable:
        weights = torch.tensor(np.random.default_rng(1).standard_normal(tuple(reference.shape)))
        (outputs[0] * weights[rows]).sum().backward()
        (references[0] * weights).sum().backward()
        for label, local, whole, cut in zip("xybs", shard, full, (x_cut, y_cut, y_cut, None)):
            expected = torch.zeros_like(whole) if whole.grad is None else whole.grad  # b unused: no gradient
            expected = expected if cut is None else expected[cut[rank]:cut[rank + 1]]
            saved[f"{name}/grad_{label}"] = (torch.zeros_like(local) if local.grad is None else local.grad).numpy()
            saved[f"{name}/refgrad_{label}"] = expected.numpy()


def main():
    rank, world, port, scenario, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], Path(sys.argv[5])
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=TIMEOUT_S))
    report = {"rank": rank}
    if scenario == "cases":
        saved = {}
        for name in CASES:
            run_case(name, rank, world, saved)
        for name in GATHERED:
            run_case(name, rank, world, saved, keir.distributed.DistributedOptions())
        np.savez(out / f"rank{rank}.npz", **saved)
    else:
        x, y, b, _ = data()
        if scenario == "mismatch" and rank == 1:  # a formula of dimension 3 here, of dimension 2 elsewhere
            x, y = torch.cat([x, x[:, :1]], 1), torch.cat([y, y[:, :1]], 1)
        y = y.requires_grad_()
        if scenario == "failure" and rank == 1:
            def fail(*args, **kwargs):
                raise RuntimeError("rank 1 fails on purpose")

            sharding.state_of = fail
        start = time.perf_counter()
        try:
            out_rows = keir.distributed.reduce((-Vi(x).sqdist(Vj(y))).exp().sum(axis=1, call=False))
            out_rows.sum().backward()
            report["error"] = None
        except Exception as error:  # the test checks what each rank raised
            report["error"], report["message"] = type(error).__name__, str(error)
        report["seconds"] = time.perf_counter() - start
        (out / f"rank{rank}.json").write_text(json.dumps(report))
        if scenario == "failure" and rank == 1:
            time.sleep(2 * TIMEOUT_S)  # alive and silent: rank 0 must not wait for it longer than the timeout
            return  # without destroying the group, whose peers are gone or failing
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
