"""Dropout: y = x ∘ m with m = keep / (1 − p), keep ~ Bernoulli(1 − p) elementwise, in training.

The mask is drawn by the functional face and handed to the Function as an input that needs no
gradient, so the derivation sees a product with a constant: dL/dx = g ∘ m.
"""

import numpy as np
import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, ModuleSample, Op, register
from handgrad.testing import Sample, randn


class Dropout(HandFunction):
    """y = x ∘ m with m = keep / (1 − p) a given scaled keep-mask."""

    @staticmethod
    def forward(x, m, inplace=False):
        return x.mul_(m) if inplace else x * m

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, m, inplace = inputs
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(m)
        ctx.save_for_forward(m)
        ctx.inplace = inplace

    @staticmethod
    def backward(ctx, g):
        (m,) = ctx.saved_tensors
        return g * m, None, None                             # dL/dx = g ∘ m = g keep / (1 − p), (*)

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: dy = dx ∘ m, (*)."""
        (m,) = ctx.saved_tensors
        return dx.mul_(m) if ctx.inplace else dx * m


def dropout(input, p=0.5, training=True, inplace=False):
    """y = x ∘ m / (1 − p), m ~ Bernoulli(1 − p) elementwise, in training; y = x otherwise.

    As ``torch.nn.functional.dropout``. On the CPU the mask is drawn and scaled exactly as the
    built-in does it, so the same seed drops the same elements and gives the same numbers; CUDA's
    built-in uses a fused kernel whose random stream differs, so there the masks differ (their
    distribution does not).
    """
    check_tensor("dropout", "input", input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if not input.is_floating_point():
        raise TypeError(f"dropout: input must be floating point, got {input.dtype}")
    if p == 1.0:
        m = torch.zeros_like(input)                          # drops everything, draws nothing
    else:
        # On the CPU in x's memory order, as the built-in draws it (the same seed, its very mask);
        # elsewhere in logical order, so that a transposed x drops the same elements as a contiguous
        # one (PyTorch's CUDA dropout does not: it dropped others, seen on an H100).
        cpu = input.device.type == "cpu"
        m = torch.empty_like(input) if cpu else torch.empty(input.shape, dtype=input.dtype, device=input.device)
        m = m.bernoulli_(1.0 - p).div_(1.0 - p)                         # keep / (1 − p)
    return apply(Dropout, input, m, inplace)


def dropout_numpy(x, p=0.5, training=True, inplace=False):
    """The keep-mask comes from torch's generator, as the Function's does (the harness seeds it
    before each call); on the CPU the mask does not depend on the dtype."""
    if not training or p == 0:
        return x, lambda g: (g,)
    keep = torch.empty(x.shape, dtype=torch.float64).bernoulli_(1 - p).numpy().astype(bool) if p < 1 else np.zeros(x.shape, bool)
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return np.where(keep, x * scale, 0.0), lambda g: (np.where(keep, g * scale, 0.0),)


def _dropout_samples(gen):
    # On CUDA torch's fused dropout kernel draws its mask from another random stream.
    forms = {"(N, D) p=0.3": ((10, 8), 0.3), "(B, C, H, W) p=0.5": ((2, 3, 4, 5), 0.5),
             "p=1 drops everything": ((6, 7), 1.0), "(0, D) empty": ((0, 7), 0.5)}
    return [Sample((randn(gen, *shape), p), name=name, reference_devices=("cpu",)) for name, (shape, p) in forms.items()]


register(Op(
    "dropout", dropout, torch.nn.functional.dropout, _dropout_samples, dropout_numpy, (Dropout,),
    Derivative("y = x ∘ m, m = keep / (1 − p)", "dL/dx = g ∘ m", "(*)"),
    modules={torch.nn.Dropout: Module(
        lambda self, input: dropout(input, self.p, self.training, self.inplace),
        tuple(ModuleSample(f"p={p}{', inplace' if inplace else ''}", lambda gen: (randn(gen, 20, 15),), (p, inplace),
                           train_devices=("cpu",))
              for p in (0.2, 0.5, 0.9) for inplace in (False, True)))},
    bench=lambda device: [("(1024, 512), p=0.2", (torch.randn(1024, 512, device=device, requires_grad=True), 0.2), {})],
))
