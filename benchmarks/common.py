"""Timing and reporting helpers shared by the benchmark scripts.

Timings on a shared machine are noisy, and noise only ever adds time, so every figure is the minimum over
repeats. `interleaved_minimums` runs the contenders of one comparison in alternation, so that a burst of
load from another process slows all of them rather than one.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Budget:
    """How long to keep repeating one measurement: at least `min_repeats` calls, then more while the calls
    so far took less than `seconds`, up to `max_repeats`."""

    seconds: float = 1.5
    min_repeats: int = 1
    max_repeats: int = 7


def interleaved_minimums(calls: dict[str, Callable[[], object]], budget: Budget) -> dict[str, float]:
    """The fastest of repeated calls of each entry, in seconds. Calls take turns, one call per round."""
    times: dict[str, list[float]] = {name: [] for name in calls}

    def wants_more(name: str) -> bool:
        done = times[name]
        if len(done) < budget.min_repeats:
            return True
        return len(done) < budget.max_repeats and sum(done) < budget.seconds

    while True:
        waiting = [name for name in calls if wants_more(name)]
        if not waiting:
            return {name: min(done) for name, done in times.items()}
        for name in waiting:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)


def best_of(call: Callable[[], object], repeat: int = 2) -> tuple[float, object]:
    """(the fastest of `repeat` calls in seconds, the last call's result), for calls long enough to time alone."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result


def minimum_time(call: Callable[[], object], number: int, repeat: int) -> float:
    """Seconds per call: the fastest of `repeat` batches of `number` back-to-back calls (for short calls)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def relative_error(result: np.ndarray, reference: np.ndarray) -> float:
    """max |result - reference| / max |reference|, computed in float64."""
    result = np.asarray(result, dtype=np.float64).reshape(-1)
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    scale = float(np.max(np.abs(reference))) or 1.0
    return float(np.max(np.abs(result - reference))) / scale


def rate(pairs: float, seconds: float | None) -> float | None:
    """(i, j) pairs per second, in units of 10^9."""
    return None if seconds is None else pairs / seconds / 1e9


def three_digits(value: float) -> str:
    """A positive number with three significant digits, without an exponent when it is readable."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2e}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 0) -> str:
    """A GitHub-flavoured markdown table with padded columns; columns from `right_from` on are right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(cell).rjust(width) if k >= right_from else str(cell).ljust(width)
            for k, (cell, width) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if k >= right_from else "-" * w for k, w in enumerate(widths)]
    return "\n".join([line(headers), "| " + " | ".join(rule) + " |", *(line(row) for row in rows)])


def cpu_description() -> str:
    """The processor's model name and the number of cores this process may use."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for entry in info:
                if entry.startswith("model name"):
                    model = entry.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {available_cores()} cores"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
