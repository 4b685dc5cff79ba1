"""Activations, elementwise: y = φ(z). Each states its local derivative once, as the rule
``g ∘ φ'(z)`` (see ``Elementwise``): backward is dL/dz = rule(g), forward mode dy = rule(dz).

Notation: z the pre-activation (the seed's l̂), y = φ(z), g = dL/dy; every tensor has the same
shape (*).
"""

import math

import torch

from handgrad.ops._checks import as_dtype, check_floating, check_tensor, computed_in
from handgrad.ops._function import Elementwise, HandFunction, apply, derivation
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


# -- logsigmoid ------------------------------------------------------------------------------------


class LogSigmoid(Elementwise):
    """y = log σ(z) = −log(1 + e⁻ᶻ)."""

    @staticmethod
    def forward(z):
        return torch.nn.functional.logsigmoid(z)

    @staticmethod
    def rule(g, z, y):
        return g * -torch.expm1(y)             # dL/dz = g (1 − σ(z)) = g (1 − e^y), from y alone


def logsigmoid(input):
    """y = log σ(x), elementwise, as ``torch.nn.functional.logsigmoid``."""
    check_tensor("logsigmoid", "input", input)
    return apply(LogSigmoid, input)


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
    u = √(2/π) (z + 0.044715 z³). Both derivatives need z, neither can be read from y alone; z is
    all it keeps, as the built-in does (y is the next layer's input, which that layer keeps, or, with
    ``convert(model, memory="lean")``, recomputes from this z)."""

    saves = ("x",)

    @staticmethod
    def forward(z, approximate="none"):
        return torch.nn.functional.gelu(z, approximate=approximate)

    @staticmethod
    def rule(g, z, y, approximate):
        # Half precision squares |z| > 256 to inf: compute in float32, as PyTorch's kernel does.
        dtype = computed_in(z.dtype)
        g32, z32 = as_dtype(g, dtype), as_dtype(z, dtype)
        if approximate == "none":
            grad = gelu_backward(g32, z32)
        else:
            grad = gelu_tanh_backward(g32, z32)
        return as_dtype(grad, z.dtype)


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
    """The same in two buffers, each written in place (the reference makes eight)."""
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


# -- silu ------------------------------------------------------------------------------------------


class SiLU(Elementwise):
    """y = z σ(z) (the swish); in place, z is overwritten and its copy ``original`` kept."""

    saves = ("x",)
    inplace = True
    original = True

    @staticmethod
    def forward(z, inplace=False, original=None):
        return torch.nn.functional.silu(z, inplace=inplace)

    @staticmethod
    def rule(g, z, y, inplace):
        return silu_backward(g, z)


def silu_backward(g, z):
    """dL/dz = g (σ + z σ (1 − σ)) = g σ (1 + z (1 − σ)), σ = σ(z): the product rule on z σ(z) and
    σ' = σ (1 − σ). σ is handgrad's ``Sigmoid``, so that double backward stays hand-derived."""
    s = apply(Sigmoid, z)
    return g * s * (1 + z * (1 - s))


def _with_original(input, inplace):
    """What an in-place op whose derivative needs x passes beside it: x's values before forward
    overwrites them (None out of place)."""
    return input.detach().clone() if inplace else None


def silu(input, inplace=False):
    """y = x σ(x), elementwise, as ``torch.nn.functional.silu``."""
    check_floating("silu", "input", input)
    return apply(SiLU, input, inplace, _with_original(input, inplace))


# -- mish ------------------------------------------------------------------------------------------


class Mish(Elementwise):
    """y = z tanh(softplus(z)), softplus(z) = log(1 + eᶻ)."""

    saves = ("x",)
    inplace = True
    original = True

    @staticmethod
    def forward(z, inplace=False, original=None):
        return torch.nn.functional.mish(z, inplace=inplace)

    @staticmethod
    def rule(g, z, y, inplace):
        return mish_backward(g, z)


def mish_backward(g, z):
    """dL/dz = g (t + z (1 − t²) σ(z)), t = tanh(softplus(z)): the product rule, tanh' = 1 − tanh²
    and softplus' = σ. softplus(z) = log(eᶻ + e⁰) (``logaddexp``, exact for large |z|); tanh and σ
    are handgrad's, so that double backward stays hand-derived."""
    t = apply(Tanh, torch.logaddexp(z, torch.zeros_like(z)))             # tanh(softplus(z))
    return g * (t + z * (1 - t * t) * apply(Sigmoid, z))


