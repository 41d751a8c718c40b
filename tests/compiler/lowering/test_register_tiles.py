"""The CPU lowering's register tiles follow the host's vector registers (register_tiles.py), and every tile
shape computes the same values, whatever host runs the test: K-NN and K @ B with the tiles of AVX-512, AVX2 and
16-byte registers against NumPy float64."""

import numpy as np
import pytest

import keir.numpy as kn
from keir.compiler.kernel import Kernel
from keir.compiler.pipeline import Compilation, CompileOptions
from keir.compiler.register_tiles import RegisterTiles, register_tiles_for
from keir.kernels import cpu_kernel

TILES = [RegisterTiles(32), RegisterTiles(8), RegisterTiles(4)]


def test_tiles_follow_the_register_file():
    avx512 = register_tiles_for("+avx,+avx2,+fma,+avx512f,+avx512bw", "x86_64-unknown-linux-gnu")
    avx2 = register_tiles_for("+avx,+avx2,+fma,-avx512f,-avx512bw", "x86_64-unknown-linux-gnu")
    neon = register_tiles_for("+neon,+fp-armv8", "aarch64-unknown-linux-gnu")
    sse = register_tiles_for("+sse2,-avx", "x86_64-unknown-linux-gnu")
    assert (avx512.wide_rows, avx512.product_tile) == (16, (4, 6))
    assert (avx2.wide_rows, avx2.product_tile) == (4, (3, 2))
    assert (neon.vectors, sse.vectors) == (8, 4)
    assert (sse.wide_rows, sse.product_tile) == (2, (1, 3))


@pytest.mark.parametrize("tiles", TILES, ids=lambda t: f"{t.vectors}-vectors")
def test_the_loops_take_the_tiles_rows(tiles):
    x, y = np.zeros((4, 32), np.float32), np.zeros((4, 32), np.float32)
    root = kn.Vi(x).sqdist(kn.Vj(y)).sum(axis=1, call=False, sum_scheme="direct_sum").root
    loops = Compilation(Kernel("k", root, "f32"), CompileOptions(register_tiles=tiles)).loops
    assert f":{tiles.wide_rows} = scf.for" in loops


def _run(root, arrays, m, n, tiles):
    kernel = cpu_kernel(root, arrays[0].dtype, CompileOptions(register_tiles=tiles))
    return kernel(list(arrays), m, n)


@pytest.mark.parametrize("tiles", TILES, ids=lambda t: f"{t.vectors}-vectors")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_tile_shape_gives_the_same_neighbours_and_products(tiles, dtype):
    rng = np.random.default_rng(tiles.vectors)
    m, n, dim, columns = 37, 301, 20, 29  # tails of every tile
    x, y = rng.uniform(-1, 1, (m, dim)).astype(dtype), rng.uniform(-1, 1, (n, dim)).astype(dtype)
    d2 = ((x[:, None].astype(float) - y[None]) ** 2).sum(-1)
    root = kn.Vi(x).sqdist(kn.Vj(y)).argKmin(3, axis=1, call=False).root
    (indices,) = _run(root, (x, y), m, n, tiles)
    assert np.array_equal(indices, np.argsort(d2, axis=1)[:, :3])

    b = rng.standard_normal((n, columns)).astype(dtype)
    x3, y3 = x[:, :3].copy(), y[:, :3].copy()
    root = ((-kn.Vi(x3).sqdist(kn.Vj(y3))).exp() * kn.Vj(b)).sum(axis=1, call=False).root
    (got,) = _run(root, (x3, y3, b), m, n, tiles)
    want = np.exp(-((x3[:, None].astype(float) - y3[None]) ** 2).sum(-1)) @ b.astype(float)
    eps = np.finfo(dtype).eps
    assert np.abs(got - want).max() <= 8 * eps * np.abs(b).astype(float).sum(0).max() * np.sqrt(n)
