"""The regression losses' cases (``handgrad.ops.regression``): NumPy oracles, samples, bad inputs,
bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, sum_to, without, x32
from handgrad.testing.op_db.classification import legacy_reduction, reduce_numpy


def mse_loss_numpy(x, t, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = legacy_reduction(size_average, reduce, reduction)
    d = x - t                                                # broadcast
    w = 1.0 if weight is None else weight
    n = d.size if weight is None else np.sum(weight)
    L = reduce_numpy(w * d * d, reduction, n)

    def vjp(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = g / n if reduction == "mean" else g
        dx = 2 * r * w * d
        dw = None if weight is None else sum_to(r * d * d, weight.shape) - (r * L if reduction == "mean" else 0)
        return sum_to(dx, x.shape), sum_to(-dx, t.shape), None, None, None, dw

    return L, vjp


def _mse_loss_samples(gen):
    def pair(x_shape, t_shape, t_grad=True, scale=1.0):
        return randn(gen, *x_shape, scale=scale), randn(gen, *t_shape, scale=scale, requires_grad=t_grad)

    def positive(*shape, requires_grad=False):
        return (torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1).requires_grad_(requires_grad)

    forms = {  # name: (args, kwargs)
        "(N, D)": (pair((6, 7), (6, 7)), {}),
        "(N, D), constant target": (pair((6, 7), (6, 7), t_grad=False), {}),
        "(B, C, H, W)": (pair((2, 3, 4, 5), (2, 3, 4, 5)), {}),
        "0-d": (pair((), ()), {}),
        "(N, D) input, (D,) target": (pair((6, 7), (7,)), {}),
        "(N, D) input, (N, 1) target": (pair((6, 7), (6, 1)), {}),
        "(D,) input, (N, D) target": (pair((7,), (6, 7)), {}),
        "(0, D) empty": (pair((0, 7), (0, 7)), {}),
        "|x − t| ~ 1e3": (pair((6, 7), (6, 7), scale=1e3), {}),
        "(N, D), constant weight": (pair((6, 7), (6, 7)), {"weight": positive(6, 7)}),
        "(N, D), weight differentiated": (pair((6, 7), (6, 7)) + (None, None, None, positive(6, 7, requires_grad=True)),
                                          {}),
        "(D,) input, (N, D) target, weight differentiated":
            (pair((7,), (6, 7)) + (None, None, None, positive(7, requires_grad=True)), {}),
    }
    # Over a broadcast dimension PyTorch sums gradients already rounded to bfloat16 / float16, one per
    # term; computed in float32 and rounded once, ours is nearer the NumPy oracle than the tolerance
    # allows PyTorch's to be. Those are compared in float64 and float32 only.
    broadcasting = {name for name, (args, _) in forms.items() if args[0].shape != args[1].shape}
    samples = []
    for name, (args, kwargs) in forms.items():
        dtypes = None
        if name in broadcasting:
            dtypes = (torch.float64, torch.float32)
        elif "1e3" in name:
            dtypes = without(torch.float16)             # squares of 1e3 pass 65504
        for reduction in ("mean", "sum", "none"):
            if len(args) > 2:                                # reduction is positional before weight
                call, options = args[:4] + (reduction,) + args[5:], kwargs
            else:
                call, options = args, {**kwargs, "reduction": reduction}
            samples.append(Sample(
                tuple(a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a
                      for a in call), options, f"{name}, {reduction}", dtypes=dtypes,
                gradcheck=not (name == "(0, D) empty" and reduction == "mean")))        # a mean of nothing: NaN
    return samples


def _mse_loss_module_samples():
    def input(x_shape, t_shape):
        return lambda gen: (randn(gen, *x_shape), randn(gen, *t_shape))
    return tuple(
        ModuleSample(f"{kwargs}, {shapes}", input(*shapes), (), kwargs)
        for kwargs in ({}, {"reduction": "sum"}, {"reduction": "none"}, {"size_average": False},
                       {"reduce": False})
        for shapes in (((9, 4), (9, 4)), ((2, 3, 4), (2, 3, 4)), ((9, 4), (4,)))
    )


_MSE_LOSS_ERRORS = (
    ErrorInput("shapes that do not broadcast", lambda F, nn: F.mse_loss(x32(3, 4), x32(5)),
               RuntimeError, r"mse_loss: target of shape \(5,\) does not broadcast with input of shape \(3, 4\)"),
    ErrorInput("int64 input and target",
               lambda F, nn: F.mse_loss(torch.ones(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)),
               NotImplementedError, r"mse_loss: input and target must be floating point, got torch\.int64 and "
                                    r"torch\.int64"),
    ErrorInput("bool input and target",
               lambda F, nn: F.mse_loss(torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)),
               NotImplementedError, r"mse_loss: input and target must be floating point, got torch\.bool"),
    ErrorInput("reduction 'avg'", lambda F, nn: F.mse_loss(x32(3), x32(3), reduction="avg"),
               ValueError, r"mse_loss: reduction must be one of .*got 'avg'"),
    ErrorInput("weight of another shape", lambda F, nn: F.mse_loss(x32(3, 4), x32(3, 4), weight=x32(4)),
               ValueError, r"mse_loss: weight must have the input's shape \(3, 4\), got \(4,\)"),
    ErrorInput("weighted, reduction 'avg'", lambda F, nn: F.mse_loss(x32(3), x32(3), reduction="avg", weight=x32(3)),
               ValueError, r"mse_loss: reduction must be one of .*got 'avg'"),
    # torch's AttributeError comes from calling list.size: an accident, not an API.
    ErrorInput("list input", lambda F, nn: F.mse_loss([1.0, 2.0], x32(2)), TypeError,
               r"mse_loss: input must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("list target", lambda F, nn: F.mse_loss(x32(2), [1.0, 2.0]), TypeError,
               r"mse_loss: target must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("nn.MSELoss shapes that do not broadcast", lambda F, nn: nn.MSELoss()(x32(3, 4), x32(3, 5)),
               RuntimeError, r"mse_loss: target of shape \(3, 5\) does not broadcast with input of shape \(3, 4\)"),
    ErrorInput("nn.MSELoss reduction 'avg'", lambda F, nn: nn.MSELoss(reduction="avg")(x32(3), x32(3)),
               ValueError, r"mse_loss: reduction must be one of .*got 'avg'"),
)


def _mse_loss_bench(device):
    x = bench_randn(device, 1024, 512)
    return [("(1024, 512)", (x, torch.randn(1024, 512, device=device)), {})]


def binary_cross_entropy_with_logits_numpy(x, t, weight=None, size_average=None, reduce=None, reduction="mean",
                                           pos_weight=None):
    """The definition, with log σ(x) = −log(1 + e⁻ˣ) and log(1 − σ(x)) = −log(1 + eˣ) from logaddexp."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    w = 1.0 if weight is None else weight
    p = 1.0 if pos_weight is None else pos_weight
    log_s, log_1ms = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    terms = -w * (p * t * log_s + (1 - t) * log_1ms)
    L = reduce_numpy(terms, reduction, x.size)

    def vjp(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = g / x.size if reduction == "mean" else g
        s = np.exp(log_s)
        return r * w * ((p * t + 1 - t) * s - p * t), -r * w * (p * log_s - log_1ms)

    return L, vjp


def _bce_samples(gen):
    def logits(*shape, scale=1.0):
        return randn(gen, *shape, scale=scale)

    def probabilities(*shape, requires_grad=True):
        return torch.rand(shape, generator=gen, dtype=torch.float64).requires_grad_(requires_grad)

    def labels(*shape):
        return (torch.rand(shape, generator=gen) < 0.5).double()

    def positive(*shape):
        return torch.rand(shape, generator=gen, dtype=torch.float64) + 0.25

    huge = torch.tensor([[1e4, -1e4, 1e4, -1e4, 30.0, -30.0]], dtype=torch.float64)
    forms = {  # name: (input, target, options)
        "(N, D), probabilities": (logits(6, 5), probabilities(6, 5), {}),
        "(N, D), labels 0/1": (logits(6, 5), labels(6, 5), {}),
        "(N, D), weight (D,)": (logits(6, 5), probabilities(6, 5), {"weight": positive(5)}),
        "(N, D), weight (N, 1)": (logits(6, 5), probabilities(6, 5), {"weight": positive(6, 1)}),
        "(N, D), pos_weight (D,)": (logits(6, 5), probabilities(6, 5), {"pos_weight": positive(5)}),
        "(N, D), pos_weight (N, D)": (logits(6, 5), labels(6, 5), {"pos_weight": positive(6, 5)}),
        "(N, C, H, W), weight (C, 1, 1), pos_weight (C, 1, 1)":
            (logits(2, 3, 2, 2), probabilities(2, 3, 2, 2), {"weight": positive(3, 1, 1), "pos_weight": positive(3, 1, 1)}),
        "(N, D), weight and pos_weight 0-d": (logits(6, 5), probabilities(6, 5),
                                              {"weight": positive(), "pos_weight": positive()}),
        "(D,) unbatched, pos_weight": (logits(5), probabilities(5), {"pos_weight": positive(5)}),
        "0-d": (logits(), probabilities(), {}),
        "(0, D) empty": (logits(0, 5), probabilities(0, 5), {"pos_weight": positive(5)}),
        "logits ~ N(0, 50²)": (logits(6, 5, scale=50.0), probabilities(6, 5), {"pos_weight": positive(5)}),
        "logits ±1e4, ±30": (huge.clone().requires_grad_(), labels(1, 6).requires_grad_(), {}),
        "logits ±1e4, ±30, pos_weight": (huge.clone().requires_grad_(), probabilities(1, 6), {"pos_weight": positive(6)}),
    }
    dtypes = {
        "logits ±1e4, ±30": without(torch.float16),     # 1e4s summed pass 65504
        # PyTorch rounds (1 − t) x and (p t + 1 − t) log σ(x) to bfloat16 before subtracting them,
        # and for |x| ~ 100 loses more than the tolerance where they cancel; ours rounds once.
        "logits ~ N(0, 50²)": (torch.float64, torch.float32),
    }
    dtypes["logits ±1e4, ±30, pos_weight"] = dtypes["logits ±1e4, ±30"]
    return [
        Sample((x.detach().clone().requires_grad_(), t.detach().clone().requires_grad_(t.requires_grad)),
               {**options, "reduction": reduction}, f"{name}, {reduction}", dtypes=dtypes.get(name),
               gradcheck=not (name == "(0, D) empty" and reduction == "mean"))           # a mean of nothing: NaN
        for name, (x, t, options) in forms.items() for reduction in ("mean", "sum", "none")
    ]


def _bce_module_samples():
    def input(*shape):
        return lambda gen: (randn(gen, *shape), torch.rand(shape, generator=gen, dtype=torch.float64).requires_grad_())

    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    pos_weight = torch.tensor([3.0, 1.0, 0.5, 2.0], dtype=torch.float64)
    options = ({}, {"weight": weight}, {"pos_weight": pos_weight}, {"weight": weight, "pos_weight": pos_weight})
    samples = [ModuleSample(f"{', '.join(o) or 'default'}, {reduction}", input(9, 4), (), {**o, "reduction": reduction})
               for o in options for reduction in ("mean", "sum", "none")]
    samples.append(ModuleSample("pos_weight (C, 1, 1) on (N, C, H, W)", input(2, 4, 3, 2), (),
                                {"pos_weight": pos_weight.reshape(4, 1, 1)}))
    samples.append(ModuleSample("size_average=False", input(9, 4), (), {"size_average": False}))
    return tuple(samples)


_BCE_ERRORS = (
    ErrorInput("target of another shape", lambda F, nn: F.binary_cross_entropy_with_logits(x32(3, 4), x32(4)),
               ValueError, r"binary_cross_entropy_with_logits: target must have the input's shape \(3, 4\), got \(4,\)"),
    ErrorInput("weight that does not broadcast",
               lambda F, nn: F.binary_cross_entropy_with_logits(x32(3, 4), x32(3, 4), weight=x32(5)),
               RuntimeError, r"weight of shape \(5,\) does not broadcast to the input's shape \(3, 4\)"),
    ErrorInput("weight broadcasting past the input's shape",
               lambda F, nn: F.binary_cross_entropy_with_logits(x32(3, 4), x32(3, 4), weight=x32(2, 3, 4)),
               RuntimeError, r"weight of shape \(2, 3, 4\) does not broadcast to the input's shape \(3, 4\)"),
    ErrorInput("pos_weight that does not broadcast",
               lambda F, nn: F.binary_cross_entropy_with_logits(x32(3, 4), x32(3, 4), pos_weight=x32(3)),
               RuntimeError, r"pos_weight of shape \(3,\) does not broadcast to the input's shape \(3, 4\)"),
    ErrorInput("int64 target",
               lambda F, nn: F.binary_cross_entropy_with_logits(x32(3), torch.tensor([0, 1, 1])),
               RuntimeError, r"target must be floating point \(probabilities in \[0, 1\]\), got torch\.int64"),
    ErrorInput("int64 input",
               lambda F, nn: F.binary_cross_entropy_with_logits(torch.tensor([0, 1, 1]), x32(3)),
               NotImplementedError, r"input \(logits\) must be floating point, got torch\.int64"),
    ErrorInput("weight requiring grad",
               lambda F, nn: F.binary_cross_entropy_with_logits(x32(3), x32(3), weight=torch.ones(3, requires_grad=True)),
               RuntimeError, r"not differentiable with respect to weight"),
    ErrorInput("pos_weight requiring grad",
               lambda F, nn: F.binary_cross_entropy_with_logits(x32(3), x32(3), pos_weight=torch.ones(3, requires_grad=True)),
               RuntimeError, r"not differentiable with respect to pos_weight"),
    ErrorInput("reduction 'avg'", lambda F, nn: F.binary_cross_entropy_with_logits(x32(3), x32(3), reduction="avg"),
               ValueError, r"binary_cross_entropy_with_logits: reduction must be one of .*got 'avg'"),
    # torch's AttributeError comes from calling list.size: an accident, not an API.
    ErrorInput("list input", lambda F, nn: F.binary_cross_entropy_with_logits([1.0], x32(1)), TypeError,
               r"input must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("nn.BCEWithLogitsLoss pos_weight that does not broadcast",
               lambda F, nn: nn.BCEWithLogitsLoss(pos_weight=torch.ones(5))(x32(3, 4), x32(3, 4)),
               RuntimeError, r"pos_weight of shape \(5,\) does not broadcast to the input's shape \(3, 4\)"),
    ErrorInput("nn.BCEWithLogitsLoss target of another shape",
               lambda F, nn: nn.BCEWithLogitsLoss()(x32(3, 4), x32(3, 1)),
               ValueError, r"target must have the input's shape \(3, 4\), got \(3, 1\)"),
)


def _bce_bench(device):
    x = bench_randn(device, 1024, 512)
    return [("(1024, 512)", (x, torch.rand(1024, 512, device=device)), {})]


OP_INFOS = (
    OpInfo("mse_loss", torch.nn.functional.mse_loss, _mse_loss_samples, mse_loss_numpy, _mse_loss_bench,
           errors=_MSE_LOSS_ERRORS, modules={torch.nn.MSELoss: _mse_loss_module_samples()}),
    OpInfo("binary_cross_entropy_with_logits", torch.nn.functional.binary_cross_entropy_with_logits, _bce_samples,
           binary_cross_entropy_with_logits_numpy, _bce_bench, errors=_BCE_ERRORS,
           modules={torch.nn.BCEWithLogitsLoss: _bce_module_samples()}),
)
