"""Activations, elementwise: y = φ(z). Each states its local derivative once, as the rule
``g ∘ φ'(z)`` (see ``Elementwise``): backward is dL/dz = rule(g), forward mode dy = rule(dz).

Notation: z the pre-activation (the seed's l̂), y = φ(z), g = dL/dy; every tensor has the same
shape (*).
"""

import math

import torch

from handgrad.ops._checks import as_dtype, check_floating, check_tensor, computed_in
from handgrad.ops._function import Elementwise, apply, derivation
from handgrad.ops._registry import Derivative, Module, Op, register

# -- sigmoid ---------------------------------------------------------------------------------------


class Sigmoid(Elementwise):
    """y = σ(z) = 1 / (1 + e⁻ᶻ)."""

    @staticmethod
    def forward(z):
        return torch.sigmoid(z)

    @staticmethod
    def rule(g, z, y):
        return sigmoid_backward(g, y)


@derivation
def sigmoid_backward(g, y):
    """dL/dz = g σ'(z) = g e⁻ᶻ / (1 + e⁻ᶻ)² = g σ(z)(1 − σ(z)) = g y (1 − y): σ' needs only y."""
    return g * y * (1 - y)


@sigmoid_backward.faster
def _sigmoid_backward_in_place(g, y):
    """g y − (g y) y, in the one buffer g y. Forward + backward of sigmoid on (1024, 512) in 0.72× the
    reference's time, of the better network's chain with its loss at batch 64 in 0.95× (bench
    section 9)."""
    gy = g * y
    return gy.addcmul_(gy, y, value=-1)


def sigmoid(input):
    """y = σ(x) = 1 / (1 + e⁻ˣ), elementwise, as ``torch.nn.functional.sigmoid``."""
    check_tensor("sigmoid", "input", input)
    return apply(Sigmoid, input)


# -- relu ------------------------------------------------------------------------------------------


class ReLU(Elementwise):
    """y = max(z, 0); with ``inplace=True`` z itself is overwritten and returned."""

    inplace = True

    @staticmethod
    def forward(z, inplace=False):
        return z.relu_() if inplace else torch.relu(z)

    @staticmethod
    def rule(g, z, y, inplace):
        return relu_backward(g, y)


def relu_mask(y):
    """1[z > 0] from y = max(z, 0), as a float tensor: y ≥ 0, so sign(y) is 1 exactly where z > 0.
    A NaN input gives a NaN output, counted as on so that its gradient passes, as in PyTorch.

    Plain float arithmetic on purpose: on the CPU the boolean-mask ops (masked_fill, where) run
    without vector instructions and cost many times a multiplication (the benchmarks page).
    The one difference from PyTorch: an infinite or NaN g at a unit that is off gives NaN, not 0.
    """
    return y.nan_to_num(nan=1.0).sign_()


@derivation
def relu_backward(g, y):
    """dL/dz = g · 1[z > 0], read from y = max(z, 0)."""
    return g * relu_mask(y)


@relu_backward.faster
def _relu_backward_in_place(g, y):
    """The mask times g in the mask's own buffer. Forward + backward of relu on (1024, 512) in 0.91×
    the reference's time, of linear_relu in 0.98-1.00× (bench section 9)."""
    return relu_mask(y).mul_(g)


def relu(input, inplace=False):
    """y = max(x, 0), elementwise, as ``torch.nn.functional.relu``."""
    check_tensor("relu", "input", input)
    if input.dtype == torch.bool:
        raise NotImplementedError("relu: input has dtype torch.bool; relu needs a numeric tensor")
    return apply(ReLU, input, inplace)


# -- tanh ------------------------------------------------------------------------------------------


class Tanh(Elementwise):
    """y = tanh(z) = (eᶻ − e⁻ᶻ) / (eᶻ + e⁻ᶻ)."""

    @staticmethod
    def forward(z):
        return torch.tanh(z)

    @staticmethod
    def rule(g, z, y):
        return tanh_backward(g, y)


def tanh_backward(g, y):
    """dL/dz = g (1 − tanh² z) = g (1 − y²): like σ', tanh' needs only y."""
    return g * (1 - y * y)


def tanh(input):
    """y = tanh(x), elementwise, as ``torch.nn.functional.tanh``."""
    check_tensor("tanh", "input", input)
    return apply(Tanh, input)


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
        return leaky_relu_backward(g, z if z is not None else y, negative_slope)


def leaky_relu_backward(g, z, a):
    """dL/dz = g · (1 if z > 0 else a) = g (m + a (1 − m)), m = 1[z > 0] (0 for NaN), from z or from
    y = a z (same sign for a > 0). In float arithmetic rather than a boolean mask (see ``relu_mask``);
    the slope is a tensor of its own, so it is made in place."""
    m = z.sign().nan_to_num_(0.0).clamp_(min=0)                          # m = 1[z > 0]
    return g * m.mul_(1 - a).add_(a)                                     # g (m + a (1 − m))


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


# -- gelu ------------------------------------------------------------------------------------------

GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_HALF = math.sqrt(0.5)
_K = math.sqrt(2 / math.pi)                                  # √(2/π)
_C = 0.044715                                                 # the cubic term of u (tanh form)


class GELU(Elementwise):
    """y = z Φ(z), Φ the standard normal CDF; with approximate='tanh', y = ½ z (1 + tanh u),
    u = √(2/π) (z + 0.044715 z³). Both derivatives need z, neither can be read from y alone."""

    saves = ("x",)

    @staticmethod
    def forward(z, approximate="none"):
        return torch.nn.functional.gelu(z, approximate=approximate)

    @staticmethod
    def rule(g, z, y, approximate):
        # Half precision squares |z| > 256 to inf: compute in float32, as PyTorch's kernel does.
        backward = gelu_backward if approximate == "none" else gelu_tanh_backward
        dtype = computed_in(z.dtype)
        return as_dtype(backward(as_dtype(g, dtype), as_dtype(z, dtype)), z.dtype)


