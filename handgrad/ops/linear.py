"""The seed's layer, y = x Wᵀ + b.

Notation: x a layer's input (*, in), W its weight stored (out, in) as in ``torch.nn.Linear`` (the
seed writes l = x W with W (in, out): the same numbers, transposed), b its bias, g = dL/dy (*, out).
"""

import math

import torch

from handgrad.ops._checks import LOWER, autocast, check_same_dtype_and_device, check_tensor
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register


def _matrix(t):
    """View ``(*, n)`` as ``(prod(*), n)``: every leading dimension acts as a batch dimension."""
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


class Linear(HandFunction):
    """y = x Wᵀ + b for ``x`` of shape (*, in), ``W`` (out, in), ``b`` broadcastable to (*, out)."""

    recomputable = "product"

    @staticmethod
    def forward(x, W, b=None):
        # The output must not be a view of a tensor made in here, or in-place ops on it (an
        # in-place ReLU after the layer) would be refused: hence no reshape of a 2-D product.
        if x.dim() == 2 and b is not None and b.dim() <= 1:
            return torch.addmm(b, x, W.t())                  # one fused kernel: b + x Wᵀ, (N, out)
        y = x.matmul(W.t())                                  # (*, out), folds * into one mm
        return y if b is None else y + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        needs = ctx.needs_input_grad
        ctx.save_for_backward(x if needs[1] else None, W if needs[0] else None)   # x for dL/dW, W for dL/dx
        ctx.save_for_forward(x, W)
        ctx.bias_shape = None if b is None else b.shape

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return linear_backward(ctx.needs_input_grad, ctx.bias_shape, g, x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        x, W = ctx.saved_tensors
        return linear_jvp(x, W, dx, dW, db)


def linear_backward(needs_input_grad, bias_shape, g, x, W):
    """dL/dx = g W, dL/dW = gᵀ x, dL/db = Σ g, each only if asked for.

    From y = x Wᵀ + b, one entry at a time: y_nj = Σ_i x_ni W_ji + b_j, so dy_nj/dx_ni = W_ji,
    dy_nj/dW_ji = x_ni and dy_nj/db_j = 1; summing over what each entry touches gives the three
    products. The leading dimensions * are flattened into one batch dimension N, so gᵀ x sums the
    outer products of all N rows, and Σ g sums g over every dimension along which b was broadcast.
    """
    grad_x = grad_W = grad_b = None
    rows = g.dim() == 2                                      # (N, out): nothing to flatten or broadcast
    if needs_input_grad[0]:
        grad_x = g.mm(W) if rows else g.matmul(W)            # dL/dx = g W, (*, in)
    if needs_input_grad[1]:
        grad_W = g.t().mm(x) if rows else _matrix(g).t().mm(_matrix(x))      # dL/dW = gᵀ x, (out, in)
    if bias_shape is not None and needs_input_grad[2]:
        plain = rows and len(bias_shape) == 1 and bias_shape[0] == g.shape[1]
        grad_b = g.sum(0) if plain else g.sum_to_size(bias_shape)             # dL/db = Σ g, b's shape
    return grad_x, grad_W, grad_b


def linear_jvp(x, W, dx, dW, db):
    """Forward mode: dy = dx Wᵀ + x dWᵀ + db: the product, linear in x and in W, applied to each
    tangent (``multilinear_jvp``), and the bias's own tangent, (*, out)."""
    dy = multilinear_jvp(Linear.forward, (x, W), (dx, dW))
    if db is None:
        return dy
    return dy + db if dy is not None else db.expand(*x.shape[:-1], W.shape[0])


# -- functional face -------------------------------------------------------------------------------


def linear(input, weight, bias=None):
    """y = x Wᵀ + b, as ``torch.nn.functional.linear``.

    Shapes: input (*, in), weight (out, in) or (in,), bias broadcastable to (*, out); output
    (*, out), or (*) for a 1-D weight.
    """
    if plain_layers(input, (weight, bias)):                     # checked: the common case needs no more
        return apply(Linear, input, weight, bias)
    input, weight, bias = _linear_arguments("linear", input, weight, bias)
    if weight.dim() == 1:
        return apply(Linear, input, weight.unsqueeze(0), None).squeeze(-1)
    return apply(Linear, input, weight, bias)


def _linear_arguments(fn, input, weight, bias, weight_1d=True):
    """Check linear's arguments; return them cast as autocast casts the built-in's (first, so that
    a float32 layer takes the autocast dtype its predecessor produced, as the built-in does)."""
    check_tensor(fn, "input", input)
    check_tensor(fn, "weight", weight)
    if bias is not None:
        check_tensor(fn, "bias", bias)
    input, weight, bias = autocast(LOWER, input, weight, bias)
    if input.dim() == 0:
        raise RuntimeError(f"{fn}: input must have at least 1 dimension (*, in_features), got a 0-d tensor")
    if weight.dim() != 2 and not (weight_1d and weight.dim() == 1):
        expected = "2-D (out_features, in_features) or 1-D (in_features,)" if weight_1d else "2-D (out_features, in_features)"
        raise RuntimeError(f"{fn}: weight must be {expected}, got shape {tuple(weight.shape)}")
    if input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"{fn}: input has {input.shape[-1]} features in its last dimension "
            f"(shape {tuple(input.shape)}) but weight of shape {tuple(weight.shape)} expects "
            f"{weight.shape[-1]}"
        )
    if bias is not None:
        if weight.dim() == 1:
            raise RuntimeError(f"{fn}: a 1-D weight takes no bias (torch.nn.functional.linear refuses it too)")
        out_shape = (*input.shape[:-1], weight.shape[0])
        if bias.shape != out_shape[-1:]:                     # the usual (out,) bias needs no question
            try:
                broadcasts = torch.broadcast_shapes(bias.shape, out_shape) == out_shape
            except RuntimeError:
                broadcasts = False
            if not broadcasts:
                raise RuntimeError(
                    f"{fn}: bias of shape {tuple(bias.shape)} does not broadcast to the output shape "
                    f"{out_shape}; expected a bias of shape ({weight.shape[0]},) for "
                    f"{weight.shape[0]} out_features"
                )
    check_same_dtype_and_device(fn, {"input": input, "weight": weight, "bias": bias})
    return input, weight, bias


