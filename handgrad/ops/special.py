"""The special and trigonometric functions, by hand: log1p, expm1, erf, erfc, logit, xlogy, sin, cos,
tan, atan2 and hypot.

Each is one ``Pointwise`` class, its local derivative stated once per input as
``rule(g, *inputs, y) = g ∘ ∂y/∂input`` (``handgrad.ops._function.Pointwise``), reading x or y,
whichever is cheaper: tan' = 1 + tan² = 1 + y², expm1' = eˣ = y + 1.
"""

import math

import torch

from handgrad.ops._checks import FLOAT32_ON_CUDA, autocast, check_tensor
from handgrad.ops._function import Pointwise, apply
from handgrad.ops._registry import Derivative, Op, register
from handgrad.ops.elementwise import NUMBER, check_operands, check_tensor_operands

Tensor = torch.Tensor
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


# -- one input ------------------------------------------------------------------------------------------


class Log1p(Pointwise):
    """y = log(1 + x)."""

    saves = (0,)

    @staticmethod
    def forward(x):
        return torch.log1p(x)

    rules = (lambda g, x, y: g / (1 + x),)                          # dL/dx = g / (1 + x)


class Expm1(Pointwise):
    """y = eˣ − 1."""

    saves = ("y",)

    @staticmethod
    def forward(x):
        return torch.expm1(x)

    rules = (lambda g, x, y: g * (y + 1),)                          # dL/dx = g eˣ = g (y + 1)


class Erf(Pointwise):
    """y = erf x = (2/√π) ∫₀ˣ e^(−t²) dt."""

    saves = (0,)

    @staticmethod
    def forward(x):
        return torch.erf(x)

    rules = (lambda g, x, y: g * _TWO_OVER_SQRT_PI * torch.exp(-x * x),)       # dL/dx = g (2/√π) e^(−x²)


class Erfc(Pointwise):
    """y = erfc x = 1 − erf x."""

    saves = (0,)

    @staticmethod
    def forward(x):
        return torch.erfc(x)

    rules = (lambda g, x, y: -g * _TWO_OVER_SQRT_PI * torch.exp(-x * x),)      # dL/dx = −g (2/√π) e^(−x²)


def _logit_rule(g, x, eps, y):
    """dL/dx = g / (x (1 − x)); with eps, 0 outside [eps, 1 − eps], where the input was clamped; without,
    NaN outside [0, 1], where the logit is not defined (torch's values there)."""
    slope = g / (x * (1 - x))
    if eps is None:
        return torch.where((x >= 0) & (x <= 1), slope, math.nan)
    return torch.where((x >= eps) & (x <= 1 - eps), slope, 0.0)


class Logit(Pointwise):
    """y = log(x / (1 − x)), x clamped to [eps, 1 − eps] when eps is given."""

    saves = (0,)

    @staticmethod
    def forward(x, eps):
        return torch.logit(x, eps)

    rules = (_logit_rule, None)


class Sin(Pointwise):
    """y = sin x."""

    saves = (0,)

    @staticmethod
    def forward(x):
        return torch.sin(x)

    rules = (lambda g, x, y: g * torch.cos(x),)                     # dL/dx = g cos x


class Cos(Pointwise):
    """y = cos x."""

    saves = (0,)

    @staticmethod
    def forward(x):
        return torch.cos(x)

    rules = (lambda g, x, y: -g * torch.sin(x),)                    # dL/dx = −g sin x


class Tan(Pointwise):
    """y = tan x."""

    saves = ("y",)

    @staticmethod
    def forward(x):
        return torch.tan(x)

    rules = (lambda g, x, y: g * (1 + y * y),)                      # dL/dx = g / cos² x = g (1 + y²)


# -- two inputs, broadcast --------------------------------------------------------------------------------


def _xlogy_a(g, a, b, y):
    """dL/da = g log b, as xlogy(g, b) (0 where g = 0, whatever b); 0 where a = 0 and b ≤ 0, where
    log b is not a number (torch's convention, as y = 0 there)."""
    b = b if isinstance(b, Tensor) else torch.tensor(b, dtype=g.dtype, device=g.device)
    return torch.xlogy(g, b).masked_fill((a == 0) & (b <= 0), 0.0)


class Xlogy(Pointwise):
    """y = a log b, 0 where a = 0 (even where b = 0); a or b may be a number."""

    saves = (0, 1)

    @staticmethod
    def forward(a, b):
        return torch.xlogy(a, b)

    rules = (_xlogy_a,                                              # dL/da = g log b
             lambda g, a, b, y: g * a / b)                          # dL/db = g a / b


class Atan2(Pointwise):
    """y = atan2(a, b), the angle of the point (b, a)."""

    saves = (0, 1)

    @staticmethod
    def forward(a, b):
        return torch.atan2(a, b)

    rules = (lambda g, a, b, y: g * b / (a * a + b * b),            # dL/da = g b / (a² + b²)
             lambda g, a, b, y: -g * a / (a * a + b * b))           # dL/db = −g a / (a² + b²)


