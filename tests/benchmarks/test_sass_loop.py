"""benchmarks/sass.py finds a kernel's steady-state j loop and its unroll factor honestly.

On a hand-written listing (always), and on keir's Gaussian kernel assembled by ptxas (where ptxas and
nvdisasm are installed: nvdisasm comes with the test extra, ptxas with a CUDA toolkit or `keir[bench]`),
where the unroll factor is checked against an independent count: each pair needs D = 3 subtractions
x_i - y_j, so the loop holds 3 x unroll x rows (per thread) of them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "sass.py"
_SPEC = importlib.util.spec_from_file_location("keir_bench_sass", _PATH)
sass = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = sass  # dataclasses look their module up there
_SPEC.loader.exec_module(sass)

LISTING = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   LDS R4, [UR4] ;
.L_x_1:
        /*0020*/                   LDS.64 R6, [UR5] ;
        /*0030*/                   LDS.64 R8, [UR5+0x8] ;
        /*0040*/                   FADD R9, R2, -R6 ;
        /*0050*/                   FFMA R10, R9, R9, R10 ;
        /*0060*/                   MUFU.EX2 R11, R10 ;
        /*0070*/                   UIADD3 UR5, UR5, 0x20, URZ ;
        /*0080*/               @P1 BRA `(.L_x_1) ;
        /*0090*/              @!P0 BRA `(.L_x_0) ;
        /*00a0*/                   EXIT ;
"""


def test_the_innermost_loop_of_a_listing_and_its_unroll():
    loop = sass.steady_state_loop(LISTING, 16)
    assert loop.label == ".L_x_1"
    assert [i.opcode for i in loop.body] == ["LDS", "LDS", "FADD", "FFMA", "MUFU", "UIADD3", "BRA"]
    assert loop.shared_bytes == 16 and loop.unroll == 2  # the address advances 32 bytes, a row is 16
    counts = loop.counts
    assert (counts["shared loads"], counts["FP32"], counts["MUFU"], counts["uniform"], counts["branches"]) == (
        2, 2, 1, 1, 1)


def test_a_loop_loading_a_fraction_of_a_column_is_refused():
    with pytest.raises(ValueError, match="not a multiple"):
        sass.steady_state_loop(LISTING, 12)


BRANCHY = """
.L_x_4:
        /*0100*/                   LDS.128 R4, [UR5] ;
        /*0110*/                   FSETP.GE.AND P0, PT, R4, R20, PT ;
        /*0120*/              @P0 BRA `(.L_x_5) ;
        /*0130*/                   FSEL R20, R4, R20, !P0 ;
        /*0140*/                   FSEL R21, R5, R21, !P0 ;
        /*0150*/                   BRA `(.L_x_6) ;
.L_x_5:
        /*0160*/                   NOP ;
.L_x_6:
        /*0170*/                   UIADD3 UR5, UR5, 0x10, URZ ;
        /*0180*/              @P1 BRA `(.L_x_4) ;
        /*0190*/                   EXIT ;
"""


def test_the_shortest_way_through_a_loop_takes_the_skipping_branch():
    """The K-min family's fast path: a predicated forward branch may skip the insertion; an unconditional one
    always jumps."""
    (loop,) = sass.sass_loops(BRANCHY)
    assert len(loop.body) == 9 and loop.shortest == 6  # LDS, FSETP, @P0 BRA, NOP, UIADD3, @P1 BRA
    (other,) = sass.sass_loops(BRANCHY.replace("@P0 BRA", "BRA"))
    assert other.shortest == 6 and sass.parse_sass(BRANCHY)[0][2].predicated


def test_the_issue_model():
    assert sass.MACHINES["sm_90"].pairs_per_second(33.25) == pytest.approx(1.006e12, rel=1e-3)


@pytest.mark.skipif(not (sass.tool("ptxas") and sass.tool("nvdisasm")),
                    reason="ptxas or nvdisasm not installed (CUDA toolkit, or pip install 'keir[bench]')")
def test_keirs_gaussian_loop_is_found_with_its_unroll():
    import keir.numpy as kn
    from keir import gpu_kernels
    from keir.compiler.codegen_gpu import gpu_to_ptx

    x, y, b = (np.ones((4, d), dtype=np.float32) for d in (3, 3, 1))
    root = ((-kn.Vi(x).sqdist(kn.Vj(y))).exp() * kn.Vj(b)).sum(axis=1, call=False).root
    options = gpu_kernels.gpu_options(None, "sm_90")
    lowered = gpu_kernels.gpu_lowering(root, np.dtype("float32"), options, "keir_kernel")
    assert lowered.row_bytes == 16  # y_j (3 floats) and b_j (1): one row, one vector load
    loop = sass.steady_state_loop(sass.assemble(gpu_to_ptx(lowered.text, "sm_90"), "sm_90").sass, lowered.row_bytes,
                                  lowered.rows_per_thread)
    subtractions = sum(1 for i in loop.body if i.opcode == "FADD" and ", -R" in i.operands)
    assert loop.unroll >= 1 and lowered.rows_per_thread == 8 and subtractions == 3 * loop.unroll * loop.rows
