"""Every op of the registry (``handgrad.ops.OPS``) verified with ``handgrad.testing.verify`` on its cases
in the test database (``handgrad.testing.op_db.OP_DB``), one test
per op, check, device (and dtype for the comparisons), over all of the op's samples.

A new op is tested here the moment it is registered: this file keeps no list of op names.
"""

import inspect

import pytest
import torch
import torch.nn.functional as torch_F
import torchvision

from handgrad import testing
from handgrad.testing.op_db import OP_DB

OP_PARAMS = [pytest.param(op, id=name) for name, op in OP_DB.items()]


def _verify(op, device, checks, dtypes=testing.DTYPES, seed=0):
    return op.verify([device], checks, dtypes, seed)


def _compared_on(op, device):
    samples = op.samples(torch.Generator().manual_seed(0))
    return [s for s in samples if s.reference_devices is None or torch.device(device).type in s.reference_devices]


def _assert_verified(report, check):
    """Passed, and not vacuously: at least one sample was actually checked."""
    assert report.passed, report
    checked = [o for o in report.outcomes if o.check == check and o.status == "pass"]
    assert checked, f"{report.name}: no sample was checked for {check} (all n/a):\n{report}"


def _require_comparable(op, device):
    if not _compared_on(op, device):
        pytest.skip(f"{op.name} is compared with its reference on other devices only (its samples say why)")


@pytest.mark.parametrize("dtype", testing.DTYPES, ids=str)
@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_matches_torch(op, dtype, device):
    _require_comparable(op, device)
    for seed in (0, 1):
        report = _verify(op, device, ("reference",), (dtype,), seed)
        reasons = [o.result.detail for o in report.outcomes if o.check == "reference"]
        if reasons and all("the reference does not run" in r for r in reasons):
            pytest.skip(f"torch's {op.name} does not run in {dtype} on {device}: {reasons[0]}")
        _assert_verified(report, "reference")


@pytest.mark.parametrize("dtype", testing.DTYPES, ids=str)
@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_matches_numpy_oracle(op, dtype, device):
    _require_comparable(op, device)
    _assert_verified(_verify(op, device, ("numpy",), (dtype,)), "numpy")


@pytest.mark.parametrize("check", ["gradcheck", "gradgradcheck"])
@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_gradcheck(op, check, device):
    _assert_verified(_verify(op, device, (check,), (torch.float64,)), check)


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_vmap_matches_a_loop(op, device):
    _assert_verified(_verify(op, device, ("vmap",), (torch.float64,)), "vmap")


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_compiles_to_the_eager_result(op, device):
    _assert_verified(_verify(op, device, ("compile",), (torch.float64,)), "compile")


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_takes_non_contiguous_inputs(op, device):
    _assert_verified(_verify(op, device, ("strided",), (torch.float64,)), "strided")


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_honours_needs_input_grad(op, device):
    report = _verify(op, device, ("needs_input_grad",), (torch.float64,))
    _assert_verified(report, "needs_input_grad")
    assert not report.advice, report.advice


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_backward_is_hand_derived(op, device):
    _assert_verified(_verify(op, device, ("hand_derived",), (torch.float64,)), "hand_derived")


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_double_backward_is_hand_derived(op, device):
    report = _verify(op, device, ("double_backward",), (torch.float64,))
    if _gradient_is_constant(op):
        assert report.passed, report                        # nothing to differentiate twice: n/a throughout
        return
    _assert_verified(report, "double_backward")


def _gradient_is_constant(op):
    """Whether no sample's gradient depends on anything (a step function's 0): its graph, kept for
    double backward, is empty, and there is no second derivative to check."""
    for sample in op.samples(torch.Generator().manual_seed(0)):
        if not sample.differentiable():
            continue
        found = testing.samples.run(op.called(op.function), sample, torch.float64, "cpu", seed=0, create_graph=True)
        if any(g is not None and g.requires_grad for g in found.grads.values()):
            return False
    return True


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_keeps_no_more_bytes_than_torch(op, device):
    _require_comparable(op, device)
    _assert_verified(_verify(op, device, ("kept_bytes",), (torch.float64,)), "kept_bytes")


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_under_autocast_computes_in_the_builtins_dtype(op, device):
    _require_comparable(op, device)
    _assert_verified(_verify(op, device, ("autocast",), (torch.float64,)), "autocast")


