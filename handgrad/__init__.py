"""handgrad: backpropagation derived by hand, shipped as PyTorch autograd Functions.

``handgrad.autograd`` holds the Functions (the derivations), ``handgrad.functional`` and
``handgrad.nn`` their torch.nn.functional and torch.nn faces, ``handgrad.models`` the seed's
networks and ``handgrad.reference`` the seed's math in NumPy. The Lightning pieces
(``handgrad.data``, ``handgrad.lit``, ``handgrad.cli``) are imported only by ``train.py``.
"""

from handgrad import autograd, functional, models, nn, reference

__version__ = "0.1.0"
__all__ = ["autograd", "functional", "nn", "models", "reference"]
