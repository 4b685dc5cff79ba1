"""Activations, elementwise: y = φ(z). Each states its local derivative once, as the rule
``g ∘ φ'(z)`` (see ``Elementwise``): backward is dL/dz = rule(g), forward mode dy = rule(dz).

Notation: z the pre-activation (the seed's l̂), y = φ(z), g = dL/dy; every tensor has the same
shape (*).
"""

import math

import numpy as np
import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import Elementwise, apply
from handgrad.ops._registry import Derivative, Module, ModuleSample, Op, register
from handgrad.testing import ErrorInput, Sample, randn

# -- sigmoid ---------------------------------------------------------------------------------------


class Sigmoid(Elementwise):
    """y = σ(z) = 1 / (1 + e⁻ᶻ)."""

    @staticmethod
    def forward(z):
        return torch.sigmoid(z)

    @staticmethod
    def rule(g, z, y):
        return sigmoid_rule(g, y)


def sigmoid_rule(g, y):
    """dL/dz = g σ'(z) = g e⁻ᶻ / (1 + e⁻ᶻ)² = g σ(z)(1 − σ(z)) = g y (1 − y): σ' needs only y."""
    gy = g * y
    if torch.is_grad_enabled():                              # this backward is being differentiated
        return torch.addcmul(gy, gy, y, value=-1)
    return gy.addcmul_(gy, y, value=-1)                      # g y − g y y, one pass fewer


def sigmoid(input):
    """y = σ(x) = 1 / (1 + e⁻ˣ), elementwise, as ``torch.nn.functional.sigmoid``."""
    check_tensor("sigmoid", "input", input)
    return apply(Sigmoid, input)


def sigmoid_numpy(z):
    e = np.exp(-np.abs(z))                                   # no overflow for large |z|
    y = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return y, lambda g: (g * y * (1 - y),)


# -- relu ------------------------------------------------------------------------------------------


class ReLU(Elementwise):
    """y = max(z, 0); with ``inplace=True`` z itself is overwritten and returned."""

    inplace = True

    @staticmethod
    def forward(z, inplace=False):
        return z.relu_() if inplace else torch.relu(z)

    @staticmethod
    def rule(g, z, y, inplace):
        return relu_rule(g, y)


def relu_rule(g, y):
    """dL/dz = g · 1[z > 0], read from y = max(z, 0)."""
    if torch.is_grad_enabled():                              # this backward is being differentiated
        return g * relu_mask(y)
    return relu_mask(y).mul_(g)


def relu_mask(y):
    """1[z > 0] from y = max(z, 0), as a float tensor: y ≥ 0, so sign(y) is 1 exactly where z > 0.
    A NaN input gives a NaN output, counted as on so that its gradient passes, as in PyTorch.

    Plain float arithmetic on purpose: on the CPU the boolean-mask ops (masked_fill, where) run
    without vector instructions and cost ~25× a multiplication (2.2 ms against 0.07 ms on a
    (1024, 512) tensor, one thread, on the README's machine).
    The one difference from PyTorch: an infinite or NaN g at a unit that is off gives NaN, not 0.
    """
    return y.nan_to_num(nan=1.0).sign_()


def relu(input, inplace=False):
    """y = max(x, 0), elementwise, as ``torch.nn.functional.relu``."""
    check_tensor("relu", "input", input)
    if input.dtype == torch.bool:
        raise NotImplementedError("relu: input has dtype torch.bool; relu needs a numeric tensor")
    return apply(ReLU, input, inplace)


def relu_numpy(z, inplace=False):
    y = np.maximum(z, 0)
    return y, lambda g: (np.where((y > 0) | np.isnan(y), g, 0.0),)     # a NaN unit passes g, as in torch


# -- tanh ------------------------------------------------------------------------------------------


class Tanh(Elementwise):
    """y = tanh(z) = (eᶻ − e⁻ᶻ) / (eᶻ + e⁻ᶻ)."""

    @staticmethod
    def forward(z):
        return torch.tanh(z)

    @staticmethod
    def rule(g, z, y):
        return torch.addcmul(g, g * y, y, value=-1)          # dL/dz = g (1 − tanh² z) = g − g y y


def tanh(input):
    """y = tanh(x), elementwise, as ``torch.nn.functional.tanh``."""
    check_tensor("tanh", "input", input)
    return apply(Tanh, input)


def tanh_numpy(z):
    y = np.tanh(z)
    return y, lambda g: (g * (1 - y * y),)


# -- leaky_relu ------------------------------------------------------------------------------------


class LeakyReLU(Elementwise):
    """y = z for z > 0, a z otherwise (a = negative_slope); in place, z is overwritten."""

    inplace = True
    # φ' depends on the sign of z. Out of place, keep z. In place z is gone, but for a > 0 the
    # sign of y is the sign of z (PyTorch refuses in-place with a ≤ 0 for the same reason).
    saves = staticmethod(lambda negative_slope, inplace: ("y",) if inplace else ("x",))

    @staticmethod
    def forward(z, negative_slope=0.01, inplace=False):
        return torch.nn.functional.leaky_relu(z, negative_slope, inplace)

    @staticmethod
    def rule(g, z, y, negative_slope, inplace):
        positive = (z if z is not None else y) > 0
        return torch.where(positive, g, g * negative_slope)      # dL/dz = g · (1 if z > 0 else a)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """y = max(0, x) + a min(0, x), elementwise, as ``torch.nn.functional.leaky_relu``."""
    check_tensor("leaky_relu", "input", input)
    if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool) or math.isnan(negative_slope):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got {negative_slope!r}")
    if inplace and negative_slope <= 0 and input.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(
            f"leaky_relu: in place with negative_slope={negative_slope} ≤ 0 cannot be differentiated "
            f"(the input's sign is lost); use inplace=False"
        )
    return apply(LeakyReLU, input, float(negative_slope), inplace)