def mish(input, inplace=False):
    """y = x tanh(softplus(x)), elementwise, as ``torch.nn.functional.mish``."""
    check_floating("mish", "input", input)
    return apply(Mish, input, inplace, _with_original(input, inplace))


# -- hardswish, hardsigmoid -----------------------------------------------------------------------


class Hardswish(Elementwise):
    """y = z · relu6(z + 3) / 6: 0 below −3, z above 3, z (z + 3) / 6 between."""

    saves = ("x",)
    inplace = True
    original = True

    @staticmethod
    def forward(z, inplace=False, original=None):
        return torch.nn.functional.hardswish(z, inplace=inplace)

    @staticmethod
    def rule(g, z, y, inplace):
        return hardswish_backward(g, z)


def hardswish_backward(g, z):
    """dL/dz = g · (0 for z ≤ −3; (2z + 3) / 6 = z/3 + 1/2 for −3 < z < 3; 1 for z ≥ 3), the pieces
    joined as PyTorch joins them (a NaN passes g). Not readable from y: y is not monotonic on [−3, 0]."""
    middle = torch.where(z < 3, z / 3 + 0.5, 1.0)
    return g * torch.where(z <= -3, 0.0, middle)


def hardswish(input, inplace=False):
    """y = x · relu6(x + 3) / 6, elementwise, as ``torch.nn.functional.hardswish``."""
    check_floating("hardswish", "input", input)
    return apply(Hardswish, input, inplace, _with_original(input, inplace))


class Hardsigmoid(Elementwise):
    """y = relu6(z + 3) / 6 = clamp(z / 6 + 1/2, 0, 1)."""

    inplace = True

    @staticmethod
    def forward(z, inplace=False):
        return torch.nn.functional.hardsigmoid(z, inplace=inplace)

    @staticmethod
    def rule(g, z, y, inplace):
        return hardsigmoid_backward(g, y)


def hardsigmoid_backward(g, y):
    """dL/dz = g / 6 where −3 < z < 3, that is where 0 < y < 1 (y clamps to 0 and 1 outside), else 0."""
    return g * ((y > 0) & (y < 1)) / 6


def hardsigmoid(input, inplace=False):
    """y = relu6(x + 3) / 6, elementwise, as ``torch.nn.functional.hardsigmoid``."""
    check_floating("hardsigmoid", "input", input)
    return apply(Hardsigmoid, input, inplace)


# -- hardtanh, relu6 -------------------------------------------------------------------------------


class Hardtanh(Elementwise):
    """y = clamp(z, min_val, max_val)."""

    inplace = True

    @staticmethod
    def forward(z, min_val=-1.0, max_val=1.0, inplace=False):
        return torch.nn.functional.hardtanh(z, min_val, max_val, inplace)

    @staticmethod
    def rule(g, z, y, min_val, max_val, inplace):
        return hardtanh_backward(g, y, min_val, max_val)


