"""The registry of handgrad's ops: one ``Op`` per op, declared once in its family file.

Everything else reads it: ``handgrad.autograd``, ``handgrad.functional`` and ``handgrad.nn`` take
their names from it, ``convert`` maps every op's torch.nn classes, and the README's table of
derivatives is printed from it. The test database (``handgrad.testing.op_db``) holds one entry of
cases per registered op, which the tests, ``handgrad-check``, the benchmark and the docs read.
"""

import dataclasses
from typing import Callable

from handgrad.ops._function import make_twins

OPS = {}          # name -> Op, in the order of declaration
MODULES = {}      # class name -> handgrad.nn class (generated, see ``_module_class``)
REPLACES = {}     # torch.nn class -> handgrad.nn class
UNSUPPORTED = {}  # torch.nn class -> unsupported(module): why this configuration stays built-in, or ""


@dataclasses.dataclass(frozen=True)
class Derivative:
    """A row of the table of derivatives, in the seed's notation: what forward computes, what
    backward computes from g = dL/d(output), and the shapes."""

    forward: str
    backward: str
    shapes: str


@dataclasses.dataclass(frozen=True)
class Module:
    """The handgrad.nn face of an op for one torch.nn class.

    Args:
        forward: ``forward(self, *inputs)`` of the handgrad.nn subclass made for the class
        unsupported: ``unsupported(module)``, the reason a module in this configuration stays on the
            built-in (``convert`` leaves it, ``coverage`` says why), or "" when it is supported
    """

    forward: Callable
    unsupported: Callable = None


@dataclasses.dataclass(frozen=True)
class Op:
    """One op of handgrad: its mathematics and its faces. Its test cases (samples, NumPy oracle,
    bad inputs, benchmark sizes) are its entry in the test database, ``handgrad.testing.op_db``.

    Args:
        name: its ``torch.nn.functional`` name (``handgrad.functional.<name>``)
        function: the functional face, which applies the hand-derived Functions
        functions: the ``torch.autograd.Function`` classes it applies (``handgrad.autograd``)
        derivative: its row in the table of derivatives
        modules: torch.nn class → ``Module``, its handgrad.nn face
        fused_by: for an op with no module of its own, what in ``handgrad.nn`` runs it (the table's cell)
    """

    name: str
    function: Callable
    functions: tuple
    derivative: Derivative
    modules: dict = dataclasses.field(default_factory=dict)
    fused_by: str = "`Sequential` fuses"


def register(op):
    """Add ``op`` to the registry and make the handgrad.nn class for each of its torch.nn classes."""
    if op.name in OPS:
        raise ValueError(f"an op named {op.name!r} is already registered")
    OPS[op.name] = op
    for function in op.functions:
        make_twins(function)
    for torch_cls, module in op.modules.items():
        cls = _module_class(torch_cls, module.forward, op)
        MODULES[cls.__name__] = REPLACES[torch_cls] = cls
        if module.unsupported is not None:
            UNSUPPORTED[torch_cls] = module.unsupported
    return op


def _module_class(torch_cls, forward, op):
    """``torch_cls`` with ``forward`` replaced: parameters, initialisation, ``repr``, ``extra_repr``
    and ``state_dict`` are the parent's, so the same seed gives the same weights and state dicts
    load both ways."""
    name = torch_cls.__name__
    forward.__qualname__ = f"{name}.forward"
    forward.__doc__ = f"Runs ``handgrad.functional.{op.name}``: {op.derivative.forward}."
    doc = (
        f"``torch.nn.{name}`` with a hand-derived backward: {op.derivative.forward}; "
        f"{op.derivative.backward}.\n\n"
        f"Everything but ``forward`` is ``torch.nn.{name}``'s: arguments, parameters and their "
        f"initialisation, ``repr`` and ``state_dict``. Shapes: {op.derivative.shapes}. PyTorch's "
        f"documentation of ``torch.nn.{name}`` follows.\n\n" + (torch_cls.__doc__ or "")
    )
    return type(name, (torch_cls,), {"forward": forward, "__doc__": doc, "__module__": "handgrad.nn",
                                      "__qualname__": name})


def functions():
    """Every registered Function by class name (``handgrad.autograd``)."""
    return {f.__name__: f for op in OPS.values() for f in op.functions}


def faces():
    """Every functional face by name (``handgrad.functional``)."""
    return {op.name: op.function for op in OPS.values()}


def derivative_table():
    """The README's table of derivatives, as Markdown, one row per op."""
    lines = ["| `handgrad.functional` | `handgrad.autograd` | `handgrad.nn` | forward | backward | shapes |",
             "| --- | --- | --- | --- | --- | --- |"]
    for op in OPS.values():
        functions = ", ".join(f"`{f.__name__}`" for f in op.functions)
        modules = ", ".join(f"`{cls.__name__}`" for cls in op.modules) or f"({op.fused_by})"
        d = op.derivative
        lines.append(f"| `{op.name}` | {functions} | {modules} | {d.forward} | {d.backward} | {d.shapes} |")
    return "\n".join(lines) + "\n"
