"""More losses, by hand: l1, smooth l1 and Huber (the regression losses of detection heads), the KL
divergence and the binary cross-entropy on probabilities.

The first three are a rule on the difference d = x − t and a reduction: |d| (``abs``), smooth l1 and
Huber, whose derivatives are d clamped (Huber: dℓ/dd = clamp(d, −δ, δ); smooth l1 the same over β,
clamp(d / β, −1, 1)). Forward keeps d only (torch's nodes keep x and t). The reduction is the mean's
or the sum's rule: dL/dℓ = g / n ('mean'), g ('sum'), g itself per term ('none').
"""

import math
import warnings

import torch

from handgrad.ops._checks import FLOAT32, autocast, can_inspect_values, check_reduction, check_tensor
from handgrad.ops._function import Pointwise, apply
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops.elementwise import Abs, Div, Mul, Sub, abs, div, mul, sub
from handgrad.ops.reductions import Mean, Sum, mean, sum

Tensor = torch.Tensor


class SmoothL1(Pointwise):
    """ℓ = ½ d² / β where |d| < β, else |d| − ½ β."""

    saves = (0,)

    @staticmethod
    def forward(d, beta):
        a = d.abs()
        return torch.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)

    rules = (lambda g, d, beta, y: g * torch.clamp(d / beta, -1, 1),      # dℓ/dd = d / β, ±1 beyond β
             None)


class Huber(Pointwise):
    """ℓ = ½ d² where |d| < δ, else δ (|d| − ½ δ)."""

    saves = (0,)

    @staticmethod
    def forward(d, delta):
        a = d.abs()
        return torch.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta))

    rules = (lambda g, d, delta, y: g * torch.clamp(d, -delta, delta),    # dℓ/dd = d, ±δ beyond δ
             None)


def _kl_target(g, x, t, log_target, y):
    """dℓ/dt = log t + 1 − x; log target: eᵗ (t + 1 − x). At t = 0, where t log t has slope −∞, NaN, the
    value torch's composite (xlogy(t, t) − t x) gives."""
    if log_target:
        return g * torch.exp(t) * (t + 1 - x)
    return torch.where(t == 0, math.nan, g * (torch.log(t) + 1 - x))


class KLDivergence(Pointwise):
    """ℓ = t (log t − x) (0 where t = 0), or eᵗ (t − x) for a log target: x log-probabilities."""

    saves = (0, 1)

    @staticmethod
    def forward(x, t, log_target):
        return torch.exp(t) * (t - x) if log_target else torch.xlogy(t, t) - t * x

    rules = (lambda g, x, t, log_target, y: -g * (torch.exp(t) if log_target else t),   # dℓ/dx = −t (−eᵗ)
             _kl_target,
             None)


class BinaryCrossEntropy(Pointwise):
    """ℓ = −[t log x + (1 − t) log(1 − x)], x probabilities, each log at least −100 (torch's bound)."""

    saves = (0, 1)

    @staticmethod
    def forward(x, t):
        return (t - 1) * torch.clamp(torch.log1p(-x), min=-100) - t * torch.clamp(torch.log(x), min=-100)

    rules = (lambda g, x, t, y: g * (x - t) / torch.clamp(x * (1 - x), min=1e-12),   # dℓ/dx = (x − t) / x(1 − x)
             lambda g, x, t, y: g * (torch.log1p(-x) - torch.log(x)))                # dℓ/dt = log(1 − x) − log x


# -- the faces, as torch's ----------------------------------------------------------------------------


def _pair(fn, input, target, warn=True):
    """input and target checked, broadcast (with torch's warning where their shapes differ)."""
    check_tensor(fn, "input", input)
    check_tensor(fn, "target", target)
    if warn and target.shape != input.shape and not torch.compiler.is_compiling():   # Dynamo traces no warning
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
                      "This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=3)
    try:
        torch.broadcast_shapes(input.shape, target.shape)
    except RuntimeError:
        raise RuntimeError(f"{fn}: target of shape {tuple(target.shape)} does not broadcast with input of shape "
                           f"{tuple(input.shape)}; give them the same shape") from None


def _reduced(terms, reduction):
    """The terms as L: their mean (the mean's rule), their sum, or themselves."""
    return terms if reduction == "none" else sum(terms) if reduction == "sum" else mean(terms)


