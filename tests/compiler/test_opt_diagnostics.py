"""keir-opt answers every input with output or `file:line:col: error:` diagnostics and exit status 1, never
a traceback or an abort: mutated copies of the lit files are fed to every pass and lowering."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIT = ROOT / "lit_tests"

# Runs in a child process, so that an abort inside MLIR is a failed test rather than a dead test run.
MUTATIONS = r'''
import contextlib, io, pathlib, random, re, sys
from keir.compiler import opt

rng = random.Random(int(sys.argv[1]))
files = sorted(pathlib.Path(sys.argv[2]).glob("*.mlir"))
work = pathlib.Path(sys.argv[3])
flags = ["--keir-cse", "--keir-simplify", "--keir-differentiate", "--keir-trace", "--keir-hoist",
         "--keir-lower-cpu", "--keir-lower-gpu"]
replacements = ["0", "-1", "99", "1e-05", "0x7FF8000000000000", "3.5", "100000000000000000000"]
names = ['"sum"', '"min"', '"argkmin"', '"j"', '"p"', '"bogus"', '""']

def mutate(text):
    kind = rng.randrange(5)
    if kind == 0:
        lines = text.splitlines()
        del lines[rng.randrange(len(lines))]
        return "\n".join(lines)
    pattern, choices = [(r"\d+", replacements), (r'"[a-z_]+"', names)][kind % 2]
    if kind in (1, 2):
        found = list(re.finditer(pattern, text))
        if found:
            m = rng.choice(found)
            return text[:m.start()] + rng.choice(choices) + text[m.end():]
        return text
    if kind == 3:
        at = rng.randrange(len(text) + 1)
        return text[:at] + text[at + rng.randrange(1, 20):]
    return text.replace("vector<1x", "vector<2x", 1) if rng.random() < 0.5 else text.replace("f32", "f64", 1)

problems = 0
for case in range(int(sys.argv[4])):
    path = work / f"case{case}.mlir"
    path.write_text(mutate(rng.choice(files).read_text()))
    flag = rng.choice(flags)
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            status = opt.main([str(path), flag, "--split-input-file"])
    except BaseException as exc:
        problems += 1
        print(f"{path} {flag}: {type(exc).__name__}: {exc}")
        continue
    said = err.getvalue()
    if status not in (0, 1) or "internal compiler error" in said or (status == 1) != ("error:" in said):
        problems += 1
        print(f"{path} {flag}: status {status}: {err.getvalue()[:300]}")
print("problems", problems)
'''


def _keir_opt(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keir.compiler.opt", *args], input=stdin, capture_output=True,
                          text=True, timeout=120)


def test_mutated_lit_files_get_diagnostics_never_tracebacks(tmp_path):
    result = subprocess.run([sys.executable, "-c", MUTATIONS, "7", str(LIT), str(tmp_path), "150"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("problems 0"), result.stdout[-3000:]


def test_unreadable_input_is_an_error_not_a_traceback(tmp_path):
    result = _keir_opt(str(tmp_path / "missing.mlir"), "--keir-cse")
    assert result.returncode == 1
    assert "keir-opt: error: cannot read" in result.stderr and "Traceback" not in result.stderr


def test_lowering_takes_constants_without_a_decimal_point():
    kernel = """
func.func @k() -> vector<1xf32> {
  %0 = "keir.var"() {category = "i", index = 0 : i64} : () -> vector<3xf32>
  %1 = "keir.var"() {category = "j", index = 1 : i64} : () -> vector<3xf32>
  %2 = "keir.sqdist"(%0, %1) : (vector<3xf32>, vector<3xf32>) -> vector<1xf32>
  %3 = "keir.constant"() {value = 1.0e-05 : f64} : () -> vector<1xf32>
  %4 = "keir.mul"(%2, %3) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %5 = "keir.reduce"(%4) {axis = 1 : i64, kind = "sum"} : (vector<1xf32>) -> vector<1xf32>
  return %5 : vector<1xf32>
}
"""
    for lowering in ("--keir-lower-cpu", "--keir-lower-gpu"):
        result = _keir_opt(lowering, stdin=kernel)
        assert result.returncode == 0, result.stderr
        assert "9.99999974E-6" in result.stdout or "9.99999974e-06" in result.stdout, result.stdout
