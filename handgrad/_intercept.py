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
hand-derived; ``with handgrad.hand_derived():`` gives the same to code outside modules. With
``memory="lean"`` it also enters ``handgrad._lean.Lean``: the outputs of elementwise ops, norms and the
copies between layers are made again in backward instead of being kept twice.
"""

import functools

import torch
from torch.overrides import TorchFunctionMode, resolve_name

from handgrad import _lean
from handgrad._audit import node_kind
from handgrad.ops import _function
from handgrad.ops._registry import INTERCEPTS, resolve

MEMORY = ("plain", "lean")


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

    handgrad_mode = True             # what ``handgrad.ops._function.aside`` sets aside

    def __init__(self, strict=False, memory="plain"):
        super().__init__()
        if memory not in MEMORY:
            raise ValueError(f"memory must be one of {MEMORY}, got {memory!r}")
        self.strict = strict
        self.lean = _lean.Lean() if memory == "lean" else None
        self.blocks = False              # whether the model around which it runs has blocks lean counts (``convert``)
        resolve()                        # what packages loaded since (torchvision) have made to intercept

    def __enter__(self):
        if self.lean is not None:
            self.lean.__enter__()
            if torch.compiler.is_compiling():
                _function.LEAN_TRACED.append(_function.LeanTrace(self.blocks))
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            if self.lean is not None:
                if torch.compiler.is_compiling() and _function.LEAN_TRACED:
                    _function.LEAN_TRACED.pop()
                self.lean.__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not (torch.is_grad_enabled() and _requires_grad(args, kwargs)):
            return func(*args, **kwargs)
        entry = INTERCEPTS.get(func)
        if entry is not None and (entry[1] is None or entry[1](*args, **kwargs)):
            return entry[0](*args, **kwargs)
        if _function.LEAN_TRACED and func in _lean.COPIES and torch.compiler.is_compiling():
            return _function.lean_traced("copy", func, *args, **kwargs)
        output = func(*args, **kwargs)
        if self.strict:
            _refuse_builtin(func, output)
        if func in _lean.COPIES and self.lean is not None and self.lean._active:
            self.lean.produced(func, args, output, resolve_name(func) or getattr(func, "__name__", "copy"), kwargs)
        return output


def _refuse_builtin(func, output):
    """Raise if ``output`` was made by a built-in node that computes (strict mode)."""
    for t in output if isinstance(output, (tuple, list)) else (output,):
        if isinstance(t, torch.Tensor) and t.grad_fn is not None:
            kind, name = node_kind(t.grad_fn)
            if kind == "built-in":
                raise RuntimeError(f"hand_derived(strict=True): {resolve_name(func) or func} would run PyTorch's "
                                   f"built-in backward ({name}): handgrad has no rule for it")


def hand_derived(strict=False, memory="plain"):
    """A context manager (``TorchFunctionMode``) in which every call to an op handgrad has a rule for
    (``torch.*``, ``Tensor`` methods and operators, ``torch.nn.functional.*``) runs hand-derived,
    wherever it is written. With ``strict=True``, a call that would leave a built-in computing node
    in the graph raises ``RuntimeError`` naming the op. With ``memory="lean"``, what the derivations
    know is cheap to make again (the outputs of elementwise ops, norms and the copies between layers)
    is made again in backward rather than kept twice (``handgrad._lean``); values and gradients are
    exactly those of ``memory="plain"``.

    Example::

        with handgrad.hand_derived():
            loss = ((x @ w).relu() + b).sum()
        handgrad.nn.audit(loss).complete   # True
    """
    return HandDerived(strict, memory)


def forward_hand_derived(module, *args, **kwargs):
    """``module``'s own forward, run inside ``hand_derived``: what ``convert`` makes its forward."""
    mode = HandDerived(getattr(module, "_handgrad_strict", False), getattr(module, "_handgrad_memory", "plain"))
    mode.blocks = getattr(module, "_handgrad_blocks", False)
    with mode:
        return type(module).forward(module, *args, **kwargs)


def intercepted(module):
    """Whether ``convert`` has made ``module``'s forward run inside ``hand_derived``."""
    forward = module.__dict__.get("forward")
    return isinstance(forward, functools.partial) and forward.func is forward_hand_derived