@derivation
def gelu_backward(g, z):
    """dL/dz = g (Φ(z) + z Φ'(z)), with Φ'(z) = e^(−z²/2) / √(2π) the normal density.

    From y = z Φ(z) by the product rule. With s = z / √2, Φ(z) = ½ (1 + erf s) and
    z Φ'(z) = ½ √(2/π) z e^(−s²), so dL/dz = ½ g a, a = 1 + erf s + √(2/π) z e^(−s²).
    """
    s = z * _SQRT_HALF                                       # z / √2
    return 0.5 * g * (1 + torch.erf(s) + _K * z * torch.exp(-s * s))


@gelu_backward.faster
def _gelu_backward_in_place(g, z):
    """The same in two buffers, s then a, each written in place. Forward + backward of gelu in 0.74×
    the reference's time on (1024, 512), 0.43× on (64, 128, 3072) (bench section 9)."""
    s = z * _SQRT_HALF
    e = torch.addcmul(s.new_zeros(()), s, s, value=-1).exp_()                # e^(−s²)
    a = s.erf_().add_(1).addcmul_(z, e, value=_K)                            # 1 + erf s + √(2/π) z e^(−s²)
    return a.mul_(g).mul_(0.5)                                               # ½ g a


@derivation
def gelu_tanh_backward(g, z):
    """dL/dz = g s (1 + z (1 − s) dv/dz), s = σ(v), v = 2u = 2√(2/π) z (1 + 0.044715 z²).

    ½ (1 + tanh u) = σ(2u), so y = z σ(v); the product rule and σ' = σ (1 − σ) give
    dy/dz = s + z s (1 − s) dv/dz, with dv/dz = 2√(2/π) (1 + 3 · 0.044715 z²).
    σ is handgrad's ``Sigmoid``, so that double backward stays hand-derived too.
    """
    z2 = z * z
    s = apply(Sigmoid, 2 * _K * z * (1 + _C * z2))                           # σ(v)
    dv = 2 * _K * (1 + 3 * _C * z2)                                          # dv/dz
    return g * s * (1 + z * (1 - s) * dv)


@gelu_tanh_backward.faster
def _gelu_tanh_backward_in_place(g, z):
    """The same in two buffers: z² becomes m, then dL/dz; s. Forward + backward of gelu (tanh) on
    (1024, 512) in 0.67× the reference's time (bench section 9)."""
    m = (z * z).mul_(2 * _K * _C).add_(2 * _K)               # m = 2√(2/π) (1 + 0.044715 z²), v = m z
    s = torch.mul(m, z).sigmoid_()                           # s = σ(v)
    dz = m.mul_(3).sub_(4 * _K).mul_(z)                      # z dv/dz = z (3m − 4√(2/π))
    dz.addcmul_(dz, s, value=-1).add_(1)                     # 1 + z (1 − s) dv/dz
    return dz.mul_(s).mul_(g)                                # g s (1 + z (1 − s) dv/dz)


def gelu(input, *, approximate="none"):
    """y = x Φ(x) (or its tanh approximation), elementwise, as ``torch.nn.functional.gelu``
    (whose ``approximate`` is keyword-only too)."""
    check_tensor("gelu", "input", input)
    if not isinstance(approximate, str):
        raise TypeError(f"gelu: approximate must be a str, 'none' or 'tanh', got {type(approximate).__name__}")
    if approximate not in GELU_APPROXIMATIONS:
        raise RuntimeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    check_floating("gelu", "input", input)
    return apply(GELU, input, approximate)


# -- registration ----------------------------------------------------------------------------------

register(Op(
    "sigmoid", sigmoid, (Sigmoid,),
    Derivative("y = σ(z) = 1 / (1 + e⁻ᶻ)", "dL/dz = g · y (1 − y)", "(*)"),
    modules={torch.nn.Sigmoid: Module(lambda self, input: sigmoid(input))},
))

register(Op(
    "relu", relu, (ReLU,),
    Derivative("y = max(z, 0)", "dL/dz = g · 1[z > 0]", "(*)"),
    modules={torch.nn.ReLU: Module(lambda self, input: relu(input, inplace=self.inplace))},
))

register(Op(
    "tanh", tanh, (Tanh,),
    Derivative("y = tanh(z)", "dL/dz = g · (1 − y²)", "(*)"),
    modules={torch.nn.Tanh: Module(lambda self, input: tanh(input))},
))

register(Op(
    "leaky_relu", leaky_relu, (LeakyReLU,),
    Derivative("y = z if z > 0 else a z", "dL/dz = g · (1 if z > 0 else a)", "(*)"),
    modules={torch.nn.LeakyReLU: Module(lambda self, input: leaky_relu(input, self.negative_slope, self.inplace))},
))

register(Op(
    "gelu", gelu, (GELU,),
    Derivative("y = z Φ(z); tanh: y = ½ z (1 + tanh u), u = √(2/π)(z + 0.044715 z³)",
               "dL/dz = g · (Φ(z) + z Φ'(z)); tanh: g · s (1 + z (1 − s) dv/dz), s = σ(v), v = 2u", "(*)"),
    modules={torch.nn.GELU: Module(lambda self, input: gelu(input, approximate=self.approximate))},
))
