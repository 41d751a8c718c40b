"""The summary and the --json file are written before shrinking starts: a run killed while shrinking (which
can take long) still leaves them."""

from __future__ import annotations

import json
import sys

import pytest

from . import __main__ as cli
from . import driver
from .generate import case_running


class Killed(Exception):
    """Stands for the run being killed while it shrinks."""


def test_summary_and_json_come_before_shrinking(monkeypatch, tmp_path, capsys) -> None:
    failing = case_running("__import__('os').abort()")
    monkeypatch.setattr(driver, "random_case", lambda seed, index, profile: failing)

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(driver, "shrink", killed)
    out = tmp_path / "run.json"
    monkeypatch.setattr(sys, "argv", ["fuzz", "--cases", "1", "--jobs", "1", "--json", str(out)])
    with pytest.raises(Killed):
        cli.main()
    printed = capsys.readouterr().out
    assert printed.startswith("1 cases in ") and "crash 1" in printed and "reproducer (not shrunk)" in printed
    (entry,) = json.loads(out.read_text())
    assert entry["outcome"]["class"] == "crash"
