"""Static GPU analysis: the SASS instructions of a kernel's steady-state j loop, per (i, j) pair, by class.

keir's GPU kernels stream j-tiles through shared memory; the inner loop over the j of a tile is what runs
N times per row, so its instruction count per pair predicts the speed of these issue-bound kernels (see
`predicted_pairs_per_second`). The loop is found in the SASS that `nvdisasm` prints for the cubin `ptxas`
makes of keir's PTX:

- a loop is a backward branch (`@P0 BRA .L_x_7` after the label `.L_x_7:`); the steady-state loop is the
  innermost loop with the most shared-memory traffic;
- LLVM or ptxas may unroll it: the unroll factor is the bytes its shared-memory address advances per iteration
  over the bytes of one row of the tile (one column j); with register blocking, each column serves several
  rows, so an iteration computes unroll x rows pairs.

Tools come from NVIDIA's pip wheels (`pip install 'keir[bench]'`: nvidia-cuda-nvcc for ptxas,
nvidia-cuda-nvdisasm) or a CUDA toolkit on PATH; no GPU is needed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Instruction classes, by opcode (the part before the first '.').
_CLASSES = {
    "FP32": {"FADD", "FMUL", "FFMA", "FMNMX", "FSETP", "FSEL", "FCHK", "FRND", "FSET", "HFMA2", "HADD2", "HMUL2"},
    "FP64": {"DADD", "DMUL", "DFMA", "DSETP", "DMNMX", "DSET"},
    "MUFU": {"MUFU"},
    "shared loads": {"LDS", "LDSM"},
    "branches": {"BRA", "BRX", "BSSY", "BSYNC", "WARPSYNC", "EXIT", "RET", "CALL", "BREAK"},
}
CLASSES = (*_CLASSES, "uniform", "integer/other")

_INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]\s+)?([A-Z][A-Z0-9_]*)(\S*)\s*(.*?)\s*;")
_LABEL = re.compile(r"^\s*(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")
_LDS_WIDTH = re.compile(r"\.[US]?(\d+)")


def instruction_class(opcode: str) -> str:
    for name, opcodes in _CLASSES.items():
        if opcode in opcodes:
            return name
    if opcode.startswith("U") and opcode not in ("UNKNOWN",):  # uniform datapath: UMOV, UIADD3, ULDC, ...
        return "uniform"
    return "integer/other"


@dataclass
class Instruction:
    address: int
    opcode: str
    modifiers: str
    operands: str
    predicated: bool = False  # @P0 / @!P0: a branch may or may not be taken

    @property
    def shared_bytes(self) -> int:
        """Bytes a shared-memory load brings (LDS: 4, LDS.64: 8, LDS.128: 16); 0 for anything else."""
        if self.opcode != "LDS":
            return 0
        widths = _LDS_WIDTH.findall(self.modifiers)
        return int(widths[-1]) // 8 if widths else 4


@dataclass
class Loop:
    label: str
    body: list[Instruction]
    unroll: int = 1  # columns j per iteration
    rows: int = 1  # output rows per thread (register blocking): an iteration computes unroll * rows pairs
    counts: Counter = field(default_factory=Counter)
    shortest: int = 0  # instructions on the shortest way through the body (every forward branch that may skip, taken)

    @property
    def shared_bytes(self) -> int:
        return sum(i.shared_bytes for i in self.body)

    def per_pair(self, name: str | None = None) -> float:
        """Instructions per (i, j) pair: all of them, or one class."""
        total = len(self.body) if name is None else self.counts[name]
        return total / (self.unroll * self.rows)

    @property
    def fast_path_per_pair(self) -> float:
        """Instructions per pair on the shortest way through the loop: for the K-min family, the pairs that do
        not beat the current K-th best and skip the insertion (most of them once the list has filled)."""
        return self.shortest / (self.unroll * self.rows)


def _shortest_way(body: list[Instruction], labels: dict[str, int]) -> int:
    """Instructions executed on the shortest way from the loop's first instruction to its back edge: a
    predicated branch forward inside the body goes either way, an unconditional one only to its target."""
    position = {i.address: k for k, i in enumerate(body)}
    best = [1 << 30] * len(body)
    best[0] = 1
    for k, instruction in enumerate(body[:-1]):
        target = _TARGET.search(instruction.operands) if instruction.opcode == "BRA" else None
        inside = position.get(labels.get(target.group(1), -1)) if target else None
        successors = [] if inside is not None and not instruction.predicated else [k + 1]
        if inside is not None and inside > k:
            successors.append(inside)
        for successor in successors:
            best[successor] = min(best[successor], best[k] + 1)
    return best[-1]


def parse_sass(text: str) -> tuple[list[Instruction], dict[str, int]]:
    """The instructions of an nvdisasm listing (one kernel) and the address of each label."""
    instructions, labels, pending = [], {}, []
    for line in text.splitlines():
        label = _LABEL.match(line)
        if label:
            pending.append(label.group(1))
            continue
        match = _INSTRUCTION.search(line)
        if match:
            address = int(match.group(1), 16)
            for name in pending:
                labels[name] = address
            pending = []
            instructions.append(Instruction(address, match.group(3), match.group(4), match.group(5),
                                            match.group(2) is not None))
    return instructions, labels


def sass_loops(text: str) -> list[Loop]:
    """Every innermost loop (a backward branch whose body holds no other backward branch)."""
    instructions, labels = parse_sass(text)
    spans = []
    for position, instruction in enumerate(instructions):
        target = _TARGET.search(instruction.operands)
        if instruction.opcode == "BRA" and target and labels.get(target.group(1), 1 << 62) <= instruction.address:
            start = next(k for k, i in enumerate(instructions) if i.address == labels[target.group(1)])
            spans.append((start, position, target.group(1)))
    loops = []
    for start, end, label in spans:
        if any(start <= s and e <= end and (s, e) != (start, end) for s, e, _ in spans):
            continue  # holds an inner loop
        body = instructions[start : end + 1]
        loops.append(Loop(label, body, counts=Counter(instruction_class(i.opcode) for i in body),
                          shortest=_shortest_way(body, labels)))
    return loops


_SHARED_BASE = re.compile(r"\[(U?R\d+)")
_ADVANCE = re.compile(r"^(U?R\d+), (U?R\d+), (0x[0-9a-f]+)\b")


def address_advance(loop: Loop) -> int:
    """Bytes the loop's shared-memory address register advances per iteration: the immediate of the add that
    steps a register its shared loads address from (`VIADD R104, R104, 0x50` after `LDS [R104+...]`)."""
    bases = {m.group(1) for i in loop.body if i.opcode == "LDS" for m in [_SHARED_BASE.search(i.operands)] if m}
    for instruction in loop.body:
        match = _ADVANCE.match(instruction.operands)
        if instruction.opcode in ("VIADD", "IADD3", "UIADD3") and match and match.group(1) == match.group(2) \
                and match.group(1) in bases:
            return int(match.group(3), 16)
    raise ValueError("no add of an immediate to the shared loads' address register in the loop")


def steady_state_loop(sass: str, bytes_per_j: int, rows_per_thread: int = 1) -> Loop:
    """The j loop of a kernel, with its unroll factor: the bytes its shared-memory address advances per
    iteration over `bytes_per_j`, one row of the tile (keir.compiler.lower_gpu). Counting loads instead would
    be fooled by LLVM's unrolling and by its narrowing of a row's partly used last vector; each column serves
    `rows_per_thread` rows."""
    loops = [loop for loop in sass_loops(sass) if loop.shared_bytes]
    if not loops:
        raise ValueError("no loop with shared-memory loads in the SASS")
    loop = max(loops, key=lambda candidate: (candidate.shared_bytes, len(candidate.body)))
    advance = address_advance(loop)
    if advance % bytes_per_j:
        raise ValueError(f"the loop's shared address advances {advance} bytes per iteration, not a multiple of "
                         f"the {bytes_per_j} bytes of one column j")
    loop.unroll, loop.rows = advance // bytes_per_j, rows_per_thread
    return loop


@dataclass(frozen=True)
class Machine:
    """An issue model: each scheduler issues one warp instruction per clock."""

    name: str
    sms: int
    schedulers_per_sm: int
    clock_hz: float

    def pairs_per_second(self, instructions_per_pair: float) -> float:
        return self.sms * self.schedulers_per_sm * self.clock_hz * 32 / instructions_per_pair


MACHINES = {"sm_90": Machine("H200", 132, 4, 1.98e9), "sm_80": Machine("A100", 108, 4, 1.41e9)}


def tool(name: str) -> str | None:
    """A CUDA tool from NVIDIA's pip wheels in this environment (pinned, so counts are reproducible), else
    from PATH."""
    for bin_dir in sorted(Path(sysconfig.get_paths()["purelib"]).glob("nvidia/*/bin")):
        if (bin_dir / name).exists():
            return str(bin_dir / name)
    return shutil.which(name)


@dataclass
class Assembly:
    registers: int
    spilled_bytes: int
    shared_bytes: int
    sass: str


def assemble(ptx: str, arch: str) -> Assembly:
    """ptxas (with -v) then nvdisasm: resources and the SASS listing."""
    ptxas, nvdisasm = tool("ptxas"), tool("nvdisasm")
    if not ptxas or not nvdisasm:
        raise RuntimeError("ptxas and nvdisasm are needed: pip install 'keir[bench]' (NVIDIA's wheels)")
    with tempfile.TemporaryDirectory() as work:
        source, cubin = Path(work) / "kernel.ptx", Path(work) / "kernel.cubin"
        source.write_text(ptx)
        result = subprocess.run([ptxas, f"-arch={arch}", "-v", "-o", str(cubin), str(source)],
                                capture_output=True, text=True, check=True)
        sass = subprocess.run([nvdisasm, "-c", str(cubin)], capture_output=True, text=True, check=True).stdout
    info = result.stderr
    registers = int(re.search(r"Used (\d+) registers", info).group(1))
    spills = sum(int(v) for v in re.findall(r"(\d+) bytes spill (?:stores|loads)", info))
    shared = re.search(r"(\d+) bytes smem", info)
    return Assembly(registers, spills, int(shared.group(1)) if shared else 0, sass)
