"""keir-lower-cpu: a keir kernel -> one loop nest in scf/arith/math/vector/memref (MLIR text).

    "keir.reduce"(f) {kind = "sum", axis = 1}  =>
    func.func @k(%a0: memref<?xf32>, ..., %out: memref<?xf32>, %i0: index, %i1: index, %n: index) {
      <parameter loads and parameter-only work>
      scf.for %i = %i0 to %i1 {
        <i-variable loads and i-only work, as scalars>
        scf.for %j = 0 to n - n % 16 step 16 iter_args(acc) {   <f on vector<16xf32>, acc += f>  }
        scf.if (n % 16 != 0) { <the same on a masked tail> }
        out[i] = horizontal sum of acc
      }
    }

Layout the runtime provides: an i-variable of dimension D is row-major (M, D); a j-variable is transposed to
(D, N) (structure of arrays), so component d of lanes j..j+15 is one contiguous load; a parameter is (D,).
A reduction over i (axis 0) is the same loop with the roles of i and j swapped. The formula's components are
unrolled: a value of dimension D is D SSA values. Work that does not depend on j is computed once per i
(or once per call) as scalars and broadcast: the hoisting of DESIGN §7.
"""

from __future__ import annotations

from dataclasses import dataclass

from keir.compiler import mathlib
from keir.compiler.kernel import Kernel
from keir.compiler.mlir_text import Builder, Names
from keir.dialect.node import Node, substitute, variables

VECTOR_LANES = {"f32": 16, "f64": 8}


@dataclass(frozen=True)
class Operand:
    """One input of a compiled kernel, in the loop's own terms ("i" rows, "j" columns, "p" parameters)."""

    index: int  # position in the user's argument list
    category: str
    dim: int


@dataclass(frozen=True)
class LoopKernel:
    """What the runtime needs to call the lowered function."""

    symbol: str
    operands: tuple[Operand, ...]
    out_dim: int
    axis: int
    func_text: str

    @property
    def text(self) -> str:
        return "module {\n" + self.func_text + "\n}\n"


def swap_i_j(root: Node) -> Node:
    """The same formula with the i and j variables exchanged (to reduce over i with a j loop)."""
    swap = {"i": "j", "j": "i", "p": "p"}
    mapping = {}
    for v in variables(root):
        mapping[v] = Node("var", (), tuple(sorted({**dict(v.attrs), "category": swap[v.attr("category")]}.items())))
    return substitute(root, mapping)


def kernel_operands(reduce: Node) -> tuple[Operand, ...]:
    """The lowered function's inputs for reduction `reduce`, in the loop's terms (i and j swapped for axis 0)."""
    formula = reduce.args[0]
    if reduce.attr("axis") == 0:
        formula = swap_i_j(formula)
    return tuple(Operand(v.attr("index"), v.attr("category"), v.dim) for v in variables(formula))


def lower_cpu(kernel: Kernel, operands: tuple[Operand, ...] | None = None) -> LoopKernel:
    """Lower `kernel`; `operands` fixes the signature (default: the variables it uses), so that a kernel
    whose passes removed a variable still takes the inputs of the formula it was compiled from."""
    reduce = kernel.result
    if reduce.op != "reduce":
        raise ValueError(f"only a keir.reduce can be lowered to a loop nest, not keir.{reduce.op}")
    kind, axis = reduce.attr("kind"), reduce.attr("axis")
    if kind != "sum":
        raise ValueError(f"reduction kind {kind!r} has no CPU lowering")
    formula = reduce.args[0]
    if axis == 0:
        formula = swap_i_j(formula)
    return _LoopNest(kernel.name, formula, kernel.dtype, axis, operands or kernel_operands(reduce)).build()


