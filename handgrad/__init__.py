"""handgrad: backpropagation derived by hand, shipped as PyTorch autograd Functions.

``handgrad.autograd`` holds the Functions (the derivations), ``handgrad.functional`` and
``handgrad.nn`` their torch.nn.functional and torch.nn faces, ``handgrad.reference`` the seed's math
in NumPy and ``handgrad.testing`` the verification harness, with its database of test cases
``handgrad.testing.op_db``. The training application (the seed's networks, Lightning, ``train.py``'s
CLI) is the separate subpackage ``handgrad.training``.

``handgrad.hand_derived()`` makes every call to an op handgrad has a rule for (``x + y``, ``F.relu``,
``q @ k.mT``) run hand-derived, wherever it is written; ``handgrad.nn.convert`` enters it around a
model's forward, and ``handgrad.nn.audit(loss)`` proves from the autograd graph what ran by hand.

``handgrad.nn.convert(model, memory="lean")`` (and ``hand_derived(memory="lean")``) keeps fewer bytes for
backward than autograd, making the outputs of norms, activations and output projections again in
backward; ``handgrad.compiled_derivations()`` runs the backward formulas compiled.

``handgrad.register_function`` makes your own hand-derived Function one of handgrad's ops (convert,
coverage, the check and the benchmark then treat it as handgrad's own).

``handgrad.exercises`` are the tutorial's exercises: derive a backward, and ``check`` grades it with
the verification harness and names the classic mistake a wrong gradient matches (``handgrad-learn``
on the command line).

``import handgrad`` loads the library alone: ``handgrad.testing``, ``handgrad.reference`` and
``handgrad.exercises`` load on first use.
"""

import importlib

from handgrad import autograd, functional, nn
from handgrad._intercept import hand_derived
from handgrad.ops import Derivative, register_function, unregister
from handgrad.ops._function import compiled_derivations

__version__ = "0.1.0"
__all__ = ["autograd", "functional", "nn", "reference", "testing", "exercises", "register_function", "unregister",
           "Derivative", "hand_derived", "compiled_derivations"]
_ON_FIRST_USE = ("reference", "testing", "exercises")


def __getattr__(name):
    if name in _ON_FIRST_USE:
        return importlib.import_module(f"handgrad.{name}")
    raise AttributeError(f"module 'handgrad' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_ON_FIRST_USE))
