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

Layout the runtime provides: an i-variable of dimension D is row-major (M, D); a parameter is (D,); a
j-variable of dimension D > 1 is cut into blocks of L = 16 (f32) or 8 (f64) columns, each stored as D vectors
of L lanes (shape (ceil(N / L), D, L), zero-padded): component d of lanes j..j+L-1 is one contiguous load at
j*D + d*L, and a block is one contiguous stream whatever D is. A wide one (D >= WIDE_DIM) has one more
vector per block, |y_j|^2 (the runtime computes it with the copy), and a stride of D + 1 vectors; the
products x_i.y_j and |x_i - y_j|^2 of wide variables run as a matrix product's micro-kernel (`wide_product`).
A dimension-1 j-variable is used as it is.
A reduction over i (axis 0) is the same loop with the roles of i and j swapped. The formula's components are
unrolled: a value of dimension D is D SSA values. Work that does not depend on j is computed once per i
(or once per call) as scalars and broadcast: the hoisting of DESIGN §7.
"""

from __future__ import annotations

from dataclasses import dataclass

from keir.compiler import literals, mathlib
from keir.compiler.kernel import Kernel
from keir.compiler.mlir_text import Builder, Names
from keir.compiler.reductions import ReductionOptions, accumulator
from keir.dialect.node import Node, make, swap_i_j, topological, variables
from keir.dialect.ops import ELEMENTWISE_UNARY, reduction_output_widths

VECTOR_LANES = {"f32": 16, "f64": 8}
BLOCK_SUM_LANES = 64  # block_sum: vectors per block
ROW_BLOCK = 4  # rows i that share each j vector
CHAINS = 4  # independent accumulation chains in dot products
MAX_BLOCKED_STATE = 4  # accumulator vectors per row above which rows run one at a time (register pressure)
WIDE_DIM = 8  # dot / sqdist of an i- and a j-variable this wide runs as a matrix product (`_Rows.wide_product`)
WIDE_UNROLL = 4  # components per iteration of the wide product's loop


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
    float_width: int  # floats written per output row (memref %out), 0 if none
    index_width: int  # int64 indices written per output row (memref %out_idx), 0 if none
    axis: int
    func_text: str

    @property
    def text(self) -> str:
        return "module {\n" + self.func_text + "\n}\n"


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
    attrs = dict(reduce.attrs)
    formula = reduce.args[0]
    options = ReductionOptions(
        attrs["kind"], formula.dim, attrs.get("k", 1), attrs.get("sum_scheme", "direct_sum"), attrs.get("dtype_acc")
    )
    if attrs["axis"] == 0:
        formula = swap_i_j(formula)
    nest = _LoopNest(kernel.name, formula, kernel.dtype, attrs["axis"], operands or kernel_operands(reduce), options)
    return nest.build()


class _LoopNest:
    """Builds the function. Rows are handled in blocks of `ROW_BLOCK`: each j vector (a load of y_j) then
    serves several rows i, which divides the memory traffic of wide j-variables by the block size; the rows
    left over run one at a time."""

    def __init__(self, symbol: str, formula: Node, elem: str, axis: int, operands: tuple[Operand, ...],
                 options: ReductionOptions):
        self.symbol, self.formula, self.elem, self.axis = symbol, formula, elem, axis
        self.options = options
        self.acc = accumulator(options, elem, VECTOR_LANES[elem])
        self.lanes = VECTOR_LANES[elem]
        self.names = Names()
        self.entry = Builder(self.names, elem, None)
        self.index_consts: dict[int, str] = {}
        self.entry_scalars: dict[Node, list[str]] = {}
        self.entry_broadcasts: dict[str, str] = {}
        self.operands = operands
        self.wide = tuple(n for n in topological(formula) if _is_wide_product(n))

    @property
    def vtype(self) -> str:
        return f"vector<{self.lanes}x{self.elem}>"

    def index_const(self, value: int) -> str:
        if value not in self.index_consts:
            self.index_consts[value] = self.entry.emit(literals.constant(value, "index"), "k")
        return self.index_consts[value]

    def build(self) -> LoopKernel:
        e, lanes = self.elem, self.lanes
        entry_v = Builder(self.names, e, lanes, self.entry.lines)
        self.init = self.acc.init(entry_v)
        if self.acc.needs_index:
            self.iota = self.entry.emit(literals.vector_constant(list(range(lanes)), f"vector<{lanes}xi64>"), "q")
        self.rem = self.entry.emit(f"arith.remui %n, {self.index_const(lanes)} : index", "o")
        self.n_full = self.entry.emit(f"arith.subi %n, {self.rem} : index", "o")
        block = ROW_BLOCK if len(self.init) <= MAX_BLOCKED_STATE else 1
        lines: list[str] = []
        if block > 1:
            count = self.entry.emit("arith.subi %i1, %i0 : index", "o")
            blocks = self.entry.emit(f"arith.divui {count}, {self.index_const(block)} : index", "o")
            span = self.entry.emit(f"arith.muli {blocks}, {self.index_const(block)} : index", "o")
            split = self.entry.emit(f"arith.addi %i0, {span} : index", "o")
            lines += _Rows(self, block).loop("%i0", split)
            lines += _Rows(self, 1).loop(split, "%i1")
        else:
            lines += _Rows(self, 1).loop("%i0", "%i1")
        args = [f"%a{op.index}: memref<?x{e}>" for op in self.operands]
        floats, indices = self.widths
        if floats:
            args.append(f"%out: memref<?x{e}>")
        if indices:
            args.append("%out_idx: memref<?xi64>")
        args += ["%i0: index", "%i1: index", "%n: index"]
        text = "\n".join([f"func.func @{self.symbol}({', '.join(args)}) {{"] + self.entry.lines + lines
                         + ["    return", "}"])
        return LoopKernel(self.symbol, self.operands, floats, indices, self.axis, text)

    @property
    def widths(self) -> tuple[int, int]:
        o = self.options
        return reduction_output_widths(o.kind, o.dim, o.k)


def column_block_components(dim: int) -> int:
    """Vectors per column block of a j-variable of dimension `dim`: its components, then |y|^2 if it is wide."""
    return dim + 1 if dim >= WIDE_DIM else dim


def _is_wide_product(node: Node) -> bool:
    """A dot or sqdist of an i-variable and a j-variable of dimension >= WIDE_DIM."""
    if node.op not in ("dot", "sqdist") or node.args[0].dim < WIDE_DIM:
        return False
    return all(a.op == "var" for a in node.args) and {a.attr("category") for a in node.args} == {"i", "j"}


class _Rows:
    """One block of `count` consecutive rows i: their i-only work, the j loop shared by all of them (each
    j-only value computed once for the block), and their outputs."""

    def __init__(self, nest: _LoopNest, count: int):
        self.nest, self.count = nest, count
        self.names = nest.names
        self.row = Builder(nest.names, nest.elem, None, indent="      ")
        self.scalars: dict[tuple[Node, int], list[str]] = {}
        self.broadcasts: dict[str, str] = {}
        self.rows: list[str] = []

    # scalar (hoisted) values -------------------------------------------------------------------------
    def scalar(self, node: Node, r: int) -> list[str]:
        nest = self.nest
        if "i" not in node.deps:  # parameters and constants: once per call, at function entry
            if node not in nest.entry_scalars:
                nest.entry_scalars[node] = self._compute_scalar(node, 0, nest.entry)
            return nest.entry_scalars[node]
        if (node, r) not in self.scalars:
            self.scalars[(node, r)] = self._compute_scalar(node, r, self.row)
        return self.scalars[(node, r)]

    def _compute_scalar(self, node: Node, r: int, b: Builder) -> list[str]:
        nest, elem = self.nest, self.nest.elem
        if node.op != "var":
            return compute(b, node, [self.scalar(a, r) for a in node.args])
        memref = f"%a{node.attr('index')}"
        if node.attr("category") == "p":
            return [b.emit(f"memref.load {memref}[{nest.index_const(d)}] : memref<?x{elem}>") for d in range(node.dim)]
        base = b.emit(f"arith.muli {self.rows[r]}, {nest.index_const(node.dim)} : index", "o")
        comps = []
        for d in range(node.dim):
            offset = b.emit(f"arith.addi {base}, {nest.index_const(d)} : index", "o")
            comps.append(b.emit(f"memref.load {memref}[{offset}] : memref<?x{elem}>"))
        return comps

    def broadcast(self, node: Node, r: int) -> list[str]:
        nest = self.nest
        per_row = "i" in node.deps
        cache = self.broadcasts if per_row else nest.entry_broadcasts
        b = self.row if per_row else nest.entry
        out = []
        for c in self.scalar(node, r):
            if c not in cache:
                cache[c] = b.emit(f"vector.broadcast {c} : {nest.elem} to {nest.vtype}", "b")
            out.append(cache[c])
        return out

    # the j loop body ---------------------------------------------------------------------------------
    def load_j(self, b: Builder, node: Node, j: str, d: int, mask: str | None) -> str:
        """Component d of j-variable `node` at lanes j..j+L-1 (zero past the mask)."""
        nest = self.nest
        components = column_block_components(node.dim)
        start = j if components == 1 else b.emit(f"arith.muli {j}, {nest.index_const(components)} : index", "o")
        offset = b.emit(f"arith.addi {start}, {nest.index_const(d * nest.lanes)} : index", "o")
        return self._vector_load(b, f"%a{node.attr('index')}", offset, mask)

    def _vector_load(self, b: Builder, memref: str, offset: str, mask: str | None) -> str:
        nest, elem, vtype = self.nest, self.nest.elem, self.nest.vtype
        if mask is None:
            return b.emit(f"vector.load {memref}[{offset}] : memref<?x{elem}>, {vtype}")
        return b.emit(f"vector.maskedload {memref}[{offset}], {mask}, {b.const(0.0)} : memref<?x{elem}>, "
                      f"vector<{nest.lanes}xi1>, {vtype} into {vtype}")

    def body(self, b: Builder, j: str, mask: str | None) -> list[list[str]]:
        """The formula at lanes j..j+L-1 for each row of the block."""
        values: dict[tuple[Node, int], list[str]] = {}
        for node in self.nest.wide:
            for r, product in enumerate(self.wide_product(b, node, j, mask)):
                values[(node, r)] = [product]

        def value(node: Node, r: int) -> list[str]:
            if "j" not in node.deps:
                return self.broadcast(node, r)
            key = (node, r if "i" in node.deps else 0)  # j-only values are shared by the rows
            if key not in values:
                if node.op == "var":
                    values[key] = [self.load_j(b, node, j, d, mask) for d in range(node.dim)]
                else:
                    values[key] = compute(b, node, [value(a, r) for a in node.args])
            return values[key]

        return [value(self.nest.formula, r) for r in range(self.count)]

    def wide_product(self, b: Builder, node: Node, j: str, mask: str | None) -> list[str]:
        """dot(x_i, y_j) or sqdist(x_i, y_j) at lanes j..j+L-1 for each row of the block, as a matrix product's
        micro-kernel: per component d, one load of y_j[d] and one broadcast of x_i[d] per row feed one
        multiply-add per row. sqdist is |x|^2 + |y|^2 - 2 x.y (clamped at 0, as torch.cdist does), |x|^2 hoisted
        and |y|^2 stored by the runtime after y's components: one multiply-add per pair and component instead
        of a subtraction and a multiply-add. The components run in a loop, `WIDE_UNROLL` at a time: the code
        stays small, and x_i[d] is read inside it (hoisted, rows x D broadcasts would not fit in registers and
        would be spilled to the stack)."""
        nest, elem, vtype = self.nest, self.nest.elem, self.nest.vtype
        x, y = node.args if node.args[0].attr("category") == "i" else node.args[::-1]
        x_memref, y_memref = f"%a{x.attr('index')}", f"%a{y.attr('index')}"
        dim = x.dim
        x_start = b.emit(f"arith.muli {self.rows[0]}, {nest.index_const(dim)} : index", "o")
        y_start = b.emit(f"arith.muli {j}, {nest.index_const(column_block_components(dim))} : index", "o")

        def accumulate(b: Builder, d: str, products: list[str]) -> list[str]:
            """products[r] += x_r[d] * y_j[d], d an index value."""
            y_offset = b.emit(f"arith.muli {d}, {nest.index_const(nest.lanes)} : index", "o")
            y_d = self._vector_load(b, y_memref, b.emit(f"arith.addi {y_start}, {y_offset} : index", "o"), mask)
            x_offset = b.emit(f"arith.addi {x_start}, {d} : index", "o")
            new = []
            for r, product in enumerate(products):
                offset = b.emit(f"arith.addi {x_offset}, {nest.index_const(r * dim)} : index", "o")
                x_d = b.emit(f"memref.load {x_memref}[{offset}] : memref<?x{elem}>")
                new.append(b.fma(b.emit(f"vector.broadcast {x_d} : {elem} to {vtype}", "b"), y_d, product))
            return new

        zero = b.const(0.0)
        products = [zero] * self.count
        looped = dim - dim % WIDE_UNROLL
        if looped:
            inner = Builder(self.names, elem, nest.lanes, indent=b.indent + "  ")
            carried = [self.names.fresh("p") for _ in products]
            d = self.names.fresh("d")
            new = carried
            for u in range(WIDE_UNROLL):
                new = accumulate(inner, inner.emit(f"arith.addi {d}, {nest.index_const(u)} : index", "o"), new)
            types = ", ".join([vtype] * self.count)
            result = self.names.fresh("dot")
            b.lines.append(
                f"{b.indent}{result}:{self.count} = scf.for {d} = {nest.index_const(0)} to {nest.index_const(looped)} "
                f"step {nest.index_const(WIDE_UNROLL)} iter_args({', '.join(f'{c} = {zero}' for c in carried)}) "
                f"-> ({types}) {{")
            b.lines += inner.lines + [f"{b.indent}  scf.yield {', '.join(new)} : {types}", f"{b.indent}}}"]
            products = [f"{result}#{r}" for r in range(self.count)]
        for d in range(looped, dim):
            products = accumulate(b, nest.index_const(d), products)
        if node.op == "dot":
            return products
        at = b.emit(f"arith.addi {y_start}, {nest.index_const(dim * nest.lanes)} : index", "o")
        y_norm = self._vector_load(b, y_memref, at, mask)
        minus_two = b.const(-2.0)
        return [b.max(b.fma(minus_two, p, b.add(self.broadcast(make("sqnorm2", x), r)[0], y_norm)), zero)
                for r, p in enumerate(products)]

    def _j_lanes(self, b: Builder, j: str) -> str:
        """The int64 indices j, j+1, ..., j+L-1 (for arg-reductions)."""
        lanes = self.nest.lanes
        j64 = b.emit(f"arith.index_cast {j} : index to i64", "q")
        splat = b.emit(f"vector.broadcast {j64} : i64 to vector<{lanes}xi64>", "q")
        return b.emit(f"arith.addi {splat}, {self.nest.iota} : vector<{lanes}xi64>", "q")

    def _step(self, b: Builder, j: str, state: list[str], mask: str | None) -> list[str]:
        acc, per_row = self.nest.acc, len(self.nest.init)
        f_rows = self.body(b, j, mask)
        lanes = self._j_lanes(b, j) if acc.needs_index else None
        new: list[str] = []
        for r, f in enumerate(f_rows):
            new += acc.update(b, state[r * per_row : (r + 1) * per_row], f, mask, lanes)
        return new

    @property
    def state_types(self) -> str:
        return ", ".join(self.nest.acc.state_types() * self.count)

    def _j_loop(self, lo: str, hi: str, init: list[str], result: str, indent: str) -> list[str]:
        """scf.for j in [lo, hi) step L carrying the state of every row, named result#k."""
        nest = self.nest
        b = Builder(self.names, nest.elem, nest.lanes, indent=indent + "  ")
        state = [self.names.fresh("st") for _ in init]
        new = self._step(b, "%j", state, None)
        carried = ", ".join(f"{s} = {v}" for s, v in zip(state, init))
        return (
            [f"{indent}{result}:{len(init)} = scf.for %j = {lo} to {hi} step {nest.index_const(nest.lanes)} "
             f"iter_args({carried}) -> ({self.state_types}) {{"]
            + b.lines
            + [f"{indent}  scf.yield {', '.join(new)} : {self.state_types}", f"{indent}}}"]
        )

    def loop(self, lo: str, hi: str) -> list[str]:
        nest, e, lanes = self.nest, self.nest.elem, self.nest.lanes
        base = self.names.fresh("row")
        self.rows = [base] + [self.row.emit(f"arith.addi {base}, {nest.index_const(r)} : index", "row")
                              for r in range(1, self.count)]
        init = nest.init * self.count
        count, types = len(init), self.state_types
        zero_c = nest.index_const(0)
        if nest.options.sum_scheme == "block_sum":  # partial sums over blocks of j, then their sum
            block = nest.index_const(BLOCK_SUM_LANES * lanes)
            outer = [self.names.fresh("st") for _ in init]
            carried = ", ".join(f"{s} = {v}" for s, v in zip(outer, init))
            lines = [f"      %loop:{count} = scf.for %jb = {zero_c} to {nest.n_full} step {block} "
                     f"iter_args({carried}) -> ({types}) {{",
                     f"        %jb_end = arith.addi %jb, {block} : index",
                     f"        %jb_hi = arith.minui %jb_end, {nest.n_full} : index"]
            lines += self._j_loop("%jb", "%jb_hi", init, "%block", "        ")
            merge_b = Builder(self.names, e, lanes, indent="        ")
            merged = nest.acc.merge(merge_b, outer, [f"%block#{k}" for k in range(count)])
            lines += merge_b.lines + [f"        scf.yield {', '.join(merged)} : {types}", "      }"]
        else:
            lines = self._j_loop(zero_c, nest.n_full, init, "%loop", "      ")

        tail_b = Builder(self.names, e, lanes, indent="        ", once=True)
        mask = tail_b.emit(f"vector.create_mask {nest.rem} : vector<{lanes}xi1>", "m")
        after_loop = [f"%loop#{k}" for k in range(count)]
        tail_state = self._step(tail_b, nest.n_full, after_loop, mask)
        has_tail = self.names.fresh("m")
        lines.append(f"      {has_tail} = arith.cmpi ne, {nest.rem}, {zero_c} : index")
        lines.append(f"      %total:{count} = scf.if {has_tail} -> ({types}) {{")
        lines += tail_b.lines
        lines.append(f"        scf.yield {', '.join(tail_state)} : {types}")
        lines.append("      } else {")
        lines.append(f"        scf.yield {', '.join(after_loop)} : {types}")
        lines.append("      }")

        per_row = len(nest.init)
        for r in range(self.count):
            finish_b = Builder(self.names, e, None, indent="      ")
            state = [f"%total#{k}" for k in range(r * per_row, (r + 1) * per_row)]
            values, indices = nest.acc.finish(finish_b, state)
            lines += finish_b.lines
            lines += self._stores(values, "%out", e, self.rows[r])
            lines += self._stores(indices, "%out_idx", "i64", self.rows[r])
        return ([f"    scf.for {base} = {lo} to {hi} step {nest.index_const(self.count)} {{"]
                + self.row.lines + lines + ["    }"])

    def _stores(self, scalars: list[str], memref: str, elem: str, row: str) -> list[str]:
        if not scalars:
            return []
        nest = self.nest
        base = self.names.fresh("o")
        lines = [f"      {base} = arith.muli {row}, {nest.index_const(len(scalars))} : index"]
        for k, value in enumerate(scalars):
            offset = self.names.fresh("o")
            lines.append(f"      {offset} = arith.addi {base}, {nest.index_const(k)} : index")
            lines.append(f"      memref.store {value}, {memref}[{offset}] : memref<?x{elem}>")
        return lines