class _LoopNest:
    def __init__(self, symbol: str, formula: Node, elem: str, axis: int, operands: tuple[Operand, ...]):
        self.symbol, self.formula, self.elem, self.axis = symbol, formula, elem, axis
        self.lanes = VECTOR_LANES[elem]
        self.names = Names()
        self.entry = Builder(self.names, elem, None)
        self.row = Builder(self.names, elem, None, indent="      ")
        self.scalars: dict[Node, list[str]] = {}
        self.broadcasts: dict[str, str] = {}
        self.index_consts: dict[int, str] = {}
        self.operands = operands

    @property
    def vtype(self) -> str:
        return f"vector<{self.lanes}x{self.elem}>"

    def index_const(self, value: int) -> str:
        if value not in self.index_consts:
            self.index_consts[value] = self.entry.emit(f"arith.constant {value} : index", "k")
        return self.index_consts[value]

    # scalar (hoisted) values -------------------------------------------------------------------------
    def scalar(self, node: Node) -> list[str]:
        if node in self.scalars:
            return self.scalars[node]
        b = self.row if "i" in node.deps else self.entry
        if node.op == "var":
            category = node.attr("category")
            memref = f"%a{node.attr('index')}"
            if category == "p":
                comps = [
                    b.emit(f"memref.load {memref}[{self.index_const(d)}] : memref<?x{self.elem}>")
                    for d in range(node.dim)
                ]
            else:
                base = self.row.emit(f"arith.muli %i, {self.index_const(node.dim)} : index", "o")
                comps = []
                for d in range(node.dim):
                    offset = self.row.emit(f"arith.addi {base}, {self.index_const(d)} : index", "o")
                    comps.append(self.row.emit(f"memref.load {memref}[{offset}] : memref<?x{self.elem}>"))
        else:
            comps = compute(b, node, [self.scalar(a) for a in node.args])
        self.scalars[node] = comps
        return comps

    def broadcast(self, node: Node) -> list[str]:
        comps = self.scalar(node)
        b = self.row if "i" in node.deps else self.entry
        out = []
        for c in comps:
            if c not in self.broadcasts:
                self.broadcasts[c] = b.emit(f"vector.broadcast {c} : {self.elem} to {self.vtype}", "b")
            out.append(self.broadcasts[c])
        return out

    # the j loop body ---------------------------------------------------------------------------------
    def body(self, b: Builder, j: str, mask: str | None) -> list[str]:
        values: dict[Node, list[str]] = {}
        zero = b.const(0.0) if mask else None
        n_offsets: dict[int, str] = {}

        def value(node: Node) -> list[str]:
            if "j" not in node.deps:
                return self.broadcast(node)
            if node in values:
                return values[node]
            if node.op == "var":
                comps = []
                for d in range(node.dim):
                    if d not in n_offsets:
                        n_offsets[d] = self.entry.emit(f"arith.muli %n, {self.index_const(d)} : index", "o")
                    offset = b.emit(f"arith.addi {n_offsets[d]}, {j} : index", "o")
                    memref = f"%a{node.attr('index')}"
                    if mask is None:
                        comps.append(b.emit(f"vector.load {memref}[{offset}] : memref<?x{self.elem}>, {self.vtype}"))
                    else:
                        comps.append(
                            b.emit(
                                f"vector.maskedload {memref}[{offset}], {mask}, {zero} : memref<?x{self.elem}>, "
                                f"vector<{self.lanes}xi1>, {self.vtype} into {self.vtype}"
                            )
                        )
            else:
                comps = compute(b, node, [value(a) for a in node.args])
            values[node] = comps
            return comps

        result = value(self.formula)
        if mask is not None:
            result = [b.select(mask, c, zero) for c in result]
        return result

    def build(self) -> LoopKernel:
        e, lanes, vt = self.elem, self.lanes, self.vtype
        out_dim = self.formula.dim
        loop_b = Builder(self.names, e, lanes, indent="        ")
        tail_b = Builder(self.names, e, lanes, indent="        ")
        zero_v = self.entry.emit(f"arith.constant dense<0.0> : {vt}", "z")
        lanes_c = self.index_const(lanes)
        one_c, zero_c = self.index_const(1), self.index_const(0)
        rem = self.entry.emit(f"arith.remui %n, {lanes_c} : index", "o")
        n_full = self.entry.emit(f"arith.subi %n, {rem} : index", "o")

        accs = [f"%acc{k}" for k in range(out_dim)]
        f_main = self.body(loop_b, "%j", None)
        for acc, f in zip(accs, f_main):
            loop_b.lines.append(f"        {acc}_next = arith.addf {acc}, {f} : {vt}")
        mask = tail_b.emit(f"vector.create_mask {rem} : vector<{lanes}xi1>", "m")
        f_tail = self.body(tail_b, n_full, mask)
        tail_sums = [tail_b.emit(f"arith.addf %loop#{k}, {f} : {vt}") for k, f in enumerate(f_tail)]

        types = ", ".join([vt] * out_dim)
        inits = ", ".join(f"{acc} = {zero_v}" for acc in accs)
        lines = [
            f"      %loop:{out_dim} = scf.for %j = {zero_c} to {n_full} step {lanes_c} "
            f"iter_args({inits}) -> ({types}) {{"
        ]
        lines += loop_b.lines
        lines.append(f"        scf.yield {', '.join(a + '_next' for a in accs)} : {types}")
        lines.append("      }")
        has_tail = self.names.fresh("m")
        lines.append(f"      {has_tail} = arith.cmpi ne, {rem}, {zero_c} : index")
        lines.append(f"      %total:{out_dim} = scf.if {has_tail} -> ({types}) {{")
        lines += tail_b.lines
        lines.append(f"        scf.yield {', '.join(tail_sums)} : {types}")
        lines.append("      } else {")
        lines.append(f"        scf.yield {', '.join(f'%loop#{k}' for k in range(out_dim))} : {types}")
        lines.append("      }")
        out_base = self.names.fresh("o")
        lines.append(f"      {out_base} = arith.muli %i, {self.index_const(out_dim)} : index")
        for k in range(out_dim):
            s = self.names.fresh("s")
            o = self.names.fresh("o")
            lines.append(f"      {s} = vector.reduction <add>, %total#{k} : {vt} into {e}")
            lines.append(f"      {o} = arith.addi {out_base}, {self.index_const(k)} : index")
            lines.append(f"      memref.store {s}, %out[{o}] : memref<?x{e}>")

        args = [f"%a{op.index}: memref<?x{e}>" for op in self.operands]
        args += [f"%out: memref<?x{e}>", "%i0: index", "%i1: index", "%n: index"]
        text = "\n".join(
            [f"func.func @{self.symbol}({', '.join(args)}) {{"]
            + self.entry.lines
            + [f"    scf.for %i = %i0 to %i1 step {one_c} {{"]
            + self.row.lines
            + lines
            + ["    }", "    return", "}"]
        )
        return LoopKernel(self.symbol, self.operands, out_dim, self.axis, text)


