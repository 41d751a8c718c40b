"""The summary of a run: counts per class, then each failure signature with its count, an example message and a
reproducer (a short program over the public API)."""

from __future__ import annotations

from collections import Counter

from . import program
from .signatures import FAILURE_CLASSES


def reproducer(case: dict, outcome: dict) -> str:
    header = f"# case seed={case['seed']} index={case['index']}: {outcome['class']}: {outcome.get('message', '')}"
    return header[:400] + "\n" + program.source(case)


def summary(results: list[tuple[dict, dict]], groups: dict[str, list[tuple[dict, dict]]],
            shrunk: dict[str, tuple[dict, dict]], seconds: float) -> str:
    counts = Counter(outcome["class"] for _, outcome in results)
    vacuous = sum(1 for _, o in results if o["class"] == "ok" and o.get("checked") == 0)
    rate = f"{len(results) / seconds:.2f} cases/s, " if seconds > 0 else ""
    lines = [f"{len(results)} cases in {seconds:.1f} s ({rate}shrinking not counted): "
             + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" (ok with nothing checkable: {vacuous})"]
    failures = sorted(groups.items(), key=lambda item: -len(item[1]))
    lines.append(f"{len(failures)} failure signatures")
    for name, members in failures:
        case, outcome = shrunk.get(name, members[0])
        which = "shrunk reproducer" if name in shrunk else "reproducer (not shrunk)"
        lines += ["", "=" * 100, f"[{len(members)}x] {name}", f"  e.g. {members[0][1].get('message', '')[:300]}",
                  "  cases: " + " ".join(str(c["index"]) for c, _ in members[:12]), "-" * 40 + f" {which} ",
                  reproducer(case, outcome).rstrip()]
    return "\n".join(lines)


def failures(results: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
    return [(c, o) for c, o in results if o["class"] in FAILURE_CLASSES]
