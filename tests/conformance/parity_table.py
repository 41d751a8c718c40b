"""Run pykeops 2.3's test files against keir and print the parity table (Markdown), test by test.

    .venv/bin/python tests/conformance/parity_table.py            # runs the suite (a few minutes)
    .venv/bin/python tests/conformance/parity_table.py run.xml    # from a previous `pytest --junitxml=run.xml`

Each row is one pykeops test: ✓ (passes with keir), ✗ (fails, with the first line of the error), or skipped
(with the reason). Known failures are marked xfail in the suite (see known_failures.py); they count as ✗.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def run_suite(report: Path) -> None:
    command = [sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    subprocess.run(command, cwd=REPO, check=False)


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("E "):
            line = line[1:].strip()
        if line and not line.startswith(("Traceback", "File ", "^", "~")):
            return line.replace("|", "\\|")[:110]
    return ""


def outcome(case: ElementTree.Element) -> tuple[str, str]:
    """(✓ / ✗ / skipped, note) of one junit test case."""
    for tag in ("failure", "error"):
        found = case.find(tag)
        if found is not None:
            return "✗", _first_line(found.get("message") or found.text)
    skipped = case.find("skipped")
    if skipped is not None:
        message = skipped.get("message") or ""
        if skipped.get("type") == "pytest.xfail":  # a known failure
            return "✗", "known: " + message.removeprefix("reason: ")
        return "skipped", message.removeprefix("Skipped: ")
    return "✓", ""


def rows(report: Path) -> list[tuple[str, str, str, str]]:
    table = []
    for case in ElementTree.parse(report).iter("testcase"):
        name = case.get("name", "")
        classname = case.get("classname", "")
        parts = classname.split(".")
        file = next((p for p in parts if p.startswith("pykeops_test_")), None)
        file = (file or name).removeprefix("pykeops_").removesuffix(".py") + ".py"
        test = name if not name.endswith(".py") else "(whole file)"
        cls = classname.rsplit(".", 1)[-1]
        if cls not in ("test_pykeops", file.removesuffix(".py"), "pykeops_" + file.removesuffix(".py"), "py"):
            test = f"{cls}.{test}"
        table.append((file, test, *outcome(case)))
    return table


def markdown(table: list[tuple[str, str, str, str]]) -> str:
    counts = Counter(result for _, _, result, _ in table)
    lines = [f"pykeops 2.3 test files run against keir: {counts['✓']} pass, {counts['✗']} fail, "
             f"{counts['skipped']} skipped (of {len(table)}).", "",
             "| pykeops test file | test | keir | note |", "|---|---|---|---|"]
    lines += [f"| `{file}` | `{test}` | {result} | {note} |" for file, test, result, note in table]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1:
        report = Path(sys.argv[1])
    else:
        report = Path(tempfile.mkdtemp(prefix="keir-parity-")) / "run.xml"
        run_suite(report)
    print(markdown(rows(report)))


if __name__ == "__main__":
    main()
