"""What an exercise is: one ``Exercise`` record per exercise, each with its catalogue of ``Mistake``s,
declared once in ``handgrad.exercises.curriculum`` and read by the grader, the skeletons, the CLI, the
tests and the documentation."""

import dataclasses
import inspect
import types
from typing import Callable

import torch

SAMPLES_SEED = 1                  # of the samples (verify draws its upstream gradients from seed 0)
# How a gradient is named: dL/dγ for the input gamma.
_SYMBOLS = {"gamma": "γ", "beta": "β", "q": "Q", "k": "K", "v": "V"}


def grad_name(input_name):
    """``dL/dW`` for the input ``W``."""
    return f"dL/d{_SYMBOLS.get(input_name, input_name)}"


@dataclasses.dataclass(frozen=True)
class Mistake:
    """A classic wrong backward, as the diagnosis names it.

    Args:
        name: the mistake, as the grader names it ("dL/dW transposed")
        why: what is right instead, and why (a sentence or two, starting as a sentence does)
        gradients: ``gradients(a, *g) -> {input name: tensor}``, what the mistake returns for each
            input it gets wrong, from forward's arguments ``a`` (by name, float64) and the upstream
            gradients g; a tuple of tensors where the mistake may return any of them
    """

    name: str
    why: str
    gradients: Callable


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise: a forward given, its backward to derive.

    Args:
        name: how the CLI and ``check`` call it
        forward: the forward in the seed's notation ("y = x Wᵀ + b")
        teaches: what deriving its backward teaches, one line
        function: the reference solution, a complete learner-style ``torch.autograd.Function``
            (``handgrad.exercises.solutions``), whose forward the skeleton hands out
        reference: handgrad's own op, with the signature of ``function``'s forward
        samples: ``samples(generator) -> [Sample]``, small float64 inputs; those that require grad
            are the ones whose gradient is derived
        derivation: what to derive, stated (the skeleton's header)
        returns: what backward returns, with shapes (the skeleton's comment in backward)
        hints: the derivation's steps, in order, the last one the formula
        mistakes: the catalogue of classic mistakes the diagnosis compares a wrong gradient with
    """

    name: str
    forward: str
    teaches: str
    function: type
    reference: Callable
    samples: Callable
    derivation: str
    returns: str
    hints: tuple
    mistakes: tuple = ()

    @property
    def inputs(self):
        """The names of forward's arguments, in order."""
        return tuple(inspect.signature(self.function.forward).parameters)

    def make_samples(self):
        """The exercise's samples, the same ones every time, drawn from a seed of their own (verify
        draws the upstream gradients from seed 0: from the same seed, g would equal the first input)."""
        return self.samples(torch.Generator().manual_seed(SAMPLES_SEED))

    def arguments(self, args):
        """Forward's arguments by name (``a.x``, ``a.W``), tensors detached."""
        return types.SimpleNamespace(**{name: value.detach() if isinstance(value, torch.Tensor) else value
                                        for name, value in zip(self.inputs, args)})


EXERCISES = {}


def declare(exercise):
    """Add ``exercise`` to the curriculum, after those declared before it."""
    if exercise.name in EXERCISES:
        raise ValueError(f"exercise {exercise.name!r} is declared twice")
    EXERCISES[exercise.name] = exercise
    return exercise
