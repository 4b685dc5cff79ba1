"""2-D convolution: the seed's layer y = x Wᵀ + b applied to every patch of the input.

Notation: x the input (N, C, H, W), W the weight (out, C / groups, kh, kw), b the bias (out,),
y the output (N, out, H', W'), g = dL/dy. A patch is what the kernel sees at one output position
(p, q): patch(x)[n, :, p, q] holds the C·kh·kw values x_pad[n, c, p·s + i·d, q·s + j·d] of the
zero-padded input, for stride s, dilation d, every channel c of the group and every kernel tap
(i, j). With W_mat = W.reshape(out, C·kh·kw) (one group; with groups, each group of out / groups
output channels sees its own C / groups input channels):

    y[n, :, p, q] = W_mat · patch(x)[n, :, p, q] + b

which is the seed's Linear on each patch, so its three gradients follow from ``linear_backward``
(handgrad.ops.linear) summed over the positions:

- dL/dW = Σ_{n,p,q} g[n, :, p, q] patch(x)[n, :, p, q]ᵀ, the seed's gᵀx with one row per position;
- dL/db = Σ_{n,p,q} g[n, :, p, q];
- dL/dx: each patch gets the seed's g W, g[n, :, p, q]ᵀ W_mat; patches overlap, so every pixel sums
  what the patches it appears in send back. That sum is the transposed convolution convᵀ(g, W).

All three are themselves bilinear maps of the same family: writing conv(x, W) for y − b,
⟨conv(x, W), g⟩ = ⟨x, convᵀ(g, W)⟩ = ⟨W, Σ g patch(x)ᵀ⟩, so the gradient of each of the three with
respect to either of its arguments is again one of the three (see ``Conv2dInputGrad`` and
``Conv2dWeightGrad``). Backward is made of these Functions, which is what makes double backward
(and any order) hand-derived too.
"""

import numbers

import torch

from handgrad.ops._checks import LOWER, autocast, check_same_dtype_and_device, check_tensor
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register

# -- the three bilinear maps, computed (forward kernels only) ---------------------------------------
#
# ``padding`` is ((top, bottom), (left, right)): equal sides except for padding='same' with an even
# dilated kernel, where the extra row and column go to the bottom and right, as torch puts them.


def _pad_excess(x, padding):
    """x zero-padded by what one side has more than the other, and the symmetric padding left."""
    (top, bottom), (left, right) = padding
    h, w = min(top, bottom), min(left, right)
    if (top, left) != (bottom, right):
        x = torch.nn.functional.pad(x, (left - w, right - w, top - h, bottom - h))
    return x, (h, w)


def conv(x, W, b, stride, padding, dilation, groups):
    """y = conv(x, W) + b, (N, out, H', W'): torch's forward kernel."""
    x, symmetric = _pad_excess(x, padding)
    return torch.conv2d(x, W, b, stride, symmetric, dilation, groups)


def conv_transposed(g, W, stride, padding, dilation, groups, size):
    """convᵀ(g, W), (N, C, *size): each position's g[n, :, p, q]ᵀ W_mat added back onto the pixels of
    its patch. The windows reach (H' − 1)·s + d·(kh − 1) + 1 rows of the padded input; the rows past
    them (when the stride does not divide) are in no patch and get zeros (``output_padding``)."""
    symmetric, crop, output_padding = [], [], []
    for axis in range(2):
        before, after = padding[axis]
        reach = (g.shape[2 + axis] - 1) * stride[axis] + dilation[axis] * (W.shape[2 + axis] - 1) + 1
        output_padding.append(size[axis] + before + after - reach)
        symmetric.append(min(before, after))
        crop.append(before - symmetric[-1])
    x_grad = torch.conv_transpose2d(g, W, None, stride, symmetric, output_padding, groups, dilation)
    if any(before != after for before, after in padding):          # 'same' with an even kernel, or a ceil_mode pool
        x_grad = x_grad[..., crop[0]:crop[0] + size[0], crop[1]:crop[1] + size[1]].contiguous()
    return x_grad


