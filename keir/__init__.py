"""keir: a compiler for symbolic kernel reductions on MLIR, with a pykeops-compatible API.

    from keir.numpy import LazyTensor, Vi, Vj, Pm     # NumPy arrays
    from keir.torch import LazyTensor, Vi, Vj, Pm     # PyTorch tensors
"""

__version__ = "0.1.0"
