"""The activations' cases (``handgrad.ops.activation``): NumPy oracles, samples, bad inputs, bench sizes."""

import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, list_input

NAN, INF = float("nan"), float("inf")

# -- NumPy oracles: (y, vjp) --------------------------------------------------------------------------


def sigmoid_numpy(z):
    e = np.exp(-np.abs(z))                                   # no overflow for large |z|
    y = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return y, lambda g: (g * y * (1 - y),)


def relu_numpy(z, inplace=False):
    y = np.maximum(z, 0)
    return y, lambda g: (np.where((y > 0) | np.isnan(y), g, 0.0),)     # a NaN unit passes g, as in torch


def tanh_numpy(z):
    y = np.tanh(z)
    return y, lambda g: (g * (1 - y * y),)


def leaky_relu_numpy(z, negative_slope=0.01, inplace=False):
    y = np.where(z > 0, z, negative_slope * z)
    return y, lambda g: (np.where(z > 0, g, negative_slope * g),)


def gelu_numpy(z, approximate="none"):
    """Φ from math.erf and the normal density, or the tanh form differentiated as written."""
    k, c = math.sqrt(2 / math.pi), 0.044715
    with np.errstate(over="ignore", invalid="ignore"):       # ±inf in, NaN slopes out, as in torch
        if approximate == "none":
            cdf = 0.5 * (1 + np.vectorize(math.erf, otypes=[np.float64])(z / math.sqrt(2)))
            y, slope = z * cdf, cdf + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        else:
            t = np.tanh(k * (z + c * z ** 3))
            y, slope = 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + 3 * c * z * z)
    return y, lambda g: (g * slope,)


# -- samples ------------------------------------------------------------------------------------------


def away_from_zero(t):
    """Keep samples clear of a kink (ReLU at 0), where finite differences are meaningless."""
    with torch.no_grad():
        return (t.sign() * (t.abs() + 0.1)).requires_grad_(t.requires_grad)


def elementwise_samples(transform=lambda t: t, extremes=(), **kwargs):
    """The input forms of an elementwise op: 2-D, 4-D, 0-d, empty and large values, then the given
    extreme values (NaN, ±inf, saturation), where finite differences mean nothing."""
    def samples(gen):
        forms = {"(N, D)": ((6, 7), 1.0), "(B, C, H, W)": ((2, 3, 4, 5), 1.0), "0-d": ((), 1.0),
                 "(0, D) empty": ((0, 7), 1.0), "|x| ~ 1000": ((6, 7), 1000.0)}
        found = [Sample((transform(randn(gen, *shape, scale=scale)),), dict(kwargs), name)
                 for name, (shape, scale) in forms.items()]
        for values in extremes:
            x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
            found.append(Sample((x,), dict(kwargs), f"x = {values}", gradcheck=False))
        return found
    return samples


def activation_module_samples(*constructors):
    """Module samples of an activation: each constructor (args, kwargs) on a (4, 3, 6) input."""
    def input(gen):
        return (away_from_zero(randn(gen, 4, 3, 6)),)
    return tuple(ModuleSample(f"{args}, {kwargs}", input, args, kwargs) for args, kwargs in constructors or [((), {})])


def elementwise_bench(device, **kwargs):
    return [("(1024, 512)", (bench_randn(device, 1024, 512),), kwargs)]


def _leaky_relu_samples(gen):
    samples = elementwise_samples(away_from_zero)(gen)
    for slope in (0.2, -0.5, 1.5):
        samples.append(Sample((away_from_zero(randn(gen, 6, 7)), slope), name=f"(N, D), negative_slope={slope}"))
    return samples


_GELU_EXTREMES = ([-1000.0, 1000.0, -1e4, 1e4, 0.0], [NAN, -1.0, 2.0, NAN], [INF, -INF, 1.0])


def _gelu_samples(gen):
    """Every input form with the default, then with approximate='tanh', and 'none' spelt out."""
    samples = elementwise_samples(extremes=_GELU_EXTREMES)(gen)
    for sample in samples:
        if sample.name == f"x = {[INF, -INF, 1.0]}":
            # The forward is PyTorch's kernel, whose float32 and bfloat16 CPU GELU (oneDNN) gives
            # NaN at +inf on AVX-512 CPUs (docs/differences.md); float64 is exact everywhere.
            sample.dtypes = (torch.float64,)
    for sample in elementwise_samples(extremes=_GELU_EXTREMES, approximate="tanh")(gen):
        sample.name += ", approximate='tanh'"
        samples.append(sample)
    samples.append(Sample((randn(gen, 6, 7),), {"approximate": "none"}, name="(N, D), approximate='none'"))
    return samples


