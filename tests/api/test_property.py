"""Property test: random formulas against a dense NumPy float64 evaluator (written independently of keir)."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.reference import kernel_sum, relative_error

import keir.numpy as kn

# each entry: (keir builder, numpy builder); values stay bounded so float64 comparisons are meaningful
UNARY = [
    (lambda a: -a, lambda a: -a),
    (lambda a: a.sin(), np.sin),
    (lambda a: a.cos(), np.cos),
    (lambda a: a.square(), np.square),
    (lambda a: abs(a), np.abs),
    (lambda a: (-a.square()).exp(), lambda a: np.exp(-np.square(a))),
    (lambda a: (a.square() + 1).log(), lambda a: np.log(np.square(a) + 1)),
    (lambda a: (a.square() + 1).rsqrt(), lambda a: 1 / np.sqrt(np.square(a) + 1)),
    (lambda a: a.atan(), np.arctan),
]
BINARY = [
    (lambda a, b: a + b, np.add),
    (lambda a, b: a - b, np.subtract),
    (lambda a, b: a * b, np.multiply),
    (lambda a, b: a / (b.square() + 1), lambda a, b: a / (np.square(b) + 1)),
]


def formulas(depth):
    leaves = st.sampled_from([("x",), ("y",), ("p",), ("c",)])
    if depth == 0:
        return leaves
    smaller = formulas(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(st.just("u"), st.integers(0, len(UNARY) - 1), smaller),
        st.tuples(st.just("b"), st.integers(0, len(BINARY) - 1), smaller, smaller),
        st.tuples(st.just("s"), smaller),  # in-vector sum: dimension 1, broadcasts back
    )


def build(tree, leaves, unary_index, binary_index):
    kind = tree[0]
    if kind in leaves:
        return leaves[kind]
    if kind == "u":
        return UNARY[tree[1]][unary_index](build(tree[2], leaves, unary_index, binary_index))
    if kind == "b":
        a = build(tree[2], leaves, unary_index, binary_index)
        b = build(tree[3], leaves, unary_index, binary_index)
        return BINARY[tree[1]][binary_index](a, b)
    inner = build(tree[1], leaves, unary_index, binary_index)
    return inner.sum() if binary_index == 0 else inner.sum(-1, keepdims=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=formulas(3), m=st.integers(1, 40), n=st.integers(1, 70), axis=st.integers(0, 1))
def test_random_formulas_match_numpy(tree, m, n, axis):
    rng = np.random.default_rng(m * 100 + n)
    x, y, p = rng.uniform(-1, 1, (m, 2)), rng.uniform(-1, 1, (n, 2)), rng.uniform(-1, 1, 2)
    keir_leaves = {"x": kn.Vi(x), "y": kn.Vj(y), "p": kn.Pm(p), "c": kn.LazyTensor(0.75)}
    # "+ 0 * (x and y)" makes sure every formula has an i and a j variable, whatever was drawn
    formula = build(tree, keir_leaves, 0, 0) + 0 * (kn.Vi(x).sum() + kn.Vj(y).sum())
    out = formula.sum(axis=axis)

    def reference(xs, ys, ps):
        leaves = {"x": xs, "y": ys, "p": ps, "c": np.array([0.75])}
        return build(tree, leaves, 1, 1) + 0 * (xs.sum(-1, keepdims=True) + ys.sum(-1, keepdims=True))

    want = kernel_sum(reference, [x], [y], [p], axis=axis)
    assert out.shape == want.shape
    assert relative_error(out, want) < 1e-11