def _tree_sum(b: Builder, terms: list[str]) -> str:
    while len(terms) > 1:
        paired = [b.add(terms[k], terms[k + 1]) for k in range(0, len(terms) - 1, 2)]
        terms = paired + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def _integer_power(b: Builder, x: str, n: int) -> str:
    if n == 0:
        return b.const(1.0)
    result, base, m = None, x, abs(n)
    while m:
        if m & 1:
            result = base if result is None else b.mul(result, base)
        m >>= 1
        if m:
            base = b.mul(base, base)
    return b.div(b.const(1.0), result) if n < 0 else result


def compute(b: Builder, node: Node, args: list[list[str]]) -> list[str]:
    """The components of `node` given its operands' components, on builder b (scalars or vectors)."""
    op = node.op
    if op == "constant":
        return [b.const(node.attr("value"))]
    if op in ("add", "sub", "mul", "div"):
        x, y = args
        arith = {"add": "addf", "sub": "subf", "mul": "mulf", "div": "divf"}[op]
        return [b.binary(arith, x[k if len(x) > 1 else 0], y[k if len(y) > 1 else 0]) for k in range(node.dim)]
    (x, *rest) = args
    if op == "neg":
        return [b.neg(c) for c in x]
    if op == "exp":
        return [mathlib.exp(b, c) for c in x]
    if op == "log":
        return [mathlib.log(b, c) for c in x]
    if op == "sqrt":
        return [b.math("sqrt", c) for c in x]
    if op == "rsqrt":
        return [b.div(b.const(1.0), b.math("sqrt", c)) for c in x]
    if op == "square":
        return [b.mul(c, c) for c in x]
    if op == "pow":
        return [_integer_power(b, c, node.attr("exponent")) for c in x]
    if op == "abs":
        return [b.math("absf", c) for c in x]
    if op == "sum":
        return [_tree_sum(b, list(x))]
    if op == "sqnorm2":
        return [_tree_sum(b, [b.mul(c, c) for c in x])]
    if op == "dot":
        return [_tree_sum(b, [b.mul(c, d) for c, d in zip(x, rest[0])])]
    if op == "sqdist":
        diffs = [b.sub(c, d) for c, d in zip(x, rest[0])]
        return [_tree_sum(b, [b.mul(c, c) for c in diffs])]
    if op == "elem":
        return [x[node.attr("index")]]
    if op == "extract":
        start = node.attr("start")
        return x[start : start + node.attr("length")]
    if op == "concat":
        return list(x) + list(rest[0])
    raise ValueError(f"keir.{op} has no CPU lowering")
