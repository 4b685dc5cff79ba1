"""The fused language-model head's cases (``handgrad.ops.head``): the NumPy oracle (the linear layer,
then ``classification``'s cross-entropy oracle, and back), samples of every form torch's
``linear_cross_entropy`` takes, with chunks of a few rows, bad inputs, module samples, bench sizes."""

import types

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32
from handgrad.testing.op_db.classification import cross_entropy_numpy

C, D, N = 7, 5, 6


def _options(rows):
    """torch's LinearCrossEntropyOptions with ``rows`` a chunk (where torch has it; handgrad reads its
    ``batch_chunk_size`` only, and torch then takes its own chunked path where it can)."""
    make = getattr(torch.nn, "LinearCrossEntropyOptions", None)
    return make(batch_chunk_size=rows) if make else types.SimpleNamespace(batch_chunk_size=rows)


def _reference(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean", ignore_index=None,
               label_smoothing=0.0, options=None):
    """torch's linear_cross_entropy where torch has it, else what it is: linear, then cross_entropy."""
    if hasattr(torch.nn.functional, "linear_cross_entropy"):
        return torch.nn.functional.linear_cross_entropy(
            input, linear_weight, target, linear_bias=linear_bias, weight=weight, reduction=reduction,
            ignore_index=ignore_index, label_smoothing=label_smoothing, options=options)
    n_classes, out = linear_weight.shape[0], linear_weight.shape[1:-1]
    w = linear_weight.reshape(-1, linear_weight.shape[-1])
    z = torch.nn.functional.linear(input, w, None if linear_bias is None else linear_bias.reshape(-1))
    z = z.reshape(*input.shape[:-1], n_classes, *out)
    return torch.nn.functional.cross_entropy(z, target, weight, ignore_index=-100 if ignore_index is None else ignore_index,
                                             reduction=reduction, label_smoothing=label_smoothing)


def linear_cross_entropy_numpy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                               ignore_index=None, label_smoothing=0.0, options=None):
    """z = x Wᵀ + b in the logits' layout, then the cross-entropy oracle; back through the linear
    layer: dL/dx = dz W, dL/dW = dzᵀ x."""
    n_classes, out, d = linear_weight.shape[0], linear_weight.shape[1:-1], linear_weight.shape[-1]
    w = linear_weight.reshape(-1, d)
    z = input @ w.T + (0.0 if linear_bias is None else linear_bias.reshape(-1))
    z = z.reshape(*input.shape[:-1], n_classes, *out)
    loss, ce_vjp = cross_entropy_numpy(z, target, weight, ignore_index=-100 if ignore_index is None else ignore_index,
                                       reduction=reduction, label_smoothing=label_smoothing)

    def vjp(g):
        dz, *dtarget = ce_vjp(g)
        dz = dz.reshape(*input.shape[:-1], -1)                           # (N, C · D) as x Wᵀ
        dx = dz @ w
        dw = (np.atleast_2d(dz).T @ np.atleast_2d(input)).reshape(linear_weight.shape)
        return dx, dw, (dtarget[0] if dtarget else None)

    return loss, vjp


