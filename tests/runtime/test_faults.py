"""Resources and faults: memory that stays bounded, no M x N buffer, a damaged or unwritable artifact cache,
concurrent callers, and Ctrl-C during a long call.

Memory is read as resident set size from /proc/self/statm; tests that need a clean process (memory caps,
signals, first loads from disk) run a script in a subprocess with their own artifact cache.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import keir.numpy as kn
from keir.runtime import cache

ROOT = Path(__file__).resolve().parents[2]

# Shared by the scripts run in subprocesses: data, the Gaussian sum and its float64 reference.
PRELUDE = r"""
import json, os, sys, time
import numpy as np
import keir.numpy as kn

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def data(m, n, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return rng.random((m, 3), dtype=f32), rng.random((n, 3), dtype=f32), rng.random((n, 1), dtype=f32)

def gauss(x, y, b, c=1.0, threads=None):
    return ((-kn.Vi(x).sqdist(kn.Vj(y)) * c).exp() * kn.Vj(b)).sum(axis=1, threads=threads)

def reference(x, y, b, c=1.0):
    x, y, b = (a.astype(np.float64) for a in (x, y, b))
    return np.exp(-((x[:, None, :] - y[None]) ** 2).sum(-1) * c) @ b

def relative_error(out, ref):
    return float(abs(out - ref).max() / abs(ref).max())
"""


def _script(body: str, cache_dir: Path, *args: str, timeout: float = 120) -> dict:
    """Run PRELUDE + body in a fresh Python with its own artifact cache; body prints one JSON line last."""
    env = dict(os.environ, KEIR_CACHE_DIR=str(cache_dir))
    result = subprocess.run([sys.executable, "-c", PRELUDE + body, *args], env=env, cwd=ROOT, timeout=timeout,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _data(m: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.random((m, 3), dtype=np.float32), rng.random((n, 3), dtype=np.float32),
            rng.random((n, 1), dtype=np.float32))


def _gauss(x: np.ndarray, y: np.ndarray, b: np.ndarray, c: float, threads: int | None = None) -> np.ndarray:
    return ((-kn.Vi(x).sqdist(kn.Vj(y)) * c).exp() * kn.Vj(b)).sum(axis=1, threads=threads)


def _reference(x: np.ndarray, y: np.ndarray, b: np.ndarray, c: float) -> np.ndarray:
    x, y, b = (a.astype(np.float64) for a in (x, y, b))
    return np.exp(-((x[:, None, :] - y[None]) ** 2).sum(-1) * c) @ b


def _relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    return float(abs(out - ref).max() / abs(ref).max())


# --- 1. resident memory --------------------------------------------------------------------------------------

def test_no_memory_growth_over_many_calls_of_a_cached_kernel():
    """10^4 inline calls (M = N = 100) and 300 calls on the thread pool (M = N = 600) of one cached kernel,
    formula rebuilt each time: resident memory grows by less than 1 MiB (measured: 0). The slack covers
    allocator noise (a page here and there), not anything per call: 1 MiB over 10^4 calls is 100 bytes a call."""
    small, large = _data(100, 100), _data(600, 600, seed=1)
    for _ in range(100):  # warm: kernel loaded, layouts cached, pool threads and their malloc arenas made
        _gauss(*small, 1.25)
        _gauss(*large, 1.25)
    before = _rss()
    for k in range(10_000):
        out = _gauss(*small, 1.25)
        if k % 33 == 0:
            big = _gauss(*large, 1.25)
    growth = _rss() - before
    assert growth < 1 << 20, f"resident memory grew by {growth / 1024:.0f} KiB over 10^4 calls"
    assert _relative_error(out, _reference(*small, 1.25)) < 1e-5
    assert _relative_error(big, _reference(*large, 1.25)) < 1e-5


DISTINCT = r"""
count, warm = int(sys.argv[1]), int(sys.argv[2])
x, y, _ = data(64, 64)
d2 = ((x[:, None, :].astype(np.float64) - y[None]) ** 2).sum(-1)
worst = 0.0
for k in range(count):
    if k == warm:
        before = rss()
    out = (kn.Vi(x).sqdist(kn.Vj(y)) + (k + 0.5)).sum(axis=1)  # the cheapest formulas to compile
    worst = max(worst, relative_error(out, (d2 + (k + 0.5)).sum(1, keepdims=True)))
from pathlib import Path
sizes = [path.stat().st_size for path in Path(os.environ["KEIR_CACHE_DIR"]).glob("*.o")]
print(json.dumps({"per_kernel": (rss() - before) / (count - warm), "error": worst,
                  "mlir": "mlir" in sys.modules, "object_size": max(sizes)}))
"""

DISTINCT_COUNT, DISTINCT_WARM = 24, 4


def _per_kernel_bound(object_size: int) -> int:
    """Documented in the README: a kernel loaded in a process stays loaded (MCJIT cannot unload code). Each
    costs about 2.7 times its object file in resident memory (its sections, each rounded up to pages, and the
    copy of the object that MCJIT keeps), measured 17 KiB for a 4 KiB object and 63 KiB for the 24 KiB
    Gaussian sum; 3 times, plus 8 KiB for the Python objects, is the bound asserted."""
    return 3 * object_size + (8 << 10)


@pytest.fixture(scope="module")
def compiled_distinct_formulas(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """24 formulas differing by a constant, compiled into a fresh cache by one process."""
    folder = tmp_path_factory.mktemp("distinct")
    figures = _script(DISTINCT, folder, str(DISTINCT_COUNT), str(DISTINCT_WARM))
    assert figures["mlir"] and figures["error"] < 1e-5
    return folder, figures


def test_distinct_formulas_loaded_from_the_cache_cost_a_bounded_amount_each(compiled_distinct_formulas):
    """A second process loads the 20 distinct kernels (after 4 to warm up) from disk: resident memory grows by
    less than _per_kernel_bound. The in-process caches that a new formula
    passes through are bounded (lru_caches of 512-4096 formula nodes, weak intern table); the kernel table
    keeps every kernel used, which is this per-kernel cost. The scale test below takes it to 10^3 kernels."""
    folder, _ = compiled_distinct_formulas
    figures = _script(DISTINCT, folder, str(DISTINCT_COUNT), str(DISTINCT_WARM))
    assert not figures["mlir"], "the kernels should have loaded from the cache"
    assert figures["error"] < 1e-5
    bound = _per_kernel_bound(figures["object_size"])
    assert figures["per_kernel"] < bound, f"{figures['per_kernel'] / 1024:.1f} KiB per kernel, bound {bound >> 10}"


@pytest.mark.xfail(strict=True, reason="llvmlite 0.50's O3 pipeline (LLVMPY_RunNewModulePassManager) keeps ~200 KiB "
                   "per run (its pass builder's instrumentation callbacks are never freed), so each compile in "
                   "compiler/codegen.py leaks that much: an upstream leak, not keir's")
def test_distinct_formulas_compiled_in_process_cost_a_bounded_amount_each(compiled_distinct_formulas):
    """The same bound for kernels compiled in the process (MLIR and LLVM run each time)."""
    _, figures = compiled_distinct_formulas
    bound = _per_kernel_bound(figures["object_size"])
    assert figures["per_kernel"] < bound, f"{figures['per_kernel'] / 1024:.1f} KiB per kernel, bound {bound >> 10}"


THOUSAND_KERNELS = r"""
from dataclasses import replace
from pathlib import Path
from keir import kernels
from keir.runtime import cache
from keir.runtime.cpu_loader import load_symbol

x, y, b = data(40, 40)
reduction = ((-kn.Vi(x).sqdist(kn.Vj(y)) * 0.75).exp() * kn.Vj(b)).sum(axis=1, call=False)
kernel = kernels.cpu_kernel(reduction.root, reduction.dtype)
first = kernel([x, y, b], 40, 40)[0]
assert relative_error(first, reference(x, y, b, 0.75)) < 1e-5
(artifact,) = Path(os.environ["KEIR_CACHE_DIR"]).glob("*.o")
object_code = cache.load(artifact.stem)
symbol = ("keir_" + artifact.stem[:24]).encode()
assert object_code.count(symbol) >= 1
count, warm = 1000, 200
for k in range(count):
    if k == warm:
        before = rss()
    # the same code under another symbol name (of the same length): to the loader, a distinct kernel
    name = f"keir_{k:024x}".encode()
    copy = replace(kernel, address=load_symbol(object_code.replace(symbol, name), name.decode()))
    out = copy([x, y, b], 40, 40)[0]
    assert (out == first).all()
print(json.dumps({"per_kernel": (rss() - before) / (count - warm), "object_size": len(object_code)}))
"""


def test_a_thousand_distinct_kernels_cost_a_bounded_amount_each(tmp_path):
    """10^3 distinct kernels loaded and called in one process, without compiling 10^3 formulas (which would
    take minutes): one compiled artifact is loaded under 10^3 symbol names, each a separate object for the
    loader. Growth per kernel over the last 800 stays under _per_kernel_bound (measured: 63 KiB
    for this 24 KiB object), so memory is
    linear in the number of distinct kernels with that constant, and nothing grows per call."""
    figures = _script(THOUSAND_KERNELS, tmp_path)
    bound = _per_kernel_bound(figures["object_size"])
    assert figures["per_kernel"] < bound, f"{figures['per_kernel'] / 1024:.1f} KiB per kernel, bound {bound >> 10}"


# --- 2. no M x N allocation ----------------------------------------------------------------------------------

CAPPED = r"""
import resource
m, n = 10**6, 512
x, y, b = data(m, n)
gauss(x[:20000], y, b)  # compiles, starts the pool threads (and their allocator arenas) before the cap
with open("/proc/self/statm") as f:
    size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
headroom = 256 << 20
resource.setrlimit(resource.RLIMIT_AS, (size + headroom, resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    np.empty((m, n), dtype=np.bool_)  # 512 MB, more than the headroom: the cap must refuse it
    capped = False
except MemoryError:
    capped = True
start = time.perf_counter()
out = gauss(x, y, b)
seconds = time.perf_counter() - start
rows = np.random.default_rng(1).choice(m, 2000, replace=False)
print(json.dumps({"capped": capped, "seconds": seconds, "headroom": headroom, "shape": out.shape,
                  "error": relative_error(out[rows], reference(x[rows], y, b))}))
"""


def test_no_allocation_proportional_to_m_times_n(tmp_path):
    """M = 10^6, N = 512 (5e8 pairs, one or two seconds; M = N = 10^6, 10^12 pairs, would take many minutes
    on this CPU) under an address-space cap of the process's size plus 256 MiB, set after warming up: an
    M x N array of even one byte per pair (512 MB) cannot be allocated, reserved or not, and the call still
    succeeds. This proves there is no buffer of M x N entries (nor of M x N / 2: 256 MiB is all the room);
    it does not time the M = N = 10^6 case, whose buffers (inputs, output) are of size M or N as here."""
    figures = _script(CAPPED, tmp_path)
    assert figures["capped"], "the address-space cap did not stop an M x N allocation: the test proves nothing"
    assert figures["shape"] == [10**6, 1]
    assert figures["error"] < 1e-5


# --- 3. damaged artifacts ------------------------------------------------------------------------------------

def _damaged_variants(stored: bytes) -> dict[str, bytes]:
    header = stored.index(b"\n") + 1
    flipped = bytearray(stored)
    flipped[len(stored) // 2] ^= 0x40
    return {"truncated": stored[: len(stored) // 2], "one bit flipped": bytes(flipped), "empty": b"",
            "header only": stored[:header], "unchecksummed (old format)": stored[header:],
            "header cut short": stored[: header - 1]}


@pytest.mark.parametrize("damage", list(_damaged_variants(b"header\n" + b"x" * 100)))
def test_a_damaged_artifact_is_not_loaded(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("KEIR_CACHE_DIR", str(tmp_path))
    payload = os.urandom(4096)
    cache.store("k", payload)
    path = tmp_path / "k.o"
    assert cache.load("k") == payload
    path.write_bytes(_damaged_variants(path.read_bytes())[damage])
    with pytest.warns(cache.CacheWarning, match="damaged"):
        assert cache.load("k") is None
    assert not path.exists(), "the damaged file should be removed, to be replaced by the recompiled one"


DAMAGED = r"""
import warnings
warnings.simplefilter("always")
x, y, b = data(300, 200)
with warnings.catch_warnings(record=True) as caught:
    out = gauss(x, y, b, 2.5)
print(json.dumps({"error": relative_error(out, reference(x, y, b, 2.5)), "mlir": "mlir" in sys.modules,
                  "warnings": [str(w.message) for w in caught]}))
"""


def test_a_truncated_kernel_is_recompiled_with_a_warning(tmp_path):
    """End to end: a process compiles the kernel; its object file is then cut in half (as a full disk or a
    killed writer would leave it); the next process warns, recompiles (imports MLIR), gets the right answer
    and leaves a whole artifact in its place."""
    first = _script(DAMAGED, tmp_path)
    assert first["mlir"] and not first["warnings"]
    (artifact,) = tmp_path.glob("*.o")
    artifact.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])
    second = _script(DAMAGED, tmp_path)
    assert second["error"] < 1e-5 and second["mlir"], "the kernel should have been compiled again"
    assert len(second["warnings"]) == 1 and "damaged" in second["warnings"][0], second["warnings"]
    (replaced,) = tmp_path.glob("*.o")
    assert cache._verified_payload(replaced.read_bytes()) is not None


# --- 4. unwritable cache -------------------------------------------------------------------------------------

def _two_new_formulas_work(c: float) -> list[warnings.WarningMessage]:
    """Compute two formulas this process has not seen (constants c, c + 1); the warnings they raised."""
    x, y, b = _data(50, 70)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for constant in (c, c + 1):
            assert _relative_error(_gauss(x, y, b, constant), _reference(x, y, b, constant)) < 1e-5
    return [w for w in caught if issubclass(w.category, cache.CacheWarning)]


def test_a_cache_folder_that_cannot_be_made_still_works(tmp_path, monkeypatch):
    """KEIR_CACHE_DIR under a regular file: the folder cannot be created (a real ENOTDIR from the OS, which,
    unlike chmod, stops root too). Kernels compile in memory; one warning for two kernels."""
    (tmp_path / "file").write_text("in the way")
    monkeypatch.setenv("KEIR_CACHE_DIR", str(tmp_path / "file" / "cache"))
    caught = _two_new_formulas_work(3.125)
    assert len(caught) == 1 and "cannot write" in str(caught[0].message), [str(w.message) for w in caught]


def test_a_read_only_cache_folder_still_works(tmp_path, monkeypatch):
    """A folder that even root cannot write to: chmod does not stop root, the immutable attribute
    (chattr +i, ext4/xfs, needs CAP_LINUX_IMMUTABLE) does. Kernels compile in memory; one warning for two."""
    folder = tmp_path / "cache"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (not root, or a filesystem without the attribute)")
    try:
        if os.access(folder, os.W_OK) and _can_create_in(folder):
            pytest.skip("the immutable attribute did not make the folder read-only")
        monkeypatch.setenv("KEIR_CACHE_DIR", str(folder))
        caught = _two_new_formulas_work(4.625)
        assert len(caught) == 1 and "cannot write" in str(caught[0].message), [str(w.message) for w in caught]
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def _can_create_in(folder: Path) -> bool:
    try:
        (folder / "probe").touch()
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_a_full_disk_still_works(tmp_path, monkeypatch):
    """ENOSPC halfway through writing an artifact (simulated): kernels compile in memory, one warning for two
    kernels, and neither a partial artifact nor a temporary file is left behind."""
    def full_disk(fd: int, content: bytes) -> None:
        os.write(fd, content[: len(content) // 2])
        os.close(fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setenv("KEIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_write_file", full_disk)
    caught = _two_new_formulas_work(5.375)
    assert len(caught) == 1 and "No space left" in str(caught[0].message), [str(w.message) for w in caught]
    assert list(tmp_path.iterdir()) == []


# --- 5. concurrent callers -----------------------------------------------------------------------------------

def test_threads_calling_reductions_at_once(tmp_path, monkeypatch):
    """8 Python threads released together: all compile one new formula at once (a first-compile race), then
    each works through its own formula (4 more new ones, shared by pairs of threads) and the shared one, at a
    size run inline and at one run on the thread pool, 5 rounds. Every result matches NumPy float64."""
    monkeypatch.setenv("KEIR_CACHE_DIR", str(tmp_path))  # empty: the first calls really compile
    small, large = _data(90, 110, seed=2), _data(700, 500, seed=3)
    shared, own = 7.0625, [7.5625 + k for k in range(4)]
    references = {(c, s): _reference(*data, c) for c in [shared, *own] for s, data in (("s", small), ("l", large))}
    start, errors = threading.Barrier(8), []

    def work(index: int) -> None:
        try:
            start.wait()
            plan = [(shared, "l"), (shared, "s")] + [(own[index % 4], s) for s in "sl"] * 2 + [(shared, "l")] * 2
            for _ in range(5):
                for c, size in plan:
                    out = _gauss(*(small if size == "s" else large), c)
                    error = _relative_error(out, references[(c, size)])
                    if not error < 1e-5:
                        errors.append(f"thread {index}, constant {c}, size {size}: error {error}")
        except BaseException as failure:  # noqa: B036 - reported below, in the test's thread
            errors.append(f"thread {index}: {failure!r}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    assert not errors, errors


# --- 6. Ctrl-C -----------------------------------------------------------------------------------------------

INTERRUPTED = r"""
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
# 2.25e10 pairs per two cores: several seconds with any thread count, so the signal comes mid-call
big = data(150_000 * max(1, len(os.sched_getaffinity(0)) // 2), 150_000)
small, medium = data(100, 100, seed=1), data(800, 800, seed=2)
gauss(*small); gauss(*medium); gauss(*medium, threads=1)  # compiled, pools started
report = {}
for threads in (None, 1):
    print("start", flush=True)
    started = time.monotonic()
    try:
        gauss(*big, threads=threads)
        outcome = "completed"
    except KeyboardInterrupt:
        outcome = "interrupted"
    stopped = time.monotonic()
    errors = [relative_error(gauss(*medium), reference(*medium)), relative_error(gauss(*small), reference(*small)),
              relative_error(gauss(*medium, threads=threads), reference(*medium))]
    report[str(threads)] = {"outcome": outcome, "stopped": stopped, "started": started, "errors": errors,
                            "next_calls_s": time.monotonic() - stopped}
print(json.dumps(report), flush=True)
"""


def test_ctrl_c_during_a_long_call(tmp_path):
    """A long reduction (2.25e10 pairs per two cores) in a subprocess gets SIGINT 0.5 s in, on the thread pool with the
    default thread count and with threads=1: KeyboardInterrupt comes within 1 s of the signal, the next
    reductions in that process are right, and they are not kept waiting behind the cancelled blocks. (Before
    the fix, threads=1 ran the whole call in one ctypes call that no signal interrupts, and an interrupted
    pool call freed its arrays under the running blocks: the process died of SIGSEGV.)"""
    env = dict(os.environ, KEIR_CACHE_DIR=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", PRELUDE + INTERRUPTED], env=env, cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    signalled = []
    try:
        for _ in range(2):
            assert child.stdout.readline().strip() == "start"
            time.sleep(0.5)
            signalled.append(time.monotonic())
            child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    for (threads, figures), sent in zip(report.items(), signalled):
        assert figures["outcome"] == "interrupted", (threads, figures)
        latency = figures["stopped"] - sent
        assert latency < 1.0, f"threads={threads}: KeyboardInterrupt came {latency:.2f} s after SIGINT"
        assert max(figures["errors"]) < 1e-5, (threads, figures)
        assert figures["next_calls_s"] < 2.0, f"threads={threads}: the next calls waited {figures['next_calls_s']} s"