class Hypot(Pointwise):
    """y = √(a² + b²)."""

    saves = (0, 1, "y")

    @staticmethod
    def forward(a, b):
        return torch.hypot(a, b)

    rules = (lambda g, a, b, y: g * a / y,                          # dL/da = g a / y
             lambda g, a, b, y: g * b / y)                          # dL/db = g b / y


# -- the faces, as torch's ----------------------------------------------------------------------------


def _unary(name, function, policy=None):
    def face(input):
        check_tensor(name, "input", input)
        if policy is not None:
            (input,) = autocast(policy, input)
        return apply(function, input)

    face.__name__ = face.__qualname__ = name
    face.__doc__ = f"y = {function.__doc__.strip()[2:]} elementwise, as ``torch.{name}``."
    return face


# Autocast runs these in float32 on CUDA, as its lists say; erf, erfc, sin and cos in the input's dtype.
log1p, expm1, tan = (_unary(name, f, FLOAT32_ON_CUDA) for name, f in (("log1p", Log1p), ("expm1", Expm1),
                                                                     ("tan", Tan)))
erf, erfc, sin, cos = (_unary(name, f) for name, f in (("erf", Erf), ("erfc", Erfc), ("sin", Sin), ("cos", Cos)))


def logit(input, eps=None):
    """y = log(x / (1 − x)), x clamped to [eps, 1 − eps] when eps is given, as ``torch.logit``."""
    check_tensor("logit", "input", input)
    if eps is not None and not isinstance(eps, NUMBER):
        raise TypeError(f"logit: eps must be a number or None, got {type(eps).__name__}")
    return apply(Logit, input, eps)


def xlogy(input, other):
    """y = input · log(other), 0 where input = 0, broadcasting, as ``torch.xlogy`` (either may be a number)."""
    if not isinstance(input, Tensor):
        check_tensor("xlogy", "other", other)
        if not isinstance(input, NUMBER):
            raise TypeError(f"xlogy: input must be a torch.Tensor or a number, got {type(input).__name__}")
        return apply(Xlogy, input, other)
    check_operands("xlogy", input, other)
    return apply(Xlogy, input, other)


def atan2(input, other):
    """y = atan2(input, other), the angle of (other, input), broadcasting, as ``torch.atan2``."""
    check_tensor_operands("atan2", input, other)
    return apply(Atan2, input, other)


def hypot(input, other):
    """y = √(input² + other²), broadcasting, as ``torch.hypot``."""
    check_tensor_operands("hypot", input, other)
    return apply(Hypot, input, other)


# -- the table ----------------------------------------------------------------------------------------

SAME = "(*) → (*)"
BROADCAST = "a, b broadcastable; y their broadcast shape"

for _name, _face, _function, _forward, _backward, _more in (
        ("log1p", log1p, Log1p, "y = log(1 + x)", "dL/dx = g / (1 + x)", {torch.special.log1p: None}),
        ("expm1", expm1, Expm1, "y = eˣ − 1", "dL/dx = g (y + 1)", {torch.special.expm1: None}),
        ("erf", erf, Erf, "y = erf x", "dL/dx = g (2/√π) e^(−x²)", {torch.special.erf: None}),
        ("erfc", erfc, Erfc, "y = 1 − erf x", "dL/dx = −g (2/√π) e^(−x²)", {torch.special.erfc: None}),
        ("sin", sin, Sin, "y = sin x", "dL/dx = g cos x", {}),
        ("cos", cos, Cos, "y = cos x", "dL/dx = −g sin x", {}),
        ("tan", tan, Tan, "y = tan x", "dL/dx = g (1 + y²)", {})):
    register(Op(_name, _face, (_function,), Derivative(_forward, _backward, SAME), fused_by="the tensor algebra",
                intercepts={getattr(torch, _name): None, getattr(Tensor, _name): None, **_more}))
register(Op(
    "logit", logit, (Logit,),
    Derivative("y = log(x / (1 − x))", "dL/dx = g / (x (1 − x)); 0 outside [ε, 1 − ε] with eps", SAME),
    fused_by="the tensor algebra", intercepts={torch.logit: None, Tensor.logit: None, torch.special.logit: None},
))
register(Op(
    "xlogy", xlogy, (Xlogy,),
    Derivative("y = a log b (0 where a = 0)", "dL/da = g log b (0 where a = 0), dL/db = g a / b", BROADCAST),
    fused_by="the tensor algebra", intercepts={torch.xlogy: None, Tensor.xlogy: None, torch.special.xlogy: None},
))
register(Op(
    "atan2", atan2, (Atan2,),
    Derivative("y = atan2(a, b)", "dL/da = g b / (a² + b²), dL/db = −g a / (a² + b²)", BROADCAST),
    fused_by="the tensor algebra",
    intercepts={torch.atan2: None, Tensor.atan2: None, torch.arctan2: None, Tensor.arctan2: None},
))
register(Op(
    "hypot", hypot, (Hypot,),
    Derivative("y = √(a² + b²)", "dL/da = g a / y, dL/db = g b / y", BROADCAST),
    fused_by="the tensor algebra", intercepts={torch.hypot: None, Tensor.hypot: None},
))
