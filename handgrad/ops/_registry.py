"""The registry of handgrad's ops: one ``Op`` per op, declared once in its family file.

Everything else reads it: ``handgrad.autograd``, ``handgrad.functional`` and ``handgrad.nn`` take
their names from it, ``convert`` maps every op's torch.nn classes, and the README's table of
derivatives is printed from it. The test database (``handgrad.testing.op_db``) holds one entry of
cases per registered op, which the tests, ``handgrad-check``, the benchmark and the docs read.
"""

import dataclasses
import functools
import importlib
import sys
from typing import Callable

import torch

from handgrad.ops._function import HandFunction, aside, make_twins

OPS = {}          # name -> Op, in the order of declaration
MODULES = {}      # class name -> handgrad.nn class (generated, see ``_module_class``)
REPLACES = {}     # torch.nn class -> handgrad.nn class
UNSUPPORTED = {}  # torch.nn class -> unsupported(module): why this configuration stays built-in, or ""
CASES = {}        # name -> the test cases of an op registered with ``register_function`` (the test database's)
ON_REGISTER = []  # listeners told of each op registered with ``register_function`` (the loaded test database)
INTERCEPTS = {}   # torch callable -> (the handgrad function that replaces it, accepts), see ``Op.intercepts``
LAZY = {}         # "package.module.Class" -> (Module, Op): a class of a package handgrad does not import (torchvision's)
LAZY_INTERCEPTS = {}  # "torch.ops.namespace.op" -> (function, accepts): a callable made once its package is loaded


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
        modules: torch.nn class → ``Module``, its handgrad.nn face; a class of a package handgrad
            does not import (torchvision) is named by its import path, ``"torchvision.ops.StochasticDepth"``
        fused_by: for an op with no module of its own, what in ``handgrad.nn`` runs it (the table's cell)
        intercepts: the torch callables it replaces inside ``handgrad.hand_derived()`` (and the forward
            of a converted model): callable → the function to call instead with the same arguments,
            None for ``function`` itself. ``torch.nn.functional.<name>`` is always among them. A
            callable of a package handgrad does not import is named by its path
            (``"torch.ops.torchvision.roi_align"``), taken once the package has made it.
        accepts: ``accepts(*args, **kwargs)``, whether a call of those it can take (else the built-in
            runs, and the audit shows it); None for every call
    """

    name: str
    function: Callable
    functions: tuple
    derivative: Derivative
    modules: dict = dataclasses.field(default_factory=dict)
    fused_by: str = "`Sequential` fuses"
    intercepts: dict = dataclasses.field(default_factory=dict)
    accepts: Callable = None


def register(op):
    """Add ``op`` to the registry and make the handgrad.nn class for each of its torch.nn classes."""
    if op.name in OPS:
        raise ValueError(f"an op named {op.name!r} is already registered")
    OPS[op.name] = op
    for callable_, entry in intercepts(op).items():
        (LAZY_INTERCEPTS if isinstance(callable_, str) else INTERCEPTS)[callable_] = entry
    for function in op.functions:
        if issubclass(function, HandFunction):
            make_twins(function)
    for torch_cls, module in op.modules.items():
        if isinstance(torch_cls, str):
            LAZY[torch_cls] = (module, op)
        else:
            _add_module(torch_cls, module, op)
    resolve()
    return op


def _add_module(torch_cls, module, op):
    cls = _module_class(torch_cls, module.forward, op)
    MODULES[cls.__name__] = REPLACES[torch_cls] = cls
    if module.unsupported is not None:
        UNSUPPORTED[torch_cls] = module.unsupported


def intercepts(op):
    """What ``op`` replaces inside ``handgrad.hand_derived()``: torch callable → (function, accepts)."""
    table = {}
    builtin = getattr(torch.nn.functional, op.name, None)
    if builtin is not None:
        table[builtin] = (op.function, op.accepts)
    table.update({callable_: (function or op.function, op.accepts) for callable_, function in op.intercepts.items()})
    return table


def resolve():
    """Make the handgrad.nn classes of the modules an op names by import path (torchvision's
    ``StochasticDepth``, its vision transformer's blocks) once their package has been imported:
    ``import handgrad`` never imports torchvision (1.4 s), and a model made of its classes cannot
    exist before it is; and take the callables an op intercepts by path (torchvision's operators).
    ``convert``, ``coverage``, ``hand_derived`` and ``handgrad.nn``'s attributes call this."""
    loaded = [path for path in LAZY if path.partition(".")[0] in sys.modules]
    for path in loaded:
        module, op = LAZY.pop(path)
        owner, _, name = path.rpartition(".")
        _add_module(getattr(importlib.import_module(owner), name), module, op)
    if loaded:
        _publish("handgrad.nn")
    for path in list(LAZY_INTERCEPTS):
        callable_ = _made(path)
        if callable_ is not None:
            INTERCEPTS[callable_] = LAZY_INTERCEPTS.pop(path)


def _made(path):
    """The callable at ``path`` if its package is loaded and has made it, else None; never imports.
    A ``torch.ops.<namespace>`` operator's package is its namespace's (torchvision's operators exist
    once ``import torchvision`` has loaded its library)."""
    root, *names = path.split(".")
    package = names[1] if root == "torch" and names[:1] == ["ops"] else root
    if package not in sys.modules:
        return None
    value = sys.modules[root]
    try:
        for name in names:
            value = getattr(value, name)
    except (AttributeError, RuntimeError):
        return None
    return value


def module_name(key):
    """The class name of a key of ``Op.modules``: a class, or a class's import path."""
    return key.rpartition(".")[2] if isinstance(key, str) else key.__name__


def module_class(key):
    """The torch class of a key of ``Op.modules`` (importing its package if it is a path)."""
    if isinstance(key, str):
        owner, _, name = key.rpartition(".")
        return getattr(importlib.import_module(owner), name)
    return key


def register_function(name, function, functions, *, reference, samples, modules=None, derivative=None, numpy=None,
                      bench=None, tolerances=None, errors=()):
    """Make your own hand-derived Function one of handgrad's ops: ``handgrad.functional.<name>``,
    ``handgrad.autograd``, ``convert`` and ``coverage`` (for the modules you name), ``handgrad-check``
    and the benchmark then treat it as they treat handgrad's own. Returns the ``Op``.

    Args:
        name: the op's name, as in ``torch.nn.functional`` (``"silu"``)
        function: the function that applies your Function (its ``torch.nn.functional`` face)
        functions: the ``torch.autograd.Function`` classes it applies
        reference: a callable with the same signature computing the same thing (the built-in), which
            the check compares with and the benchmark times against
        samples: ``samples(generator)`` → list of ``handgrad.testing.Sample`` (or argument tuples) of
            float64 CPU tensors, those with ``requires_grad=True`` differentiated
        modules: ``{torch.nn class: forward(self, *inputs)}``; ``convert`` switches modules of those
            classes to a subclass whose forward is this
        derivative: its row of the table of derivatives, ``Derivative(forward, backward, shapes)``
        numpy: a NumPy oracle ``numpy(*args, **kwargs) -> (output, vjp)``
        bench: ``bench(device)`` → list of (label, args, kwargs) at realistic sizes
        tolerances: per-dtype ``handgrad.testing.Tolerance`` overriding the defaults
        errors: ``handgrad.testing.ErrorInput`` cases
    """
    if name in OPS:
        raise ValueError(f"register_function: an op named {name!r} is already registered; "
                         f"handgrad.ops.unregister({name!r}) first to replace it")
    functions = tuple(functions)
    plain = [f for f in functions if not (isinstance(f, type) and issubclass(f, torch.autograd.Function))]
    if plain:
        raise TypeError(f"register_function: functions must be torch.autograd.Function classes, got {plain!r}")
    if isinstance(function, type) and issubclass(function, torch.autograd.Function):
        raise TypeError(f"register_function: function is the Function class {function.__name__}; pass the "
                        f"function that applies it ({function.__name__}.apply, or a face calling it)")
    derivative = derivative or Derivative("(yours)", "(yours)", "(yours)")
    op = register(Op(name, function, functions, derivative,
                     {cls: Module(forward) for cls, forward in (modules or {}).items()}, fused_by="registered"))
    CASES[name] = dict(reference=reference, samples=lambda generator: list(samples(generator)), numpy=numpy,
                       bench=bench or (lambda device: []), errors=tuple(errors), tolerances=tolerances)
    for namespace in ("handgrad.functional", "handgrad.autograd", "handgrad.nn"):
        _publish(namespace)
    for listener in ON_REGISTER:
        listener(name)
    return op


def unregister(name):
    """Take an op registered with ``register_function`` out of every namespace, ``convert`` and the
    test database again (modules already converted keep their class)."""
    if name not in CASES:
        raise ValueError(f"unregister: {name!r} was not registered with register_function")
    op = OPS.pop(name)
    del CASES[name]
    for callable_ in intercepts(op):
        INTERCEPTS.pop(_made(callable_) if isinstance(callable_, str) else callable_, None)
        LAZY_INTERCEPTS.pop(callable_, None)
    for key in op.modules:
        if LAZY.pop(key, None) is not None:
            continue
        torch_cls = module_class(key)
        MODULES.pop(REPLACES.pop(torch_cls).__name__, None)
        UNSUPPORTED.pop(torch_cls, None)
    for namespace in ("handgrad.functional", "handgrad.autograd", "handgrad.nn"):
        _publish(namespace, removed=[op.name, *(f.__name__ for f in op.functions),
                                     *(module_name(key) for key in op.modules)])
    for listener in ON_REGISTER:
        listener(name)


def _publish(namespace, removed=()):
    """Bring a namespace the registry fills (``handgrad.functional``, ``.autograd``, ``.nn``) up to
    date, if it is loaded."""
    module = sys.modules.get(namespace)
    if module is None:
        return
    names = {"handgrad.functional": faces, "handgrad.autograd": functions, "handgrad.nn": lambda: MODULES}[namespace]()
    for stale in removed:
        if stale not in names and stale in module.__dict__:
            del module.__dict__[stale]
    module.__dict__.update(names)
    module.__all__ = sorted(set(module.__all__) - set(removed) | set(names))


def _module_class(torch_cls, forward, op):
    """``torch_cls`` with ``forward`` replaced: parameters, initialisation, ``repr``, ``extra_repr``
    and ``state_dict`` are the parent's, so the same seed gives the same weights and state dicts
    load both ways."""
    name = torch_cls.__name__
    path = f"torch.nn.{name}" if torch_cls.__module__.startswith("torch.nn") else f"{torch_cls.__module__}.{name}"
    forward.__qualname__ = f"{name}.forward"
    forward.__doc__ = f"Runs ``handgrad.functional.{op.name}``: {op.derivative.forward}."
    doc = (
        f"``{path}`` with a hand-derived backward: {op.derivative.forward}; "
        f"{op.derivative.backward}.\n\n"
        f"Everything but ``forward`` is ``{path}``'s: arguments, parameters and their "
        f"initialisation, ``repr`` and ``state_dict``. Shapes: {op.derivative.shapes}. Its own "
        f"documentation follows.\n\n" + (torch_cls.__doc__ or "")
    )

    def __init__(self, *args, **kwargs):
        torch_cls.__init__(self, *args, **kwargs)
        from handgrad.nn import swap_classes               # the layers it builds (a Transformer's) run handgrad too
        for child in self.children():
            swap_classes(child)

    __init__.__qualname__ = f"{name}.__init__"
    return type(name, (torch_cls,), {"__init__": __init__, "forward": _aside_if_leaf(forward), "__doc__": doc,
                                      "__module__": "handgrad.nn", "__qualname__": name})


def _aside_if_leaf(forward):
    """``forward``, run with ``hand_derived``'s mode set aside (``aside``) for a layer without children,
    which calls handgrad's faces alone; a layer with children (a Transformer's) runs them in the mode."""
    @functools.wraps(forward)
    def run(self, *args, **kwargs):
        if self._modules:
            return forward(self, *args, **kwargs)
        return aside(forward, self, *args, **kwargs)
    return run


def functions():
    """Every registered Function by class name (``handgrad.autograd``)."""
    return {f.__name__: f for op in OPS.values() for f in op.functions}


def faces():
    """Every functional face by name (``handgrad.functional``)."""
    return {op.name: op.function for op in OPS.values()}


# The ops README.md's table shows: the seed's, and the layers of the networks train.py trains (the whole table
# is on the documentation's derivations page).
README_OPS = ("sigmoid", "relu", "tanh", "gelu", "silu", "linear", "dropout", "softmax", "cross_entropy",
              "linear_cross_entropy", "layer_norm", "embedding", "conv2d", "matmul", "scaled_dot_product_attention",
              "lstm")


def derivative_table(names=None):
    """The table of derivatives, as Markdown, one row per op of ``names`` (every op: None), in the
    registry's order."""
    lines = ["| `handgrad.functional` | `handgrad.autograd` | `handgrad.nn` | forward | backward | shapes |",
             "| --- | --- | --- | --- | --- | --- |"]
    for op in OPS.values():
        if names is not None and op.name not in names:
            continue
        functions = ", ".join(f"`{f.__name__}`" for f in op.functions)
        modules = ", ".join(f"`{module_name(key)}`" for key in op.modules) or f"({op.fused_by})"
        d = op.derivative
        lines.append(f"| `{op.name}` | {functions} | {modules} | {cell(d.forward)} | {cell(d.backward)} "
                     f"| {cell(d.shapes)} |")
    return "\n".join(lines) + "\n"


def cell(text):
    """A formula as a Markdown table cell: its bars escaped (|x| would end the cell at the first one)."""
    return text.replace("|", "\\|")
