"""The CPU lowering's register tiles, sized for the host's vector registers.

The j loop runs on 64-byte vectors (vector<16xf32>, vector<8xf64>) on every host, and LLVM splits each into the
host's registers (two on AVX2, four with 16-byte registers). What the register file decides is how many of those
vectors a micro-kernel can keep as accumulators: the 16 rows per y_j vector that suit AVX-512's 32 registers of
64 bytes spill on AVX2's 16 registers of 32 bytes, where 4 rows ran the D = 64 K-NN 1.85x and the D = 100
Gaussian 2.1x faster (one run on a 2-core AMD EPYC, Zen 3).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

VECTOR_BYTES = 64  # the j loop's vectors: 16 float32 or 8 float64 lanes


@dataclass(frozen=True)
class RegisterTiles:
    """Tile sizes from `vectors`, the number of the j loop's vectors that the register file holds (32 with
    AVX-512, 8 with AVX2, 4 with 16 registers of 16 bytes)."""

    vectors: int

    @property
    def wide_rows(self) -> int:
        """Rows sharing each y_j vector in the wide product (`_Rows.wide_product`): their accumulators take
        half the registers (AVX-512: 16, where 24 gained nothing; AVX2: 4, where 6 ran 7 % and 8 38 % slower)."""
        return max(1, min(16, self.vectors // 2))

    @property
    def product_tile(self) -> tuple[int, int]:
        """(rows, components of B) of `K @ B`'s register tile (`_Rows._tiled_block`): its partial sums take three
        quarters of the registers (AVX-512: 4 x 6; AVX2: 3 x 2, 1.7x faster at 64 columns than 4 x 6)."""
        accumulators = max(1, 3 * self.vectors // 4)
        rows = min(4, max(1, accumulators // 2))
        return rows, accumulators // rows


def register_tiles_for(features: str, triple: str) -> RegisterTiles:
    """The tiles for a CPU with LLVM feature string `features` (e.g. "+avx2,+avx512f,...") and target `triple`."""
    enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
    if "avx512f" in enabled:
        registers, width = 32, 64
    elif "avx" in enabled:
        registers, width = 16, 32
    elif triple.startswith(("aarch64", "arm64")):
        registers, width = 32, 16
    else:
        registers, width = 16, 16
    return RegisterTiles(registers * width // VECTOR_BYTES)


@functools.cache
def host_register_tiles() -> RegisterTiles:
    from keir.compiler.codegen import host_target

    host = host_target()
    return register_tiles_for(host.features, host.triple)
