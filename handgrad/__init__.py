"""handgrad: backpropagation derived by hand, shipped as PyTorch autograd Functions."""

from handgrad import autograd, functional

__version__ = "0.1.0"
__all__ = ["autograd", "functional"]