def conv_weight_grad(x, g, stride, padding, dilation, groups, kernel):
    """Σ_{n,p,q} g[n, :, p, q] patch(x)[n, :, p, q]ᵀ, (out, C / groups, kh, kw).

    Entry (o, c, i, j) is Σ_{n,p,q} g[n, o, p, q] x_pad[n, c, i·d + p·s, j·d + q·s]: a convolution of
    x with g as the kernel, stride d and dilation s, the sum over n being the sum over its input
    channels (batch and channels of x swapped). One call of the forward kernel, faster on the CPU
    than building the patches (unfold) and multiplying. With one input channel per group (depthwise,
    or C = 1), the sum over n is taken after a depthwise convolution with one group per (n, c)
    instead, which runs the CPU's depthwise kernel, faster than a grouped convolution with N
    channels per group. The output can hold a row or column more than the kernel (when the stride
    does not divide): cut.
    """
    x, symmetric = _pad_excess(x, padding)
    n, c, h, w = x.shape
    out, c_group = g.shape[1], c // groups
    if n == 0:                                               # no positions: the sum is empty
        return x.new_zeros(out, c_group, *kernel)
    if c_group == 1:
        kernels = g.reshape(n * out, 1, *g.shape[2:])                          # one group per (n, c)
        W_grad = torch.conv2d(x.reshape(1, n * c, h, w), kernels, None, dilation, symmetric, stride, n * c)
        return W_grad.view(n, out, 1, *W_grad.shape[2:])[..., :kernel[0], :kernel[1]].sum(0)
    xs = x.unflatten(1, (groups, c_group)).permute(2, 1, 0, 3, 4).reshape(c_group, groups * n, h, w)
    gs = g.unflatten(1, (groups, out // groups)).permute(1, 2, 0, 3, 4).reshape(out, n, *g.shape[2:])
    W_grad = torch.conv2d(xs, gs, None, dilation, symmetric, stride, groups)    # (C / groups, out, ≥ kh, ≥ kw)
    return W_grad[:, :, :kernel[0], :kernel[1]].transpose(0, 1).contiguous()


# -- the Functions -------------------------------------------------------------------------------


class Conv2d(HandFunction):
    """y = conv(x, W) + b for x (N, C, H, W), W (out, C / groups, kh, kw), b (out,) or None."""

    @staticmethod
    def forward(x, W, b, stride, padding, dilation, groups):
        return conv(x, W, b, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b, *geometry = inputs
        ctx.save_for_backward(x, W)
        ctx.save_for_forward(x, W)
        ctx.geometry, ctx.has_bias = tuple(geometry), b is not None

    @staticmethod
    def backward(ctx, g):
        """dL/dx = convᵀ(g, W), dL/dW = Σ_{n,p,q} g patch(x)ᵀ, dL/db = Σ g (see the module docstring)."""
        x, W = ctx.saved_tensors
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = apply(Conv2dInputGrad, g, W, *ctx.geometry, tuple(x.shape[2:]))    # convᵀ(g, W), (N, C, H, W)
        if ctx.needs_input_grad[1]:
            grad_W = apply(Conv2dWeightGrad, x, g, *ctx.geometry, tuple(W.shape[2:]))   # Σ g patch(x)ᵀ, W's shape
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum((0, 2, 3))                                                   # Σ_{n,p,q} g, (out,)
        return grad_x, grad_W, grad_b, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, dW, db, *_):
        """Forward mode, y − b being bilinear in (x, W): dy = conv(dx, W) + conv(x, dW) + db."""
        x, W = ctx.saved_tensors
        dy = multilinear_jvp(conv, (x, W, None, *ctx.geometry), (dx, dW))
        if db is None:
            return dy
        return db[:, None, None] + (0 if dy is None else dy)


class Conv2dInputGrad(HandFunction):
    """x̄ = convᵀ(g, W), (N, C, H, W): dL/dx of ``Conv2d`` as a Function of (g, W), so that its own
    gradient is hand-derived. From ⟨h, convᵀ(g, W)⟩ = ⟨conv(h, W), g⟩ = ⟨W, Σ g patch(h)ᵀ⟩ for the
    gradient h = dL/dx̄ arriving from above: dL/dg = conv(h, W) and dL/dW = Σ g patch(h)ᵀ."""

    @staticmethod
    def forward(g, W, stride, padding, dilation, groups, size):
        return conv_transposed(g, W, stride, padding, dilation, groups, size)

    @staticmethod
    def setup_context(ctx, inputs, output):
        g, W, *geometry, _ = inputs
        ctx.save_for_backward(g, W)
        ctx.save_for_forward(g, W)
        ctx.geometry, ctx.size = tuple(geometry), inputs[-1]

    @staticmethod
    def backward(ctx, h):
        g, W = ctx.saved_tensors
        grad_g = grad_W = None
        if ctx.needs_input_grad[0]:
            grad_g = apply(Conv2d, h, W, None, *ctx.geometry)                           # conv(h, W), g's shape
        if ctx.needs_input_grad[1]:
            grad_W = apply(Conv2dWeightGrad, h, g, *ctx.geometry, tuple(W.shape[2:]))   # Σ g patch(h)ᵀ, W's shape
        return grad_g, grad_W, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dg, dW, *_):
        """Forward mode, x̄ being bilinear in (g, W): dx̄ = convᵀ(dg, W) + convᵀ(g, dW)."""
        g, W = ctx.saved_tensors
        return multilinear_jvp(conv_transposed, (g, W, *ctx.geometry, ctx.size), (dg, dW))


class Conv2dWeightGrad(HandFunction):
    """W̄ = Σ_{n,p,q} g patch(x)ᵀ, (out, C / groups, kh, kw): dL/dW of ``Conv2d`` as a Function of
    (x, g). From ⟨h, Σ g patch(x)ᵀ⟩ = ⟨conv(x, h), g⟩ = ⟨x, convᵀ(g, h)⟩ for the gradient h = dL/dW̄
    arriving from above: dL/dx = convᵀ(g, h) and dL/dg = conv(x, h)."""

    @staticmethod
    def forward(x, g, stride, padding, dilation, groups, kernel):
        return conv_weight_grad(x, g, stride, padding, dilation, groups, kernel)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, g, *geometry, _ = inputs
        ctx.save_for_backward(x, g)
        ctx.save_for_forward(x, g)
        ctx.geometry, ctx.kernel = tuple(geometry), inputs[-1]

    @staticmethod
    def backward(ctx, h):
        x, g = ctx.saved_tensors
        grad_x = grad_g = None
        if ctx.needs_input_grad[0]:
            grad_x = apply(Conv2dInputGrad, g, h, *ctx.geometry, tuple(x.shape[2:]))    # convᵀ(g, h), x's shape
        if ctx.needs_input_grad[1]:
            grad_g = apply(Conv2d, x, h, None, *ctx.geometry)                           # conv(x, h), g's shape
        return grad_x, grad_g, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, dg, *_):
        """Forward mode, W̄ being bilinear in (x, g): dW̄ = Σ g patch(dx)ᵀ + Σ dg patch(x)ᵀ."""
        x, g = ctx.saved_tensors
        return multilinear_jvp(conv_weight_grad, (x, g, *ctx.geometry, ctx.kernel), (dx, dg))


