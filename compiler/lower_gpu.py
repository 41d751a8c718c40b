"""keir-lower-gpu: a keir kernel -> one `gpu.func` in a `gpu.module` (MLIR text), R output rows per thread.

    "keir.reduce"(f) {kind = "sum", axis = 1}  =>
    gpu.module @keir_kernels {
      gpu.func @k(%a0: memref<?xf32>, ..., %out: memref<?xf32>, %rows: index, %cols: index, %tile: index) kernel {
        i_r = block_id * R * block_dim + r * block_dim + thread_id, r < R   (rows_per_thread: register blocking;
                                       threads past the last row compute row rows-1, store nothing)
        <parameter loads, i-variable loads, all work that does not depend on j: scalars in registers, per row>
        %state = scf.for %t0 = 0 to %cols step %tile iter_args(<each row's initial state>) {
          <the block copies columns t0 .. t0+count-1 of every j-variable into the tile's rows, coalesced>
          gpu.barrier
          %tile_state = scf.for %jq = 0 to count : i32 iter_args(...) {
            <the tile's row jj in 16-byte vector loads, shared by the R rows>; <f, and each row's update>
          }
          gpu.barrier                                     (the next copy overwrites the tile)
          <sum: add the tile's partial sum to the row's total (block summation); other kinds: carry the state>
        }
        scf.if (i_r < rows) { out[i_r] = <row r's final values>; out_idx[i_r] = <its indices> }   for each r
      }
    }

Every reduction kind and accumulator option of the CPU backend works here, with the same code: the CPU's
accumulators (keir.compiler.reductions) run on vector<1xT> state, one lane per row. A sum adds each tile's
partial sum to the total (one rounding per tile, like "block_sum" with blocks of one tile; with "kahan_scheme" the
compensated sum runs over all j; "dtype_acc" float64 accumulates in double). Arg-reductions take the index j
of the reduced axis; "no candidate" (INT64_MAX, e.g. K > N) is written as -1, as the CPU runtime does.

Layout the runtime provides: every variable is row-major, (rows, D) for an i-variable, (cols, D) for a
j-variable, (D,) for a parameter; the outputs are (rows, float_width) and (rows, index_width) int64. These are the
user's own layouts (for axis 0 the roles of i and j swap, the layouts do not), so torch tensors go in as they
are. A tile of a j-variable is one contiguous range of memory, which the block copies with consecutive threads
reading consecutive words. In workgroup memory the tile is one (tile, width) array whose row jj holds every
j-variable of column t0 + jj side by side (variable v at words [offset_v, offset_v + D_v)), padded to 16 bytes:
the j loop reads a row with 16-byte vector loads (a D = 3 point and its weight: one load), and all threads read
the same words at once (a broadcast, no bank conflicts).

The block size is the launch's blockDim (chosen at run time by `launch_config` from the number of rows and the
device), the tile length is the argument %tile and the workgroup memory is dynamic, so one PTX serves every
launch shape. Math ops stay math ops here; keir.compiler.codegen_gpu turns them into exact NVPTX instructions.
"""

from __future__ import annotations

from dataclasses import dataclass

from keir.compiler import literals
from keir.compiler.kernel import Kernel
from keir.compiler.lowering_scaffold import IndexConstants, load_pair, memref_arguments, store_row
from keir.compiler.mlir_text import Builder, Names
from keir.compiler.op_lowering import compute
from keir.compiler.operands import BLOCK_SPARSE, Operand, kernel_operands, loop_formula
from keir.compiler.reductions import INT64_MAX, ReductionOptions, Sum, accumulator
from keir.dialect.node import Node

ELEMENT_BYTES = {"f32": 4, "f64": 8}
# A j loop reads a pair's j-data with 16-byte shared loads (ld.shared.v4.b32 / .v2.b64): one per 4 floats.
VECTOR_BYTES = 16
WARP = 32
# 256 threads x 255 registers (the most ptxas gives a thread) fit the 64K registers of a block on every sm_XX,
# so a block of at most 256 threads launches whatever the formula's register pressure.
BLOCK_SIZES = (256, 128, 64, 32)
# Workgroup memory a block may use without the per-kernel opt-in, on every sm_XX.
DEFAULT_SHARED_BYTES = 48 * 1024
WORKGROUP = "#gpu.address_space<workgroup>"