def hardtanh_backward(g, y, min_val, max_val):
    """dL/dz = g where min < z < max, that is where y is not clamped to a bound, else 0 (a NaN
    passes g, as in PyTorch)."""
    return g * ~((y <= min_val) | (y >= max_val))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """y = clamp(x, min_val, max_val), elementwise, as ``torch.nn.functional.hardtanh``."""
    check_tensor("hardtanh", "input", input)
    for name, value in (("min_val", min_val), ("max_val", max_val)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            raise TypeError(f"hardtanh: {name} must be a number, got {value!r}")
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val cannot be greater than max_val, got min_val={min_val}, max_val={max_val}")
    return apply(Hardtanh, input, float(min_val), float(max_val), inplace)


def relu6(input, inplace=False):
    """y = min(max(x, 0), 6), elementwise, as ``torch.nn.functional.relu6``: ``hardtanh(x, 0, 6)``."""
    check_tensor("relu6", "input", input)
    return apply(Hardtanh, input, 0.0, 6.0, inplace)


# -- softplus --------------------------------------------------------------------------------------


class Softplus(Elementwise):
    """y = log(1 + e^(βz)) / β, and y = z where βz > threshold (there the two agree to ~e^(−threshold))."""

    saves = ("x",)

    @staticmethod
    def forward(z, beta=1.0, threshold=20.0):
        return torch.nn.functional.softplus(z, beta, threshold)

    @staticmethod
    def rule(g, z, y, beta, threshold):
        return softplus_backward(g, z, beta, threshold)


def softplus_backward(g, z, beta, threshold):
    """dL/dz = g σ(βz) (d/dz log(1 + e^(βz)) / β = e^(βz) / (1 + e^(βz))), and g where βz > threshold,
    where y = z. σ is handgrad's ``Sigmoid``."""
    return g * torch.where(z * beta > threshold, 1.0, apply(Sigmoid, z * beta))


def softplus(input, beta=1, threshold=20):
    """y = log(1 + e^(βx)) / β, linear above the threshold, elementwise, as
    ``torch.nn.functional.softplus``."""
    check_floating("softplus", "input", input)
    for name, value in (("beta", beta), ("threshold", threshold)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            raise TypeError(f"softplus: {name} must be a number, got {value!r}")
    if beta == 0:
        raise ValueError("softplus: beta must not be 0 (y = log(1 + e^(βx)) / β)")
    return apply(Softplus, input, float(beta), float(threshold))


# -- elu -------------------------------------------------------------------------------------------


class ELU(Elementwise):
    """y = z for z > 0, α (eᶻ − 1) otherwise; in place, z is overwritten."""

    inplace = True
    # φ' depends on the sign of z. Out of place, keep z. In place z is gone, but for α ≥ 0 the sign
    # of y is the sign of z, and α eᶻ = y + α (PyTorch refuses in place with α < 0 for that reason).
    saves = staticmethod(lambda alpha, inplace: ("y",) if inplace else ("x",))

    @staticmethod
    def forward(z, alpha=1.0, inplace=False):
        return torch.nn.functional.elu(z, alpha, inplace)

    @staticmethod
    def rule(g, z, y, alpha, inplace):
        return elu_backward(g, z, y, alpha)


def elu_backward(g, z, y, alpha):
    """dL/dz = g α eᶻ for z ≤ 0, g otherwise (a NaN passes g, as in PyTorch); α eᶻ = y + α, which is
    what is read when only y is kept. eᶻ is taken of min(z, 0): the branch not taken must stay finite,
    or double backward would meet 0 · ∞."""
    if z is not None:
        return g * torch.where(z <= 0, alpha * torch.exp(z.clamp(max=0)), 1.0)
    return g * torch.where(y <= 0, y + alpha, 1.0)


def elu(input, alpha=1.0, inplace=False):
    """y = x for x > 0, α (eˣ − 1) otherwise, elementwise, as ``torch.nn.functional.elu``."""
    check_floating("elu", "input", input)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or math.isnan(alpha):
        raise TypeError(f"elu: alpha must be a number, got {alpha!r}")
    if inplace and alpha < 0 and input.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"elu: in place with alpha={alpha} < 0 cannot be differentiated (the input's sign is "
                           f"lost); use inplace=False")
    return apply(ELU, input, float(alpha), inplace)


# -- glu -------------------------------------------------------------------------------------------


class GLU(HandFunction):
    """y = a ∘ σ(b), a and b the two halves of x along ``dim``: the gated linear unit."""

    @staticmethod
    def forward(x, dim):
        return torch.nn.functional.glu(x, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return glu_backward(g, x, ctx.dim), None

    @staticmethod
    def jvp(ctx, dx, _):
        """Forward mode: dy = da σ(b) + a σ(b) (1 − σ(b)) db."""
        (x,) = ctx.saved_tensors
        a, b = x.chunk(2, ctx.dim)
        da, db = dx.chunk(2, ctx.dim)
        s = apply(Sigmoid, b)
        return da * s + a * s * (1 - s) * db


def glu_backward(g, x, dim):
    """dL/da = g σ(b), dL/db = g a σ(b) (1 − σ(b)), put side by side as x's halves: a moves y through
    the product, b through σ (σ' = σ (1 − σ))."""
    a, b = x.chunk(2, dim)
    s = apply(Sigmoid, b)
    return torch.cat([g * s, g * a * s * (1 - s)], dim)


def glu(input, dim=-1):
    """y = a ∘ σ(b), a and b the first and second half of input along ``dim``, as
    ``torch.nn.functional.glu``."""
    check_floating("glu", "input", input)
    if input.dim() == 0:
        raise RuntimeError("glu: input is 0-d; glu halves a dimension, and a scalar has none")
    if not isinstance(dim, int) or isinstance(dim, bool) or not -input.dim() <= dim < input.dim():
        raise IndexError(f"glu: dim {dim!r} is out of range for a tensor of {input.dim()} dimensions "
                         f"(shape {tuple(input.shape)})")
    if input.shape[dim] % 2:
        raise RuntimeError(f"glu: dimension {dim} of input (shape {tuple(input.shape)}) has size {input.shape[dim]}; "
                           f"glu halves it into a and b, so it must be even")
    return apply(GLU, input, dim % input.dim())


# -- registration ----------------------------------------------------------------------------------

register(Op(
    "sigmoid", sigmoid, (Sigmoid,),
    Derivative("y = σ(z) = 1 / (1 + e⁻ᶻ)", "dL/dz = g · y (1 − y)", "(*)"),
    modules={torch.nn.Sigmoid: Module(lambda self, input: sigmoid(input))},
    intercepts={torch.sigmoid: None, torch.Tensor.sigmoid: None},
))

register(Op(
    "relu", relu, (ReLU,),
    Derivative("y = max(z, 0)", "dL/dz = g · 1[z > 0]", "(*)"),
    modules={torch.nn.ReLU: Module(lambda self, input: relu(input, inplace=self.inplace))},
    intercepts={torch.relu: None, torch.Tensor.relu: None, **dict.fromkeys(
        (torch.nn.functional.relu_, torch.relu_, torch.Tensor.relu_), lambda input: relu(input, inplace=True))},
))

register(Op(
    "tanh", tanh, (Tanh,),
    Derivative("y = tanh(z)", "dL/dz = g · (1 − y²)", "(*)"),
    modules={torch.nn.Tanh: Module(lambda self, input: tanh(input))},
    intercepts={torch.tanh: None, torch.Tensor.tanh: None},
))

register(Op(
    "logsigmoid", logsigmoid, (LogSigmoid,),
    Derivative("y = log σ(z)", "dL/dz = g · (1 − σ(z)) = g · (1 − eʸ)", "(*)"),
    modules={torch.nn.LogSigmoid: Module(lambda self, input: logsigmoid(input))},
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

register(Op(
    "silu", silu, (SiLU,),
    Derivative("y = z σ(z)", "dL/dz = g · σ (1 + z (1 − σ)), σ = σ(z)", "(*)"),
    modules={torch.nn.SiLU: Module(lambda self, input: silu(input, self.inplace))},
))

register(Op(
    "mish", mish, (Mish,),
    Derivative("y = z tanh(softplus(z))", "dL/dz = g · (t + z (1 − t²) σ(z)), t = tanh(softplus(z))", "(*)"),
    modules={torch.nn.Mish: Module(lambda self, input: mish(input, self.inplace))},
))

register(Op(
    "hardswish", hardswish, (Hardswish,),
    Derivative("y = z · relu6(z + 3) / 6", "dL/dz = g · (0 if z ≤ −3, z/3 + 1/2 if z < 3, else 1)", "(*)"),
    modules={torch.nn.Hardswish: Module(lambda self, input: hardswish(input, self.inplace))},
))

register(Op(
    "hardsigmoid", hardsigmoid, (Hardsigmoid,),
    Derivative("y = relu6(z + 3) / 6", "dL/dz = g / 6 · 1[0 < y < 1]", "(*)"),
    modules={torch.nn.Hardsigmoid: Module(lambda self, input: hardsigmoid(input, self.inplace))},
))

register(Op(
    "hardtanh", hardtanh, (Hardtanh,),
    Derivative("y = clamp(z, min, max)", "dL/dz = g · 1[min < y < max]", "(*)"),
    modules={torch.nn.Hardtanh: Module(lambda self, input: hardtanh(input, self.min_val, self.max_val, self.inplace))},
))

register(Op(
    "relu6", relu6, (Hardtanh,),
    Derivative("y = clamp(z, 0, 6)", "dL/dz = g · 1[0 < y < 6]", "(*)"),
    modules={torch.nn.ReLU6: Module(lambda self, input: relu6(input, self.inplace))},
))

register(Op(
    "softplus", softplus, (Softplus,),
    Derivative("y = log(1 + e^(βz)) / β (y = z where βz > threshold)", "dL/dz = g · σ(βz) (g where βz > threshold)",
               "(*)"),
    modules={torch.nn.Softplus: Module(lambda self, input: softplus(input, self.beta, self.threshold))},
))

register(Op(
    "elu", elu, (ELU,),
    Derivative("y = z if z > 0 else α (eᶻ − 1)", "dL/dz = g · (1 if z > 0 else α eᶻ = y + α)", "(*)"),
    modules={torch.nn.ELU: Module(lambda self, input: elu(input, self.alpha, self.inplace))},
))

register(Op(
    "glu", glu, (GLU,),
    Derivative("y = a ∘ σ(b), (a, b) the halves of x along dim", "dL/da = g σ(b), dL/db = g a σ(b) (1 − σ(b))",
               "x (*, 2n, *), y and g (*, n, *)"),
    modules={torch.nn.GLU: Module(lambda self, input: glu(input, self.dim))},
))
