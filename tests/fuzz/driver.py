"""A fuzzing run: generate cases, run them in workers, group the failures, shrink one case per signature."""

from __future__ import annotations

import sys
import tempfile
import time

from . import report
from .generate import random_case
from .pool import Pool
from .shrink import shrink
from .signatures import signature


def run(cases: int, seed: int, start: int = 0, jobs: int = 2, timeout: float = 120.0, shrink_budget: int = 30,
        progress: bool = True, profile: str = "full") -> tuple[str, list[tuple[dict, dict]], dict]:
    """Returns (summary text, [(case, outcome)], {signature: [(case, outcome)]})."""
    began = time.monotonic()
    cache_dir = tempfile.mkdtemp(prefix="keir-fuzz-cache-")
    done = [0]

    def tick(case: dict, outcome: dict) -> None:
        done[0] += 1
        if progress and (done[0] % 50 == 0 or done[0] == cases):
            print(f"  {done[0]}/{cases} cases, {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)

    generated = [random_case(seed, index, profile) for index in range(start, start + cases)]
    with Pool(jobs, timeout, cache_dir) as pool:
        results = pool.run(generated, on_outcome=tick)
        return _summarise(results, pool, jobs, shrink_budget, began)


def _summarise(results: list[tuple[dict, dict]], pool: Pool, jobs: int, shrink_budget: int,
               began: float) -> tuple[str, list[tuple[dict, dict]], dict]:
    results.sort(key=lambda item: item[0]["index"])
    groups: dict[str, list[tuple[dict, dict]]] = {}
    for case, outcome in report.failures(results):
        groups.setdefault(signature(case, outcome), []).append((case, outcome))
    shrunk: dict[str, tuple[dict, dict]] = {}
    if shrink_budget > 0:
        def runner(batch: list[dict]) -> list[dict]:
            finished = {id(c): o for c, o in pool.run(batch)}
            return [finished[id(c)] for c in batch]

        for name, members in groups.items():
            case, outcome = members[0]
            small = shrink(case, name, runner, shrink_budget, batch=jobs)
            if small is not case:
                outcome = runner([small])[0]
            shrunk[name] = (small, outcome)
    text = report.summary(results, groups, shrunk, time.monotonic() - began)
    return text, results, groups
