"""keir.distributed over 2 and 4 local gloo processes (tests/api/distributed_worker.py): every reduction kind,
and the gradients of the differentiable ones, equal one ordinary keir call on the full data (slices passed
around the ring, and all-gathered); mismatched shards
raise the same ValueError on every rank; a rank that fails mid-call makes its peer raise within the timeout."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")
sys.path.insert(0, str(WORKER.parent))
from distributed_worker import CASES, GATHERED, TIMEOUT_S  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(world: int, scenario: str, out: Path, limit_s: float = 80) -> list[subprocess.CompletedProcess]:
    """The ranks of one scenario, run at once (they share the test session's KEIR_CACHE_DIR: no rank
    recompiles what another compiled)."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, str(WORKER), str(rank), str(world), str(port), scenario, str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for rank in range(world)]
    outputs = []
    for process in ranks:
        try:
            stdout, _ = process.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            for other in ranks:
                other.kill()
            raise AssertionError(f"{scenario} with {world} ranks hung past {limit_s} s") from None
        outputs.append((process.returncode, stdout))
    return outputs


@pytest.mark.parametrize("world", [2, 4])
def test_every_kind_sharded_over_ranks_equals_one_call(world, tmp_path):
    for rank, (code, log) in enumerate(_run(world, "cases", tmp_path)):
        assert code == 0, f"rank {rank} failed:\n{log}"
    checked = set()
    for rank in range(world):
        saved = np.load(tmp_path / f"rank{rank}.npz")
        for key in saved.files:
            name, entry = key.split("/")
            if entry.startswith("ref"):
                continue
            reference = saved[f"{name}/ref{entry[3:]}" if entry.startswith("out") else f"{name}/refgrad_{entry[5:]}"]
            assert saved[key].shape == reference.shape, (rank, key)
            if saved[key].dtype.kind == "i":
                np.testing.assert_array_equal(saved[key], reference, err_msg=f"rank {rank} {key}")
            else:
                np.testing.assert_allclose(saved[key], reference, rtol=1e-12, atol=1e-13, err_msg=f"rank {rank} {key}")
            checked.add(key)
    differentiable = [name for name, (_, grad) in CASES.items() if grad]
    assert {f"{name}/out0" for name in CASES} | {f"{name}@gather/out0" for name in GATHERED} <= checked
    assert {f"{name}/grad_{v}" for name in differentiable for v in "xybs"} <= checked
    assert {f"{name}@gather/grad_{v}" for name in GATHERED if CASES[name][1] for v in "xybs"} <= checked


def _reports(out: Path, world: int) -> list[dict]:
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(world)]


def test_mismatched_shards_raise_the_same_error_on_every_rank(tmp_path):
    _run(2, "mismatch", tmp_path)
    for report in _reports(tmp_path, 2):
        assert report["error"] == "ValueError", report
        assert "shards disagree on their formula" in report["message"]


def test_a_rank_failing_mid_call_makes_the_others_raise_not_hang(tmp_path):
    start = time.perf_counter()
    _run(2, "failure", tmp_path)
    survivor, failing = _reports(tmp_path, 2)
    assert failing["error"] == "RuntimeError" and "on purpose" in failing["message"]
    assert survivor["error"] == "PeerError", survivor
    assert survivor["seconds"] < TIMEOUT_S + 10
    assert time.perf_counter() - start < 60


def test_bad_calls_are_refused_before_any_collective():
    import torch

    import keir.distributed
    from keir.numpy import Vi as NumpyVi
    from keir.numpy import Vj as NumpyVj
    from keir.torch import Vi, Vj

    x = np.random.default_rng(0).standard_normal((4, 2))
    with pytest.raises(TypeError, match="torch tensors"):
        keir.distributed.reduce(NumpyVi(x).sqdist(NumpyVj(x)).sum(axis=1, call=False))
    t = torch.tensor(x)
    with pytest.raises(ValueError, match="pass one or the other"):
        keir.distributed.reduce(Vi(t).sqdist(Vj(t)).sum(axis=1, call=False), t)
