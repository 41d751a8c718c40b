"""Failures grouped by signature: the class, the exception type and the first line of its message with the
numbers taken out (or, for wrong answers, the reduction and the formula's top op)."""

from __future__ import annotations

import re

FAILURE_CLASSES = ("wrong", "crash", "rejected", "hang", "fuzzer-error")
INACCURATE = 1e-3  # a wrong answer within this relative difference is an accuracy finding


def _without_numbers(text: str) -> str:
    text = re.sub(r"0x[0-9a-fA-F]+", "ADDR", text)
    text = re.sub(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", "N", text)
    text = re.sub(r"\b[xyp]N\b", "VAR", text)  # the fuzzer's variable names
    text = re.sub(r"'[^']*'", "'S'", text)  # quoted names and options: one signature for one message shape
    return re.sub(r"\s+", " ", text).strip()[:110]


def _last_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if any(word in line for word in ("error", "Error", "ERROR", "Assertion", "abort", "fault")):
            return line
    return lines[-1] if lines else ""


def signature(case: dict, outcome: dict) -> str:
    klass = outcome["class"]
    if klass == "wrong":
        what = "wrong-grad" if outcome.get("grad") else "wrong"
        if outcome.get("relative", INACCURATE) < INACCURATE:  # right maths, more rounding than the bound allows
            what += "(inaccurate)"
        return f"{what}:{case['reduction']['kind']}:{case['formula']['op']}"
    if klass == "hang":
        return "hang"
    if outcome.get("type") == "process death":
        return f"crash:{outcome['message']}: {_without_numbers(_last_error_line(outcome.get('traceback', '')))}"
    return f"{klass}:{outcome.get('type')}:{_without_numbers(outcome.get('message', ''))}"