def _tree_sum(b: Builder, terms: list[str]) -> str:
    while len(terms) > 1:
        paired = [b.add(terms[k], terms[k + 1]) for k in range(0, len(terms) - 1, 2)]
        terms = paired + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def _sum_of_products(b: Builder, xs: list[str], ys: list[str] | None = None, subtract: bool = False) -> str:
    """sum_k xs[k] * ys[k] (ys = xs if None), or sum_k (xs[k] - ys[k])^2 if subtract, as four interleaved
    multiply-add chains, each term formed just before it is added: few live values (a wide formula would
    otherwise hold every term in a register) and enough independent work to fill the pipeline. Up to four
    terms, one chain: the rows of a block and the lanes already give the pipeline independent work."""
    count = 1 if len(xs) <= CHAINS else CHAINS
    chains: list[str] = []
    for k, x in enumerate(xs):
        y = x if ys is None else ys[k]
        if subtract:
            x = y = b.sub(x, y)
        if k < count:
            chains.append(b.mul(x, y))
        else:
            chains[k % count] = b.fma(x, y, chains[k % count])
    return _tree_sum(b, chains)


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


_ARITH = {"add": "addf", "sub": "subf", "mul": "mulf", "div": "divf"}
_COMPARE = {"lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge", "eq": "oeq", "ne": "une"}
_MATH = {"sqrt": "sqrt", "abs": "absf", "floor": "floor"}


