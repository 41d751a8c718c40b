"""keir.jax: eager vs jax.jit vs dense references, jax.grad (first and second order), jax.jvp, jax.vmap, two
small models trained under jax.jit, and the errors. float32 keir against float64 NumPy / float32 dense jax."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from keir.jax import Vi, Vj, ffi  # noqa: E402

RNG = np.random.default_rng(0)
X64 = RNG.normal(size=(40, 3))
Y64 = RNG.normal(size=(30, 3))
B64 = RNG.normal(size=(30, 2))
X, Y, B = (jnp.asarray(a, jnp.float32) for a in (X64, Y64, B64))


def gaussian(x, y, b):
    return ((-Vi(x).sqdist(Vj(y))).exp() * Vj(b)).sum(axis=1)


def gaussian_dense(x, y, b):
    return jnp.exp(-((x[:, None] - y[None]) ** 2).sum(-1)) @ b


def lse(x, y, b):
    return (-Vi(x).sqdist(Vj(y)) + Vj(b[:, :1])).logsumexp(axis=1)


def lse_dense(x, y, b):
    return jax.nn.logsumexp(-((x[:, None] - y[None]) ** 2).sum(-1) + b[None, :, 0], axis=1)[:, None]


def laplacian(x, y, b):
    kernel = (-Vi(x).sqdist(Vj(y)) / 2.0).exp()
    return (kernel.laplacian(Vi(x)) * Vj(b[:, :1])).sum(axis=1)


def laplacian_dense(x, y, b):
    def kernel_row(xi):  # sum_j K(xi, y_j) b_j
        return (jnp.exp(-((xi - y) ** 2).sum(-1) / 2) * b[:, 0]).sum()

    return jax.vmap(lambda xi: jnp.trace(jax.hessian(kernel_row)(xi)))(x)[:, None]


def numpy_reference(name):
    d2 = ((X64[:, None] - Y64[None]) ** 2).sum(-1)
    if name == "gaussian":
        return np.exp(-d2) @ B64
    if name == "lse":
        z = -d2 + B64[None, :, 0]
        top = z.max(1, keepdims=True)
        return top + np.log(np.exp(z - top).sum(1, keepdims=True))
    k = np.exp(-d2 / 2)  # Delta_x exp(-|x-y|^2/2) = (|x-y|^2 - D) exp(-|x-y|^2/2)
    return ((d2 - 3) * k) @ B64[:, :1]


FORMULAS = {"gaussian": (gaussian, gaussian_dense), "lse": (lse, lse_dense), "laplacian": (laplacian, laplacian_dense)}


@pytest.mark.parametrize("name", FORMULAS)
def test_eager_and_jit_match_a_float64_reference(name):
    keir_fn, _ = FORMULAS[name]
    expected = numpy_reference(name)
    eager = keir_fn(X, Y, B)
    compiled = jax.jit(keir_fn)(X, Y, B)
    assert isinstance(eager, jax.Array) and eager.dtype == jnp.float32 and eager.shape == expected.shape
    np.testing.assert_allclose(eager, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(compiled, eager, rtol=1e-6, atol=1e-6)


def test_argkmin_eager_and_jit_match_numpy():
    def nearest(x, y):
        return Vi(x).sqdist(Vj(y)).argKmin(3, axis=1)

    expected = np.argsort(((X64[:, None] - Y64[None]) ** 2).sum(-1), axis=1)[:, :3]
    np.testing.assert_array_equal(nearest(X, Y), expected)
    np.testing.assert_array_equal(jax.jit(nearest)(X, Y), expected)


@pytest.mark.parametrize("name", FORMULAS)
def test_grad_matches_dense_autodiff_eager_and_jitted(name):
    keir_fn, dense_fn = FORMULAS[name]

    def loss(fn):
        return lambda x, y, b: (fn(x, y, b) ** 2).sum()

    expected = jax.grad(loss(dense_fn), argnums=(0, 1, 2))(X, Y, B)
    for transform in (lambda f: f, jax.jit):
        got = transform(jax.grad(loss(keir_fn), argnums=(0, 1, 2)))(X, Y, B)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=2e-4, atol=2e-4 * float(jnp.abs(e).max()))


def test_second_order_grad_matches_dense():
    def hessian_row_sums(fn):
        return jax.grad(lambda x: jax.grad(lambda x: (fn(x, Y, B) ** 2).sum())(x).sum())(X)

    expected = hessian_row_sums(gaussian_dense)
    scale = float(jnp.abs(expected).max())
    np.testing.assert_allclose(hessian_row_sums(gaussian), expected, rtol=1e-3, atol=1e-3 * scale)
    np.testing.assert_allclose(jax.jit(lambda: hessian_row_sums(gaussian))(), expected, rtol=1e-3, atol=1e-3 * scale)


@pytest.mark.parametrize("name", ["gaussian", "lse"])
def test_jvp_matches_dense(name):
    keir_fn, dense_fn = FORMULAS[name]
    tangents = tuple(jnp.asarray(RNG.normal(size=a.shape), jnp.float32) for a in (X, Y, B))
    value, tangent = jax.jit(lambda *t: jax.jvp(keir_fn, (X, Y, B), t))(*tangents)
    expected_value, expected_tangent = jax.jvp(dense_fn, (X, Y, B), tangents)
    np.testing.assert_allclose(value, expected_value, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tangent, expected_tangent, rtol=1e-4, atol=1e-4 * float(jnp.abs(expected_tangent).max()))


def test_min_reduction_grad_and_jvp_follow_the_selected_pair():
    def nearest_distance(x):
        return Vi(x).sqdist(Vj(Y)).min(axis=1)

    def dense(x):
        return ((x[:, None] - Y[None]) ** 2).sum(-1).min(1)[:, None]

    np.testing.assert_allclose(nearest_distance(X), dense(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.grad(lambda x: nearest_distance(x).sum()))(X),
                               jax.grad(lambda x: dense(x).sum())(X), rtol=1e-5, atol=1e-5)
    tangent = jnp.asarray(RNG.normal(size=X.shape), jnp.float32)
    np.testing.assert_allclose(jax.jvp(nearest_distance, (X,), (tangent,))[1], jax.jvp(dense, (X,), (tangent,))[1],
                               rtol=1e-5, atol=1e-5)


def test_vmap_over_a_leading_axis_matches_a_loop():
    xs = jnp.stack([X, 0.5 * X, X + 1.0])
    bs = jnp.stack([B, -B, 2.0 * B])
    batched = jax.jit(jax.vmap(gaussian, in_axes=(0, None, 0)))(xs, Y, bs)
    looped = jnp.stack([gaussian(x, Y, b) for x, b in zip(xs, bs)])
    np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-6)
    # vmap of grad: per-example gradients
    per_example = jax.vmap(jax.grad(lambda x, b: gaussian(x, Y, b).sum()), in_axes=(0, 0))(xs, bs)
    dense_grad = jax.grad(lambda x, b: gaussian_dense(x, Y, b).sum())
    expected = jnp.stack([dense_grad(x, b) for x, b in zip(xs, bs)])
    np.testing.assert_allclose(per_example, expected, rtol=1e-4, atol=1e-5)


def rbf_layer(gaussian_sum, x, centres, weights):
    return gaussian_sum(x, centres, weights)


def rbf_loss(gaussian_sum):
    target = jnp.sin(X[:, :2])
    return lambda params: ((gaussian_sum(X, *params) - target) ** 2).mean()


def sinkhorn_loss(lse_rows, lse_columns, eps=0.5, iterations=5):
    """Entropic OT between the uniform measures on x and Y, log-domain Sinkhorn, unrolled."""

    def loss(x):
        log_a, log_b = -jnp.log(x.shape[0]), -jnp.log(Y.shape[0])
        f, g = jnp.zeros((x.shape[0], 1)), jnp.zeros((Y.shape[0], 1))
        for _ in range(iterations):
            f = -eps * lse_rows(x, Y, g / eps + log_b, eps)
            g = -eps * lse_columns(x, Y, f / eps + log_a, eps)
        return f.mean() + g.mean()

    return loss


def keir_lse_rows(x, y, g, eps):
    return (Vj(g) - Vi(x).sqdist(Vj(y)) / eps).logsumexp(axis=1)


def keir_lse_columns(x, y, f, eps):
    return (Vi(f) - Vi(x).sqdist(Vj(y)) / eps).logsumexp(axis=0)


def dense_lse_rows(x, y, g, eps):
    return jax.nn.logsumexp(g[None, :, 0] - ((x[:, None] - y[None]) ** 2).sum(-1) / eps, axis=1)[:, None]


def dense_lse_columns(x, y, f, eps):
    return jax.nn.logsumexp(f[:, 0, None] - ((x[:, None] - y[None]) ** 2).sum(-1) / eps, axis=0)[:, None]


def train(loss, params, steps=3, rate=0.1):
    step = jax.grad(loss)
    for _ in range(steps):
        params = jax.tree_util.tree_map(lambda p, g: p - rate * g, params, step(params))
    return params


@pytest.mark.parametrize("model", ["rbf", "sinkhorn"])
def test_a_model_trains_the_same_under_jit_eagerly_and_densely(model):
    if model == "rbf":
        start = (Y[:8], B[:8])
        keir_loss, dense_loss = rbf_loss(gaussian), rbf_loss(gaussian_dense)
    else:
        start = X
        keir_loss = sinkhorn_loss(keir_lse_rows, keir_lse_columns)
        dense_loss = sinkhorn_loss(dense_lse_rows, dense_lse_columns)
    eager = train(keir_loss, start)
    jitted = jax.jit(lambda p: train(keir_loss, p))(start)
    dense = train(dense_loss, start)
    for e, j, d in zip(*(jax.tree_util.tree_leaves(p) for p in (eager, jitted, dense))):
        np.testing.assert_allclose(j, e, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(e, d, rtol=1e-3, atol=1e-4)
    assert float(keir_loss(jitted)) < float(keir_loss(start))


def test_errors_are_raised_in_jax_style():
    with pytest.raises(ValueError, match="same length"):
        jax.jit(lambda x, y: (Vi(x) - Vi(y)).sum(axis=1))(X, X[:5])
    with pytest.raises(TypeError, match="float16 and bfloat16 arrays.*got int32"):
        Vi(jnp.ones((3, 2), jnp.int32))


def test_an_error_in_the_handler_becomes_a_jax_exception():
    def failing(arguments, results):
        raise ValueError("the kernel refused these buffers")

    ffi.register_target()
    failing_id = ffi.register(("a failing test runner",), failing)
    call = jax.ffi.ffi_call(ffi.TARGET, jax.ShapeDtypeStruct((2,), jnp.float32))
    with pytest.raises(Exception, match="the kernel refused these buffers"):
        jax.block_until_ready(call(jnp.ones(2), reduction=np.int64(failing_id)))


def test_complex_and_half_precision_inputs():
    import math

    from keir.jax import LazyTensor

    rng = np.random.default_rng(4)
    x, xi = jnp.asarray(rng.random((30, 1)), jnp.float32), jnp.asarray(rng.random((20, 1)), jnp.float32)
    c = jnp.asarray(rng.standard_normal(30) + 1j * rng.standard_normal(30), jnp.complex64)

    def nudft(c):
        return (LazyTensor(c[None, :, None]) * (-2j * math.pi * Vi(xi) * Vj(x)).exp()).sum(axis=1)[:, 0]

    def dense(c):
        return jnp.exp(-2j * jnp.pi * xi * x.T) @ c

    out = jax.jit(nudft)(c)
    assert out.dtype == jnp.complex64
    np.testing.assert_allclose(out, dense(c), rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda c: jnp.abs(nudft(c)).sum())(c)  # JAX's own convention for complex gradients
    np.testing.assert_allclose(grad, jax.grad(lambda c: jnp.abs(dense(c)).sum())(c), rtol=1e-4, atol=1e-4)
    h = jnp.asarray(rng.random((30, 3)), jnp.bfloat16)
    sums = jax.jit(lambda h: (-Vi(h).sqdist(Vj(h))).exp().sum(axis=1))(h)
    hd = np.asarray(h, np.float64)
    want = np.exp(-((hd[:, None] - hd[None]) ** 2).sum(-1)).sum(1, keepdims=True)
    assert sums.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(sums, np.float64), want, rtol=2.0**-8)
