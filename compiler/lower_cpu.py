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
A reduction over i (axis 0) is the same loop with the roles of i and j swapped. Block-sparse (pykeops' ranges,
operands.BLOCK_SPARSE): the i loop runs over ranges of rows, and each row block's j loop over its list of
intervals, each a masked step, whole vectors and a masked step. A value of dimension
D < LOOP_DIM is unrolled into D SSA values; a wider one is computed component by component in loops
(components.py: consumers such as sum or sqdist carry their accumulators through a loop over the components,
and a wide formula keeps its reduction state in stack buffers, a slice per component), so the code does not
grow with D. Work that does not depend on j is computed once per i (or once per call) as scalars and
broadcast: the hoisting of DESIGN §7 (wide such values are stored in a buffer per row or per call).
Two products are lowered as a whole: exp(u) * w as `mathlib.exp_times` (`_exp_products`; where such a product
is what a plain sum adds, a step adds the products of all its rows with `mathlib.exp_product_sums`,
`_Rows._exp_sum_step`), and `K @ B` (a
scalar K times a wide j-variable, summed with block_sum) as a blocked matrix product (`_Rows._tiled_block`).
A loop-carried state over a wide product (K-min, min, argmin) runs groups of row blocks over chunks of j that
stay in the caches (`_Rows.chunked_loop`). Register tiles are sized for the host (register_tiles.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from keir.compiler import literals, mathlib
from keir.compiler.components import (
    CHAINS,
    EXPENSIVE,
    LOOP_CONSUMERS,
    LOOP_DIM,
    UNROLL,
    Breaks,
    Consumer,
    Index,
    consumer,
    is_wide,
    level_of,
)
from keir.compiler.kernel import Kernel
from keir.compiler.lowering_scaffold import IndexConstants, load_pair, memref_arguments, store_row
from keir.compiler.mlir_text import Builder, Names
from keir.compiler.op_lowering import compute, elementwise_component
from keir.compiler.operands import (
    BLOCK_SPARSE,
    VECTOR_LANES,
    WIDE_DIM,
    Operand,
    column_block_components,
    kernel_operands,
    loop_formula,
)
from keir.compiler.reductions import KMin, ReductionOptions, accumulator
from keir.compiler.register_tiles import RegisterTiles, host_register_tiles
from keir.dialect.node import Node, make, topological
from keir.dialect.ops import reduction_output_widths

BLOCK_SUM_LANES = 64  # block_sum: vectors per block
ROW_BLOCK = 4  # rows i that share each j vector
# ... where a wide product (the matrix-product micro-kernel) computes the formula's distances or dot products:
# there more rows per y_j vector pay, as many as the registers hold (RegisterTiles.wide_rows: on AVX-512 the
# D = 100 Gaussian 2.5x faster with 16 rows than with 4)
MAX_BLOCKED_STATE = 4  # accumulator vectors per row above which rows run one at a time (register pressure)
MAX_BLOCKED_SLOTS = 16  # ... except a K-min state of at most this many slots (see _LoopNest._blocked_kmin)
WIDE_UNROLL = 4  # components per iteration of the wide product's loop
MAX_LOOP_STATE = 4  # vectors carried by a loop over components (at least one row's)
# stack memory for the accumulators of a wide formula: above it rows run one at a time, and above it for one row
# the components are taken in chunks, each with its own pass over j
WIDE_STATE_BYTES = 1 << 19
# A loop-carried state over a wide product runs over chunks of about CHUNK_BYTES of y, each taken by
# SHARED_CHUNK_BLOCKS row blocks in turn, their states in stack memory between chunks (`_Rows.chunked_loop`), so
# that y comes from the caches: on AVX2, D = 128 K-NN at M = N = 5e4 (26 MB of y) streamed it from memory for
# every block of 4 rows (9.3 s; chunked 5.4 s)
CHUNK_BYTES = 1 << 18
SHARED_CHUNK_BLOCKS = 16
# K @ B (`_Rows._tiled_block`): register tiles of RegisterTiles.product_tile rows x components of B
TILED_ROW_BLOCK = 32  # rows of the block that share each pass over B (B's traffic from the caches bounds the product)


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


def lower_module(kernels: list[Kernel]) -> str:
    """to one scf/arith/math/vector loop nest per kernel (the CPU backend)"""
    return "module {\n" + "\n".join(lower_cpu(k).func_text for k in kernels) + "\n}\n"


def lower_cpu(kernel: Kernel, operands: tuple[Operand, ...] | None = None, block_sparse: bool = False,
              tiles: RegisterTiles | None = None) -> LoopKernel:
    """Lower `kernel`; `operands` fixes the signature (default: the variables it uses), so that a kernel
    whose passes removed a variable still takes the inputs of the formula it was compiled from.
    block_sparse: the function reduces over lists of j-intervals (pykeops' ranges; see BLOCK_SPARSE).
    tiles: the register tiles (default: the host's, `host_register_tiles`)."""
    reduce = kernel.result
    if reduce.op != "reduce":
        raise ValueError(f"only a keir.reduce can be lowered to a loop nest, not keir.{reduce.op}")
    formula = loop_formula(reduce)
    nest = _LoopNest(kernel.name, formula, kernel.dtype, reduce.attr("axis"), operands or kernel_operands(reduce),
                     ReductionOptions.of(reduce), block_sparse, tiles or host_register_tiles())
    return nest.build()


def _kernel_times_variable(formula: Node, options: ReductionOptions) -> tuple[Node, Node, int] | None:
    """(K, B, first component of B) where the formula is K * B, K a narrow scalar of i and j and B a wide
    j-variable, or a block of its components (keir.kernels.column_block_roots), summed with block_sum in the
    formula's dtype: `K @ B`, which `_Rows._tiled_block` computes as a blocked matrix product."""
    if options.kind != "sum" or options.sum_scheme != "block_sum" or options.dtype_acc:
        return None
    start = 0
    if formula.op == "extract":
        start, formula = formula.attr("start"), formula.args[0]
    if formula.op != "mul":
        return None
    for kernel, variable in (formula.args, formula.args[::-1]):
        if (variable.op == "var" and variable.attr("category") == "j" and is_wide(variable) and kernel.dim == 1
                and "j" in kernel.deps and not is_wide(kernel)):
            return kernel, variable, start
    return None


def _exp_products(order: list[Node]) -> dict[Node, tuple[Node, Node]]:
    """The products exp(u) * w of the j loop that `mathlib.exp_times` computes in one (a Gaussian's kernel
    value times its weight), by product node: (the exp, w). Only an exp that depends on j, is narrow and has
    no other user: otherwise its value is computed anyway."""
    users: dict[Node, int] = {}
    for node in order:
        for a in node.args:
            users[a] = users.get(a, 0) + 1
    products = {}
    for node in order:
        if node.op != "mul" or is_wide(node):
            continue
        for exp_node, weight in (node.args, node.args[::-1]):
            if exp_node.op == "exp" and "j" in exp_node.deps and users[exp_node] == 1 and not is_wide(weight):
                products[node] = (exp_node, weight)
                break
    return products


class _LoopNest:
    """Builds the function. Rows are handled in blocks of `ROW_BLOCK`: each j vector (a load of y_j) then
    serves several rows i, which divides the memory traffic of wide j-variables by the block size; the rows
    left over run one at a time."""

    def __init__(self, symbol: str, formula: Node, elem: str, axis: int, operands: tuple[Operand, ...],
                 options: ReductionOptions, block_sparse: bool, tiles: RegisterTiles):
        self.symbol, self.formula, self.elem, self.axis = symbol, formula, elem, axis
        self.options, self.block_sparse, self.tiles = options, block_sparse, tiles
        self.acc = accumulator(options, elem, VECTOR_LANES[elem])
        self.lanes = VECTOR_LANES[elem]
        self.names = Names()
        self.entry = Builder(self.names, elem, None)
        self.index_const = IndexConstants(self.entry)
        self.entry_scalars: dict[Node, list[str]] = {}
        self.entry_broadcasts: dict[str, str] = {}
        self.operands = operands
        order = topological(formula)
        self.wide = tuple(n for n in order if _is_wide_product(n))
        self.exp_products = _exp_products(order)
        self.tiled_product = None if block_sparse else _kernel_times_variable(formula, options)
        # values of dimension >= LOOP_DIM: component loops (components.py)
        self.wide_root = is_wide(formula)
        self.breaks = Breaks()
        self.entry_site = _Site(self.entry, "p")
        self.entry_buffers: dict[Node, str] = {}
        self.j_consumers = [n for n in order if n.op in LOOP_CONSUMERS and level_of(n) == "j"
                            and n not in self.wide and is_wide(n.args[0])]
        self._below: dict[Node, frozenset[Node]] = {}
        self._expensive: dict[tuple[Node, str], bool] = {}
        self.stack_buffers = 0  # stack buffers allocated

    @property
    def vtype(self) -> str:
        return f"vector<{self.lanes}x{self.elem}>"

    def alloca(self, memref: str) -> str:
        """A stack buffer of type `memref`, allocated once at function entry."""
        self.stack_buffers += 1
        return self.entry.emit(f"memref.alloca() : {memref}", "buf")

    def below(self, node: Node) -> frozenset[Node]:
        if node not in self._below:
            self._below[node] = frozenset(topological(node))
        return self._below[node]

    def expensive(self, node: Node, level: str) -> bool:
        """Whether a component of wide `node`, computed at `level`, involves a polynomial (exp, log, ...)."""
        key = (node, level)
        if key not in self._expensive:
            self._expensive[key] = is_wide(node) and level_of(node) == level and (
                node.op in EXPENSIVE or any(self.expensive(a, level) for a in node.args))
        return self._expensive[key]

    def build(self) -> LoopKernel:
        e, lanes = self.elem, self.lanes
        entry_v = Builder(self.names, e, lanes, self.entry.lines)
        if self.wide_root:
            self.init = self.acc.head_init(entry_v)
            self.component_init = self.acc.component_init(entry_v)
        else:
            self.init = self.acc.init(entry_v)
        if self.acc.needs_index:
            self.iota = self.entry.emit(literals.vector_constant(list(range(lanes)), f"vector<{lanes}xi64>"), "q")
        if not self.block_sparse:
            self.rem = self.entry.emit(f"arith.remui %n, {self.index_const(lanes)} : index", "o")
            self.n_full = self.entry.emit(f"arith.subi %n, {self.rem} : index", "o")
        block = 1
        if self._blocked_kmin():  # with the wide product, its rows (AVX-512's 16: D = 128 K-NN 15 % faster than 8)
            block = self.tiles.wide_rows if self.wide else ROW_BLOCK
        elif len(self.init) <= MAX_BLOCKED_STATE:
            block = TILED_ROW_BLOCK if self.tiled_product else self.tiles.wide_rows if self.wide else ROW_BLOCK
        if self.wide_root:
            first, per_component = self.acc.head_dims, self.state_bytes_per_component()
            self.chunk_width = self.formula.dim - first
            if block * self.chunk_width * per_component > WIDE_STATE_BYTES:
                block = 1
                self.chunk_width = min(self.chunk_width, max(1, WIDE_STATE_BYTES // per_component))
            self.chunks = [(k, min(k + self.chunk_width, self.formula.dim))
                           for k in range(first, self.formula.dim, self.chunk_width)]
        if self.block_sparse:
            lines = self._ranges_loop(block)
        else:
            lines = self._row_loops(self.entry, "%i0", "%i1", block)
        floats, indices = self.widths
        args = memref_arguments(self.operands, e, floats, indices)
        if self.block_sparse:
            args += [f"{name}: memref<?xi64>" for name in BLOCK_SPARSE]
        args += ["%i0: index", "%i1: index", "%n: index"]
        # Loops that fill or copy a stack buffer would become calls of memset/memcpy, which kernels cannot link.
        attributes = ' attributes {passthrough = ["no-builtins"]}' if self.stack_buffers else ""
        text = "\n".join([f"func.func @{self.symbol}({', '.join(args)}){attributes} {{"] + self.entry.lines + lines
                         + ["    return", "}"])
        return LoopKernel(self.symbol, self.operands, floats, indices, self.axis, text)

    def _blocked_kmin(self) -> bool:
        """A K-min state of up to MAX_BLOCKED_SLOTS slots per row is blocked too: its loop touches only the K-th
        best until a term beats it, so the rest lives in stack slots at no cost, and sharing each y_j vector
        between rows halves the time from D = 16 on; larger states compile slowly and gain nothing."""
        return isinstance(self.acc, KMin) and self.options.k * self.options.dim <= MAX_BLOCKED_SLOTS

    def _row_loops(self, b: Builder, lo: str, hi: str, block: int) -> list[str]:
        """The loops over rows [lo, hi): blocks of `block` rows, then the rows left one at a time (where they
        start is computed in b, which runs before the loops)."""
        if block == 1:
            return _Rows(self, 1).loop(lo, hi)
        count = b.emit(f"arith.subi {hi}, {lo} : index", "o")
        blocks = b.emit(f"arith.divui {count}, {self.index_const(block)} : index", "o")
        span = b.emit(f"arith.muli {blocks}, {self.index_const(block)} : index", "o")
        split = b.emit(f"arith.addi {lo}, {span} : index", "o")
        if self._chunked_j():
            return _Rows(self, block).chunked_loop(lo, split, SHARED_CHUNK_BLOCKS) + _Rows(self, 1).loop(split, hi)
        return _Rows(self, block).loop(lo, split) + _Rows(self, 1).loop(split, hi)

    def _chunked_j(self) -> bool:
        """Whether row blocks share chunks of j (`_Rows.chunked_loop`): a loop-carried state (no block_sum, not
        a wide formula) over a wide product, whose y is read once per row block."""
        return (bool(self.wide) and not self.wide_root and not self.block_sparse
                and self.options.sum_scheme != "block_sum")

    def chunk_lanes(self) -> int:
        """j per chunk of `_Rows.chunked_loop`: about CHUNK_BYTES of the wide j-variables, whole vectors."""
        ys = {a for n in self.wide for a in n.args if a.attr("category") == "j"}
        bytes_per_j = sum(column_block_components(y.dim) for y in ys) * (4 if self.elem == "f32" else 8)
        return max(1, CHUNK_BYTES // (bytes_per_j * self.lanes)) * self.lanes

    def _ranges_loop(self, block: int) -> list[str]:
        """Block-sparse: for each i-range r in [%i0, %i1), its rows, each reduced over its j-intervals (see
        BLOCK_SPARSE)."""
        b = Builder(self.names, self.elem, None, indent="      ")
        one = self.index_const(1)
        lo, hi = load_pair(b, "%ranges", "%r", self.index_const)
        self.interval_bounds = load_pair(b, "%slices", "%r", self.index_const)
        rows = self._row_loops(b, lo, hi, block)
        return [f"    scf.for %r = %i0 to %i1 step {one} {{"] + b.lines + rows + ["    }"]

    @property
    def widths(self) -> tuple[int, int]:
        o = self.options
        return reduction_output_widths(o.kind, o.dim, o.k)

    def state_bytes_per_component(self) -> int:
        """Memory for one row's accumulators of one component of a wide formula."""
        lane_bytes = sum(int(t.split("x")[1][1:].rstrip(">")) // 8 for t in self.acc.component_types())
        return self.lanes * lane_bytes


@dataclass
class _Site:
    """Where components of wide values are emitted: a builder, the loop level it runs at ("j": vectors in the j
    loop, "i": scalars once per row, "p": scalars once per call), the j tail's mask, and the values emitted
    there so far (a loop body sees those of the code around it, not the other way round)."""

    b: Builder
    level: str
    mask: str | None = None
    memo: dict = field(default_factory=dict)

    def nested(self, b: Builder) -> _Site:
        return _Site(b, self.level, self.mask, dict(self.memo))


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
        self.row_site = _Site(self.row, "i")
        self.row_buffers: dict[Node, str] = {}
        self.row_starts: dict[tuple[int, int], str] = {}
        self.stored: set[tuple[Node, int]] = set()

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
        if node.op != "var" and any(is_wide(a) for a in node.args):
            return self.consume_whole(nest.entry_site if b is nest.entry else self.row_site, node, r)
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
        """The formula at lanes j..j+L-1 for each row of the block (for a wide formula: only what comes before
        its components, which `_wide_step` computes)."""
        self._begin_body(b, j, mask)
        if self.nest.wide_root:
            return []
        return [self.value(self.nest.formula, r) for r in range(self.count)]

    def _begin_body(self, b: Builder, j: str, mask: str | None) -> None:
        """Start the values of a j step: none yet but the wide products (`wide_product`)."""
        self.jb, self.j = b, j
        self.jsite = _Site(b, "j", mask)
        self.values: dict[tuple[Node, int], list[str]] = {}
        self.j_starts: dict[int, str] = {}
        for node in self.nest.wide:
            for r, product in enumerate(self.wide_product(b, node, j, mask)):
                self.values[(node, r)] = [product]

    def value(self, node: Node, r: int) -> list[str]:
        """The components of narrow `node` (dimension < LOOP_DIM) in the j loop, for row r."""
        if "j" not in node.deps:
            return self.broadcast(node, r)
        key = (node, r if "i" in node.deps else 0)  # j-only values are shared by the rows
        if key not in self.values:
            b, mask = self.jb, self.jsite.mask
            if node.op == "var":
                self.values[key] = [self.load_j(b, node, self.j, d, mask) for d in range(node.dim)]
            elif any(is_wide(a) for a in node.args):
                self._consume_j(node, key[1])
            elif node in self.nest.exp_products:
                exp_node, weight = self.nest.exp_products[node]
                xs, ws = self.value(exp_node.args[0], r), self.value(weight, r)
                self.values[key] = [b.routine("exp_times", xs[k % len(xs)], ws[k % len(ws)])
                                    for k in range(node.dim)]
            else:
                self.values[key] = compute(b, node, [self.value(a, r) for a in node.args])
        return self.values[key]

    # values of dimension >= LOOP_DIM: computed component by component in loops (components.py) -----------
    def component(self, site: _Site, node: Node, r: int, index: Index) -> str:
        """Component `index` of `node` for row r at `site`: a vector in the j loop, a scalar elsewhere."""
        nest = self.nest
        if not is_wide(node) or node in nest.wide:  # a narrow value, computed whole before any loop
            values = self.narrow(site, node, r)
            if len(values) == 1:
                return values[0]
            assert index.base is None, "a narrow piece of a wide value is read at static components"
            return values[index.offset]
        row = r if "i" in node.deps else 0
        if level_of(node) != site.level:  # computed by an outer loop: read from memory
            key = ("outer", node, row, index.key)
            if key not in site.memo:
                scalar = self.outer_component(site, node, row, index)
                if site.b.lanes is not None:
                    scalar = site.b.emit(f"vector.broadcast {scalar} : {nest.elem} to {nest.vtype}", "b")
                site.memo[key] = scalar
            return site.memo[key]
        key = (node, row, index.key)
        if key in site.memo:
            return site.memo[key]
        b, op = site.b, node.op
        if op == "var":
            value = self.load_component(site, node, row, index)
        elif op == "extract":
            value = self.component(site, node.args[0], r, index.shifted(node.attr("start")))
        elif op == "concat":
            first, second = node.args
            value = (self.component(site, first, r, index) if index.hi <= first.dim
                     else self.component(site, second, r, index.shifted(-first.dim)))
        elif op == "one_hot":
            rounded = b.math("roundeven", self.narrow(site, node.args[0], r)[0])
            value = b.select(b.cmp("oeq", rounded, self.index_float(site, index)), b.const(1.0), b.const(0.0))
        else:
            value = elementwise_component(b, node, [self.component(site, a, r, index) for a in node.args])
        site.memo[key] = value
        return value

    def narrow(self, site: _Site, node: Node, r: int) -> list[str]:
        if site.level == "j":
            return self.value(node, r)
        return self.scalar(node, r)

    def index_value(self, site: _Site, index: Index) -> str:
        if index.base is None:
            return self.nest.index_const(index.offset)
        if index.offset == 0:
            return index.base
        key = ("index", index.key)
        if key not in site.memo:
            site.memo[key] = site.b.emit(
                f"arith.addi {index.base}, {self.nest.index_const(index.offset)} : index", "o")
        return site.memo[key]

    def index_float(self, site: _Site, index: Index) -> str:
        """The component's index as a float of the site's type (argmin's result, one_hot's comparison)."""
        b, elem = site.b, self.nest.elem
        if index.base is None:
            return b.const(float(index.offset))
        key = ("float", index.key)
        if key not in site.memo:
            i64 = b.emit(f"arith.index_cast {self.index_value(site, index)} : index to i64", "q")
            value = b.emit(f"arith.sitofp {i64} : i64 to {elem}")
            if b.lanes is not None:
                value = b.emit(f"vector.broadcast {value} : {elem} to {b.type}", "b")
            site.memo[key] = value
        return site.memo[key]

    def row_start(self, dim: int, r: int) -> str:
        """rows[r] * dim, once per row."""
        if (dim, r) not in self.row_starts:
            self.row_starts[(dim, r)] = self.row.emit(
                f"arith.muli {self.rows[r]}, {self.nest.index_const(dim)} : index", "o")
        return self.row_starts[(dim, r)]

    def load_component(self, site: _Site, node: Node, r: int, index: Index) -> str:
        """Component `index` of variable `node`: lanes j..j+L-1 of a j-variable, else a scalar."""
        nest, b = self.nest, site.b
        memref = f"%a{node.attr('index')}"
        category = node.attr("category")
        if category == "j":
            components = column_block_components(node.dim)
            if components not in self.j_starts:
                self.j_starts[components] = self.jb.emit(
                    f"arith.muli {self.j}, {nest.index_const(components)} : index", "o")
            if index.base is None:
                scaled = nest.index_const(index.offset * nest.lanes)
            else:
                scaled = b.emit(f"arith.muli {self.index_value(site, index)}, {nest.index_const(nest.lanes)} : index",
                                "o")
            offset = b.emit(f"arith.addi {self.j_starts[components]}, {scaled} : index", "o")
            return self._vector_load(b, memref, offset, site.mask)
        k = self.index_value(site, index)
        offset = k if category == "p" else b.emit(f"arith.addi {self.row_start(node.dim, r)}, {k} : index", "o")
        return b.emit(f"memref.load {memref}[{offset}] : memref<?x{nest.elem}>")

    def outer_component(self, site: _Site, node: Node, r: int, index: Index) -> str:
        """A scalar component of a wide value of an outer level: an input, or the buffer it was stored in."""
        if node.op == "var":
            return self.load_component(site, node, r, index)
        buffer, memref, start = self.stored_buffer(node, r)
        k = self.index_value(site, index)
        offset = k if start is None else site.b.emit(f"arith.addi {k}, {start} : index", "o")
        return site.b.emit(f"memref.load {buffer}[{offset}] : {memref}")

    def stored_buffer(self, node: Node, r: int) -> tuple[str, str, str | None]:
        """(buffer, its memref type, offset of row r or None) holding every component of `node`, an i-only (per
        row) or parameter-only (per call) value, written by a loop at that level on first use."""
        nest = self.nest
        if level_of(node) == "p":
            memref = f"memref<{node.dim}x{nest.elem}>"
            if node not in nest.entry_buffers:
                nest.entry_buffers[node] = nest.alloca(memref)
                self._store(nest.entry_site, node, 0, nest.entry_buffers[node], memref, None)
            return nest.entry_buffers[node], memref, None
        memref = f"memref<{self.count * node.dim}x{nest.elem}>"
        if node not in self.row_buffers:
            self.row_buffers[node] = nest.alloca(memref)
        start = nest.index_const(r * node.dim)
        if (node, r) not in self.stored:
            self.stored.add((node, r))
            self._store(self.row_site, node, r, self.row_buffers[node], memref, start)
        return self.row_buffers[node], memref, start

    def _store(self, site: _Site, node: Node, r: int, buffer: str, memref: str, start: str | None) -> None:
        def step(s: _Site, index: Index, state: list[str]) -> list[str]:
            value = self.component(s, node, r, index)
            k = self.index_value(s, index)
            offset = k if start is None else s.b.emit(f"arith.addi {k}, {start} : index", "o")
            s.b.lines.append(f"{s.b.indent}memref.store {value}, {buffer}[{offset}] : {memref}")
            return []

        unroll = 1 if self.nest.expensive(node, site.level) else UNROLL
        self.component_loop(site, self.nest.breaks.pieces([node], site.level), 0, [], step, unroll)

    def component_loop(self, site: _Site, pieces: tuple[tuple[int, int], ...], start: int, state: list[str],
                       step: Callable[[_Site, Index, list[str]], list[str]], unroll: int) -> list[str]:
        """Run `step` (site, component, state) -> state over the components from `start` on, piece by piece: a
        piece shorter than LOOP_DIM unrolled, a longer one as an scf.for taking `unroll` components per
        iteration (the rest unrolled after it). The state is loop-carried, all of the site's type."""
        nest = self.nest
        for lo, hi in pieces:
            first = max(lo, start)
            if hi - first < LOOP_DIM:
                for k in range(first, hi):
                    state = step(site, Index.static(k), state)
                continue
            count = (hi - first) // unroll * unroll
            body = Builder(self.names, nest.elem, site.b.lanes, indent=site.b.indent + "  ", once=site.b.once)
            inner = site.nested(body)
            d = self.names.fresh("d")
            carried = [self.names.fresh("c") for _ in state]
            new = carried
            for u in range(unroll):
                residue = (first + u) % CHAINS if unroll % CHAINS == 0 else None
                new = step(inner, Index(d, u, lo, hi, residue), new)
            bounds = (f"{d} = {nest.index_const(first)} to {nest.index_const(first + count)} "
                      f"step {nest.index_const(unroll)}")
            state = _scf_for(site.b, bounds, carried, state, [site.b.type] * len(state), body.lines, new)
            for k in range(first + count, hi):
                state = step(site, Index.static(k), state)
        return state

    def consume_whole(self, site: _Site, node: Node, r: int) -> list[str]:
        """A narrow value computed from wide operands, at a site outside the j loop."""
        if node.op in ("elem", "extract"):
            return [self.component(site, node.args[0], r, Index.static(k)) for k in _picked(node)]
        return self.consume(site, [(node, r)])

    def _consume_j(self, node: Node, r: int) -> None:
        """A narrow value of wide operands in the j loop, into self.values. A loop consumer runs for every row
        of the block at once, with every other consumer that can share its loop: same pieces, independent."""
        nest = self.nest
        if node.op in ("elem", "extract"):
            self.values[(node, r)] = [self.component(self.jsite, node.args[0], r, Index.static(k))
                                      for k in _picked(node)]
            return

        def signature(c: Node) -> tuple:
            return Consumer.start(c.op), nest.breaks.pieces(list(c.args), "j")

        group = [node] + [c for c in nest.j_consumers if c is not node and (c, 0) not in self.values
                          and signature(c) == signature(node)
                          and c not in nest.below(node) and node not in nest.below(c)]
        pairs = [(c, q) for c in group for q in (range(self.count) if "i" in c.deps else [0])]
        # at most MAX_LOOP_STATE vectors carried by one loop (register pressure): more rows, more loops
        loops: list[list[tuple[Node, int]]] = [[]]
        for pair in pairs:
            if loops[-1] and sum(Consumer.state_size(c.op) for c, _ in loops[-1] + [pair]) > MAX_LOOP_STATE:
                loops.append([])
            loops[-1].append(pair)
        for part in loops:
            for (c, q), value in zip(part, self.consume(self.jsite, part)):
                self.values[(c, q)] = [value]

    def consume(self, site: _Site, pairs: list[tuple[Node, int]]) -> list[str]:
        """Loop consumers (sum, sqnorm2, dot, sqdist, min, max, argmin, argmax of wide operands), one per
        (node, row), in one loop over their components: one value each."""
        nest = self.nest
        operands = [a for node, _ in pairs for a in node.args]
        unroll = 1 if any(nest.expensive(a, site.level) for a in operands) else UNROLL
        chains = max(1, CHAINS // len(pairs)) if unroll % CHAINS == 0 else 1
        kinds = [consumer(node.op, chains) for node, _ in pairs]
        start = Consumer.start(pairs[0][0].op)
        state: list[str] = []
        widths = []
        for (node, r), kind in zip(pairs, kinds):
            first = [self.component(site, a, r, Index.static(0)) for a in node.args] if start else None
            init = kind.init(site.b, first)
            state += init
            widths.append(len(init))

        def step(s: _Site, index: Index, state: list[str]) -> list[str]:
            new, at = [], 0
            for (node, r), kind, width in zip(pairs, kinds, widths):
                comps = [self.component(s, a, r, index) for a in node.args]
                new += kind.step(s.b, state[at : at + width], comps, index, lambda: self.index_float(s, index))
                at += width
            return new

        state = self.component_loop(site, nest.breaks.pieces(operands, site.level), start, state, step, unroll)
        results, at = [], 0
        for kind, width in zip(kinds, widths):
            results.append(kind.finish(site.b, state[at : at + width]))
            at += width
        return results

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
        if self.nest.wide_root:
            return self._wide_step(b, j, state, mask)
        acc, per_row = self.nest.acc, len(self.nest.init)
        if mask is None and acc.adds_exp_products and self.nest.formula in self.nest.exp_products:
            return self._exp_sum_step(b, j, state)
        f_rows = self.body(b, j, mask)
        lanes = self._j_lanes(b, j) if acc.needs_index else None
        states = [state[r * per_row : (r + 1) * per_row] for r in range(len(f_rows))]
        return acc.update_rows(b, states, f_rows, mask, lanes)

    def _exp_sum_step(self, b: Builder, j: str, state: list[str]) -> list[str]:
        """The step of a sum of exp(u) * w (a Gaussian's): every row's terms go to `mathlib.exp_product_sums`,
        which adds each to its sum by one FMA and chooses exp's path once for the block."""
        exp_node, weight = self.nest.exp_products[self.nest.formula]
        dim = self.nest.formula.dim
        self._begin_body(b, j, None)
        terms = []
        for r in range(self.count):
            xs, ws = self.value(exp_node.args[0], r), self.value(weight, r)
            terms += [(xs[k % len(xs)], ws[k % len(ws)], state[r * dim + k]) for k in range(dim)]
        return mathlib.exp_product_sums(b, terms)

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
        base = self._name_rows()
        if nest.wide_root:
            return self._wide_loop(base, lo, hi)
        init = nest.init * self.count
        b = Builder(self.names, e, lanes, indent="      ")
        types = list(nest.acc.state_types() * self.count)
        if nest.block_sparse:
            total = self._over_intervals(b, init, types, self._interior)
        else:
            state = self._interior(b, nest.index_const(0), nest.n_full, init)
            has_tail = b.emit(f"arith.cmpi ne, {nest.rem}, {nest.index_const(0)} : index", "m")
            total = self._masked_step(b, nest.n_full, None, nest.rem, has_tail, state, types)
        return ([f"    scf.for {base} = {lo} to {hi} step {nest.index_const(self.count)} {{"]
                + self.row.lines + b.lines + self._finish_rows(total) + ["    }"])

    def _name_rows(self) -> str:
        """The block's first row index (a name for the loop to define) and self.rows, each row's index."""
        base = self.names.fresh("row")
        self.rows = [base] + [self.row.emit(f"arith.addi {base}, {self.nest.index_const(r)} : index", "row")
                              for r in range(1, self.count)]
        return base

    def chunked_loop(self, lo: str, hi: str, blocks: int) -> list[str]:
        """`loop` for groups of `blocks` row blocks ([lo, hi) a multiple of the block; the last group may have
        fewer) that share each chunk of j: for each chunk, each block's state from stack memory, its j loop over
        the chunk, the state back; after the last chunk, each block's masked tail and outputs. The blocks' i-only
        work is redone for each chunk (a chunk's pairs outnumber a row's values by the chunk's length)."""
        nest, e, lanes = self.nest, self.nest.elem, self.nest.lanes
        types = list(nest.acc.state_types() * self.count)
        buffers = [(nest.alloca(f"memref<{blocks}x{t}>"), f"memref<{blocks}x{t}>") for t in types]
        group, block, base = self.names.fresh("sb"), self.names.fresh("s"), self._name_rows()
        indent = "        "

        def stored(b: Builder, state: list[str]) -> None:
            for value, (buffer, memref) in zip(state, buffers):
                b.lines.append(f"{b.indent}memref.store {value}, {buffer}[{block}] : {memref}")

        def loaded(b: Builder) -> list[str]:
            return [b.emit(f"memref.load {buffer}[{block}] : {memref}") for buffer, memref in buffers]

        chunk = nest.index_const(nest.chunk_lanes())
        jc = self.names.fresh("jc")
        steps = Builder(self.names, e, lanes, indent=indent + "    ")
        end = steps.emit(f"arith.addi {jc}, {chunk} : index", "o")
        jc_hi = steps.emit(f"arith.minui {end}, {nest.n_full} : index", "o")
        stored(steps, self._interior(steps, jc, jc_hi, loaded(steps)))
        tail = Builder(self.names, e, lanes, indent=indent + "  ")
        has_tail = tail.emit(f"arith.cmpi ne, {nest.rem}, {nest.index_const(0)} : index", "m")
        total = self._masked_step(tail, nest.n_full, None, nest.rem, has_tail, loaded(tail), types)
        tail.lines += self._finish_rows(total)

        def over_blocks(body: list[str], depth: str) -> list[str]:
            """scf.for over the group's blocks, each at its rows (the block's i-only work first)."""
            offset = self.names.fresh("o")
            return ([f"{depth}scf.for {block} = {nest.index_const(0)} to {in_group} step "
                     f"{nest.index_const(1)} {{",
                     f"{depth}  {offset} = arith.muli {block}, {nest.index_const(self.count)} : index",
                     f"{depth}  {base} = arith.addi {group}, {offset} : index"]
                    + self.row.lines + body + [f"{depth}}}"])

        init = Builder(self.names, e, lanes, indent=indent + "  ")
        stored(init, nest.init * self.count)
        start = Builder(self.names, e, lanes, indent="      ")
        left = start.emit(f"arith.subi {hi}, {group} : index", "o")
        whole = start.emit(f"arith.divui {left}, {nest.index_const(self.count)} : index", "o")
        in_group = start.emit(f"arith.minui {whole}, {nest.index_const(blocks)} : index", "o")
        step = nest.index_const(self.count * blocks)
        return ([f"    scf.for {group} = {lo} to {hi} step {step} {{"] + start.lines
                + [f"      scf.for {block} = {nest.index_const(0)} to {in_group} step "
                   f"{nest.index_const(1)} {{"] + init.lines + ["      }"]
                + [f"      scf.for {jc} = {nest.index_const(0)} to {nest.n_full} step {chunk} {{"]
                + over_blocks(steps.lines, "        ") + ["      }"]
                + over_blocks(tail.lines, "      ") + ["    }"])

    def _finish_rows(self, state: list[str]) -> list[str]:
        """Each row's outputs from its final state."""
        nest, per_row = self.nest, len(self.nest.init)
        lines = []
        for r in range(self.count):
            finish_b = Builder(self.names, nest.elem, None, indent="      ")
            values, indices = nest.acc.finish(finish_b, state[r * per_row : (r + 1) * per_row])
            store_row(finish_b, nest.index_const, self.rows[r], values, "%out", nest.elem)
            store_row(finish_b, nest.index_const, self.rows[r], indices, "%out_idx", "i64")
            lines += finish_b.lines
        return lines

    def _interior(self, b: Builder, lo: str, hi: str, init: list[str]) -> list[str]:
        """The unmasked j steps over [lo, hi) (multiples of the vector width), from state `init` (block_sum:
        each block from the accumulator's start, then merged into the running state)."""
        nest, e, lanes = self.nest, self.nest.elem, self.nest.lanes
        if nest.options.sum_scheme != "block_sum":
            result = self.names.fresh("loop")
            b.lines += self._j_loop(lo, hi, init, result, b.indent)
            return [f"{result}#{k}" for k in range(len(init))]
        block = nest.index_const(BLOCK_SUM_LANES * lanes)  # partial sums over blocks of j, then their sum
        jb, outer = self.names.fresh("jb"), [self.names.fresh("st") for _ in init]
        body = Builder(self.names, e, lanes, indent=b.indent + "  ")
        end = body.emit(f"arith.addi {jb}, {block} : index", "o")
        jb_hi = body.emit(f"arith.minui {end}, {hi} : index", "o")
        result = self.names.fresh("block")
        body.lines += self._j_loop(jb, jb_hi, nest.init * self.count, result, body.indent)
        merged = nest.acc.merge(body, outer, [f"{result}#{k}" for k in range(len(init))])
        types = list(nest.acc.state_types() * self.count)
        return _scf_for(b, f"{jb} = {lo} to {hi} step {block}", outer, init, types, body.lines, merged)

    # block-sparse: the j loop over a list of intervals ---------------------------------------------------
    def _over_intervals(self, b: Builder, init: list[str], types: list[str],
                        interior: Callable[[Builder, str, str, list[str]], list[str]]) -> list[str]:
        """The rows' state after reducing over their j-intervals, each [start, end) an arbitrary pair: a
        masked step for the partial vector it starts in, `interior` over its whole vectors, a masked step
        for the partial vector it ends in."""
        nest = self.nest
        s, state = self.names.fresh("s"), [self.names.fresh("st") for _ in init]
        body = Builder(self.names, nest.elem, nest.lanes, indent=b.indent + "  ")
        start, end = load_pair(body, "%redranges", s, nest.index_const)
        state_now = self._interval(body, start, end, state, types, interior)
        first, last = nest.interval_bounds
        return _scf_for(b, f"{s} = {first} to {last} step {nest.index_const(1)}", state, init, types, body.lines,
                        state_now)

    def _interval(self, b: Builder, start: str, end: str, state: list[str], types: list[str],
                  interior: Callable[[Builder, str, str, list[str]], list[str]]) -> list[str]:
        """The state after the columns [start, end): the vector they start in (masked to [start, end)), the
        whole vectors, the vector they end in (masked to its lanes before end) unless that is the first."""
        nest = self.nest
        lanes, zero = nest.index_const(nest.lanes), nest.index_const(0)
        start_off = b.emit(f"arith.remui {start}, {lanes} : index", "o")
        head = b.emit(f"arith.subi {start}, {start_off} : index", "o")
        end_off = b.emit(f"arith.remui {end}, {lanes} : index", "o")
        whole_hi = b.emit(f"arith.subi {end}, {end_off} : index", "o")
        up = b.emit(f"arith.addi {start}, {nest.index_const(nest.lanes - 1)} : index", "o")
        whole_lo = b.emit(f"arith.subi {up}, {b.emit(f'arith.remui {up}, {lanes} : index', 'o')} : index", "o")

        starts_inside = b.emit(f"arith.cmpi ne, {start_off}, {zero} : index", "m")
        head_end = b.emit(f"arith.minui {b.emit(f'arith.subi {end}, {head} : index', 'o')}, {lanes} : index", "o")
        state = self._masked_step(b, head, start_off, head_end, starts_inside, state, types)
        state = interior(b, whole_lo, whole_hi, state)
        ends_inside = b.emit(f"arith.cmpi ne, {end_off}, {zero} : index", "m")
        past_head = b.emit(f"arith.cmpi uge, {whole_hi}, {whole_lo} : index", "m")
        tail = b.emit(f"arith.andi {ends_inside}, {past_head} : i1", "m")
        return self._masked_step(b, whole_hi, None, end_off, tail, state, types)

    def _masked_step(self, b: Builder, at: str, lo_lane: str | None, hi_lane: str, condition: str,
                     state: list[str], types: list[str]) -> list[str]:
        """If `condition`: the j step at lanes at..at+L-1, masked to lanes [lo_lane (or 0), hi_lane)."""
        nest = self.nest
        mb = Builder(self.names, nest.elem, nest.lanes, indent=b.indent + "  ", once=True)
        mask_type = f"vector<{nest.lanes}xi1>"
        mask = mb.emit(f"vector.create_mask {hi_lane} : {mask_type}", "m")
        if lo_lane is not None:
            below = mb.emit(f"vector.create_mask {lo_lane} : {mask_type}", "m")
            mask = mb.emit(f"arith.xori {mask}, {below} : {mask_type}", "m")
        return _scf_if(b, condition, types, mb.lines, self._step(mb, at, state, mask), state)

    # a wide formula: the reduction's state, a slice per component, in memory --------------------------------
    def _wide_loop(self, base: str, lo: str, hi: str) -> list[str]:
        """`loop` for a wide formula. The accumulators' component slices live in stack buffers (`self.buffers`,
        one per slot, indexed by row * width + component); each j step updates them in a loop over the
        components (`_wide_step`). The head (the weighted log-sum-exp's maximum) is loop-carried as usual."""
        nest = self.nest
        b = Builder(self.names, nest.elem, nest.lanes, indent="      ")
        buffers = [self._state_buffers(), self._state_buffers() if nest.options.sum_scheme == "block_sum" else []]
        for chunk in nest.chunks:
            self.chunk = chunk
            self._wide_chunk(b, *buffers)
        return ([f"    scf.for {base} = {lo} to {hi} step {nest.index_const(self.count)} {{"]
                + self.row.lines + b.lines + ["    }"])

    def _wide_chunk(self, b: Builder, outer: list[tuple[str, str]], inner: list[tuple[str, str]]) -> None:
        """The components self.chunk = [lo, hi) of a wide formula, for the rows of the block: a pass over j."""
        nest = self.nest
        init, types = nest.init * self.count, nest.acc.head_types() * self.count
        self.buffers, self.inner_buffers = outer, inner
        self._fill(b, outer)
        if nest.block_sparse:
            state = self._over_intervals(b, init, types, self._wide_interior)
        else:
            state = self._wide_interior(b, nest.index_const(0), nest.n_full, init)
            has_tail = b.emit(f"arith.cmpi ne, {nest.rem}, {nest.index_const(0)} : index", "m")
            state = self._masked_step(b, nest.n_full, None, nest.rem, has_tail, state, types)
        self._wide_finish(b, state)

    def _wide_interior(self, b: Builder, lo: str, hi: str, init: list[str]) -> list[str]:
        """`_interior` of a wide formula (state: the loop-carried heads, and self.buffers in memory)."""
        nest = self.nest
        if nest.options.sum_scheme != "block_sum":
            return self._wide_j_loop(b, lo, hi, init)
        outer, inner = self.buffers, self.inner_buffers
        block = nest.index_const(BLOCK_SUM_LANES * nest.lanes)
        jb, heads = self.names.fresh("jb"), [self.names.fresh("st") for _ in init]
        body = Builder(self.names, nest.elem, nest.lanes, indent=b.indent + "  ")
        end = body.emit(f"arith.addi {jb}, {block} : index", "o")
        jb_hi = body.emit(f"arith.minui {end}, {hi} : index", "o")
        self.buffers = inner
        if nest.tiled_product is not None:
            self._tiled_block(body, jb, jb_hi)
            block_heads: list[str] = []
        else:
            self._fill(body, inner)
            block_heads = self._wide_j_loop(body, jb, jb_hi, nest.init * self.count)
        merged = self._merge(body, heads, block_heads, outer, inner)
        self.buffers = outer
        types = self.nest.acc.head_types() * self.count
        return _scf_for(b, f"{jb} = {lo} to {hi} step {block}", heads, init, types, body.lines, merged)

    def _tiled_block(self, b: Builder, lo: str, hi: str) -> None:
        """K @ B over the whole vectors [lo, hi) of a block_sum block, written into the (inner) state buffers:
        first K for every row and vector of the block into a stack tile, then, for each group of
        tile_components components of B, the block's partial sums of the rows x components in registers, each
        (row, component) one FMA per vector from one load of K and one of B shared by the other rows and
        components. (The general wide step updates the state in memory once per vector, component and row,
        which kept `K @ B` at a quarter of the cores' FMA rate.)"""
        nest, lanes, elem, vtype = self.nest, self.nest.lanes, self.nest.elem, self.nest.vtype
        kernel, variable, first_component = nest.tiled_product
        tile_rows, tile_components = nest.tiles.product_tile
        tile_type = f"memref<{self.count * BLOCK_SUM_LANES * lanes}x{elem}>"
        tile = nest.alloca(tile_type)
        step = nest.index_const(lanes)

        def plus(site: Builder, index: str, constant: int) -> str:
            return index if constant == 0 else site.emit(f"arith.addi {index}, {nest.index_const(constant)} : index",
                                                         "o")

        def tile_slot(site: Builder, j: str, r: int) -> str:  # row r's K at vector j of the block
            return plus(site, site.emit(f"arith.subi {j}, {lo} : index", "o"), r * BLOCK_SUM_LANES * lanes)

        fill = Builder(self.names, elem, lanes, indent=b.indent + "  ")
        j = self.names.fresh("j")
        self.body(fill, j, None)
        for r in range(self.count):
            (value,) = self.value(kernel, r)
            fill.lines.append(f"{fill.indent}vector.store {value}, {tile}[{tile_slot(fill, j, r)}] : {tile_type}, "
                              f"{vtype}")
        _scf_for(b, f"{j} = {lo} to {hi} step {step}", [], [], [], fill.lines, [])

        memref, stride = f"%a{variable.attr('index')}", column_block_components(variable.dim)
        (buffer, buffer_type), = self.buffers
        c_lo, c_hi = self.chunk

        def group(gb: Builder, base: str, width: int) -> None:
            """Components base .. base + width - 1 of B for every row, tile_rows rows at a time: a pass over the
            block's vectors each (the group's B stays in the nearest cache for the next rows)."""
            for first_row in range(0, self.count, tile_rows):
                rows = range(first_row, min(first_row + tile_rows, self.count))
                body = Builder(self.names, elem, lanes, indent=gb.indent + "  ")
                jj = self.names.fresh("j")
                sums = {(r, w): self.names.fresh("st") for r in rows for w in range(width)}
                kernels = {r: body.emit(f"vector.load {tile}[{tile_slot(body, jj, r)}] : {tile_type}, {vtype}")
                           for r in rows}
                start = body.emit(f"arith.muli {jj}, {nest.index_const(stride)} : index", "o")
                updated = dict(sums)
                for w in range(width):
                    at = body.emit(f"arith.muli {plus(body, base, w + first_component)}, {step} : index", "o")
                    offset = body.emit(f"arith.addi {start}, {at} : index", "o")
                    column = self._vector_load(body, memref, offset, None)
                    for r in rows:
                        updated[r, w] = body.fma(kernels[r], column, sums[r, w])
                zeros = [nest.component_init[0]] * len(sums)
                totals = dict(zip(sums, _scf_for(gb, f"{jj} = {lo} to {hi} step {step}", list(sums.values()), zeros,
                                                 [vtype] * len(sums), body.lines, list(updated.values()))))
                for (r, w), total in totals.items():
                    slot = plus(gb, plus(gb, base, w), r * self._width - c_lo)
                    gb.lines.append(f"{gb.indent}memref.store {total}, {buffer}[{slot}] : {buffer_type}")

        whole = (c_hi - c_lo) // tile_components * tile_components
        if whole:  # a loop over the groups
            loop = Builder(self.names, elem, lanes, indent=b.indent + "  ")
            g = self.names.fresh("g")
            group(loop, plus(loop, g, c_lo), tile_components)
            bounds = f"{g} = {nest.index_const(0)} to {nest.index_const(whole)} step "
            _scf_for(b, bounds + nest.index_const(tile_components), [], [], [], loop.lines, [])
        if c_lo + whole < c_hi:  # the last components
            group(b, nest.index_const(c_lo + whole), c_hi - c_lo - whole)

    @property
    def _width(self) -> int:
        """Slices of state per row in the buffers (the widest chunk's components)."""
        return self.nest.chunk_width

    def _state_buffers(self) -> list[tuple[str, str]]:
        nest = self.nest
        buffers = []
        for slot_type in nest.acc.component_types():
            memref = f"memref<{self.count * self._width}x{slot_type}>"
            buffers.append((nest.alloca(memref), memref))
        return buffers

    def _fill(self, b: Builder, buffers: list[tuple[str, str]]) -> None:
        """Every slice of every row to the accumulator's start value."""
        nest = self.nest
        body = Builder(self.names, nest.elem, nest.lanes, indent=b.indent + "  ")
        k = self.names.fresh("d")
        for (buffer, memref), value in zip(buffers, nest.component_init):
            body.lines.append(f"{body.indent}memref.store {value}, {buffer}[{k}] : {memref}")
        size = nest.index_const(self.count * self._width)
        bounds = f"{k} = {nest.index_const(0)} to {size} step {nest.index_const(1)}"
        _scf_for(b, bounds, [], [], [], body.lines, [])

    def _slot(self, site: _Site, index: Index, r: int) -> str:
        """Where row r's slice of formula component `index` is, in the state buffers."""
        k = self.index_value(site, index)
        shift = r * self._width - self.chunk[0]
        return k if shift == 0 else site.b.emit(f"arith.addi {k}, {self.nest.index_const(shift)} : index", "o")

    def _slice_loop(self, b: Builder, step: Callable[[_Site, Index], None]) -> None:
        """`step` for each component of the chunk (no formula values: for the state's start, merge, finish)."""

        def run(site: _Site, index: Index, state: list[str]) -> list[str]:
            step(site, index)
            return []

        self.component_loop(_Site(b, "j"), (self.chunk,), self.chunk[0], [], run, 1)

    def _chunk_pieces(self) -> tuple[tuple[int, int], ...]:
        """The formula's pieces, cut to the chunk."""
        lo, hi = self.chunk
        return tuple((max(a, lo), min(b, hi)) for a, b in self.nest.breaks.pieces([self.nest.formula], "j")
                     if a < hi and b > lo)

    def _wide_j_loop(self, b: Builder, lo: str, hi: str, init: list[str]) -> list[str]:
        nest = self.nest
        body = Builder(self.names, nest.elem, nest.lanes, indent=b.indent + "  ")
        j, state = self.names.fresh("j"), [self.names.fresh("st") for _ in init]
        new = self._step(body, j, state, None)
        types = nest.acc.head_types() * self.count
        return _scf_for(b, f"{j} = {lo} to {hi} step {nest.index_const(nest.lanes)}", state, init, types, body.lines,
                        new)

    def _wide_step(self, b: Builder, j: str, state: list[str], mask: str | None) -> list[str]:
        """One j step of a wide formula: the head, then every component's slice, for every row."""
        nest, acc, root = self.nest, self.nest.acc, self.nest.formula
        self.body(b, j, mask)
        lanes = self._j_lanes(b, j) if acc.needs_index else None
        per_row, buffers = len(acc.head_types()), self.buffers
        heads, contexts = [], []
        for r in range(self.count):
            f = [self.component(self.jsite, root, r, Index.static(k)) for k in range(acc.head_dims)]
            head, context = acc.head_update(b, state[r * per_row : (r + 1) * per_row], f, mask, lanes)
            heads += head
            contexts.append(context)

        def step(site: _Site, index: Index, carried: list[str]) -> list[str]:
            for r in range(self.count):
                slot = self._slot(site, index, r)
                old = [site.b.emit(f"memref.load {buffer}[{slot}] : {memref}") for buffer, memref in buffers]
                f = self.component(site, root, r, index)
                for value, (buffer, memref) in zip(acc.component_update(site.b, contexts[r], old, f, mask, lanes),
                                                   buffers):
                    site.b.lines.append(f"{site.b.indent}memref.store {value}, {buffer}[{slot}] : {memref}")
            return []

        unroll = 1 if nest.expensive(root, "j") else UNROLL
        self.component_loop(self.jsite, self._chunk_pieces(), self.chunk[0], [], step, unroll)
        return heads

    def _merge(self, b: Builder, outer_heads: list[str], block_heads: list[str], outer: list[tuple[str, str]],
               inner: list[tuple[str, str]]) -> list[str]:
        """block_sum: a block's state merged into the running one (heads returned, slices in memory)."""
        acc = self.nest.acc
        per_row = len(acc.head_types())
        merged, contexts = [], []
        for r in range(self.count):
            part = slice(r * per_row, (r + 1) * per_row)
            head, context = acc.head_merge(b, outer_heads[part], block_heads[part])
            merged += head
            contexts.append(context)

        def step(site: _Site, index: Index) -> None:
            for r in range(self.count):
                slot = self._slot(site, index, r)
                x, y = ([site.b.emit(f"memref.load {buffer}[{slot}] : {memref}") for buffer, memref in buffers]
                        for buffers in (outer, inner))
                for value, (buffer, memref) in zip(acc.component_merge(site.b, contexts[r], x, y), outer):
                    site.b.lines.append(f"{site.b.indent}memref.store {value}, {buffer}[{slot}] : {memref}")

        self._slice_loop(b, step)
        return merged

    def _wide_finish(self, b: Builder, state: list[str]) -> None:
        """Each row's outputs: per component, its floats at component * (floats per component) + t."""
        nest, acc, e = self.nest, self.nest.acc, self.nest.elem
        per_row, start = len(acc.head_types()), acc.head_dims
        widths = nest.widths
        for r in range(self.count):
            fb = Builder(self.names, e, None, indent=b.indent)
            context = acc.head_finish(fb, state[r * per_row : (r + 1) * per_row])

            def step(site: _Site, index: Index, r: int = r, context: object = context) -> None:
                sb = site.b
                slot = self._slot(site, index, r)
                slices = [sb.emit(f"memref.load {buffer}[{slot}] : {memref}") for buffer, memref in self.buffers]
                floats, indices = acc.component_finish(sb, context, slices)
                k = self.index_value(site, index)
                outputs = ((floats, "%out", e, widths[0]), (indices, "%out_idx", "i64", widths[1]))
                for values, memref, elem, width in outputs:
                    if not values:
                        continue
                    row = sb.emit(f"arith.muli {self.rows[r]}, {nest.index_const(width)} : index", "o")
                    scaled = sb.emit(f"arith.muli {k}, {nest.index_const(len(values))} : index", "o")
                    at = sb.emit(f"arith.addi {row}, {scaled} : index", "o")
                    for t, value in enumerate(values):
                        offset = sb.emit(f"arith.addi {at}, {nest.index_const(t - start * len(values))} : index", "o")
                        sb.lines.append(f"{sb.indent}memref.store {value}, {memref}[{offset}] : memref<?x{elem}>")

            self._slice_loop(fb, step)
            b.lines += fb.lines


def _scf_for(b: Builder, bounds: str, carried: list[str], init: list[str], types: list[str], body: list[str],
             yields: list[str]) -> list[str]:
    """Append `scf.for <bounds>` (carrying `carried`, started at `init`) with body lines `body` to b; its results."""
    if not carried:
        b.lines += [f"{b.indent}scf.for {bounds} {{"] + body + [f"{b.indent}}}"]
        return []
    result, type_list = b.names.fresh("for"), ", ".join(types)
    iter_args = ", ".join(f"{c} = {v}" for c, v in zip(carried, init))
    b.lines += ([f"{b.indent}{result}:{len(carried)} = scf.for {bounds} iter_args({iter_args}) -> ({type_list}) {{"]
                + body + [f"{b.indent}  scf.yield {', '.join(yields)} : {type_list}", f"{b.indent}}}"])
    return [f"{result}#{k}" for k in range(len(carried))]


def _scf_if(b: Builder, condition: str, types: list[str], then: list[str], then_values: list[str],
            else_values: list[str]) -> list[str]:
    """Append `scf.if` (then: lines `then` giving then_values; else: else_values) to b; its results."""
    if not types:
        b.lines += [f"{b.indent}scf.if {condition} {{"] + then + [f"{b.indent}}}"]
        return []
    result, type_list = b.names.fresh("if"), ", ".join(types)
    b.lines += ([f"{b.indent}{result}:{len(types)} = scf.if {condition} -> ({type_list}) {{"] + then
                + [f"{b.indent}  scf.yield {', '.join(then_values)} : {type_list}", f"{b.indent}}} else {{",
                   f"{b.indent}  scf.yield {', '.join(else_values)} : {type_list}", f"{b.indent}}}"])
    return [f"{result}#{k}" for k in range(len(types))]


def _picked(node: Node) -> range:
    """The components an elem or extract takes."""
    if node.op == "elem":
        return range(node.attr("index"), node.attr("index") + 1)
    return range(node.attr("start"), node.attr("start") + node.attr("length"))
