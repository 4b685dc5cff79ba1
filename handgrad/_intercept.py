"""``hand_derived()``: every call to an op handgrad has a rule for runs handgrad's rule instead.

A ``TorchFunctionMode``: while it is active, PyTorch hands it every call of the ``torch.*``
functions, ``Tensor`` methods and operators and ``torch.nn.functional.*`` before running it. Where
the registry names a handgrad function for the callable (``Op.intercepts``: ``x + y`` →
``handgrad.functional.add``, ``F.relu`` → ``handgrad.functional.relu``), and the call builds a graph
(grad enabled, an input requiring grad), that function runs; every other call runs as written.
A mode is set aside while its own handler runs, so what a handgrad function computes inside is not
intercepted again, and a Function's forward runs with grad disabled, so nothing in it is either.

``convert(model)`` enters it around the converted model's forward, so calls written in any module
(torchvision's ``out += identity``, ``F.relu`` inside googlenet's blocks, a layer scale's ``*``) run
hand-derived; ``with handgrad.hand_derived():`` gives the same to code outside modules.
"""

import functools

import torch
from torch.overrides import TorchFunctionMode, resolve_name

from handgrad._audit import node_kind
from handgrad.ops._registry import INTERCEPTS


def _requires_grad(args, kwargs):
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            if value.requires_grad:
                return True
        elif isinstance(value, (list, tuple)) and any(isinstance(t, torch.Tensor) and t.requires_grad for t in value):
            return True
    return False


class HandDerived(TorchFunctionMode):
    """The mode of ``hand_derived`` (see the module docstring)."""

    def __init__(self, strict=False):
        super().__init__()
        self.strict = strict

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not (torch.is_grad_enabled() and _requires_grad(args, kwargs)):
            return func(*args, **kwargs)
        entry = INTERCEPTS.get(func)
        if entry is not None and (entry[1] is None or entry[1](*args, **kwargs)):
            return entry[0](*args, **kwargs)
        output = func(*args, **kwargs)
        if self.strict:
            _refuse_builtin(func, output)
        return output


def _refuse_builtin(func, output):
    """Raise if ``output`` was made by a built-in node that computes (strict mode)."""
    for t in output if isinstance(output, (tuple, list)) else (output,):
        if isinstance(t, torch.Tensor) and t.grad_fn is not None:
            kind, name = node_kind(t.grad_fn)
            if kind == "built-in":
                raise RuntimeError(f"hand_derived(strict=True): {resolve_name(func) or func} would run PyTorch's "
                                   f"built-in backward ({name}): handgrad has no rule for it")


def hand_derived(strict=False):
    """A context manager (``TorchFunctionMode``) in which every call to an op handgrad has a rule for
    (``torch.*``, ``Tensor`` methods and operators, ``torch.nn.functional.*``) runs hand-derived,
    wherever it is written. With ``strict=True``, a call that would leave a built-in computing node
    in the graph raises ``RuntimeError`` naming the op.

    Example::

        with handgrad.hand_derived():
            loss = ((x @ w).relu() + b).sum()
        handgrad.nn.audit(loss).complete   # True
    """
    return HandDerived(strict)


def forward_hand_derived(module, *args, **kwargs):
    """``module``'s own forward, run inside ``hand_derived``: what ``convert`` makes its forward."""
    with HandDerived(getattr(module, "_handgrad_strict", False)):
        return type(module).forward(module, *args, **kwargs)


def intercepted(module):
    """Whether ``convert`` has made ``module``'s forward run inside ``hand_derived``."""
    forward = module.__dict__.get("forward")
    return isinstance(forward, functools.partial) and forward.func is forward_hand_derived
