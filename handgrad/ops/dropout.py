"""Dropout: y = x ∘ m with m = keep / (1 − p), keep ~ Bernoulli(1 − p) elementwise, in training.

The mask is drawn by the functional face and handed to the Function as an input that needs no
gradient, so the derivation sees a product with a constant: dL/dx = g ∘ m.
"""

import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register


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
        """Forward mode: dy = dx ∘ m, the forward on the tangent (in place, into dx)."""
        (m,) = ctx.saved_tensors
        return multilinear_jvp(Dropout.forward, (None, m, ctx.inplace), (dx, None, None))


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
        # one (PyTorch's CUDA dropout does not).
        cpu = input.device.type == "cpu"
        m = torch.empty_like(input) if cpu else torch.empty(input.shape, dtype=input.dtype, device=input.device)
        m = m.bernoulli_(1.0 - p).div_(1.0 - p)                         # keep / (1 − p)
    return apply(Dropout, input, m, inplace)


register(Op(
    "dropout", dropout, (Dropout,),
    Derivative("y = x ∘ m, m = keep / (1 − p)", "dL/dx = g ∘ m", "(*)"),
    modules={torch.nn.Dropout: Module(lambda self, input: dropout(input, self.p, self.training, self.inplace))},
))
