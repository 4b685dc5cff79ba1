"""What a call left in the autograd graph, and what ran while it was differentiated: the evidence of
the ``hand_derived`` and ``needs_input_grad`` checks."""

import contextlib

from torch.autograd import Function
from torch.utils._python_dispatch import TorchDispatchMode

from handgrad._audit import MOVEMENT, walk  # noqa: F401 (MOVEMENT: the harness's name for it)
from handgrad.testing.samples import differentiable_outputs

# The kernels with "backward" in their name that those nodes' backward (and its derivative) run: they
# put g back in place (a slice of zeros around it), computing nothing.
MOVEMENT_KERNELS = {"select_backward", "slice_backward", "unfold_backward", "diagonal_backward", "as_strided_backward"}


def graph(outputs):
    """(custom Function classes, names of built-in nodes) between the outputs and the leaves."""
    functions, builtin = [], []
    for node in walk(differentiable_outputs(outputs)):
        cls = getattr(node, "_forward_cls", None)
        if cls is not None:
            functions.append(cls)
        else:
            builtin.append(type(node).__name__)
    return list(dict.fromkeys(functions)), builtin


def _overrides(cls, method):
    return getattr(cls, method, None) is not getattr(Function, method, None)


def has_jvp(functions):
    """Whether every Function defines forward mode."""
    return bool(functions) and all(_overrides(f, "jvp") for f in functions)


def supports_vmap(functions):
    """Whether every Function can be vmapped (a rule of its own, or ``generate_vmap_rule``)."""
    return bool(functions) and all(getattr(f, "generate_vmap_rule", False) or _overrides(f, "vmap") for f in functions)


class DispatchLog(TorchDispatchMode):
    """Every aten op dispatched while active, as (the Function whose backward dispatched it, or None
    for the autograd engine's own nodes, op name); ``running`` is the stack of backwards running
    (``recording_backward``'s)."""

    def __init__(self, running=()):
        super().__init__()
        self.ops = []
        self.running = running

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append((self.running[-1] if self.running else None, func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def builtin_backward_kernels(ops):
    """The built-in backward kernels among dispatched op names (``sigmoid_backward``, ...)."""
    return sorted({op for op in ops if "backward" in op and op not in MOVEMENT_KERNELS})


# A backward kernel's forward op where the names do not say it.
_FORWARD_OF = {"threshold_backward": "relu"}


def forward_op_of(kernel):
    """The forward op whose derivative a built-in backward kernel is: ``sigmoid_backward`` → ``sigmoid``."""
    return _FORWARD_OF.get(kernel) or kernel.split("_backward")[0].lstrip("_")


def who_called(kernel, ops):
    """The Function whose backward dispatched the forward op of ``kernel`` (what double backward
    differentiates into that kernel), and that op, from the (Function, op) of a first-order
    backward; (None, None) when none did."""
    forward = forward_op_of(kernel)
    for owner, op in ops:
        name = op.lstrip("_")
        if owner is not None and (name == forward or name.startswith(forward + "_")
                                  or name.removeprefix("native_") == forward):
            return owner, op
    return None, None


@contextlib.contextmanager
def recording_backward(functions):
    """Record (Function, needs_input_grad, returned gradients) of every backward call of these
    Functions; ``running`` (the second value) is the stack of those running now, innermost last."""
    calls, running, own = [], [], {cls: vars(cls).get("backward") for cls in functions}
    for cls in functions:
        def backward(ctx, *grads, _inner=cls.backward, _cls=cls):
            running.append(_cls)
            try:
                returned = _inner(ctx, *grads)
            finally:
                running.pop()
            calls.append((_cls, tuple(ctx.needs_input_grad), returned if isinstance(returned, tuple) else (returned,)))
            return returned

        cls.backward = staticmethod(backward)
    try:
        yield calls, running
    finally:
        for cls, backward in own.items():
            if backward is None:
                del cls.backward                     # inherited again
            else:
                cls.backward = backward


@contextlib.contextmanager
def recording_fast_forms(formulas):
    """The names of those of ``formulas`` (derivations, ``handgrad.ops._function.derivation``) whose
    faster form ran while active: which way a backward went."""
    ran, own = set(), {formula: formula.fast for formula in formulas}
    for formula, fast in own.items():
        def recorded(*args, _fast=fast, _name=formula.__name__):
            ran.add(_name)
            return _fast(*args)
        formula.fast = recorded
    try:
        yield ran
    finally:
        for formula, fast in own.items():
            formula.fast = fast
