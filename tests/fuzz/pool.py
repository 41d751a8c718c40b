"""Cases run in worker processes, so that an abort, a segfault or a hang of keir is a finding, not a dead run.

Each worker takes one case at a time; if it dies the case is a "crash" (with the signal and the tail of its
stderr), if it runs past the timeout it is killed and the case is a "hang"; a fresh worker takes the next case.
The timeout counts from the worker's START for the case, not from sending it: a fresh worker first imports torch,
keir and MLIR, which takes seconds more on a loaded machine (STARTUP_SECONDS bounds that).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 300.0  # a worker that has not started its case by then is stuck in its imports: a hang


class _Worker:
    def __init__(self, env: dict[str, str]):
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker"], cwd=REPO, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, bufsize=0, start_new_session=True)
        self.case: dict | None = None
        self.started = 0.0
        self.announced = False
        self.unread = b""  # received after the last complete line

    def send(self, case: dict) -> None:
        self.case, self.started, self.announced = case, time.monotonic(), False
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(case) + "\n").encode())

    def receive(self) -> list[str] | None:
        """The complete lines that have arrived (None once the worker has closed its end: it died). One read of
        the pipe's bytes: a buffered readline could leave a second line in its buffer, where select() no longer
        sees it (a fast case's outcome right behind its START then looked like a hang)."""
        assert self.process.stdout is not None
        chunk = os.read(self.process.stdout.fileno(), 1 << 16)
        if not chunk:
            return None
        *lines, self.unread = (self.unread + chunk).split(b"\n")
        return [line.decode() for line in lines]

    def stderr_tail(self) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - 3000))
        return self.stderr.read().decode(errors="replace")

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.stderr.close()


def _death(worker: _Worker) -> dict:
    code = worker.process.wait()
    if code < 0:
        try:
            how = f"signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"signal {-code}"
    else:
        how = f"exit code {code}"
    return {"class": "crash", "type": "process death", "message": f"worker died: {how}",
            "traceback": worker.stderr_tail()}


def worker_environment(cache_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"KEIR_CACHE_DIR": cache_dir, "KEIR_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", "")})
    return env


class Pool:
    """Worker processes kept between runs (a worker starts in seconds: imports of torch, keir and MLIR)."""

    def __init__(self, jobs: int = 2, timeout: float = 120.0, cache_dir: str | None = None):
        self.jobs, self.timeout = jobs, timeout
        self.env = worker_environment(cache_dir or tempfile.mkdtemp(prefix="keir-fuzz-cache-"))
        self.workers: list[_Worker] = []
        self.selector = selectors.DefaultSelector()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self.workers:
            self.selector.unregister(worker.process.stdout)
            worker.close()
        self.workers = []

    def _spawn(self) -> _Worker:
        worker = _Worker(self.env)
        self.selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        self.selector.unregister(worker.process.stdout)
        worker.close()
        self.workers.remove(worker)
        return self._spawn()

    def run(self, cases: Iterable[dict], on_outcome: Callable[[dict, dict], None] | None = None) -> list[tuple]:
        """Runs each case in a worker; returns [(case, outcome)] in completion order."""
        pending = list(cases)
        pending.reverse()
        while len(self.workers) < min(self.jobs, max(1, len(pending))):
            self._spawn()
        results: list[tuple] = []

        def finish(worker: _Worker, outcome: dict) -> None:
            outcome["seconds"] = round(time.monotonic() - worker.started, 3)
            assert worker.case is not None
            results.append((worker.case, outcome))
            if on_outcome:
                on_outcome(worker.case, outcome)
            worker.case = None

        def feed(worker: _Worker) -> None:
            if pending:
                worker.send(pending.pop())

        for worker in self.workers:
            feed(worker)
        while any(w.case is not None for w in self.workers):
            for key, _ in self.selector.select(timeout=0.5):
                worker = key.data
                lines = worker.receive()
                if lines is None:  # the worker died
                    if worker.case is not None:
                        finish(worker, _death(worker))
                    feed(self._replace(worker))
                    continue
                for line in lines:
                    if line.strip() == "START":
                        worker.announced, worker.started = True, time.monotonic()
                    else:
                        finish(worker, json.loads(line))
                        feed(worker)
            now = time.monotonic()
            for worker in list(self.workers):
                limit = self.timeout if worker.announced else STARTUP_SECONDS
                if worker.case is not None and now - worker.started > limit:
                    worker.kill()
                    finish(worker, {"class": "hang", "message": f"no answer after {limit:.0f} s",
                                    "traceback": worker.stderr_tail()})
                    feed(self._replace(worker))
        return results


def run_cases(cases: Iterable[dict], jobs: int = 2, timeout: float = 120.0,
              on_outcome: Callable[[dict, dict], None] | None = None, cache_dir: str | None = None) -> list[tuple]:
    """Runs each case in a worker of a fresh pool; returns [(case, outcome)] in completion order."""
    with Pool(jobs, timeout, cache_dir) as pool:
        return pool.run(cases, on_outcome)
