"""The op catalogue: every keir op as one record (`record.Op`), grouped by family, and the tables derived
from them. Importing it fills `keir.dialect.ops.OPS` (the registry the rest of keir reads).

To add an op, write its record in its family's module (and, if it needs one, its vectorised routine in
keir.compiler.mathlib); tests/dialect/test_catalogue.py then checks it end to end.
"""

from __future__ import annotations

from keir.dialect.catalogue import arithmetic, complex, piecewise, structural, transcendental, vector
from keir.dialect.catalogue.record import ATTRIBUTE_TYPES, Op
from keir.dialect.ops import OPS

FAMILIES = (structural, arithmetic, transcendental, piecewise, vector, complex)

for _family in FAMILIES:
    for _op in _family.OPS:
        if _op.name in OPS:
            raise ValueError(f"keir.{_op.name} is defined twice in the catalogue")
        OPS[_op.name] = _op

ELEMENTWISE = frozenset(name for name, op in OPS.items() if op.elementwise)
COMMUTATIVE = frozenset(name for name, op in OPS.items() if op.commutative)
KEOPS_NAMES = {name: op.keops for name, op in OPS.items() if op.keops}
INTEGER_ATTRIBUTES = frozenset(name for name, kind in ATTRIBUTE_TYPES.items() if kind is int)

_IRDL_BASES = {int: "#builtin.integer", float: "#builtin.float", str: "#builtin.string"}


def _irdl_operation(op: Op) -> list[str]:
    lines = [f"  irdl.operation @{op.name} {{"]
    same_type = op.elementwise and op.arity == 1  # the result has the operand's type
    if same_type:
        lines.append('    %v = irdl.base "!builtin.vector"')
        lines.append(f"    irdl.operands({op.operands[0]}: %v)")
    else:
        lines += [f'    %a{k} = irdl.base "!builtin.vector"' for k in range(op.arity)]
        lines.append('    %r = irdl.base "!builtin.vector"')
        if op.operands:
            lines.append(f"    irdl.operands({', '.join(f'{n}: %a{k}' for k, n in enumerate(op.operands))})")
    declared = [a for a in op.attrs if not (op.name == "var" and a == "dim")]  # a variable's dim is its type
    if declared:
        lines += [f'    %{a} = irdl.base "{_IRDL_BASES[ATTRIBUTE_TYPES[a]]}"' for a in declared]
        pairs = ", ".join(f'"{a}" = %{a}' for a in declared)
        lines.append(f"    irdl.attributes {{{pairs}}}")
    lines += [f"    irdl.results(r: {'%v' if same_type else '%r'})", "  }"]
    return lines


def irdl_text() -> str:
    """The keir dialect in IRDL, generated from the catalogue (loaded by keir.dialect.load_dialect)."""
    lines = [
        "// The keir dialect, in IRDL, generated from keir.dialect.catalogue.",
        "// Values are vectors (vector<Dxf32> or vector<Dxf64>); dimension rules are checked by keir's own",
        '// verifier (the records\' result_dim), since IRDL cannot state "equal, or one of them is 1".',
        "irdl.dialect @keir {",
    ]
    for op in OPS.values():
        lines += _irdl_operation(op)
    return "\n".join([*lines, "}", ""])


__all__ = ["OPS", "Op", "FAMILIES", "ELEMENTWISE", "COMMUTATIVE", "KEOPS_NAMES",
           "INTEGER_ATTRIBUTES", "irdl_text"]