def _elementwise(b: Builder, node: Node, x: list[str]) -> list[str]:
    """One component of a unary elementwise op, for each component."""
    op = node.op
    one, zero = (lambda: b.const(1.0)), (lambda: b.const(0.0))
    if op in _MATH:
        return [b.math(_MATH[op], c) for c in x]
    table = {
        "neg": b.neg,
        "exp": lambda c: mathlib.exp(b, c),
        "log": lambda c: mathlib.log(b, c),
        "sin": lambda c: mathlib.sin(b, c),
        "cos": lambda c: mathlib.cos(b, c),
        "asin": lambda c: mathlib.asin(b, c),
        "acos": lambda c: mathlib.acos(b, c),
        "atan": lambda c: mathlib.atan(b, c),
        "rsqrt": lambda c: b.select(b.cmp("oeq", c, zero()), zero(), b.div(one(), b.math("sqrt", c))),  # KeOps: 0
        "square": lambda c: b.mul(c, c),
        "pow": lambda c: _integer_power(b, c, node.attr("exponent")),
        "sign": lambda c: b.select(b.cmp("ogt", c, zero()), one(),
                                   b.select(b.cmp("olt", c, zero()), b.const(-1.0), zero())),
        # KeOps' definitions: x < 0 ? 0 : 1 and x < 0 ? 0 : x (so step(NaN) = 1 and relu(NaN) = NaN)
        "step": lambda c: b.select(b.cmp("olt", c, zero()), zero(), one()),
        "relu": lambda c: b.select(b.cmp("olt", c, zero()), zero(), c),
        "xlogx": lambda c: b.select(b.cmp("oeq", c, zero()), zero(), b.mul(c, mathlib.log(b, c))),
        "sinxdivx": lambda c: b.select(b.cmp("oeq", c, zero()), one(), b.div(mathlib.sin(b, c), c)),
        "round": lambda c: _round(b, c, node.attr("digits")),
    }
    return [table[op](c) for c in x]


