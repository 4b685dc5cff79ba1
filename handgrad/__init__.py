"""handgrad: backpropagation derived by hand, shipped as PyTorch autograd Functions.

``handgrad.autograd`` holds the Functions (the derivations), ``handgrad.functional`` and
``handgrad.nn`` their torch.nn.functional and torch.nn faces, ``handgrad.reference`` the seed's math
in NumPy and ``handgrad.testing`` the verification harness. The training application (the seed's
networks, Lightning, ``train.py``'s CLI) is the separate subpackage ``handgrad.training``.
"""

from handgrad import autograd, functional, nn, reference, testing

__version__ = "0.1.0"
__all__ = ["autograd", "functional", "nn", "reference", "testing"]
