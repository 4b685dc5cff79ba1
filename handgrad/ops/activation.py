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


def relu_rule_nan_rows(g, y):
    """``relu_rule`` for a g that is NaN across every row in which y holds a NaN, where a NaN unit's
    own factor changes nothing: elsewhere y ≥ 0 is a number and sign(y) is exactly 1[z > 0], so
    the mask takes one pass instead of ``relu_mask``'s two.

    The hidden layers of ``LinearChainCrossEntropy`` are such a case. A NaN in row n of lⁱ makes
    the whole row n of every layer above it NaN, the logits included (each unit sums NaN · w, and
    NaN · w is NaN for every w, 0 too). Then dL/dlᴸ = r (p − onehot) is NaN across row n, and so
    is each g below it (g ← g Wⁱ), as in PyTorch's own backward of the same network.
    """
    if torch.is_grad_enabled():                              # this backward is being differentiated
        return relu_rule(g, y)
    return y.sign().mul_(g)


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
        """dL/dz = g · (1 if z > 0 else a) = g m + a (g − g m), m = 1[z > 0]: each term exactly g or
        a g, in float arithmetic rather than a boolean mask (see ``relu_mask``: 5.5 → 1 ms)."""
        m = (z if z is not None else y).sign().nan_to_num_(0.0).clamp_(min=0)     # 1[z > 0]; NaN: 0
        gm = g * m if torch.is_grad_enabled() else m.mul_(g)                      # g where z > 0
        return (g - gm).mul_(negative_slope).add_(gm)


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
        low = z.dtype in (torch.float16, torch.bfloat16)
        zf, gf = (z.float(), g.float()) if low else (z, g)
        rule = gelu_rule if approximate == "none" else gelu_tanh_rule
        dz = rule(gf, zf)
        return dz.to(z.dtype) if low else dz


def gelu_rule(g, z):
    """dL/dz = g (Φ(z) + z Φ'(z)), with Φ'(z) = e^(−z²/2) / √(2π) the normal density.

    From y = z Φ(z) by the product rule. With s = z / √2, Φ(z) = ½ (1 + erf s) and
    z Φ'(z) = ½ √(2/π) z e^(−s²), so dL/dz = ½ g a, a = 1 + erf s + √(2/π) z e^(−s²).
    """
    s = z * _SQRT_HALF                                       # z / √2
    if torch.is_grad_enabled():                              # this backward is being differentiated
        return 0.5 * g * (1 + torch.erf(s) + _K * z * torch.exp(-s * s))
    # The same in place, in two buffers: a new (64, 128, 3072) tensor costs more than a pass over one.
    e = torch.addcmul(s.new_zeros(()), s, s, value=-1).exp_()                # e^(−s²)
    a = s.erf_().add_(1).addcmul_(z, e, value=_K)                            # 1 + erf s + √(2/π) z e^(−s²)
    return a.mul_(g).mul_(0.5)                                               # ½ g a


def gelu_tanh_rule(g, z):
    """dL/dz = g s (1 + z (1 − s) dv/dz), s = σ(v), v = 2u = 2√(2/π) z (1 + 0.044715 z²).

    ½ (1 + tanh u) = σ(2u), so y = z σ(v); the product rule and σ' = σ (1 − σ) give
    dy/dz = s + z s (1 − s) dv/dz, with dv/dz = 2√(2/π) (1 + 3 · 0.044715 z²).
    σ is handgrad's ``Sigmoid``, so that double backward stays hand-derived too.
    """
    z2 = z * z
    if torch.is_grad_enabled():                              # this backward is being differentiated
        s = apply(Sigmoid, 2 * _K * z * (1 + _C * z2))
        dv = 2 * _K * (1 + 3 * _C * z2)
        return g * s * (1 + z * (1 - s) * dv)
    # The same in place (see gelu_rule), in two buffers: z2 becomes m, then dL/dz; s.
    m = z2.mul_(2 * _K * _C).add_(2 * _K)                    # m = 2√(2/π) (1 + 0.044715 z²), v = m z
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
    if not input.is_floating_point():
        raise NotImplementedError(f"gelu: input must be a floating-point tensor, got {input.dtype}")
    return apply(GELU, input, approximate)


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


def _gelu_samples(gen):
    """Every input form with the default, then with approximate='tanh', and 'none' spelt out."""
    extremes = ([-1000.0, 1000.0, -1e4, 1e4, 0.0], [NAN, -1.0, 2.0, NAN], [INF, -INF, 1.0])
    samples = elementwise_samples(extremes=extremes)(gen)
    for sample in samples:
        if sample.name == f"x = {[INF, -INF, 1.0]}":
            # The forward is PyTorch's kernel, and its float32 and bfloat16 CPU GELU runs through
            # oneDNN, which on AVX-512 CPUs gives NaN at +inf (found on 2026-11-27; limited to AVX2,
            # or in float64, it gives inf). So ±inf is compared in float64, where the kernel is exact.
            sample.dtypes = (torch.float64,)
    for sample in elementwise_samples(extremes=extremes, approximate="tanh")(gen):
        sample.name += ", approximate='tanh'"
        samples.append(sample)
    samples.append(Sample((randn(gen, 6, 7),), {"approximate": "none"}, name="(N, D), approximate='none'"))
    return samples


def _gelu_bench(device):
    def x(*shape):
        return torch.randn(*shape, device=device, requires_grad=True)
    return [("(1024, 512)", (x(1024, 512),), {}), ("(64, 128, 3072)", (x(64, 128, 3072),), {}),
            ("(1024, 512), tanh", (x(1024, 512),), {"approximate": "tanh"})]


register(Op(
    "gelu", gelu, torch.nn.functional.gelu, _gelu_samples, gelu_numpy, (GELU,),
    Derivative("y = z Φ(z); tanh: y = ½ z (1 + tanh u), u = √(2/π)(z + 0.044715 z³)",
               "dL/dz = g · (Φ(z) + z Φ'(z)); tanh: g · s (1 + z (1 − s) dv/dz), s = σ(v), v = 2u", "(*)"),
    modules={torch.nn.GELU: Module(
        lambda self, input: gelu(input, approximate=self.approximate),
        activation_module_samples(((), {}), (("tanh",), {}), ((), {"approximate": "none"})))},
    bench=_gelu_bench,
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
))
