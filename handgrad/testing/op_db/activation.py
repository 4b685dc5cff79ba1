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


def logsigmoid_numpy(z):
    """log σ(z) = −log(1 + e⁻ᶻ), computed without overflow: min(z, 0) − log(1 + e^(−|z|))."""
    y = np.minimum(z, 0) - np.log1p(np.exp(-np.abs(z)))
    return y, lambda g: (g * (1 - np.exp(y)),)


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


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def silu_numpy(z, inplace=False):
    s = _sigmoid(z)
    with np.errstate(invalid="ignore"):
        return z * s, lambda g: (g * s * (1 + z * (1 - s)),)


def mish_numpy(z, inplace=False):
    t, s = np.tanh(np.logaddexp(0, z)), _sigmoid(z)
    with np.errstate(invalid="ignore"):
        return z * t, lambda g: (g * (t + z * (1 - t * t) * s),)


def hardswish_numpy(z, inplace=False):
    slope = np.where(z <= -3, 0.0, np.where(z < 3, z / 3 + 0.5, 1.0))
    return z * np.clip(z + 3, 0, 6) / 6, lambda g: (g * slope,)


def hardsigmoid_numpy(z, inplace=False):
    return np.clip(z / 6 + 0.5, 0, 1), lambda g: (g * ((z > -3) & (z < 3)) / 6,)


def hardtanh_numpy(z, min_val=-1.0, max_val=1.0, inplace=False):
    return np.clip(z, min_val, max_val), lambda g: (g * ~((z <= min_val) | (z >= max_val)),)


def relu6_numpy(z, inplace=False):
    return hardtanh_numpy(z, 0.0, 6.0)


def softplus_numpy(z, beta=1, threshold=20):
    linear = z * beta > threshold
    y = np.where(linear, z, np.logaddexp(0, beta * z) / beta)
    return y, lambda g: (g * np.where(linear, 1.0, _sigmoid(beta * z)),)


def elu_numpy(z, alpha=1.0, inplace=False):
    with np.errstate(over="ignore"):
        return np.where(z > 0, z, alpha * np.expm1(z)), lambda g: (g * np.where(z <= 0, alpha * np.exp(z), 1.0),)


def glu_numpy(x, dim=-1):
    a, b = np.split(x, 2, axis=dim)
    s = _sigmoid(b)
    return a * s, lambda g: (np.concatenate([g * s, g * a * s * (1 - s)], axis=dim),)


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
            ("ViT MLP: (128, 50, 256)", (bench_randn(device, 128, 50, 256),), {}),
            ("(1024, 512), tanh", (bench_randn(device, 1024, 512),), {"approximate": "tanh"})]


def _away_from(*kinks):
    """Keep samples clear of the kinks (hardtanh at its bounds, hardswish at ±3), where finite
    differences are meaningless."""
    def transform(t):
        with torch.no_grad():
            for kink in kinks:
                near = (t - kink).abs() < 0.05
                t = torch.where(near, t + 0.1, t)
        return t.requires_grad_()
    return transform


def _with_options(base, *options):
    """The samples of ``base`` (a samples function), then (N, D) samples with each option set."""
    def samples(gen):
        found = base(gen)
        for kwargs in options:
            found.append(Sample((randn(gen, 6, 7, scale=3.0),), dict(kwargs), name=f"(N, D), {kwargs}"))
        return found
    return samples


def _glu_samples(gen):
    forms = {"(N, 2D), dim=-1": ((6, 8), -1), "(N, 2D), dim=1": ((6, 8), 1), "(2C, L), dim=0": ((4, 5), 0),
             "(B, 2C, H, W), dim=1": ((2, 6, 3, 2), 1), "(2D,) unbatched": ((6,), 0), "(0, 2D) empty": ((0, 4), -1)}
    return [Sample((randn(gen, *shape), dim), name=name) for name, (shape, dim) in forms.items()]


