"""The op test matrix: formulas that tests/compiler/lowering/test_ops.py checks against NumPy and
tests/compiler/lowering/test_gpu_ptx.py compiles for the GPU, and the reduction kinds (with options) that the GPU
tests and benchmarks/gpu_check.py run."""

import numpy as np

# name: (keir formula on (x_i, y_j, b_j, p), NumPy formula on broadcast float64 arrays)
# x, y have dimension 3 and values in [0.5, 1.5]; b has dimension 1; p is a parameter of dimension 3.
OPS = {
    "add": (lambda x, y, b, p: x + y, lambda x, y, b, p: x + y),
    "add_broadcast": (lambda x, y, b, p: x + b, lambda x, y, b, p: x + b),
    "sub": (lambda x, y, b, p: x - y * p, lambda x, y, b, p: x - y * p),
    "mul": (lambda x, y, b, p: x * y, lambda x, y, b, p: x * y),
    "div": (lambda x, y, b, p: x / y, lambda x, y, b, p: x / y),
    "neg": (lambda x, y, b, p: -(x * b), lambda x, y, b, p: -(x * b)),
    "exp": (lambda x, y, b, p: (x - y).exp(), lambda x, y, b, p: np.exp(x - y)),
    "log": (lambda x, y, b, p: (x * y).log(), lambda x, y, b, p: np.log(x * y)),
    "sqrt": (lambda x, y, b, p: (x + y).sqrt(), lambda x, y, b, p: np.sqrt(x + y)),
    "rsqrt": (lambda x, y, b, p: (x + y).rsqrt(), lambda x, y, b, p: 1 / np.sqrt(x + y)),
    "square": (lambda x, y, b, p: (x - y).square(), lambda x, y, b, p: (x - y) ** 2),
    "pow3": (lambda x, y, b, p: (x - y) ** 3, lambda x, y, b, p: (x - y) ** 3),
    "pow_neg2": (lambda x, y, b, p: (x + y) ** -2, lambda x, y, b, p: (x + y) ** -2.0),
    "abs": (lambda x, y, b, p: abs(x - y), lambda x, y, b, p: np.abs(x - y)),
    "sum": (lambda x, y, b, p: (x * y).sum(), lambda x, y, b, p: (x * y).sum(-1, keepdims=True)),
    "dot": (lambda x, y, b, p: (x | y), lambda x, y, b, p: (x * y).sum(-1, keepdims=True)),
    "sqdist": (lambda x, y, b, p: x.sqdist(y), lambda x, y, b, p: ((x - y) ** 2).sum(-1, keepdims=True)),
    "sqnorm2": (lambda x, y, b, p: (x - y).sqnorm2(), lambda x, y, b, p: ((x - y) ** 2).sum(-1, keepdims=True)),
    "elem": (lambda x, y, b, p: (x * y)[1], lambda x, y, b, p: (x * y)[..., 1:2]),
    "extract": (lambda x, y, b, p: (x - y)[1:3], lambda x, y, b, p: (x - y)[..., 1:3]),
    "concat": (
        lambda x, y, b, p: x.concat(y * b),
        lambda x, y, b, p: np.concatenate(np.broadcast_arrays(x, y * b), -1),
    ),
    "gaussian": (
        lambda x, y, b, p: (-x.sqdist(y) / 0.5).exp() * b,
        lambda x, y, b, p: np.exp(-((x - y) ** 2).sum(-1, keepdims=True) / 0.5) * b,
    ),
}

# (kind, options) of keir.reduce: every reduction kind and summation scheme
REDUCTIONS = [
    ("sum", {"sum_scheme": "kahan_scheme"}), ("sum", {"sum_scheme": "block_sum"}), ("sum", {"dtype_acc": "float64"}),
    ("min", {}), ("max", {}), ("argmin", {}), ("argmax", {}), ("min_argmin", {}), ("max_argmax", {}),
    ("kmin", {"k": 3}), ("argkmin", {"k": 3}), ("kmin_argkmin", {"k": 2}), ("logsumexp", {}),
    ("logsumexp_weight", {}), ("sumsoftmaxweight", {}), ("logsumexp", {"sum_scheme": "kahan_scheme"}),
    ("logsumexp_weight", {"dtype_acc": "float64"}), ("sumsoftmaxweight", {"sum_scheme": "kahan_scheme"}),
]