def _round(b: Builder, x: str, digits: int) -> str:
    if digits == 0:
        return b.math("round", x)
    scale = b.const(10.0**digits)
    return b.div(b.math("round", b.mul(x, scale)), scale)


def _arg_extreme(b: Builder, x: list[str], predicate: str) -> str:
    """The index (as a float) of the first component that wins `predicate` against all before it."""
    best, index = x[0], b.const(0.0)
    for k, c in enumerate(x[1:], start=1):
        better = b.cmp(predicate, c, best)
        best = b.select(better, c, best)
        index = b.select(better, b.const(float(k)), index)
    return index


def compute(b: Builder, node: Node, args: list[list[str]]) -> list[str]:
    """The components of `node` given its operands' components, on builder b (scalars or vectors)."""
    op = node.op
    if op == "constant":
        return [b.const(node.attr("value"))]
    if len(args) > 1 and op not in ("dot", "sqdist", "concat"):  # elementwise, dimension-1 operands broadcast
        comps = [[a[k if len(a) > 1 else 0] for a in args] for k in range(node.dim)]
        if op in _ARITH:
            return [b.binary(_ARITH[op], x, y) for x, y in comps]
        if op in _COMPARE:
            return [b.select(b.cmp(_COMPARE[op], x, y), b.const(1.0), b.const(0.0)) for x, y in comps]
        if op == "atan2":
            return [mathlib.atan2(b, y, x) for y, x in comps]
        if op == "clamp":
            # KeOps' definition, x < lo ? lo : (x > hi ? hi : x): lo wins when lo > hi (torch: hi), NaN stays NaN
            return [b.select(b.cmp("olt", x, lo), lo, b.select(b.cmp("ogt", x, hi), hi, x)) for x, lo, hi in comps]
        if op == "ifelse":
            return [b.select(b.cmp("oge", f, b.const(0.0)), x, y) for f, x, y in comps]
    (x, *rest) = args
    if op in ELEMENTWISE_UNARY:
        return _elementwise(b, node, x)
    if op == "sum":
        return [_tree_sum(b, list(x))]
    if op == "sqnorm2":
        return [_sum_of_products(b, x)]
    if op == "dot":
        return [_sum_of_products(b, x, rest[0])]
    if op == "sqdist":
        return [_sum_of_products(b, x, rest[0], subtract=True)]
    if op in ("min", "max"):
        extreme = b.min if op == "min" else b.max
        result = x[0]
        for c in x[1:]:
            result = extreme(result, c)
        return [result]
    if op in ("argmin", "argmax"):
        return [_arg_extreme(b, x, "olt" if op == "argmin" else "ogt")]
    if op == "one_hot":
        rounded = b.math("roundeven", x[0])
        return [b.select(b.cmp("oeq", rounded, b.const(float(k))), b.const(1.0), b.const(0.0))
                for k in range(node.dim)]
    if op == "elem":
        return [x[node.attr("index")]]
    if op == "extract":
        start = node.attr("start")
        return x[start : start + node.attr("length")]
    if op == "concat":
        return list(x) + list(rest[0])
    raise ValueError(f"keir.{op} has no CPU lowering (derivative ops are expanded by keir passes first)")