def plain_layers(input, params):
    """Whether ``input`` and the layers ``params`` (W¹, b¹, ..., Wᴸ, bᴸ) are the common case, which
    needs no cast and passes every check of ``_linear_arguments``: weights (out, in) whose widths
    follow on from the input's, biases (out,) or None, all of the input's dtype and device, autocast
    off. It only answers; anything else takes the general path, which casts or names what is wrong."""
    if not isinstance(input, torch.Tensor) or input.dim() == 0:
        return False
    dtype, device = input.dtype, input.device
    if device.type != "meta" and torch.is_autocast_enabled("cpu" if input.is_cpu else device.type):
        return False
    width = input.shape[-1]
    for W, b in zip(params[::2], params[1::2]):
        if not isinstance(W, torch.Tensor) or W.dim() != 2 or W.dtype != dtype or W.device != device:
            return False
        out, in_ = W.shape
        if in_ != width or b is not None and (not isinstance(b, torch.Tensor) or b.dim() != 1 or b.shape[0] != out
                                              or b.dtype != dtype or b.device != device):
            return False
        width = out
    return True


register(Op(
    "linear", linear, (Linear,),
    Derivative("y = x Wᵀ + b", "dL/dx = g W, dL/dW = gᵀ x, dL/db = Σ g",
               "x (*, in), W (out, in), b (out) or broadcastable to (*, out), g (*, out)"),
    # MultiheadAttention's out_proj is a Linear under another name (its forward is Linear's).
    modules={torch.nn.Linear: Module(lambda self, input: linear(input, self.weight, self.bias)),
             torch.nn.modules.linear.NonDynamicallyQuantizableLinear:
                 Module(lambda self, input: linear(input, self.weight, self.bias))},
))
