"""keir-opt: read keir IR, run keir passes, print the result — the way `mlir-opt` does.

    keir-opt input.mlir --keir-cse
    keir-opt input.mlir --pass-pipeline='builtin.module(keir-cse)' --print-ir-after-all
    keir-opt input.mlir --keir-lower-cpu          # lowering: prints scf/arith/vector code
    not keir-opt invalid.mlir --split-input-file  # diagnostics as file:line:col: error: ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from keir.compiler.emit import emit_module
from keir.compiler.importer import KeirIRError, parse_module
from keir.compiler.passes import LOWERINGS, PASSES, get_pass, lowering, pass_class


def _summary(function: Callable) -> str:
    """The first line of the pass's module docstring, without its leading "name: "."""
    import textwrap

    doc = (sys.modules[function.__module__].__doc__ or "").strip().splitlines()[0]
    return textwrap.shorten(doc.split(": ", 1)[-1], 90)


def _parse_pipeline(text: str) -> list[str]:
    """'builtin.module(a, b{x=1,2})' -> ['a', 'b{x=1,2}']: commas inside an option list do not split passes."""
    text = text.strip()
    if text.startswith("builtin.module(") and text.endswith(")"):
        text = text[len("builtin.module(") : -1]
    names, depth, current = [], 0, ""
    for char in text + ",":
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            names.append(current.strip())
            current = ""
        else:
            current += char
    return [name for name in names if name]


def _list_rules() -> str:
    from keir.compiler.passes.keir_simplify import RULES

    lines = ["keir-simplify's rules (keir-simplify{disable=name,...} leaves them out):"]
    for rule in RULES:
        ops = ", ".join(rule.ops) or "every other op"
        lines.append(f"  {rule.name:<20} on {ops}\n  {'':<20} {rule.summary}")
    return "\n".join(lines) + "\n"


def _arguments(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="keir-opt",
        description="Run keir passes on keir IR (MLIR generic form) and print the result.",
        epilog="passes:\n"
        + "\n".join(f"  --{name:<20} {_summary(pass_class(name))}" for name in sorted(PASSES))
        + "\nlowerings (end a pipeline):\n"
        + "\n".join(f"  --{name:<20} {lowering(name).__doc__}" for name in LOWERINGS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", nargs="?", default="-", help="input file (default: stdin)")
    parser.add_argument("-o", dest="output", default="-", help="output file (default: stdout)")
    parser.add_argument("--pass-pipeline", default=None,
                        help="e.g. 'builtin.module(keir-cse)'; options in braces: "
                             "keir-simplify{assume-finite=true max-rounds=4}")
    parser.add_argument("--print-ir-after-all", action="store_true", help="print the IR after each pass (stderr)")
    parser.add_argument("--split-input-file", action="store_true", help="process chunks split at '// -----'")
    parser.add_argument("--list-rules", action="store_true", help="list keir-simplify's rewrite rules and exit")
    args, rest = parser.parse_known_args(argv)
    names: list[str] = []
    for flag in rest:
        if not flag.startswith("--"):
            parser.error(f"unexpected argument {flag!r}")
        names.append(flag[2:])
    if args.pass_pipeline:
        names += _parse_pipeline(args.pass_pipeline)
    for position, name in enumerate(names):
        if name in LOWERINGS:
            if position != len(names) - 1:
                parser.error(f"--{name} leaves the keir dialect: it must be the last pass")
        else:
            try:
                get_pass(name)
            except ValueError as err:
                parser.error(f"{err}; lowerings: {', '.join(sorted(LOWERINGS))}")
    return args, names


def _process(text: str, names: list[str], print_after_all: bool) -> str:
    kernels = parse_module(text)
    for name in names:
        if name in LOWERINGS:
            return _verified(lowering(name)(kernels))
        kernels = [get_pass(name)(k) for k in kernels]
        if print_after_all:
            sys.stderr.write(f"// -----// IR Dump After {name} //----- //\n{emit_module(kernels)}\n")
    return emit_module(kernels)


def _verified(text: str) -> str:
    """Parse (and so verify) lowered IR with MLIR and print it in MLIR's own form."""
    from mlir import ir

    from keir.compiler.mlir_context import keir_context

    with keir_context():
        return str(ir.Module.parse(text))


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path) as handle:
        return handle.read()


def _errors(err: Exception, filename: str, line_offset: int) -> list[str]:
    """mlir-opt-style diagnostics for any failure on one chunk of input."""
    if isinstance(err, KeirIRError):
        return [d.format(filename, line_offset) for d in err.diagnostics]
    where = f"{filename}:{line_offset + 1}:1"
    if isinstance(err, (ValueError, TypeError)):  # a pass refused the input (a gradient of a non-differentiable op)
        return [f"{where}: error: {err}"]
    return [f"{where}: error: internal compiler error (a bug in keir): {type(err).__name__}: {err}"]


def main(argv: list[str] | None = None) -> int:
    args, names = _arguments(argv)
    if args.list_rules:
        sys.stdout.write(_list_rules())
        return 0
    filename = "<stdin>" if args.input == "-" else args.input
    try:
        source = _read(args.input)
    except (OSError, UnicodeDecodeError) as err:
        sys.stderr.write(f"keir-opt: error: cannot read {filename}: {err}\n")
        return 1
    chunks = [source]
    if args.split_input_file:
        chunks = source.split("// -----")
    outputs, failed, line_offset = [], False, 0
    for chunk in chunks:
        try:
            outputs.append(_process(chunk, names, args.print_ir_after_all))
        except Exception as err:  # every failure is a diagnostic and exit status 1, never a traceback
            failed = True
            sys.stderr.write("\n".join(_errors(err, filename, line_offset)) + "\n")
        line_offset += chunk.count("\n")
    text = "// -----\n".join(outputs)
    try:
        if args.output == "-":
            sys.stdout.write(text)
        else:
            with open(args.output, "w") as handle:
                handle.write(text)
    except OSError as err:
        sys.stderr.write(f"keir-opt: error: cannot write {args.output}: {err}\n")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
