"""The tensor algebra between layers, by hand: y = a + α b, the residual connection and the added
position embedding.

Broadcasting. ``a`` of shape (N, L, E) plus ``b`` of shape (L, E) (or (E), or a number) adds the same
b to every row: y_nlj = a_nlj + α b_lj. So dL/da_nlj = g_nlj, and b_lj, used N times, receives
dL/db_lj = α Σ_n g_nlj: each input's gradient is g summed over the dimensions it was broadcast along
(``sum_to``), which is the same rule for every broadcasting op.
"""

import torch

from handgrad.ops._checks import as_dtype, check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Op, register


def sum_to(g, shape):
    """g summed over the dimensions its input of ``shape`` was broadcast along: the leading
    dimensions it lacked, and those where it had size 1."""
    if tuple(g.shape) == tuple(shape):
        return g
    return g.sum_to_size(shape) if len(shape) else g.sum()


class Add(HandFunction):
    """y = a + α b, a and b broadcast against each other (b may be a number)."""

    @staticmethod
    def forward(a, b, alpha):
        return torch.add(a, b, alpha=alpha)

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b, alpha = inputs
        ctx.shapes = [t.shape if isinstance(t, torch.Tensor) else None for t in (a, b)]
        ctx.dtypes = [t.dtype if isinstance(t, torch.Tensor) else None for t in (a, b)]
        ctx.alpha, ctx.out = alpha, (output.shape, output.dtype)

    @staticmethod
    def backward(ctx, g):
        (shape_a, shape_b), (dtype_a, dtype_b) = ctx.shapes, ctx.dtypes
        grad_a = as_dtype(sum_to(g, shape_a), dtype_a) if ctx.needs_input_grad[0] else None   # dL/da = g
        grad_b = None
        if ctx.needs_input_grad[1]:
            grad_b = sum_to(g if ctx.alpha == 1 else g * ctx.alpha, shape_b)                  # dL/db = α Σ g
            grad_b = as_dtype(grad_b, dtype_b)
        return grad_a, grad_b, None

    @staticmethod
    def jvp(ctx, da, db, _):
        """Forward mode: dy = da + α db, broadcast as the forward broadcasts."""
        shape, dtype = ctx.out
        dy = db * ctx.alpha if da is None else da if db is None else torch.add(da, db, alpha=ctx.alpha)
        return as_dtype(dy, dtype) if dy.shape == shape else dy.expand(shape).to(dtype, copy=True)


def add(input, other, *, alpha=1):
    """y = input + alpha · other, broadcasting, as ``torch.add``; ``other`` may be a number."""
    check_tensor("add", "input", input)
    if not isinstance(other, (torch.Tensor, int, float, bool)):
        raise TypeError(f"add: other must be a torch.Tensor or a number, got {type(other).__name__}")
    if isinstance(other, torch.Tensor):
        try:
            torch.broadcast_shapes(input.shape, other.shape)
        except RuntimeError:
            raise RuntimeError(f"add: input of shape {tuple(input.shape)} and other of shape {tuple(other.shape)} do "
                               f"not broadcast (each dimension, from the last, must be equal or 1)") from None
    return apply(Add, input, other, alpha)


register(Op(
    "add", add, (Add,),
    Derivative("y = a + α b", "dL/da = g, dL/db = α g, each summed over the dimensions it was broadcast along",
               "a, b broadcastable; y their broadcast shape"),
    fused_by="the transformer layers' residual connections",
))