@dataclass(frozen=True)
class GpuKernelText:
    """A lowered kernel and what the runtime needs to launch it."""

    symbol: str
    operands: tuple[Operand, ...]  # in the kernel's terms ("i" rows, "j" columns, "p"), i and j swapped for axis 0
    float_width: int  # floats written per output row (memref %out), 0 if none
    index_width: int  # int64 indices written per output row (memref %out_idx), 0 if none
    axis: int
    elem: str
    func_text: str
    block_sparse: bool = False  # a block per range of rows, over its j-intervals (BLOCK_SPARSE)
    rows_per_thread: int = 1  # register blocking: each thread computes this many output rows
    j_split: bool = False  # takes %jchunk: grid y splits the columns, each split writes partial sums (j_splits)

    @property
    def row_bytes(self) -> int:
        return row_bytes(self.operands, self.elem)

    @property
    def text(self) -> str:
        return gpu_module_text([self])


def staged_operands(operands: tuple[Operand, ...]) -> tuple[Operand, ...]:
    """The operands copied to workgroup memory: every j-variable of the signature (in the kernel's terms)."""
    return tuple(op for op in operands if op.category == "j")


def row_width(operands: tuple[Operand, ...], elem: str) -> int:
    """Words that one column j of a tile takes: the staged j-variables' components side by side, padded to a
    multiple of VECTOR_BYTES so that every aligned vector load of the row stays inside it."""
    words = sum(op.dim for op in staged_operands(operands))
    lanes = VECTOR_BYTES // ELEMENT_BYTES[elem]
    return -(-words // lanes) * lanes


def row_bytes(operands: tuple[Operand, ...], elem: str) -> int:
    """Workgroup memory that one column j of a tile takes (row_width words)."""
    return row_width(operands, elem) * ELEMENT_BYTES[elem]


def rows_per_thread(reduce: Node, elem: str, block_sparse: bool = False) -> int:
    """Register blocking: how many output rows a thread of reduction `reduce`'s kernel computes, so that each
    j-row it loads from workgroup memory serves that many pairs (the load and the loop's own instructions are
    paid once per R pairs). Each row keeps its i-variables and its reduction state in registers: 8 rows while
    those take at most 4 32-bit registers a row (a D = 3 float32 Gaussian), 4 rows up to 8 (a log-sum-exp, a
    float64 Gaussian), 2 rows up to 24 (a K = 10 arg-K-min), else 1 (a D = 100 Gaussian, where registers, not
    loads, are the limit). A block-sparse kernel has one row per thread (a range of rows is one block)."""
    if block_sparse:
        return 1
    operands = kernel_operands(reduce)
    per_row = sum(op.dim for op in operands if op.category == "i")
    per_row += len(accumulator(ReductionOptions.of(reduce), elem, 1).state_types())
    per_row *= ELEMENT_BYTES[elem] // 4  # in 32-bit registers
    return 8 if per_row <= 4 else 4 if per_row <= 8 else 2 if per_row <= 24 else 1


def j_splits(options: ReductionOptions, block_sparse: bool = False) -> bool:
    """Whether the kernel can split its columns over blocks (grid y, %jchunk columns each), writing partial
    results that the runtime adds: a plain sum (direct or block summation in its own dtype: its partial sums
    add up like its tiles do), so that few rows (M = 10^4, one block per 256) still fill the device. A Kahan or
    float64-accumulated sum, the other kinds and block-sparse kernels keep every column in one block."""
    return (options.kind == "sum" and options.sum_scheme != "kahan_scheme" and options.dtype_acc != "float64"
            and not block_sparse)


def gpu_module_text(kernels: list[GpuKernelText]) -> str:
    """One module holding the kernels' gpu.funcs in one gpu.module (the unit compiled to one PTX)."""
    body = "\n".join(k.func_text for k in kernels)
    return f"module attributes {{gpu.container_module}} {{\n  gpu.module @keir_kernels {{\n{body}\n  }}\n}}\n"


@dataclass(frozen=True)
class LaunchConfig:
    grid: int  # blocks
    block: int  # threads per block
    tile: int  # columns j per workgroup-memory tile
    shared_bytes: int  # dynamic workgroup memory per block


def launch_config(
    rows: int,
    row_bytes: int,
    multiprocessors: int,
    max_threads: int = BLOCK_SIZES[0],
    shared_limit: int = DEFAULT_SHARED_BYTES,
    rows_per_thread: int = 1,
) -> LaunchConfig:
    """The launch for `rows` output rows, `rows_per_thread` of them per thread: the largest block (<= 256
    threads and <= the kernel's own limit, which the driver derives from its registers) that still gives every
    multiprocessor two blocks; tiles as long as the block, shortened to fit `shared_limit` bytes of workgroup
    memory."""
    if rows < 1:
        raise ValueError(f"a launch needs at least one row, got {rows}")
    sizes = [b for b in BLOCK_SIZES if b <= max_threads]
    if not sizes:
        raise ValueError(f"the kernel allows {max_threads} threads per block, fewer than a warp ({WARP})")
    block = next((b for b in sizes if -(-rows // (b * rows_per_thread)) >= 2 * multiprocessors), sizes[-1])
    tile = block
    if row_bytes:
        tile = min(block, shared_limit // row_bytes)
        if tile < 1:
            raise ValueError(
                f"one column of the j-variables takes {row_bytes} bytes of workgroup memory; a block has "
                f"{shared_limit} bytes"
            )
    return LaunchConfig(-(-rows // (block * rows_per_thread)), block, tile, tile * row_bytes)


def lower_module(kernels: list[Kernel]) -> str:
    """to a gpu.module, R output rows per thread, j-tiles in workgroup memory (the GPU backend)"""
    return gpu_module_text([lower_gpu(k) for k in kernels])


def lower_gpu(kernel: Kernel, operands: tuple[Operand, ...] | None = None, block_sparse: bool = False,
              gpu_math: str = "sfu") -> GpuKernelText:
    """Lower `kernel` to a gpu.func; `operands` fixes the signature (default: the variables it uses), as for
    `lower_cpu`. All j operands of the signature are staged, so the launch depends on the signature alone.
    block_sparse: block b computes the rows of range b (at most blockDim of them), tile by tile over each of its
    j-intervals (keir.compiler.operands.BLOCK_SPARSE); all threads of a block share them, so the barriers stay
    uniform. gpu_math: how float32 exp is computed (keir.compiler.mathlib.GPU_MATH)."""
    reduce = kernel.result
    if reduce.op != "reduce":
        raise ValueError(f"only a keir.reduce can be lowered to a GPU kernel, not keir.{reduce.op}")
    formula = loop_formula(reduce)
    kernel_ = _GpuKernel(kernel.name, formula, kernel.dtype, reduce.attr("axis"), operands or kernel_operands(reduce),
                         ReductionOptions.of(reduce), block_sparse, gpu_math,
                         rows_per_thread(reduce, kernel.dtype, block_sparse))
    return kernel_.build()


class _GpuKernel:
    def __init__(self, symbol: str, formula: Node, elem: str, axis: int, operands: tuple[Operand, ...],
                 options: ReductionOptions, block_sparse: bool = False, gpu_math: str = "sfu",
                 rows: int = 1):
        self.symbol, self.formula, self.elem, self.axis, self.operands = symbol, formula, elem, axis, operands
        self.block_sparse = block_sparse
        self.acc = accumulator(options, elem, 1)
        # A sum adds each tile's partial sum to the total, except a Kahan sum, whose compensation runs throughout.
        self.per_tile = isinstance(self.acc, Sum) and options.sum_scheme != "kahan_scheme"
        self.names = Names(gpu_math=gpu_math)
        self.consts = Builder(self.names, elem, None, indent="      ")  # index constants, first in the body
        self.entry = Builder(self.names, elem, None, indent="      ")  # once per thread: hoisted work
        self.inner = Builder(self.names, elem, None, indent="          ")  # once per (i, j): the j loop body
        self.index_const = IndexConstants(self.consts)
        self.values: dict[tuple[Node, int | None], list[str]] = {}  # (node, row or None if i-independent)
        self.rows_per_thread = rows
        self.j_split = j_splits(options, block_sparse)
        self.staged = staged_operands(operands)
        self.width = row_width(operands, elem)  # words per tile row
        self.lanes_per_load = VECTOR_BYTES // ELEMENT_BYTES[elem]
        self.column: dict[int, int] = {}  # operand index -> its first word in a tile row
        self.row_loads: dict[int, str] = {}  # k -> the vector load of words [k * lanes, (k + 1) * lanes) of row jj
        self.row_start: str | None = None  # jj * width, the first word of row jj
        self.column_index: str | None = None  # j as vector<1xi64>, for the arg-reductions

    @property
    def memref(self) -> str:
        return f"memref<?x{self.elem}>"

    @property
    def shared_memref(self) -> str:
        return f"memref<?x{self.elem}, {WORKGROUP}>"

    def lanes(self, b: Builder) -> Builder:
        """A builder of vector<1xT> ops that appends to b's lines: the accumulators' state is one lane wide."""
        return Builder(self.names, self.elem, 1, b.lines, b.indent)

    def index_op(self, b: Builder, op: str, x: str, y: str) -> str:
        return b.emit(f"arith.{op} {x}, {y} : index", "o")

    def load(self, b: Builder, memref: str, offset: str) -> str:
        return b.emit(f"memref.load {memref}[{offset}] : {self.memref}")

    def value(self, node: Node, row: int = 0) -> list[str]:
        """The components of node for the thread's row `row` (0 .. rows_per_thread - 1): in the entry block if it
        does not depend on j, else in the j loop. A node that does not depend on i is computed once for all
        rows: this is what register blocking saves (a j-row loaded once serves every row)."""
        key = (node, row if "i" in node.deps else None)
        if key in self.values:
            return self.values[key]
        b = self.inner if "j" in node.deps else self.entry
        if node.op == "var":
            index, category, dims = node.attr("index"), node.attr("category"), range(node.dim)
            if category == "p":
                comps = [self.load(b, f"%a{index}", self.index_const(d)) for d in dims]
            elif category == "i":
                start = self.index_op(b, "muli", f"%i_{row}", self.index_const(node.dim))
                comps = [self.load(b, f"%a{index}", self.index_op(b, "addi", start, self.index_const(d)))
                         for d in dims]
            else:
                comps = [self.tile_word(self.column[index] + d) for d in dims]
        else:
            comps = compute(b, node, [self.value(a, row) for a in node.args])
        self.values[key] = comps
        return comps

    def tile_word(self, word: int) -> str:
        """Word `word` of tile row %jj, from the aligned vector load that holds it (one load per vector)."""
        chunk, lane = divmod(word, self.lanes_per_load)
        if chunk not in self.row_loads:
            b = self.inner
            if self.row_start is None:
                self.row_start = self.index_op(b, "muli", "%jj", self.index_const(self.width))
            start = self.index_op(b, "addi", self.row_start, self.index_const(chunk * self.lanes_per_load))
            vector = f"vector<{self.lanes_per_load}x{self.elem}>"
            self.row_loads[chunk] = b.emit(f"vector.load %ys[{start}] {{alignment = {VECTOR_BYTES}}} : "
                                           f"{self.shared_memref}, {vector}", "y")
        return self.inner.emit(f"vector.extract {self.row_loads[chunk]}[{lane}] : {self.elem} from "
                               f"vector<{self.lanes_per_load}x{self.elem}>")

    def stage_tiles(self) -> list[str]:
        """Workgroup memory as one (tile, width) array of rows (see the module docstring)."""
        if not self.staged:
            return []
        size = self.index_op(self.consts, "muli", "%tile", self.index_const(self.width))
        offset = 0
        for op in self.staged:
            self.column[op.index] = offset
            offset += op.dim
        return [
            f"      %smem = gpu.dynamic_shared_memory : memref<?xi8, {WORKGROUP}>",
            f"      %ys = memref.view %smem[{self.index_const(0)}][{size}] : memref<?xi8, {WORKGROUP}> to "
            f"{self.shared_memref}",
        ]

    def copy_tile(self, op: Operand) -> list[str]:
        """Rows t0 .. t0+count-1 of j-variable `op` (count * D contiguous words) to its words of the tile's rows,
        one word a thread (consecutive threads read consecutive words)."""
        b = Builder(self.names, self.elem, None, indent="        ")
        dim = self.index_const(op.dim)
        words = self.index_op(b, "muli", "%count", dim)
        first = self.index_op(b, "muli", "%t0", dim)
        k = self.names.fresh("w")
        b.lines.append(f"        scf.for {k} = %tid to {words} step %bdim {{")
        b.indent = "          "
        word = self.load(b, f"%a{op.index}", self.index_op(b, "addi", first, k))
        if op.dim == self.width:  # the only variable, unpadded: the tile is its rows as they are
            dst = k
        else:
            row, column = (k, None) if op.dim == 1 else (self.index_op(b, "divui", k, dim),
                                                          self.index_op(b, "remui", k, dim))
            dst = self.index_op(b, "muli", row, self.index_const(self.width))
            if column is not None:
                dst = self.index_op(b, "addi", dst, column)
            if self.column[op.index]:
                dst = self.index_op(b, "addi", dst, self.index_const(self.column[op.index]))
        b.lines += [f"          memref.store {word}, %ys[{dst}] : {self.shared_memref}", "        }"]
        return b.lines

    def fuses_product(self) -> bool:
        """A plain sum of a product (a Gaussian times its weight): the loop adds a * b to the total with one fma
        instead of a multiplication and an addition (one rounding fewer, one instruction per component)."""
        acc = self.acc
        return isinstance(acc, Sum) and not acc.kahan and not acc.wide and self.formula.op == "mul"

    def update(self, state: list[str], row: int) -> list[str]:
        """The j loop body for row `row`: f at (i, j = t0 + jj) as vector<1xT>, folded into the row's state."""
        b = self.lanes(self.inner)

        def lanes_of(components: list[str]) -> list[str]:
            return [b.emit(f"vector.broadcast {c} : {self.elem} to vector<1x{self.elem}>", "f") for c in components]

        if self.fuses_product():
            x, y = (lanes_of(self.value(arg, row)) for arg in self.formula.args)  # a dimension-1 factor broadcasts
            return [b.fma(x[k if len(x) > 1 else 0], y[k if len(y) > 1 else 0], total) for k, total in enumerate(state)]
        lanes = lanes_of(self.value(self.formula, row))
        j = None
        if self.acc.needs_index:
            if self.column_index is None:
                column = self.index_op(self.inner, "addi", "%t0", "%jj")
                column64 = self.inner.emit(f"arith.index_cast {column} : index to i64", "q")
                self.column_index = b.emit(f"vector.broadcast {column64} : i64 to vector<1xi64>", "q")
            j = self.column_index
        return self.acc.update(b, state, lanes, None, j)

    def build(self) -> GpuKernelText:
        e = self.elem
        k0, k1 = self.index_const(0), self.index_const(1)
        rows = range(self.rows_per_thread)
        prologue = [
            f"      %zero_i32 = {literals.constant(0, 'i32')}",
            f"      %one_i32 = {literals.constant(1, 'i32')}",
            "      %tid = gpu.thread_id x",
            "      %bid = gpu.block_id x",
            "      %bdim = gpu.block_dim x",
        ]
        if self.block_sparse:  # the rows [row0, end) of range %bid
            pairs = Builder(self.names, e, None, indent="      ")
            row0, end = load_pair(pairs, "%ranges", "%bid", self.index_const)
            self.intervals = load_pair(pairs, "%slices", "%bid", self.index_const)
            prologue += pairs.lines
        else:  # block b has rows [b * R * bdim, (b + 1) * R * bdim): thread t the rows t, t + bdim, ...
            row0, end = "%row0", "%rows"
            rows_per_block = self.index_op(self.consts, "muli", "%bdim", self.index_const(self.rows_per_thread))
            prologue.append(f"      %row0 = arith.muli %bid, {rows_per_block} : index")
        rows_b = Builder(self.names, e, None, indent="      ")
        last = self.index_op(rows_b, "subi", end, k1)
        for r in rows:
            offset = "%tid" if r == 0 else self.index_op(
                rows_b, "addi", "%tid", self.index_op(rows_b, "muli", "%bdim", self.index_const(r)))
            row = self.index_op(rows_b, "addi", row0, offset)
            rows_b.lines += [
                f"      %active_{r} = arith.cmpi ult, {row}, {end} : index",
                f"      %i_{r} = arith.minui {row}, {last} : index",  # rows past the end compute the last row
            ]
        prologue += rows_b.lines
        prologue += self.stage_tiles()
        init = self.acc.init(self.lanes(self.consts))
        count = len(init)
        total = count * self.rows_per_thread
        state_types = self.acc.state_types()
        types = ", ".join(state_types * self.rows_per_thread)
        outer = [f"%st_{k}" for k in range(total)]
        inner = [f"%in_{k}" for k in range(total)]
        new = [v for r in rows for v in self.update(inner[r * count : (r + 1) * count], r)]
        init = init * self.rows_per_thread

        if self.block_sparse:  # the tiles of each interval [%j_lo, %j_hi) in turn
            first, last = self.intervals
            pair = Builder(self.names, e, None, indent="        ")
            j_lo, j_hi = load_pair(pair, "%redranges", "%s", self.index_const)
            starts = [f"%sv_{k}" for k in range(total)]
            loop = [f"      %state:{total} = scf.for %s = {first} to {last} step {k1} iter_args("
                    + ", ".join(f"{s} = {v}" for s, v in zip(starts, init)) + f") -> ({types}) {{",
                    *pair.lines]
            carried_in, result, lo, hi = starts, "%interval", j_lo, j_hi
        else:
            loop, carried_in, result, lo, hi = [], init, "%state", k0, "%cols"
            if self.j_split:  # block (x, y) reduces columns [y * jchunk, (y + 1) * jchunk) of its rows
                loop += ["      %split = gpu.block_id y",
                         "      %split_lo = arith.muli %split, %jchunk : index",
                         "      %split_end = arith.addi %split_lo, %jchunk : index",
                         "      %split_hi = arith.minui %split_end, %cols : index"]
                lo, hi = "%split_lo", "%split_hi"
        loop += [
            f"      {result}:{total} = scf.for %t0 = {lo} to {hi} step %tile iter_args("
            + ", ".join(f"{s} = {v}" for s, v in zip(outer, carried_in)) + f") -> ({types}) {{",
            f"        %left = arith.subi {hi}, %t0 : index",
            "        %count = arith.minui %tile, %left : index",
        ]
        for op in self.staged:
            loop += self.copy_tile(op)
        tile_init = init if self.per_tile else outer
        loop += [
            "        gpu.barrier",
            # the loop counts in i32 (a tile has at most 256 columns): 64-bit loop arithmetic costs two
            # more instructions per iteration
            "        %count_i32 = arith.index_cast %count : index to i32",
            f"        %tile_state:{total} = scf.for %jq = %zero_i32 to %count_i32 step %one_i32 iter_args("
            + ", ".join(f"{s} = {v}" for s, v in zip(inner, tile_init)) + f") -> ({types}) : i32 {{",
            "          %jj = arith.index_cast %jq : i32 to index",
            *self.inner.lines,
            f"          scf.yield {', '.join(new)} : {types}",
            "        }",
            "        gpu.barrier",
        ]
        tile_state = [f"%tile_state#{k}" for k in range(total)]
        merge = Builder(self.names, e, 1, indent="        ")
        carried = tile_state
        if self.per_tile:
            carried = [v for r in rows for v in self.acc.merge(merge, outer[r * count : (r + 1) * count],
                                                               tile_state[r * count : (r + 1) * count])]
        loop += merge.lines + [f"        scf.yield {', '.join(carried)} : {types}", "      }"]
        if self.block_sparse:
            loop += [f"      scf.yield {', '.join(f'%interval#{k}' for k in range(total))} : {types}", "      }"]

        finish, stores = Builder(self.names, e, None, indent="      "), []
        for r in rows:
            values, indices = self.acc.finish(finish, [f"%state#{k}" for k in range(r * count, (r + 1) * count)])
            if indices:  # "no candidate" is -1, as the CPU runtime writes it
                none = finish.emit(literals.constant(INT64_MAX, "i64"), "q")
                minus_one = finish.emit(literals.constant(-1, "i64"), "q")
                indices = [
                    finish.emit(f"arith.select {finish.emit(f'arith.cmpi eq, {x}, {none} : i64', 'm')}, "
                                f"{minus_one}, {x} : i64", "q")
                    for x in indices
                ]
            store = Builder(self.names, e, None, indent="        ")
            out_row = f"%i_{r}"
            if self.j_split:  # split y writes its partial sums to rows [y * rows, (y + 1) * rows) of %out
                out_row = self.index_op(store, "addi", self.index_op(store, "muli", "%split", "%rows"), out_row)
            store_row(store, self.index_const, out_row, values, "%out", e)
            store_row(store, self.index_const, f"%i_{r}", indices, "%out_idx", "i64")
            stores += [f"      scf.if %active_{r} {{", *store.lines, "      }"]

        args = memref_arguments(self.operands, e, len(values), len(indices))
        if self.block_sparse:
            args += [f"{name}: memref<?xi64>" for name in BLOCK_SPARSE]
        args += ["%rows: index", "%cols: index", "%tile: index"] + (["%jchunk: index"] if self.j_split else [])
        text = "\n".join(
            [f"    gpu.func @{self.symbol}({', '.join(args)}) kernel {{"]
            + prologue[:5] + self.consts.lines + prologue[5:]  # the constants may use %bdim
            + self.entry.lines
            + loop
            + finish.lines
            + stores
            + ["      gpu.return", "    }"]
        )
        return GpuKernelText(self.symbol, self.operands, len(values), len(indices), self.axis, e, text,
                             self.block_sparse, self.rows_per_thread, self.j_split)
