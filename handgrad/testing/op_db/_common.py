"""What every family's cases share: the ``OpInfo`` record and the small sample helpers."""

import dataclasses
import warnings
from typing import Callable

import torch

from handgrad.testing import CHECKS, DTYPES, ErrorInput, verify


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """The test cases of one registered op (PyTorch's ``OpInfo``), kept apart from its mathematics.

    Args:
        name: the registered op's name (``handgrad.ops.OPS[name]``)
        reference: the torch built-in with the same signature (or a composite of built-ins)
        samples: ``samples(generator)`` → list of ``Sample``, float64 CPU tensors drawn from
            ``generator``, covering every input form the built-in accepts
        numpy: the NumPy oracle of the math, ``numpy(*args, **kwargs) -> (output, vjp)``
        bench: ``bench(device)`` → list of (label, args, kwargs) at realistic sizes, tensors that
            require grad being differentiated
        errors: ``ErrorInput`` cases: bad input and the exception it must raise
        tolerances: per-dtype ``Tolerance`` where the op's sums are longer than the default allows
        modules: torch.nn class (or a class's import path, as the op names it) → tuple of ``ModuleSample``
        parameters: positions and keywords of the inputs that are a model's parameters in use, not
            counted in the bytes kept (see ``verify``)
        call: ``call(function)`` → the face or the reference as the samples and bench cases call it,
            where the built-in takes lists of tensors (``torch.lstm``'s hx and params) that the samples
            give one by one, each an input verify can differentiate; None: called as they are
    """

    name: str
    reference: Callable
    samples: Callable
    numpy: Callable
    bench: Callable
    errors: tuple = ()
    tolerances: dict = None
    modules: dict = dataclasses.field(default_factory=dict)
    parameters: tuple = ()
    call: Callable = None

    @property
    def op(self):
        """The registered op these cases test."""
        from handgrad.ops import OPS

        return OPS[self.name]

    @property
    def function(self):
        return self.op.function

    def called(self, function):
        """``function`` (the face or the reference) as the samples call it (see ``call``)."""
        return function if self.call is None else self.call(function)

    def verify(self, devices=None, checks=CHECKS, dtypes=DTYPES, seed=0):
        """``handgrad.testing.verify`` of the op on its samples drawn from ``seed``. The warnings its
        own samples raise on purpose (a broadcast MSE target, a deprecated option) are silenced."""
        samples = self.samples(torch.Generator().manual_seed(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return verify(self.called(self.function), self.called(self.reference), samples, numpy=self.numpy,
                          name=self.name, devices=devices, checks=checks, dtypes=dtypes, tolerances=self.tolerances,
                          fullgraph=True, parameters=self.parameters)


def x32(*shape, dtype=torch.float32):
    """A tensor of N(0, 1) draws for a bad-input case, float32 by default: its values do not matter."""
    return torch.randn(shape, dtype=dtype)


def idx(*values, dtype=torch.long):
    """Class or row indices."""
    return torch.tensor(values, dtype=dtype)


def list_input(op, torch_class=None):
    """Every op refuses a Python list in place of a tensor."""
    return ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, -2.0]), TypeError,
                      rf"{op}: input must be a torch\.Tensor, got list", torch_class=torch_class)


def without(dtype, dtypes=DTYPES):
    """Every dtype of ``dtypes`` but ``dtype`` (e.g. without float16 where values pass 65504)."""
    return tuple(d for d in dtypes if d != dtype)


def sum_to(a, shape):
    """A NumPy gradient summed back over the dimensions its input was broadcast along, to ``shape``."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape)


def bench_randn(device, *shape):
    """A leaf requiring grad on ``device``, for the benchmark."""
    return torch.randn(*shape, device=device, requires_grad=True)


