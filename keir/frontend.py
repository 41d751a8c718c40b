"""The front-end factory: what keir.numpy and keir.torch export (Vi, Vj, Pm, Genred, KernelSolve, generic_*),
made for the front end's LazyTensor class."""

from __future__ import annotations

from typing import Any

from keir import genred, lazy

NAMES = ("Vi", "Vj", "Pm", "Genred", "KernelSolve", "generic_sum", "generic_logsumexp", "generic_argmin",
         "generic_argkmin")


def _subclass(base: type, module: str, **attributes: Any) -> type:
    """A subclass of `base` named like it in `module` (so that pickle finds it there)."""
    return type(base.__name__, (base,), {"__doc__": base.__doc__, "__module__": module,
                                          "__qualname__": base.__name__, **attributes})


def make_frontend(lazy_class: type, module: str) -> tuple[Any, ...]:
    """The objects named in NAMES, in that order, for a front end whose LazyTensor is `lazy_class`, defined in
    `module`."""
    vi, vj, pm = lazy.variable_constructors(lazy_class, module)
    genred_class = _subclass(genred.Genred, module, lazy_class=lazy_class)
    kernel_solve = _subclass(genred.KernelSolve, module, genred_class=genred_class)
    return (vi, vj, pm, genred_class, kernel_solve, *genred.make_generic(genred_class))
