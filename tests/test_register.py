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
from handgrad.testing.graph import MOVEMENT, graph
from handgrad.testing.op_db import OP_DB


class _Softsign(torch.autograd.Function):
    """y = x / (1 + |x|), dL/dx = g / (1 + |x|)²."""

    @staticmethod
    def forward(x):
        return torch.nn.functional.softsign(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (1 + x.abs()) ** 2


def _softsign(input):
    return _Softsign.apply(input)


def _samples(generator):
    return [testing.Sample((testing.randn(generator, 6, 7),), name="(N, D)")]


@pytest.fixture
def softsign():
    op = handgrad.register_function(
        "softsign", _softsign, [_Softsign], reference=torch.nn.functional.softsign, samples=_samples,
        modules={torch.nn.Softsign: lambda self, input: _softsign(input)},
        bench=lambda device: [("(256, 64)", (torch.randn(256, 64, device=device, requires_grad=True),), {})],
        derivative=handgrad.Derivative("y = x / (1 + |x|)", "dL/dx = g / (1 + |x|)²", "(*)"))
    try:
        yield op
    finally:
        handgrad.unregister("softsign")


def test_register_function_makes_a_plain_function_an_op_of_handgrad(softsign):
    assert handgrad.functional.softsign is _softsign and "softsign" in handgrad.functional.__all__
    assert handgrad.autograd._Softsign is _Softsign
    assert issubclass(handgrad.nn.Softsign, torch.nn.Softsign)
    assert OP_DB["softsign"].function is _softsign


def test_register_function_converts_the_module_and_coverage_sees_it(softsign):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4).double(), torch.nn.Softsign(), torch.nn.Linear(4, 3).double())
    builtin = torch.nn.Sequential(*(type(m)() if isinstance(m, torch.nn.Softsign) else m for m in model))
    assert not handgrad.nn.coverage(model).complete
    x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    want = torch.autograd.grad(builtin(x).sum(), x)[0]
    handgrad.nn.convert(model, strict=True)
    assert type(model[1]) is handgrad.nn.Softsign and handgrad.nn.coverage(model).complete
    out = model(x)
    functions, builtin = graph([out])
    assert _Softsign in functions and not [n for n in builtin if not MOVEMENT.fullmatch(n)], builtin
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0], want)


def test_register_function_puts_its_cases_before_the_check_and_the_benchmark(softsign, capsys):
    assert check.main(["--op", "softsign", "--device", "cpu"]) == 0
    assert "all passed" in capsys.readouterr().out
    (row,) = bench_ops(torch.device("cpu"), {"repeats": 1, "sample_s": 0.001}, ["softsign"])
    assert row["op"] == "softsign" and row["ratio"] > 0


def test_unregister_takes_the_op_back_everywhere(softsign):
    handgrad.unregister("softsign")
    assert not hasattr(handgrad.functional, "softsign") and "softsign" not in OP_DB
    assert torch.nn.Softsign not in handgrad.ops._registry.REPLACES
    model = torch.nn.Sequential(torch.nn.Softsign())
    handgrad.nn.convert(model)
    assert type(model[0]) is torch.nn.Softsign
    handgrad.register_function("softsign", _softsign, [_Softsign], reference=torch.nn.functional.softsign, samples=_samples)


def test_register_function_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match=r"an op named 'relu' is already registered"):
        handgrad.register_function("relu", _softsign, [_Softsign], reference=torch.relu, samples=_samples)
    with pytest.raises(TypeError, match=r"function is the Function class _Softsign; pass .*_Softsign\.apply"):
        handgrad.register_function("softsign", _Softsign, [_Softsign], reference=torch.nn.functional.softsign, samples=_samples)
    with pytest.raises(TypeError, match=r"functions must be torch\.autograd\.Function classes"):
        handgrad.register_function("softsign", _softsign, [_softsign], reference=torch.nn.functional.softsign, samples=_samples)
    assert "softsign" not in handgrad.ops.OPS
