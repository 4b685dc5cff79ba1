"""The further losses' cases (``handgrad.ops.losses``): NumPy oracles, samples, bad inputs, bench sizes,
module samples."""

import dataclasses

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, sum_to, x32
from handgrad.testing.op_db.classification import legacy_reduction, reduce_numpy

# -- NumPy oracles: (y, vjp) ------------------------------------------------------------------------------


def _elementwise_loss(terms_of, x, t, reduction, weight=None, weighted_mean=False):
    """A loss of terms w ℓ(x − t) reduced: (L, vjp) from ``terms_of(d) -> (ℓ, dℓ/dd)``; 'mean' divides by the
    number of terms, or by Σ w with ``weighted_mean``."""
    d = x - t
    terms, slope = terms_of(d)
    w = 1.0 if weight is None else weight
    n = np.sum(weight) if weighted_mean and weight is not None else d.size
    L = reduce_numpy(w * terms, reduction, n)

    def vjp(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = g / n if reduction == "mean" else g
        dx = r * w * slope
        return sum_to(dx, x.shape), sum_to(-dx, t.shape)

    return L, vjp


def l1_loss_numpy(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return _elementwise_loss(lambda d: (np.abs(d), np.sign(d)), input, target, reduction, weight, weighted_mean=True)


def smooth_l1_loss_numpy(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """ℓ = ½ d² / β for |d| < β, else |d| − ½ β; dℓ/dd = d / β, ±1 beyond (β = 0: the l1 loss)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if beta == 0:
        return l1_loss_numpy(input, target, reduction=reduction)
    return _elementwise_loss(lambda d: (np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta),
                                        np.clip(d / beta, -1, 1)), input, target, reduction)


def huber_loss_numpy(input, target, reduction="mean", delta=1.0, weight=None):
    """ℓ = ½ d² for |d| < δ, else δ (|d| − ½ δ); dℓ/dd = d, ±δ beyond; weighted 'mean' divides by the count."""
    return _elementwise_loss(lambda d: (np.where(np.abs(d) < delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta)),
                                        np.clip(d, -delta, delta)), input, target, reduction, weight)


def kl_div_numpy(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """ℓ = t (log t − x) (0 where t = 0), or eᵗ (t − x); 'batchmean' divides the sum by the batch size."""
    x, t = np.broadcast_arrays(input, target)
    with np.errstate(divide="ignore", invalid="ignore"):
        if log_target:
            terms, dx, dt = np.exp(t) * (t - x), -np.exp(t), np.exp(t) * (t + 1 - x)
        else:
            terms = np.where(t == 0, 0.0, t * (np.log(t) - x))
            dx, dt = -t, np.where(t == 0, np.nan, np.log(t) + 1 - x)
    reduction = legacy_reduction(size_average, reduce, reduction)
    n = input.shape[0] if reduction == "batchmean" and input.ndim else terms.size
    L = reduce_numpy(terms, "mean" if reduction == "batchmean" else reduction, n)

    def vjp(g):
        r = g / n if reduction in ("mean", "batchmean") else g
        return sum_to(r * dx, input.shape), sum_to(r * dt, target.shape)

    return L, vjp


def binary_cross_entropy_numpy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """ℓ = −w [t log x + (1 − t) log(1 − x)], each log ≥ −100; dℓ/dx = w (x − t) / x(1 − x), dℓ/dt = w log((1 − x) / x)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    w = 1.0 if weight is None else weight
    with np.errstate(divide="ignore"):
        terms = w * -(target * np.maximum(np.log(input), -100) + (1 - target) * np.maximum(np.log1p(-input), -100))
    L = reduce_numpy(terms, reduction, terms.size)

    def vjp(g):
        r = g / terms.size if reduction == "mean" else g
        with np.errstate(divide="ignore", invalid="ignore"):
            dx = r * w * (input - target) / np.maximum(input * (1 - input), 1e-12)
            dt = r * w * (np.log1p(-input) - np.log(input))
        return dx, dt

    return L, vjp


# -- samples --------------------------------------------------------------------------------------------


def _regression_samples(extra=(), weighted=True):
    """Each reduction on (N, D), a broadcast target, the option(s) ``extra`` and a weight."""
    def samples(gen):
        found = [Sample((randn(gen, 4, 3), randn(gen, 4, 3)), {"reduction": r}, f"(N, D), {r}")
                 for r in ("mean", "sum", "none")]
        found.append(Sample((randn(gen, 4, 3), randn(gen, 3)), {}, "target (D) broadcast"))
        found += [Sample((randn(gen, 4, 3, scale=2.0), randn(gen, 4, 3)), dict(kwargs), f"{kwargs}") for kwargs in extra]
        if weighted:
            found.append(Sample((randn(gen, 4, 3), randn(gen, 4, 3)),
                                {"weight": torch.rand(4, 3, generator=gen, dtype=torch.float64) + 0.5},
                                "weight (N, D)"))
        return found
    return samples


def _probabilities(gen, *shape, requires_grad=True):
    """Probabilities in (0.05, 0.95), a leaf."""
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(requires_grad)


def _kl_div_samples(gen):
    log_p = torch.log_softmax(randn(gen, 4, 5, requires_grad=False), 1).requires_grad_()
    q = torch.softmax(randn(gen, 4, 5, requires_grad=False), 1).requires_grad_()
    zeros = q.detach().clone()
    zeros[:, 0] = 0.0
    return [Sample((log_p, q), {"reduction": "batchmean"}, "batchmean"),
            Sample((log_p.detach().clone().requires_grad_(), q.detach().clone().requires_grad_()), {"reduction": "sum"},
                   "sum"),
            Sample((log_p.detach().clone().requires_grad_(), q.detach().log().requires_grad_()),
                   {"reduction": "none", "log_target": True}, "none, log_target"),
            Sample((log_p.detach().clone().requires_grad_(), zeros.requires_grad_()), {"reduction": "batchmean"},
                   "target 0 in a column: dL/dt NaN there, as torch's", gradcheck=False),
            Sample((log_p.detach().clone().requires_grad_(), q.detach().clone()), {"reduction": "mean"}, "mean")]


def _binary_cross_entropy_samples(gen):
    weight = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
    return [Sample((_probabilities(gen, 4, 3), _probabilities(gen, 4, 3)), {"reduction": r}, f"(N, D), {r}")
            for r in ("mean", "sum", "none")] + [
        Sample((_probabilities(gen, 4, 3), _probabilities(gen, 4, 3, requires_grad=False), weight), {},
               "weight (D) broadcast"),
        Sample((_probabilities(gen, 4, 3), torch.randint(0, 2, (4, 3), generator=gen).double()), {},
               "hard 0/1 targets")]


def _module_samples(*options):
    def input(gen):
        return randn(gen, 4, 3), randn(gen, 4, 3)
    return tuple(ModuleSample(f"{kwargs}", input, (), kwargs) for kwargs in ({}, {"reduction": "sum"}, *options))


# -- bad inputs and the database ---------------------------------------------------------------------------


def _loss_errors(op):
    return (
        ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, 2.0], x32(2)), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list", torch_class=AttributeError),
        ErrorInput("shapes that do not broadcast", lambda F, nn: getattr(F, op)(x32(3, 4), x32(5)), RuntimeError,
                   rf"{op}: target of shape \(5,\) does not broadcast with input of shape \(3, 4\)"),
        ErrorInput("reduction 'avg'", lambda F, nn: getattr(F, op)(x32(3), x32(3), reduction="avg"), ValueError,
                   rf"{op}: reduction must be one of"),
    )


def _bench(device):
    return [("(6400, 128)", (bench_randn(device, 6400, 128), bench_randn(device, 6400, 128)), {})]


OP_INFOS = (
    OpInfo("l1_loss", torch.nn.functional.l1_loss, _regression_samples(), l1_loss_numpy, _bench,
           errors=_loss_errors("l1_loss"), modules={torch.nn.L1Loss: _module_samples({"reduction": "none"})}),
    OpInfo("smooth_l1_loss", torch.nn.functional.smooth_l1_loss,
           _regression_samples(({"beta": 0.5}, {"beta": 0.0}), weighted=False), smooth_l1_loss_numpy, _bench,
           errors=_loss_errors("smooth_l1_loss") + (
               ErrorInput("beta < 0", lambda F, nn: F.smooth_l1_loss(x32(3), x32(3), beta=-1.0), RuntimeError,
                          r"smooth_l1_loss does not support negative values for beta"),),
           modules={torch.nn.SmoothL1Loss: _module_samples({"beta": 0.5})}),
    OpInfo("huber_loss", torch.nn.functional.huber_loss, _regression_samples(({"delta": 0.5},)), huber_loss_numpy,
           _bench, errors=_loss_errors("huber_loss")[:2] + (
               ErrorInput("delta 0", lambda F, nn: F.huber_loss(x32(3), x32(3), delta=0.0), RuntimeError,
                          r"huber_loss does not support non-positive values for delta"),),
           modules={torch.nn.HuberLoss: _module_samples({"delta": 2.0})}),
    OpInfo("kl_div", torch.nn.functional.kl_div, _kl_div_samples, kl_div_numpy, _bench,
           errors=(dataclasses.replace(_loss_errors("kl_div")[0], torch_class=None), _loss_errors("kl_div")[1]),
           # dL/dt = log t + 1 − x cancels where x ≈ log t: in 8 bits of mantissa, the scale's rounding.
           tolerances={torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2, scaled=True)},
           modules={torch.nn.KLDivLoss: tuple(ModuleSample(f"{kwargs}", lambda gen: (
               torch.log_softmax(randn(gen, 4, 5, requires_grad=False), 1).requires_grad_(),
               torch.softmax(randn(gen, 4, 5, requires_grad=False), 1)), (),
               kwargs) for kwargs in ({"reduction": "batchmean"}, {"reduction": "sum"}))}),
    OpInfo("binary_cross_entropy", torch.nn.functional.binary_cross_entropy, _binary_cross_entropy_samples,
           binary_cross_entropy_numpy,
           lambda device: [("(6400, 128)", (torch.rand(6400, 128, device=device).requires_grad_(),
                                            torch.rand(6400, 128, device=device)), {})],
           errors=(
               ErrorInput("list input", lambda F, nn: F.binary_cross_entropy([0.5], x32(1)), TypeError,
                          r"binary_cross_entropy: input must be a torch\.Tensor, got list", torch_class=AttributeError),
               ErrorInput("target of another shape", lambda F, nn: F.binary_cross_entropy(x32(3, 2).sigmoid(), x32(2)),
                          ValueError, r"Using a target size .* that is different to the input size"),
               ErrorInput("input outside [0, 1]", lambda F, nn: F.binary_cross_entropy(x32(3) + 5, x32(3).sigmoid()),
                          RuntimeError, r"all elements of input should be between 0 and 1")),
           modules={torch.nn.BCELoss: tuple(ModuleSample(f"{kwargs}", lambda gen: (
               _probabilities(gen, 4, 3), _probabilities(gen, 4, 3, requires_grad=False)), (), kwargs)
               for kwargs in ({}, {"reduction": "none"}))}),
)
