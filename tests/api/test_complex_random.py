"""Random complex formulas (issue 17's adversary): trees of pykeops' complex operations over complex and real
variables and numbers of both kinds, built once as Python source and evaluated twice, on keir LazyTensors and
on dense NumPy complex128 (or torch, for gradients) arrays broadcast to (M, N, D), the sum over j compared.

KEIR_COMPLEX_CASES sets the number of formulas (default 40; each compiles a kernel and a gradient kernel)."""

from __future__ import annotations

import math
import os
import random
import re

import numpy as np
import pytest

from keir.numpy import LazyTensor

torch = pytest.importorskip("torch", reason="the gradients are compared with torch's complex autograd")
import keir.torch as kt  # noqa: E402

M, N, D = 5, 7, 2
CASES = int(os.environ.get("KEIR_COMPLEX_CASES", "40"))
# Leaves: complex x (i) and y (j), real r (j, dimension D) and s (j, dimension 1); numbers of every kind.
LEAVES = ("x", "y", "r", "s")
NUMBERS = ("0.5", "-2", "1e-3", "3.0", "(1-2j)", "0.25j", "(-0.5+1e-3j)", "1e5j / 1e5")


def _uses(text: str, leaves: str) -> bool:
    return re.search(rf"\b[{leaves}]\b", text) is not None


def _formula(rng: random.Random, depth: int) -> str:
    """Python source of a formula over x, y, r, s and the helper functions of `_namespace`; bounded values:
    exp takes a halved argument, denominators stay away from zero, angle reads a variable (never a value on
    its branch cut)."""
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(LEAVES) if rng.random() < 0.85 else rng.choice(NUMBERS)
    a = _formula(rng, depth - 1)
    choice = rng.randrange(12)
    if choice >= 4 and not _uses(a, "xyrs"):  # a function of numbers only is a number, not a formula
        a = rng.choice(LEAVES)
    if choice < 4:
        b = _formula(rng, depth - 1)
        return f"({a} {'+-*'[choice % 3]} {b})" if choice < 3 else f"({a} / (2.5 + {rng.choice(LEAVES)}))"
    unary = {4: "cexp(0.5 * {})", 5: "conj({})", 6: "real({})", 7: "imag({})", 8: "cabs({})", 9: "csum({})",
             10: "exp1j(real({}))", 11: "r2c(real({})) * i2c(imag({}))"}[choice]
    if choice == 8 and rng.random() < 0.5:
        return f"angle({rng.choice(('x', 'y'))})"
    return unary.format(a, a)


def _keir_namespace() -> dict:
    """The helpers on LazyTensors, real or complex alike (a real formula meets .real as itself)."""
    def real(a):
        return a.real if getattr(a, "is_complex", False) else a

    def imag(a):
        return a.imag if getattr(a, "is_complex", False) else 0 * a

    def csum(a):
        return a.sum(-1)

    return {"cexp": lambda a: a.exp(), "conj": lambda a: a.conj() if getattr(a, "is_complex", False) else a,
            "real": real, "imag": imag, "cabs": abs, "csum": csum, "angle": lambda a: a.angle(),
            "exp1j": lambda a: a.exp1j(), "r2c": lambda a: a.real2complex(), "i2c": lambda a: a.imag2complex()}


def _dense_namespace(xp) -> dict:
    def csum(a):
        return a.sum(-1, keepdims=True) if xp is np else a.sum(-1, keepdim=True)

    def real(a):
        return a.real if _is_complex(a) else a

    def imag(a):
        return a.imag if _is_complex(a) else 0 * a

    return {"cexp": xp.exp, "conj": xp.conj, "real": real, "imag": imag, "cabs": xp.abs, "csum": csum,
            "angle": xp.angle, "exp1j": lambda a: xp.exp(1j * a), "r2c": lambda a: a + 0j, "i2c": lambda a: 1j * a}


def _is_complex(a) -> bool:
    return a.is_complex() if isinstance(a, torch.Tensor) else np.iscomplexobj(a)


def _data(seed: int):
    rng = np.random.default_rng(seed)
    c = lambda shape: rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape)  # noqa: E731
    return {"x": c((M, 1, D)), "y": c((1, N, D)), "r": rng.uniform(-1.5, 1.5, (1, N, D)),
            "s": rng.uniform(-1.5, 1.5, (1, N, 1))}


def _formulas() -> list[str]:
    rng = random.Random(17)
    formulas = []
    while len(formulas) < CASES:
        text = _formula(rng, 4)
        if _uses(text, "x") and _uses(text, "yrs"):  # an i and a j variable: M and N as the dense form
            formulas.append(text)
    return formulas


def _evaluate(text: str, arrays: dict, namespace: dict):
    return eval(text, {"__builtins__": {}, "math": math}, {**namespace, **arrays})  # the generator's own source


def _as_mnd(value, xp):
    """A dense value broadcast to (M, N, dim) (a number or a row-only value is constant along the others)."""
    value = value if hasattr(value, "shape") else xp.asarray(value)
    shape = (M, N, value.shape[-1] if value.ndim == 3 else 1)
    return np.broadcast_to(value, shape) if xp is np else value.expand(shape)


@pytest.mark.parametrize("text", _formulas())
def test_random_complex_formula(text):
    arrays = _data(seed=len(text))
    got = _evaluate(text, {k: LazyTensor(v) for k, v in arrays.items()}, _keir_namespace())
    got = got.sum(axis=1)
    want = _as_mnd(_evaluate(text, arrays, _dense_namespace(np)), np).sum(1)
    assert got.shape == want.shape, text
    assert np.iscomplexobj(got) == np.iscomplexobj(want), text
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(want).max()), err_msg=text)

    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    mine = {k: t.clone().requires_grad_() for k, t in tensors.items()}
    theirs = {k: t.clone().requires_grad_() for k, t in tensors.items()}
    out = _evaluate(text, {k: kt.LazyTensor(t) for k, t in mine.items()}, _keir_namespace())
    out = out.sum(axis=1)
    dense = _as_mnd(_evaluate(text, theirs, _dense_namespace(torch)), torch).sum(1)
    weight = torch.linspace(-1, 1, dense.numel(), dtype=torch.float64).reshape(dense.shape)
    loss = lambda value: (value * weight).real.sum() if value.is_complex() else (value * weight).sum()  # noqa: E731
    loss(out).backward()
    loss(dense).backward()
    for name in LEAVES:
        a, b = mine[name].grad, theirs[name].grad
        if a is None or b is None:
            assert (a is None or not a.any()) and (b is None or not b.any()), f"d/d{name} of {text}"
            continue
        scale = max(1.0, float(b.abs().max()))
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * scale, msg=f"d/d{name} of {text}")
