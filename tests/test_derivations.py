"""One readable reference backward per op, and beside it, where one is kept, a faster form
(``handgrad.ops._function.FAST_FORMS``): on every sample of every op whose backward takes it, the
outputs and gradients with the faster form equal those with ``reference_forms()``, and each faster
form is taken by some sample, so none goes untested."""

import pytest
import torch

from handgrad.ops._function import FAST_FORMS, reference_forms
from handgrad.testing import TOLERANCES
from handgrad.testing.checks import compare_runs
from handgrad.testing.graph import recording_fast_forms
from handgrad.testing.op_db import OP_DB
from handgrad.testing.samples import run

FORMS = [pytest.param(formula, id=formula.__name__) for formula in FAST_FORMS]


def _samples(dtype):
    """(op, sample) of every op's samples with something to differentiate in ``dtype``."""
    return [(op, sample) for op in OP_DB.values() for sample in op.samples(torch.Generator().manual_seed(0))
            if sample.differentiable() and (sample.dtypes is None or dtype in sample.dtypes)]


@pytest.mark.parametrize("dtype", (torch.float64, torch.float32), ids=str)
@pytest.mark.parametrize("formula", FORMS)
def test_faster_form_equals_its_reference(formula, dtype):
    compared, bad = 0, []
    for op, sample in _samples(dtype):
        with recording_fast_forms([formula]) as ran:
            fast = run(op.called(op.function), sample, dtype, "cpu", seed=0)
        if not ran:                                  # this sample's backward does not take the formula
            continue
        with reference_forms():
            reference = run(op.called(op.function), sample, dtype, "cpu", seed=0)
        compared += 1
        bad += [f"{op.name} [{sample.name}] {d}" for d in compare_runs(fast, reference, TOLERANCES[dtype],
                                                                        "the reference form") if not d.ok]
    assert compared, f"no sample of any op runs the faster form of {formula.__name__}: it was compared with nothing"
    assert not bad, f"{formula.__name__} {dtype}: the faster form differs from the reference:\n" + "\n".join(bad)


def test_reference_forms_turn_every_faster_form_off():
    with recording_fast_forms(FAST_FORMS) as ran, reference_forms():
        for op, sample in _samples(torch.float64):
            run(op.called(op.function), sample, torch.float64, "cpu", seed=0)
    assert FAST_FORMS and not ran, f"faster forms ran under reference_forms(): {sorted(ran)}"


# The formulas a transformer's backward spends its time in (a GPT's: handgrad.training.gpt), each
# compiled on the first sample of its op whose backward takes it: compiling takes seconds a formula.
COMPILED = {"gelu_backward": "gelu", "layer_norm_backward": "layer_norm", "attention_backward":
            "scaled_dot_product_attention"}


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_form_equals_its_reference(name):
    import handgrad
    from handgrad.ops._function import DERIVATIONS

    (formula,) = [f for f in DERIVATIONS if f.__name__ == name]
    op = OP_DB[COMPILED[name]]
    for sample in op.samples(torch.Generator().manual_seed(0)):
        with recording_fast_forms([formula]) as ran:
            run(op.called(op.function), sample, torch.float32, "cpu", seed=0)
        if ran:
            break
    else:
        raise AssertionError(f"no sample of {op.name} runs {name}")
    torch._dynamo.reset()
    formula.compiled = None
    try:
        with handgrad.compiled_derivations():
            compiled = run(op.called(op.function), sample, torch.float32, "cpu", seed=0)
        assert formula.compiled not in (None, False), f"{name} was not compiled on {op.name} [{sample.name}]"
    finally:
        formula.compiled = None
        torch._dynamo.reset()
    with reference_forms():
        reference = run(op.called(op.function), sample, torch.float32, "cpu", seed=0)
    bad = [str(d) for d in compare_runs(compiled, reference, TOLERANCES[torch.float32], "the reference") if not d.ok]
    assert not bad, f"{name} compiled differs from its reference on {op.name} [{sample.name}]: " + "; ".join(bad)