# -- functional face -------------------------------------------------------------------------------


def int_pair(fn, name, value, minimum, what):
    """(a, b) from an int or a sequence of one or two ints, each at least ``minimum``.

    A value that is not made of ints raises TypeError (as torch's argument parser does), the wrong
    count or a value out of range RuntimeError (as torch's checks do); ``what`` says what a valid
    value is (e.g. "positive").
    """
    values = tuple(value) if isinstance(value, (tuple, list, torch.Size)) else (value,)
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{fn}: {name} must be an int or a tuple of two ints, got {value!r}")
    if len(values) not in (1, 2):
        raise RuntimeError(f"{fn}: {name} must be an int or a tuple of two ints (height, width), got {value!r}")
    pair = (int(values[0]), int(values[-1]))
    if min(pair) < minimum:
        raise RuntimeError(f"{fn}: {name} must be {what}, got {value!r}")
    return pair


def _conv_padding(padding, kernel, stride, dilation):
    """((top, bottom), (left, right)) from an int, a pair, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise RuntimeError(f"conv2d: padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}")
        if stride != (1, 1):
            raise RuntimeError(f"conv2d: padding='same' is not supported for strided convolutions (stride={stride}); "
                               f"pad explicitly with an int or a pair of ints")
        # The output keeps the input's size: d·(k − 1) rows of padding, the odd one at the bottom (right).
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((total // 2, total - total // 2) for total in totals)
    top, left = int_pair("conv2d", "padding", padding, 0, "non-negative (negative padding is not supported)")
    return (top, top), (left, left)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y = W_mat · patch(x) + b at every position, as ``torch.nn.functional.conv2d``.

    Shapes: input (N, C, H, W) or unbatched (C, H, W); weight (out, C / groups, kh, kw); bias (out,);
    output (N, out, H', W') or (out, H', W'), H' = ⌊(H + 2·padding − dilation·(kh − 1) − 1) / stride⌋ + 1.
    ``padding`` may be an int, a pair, 'valid' (no padding) or 'same' (H' = H, stride 1 only).
    """
    check_tensor("conv2d", "input", input)
    check_tensor("conv2d", "weight", weight)
    if bias is not None:
        check_tensor("conv2d", "bias", bias)
    input, weight, bias = autocast(LOWER, input, weight, bias)
    if input.dim() not in (3, 4):
        raise RuntimeError(f"conv2d: input must be 4-D (N, C, H, W) or 3-D unbatched (C, H, W), "
                           f"got shape {tuple(input.shape)}")
    if weight.dim() != 4:
        raise RuntimeError(f"conv2d: weight must be 4-D (out_channels, in_channels / groups, kH, kW), "
                           f"got shape {tuple(weight.shape)}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"conv2d: groups must be an int, got {groups!r}")
    if groups < 1:
        raise RuntimeError(f"conv2d: groups must be positive, got {groups}")
    out_channels, channels = weight.shape[0], input.shape[-3]
    if out_channels == 0 or out_channels % groups:
        raise RuntimeError(f"conv2d: weight's out_channels ({out_channels}, shape {tuple(weight.shape)}) must be "
                           f"a positive multiple of groups={groups}")
    if channels != weight.shape[1] * groups:
        raise RuntimeError(
            f"conv2d: input has {channels} channels (shape {tuple(input.shape)}) but weight of shape "
            f"{tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups} "
            f"({weight.shape[1]} per group)")
    if bias is not None and bias.shape != (out_channels,):
        raise RuntimeError(f"conv2d: bias must be 1-D with one value per output channel, shape ({out_channels},), "
                           f"got shape {tuple(bias.shape)}")
    stride = int_pair("conv2d", "stride", stride, 1, "positive")
    dilation = int_pair("conv2d", "dilation", dilation, 1, "positive")
    kernel = tuple(weight.shape[2:])
    padding = _conv_padding(padding, kernel, stride, dilation)
    padded = tuple(size + before + after for size, (before, after) in zip(input.shape[-2:], padding))
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if padded[0] < span[0] or padded[1] < span[1]:
        raise RuntimeError(
            f"conv2d: the kernel spans {span[0]} × {span[1]} (kernel {kernel[0]} × {kernel[1]}, dilation "
            f"{dilation}) but the padded input is only {padded[0]} × {padded[1]} (input {tuple(input.shape)}, "
            f"padding {padding}): the kernel must fit in the padded input")
    check_same_dtype_and_device("conv2d", {"input": input, "weight": weight, "bias": bias})
    if input.dim() == 3:
        return apply(Conv2d, input.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    return apply(Conv2d, input, weight, bias, stride, padding, dilation, groups)


def _conv2d_module_forward(self, input):
    if self.padding_mode != "zeros":                         # padded by the built-in, then convolved unpadded
        input = torch.nn.functional.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        return conv2d(input, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
    return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _conv2d_module_unsupported(module):
    if module.padding_mode != "zeros":
        return (f"padding_mode={module.padding_mode!r}: the padding runs on the built-in "
                f"(F.pad, its backward built-in), then the hand conv")
    return ""





# -- samples and registration ----------------------------------------------------------------------


register(Op(
    "conv2d", conv2d, (Conv2d, Conv2dInputGrad, Conv2dWeightGrad),
    Derivative("y = W_mat · patch(x) + b at every position (the seed's Linear on each patch)",
               "dL/dx = convᵀ(g, W) (each patch's g W_mat added back), dL/dW = Σ_{n,p,q} g patch(x)ᵀ, "
               "dL/db = Σ g",
               "x (N, C, H, W), W (out, C / groups, kh, kw), W_mat (out, C·kh·kw / groups), b (out), "
               "g (N, out, H', W')"),
    modules={torch.nn.Conv2d: Module(_conv2d_module_forward, _conv2d_module_unsupported)},
))
