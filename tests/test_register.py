"""``handgrad.register_function``: an op author's own Function, a plain ``torch.autograd.Function``,
becomes one of handgrad's ops: its face in ``handgrad.functional``, its module in ``convert`` and
``coverage``, its cases in the test database that ``handgrad-check`` and the benchmark read; and
``unregister`` takes it all back."""

import pytest
import torch

import handgrad
import handgrad.functional
import handgrad.nn
from handgrad import check, testing
from handgrad.bench.ops import bench_ops
from handgrad.testing.graph import STRUCTURAL, graph
from handgrad.testing.op_db import OP_DB


class _SiLU(torch.autograd.Function):
    """y = x σ(x), dL/dx = g (σ + x σ (1 − σ)), σ written out so that double backward is elementary."""

    @staticmethod
    def forward(x):
        return torch.nn.functional.silu(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = 1 / (1 + torch.exp(-x))
        return g * (s + x * s * (1 - s))


def _silu(input, inplace=False):
    return _SiLU.apply(input)


def _samples(generator):
    return [testing.Sample((testing.randn(generator, 6, 7),), name="(N, D)")]


@pytest.fixture
def silu():
    op = handgrad.register_function(
        "silu", _silu, [_SiLU], reference=torch.nn.functional.silu, samples=_samples,
        modules={torch.nn.SiLU: lambda self, input: _silu(input)},
        bench=lambda device: [("(256, 64)", (torch.randn(256, 64, device=device, requires_grad=True),), {})],
        derivative=handgrad.Derivative("y = x σ(x)", "dL/dx = g (σ + x σ (1 − σ))", "(*)"))
    try:
        yield op
    finally:
        handgrad.unregister("silu")


def test_register_function_makes_a_plain_function_an_op_of_handgrad(silu):
    assert handgrad.functional.silu is _silu and "silu" in handgrad.functional.__all__
    assert handgrad.autograd._SiLU is _SiLU
    assert issubclass(handgrad.nn.SiLU, torch.nn.SiLU)
    assert OP_DB["silu"].function is _silu


def test_register_function_converts_the_module_and_coverage_sees_it(silu):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4).double(), torch.nn.SiLU(), torch.nn.Linear(4, 3).double())
    builtin = torch.nn.Sequential(*(type(m)() if isinstance(m, torch.nn.SiLU) else m for m in model))
    assert not handgrad.nn.coverage(model).complete
    x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    want = torch.autograd.grad(builtin(x).sum(), x)[0]
    handgrad.nn.convert(model, strict=True)
    assert type(model[1]) is handgrad.nn.SiLU and handgrad.nn.coverage(model).complete
    out = model(x)
    functions, builtin = graph([out])
    assert _SiLU in functions and not [n for n in builtin if not STRUCTURAL.fullmatch(n)], builtin
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0], want)


def test_register_function_puts_its_cases_before_the_check_and_the_benchmark(silu, capsys):
    assert check.main(["--op", "silu", "--device", "cpu"]) == 0
    assert "all passed" in capsys.readouterr().out
    (row,) = bench_ops(torch.device("cpu"), {"repeats": 1, "sample_s": 0.001}, ["silu"])
    assert row["op"] == "silu" and row["ratio"] > 0


def test_unregister_takes_the_op_back_everywhere(silu):
    handgrad.unregister("silu")
    assert not hasattr(handgrad.functional, "silu") and "silu" not in OP_DB
    assert torch.nn.SiLU not in handgrad.ops._registry.REPLACES
    model = torch.nn.Sequential(torch.nn.SiLU())
    handgrad.nn.convert(model)
    assert type(model[0]) is torch.nn.SiLU
    handgrad.register_function("silu", _silu, [_SiLU], reference=torch.nn.functional.silu, samples=_samples)


def test_register_function_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match=r"an op named 'relu' is already registered"):
        handgrad.register_function("relu", _silu, [_SiLU], reference=torch.relu, samples=_samples)
    with pytest.raises(TypeError, match=r"function is the Function class _SiLU; pass .*_SiLU\.apply"):
        handgrad.register_function("silu", _SiLU, [_SiLU], reference=torch.nn.functional.silu, samples=_samples)
    with pytest.raises(TypeError, match=r"functions must be torch\.autograd\.Function classes"):
        handgrad.register_function("silu", _silu, [_silu], reference=torch.nn.functional.silu, samples=_samples)
    assert "silu" not in handgrad.ops.OPS
