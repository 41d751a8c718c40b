"""The on-disk artifact cache across processes: found without recompiling (or importing MLIR), and safe when
several processes compile the same formula at once."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
import keir.numpy as kn
t1 = time.perf_counter()
rng = np.random.default_rng(0)
x, y, b = (rng.random(shape, dtype=np.float32) for shape in ((500, 3), (700, 3), (700, 1)))
out = ((-kn.Vi(x).sqdist(kn.Vj(y)) / 0.5).exp() * kn.Vj(b)).sum(axis=1)
t2 = time.perf_counter()
ref = np.exp(-((x[:, None, :].astype(float) - y[None].astype(float)) ** 2).sum(-1) / 0.5) @ b.astype(float)
print(json.dumps({"error": float(abs(out - ref).max() / abs(ref).max()), "mlir_imported": "mlir" in sys.modules,
                  "first_call_s": t2 - t1}))
"""


def _run(cache_dir, start=True):
    env = dict(os.environ, KEIR_CACHE_DIR=str(cache_dir))
    command = [sys.executable, "-c", SCRIPT]
    if start:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)


def test_second_process_loads_without_compiling(tmp_path):
    first = json.loads(_run(tmp_path, start=False).stdout)
    assert first["mlir_imported"] and first["error"] < 1e-5
    artifacts = [p for p in os.listdir(tmp_path) if p.endswith(".o")]
    assert len(artifacts) == 1 and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    second = json.loads(_run(tmp_path, start=False).stdout)
    assert not second["mlir_imported"], "a cached kernel must load without MLIR"
    assert second["error"] < 1e-5


def test_concurrent_compiles_of_one_formula(tmp_path):
    processes = [_run(tmp_path) for _ in range(3)]
    results = [json.loads(p.communicate()[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert all(r["error"] < 1e-5 for r in results)
    assert len([p for p in os.listdir(tmp_path) if p.endswith(".o")]) == 1
