"""A fuzzing run: generate cases, run them in workers, group the failures, report, then shrink one case per
signature. The summary is handed out (`before_shrinking`) as soon as every case has run, so a run killed
while shrinking still leaves it; shrinking has its own wall-clock budget, and every run of a case (shrinking
included) its per-case timeout (a case past it is a "hang")."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable

from . import report
from .generate import random_case
from .pool import Pool
from .shrink import shrink
from .signatures import signature

Results = list[tuple[dict, dict]]
Groups = dict[str, Results]


def run(cases: int, seed: int, start: int = 0, jobs: int = 2, timeout: float = 120.0, shrink_budget: int = 30,
        progress: bool = True, profile: str = "full",
        before_shrinking: Callable[[str, Results, Groups], None] | None = None,
        shrink_seconds: float = 600.0) -> tuple[str, Results, Groups]:
    """Returns (summary text, [(case, outcome)], {signature: [(case, outcome)]}). `before_shrinking` gets the
    summary (with unshrunk reproducers), the results and the groups before any shrinking starts."""
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
        seconds = time.monotonic() - began
        results.sort(key=lambda item: item[0]["index"])
        groups = group(results)
        if before_shrinking is not None:
            before_shrinking(report.summary(results, groups, {}, seconds), results, groups)
        shrunk = _shrink_all(groups, pool, jobs, shrink_budget, shrink_seconds)
        return report.summary(results, groups, shrunk, seconds), results, groups


def group(results: Results) -> Groups:
    groups: Groups = {}
    for case, outcome in report.failures(results):
        groups.setdefault(signature(case, outcome), []).append((case, outcome))
    return groups


def _shrink_all(groups: Groups, pool: Pool, jobs: int, budget: int, seconds: float) -> dict[str, tuple[dict, dict]]:
    """One smaller case per signature (the first member, shrunk within `budget` runs), until `seconds` are spent."""
    shrunk: dict[str, tuple[dict, dict]] = {}
    if budget <= 0:
        return shrunk
    deadline = time.monotonic() + seconds

    def runner(batch: list[dict]) -> list[dict]:
        finished = {id(c): o for c, o in pool.run(batch)}
        return [finished[id(c)] for c in batch]

    for name, members in groups.items():
        if time.monotonic() >= deadline:
            break
        case, outcome = members[0]
        small = shrink(case, name, runner, budget, batch=jobs, deadline=deadline)
        if small is not case:
            outcome = runner([small])[0]
        shrunk[name] = (small, outcome)
    return shrunk