_SMOOTH_EXTREMES = ([-1000.0, 1000.0, -30.0, 30.0, 0.0], [NAN, -1.0, 2.0, NAN])


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
        "logsigmoid", torch.nn.functional.logsigmoid, elementwise_samples(extremes=([-1000.0, 1000.0, 0.0],)),
        logsigmoid_numpy, elementwise_bench, errors=(list_input("logsigmoid"),),
        modules={torch.nn.LogSigmoid: activation_module_samples()},
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
    OpInfo(
        "silu", torch.nn.functional.silu, elementwise_samples(extremes=_SMOOTH_EXTREMES), silu_numpy, elementwise_bench,
        errors=(list_input("silu"),
                ErrorInput("int64 input", lambda F, nn: F.silu(torch.ones(3, dtype=torch.long)), NotImplementedError,
                           r"silu: input must be a floating-point tensor, got torch\.int64")),
        modules={torch.nn.SiLU: activation_module_samples(((), {}), ((), {"inplace": True}))},
    ),
    OpInfo(
        "mish", torch.nn.functional.mish, elementwise_samples(extremes=_SMOOTH_EXTREMES), mish_numpy, elementwise_bench,
        errors=(list_input("mish"),),
        modules={torch.nn.Mish: activation_module_samples(((), {}), ((), {"inplace": True}))},
    ),
    OpInfo(
        "hardswish", torch.nn.functional.hardswish,
        elementwise_samples(_away_from(-3.0, 3.0), extremes=([-1000.0, 1000.0, 0.0, -1.5], [NAN, -1.0, 2.0, NAN])),
        hardswish_numpy, elementwise_bench, errors=(list_input("hardswish"),),
        modules={torch.nn.Hardswish: activation_module_samples(((), {}), ((), {"inplace": True}))},
    ),
    OpInfo(
        "hardsigmoid", torch.nn.functional.hardsigmoid,
        elementwise_samples(_away_from(-3.0, 3.0), extremes=([-1000.0, 1000.0, 0.0], [NAN, -1.0, 2.0, NAN])),
        hardsigmoid_numpy, elementwise_bench, errors=(list_input("hardsigmoid"),),
        modules={torch.nn.Hardsigmoid: activation_module_samples(((), {}), ((), {"inplace": True}))},
    ),
    OpInfo(
        "hardtanh", torch.nn.functional.hardtanh,
        _with_options(elementwise_samples(_away_from(-1.0, 1.0), extremes=([-1000.0, 1000.0, 0.0], [NAN, 0.5, NAN])),
                      {"min_val": -2.0, "max_val": 3.0}, {"min_val": 0.5, "max_val": 0.5 + 1e-9 + 4.0}),
        hardtanh_numpy, elementwise_bench,
        errors=(list_input("hardtanh"),
                ErrorInput("min_val above max_val", lambda F, nn: F.hardtanh(torch.ones(3), 2.0, 1.0), ValueError,
                           r"hardtanh: min_val cannot be greater than max_val, got min_val=2\.0, max_val=1\.0")),
        modules={torch.nn.Hardtanh: activation_module_samples(((), {}), ((-2.0, 3.0), {}), ((), {"inplace": True}))},
    ),
    OpInfo(
        "relu6", torch.nn.functional.relu6,
        elementwise_samples(_away_from(0.0, 6.0), extremes=([-1000.0, 1000.0, 3.0], [NAN, 0.5, NAN])),
        relu6_numpy, elementwise_bench, errors=(list_input("relu6"),),
        modules={torch.nn.ReLU6: activation_module_samples(((), {}), ((), {"inplace": True}))},
    ),
    OpInfo(
        "softplus", torch.nn.functional.softplus,
        _with_options(elementwise_samples(extremes=_SMOOTH_EXTREMES), {"beta": 2.0}, {"beta": 0.5, "threshold": 5.0},
                      {"beta": -1.0}),
        softplus_numpy, elementwise_bench,
        errors=(list_input("softplus", torch_class=TypeError),
                ErrorInput("beta 0", lambda F, nn: F.softplus(torch.ones(3), 0), ValueError,
                           r"softplus: beta must not be 0", torch_accepts=True)),
        modules={torch.nn.Softplus: activation_module_samples(((), {}), ((2.0, 10.0), {}))},
    ),
    OpInfo(
        "elu", torch.nn.functional.elu,
        _with_options(elementwise_samples(away_from_zero, extremes=([-1000.0, 1000.0, -30.0], [NAN, -1.0, 2.0, NAN])),
                      {"alpha": 0.5}, {"alpha": -0.7}),
        elu_numpy, elementwise_bench,
        errors=(list_input("elu"),
                ErrorInput("in place with a negative alpha, differentiated",
                           lambda F, nn: F.elu(torch.ones(3, requires_grad=True) * 1, -0.5, True).sum().backward(),
                           RuntimeError, r"elu: in place with alpha=-0\.5 < 0 cannot be differentiated")),
        modules={torch.nn.ELU: activation_module_samples(((), {}), ((0.5,), {}), ((), {"inplace": True}))},
    ),
    OpInfo(
        "glu", torch.nn.functional.glu, _glu_samples, glu_numpy,
        lambda device: [("(1024, 1024), dim=-1", (bench_randn(device, 1024, 1024),), {})],
        errors=(list_input("glu", torch_class=AttributeError),
                ErrorInput("odd halved dimension", lambda F, nn: F.glu(torch.ones(3, 5)), RuntimeError,
                           r"glu: dimension -1 of input \(shape \(3, 5\)\) has size 5; .*must be even"),
                ErrorInput("0-d input", lambda F, nn: F.glu(torch.tensor(1.0)), RuntimeError, r"glu: input is 0-d"),
                ErrorInput("dim out of range", lambda F, nn: F.glu(torch.ones(4, 4), 5), IndexError,
                           r"glu: dim 5 is out of range for a tensor of 2 dimensions")),
        modules={torch.nn.GLU: tuple(ModuleSample(f"GLU({dim})", lambda gen: (randn(gen, 4, 6, 2),), (dim,))
                                     for dim in (-1, 1))},
    ),
)