def _gelu_bench(device):
    return [("(1024, 512)", (bench_randn(device, 1024, 512),), {}),
            ("(64, 128, 3072)", (bench_randn(device, 64, 128, 3072),), {}),
            ("(1024, 512), tanh", (bench_randn(device, 1024, 512),), {"approximate": "tanh"})]


# -- the database -------------------------------------------------------------------------------------

OP_INFOS = (
    OpInfo(
        "sigmoid", torch.sigmoid,
        elementwise_samples(extremes=([-1000.0, 1000.0, -1e4, 1e4, 0.0], [NAN, -1.0, 2.0, NAN], [INF, -INF, 1.0])),
        sigmoid_numpy, elementwise_bench,
        # torch's AttributeError comes from calling list.sigmoid: an accident, not an API.
        errors=(list_input("sigmoid", torch_class=AttributeError),),
        modules={torch.nn.Sigmoid: activation_module_samples()},
    ),
    OpInfo(
        "relu", torch.nn.functional.relu,
        elementwise_samples(away_from_zero, extremes=([NAN, -1.0, 2.0, NAN], [INF, -INF, 0.0, -0.0, 1.0])),
        relu_numpy, elementwise_bench,
        errors=(
            list_input("relu"),
            ErrorInput("bool input", lambda F, nn: F.relu(torch.tensor([True, False])), NotImplementedError,
                       r"relu: input has dtype torch\.bool"),
            ErrorInput("nn.ReLU bool input", lambda F, nn: nn.ReLU()(torch.tensor([True, False])), NotImplementedError,
                       r"relu: input has dtype torch\.bool"),
        ),
        modules={torch.nn.ReLU: activation_module_samples(((), {}), ((), {"inplace": True}))},
    ),
    OpInfo(
        "tanh", torch.nn.functional.tanh,
        elementwise_samples(extremes=([-1000.0, 1000.0, 0.0], [NAN, 1.0], [INF, -INF])), tanh_numpy, elementwise_bench,
        errors=(list_input("tanh", torch_class=AttributeError),),
        modules={torch.nn.Tanh: activation_module_samples()},
    ),
    OpInfo(
        "leaky_relu", torch.nn.functional.leaky_relu, _leaky_relu_samples, leaky_relu_numpy, elementwise_bench,
        errors=(
            list_input("leaky_relu"),
            ErrorInput("negative_slope a string", lambda F, nn: F.leaky_relu(torch.ones(3), "0.1"), TypeError,
                       r"leaky_relu: negative_slope must be a number, got '0\.1'"),
            ErrorInput(
                "in place with a negative slope, differentiated",
                lambda F, nn: F.leaky_relu(torch.ones(3, requires_grad=True) * 1, -0.5, inplace=True).sum().backward(),
                RuntimeError, r"in place with negative_slope=-0\.5 ≤ 0 cannot be differentiated"),
        ),
        modules={torch.nn.LeakyReLU: activation_module_samples(
            ((), {}), ((0.2,), {}), ((), {"negative_slope": 0.3, "inplace": True}))},
    ),
    OpInfo(
        "gelu", torch.nn.functional.gelu, _gelu_samples, gelu_numpy, _gelu_bench,
        errors=(
            list_input("gelu"),
            ErrorInput("approximate 'TANH'", lambda F, nn: F.gelu(torch.ones(3), approximate="TANH"), RuntimeError,
                       r"gelu: approximate must be 'none' or 'tanh', got 'TANH'"),
            ErrorInput("approximate None", lambda F, nn: F.gelu(torch.ones(3), approximate=None), TypeError,
                       r"gelu: approximate must be a str, 'none' or 'tanh', got NoneType"),
            ErrorInput("approximate passed by position", lambda F, nn: F.gelu(torch.ones(3), "tanh"), TypeError,
                       r"gelu\(\) takes 1 positional argument but 2 were given"),
            ErrorInput("int64 input", lambda F, nn: F.gelu(torch.ones(3, dtype=torch.long)), NotImplementedError,
                       r"gelu: input must be a floating-point tensor, got torch\.int64"),
            ErrorInput("nn.GELU approximate 'exact'", lambda F, nn: nn.GELU("exact")(torch.ones(3)), RuntimeError,
                       r"gelu: approximate must be 'none' or 'tanh', got 'exact'"),
        ),
        modules={torch.nn.GELU: activation_module_samples(((), {}), (("tanh",), {}), ((), {"approximate": "none"}))},
    ),
)