def _weighted(fn, terms, weight, input):
    check_tensor(fn, "weight", weight)
    if weight.shape != input.shape:
        raise ValueError(f"{fn}: weight must have the input's shape {tuple(input.shape)}, got {tuple(weight.shape)}")
    return mul(terms, weight)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """L = mean |input − target|, their sum ('sum') or the terms ('none'), each weighted by ``weight``
    when given ('mean' then divides by Σ weight), as ``torch.nn.functional.l1_loss``: sub's, abs's
    and the reduction's rules."""
    _pair("l1_loss", input, target)
    reduction = check_reduction("l1_loss", reduction, size_average, reduce)
    if weight is None:
        input, target = autocast(FLOAT32, input, target)
        return _reduced(abs(sub(input, target)), reduction)
    terms = _weighted("l1_loss", abs(sub(input, target)), weight, input)
    return div(sum(terms), sum(weight)) if reduction == "mean" else _reduced(terms, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """L = the mean of ½ d² / β (|d| < β) or |d| − ½ β, d = input − target, as
    ``torch.nn.functional.smooth_l1_loss``; β = 0 is the l1 loss."""
    _pair("smooth_l1_loss", input, target)
    reduction = check_reduction("smooth_l1_loss", reduction, size_average, reduce)
    if not isinstance(beta, (int, float)) or beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta, got {beta!r}")
    input, target = autocast(FLOAT32, input, target)
    d = sub(input, target)
    return _reduced(abs(d) if beta == 0 else apply(SmoothL1, d, beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """L = the mean of ½ d² (|d| < δ) or δ (|d| − ½ δ), d = input − target, each term weighted by
    ``weight`` when given, as ``torch.nn.functional.huber_loss``."""
    _pair("huber_loss", input, target)
    reduction = check_reduction("huber_loss", reduction)
    if not isinstance(delta, (int, float)) or delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta, got {delta!r}")
    input, target = autocast(FLOAT32, input, target)
    terms = apply(Huber, sub(input, target), delta)
    return _reduced(terms if weight is None else _weighted("huber_loss", terms, weight, input), reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """L = Σ t (log t − x) (x log-probabilities; ``log_target``: t too), reduced: 'batchmean' divides
    by the batch size, 'mean' by the number of terms, as ``torch.nn.functional.kl_div``."""
    _pair("kl_div", input, target, warn=False)
    if reduction == "mean" and size_average is None and reduce is None and not torch.compiler.is_compiling():
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    batchmean = reduction == "batchmean"
    reduction = "sum" if batchmean else check_reduction("kl_div", reduction, size_average, reduce)
    input, target = autocast(FLOAT32, input, target)
    loss = _reduced(apply(KLDivergence, input, target, log_target), reduction)
    return div(loss, input.shape[0]) if batchmean and input.dim() else loss


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """L = mean −w [t log x + (1 − t) log(1 − x)], x probabilities, as
    ``torch.nn.functional.binary_cross_entropy`` (each log at least −100, as torch's)."""
    check_tensor("binary_cross_entropy", "input", input)
    check_tensor("binary_cross_entropy", "target", target)
    reduction = check_reduction("binary_cross_entropy", reduction, size_average, reduce)
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.size()}) that is different to the input size ({input.size()}) "
                         "is deprecated. Please ensure they have the same size.")
    if can_inspect_values(input) and input.numel() and not bool(((input >= 0) & (input <= 1)).all()):
        raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1")
    input, target, weight = autocast({"cpu": "float32"}, input, target, weight)
    terms = apply(BinaryCrossEntropy, input, target)
    if weight is not None:
        check_tensor("binary_cross_entropy", "weight", weight)
        terms = mul(terms, weight.expand(torch.broadcast_shapes(target.shape, weight.shape)))
    return _reduced(terms, reduction)


def _module(face, *options):
    return Module(lambda self, input, target: face(input, target, reduction=self.reduction,
                                                   **{name: getattr(self, name) for name in options}))


# -- the table ----------------------------------------------------------------------------------------

REDUCED = "x, t broadcast to (*); L () or (*) for 'none'"

register(Op(
    "l1_loss", l1_loss, (Sub, Abs, Mul, Mean, Sum, Div),
    Derivative("L = mean |x − t| (Σ w |x − t| / Σ w)", "dL/dx = r sign(x − t) w, dL/dt = −dL/dx: sub's, abs's and "
               "the reduction's rules", REDUCED),
    modules={torch.nn.L1Loss: _module(l1_loss)},
))
register(Op(
    "smooth_l1_loss", smooth_l1_loss, (Sub, SmoothL1, Mean, Sum, Abs),
    Derivative("L = mean ℓ(x − t), ℓ(d) = ½ d² / β if abs(d) < β else abs(d) − ½ β",
               "dL/dx = r clamp((x − t) / β, −1, 1), dL/dt = −dL/dx", REDUCED),
    modules={torch.nn.SmoothL1Loss: _module(smooth_l1_loss, "beta")},
))
register(Op(
    "huber_loss", huber_loss, (Sub, Huber, Mul, Mean, Sum),
    Derivative("L = mean w ℓ(x − t), ℓ(d) = ½ d² if abs(d) < δ else δ (abs(d) − ½ δ)",
               "dL/dx = r w clamp(x − t, −δ, δ), dL/dt = −dL/dx", REDUCED),
    modules={torch.nn.HuberLoss: _module(huber_loss, "delta")},
))
register(Op(
    "kl_div", kl_div, (KLDivergence, Mean, Sum, Div),
    Derivative("L = Σ t (log t − x) (log target: eᵗ (t − x)), / N for 'batchmean'",
               "dL/dx = −r t (−r eᵗ), dL/dt = r (log t + 1 − x) (r eᵗ (t + 1 − x))", REDUCED),
    modules={torch.nn.KLDivLoss: _module(kl_div, "log_target")},
))
register(Op(
    "binary_cross_entropy", binary_cross_entropy, (BinaryCrossEntropy, Mul, Mean, Sum),
    Derivative("L = mean −w [t log x + (1 − t) log(1 − x)]",
               "dL/dx = r w (x − t) / (x (1 − x)), dL/dt = −r w logit(x)", "x, t (*); w broadcast to (*)"),
    modules={torch.nn.BCELoss: Module(lambda self, input, target: binary_cross_entropy(
        input, target, self.weight, reduction=self.reduction))},
))