def leaky_relu_numpy(z, negative_slope=0.01, inplace=False):
    y = np.where(z > 0, z, negative_slope * z)
    return y, lambda g: (np.where(z > 0, g, negative_slope * g),)


# -- samples and registration ----------------------------------------------------------------------


def away_from_zero(t):
    """Keep samples clear of a kink (ReLU at 0), where finite differences are meaningless."""
    with torch.no_grad():
        return (t.sign() * (t.abs() + 0.1)).requires_grad_(t.requires_grad)


NAN, INF = float("nan"), float("inf")


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
    return [("(1024, 512)", (torch.randn(1024, 512, device=device, requires_grad=True),), kwargs)]


def list_input(op, torch_class=None):
    """Every op refuses a Python list in place of a tensor."""
    return ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, -2.0]), TypeError,
                      rf"{op}: input must be a torch\.Tensor, got list", torch_class=torch_class)


register(Op(
    "sigmoid", sigmoid, torch.sigmoid,
    elementwise_samples(extremes=([-1000.0, 1000.0, -1e4, 1e4, 0.0], [NAN, -1.0, 2.0, NAN], [INF, -INF, 1.0])),
    sigmoid_numpy, (Sigmoid,),
    Derivative("y = σ(z) = 1 / (1 + e⁻ᶻ)", "dL/dz = g · y (1 − y)", "(*)"),
    modules={torch.nn.Sigmoid: Module(lambda self, input: sigmoid(input), activation_module_samples())},
    bench=elementwise_bench,
    # torch's AttributeError comes from calling list.sigmoid: an accident, not an API.
    errors=(list_input("sigmoid", torch_class=AttributeError),),
))

register(Op(
    "relu", relu, torch.nn.functional.relu,
    elementwise_samples(away_from_zero, extremes=([NAN, -1.0, 2.0, NAN], [INF, -INF, 0.0, -0.0, 1.0])),
    relu_numpy, (ReLU,),
    Derivative("y = max(z, 0)", "dL/dz = g · 1[z > 0]", "(*)"),
    modules={torch.nn.ReLU: Module(lambda self, input: relu(input, inplace=self.inplace),
                                   activation_module_samples(((), {}), ((), {"inplace": True})))},
    bench=elementwise_bench,
    errors=(
        list_input("relu"),
        ErrorInput("bool input", lambda F, nn: F.relu(torch.tensor([True, False])), NotImplementedError,
                   r"relu: input has dtype torch\.bool"),
        ErrorInput("nn.ReLU bool input", lambda F, nn: nn.ReLU()(torch.tensor([True, False])), NotImplementedError,
                   r"relu: input has dtype torch\.bool"),
    ),
))

register(Op(
    "tanh", tanh, torch.nn.functional.tanh,
    elementwise_samples(extremes=([-1000.0, 1000.0, 0.0], [NAN, 1.0], [INF, -INF])), tanh_numpy, (Tanh,),
    Derivative("y = tanh(z)", "dL/dz = g · (1 − y²)", "(*)"),
    modules={torch.nn.Tanh: Module(lambda self, input: tanh(input), activation_module_samples())},
    bench=elementwise_bench,
    errors=(list_input("tanh", torch_class=AttributeError),),
))


def _leaky_relu_samples(gen):
    samples = elementwise_samples(away_from_zero)(gen)
    for slope in (0.2, -0.5, 1.5):
        samples.append(Sample((away_from_zero(randn(gen, 6, 7)), slope), name=f"(N, D), negative_slope={slope}"))
    return samples


register(Op(
    "leaky_relu", leaky_relu, torch.nn.functional.leaky_relu, _leaky_relu_samples, leaky_relu_numpy, (LeakyReLU,),
    Derivative("y = z if z > 0 else a z", "dL/dz = g · (1 if z > 0 else a)", "(*)"),
    modules={torch.nn.LeakyReLU: Module(
        lambda self, input: leaky_relu(input, self.negative_slope, self.inplace),
        activation_module_samples(((), {}), ((0.2,), {}), ((), {"negative_slope": 0.3, "inplace": True})))},
    bench=elementwise_bench,
    errors=(
        list_input("leaky_relu"),
        ErrorInput("negative_slope a string", lambda F, nn: F.leaky_relu(torch.ones(3), "0.1"), TypeError,
                   r"leaky_relu: negative_slope must be a number, got '0\.1'"),
        ErrorInput(
            "in place with a negative slope, differentiated",
            lambda F, nn: F.leaky_relu(torch.ones(3, requires_grad=True) * 1, -0.5, inplace=True).sum().backward(),
            RuntimeError, r"in place with negative_slope=-0\.5 ≤ 0 cannot be differentiated"),
    ),
))
