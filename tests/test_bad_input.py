"""Bad input to ``handgrad.functional`` and ``handgrad.nn`` raises an exception whose message names the
argument, shape, dtype or value at fault, of a class that ``except`` clauses written for torch catch;
valid extreme input (ignored rows, empty batches, NaN, saturation, huge and tiny logits) does not
raise and gives torch's output and gradients."""

import dataclasses
import math
import re
from typing import Callable

import pytest
import torch
import torch.nn.functional as torch_F

import handgrad.functional as F
import handgrad.nn
from handgrad import testing

HANDGRAD = (F, handgrad.nn)
TORCH = (torch_F, torch.nn)


def _x(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype)


def _idx(*values):
    return torch.tensor(values, dtype=torch.long)


@dataclasses.dataclass(frozen=True)
class BadInput:
    """``call(F, nn)`` triggers the error with ``F`` a functional namespace and ``nn`` a module
    namespace (handgrad's or torch's); handgrad must raise ``exception`` with a message matching
    ``message``, and an instance of the class torch raises unless that class is recorded here."""

    id: str
    call: Callable
    exception: type
    message: str
    torch_accepts: bool = False      # torch computes a result where handgrad deliberately refuses
    torch_class: type = None         # torch's class where it is an accident handgrad does not copy


# (op, case): the op is the first word of the test id.
BAD_INPUTS = [
    # -- linear ------------------------------------------------------------------------------------
    ("linear", BadInput(
        "input/weight feature mismatch", lambda F, nn: F.linear(_x(2, 3), _x(4, 5)),
        RuntimeError, r"input has 3 features .*shape \(2, 3\).* weight of shape \(4, 5\) expects 5")),
    ("linear", BadInput(
        "bias of the wrong length", lambda F, nn: F.linear(_x(2, 3), _x(4, 3), _x(5)),
        RuntimeError, r"bias of shape \(5,\) does not broadcast to the output shape \(2, 4\)")),
    ("linear", BadInput(
        "bias with more dimensions than the output", lambda F, nn: F.linear(_x(2, 3), _x(4, 3), _x(2, 2, 4)),
        RuntimeError, r"bias of shape \(2, 2, 4\) does not broadcast to the output shape \(2, 4\)")),
    ("linear", BadInput(
        "0-d input", lambda F, nn: F.linear(_x(), _x(4, 3)),
        RuntimeError, r"input must have at least 1 dimension.*0-d")),
    ("linear", BadInput(
        "3-D weight", lambda F, nn: F.linear(_x(2, 3), _x(4, 3, 3)),
        RuntimeError, r"weight must be 2-D .*got shape \(4, 3, 3\)")),
    ("linear", BadInput(
        "1-D weight with a bias", lambda F, nn: F.linear(_x(2, 3), _x(3), _x(1)),
        RuntimeError, r"1-D weight takes no bias")),
    ("linear", BadInput(
        "float64 input, float32 weight", lambda F, nn: F.linear(_x(2, 3, dtype=torch.float64), _x(4, 3)),
        RuntimeError, r"weight has dtype torch\.float32 but input has dtype torch\.float64")),
    ("linear", BadInput(
        "float64 bias, float32 input", lambda F, nn: F.linear(_x(2, 3), _x(4, 3), _x(4, dtype=torch.float64)),
        RuntimeError, r"bias has dtype torch\.float64 but input has dtype torch\.float32")),
    ("linear", BadInput(
        "list input", lambda F, nn: F.linear([[1.0, 2.0, 3.0]], _x(4, 3)),
        TypeError, r"input must be a torch\.Tensor, got list")),
    ("linear", BadInput(
        "nn.Linear input/weight feature mismatch", lambda F, nn: nn.Linear(5, 4)(_x(2, 3)),
        RuntimeError, r"input has 3 features .* weight of shape \(4, 5\) expects 5")),
    ("linear", BadInput(
        "nn.Linear float64 input", lambda F, nn: nn.Linear(3, 4)(_x(2, 3, dtype=torch.float64)),
        RuntimeError, r"weight has dtype torch\.float32 but input has dtype torch\.float64")),
    # -- sigmoid, relu -----------------------------------------------------------------------------
    ("sigmoid", BadInput(
        "list input", lambda F, nn: F.sigmoid([1.0]),
        TypeError, r"sigmoid: input must be a torch\.Tensor, got list",
        # torch's AttributeError comes from calling list.sigmoid: an accident, not an API.
        torch_class=AttributeError)),
    ("relu", BadInput(
        "list input", lambda F, nn: F.relu([1.0]),
        TypeError, r"relu: input must be a torch\.Tensor, got list")),
    ("relu", BadInput(
        "bool input", lambda F, nn: F.relu(torch.tensor([True, False])),
        NotImplementedError, r"relu: input has dtype torch\.bool")),
    ("relu", BadInput(
        "nn.ReLU bool input", lambda F, nn: nn.ReLU()(torch.tensor([True, False])),
        NotImplementedError, r"relu: input has dtype torch\.bool")),
    # -- cross_entropy: target ---------------------------------------------------------------------
    ("cross_entropy", BadInput(
        "logits/target batch mismatch", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2, 3)),
        ValueError, r"target of shape \(4,\) does not match input of shape \(3, 5\).*shape \(3,\)")),
    ("cross_entropy", BadInput(
        "(N, C, d1) logits, wrong target spatial shape",
        lambda F, nn: F.cross_entropy(_x(2, 5, 3), torch.zeros(2, 4, dtype=torch.long)),
        RuntimeError, r"target of shape \(2, 4\) does not match input of shape \(2, 5, 3\).*shape \(2, 3\)")),
    ("cross_entropy", BadInput(
        "probability target of the wrong shape", lambda F, nn: F.cross_entropy(_x(3, 5), torch.rand(3, 4)),
        RuntimeError, r"must have the input's shape \(3, 5\), got \(3, 4\)")),
    ("cross_entropy", BadInput(
        "target above the last class", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 10, 1)),
        IndexError, r"target 10 is out of bounds.*\[0, 4\] for 5 classes")),
    ("cross_entropy", BadInput(
        "negative target other than ignore_index", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, -3, 1)),
        IndexError, r"target -3 is out of bounds.*ignore_index=-100")),
    ("cross_entropy", BadInput(
        "negative target with ignore_index=-1", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(-1, -2, 1), ignore_index=-1),
        IndexError, r"target -2 is out of bounds.*ignore_index=-1")),
    ("cross_entropy", BadInput(
        "float class indices of shape (N,)", lambda F, nn: F.cross_entropy(_x(3, 5), torch.tensor([0.0, 1.0, 2.0])),
        RuntimeError, r"floating-point target .*input's shape \(3, 5\), got \(3,\).*int64")),
    ("cross_entropy", BadInput(
        "int32 target", lambda F, nn: F.cross_entropy(_x(3, 5), torch.tensor([0, 1, 2], dtype=torch.int32)),
        RuntimeError, r"target must have dtype torch\.long .*got torch\.int32")),
    ("cross_entropy", BadInput(
        "bool target", lambda F, nn: F.cross_entropy(_x(3, 5), torch.tensor([True, False, True])),
        RuntimeError, r"target must have dtype torch\.long .*got torch\.bool")),
    ("cross_entropy", BadInput(
        "list target", lambda F, nn: F.cross_entropy(_x(3, 5), [0, 1, 2]),
        TypeError, r"target must be a torch\.Tensor, got list")),
    ("cross_entropy", BadInput(
        "ignore_index with probability targets",
        lambda F, nn: F.cross_entropy(_x(3, 5), torch.rand(3, 5), ignore_index=1),
        RuntimeError, r"ignore_index .*not supported with class-probability targets")),
    # -- cross_entropy: options --------------------------------------------------------------------
    ("cross_entropy", BadInput(
        "reduction 'avg'", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), reduction="avg"),
        ValueError, r"reduction must be one of .*got 'avg'")),
    ("cross_entropy", BadInput(
        "label_smoothing 1.5", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), label_smoothing=1.5),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got 1\.5")),
    ("cross_entropy", BadInput(
        "label_smoothing -0.1", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), label_smoothing=-0.1),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got -0\.1", torch_accepts=True)),
    ("cross_entropy", BadInput(
        "weight of the wrong length", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(4)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(4,\)")),
    ("cross_entropy", BadInput(
        "2-D weight", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(1, 5)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(1, 5\)")),
    ("cross_entropy", BadInput(
        "float64 weight, float32 logits",
        lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(5, dtype=torch.float64)),
        RuntimeError, r"weight has dtype torch\.float64 but input has dtype torch\.float32")),
    ("cross_entropy", BadInput(
        "weight requiring grad",
        lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(5, requires_grad=True)),
        RuntimeError, r"not differentiable with respect to weight")),
    # -- cross_entropy: logits ---------------------------------------------------------------------
    ("cross_entropy", BadInput(
        "int64 logits", lambda F, nn: F.cross_entropy(torch.ones(3, 5, dtype=torch.long), _idx(0, 1, 2)),
        NotImplementedError, r"input \(logits\) must be floating point, got torch\.int64")),
    ("cross_entropy", BadInput(
        "0-d logits", lambda F, nn: F.cross_entropy(_x(), torch.tensor(0)),
        RuntimeError, r"input must be \(C\), \(N, C\) or \(N, C, d1, \.\.\., dK\); got a 0-d tensor")),
    ("cross_entropy", BadInput(
        "zero classes", lambda F, nn: F.cross_entropy(_x(3, 0), _idx(0, 0, 0)),
        IndexError, r"input of shape \(3, 0\) has no classes")),
    # -- cross_entropy through nn.CrossEntropyLoss -------------------------------------------------
    ("cross_entropy", BadInput(
        "nn.CrossEntropyLoss target above the last class",
        lambda F, nn: nn.CrossEntropyLoss()(_x(3, 5), _idx(0, 7, 1)),
        IndexError, r"target 7 is out of bounds")),
    ("cross_entropy", BadInput(
        "nn.CrossEntropyLoss weight of the wrong length",
        lambda F, nn: nn.CrossEntropyLoss(weight=torch.ones(4))(_x(3, 5), _idx(0, 1, 2)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(4,\)")),
    ("cross_entropy", BadInput(
        "nn.CrossEntropyLoss reduction 'avg'",
        lambda F, nn: nn.CrossEntropyLoss(reduction="avg")(_x(3, 5), _idx(0, 1, 2)),
        ValueError, r"reduction must be one of .*got 'avg'")),
    ("cross_entropy", BadInput(
        "nn.CrossEntropyLoss ignore_index with probability targets",
        lambda F, nn: nn.CrossEntropyLoss(ignore_index=0)(_x(3, 5), torch.rand(3, 5)),
        RuntimeError, r"ignore_index .*not supported with class-probability targets")),
    ("cross_entropy", BadInput(
        "nn.CrossEntropyLoss label_smoothing 1.5",
        lambda F, nn: nn.CrossEntropyLoss(label_smoothing=1.5)(_x(3, 5), _idx(0, 1, 2)),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got 1\.5")),
]


def _params():
    return [pytest.param(case, id=f"{op}: {case.id}") for op, case in BAD_INPUTS]


def _raised(call, namespaces):
    try:
        call(*namespaces)
    except Exception as error:  # any class: which one is what the tests compare
        return error
    return None


def _check_message(case):
    error = _raised(case.call, HANDGRAD)
    assert error is not None, f"{case.id}: handgrad raised nothing"
    assert isinstance(error, case.exception), f"{case.id}: {type(error).__name__}: {error}"
    assert re.search(case.message, str(error)), f"{case.id}: {str(error)!r} does not match {case.message!r}"


def _check_class_matches_torch(case):
    expected = _raised(case.call, TORCH)
    error = _raised(case.call, HANDGRAD)
    assert error is not None, f"{case.id}: handgrad raised nothing"
    if case.torch_accepts:
        assert expected is None, f"{case.id}: torch now raises {type(expected).__name__}: {expected}"
        return
    assert expected is not None, f"{case.id}: torch raised nothing; mark the case torch_accepts"
    if case.torch_class is not None:
        assert type(expected) is case.torch_class, f"{case.id}: torch now raises {type(expected).__name__}"
        return
    assert isinstance(error, type(expected)), (
        f"{case.id}: handgrad raised {type(error).__name__}, torch {type(expected).__name__} ({expected})"
    )


@pytest.mark.parametrize("case", _params())
def test_bad_input_names_the_problem(case):
    _check_message(case)


@pytest.mark.parametrize("case", _params())
def test_bad_input_raises_torchs_exception_class(case):
    _check_class_matches_torch(case)


# -- valid extreme input -------------------------------------------------------------------------

NAN, INF = math.nan, math.inf
REDUCTIONS = ("mean", "sum", "none")
EXTREME_DTYPES = (torch.float64, torch.float32)
def _elementwise(op, values):
    def make(gen):
        return testing.Problem({"input": torch.tensor(values, dtype=torch.float64)}, {}, ("input",))
    return testing.Case(op, str(values), make)


def _cross_entropy(form, reduction, logits, target, **options):
    """``logits(gen)`` and ``target(gen)`` draw float64 logits and the target."""
    def make(gen):
        x, t = logits(gen), target(gen)
        wrt = ("input", "target") if t.is_floating_point() else ("input",)
        return testing.Problem({"input": x, "target": t}, {"reduction": reduction, **options}, wrt)
    return testing.Case("cross_entropy", f"{form}, {reduction}", make)


def _randn(*shape, scale=1.0, offset=0.0):
    return lambda gen: torch.randn(shape, generator=gen, dtype=torch.float64) * scale + offset


def _with(values_at, draw):
    """``draw`` with the entries at the given indices overwritten."""
    def make(gen):
        t = draw(gen)
        for index, value in values_at.items():
            t[index] = value
        return t
    return make


def _indices(*values):
    return lambda gen: torch.tensor(values, dtype=torch.long)


def _probabilities(*shape):
    return lambda gen: torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), 1)


ELEMENTWISE_EXTREMES = [
    pytest.param(_elementwise("sigmoid", [-1000.0, 1000.0, -1e4, 1e4, 0.0]), id="sigmoid(±1000)"),
    pytest.param(_elementwise("sigmoid", [NAN, -1.0, 2.0, NAN]), id="sigmoid(NaN)"),
    pytest.param(_elementwise("sigmoid", [INF, -INF, 1.0]), id="sigmoid(±inf)"),
    pytest.param(_elementwise("relu", [NAN, -1.0, 2.0, NAN]), id="relu(NaN)"),
    pytest.param(_elementwise("relu", [INF, -INF, 0.0, -0.0, 1.0]), id="relu(±inf, ±0)"),
]

CROSS_ENTROPY_EXTREMES = [
    pytest.param(case, id=case.form, marks=marks)
    for reduction in REDUCTIONS
    for case, marks in [
        (_cross_entropy("(N, C), one row ignored", reduction, _randn(4, 5), _indices(1, -100, 3, 0)), []),
        (_cross_entropy("(N, C), ignore_index=2 on two rows, weight, label_smoothing", reduction, _randn(4, 5),
                        _indices(1, 2, 3, 2), ignore_index=2, label_smoothing=0.2,
                        weight=torch.tensor([0.5, 1.0, 2.0, 1.5, 0.1], dtype=torch.float64)), []),
        (_cross_entropy("(N, C, d1), one sample all ignored", reduction, _randn(2, 4, 3),
                        lambda gen: torch.tensor([[-100, -100, -100], [0, 3, 1]])), []),
        (_cross_entropy("(0, C) indices", reduction, _randn(0, 5), _indices()), []),
        (_cross_entropy("(0, C) indices, weight, label_smoothing", reduction, _randn(0, 5), _indices(),
                        weight=torch.ones(5, dtype=torch.float64), label_smoothing=0.1), []),
        (_cross_entropy("(0, C) probabilities", reduction, _randn(0, 5), _probabilities(0, 5)), []),
        (_cross_entropy("(0, C, d1) indices", reduction, _randn(0, 5, 2),
                        lambda gen: torch.zeros(0, 2, dtype=torch.long)), []),
        (_cross_entropy("NaN logit", reduction, _with({(1, 2): NAN}, _randn(4, 5)), _indices(1, 2, 3, 0)), []),
        (_cross_entropy("NaN logit, label_smoothing", reduction, _with({(0, 0): NAN}, _randn(4, 5)),
                        _indices(1, 2, 3, 0), label_smoothing=0.1), []),
        (_cross_entropy("NaN logit, probabilities", reduction, _with({(2, 4): NAN}, _randn(4, 5)),
                        _probabilities(4, 5)), []),
        (_cross_entropy("NaN logits in an ignored row", reduction, _with({(1, 2): NAN}, _randn(4, 5)),
                        _indices(1, -100, 3, 0)), []),
        (_cross_entropy("-inf logit of a non-target class (masking)", reduction,
                        _with({(0, 3): -INF}, _randn(4, 5)), _indices(1, 2, 3, 0)), []),
        (_cross_entropy("logits 1e4 + N(0, 1)", reduction, _randn(8, 5, offset=1e4), _indices(0, 1, 2, 3, 4, 0, 1, 2)), []),
        (_cross_entropy("logits ~ N(0, 1e4)", reduction, _randn(8, 5, scale=1e4), _indices(0, 1, 2, 3, 4, 0, 1, 2)), []),
        (_cross_entropy("logits ~ N(0, 1e-8)", reduction, _randn(8, 5, scale=1e-8), _indices(0, 1, 2, 3, 4, 0, 1, 2)), []),
        (_cross_entropy("logits ~ N(0, 1e-8), probabilities", reduction, _randn(8, 5, scale=1e-8),
                        _probabilities(8, 5)), []),
    ]
]


def _check_extreme(case, dtype):
    for seed in (0, 1):
        for difference in testing.compare_with_builtin(case, dtype, "cpu", seed):
            assert difference.ok, f"{case.id} {dtype} seed {seed}: {difference}"


@pytest.mark.parametrize("dtype", EXTREME_DTYPES, ids=str)
@pytest.mark.parametrize("case", [p for p in ELEMENTWISE_EXTREMES if p.values[0].op == "sigmoid"])
def test_sigmoid_extreme_input_matches_torch(case, dtype):
    _check_extreme(case, dtype)


@pytest.mark.parametrize("dtype", EXTREME_DTYPES, ids=str)
@pytest.mark.parametrize("case", [p for p in ELEMENTWISE_EXTREMES if p.values[0].op == "relu"])
def test_relu_extreme_input_matches_torch(case, dtype):
    _check_extreme(case, dtype)


@pytest.mark.parametrize("dtype", EXTREME_DTYPES, ids=str)
@pytest.mark.parametrize("case", CROSS_ENTROPY_EXTREMES)
def test_cross_entropy_extreme_input_matches_torch(case, dtype):
    _check_extreme(case, dtype)
