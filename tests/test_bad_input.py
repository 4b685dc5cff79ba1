"""Bad input to ``handgrad.functional`` and ``handgrad.nn`` raises an exception whose message names the
argument, shape, dtype or value at fault, of a class that ``except`` clauses written for torch catch.

The cases are each op's ``errors`` in the test database (``handgrad.testing.op_db.OP_DB``); valid
extreme input (NaN, ±inf, saturation, ignored rows, empty batches) is among each op's samples, verified in test_ops.py.
"""

import re

import pytest
import torch
import torch.nn.functional as torch_F

import handgrad.functional as F
import handgrad.nn
from handgrad.testing.op_db import OP_DB

HANDGRAD = (F, handgrad.nn)
TORCH = (torch_F, torch.nn)


def _params(torch_counterpart=False):
    """Every op's error cases; with ``torch_counterpart``, only those of ops torch.nn.functional has."""
    return [pytest.param(case, id=f"{name}: {case.name}") for name, op in OP_DB.items() for case in op.errors
            if not torch_counterpart or hasattr(torch_F, name)]


def test_bad_input_table_is_not_empty():
    assert len(_params()) >= 40, "the registry's error cases went missing"


def _raised(call, namespaces):
    try:
        call(*namespaces)
    except Exception as error:  # any class: which one is what the tests compare
        return error
    return None


def _check_message(case):
    error = _raised(case.call, HANDGRAD)
    assert error is not None, f"{case.name}: handgrad raised nothing"
    assert isinstance(error, case.exception), f"{case.name}: {type(error).__name__}: {error}"
    assert re.search(case.message, str(error)), f"{case.name}: {str(error)!r} does not match {case.message!r}"


def _check_class_matches_torch(case):
    expected = _raised(case.call, TORCH)
    error = _raised(case.call, HANDGRAD)
    assert error is not None, f"{case.name}: handgrad raised nothing"
    if case.torch_accepts:
        assert expected is None, f"{case.name}: torch now raises {type(expected).__name__}: {expected}"
        return
    assert expected is not None, f"{case.name}: torch raised nothing; mark the case torch_accepts"
    if case.torch_class is not None:
        assert type(expected) is case.torch_class, f"{case.name}: torch now raises {type(expected).__name__}"
        return
    assert isinstance(error, type(expected)), (
        f"{case.name}: handgrad raised {type(error).__name__}, torch {type(expected).__name__} ({expected})"
    )


@pytest.mark.parametrize("case", _params())
def test_bad_input_names_the_problem(case):
    _check_message(case)


@pytest.mark.parametrize("case", _params(torch_counterpart=True))
def test_bad_input_raises_torchs_exception_class(case):
    _check_class_matches_torch(case)
