"""Exercises: derive a backward yourself, and be told precisely what is wrong with it.

handgrad began as a tutorial that derives backpropagation by hand; these are its exercises, in the
order of a course (cs231n's assignments, Karpathy's "backprop ninja"): the seed's three (sigmoid,
linear, cross_entropy), then tanh, softmax, layer norm, batch norm, embedding, convolution, max
pooling, attention, an LSTM cell, and the seed's whole network. Each gives the forward of a
``torch.autograd.Function``; the backward is yours to derive and write.

- ``names()``: the exercises, in order; ``teaches(name)`` what each one teaches.
- ``skeleton(name)``: the file to start from: forward written, backward to fill in, the derivation
  to do and a first hint in its comments (``handgrad-learn start NAME`` writes it).
- ``check(name, function)``: grades your Function (its class or its ``apply``) with
  ``handgrad.testing.verify``, the checks handgrad's own ops pass, against handgrad's op; a wrong
  gradient is compared with the exercise's catalogue of classic mistakes and the one it matches is
  named. ``str(report)`` fits a terminal.
- ``hints(name)``: the derivation, step by step; ``solution(name)``: the reference solution.

The command line is ``handgrad-learn`` (``python -m handgrad.exercises``): ``list``, ``start``,
``check``, ``hint``, with the progress kept in a small file beside the exercises.
"""

from handgrad.exercises import curriculum  # noqa: F401 (declares the exercises)
from handgrad.exercises._exercise import EXERCISES, Exercise, Mistake
from handgrad.exercises.grader import Report, check, get
from handgrad.exercises.skeleton import skeleton

__all__ = ["names", "teaches", "check", "hints", "solution", "skeleton", "Report", "Exercise", "Mistake", "get"]


def names():
    """The exercises, in the order they are meant to be done."""
    return list(EXERCISES)


def teaches(name):
    """What exercise ``name`` teaches, one line."""
    return get(name).teaches


def hints(name):
    """The steps of exercise ``name``'s derivation, in order; the last one is the formula."""
    return get(name).hints


def solution(name):
    """The reference solution of exercise ``name``: a complete learner-style Function class."""
    return get(name).function
