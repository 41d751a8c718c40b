"""keir on PyTorch tensors: `from keir.torch import LazyTensor, Vi, Vj, Pm`. Torch in, torch out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from keir import autograd, lazy, lazy_complex, solve_torch, torch_ops
from keir.frontend import NAMES, make_frontend

_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
                torch.bfloat16: "bfloat16"}

__all__ = ["LazyTensor", "ComplexLazyTensor", *NAMES]


class TorchAdapter(lazy.ArrayAdapter):
    name = "torch"

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, torch.Tensor)

    def dtype_name(self, array: Any) -> str:
        return _DTYPE_NAMES.get(array.dtype) or str(array.dtype).removeprefix("torch.")

    def to_numpy(self, array: Any) -> np.ndarray:
        if not array.is_cpu:
            raise ValueError(f"keir's CPU backend got a tensor on {array.device}; move it to the CPU first")
        # detach() only where autograd tracks the tensor: it costs as much as numpy() itself
        return array.detach().numpy() if array.requires_grad else array.numpy()

    def is_complex_array(self, array: Any) -> bool:
        return array.is_complex()

    def real_view(self, array: Any) -> Any:
        """A complex tensor (..., D) as its interleaved real components (..., 2D); differentiable."""
        return torch.view_as_real(array.resolve_conj()).flatten(-2)

    def to_float32(self, array: Any) -> Any:
        return array.float()  # differentiable: autograd rounds the gradient back to the half dtype

    def rounded(self, out: Any, dtype: str) -> Any:
        return out.to(getattr(torch, dtype)) if out.is_floating_point() else out

    def complex_view(self, out: Any) -> Any:
        """A real result (..., 2D) of interleaved pairs as complex numbers (..., D); differentiable."""
        return torch.view_as_complex(out.reshape(*out.shape[:-1], out.shape[-1] // 2, 2))

    def on_cuda(self, arrays: tuple) -> bool:
        for a in arrays:  # a loop, not any(generator): this runs on every call
            if isinstance(a, torch.Tensor) and a.is_cuda:
                return True
        return False

    def cuda_device(self, arrays: tuple) -> int | None:
        for a in arrays:
            if isinstance(a, torch.Tensor) and a.is_cuda:
                return a.device.index
        return None

    def device_inputs(self, arrays: tuple) -> list[Any]:
        like = next(a for a in arrays if isinstance(a, torch.Tensor) and a.is_cuda)
        return [torch.tensor([a], dtype=like.dtype, device=like.device) if isinstance(a, float) else a.detach()
                for a in arrays]

    def stack(self, parts: list[Any]) -> Any:
        return torch.stack(parts) if isinstance(parts[0], torch.Tensor) else np.stack(parts)

    needs_autograd = staticmethod(autograd.needs_autograd)
    differentiable = staticmethod(autograd.reduce)
    tracing = staticmethod(torch_ops.tracing)
    traced = staticmethod(torch_ops.reduce)
    solve = staticmethod(solve_torch.differentiable_solve)
    genred_solve = staticmethod(solve_torch.differentiable_genred_solve)

    def result(self, out: Any, like: Any) -> Any:
        if isinstance(out, torch.Tensor):  # computed on the GPU, already a tensor on the right device
            return out
        result = torch.from_numpy(out)
        return result.to(like.device) if isinstance(like, torch.Tensor) and like.is_cuda else result


class LazyTensor(lazy.LazyTensor):
    __slots__ = ()
    adapter = TorchAdapter()

    # Built by _build, which torch.compile runs rather than traces (see keir.torch_ops.make_traceable).
    def __new__(cls, *args: Any, **kwargs: Any) -> LazyTensor:
        return _build(*args, **kwargs) if cls is LazyTensor else _build_subclass(cls, *args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # __new__ built it

    @classmethod
    def __torch_function__(cls, func: Any, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        return torch_ops.torch_function(func, args, kwargs)


class ComplexLazyTensor(lazy_complex.ComplexFormulas, LazyTensor):
    """A formula of complex values (pykeops' ComplexLazyTensor): LazyTensor(complex tensor) makes one."""

    __slots__ = ()


LazyTensor.real_class = ComplexLazyTensor.real_class = LazyTensor
LazyTensor.complex_class = ComplexLazyTensor.complex_class = ComplexLazyTensor


def _build(*args: Any, **kwargs: Any) -> LazyTensor:
    return _build_subclass(LazyTensor, *args, **kwargs)


def _build_subclass(cls: type, *args: Any, **kwargs: Any) -> LazyTensor:
    self = object.__new__(cls)
    lazy.LazyTensor.__init__(self, *args, **kwargs)
    return self


torch_ops.make_traceable(LazyTensor)
torch_ops.make_traceable(ComplexLazyTensor)
torch_ops.run_outside_dynamo(_build)


Vi, Vj, Pm, Genred, KernelSolve, generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = make_frontend(
    LazyTensor, __name__)