def _inplace_ops():
    return [pytest.param(op, id=op.name) for op in OP_DB.values() if "inplace" in inspect.signature(op.function).parameters]


@pytest.mark.parametrize("op", _inplace_ops())
def test_op_inplace_overwrites_its_input_like_torch(op, device):
    """inplace=True on a non-leaf: the output is the input's storage, with torch's values and gradients
    (where torch's cannot be compared, as dropout's mask on CUDA: handgrad's own with inplace=False)."""
    checked = 0
    for sample in op.samples(torch.Generator().manual_seed(0)):
        x = sample.args[0]
        if x.numel() == 0:
            continue
        comparable = not sample.reference_devices or torch.device(device).type in sample.reference_devices
        results = []
        for fn, inplace in ((op.function, True), (op.reference, True) if comparable else (op.function, False)):
            leaf = x.detach().to(device).requires_grad_()
            z = leaf * 1.5                                   # a non-leaf, which in-place ops may overwrite
            torch.manual_seed(0)
            try:
                y = fn(z, *sample.args[1:], **sample.kwargs, inplace=inplace)
                assert y.data_ptr() == z.data_ptr() or not inplace, (
                    f"{op.name} [{sample.name}]: output is not the input's storage")
                y.backward(torch.ones_like(y))
            except RuntimeError as error:                    # refused (e.g. in place with a slope ≤ 0)
                results.append(error)
                continue
            results.append((y.detach(), leaf.grad))
        hand, builtin = results
        if isinstance(hand, Exception) or isinstance(builtin, Exception):
            assert isinstance(hand, Exception) and isinstance(builtin, Exception), (
                f"{op.name} [{sample.name}] in place: handgrad gave {hand!r}, torch {builtin!r}")
            continue
        for name, got, want in zip(("output", "gradient"), hand, builtin):
            d = testing.difference(name, got, want, testing.TOLERANCES[torch.float64])
            assert d.ok, f"{op.name} [{sample.name}] in place: {d}"
        checked += 1
    assert checked, f"{op.name}: no sample could be run in place"


def _counterpart(name):
    """The built-in whose signature the face takes: torch.nn.functional's, else torch's (the tensor
    algebra) or torchvision.ops' (stochastic depth); None for handgrad's own fused chains."""
    if name.startswith("linear_") and not hasattr(torch_F, name):
        return None
    for namespace in (torch_F, torch, torchvision.ops):
        if hasattr(namespace, name):
            return getattr(namespace, name)
    raise AssertionError(f"{name} has no counterpart in torch.nn.functional, torch or torchvision.ops")


def _documented_parameters(builtin):
    """The parameter names of a C builtin's documented signature, the first line of its docstring
    (``sort(input, dim=-1, descending=False, *, stable=False, out=None)``), without ``out``."""
    head = (builtin.__doc__ or "").strip().partition("\n")[0]
    inside = head.partition("(")[2].partition(")")[0]
    names = [part.split("=")[0].split(":")[0].strip() for part in inside.split(",")]
    return [name for name in names if name not in ("", "*", "out")]


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_signature_is_torchs(op):
    """The functional face takes the built-in's parameters (but ``out=``: an autograd Function writes
    no output in place of a given one), with its defaults."""
    builtin = _counterpart(op.name)
    if builtin is None:
        return
    ours = inspect.signature(op.function)
    # max_pool2d and friends are torch's boolean_dispatch of two functions of the same signature.
    builtin = torch._jit_internal.boolean_dispatched.get(builtin, {}).get("if_false", builtin)
    try:
        theirs = inspect.signature(builtin)
    except ValueError:                          # a C builtin: one of its ATen overloads, or its documented form
        overloads = [[("input" if a.name == "self" else a.name) for a in schema.arguments if a.name != "out"]
                     for schema in torch._C._jit_get_schemas_for_operator(f"aten::{builtin.__name__}")]
        overloads.append(_documented_parameters(builtin))
        assert list(ours.parameters) in overloads, f"{op.name}: {ours}, torch's overloads take {overloads}"
        return
    assert list(ours.parameters) == [p for p in theirs.parameters if p != "out"], f"{op.name}: {ours}, torch has {theirs}"
    for name, p in theirs.parameters.items():
        if name == "out":
            continue
        default = ours.parameters[name].default
        assert default == p.default, f"{op.name}: {name} defaults to {default}, torch {p.default}"