def _samples(gen):
    def indices(*shape, ignore=None):
        t = torch.randint(0, C, shape, generator=gen)
        if ignore is not None:
            t = t.masked_fill(torch.rand(shape, generator=gen) < 0.3, ignore)
        return t

    weights = torch.rand(C, generator=gen, dtype=torch.float64) + 0.1
    probabilities = torch.softmax(randn(gen, N, C, requires_grad=False), 1).requires_grad_()
    k_probabilities = torch.softmax(randn(gen, N, C, 2, 3, requires_grad=False), 1).requires_grad_()
    forms = [
        ("(N, d), class indices", (randn(gen, N, D), randn(gen, C, D), indices(N)), {}),
        ("chunks of 2 rows", (randn(gen, N, D), randn(gen, C, D), indices(N)), {"options": _options(2)}),
        ("bias, class weights, ignore_index, chunks of 4", (randn(gen, N, D), randn(gen, C, D), indices(N, ignore=-100)),
         {"linear_bias": randn(gen, C), "weight": weights, "options": _options(4)}),
        ("ignore_index=2, reduction none, chunks of 4", (randn(gen, N, D), randn(gen, C, D), indices(N, ignore=2)),
         {"ignore_index": 2, "reduction": "none", "options": _options(4)}),
        ("label_smoothing 0.2, weights, chunks of 2", (randn(gen, N, D), randn(gen, C, D), indices(N)),
         {"label_smoothing": 0.2, "weight": weights, "options": _options(2)}),
        ("reduction sum", (randn(gen, N, D), randn(gen, C, D), indices(N)), {"reduction": "sum"}),
        ("class probabilities, chunks of 4", (randn(gen, N, D), randn(gen, C, D), probabilities),
         {"options": _options(4)}),
        ("class probabilities, label_smoothing, reduction none", (randn(gen, N, D), randn(gen, C, D),
                                                                  probabilities.detach().clone().requires_grad_()),
         {"label_smoothing": 0.1, "reduction": "none"}),
        ("unbatched (d), target ()", (randn(gen, D), randn(gen, C, D), indices()), {}),
        ("K-dimensional: W (C, 2, 3, d), bias (C, 2, 3), chunks of 2",
         (randn(gen, N, D), randn(gen, C, 2, 3, D), indices(N, 2, 3, ignore=-100)),
         {"linear_bias": randn(gen, C, 2, 3), "options": _options(2)}),
        ("K-dimensional class probabilities, reduction none", (randn(gen, N, D), randn(gen, C, 2, 3, D),
                                                               k_probabilities), {"reduction": "none"}),
        ("uint8 target", (randn(gen, N, D), randn(gen, C, D), indices(N).to(torch.uint8)), {}),
        ("(0, d) empty batch, reduction sum", (randn(gen, 0, D), randn(gen, C, D), indices(0)), {"reduction": "sum"}),
        ("unbatched (d), target (), reduction none: a 0-d loss", (randn(gen, D), randn(gen, C, D), indices()),
         {"reduction": "none"}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _bench(device):
    """A language model's head: 4096 tokens, width 256, a vocabulary of 32768 (the issue's sizes)."""
    return [("N=4096, d=256, V=32768", (bench_randn(device, 4096, 256), bench_randn(device, 32768, 256),
                                        torch.randint(0, 32768, (4096,), device=device)), {})]


_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.linear_cross_entropy([1.0], x32(C, D), torch.zeros(1, dtype=torch.long)),
               TypeError, r"linear_cross_entropy: input must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("3-D input", lambda F, nn: F.linear_cross_entropy(x32(2, N, D), x32(C, D), torch.zeros(2, N).long()),
               RuntimeError, r"expected input of dimensionality 1 \(d\) or 2 \(N, d\), got 3"),
    ErrorInput("features that differ", lambda F, nn: F.linear_cross_entropy(x32(N, D), x32(C, D + 1),
                                                                            torch.zeros(N).long()),
               RuntimeError, r"input has 5 features but linear_weight \(7, 6\) takes 6"),
    ErrorInput("bias of the wrong shape", lambda F, nn: F.linear_cross_entropy(x32(N, D), x32(C, D),
                                                                               torch.zeros(N).long(),
                                                                               linear_bias=x32(C + 1)),
               RuntimeError, r"expected linear_bias of shape \(7,\), got \(8,\)"),
    ErrorInput("target out of range", lambda F, nn: F.linear_cross_entropy(x32(N, D), x32(C, D),
                                                                           torch.full((N,), C).long()),
               IndexError, r"target 7 is out of bounds: class indices must lie in \[0, 6\]", torch_class=IndexError),
    ErrorInput("ignore_index with probabilities",
               lambda F, nn: F.linear_cross_entropy(x32(N, D), x32(C, D), torch.softmax(x32(N, C), 1), ignore_index=0),
               RuntimeError, r"ignore_index cannot be specified when target contains probabilities"),
    ErrorInput("target of another batch", lambda F, nn: F.linear_cross_entropy(x32(N, D), x32(C, D),
                                                                               torch.zeros(N + 1).long()),
               RuntimeError, r"target of shape \(7,\) does not match the logits", torch_class=ValueError),
    ErrorInput("reduction 'average'", lambda F, nn: F.linear_cross_entropy(x32(N, D), x32(C, D), torch.zeros(N).long(),
                                                                           reduction="average"),
               ValueError, r"reduction must be one of \('none', 'mean', 'sum'\), got 'average'"),
    ErrorInput("K-dimensional weight, unbatched input",
               lambda F, nn: F.linear_cross_entropy(x32(D), x32(C, 2, D), torch.zeros(2).long()), RuntimeError,
               r"a K-dimensional loss .* needs a batched input"),
)


def _modules():
    if not hasattr(torch.nn, "LinearCrossEntropyLoss"):
        return {}

    def tokens(*target_shape):
        return lambda gen: (randn(gen, N, D), torch.randint(0, C, (N, *target_shape), generator=gen))

    return {torch.nn.LinearCrossEntropyLoss: tuple(ModuleSample(name, draw, (D, C), kwargs) for name, draw, kwargs in [
        ("no bias, mean", tokens(), {}),
        ("bias, label_smoothing 0.1, sum", tokens(), {"bias": True, "label_smoothing": 0.1, "reduction": "sum"}),
        ("out_features (2, 3), bias, none", tokens(2, 3), {"out_features": (2, 3), "bias": True, "reduction": "none"}),
        ("chunks of 2 rows", tokens(), {"options": _options(2)}),
    ])}


OP_INFOS = (OpInfo("linear_cross_entropy", _reference, _samples, linear_cross_entropy_numpy, _bench, errors=_ERRORS,
                   modules=_modules(), parameters=(1, "linear_bias")),)
