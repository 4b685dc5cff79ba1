"""Convolutions of any number of spatial dimensions, and their transposes: the seed's layer
y = x Wᵀ + b applied to every patch of the input.

Notation: x the input (N, C, *S) with S its n spatial sizes (L; H, W; or D, H, W), W the weight
(out, C / groups, *k), b the bias (out,), y the output (N, out, *S'), g = dL/dy. A patch is what the
kernel sees at one output position p = (p₁, ..., pₙ): patch(x)[n, :, p] holds the C·∏k values
x_pad[n, c, p·s + i·d] of the zero-padded input, for stride s, dilation d (per axis), every channel c
of the group and every kernel tap i = (i₁, ..., iₙ). With W_mat = W.reshape(out, C·∏k) (one group;
with groups, each group of out / groups output channels sees its own C / groups input channels):

    y[n, :, p] = W_mat · patch(x)[n, :, p] + b

which is the seed's Linear on each patch, so its three gradients follow from ``linear_backward``
(handgrad.ops.linear) summed over the positions:

- dL/dW = Σ_{n,p} g[n, :, p] patch(x)[n, :, p]ᵀ, the seed's gᵀx with one row per position;
- dL/db = Σ_{n,p} g[n, :, p];
- dL/dx: each patch gets the seed's g W, g[n, :, p]ᵀ W_mat; patches overlap, so every pixel sums
  what the patches it appears in send back. That sum is the transposed convolution convᵀ(g, W).

All three are bilinear maps of the same family: writing conv(x, W) for y − b,
⟨conv(x, W), g⟩ = ⟨x, convᵀ(g, W)⟩ = ⟨W, Σ g patch(x)ᵀ⟩, so the gradient of each of the three with
respect to either of its arguments is again one of the three (``ConvNd``, ``ConvTransposeNd``,
``ConvWeightGrad``). Backward is made of these Functions, which is what makes double backward (and
any order) hand-derived too. The transposed convolution of ``torch.nn.ConvTranspose2d`` is the same
``ConvTransposeNd``, y = convᵀ(x, W) + b, its gradients the same three maps read the other way.
Nothing here depends on the number of spatial dimensions: the forward kernel of each map is torch's
``conv{n}d`` / ``conv_transpose{n}d``, the very kernels the built-ins call.
"""

import torch

from handgrad.ops._checks import LOWER, autocast, check_same_dtype_and_device, check_tensor, int_tuple
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops.pad import pad as hand_pad

_CONV = {1: torch.conv1d, 2: torch.conv2d, 3: torch.conv3d}
_CONV_TRANSPOSE = {1: torch.conv_transpose1d, 2: torch.conv_transpose2d, 3: torch.conv_transpose3d}

# -- the three bilinear maps, computed (forward kernels only) ---------------------------------------
#
# ``padding`` is one (before, after) pair per spatial axis: equal sides except for padding='same'
# with an even dilated kernel, where the extra row goes after, as torch puts it, and for the
# convolution whose adjoint is a transposed convolution with output_padding, where after =
# padding − output_padding (the rows of y no window of x reaches), which may be negative.


def _aligned(x, padding):
    """x with zeros appended where an axis's padding after is longer than before, and the kernel's
    padding (the padding before, on both sides). Where the padding after is the shorter, the
    kernel's longer trailing padding can only add windows at the end, which ``_cut`` removes."""
    extra = [max(after - before, 0) for before, after in padding]
    if any(extra):
        x = torch.nn.functional.pad(x, [side for e in reversed(extra) for side in (0, e)])
    return x, tuple(before for before, _ in padding)


def _first(size):
    """The index of the first ``size`` positions along the trailing axes."""
    return (..., *map(slice, size))


def _cut(t, size):
    """t's first ``size`` positions along its spatial axes (the trailing ones), where it has more."""
    if tuple(t.shape[2:]) == tuple(size):
        return t
    return t[_first(size)].contiguous()


def output_size(size, kernel, stride, padding, dilation):
    """S' of a convolution along each axis: ⌊(S + before + after − d·(k − 1) − 1) / s⌋ + 1."""
    return tuple((n + before + after - d * (k - 1) - 1) // s + 1
                 for n, k, s, (before, after), d in zip(size, kernel, stride, padding, dilation))


def conv(x, W, b, stride, padding, dilation, groups):
    """y = conv(x, W) + b, (N, out, *S'): torch's forward kernel."""
    aligned, before = _aligned(x, padding)
    y = _CONV[W.dim() - 2](aligned, W, b, stride, before, dilation, groups)
    if any(before > after for before, after in padding):
        y = _cut(y, output_size(x.shape[2:], W.shape[2:], stride, padding, dilation))
    return y


def conv_transposed(g, W, b, stride, padding, dilation, groups, size):
    """convᵀ(g, W) + b, (N, C, *size): each position's g[n, :, p]ᵀ W_mat added back onto the pixels of
    its patch. The windows reach R = (S' − 1)·s + d·(k − 1) + 1 rows of the padded input, of which
    rows [before, before + size) are kept; those past R (when the stride does not divide, or a
    transposed convolution's output_padding) are in no patch and get zeros, which the kernel adds
    as its ``output_padding`` (less than the stride, or than the dilation, whenever the padding is
    one of a convolution's or a transposed convolution's)."""
    output_padding = []
    for axis, (before, _) in enumerate(padding):
        reach = (g.shape[2 + axis] - 1) * stride[axis] + dilation[axis] * (W.shape[2 + axis] - 1) + 1
        output_padding.append(max(0, 2 * before + size[axis] - reach))
    before = tuple(before for before, _ in padding)
    y = _CONV_TRANSPOSE[W.dim() - 2](g, W, b, stride, before, output_padding, groups, dilation)
    return _cut(y, size)                                # 'same' with an even kernel: the last rows are cut


def conv_weight_grad(x, g, stride, padding, dilation, groups, kernel):
    """Σ_{n,p} g[n, :, p] patch(x)[n, :, p]ᵀ, (out, C / groups, *k).

    Entry (o, c, i) is Σ_{n,p} g[n, o, p] x_pad[n, c, i·d + p·s]: a convolution of x with g as the
    kernel, stride d and dilation s, the sum over n being the sum over its input channels (batch
    and channels of x swapped). One call of the forward kernel, faster on the CPU than building
    the patches (unfold) and multiplying. With one input channel per group (depthwise, or C = 1),
    the sum over n is taken after a depthwise convolution with one group per (n, c) instead, which
    runs the CPU's depthwise kernel, faster than a grouped convolution with N channels per group.
    The output can hold a row or column more than the kernel (when the stride does not divide): cut.
    """
    x, before = _aligned(x, padding)
    n, c, *size = x.shape
    out, c_group, spatial = g.shape[1], c // groups, range(3, x.dim() + 1)
    kernel_conv = _CONV[x.dim() - 2]
    if n == 0:                                               # no positions: the sum is empty
        return x.new_zeros(out, c_group, *kernel)
    if c_group == 1:
        kernels = g.reshape(n * out, 1, *g.shape[2:])                          # one group per (n, c)
        W_grad = kernel_conv(x.reshape(1, n * c, *size), kernels, None, dilation, before, stride, n * c)
        return W_grad.view(n, out, 1, *W_grad.shape[2:])[_first(kernel)].sum(0)
    xs = x.unflatten(1, (groups, c_group)).permute(2, 1, 0, *spatial).reshape(c_group, groups * n, *size)
    gs = g.unflatten(1, (groups, out // groups)).permute(1, 2, 0, *spatial).reshape(out, n, *g.shape[2:])
    W_grad = kernel_conv(xs, gs, None, dilation, before, stride, groups)        # (C / groups, out, ≥ k)
    return W_grad[_first(kernel)].transpose(0, 1).contiguous()


def _channel_sum(g):
    """Σ over every axis but the channels': dL/db, (out,)."""
    return g.sum((0, *range(2, g.dim())))


def _plus_bias(dy, db, shape):
    """dy + db, db (out,) broadcast over the output's (N, out, *S); dy None counts as zeros."""
    db = db.view(-1, *(1 for _ in shape[2:]))
    return db.expand(shape) if dy is None else dy + db


# -- the Functions -------------------------------------------------------------------------------


class ConvNd(HandFunction):
    """y = conv(x, W) + b for x (N, C, *S), W (out, C / groups, *k), b (out,) or None."""

    @staticmethod
    def forward(x, W, b, stride, padding, dilation, groups):
        return conv(x, W, b, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b, *geometry = inputs
        ctx.save_for_backward(x, W)
        ctx.save_for_forward(x, W)
        ctx.geometry, ctx.has_bias, ctx.shape = tuple(geometry), b is not None, output.shape

    @staticmethod
    def backward(ctx, g):
        """dL/dx = convᵀ(g, W), dL/dW = Σ_{n,p} g patch(x)ᵀ, dL/db = Σ g (see the module docstring)."""
        x, W = ctx.saved_tensors
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = apply(ConvTransposeNd, g, W, None, *ctx.geometry, tuple(x.shape[2:]))  # convᵀ(g, W), x's shape
        if ctx.needs_input_grad[1]:
            grad_W = apply(ConvWeightGrad, x, g, *ctx.geometry, tuple(W.shape[2:]))          # Σ g patch(x)ᵀ, W's shape
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = _channel_sum(g)                                                        # Σ_{n,p} g, (out,)
        return grad_x, grad_W, grad_b, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, dW, db, *_):
        """Forward mode, y − b being bilinear in (x, W): dy = conv(dx, W) + conv(x, dW) + db."""
        x, W = ctx.saved_tensors
        dy = multilinear_jvp(conv, (x, W, None, *ctx.geometry), (dx, dW))
        return dy if db is None else _plus_bias(dy, db, ctx.shape)


class ConvTransposeNd(HandFunction):
    """y = convᵀ(x, W) + b, (N, C', *size): the transposed convolution (``conv_transpose{n}d``, with x
    (N, C, *S) and W (C, C' / groups, *k)), and dL/dx of ``ConvNd`` (x the g of a convolution from
    C' channels to C, b None). Its gradients, from ⟨h, convᵀ(x, W)⟩ = ⟨conv(h, W), x⟩ =
    ⟨W, Σ x patch(h)ᵀ⟩ for the gradient h = dL/dy arriving from above: dL/dx = conv(h, W),
    dL/dW = Σ x patch(h)ᵀ and dL/db = Σ h."""

    @staticmethod
    def forward(x, W, b, stride, padding, dilation, groups, size):
        return conv_transposed(x, W, b, stride, padding, dilation, groups, size)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b, *geometry, size = inputs
        ctx.save_for_backward(x, W)
        ctx.save_for_forward(x, W)
        ctx.geometry, ctx.size, ctx.has_bias, ctx.shape = tuple(geometry), size, b is not None, output.shape

    @staticmethod
    def backward(ctx, h):
        x, W = ctx.saved_tensors
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = apply(ConvNd, h, W, None, *ctx.geometry)                           # conv(h, W), x's shape
        if ctx.needs_input_grad[1]:
            grad_W = apply(ConvWeightGrad, h, x, *ctx.geometry, tuple(W.shape[2:]))     # Σ x patch(h)ᵀ, W's shape
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = _channel_sum(h)                                                    # Σ h, (C',)
        return grad_x, grad_W, grad_b, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, dW, db, *_):
        """Forward mode, y − b being bilinear in (x, W): dy = convᵀ(dx, W) + convᵀ(x, dW) + db."""
        x, W = ctx.saved_tensors
        dy = multilinear_jvp(conv_transposed, (x, W, None, *ctx.geometry, ctx.size), (dx, dW))
        return dy if db is None else _plus_bias(dy, db, ctx.shape)


class ConvWeightGrad(HandFunction):
    """W̄ = Σ_{n,p} g patch(x)ᵀ, (out, C / groups, *k): dL/dW of ``ConvNd`` as a Function of (x, g).
    From ⟨h, Σ g patch(x)ᵀ⟩ = ⟨conv(x, h), g⟩ = ⟨x, convᵀ(g, h)⟩ for the gradient h = dL/dW̄
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
            grad_x = apply(ConvTransposeNd, g, h, None, *ctx.geometry, tuple(x.shape[2:]))  # convᵀ(g, h), x's shape
        if ctx.needs_input_grad[1]:
            grad_g = apply(ConvNd, x, h, None, *ctx.geometry)                              # conv(x, h), g's shape
        return grad_x, grad_g, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, dg, *_):
        """Forward mode, W̄ being bilinear in (x, g): dW̄ = Σ g patch(dx)ᵀ + Σ dg patch(x)ᵀ."""
        x, g = ctx.saved_tensors
        return multilinear_jvp(conv_weight_grad, (x, g, *ctx.geometry, ctx.kernel), (dx, dg))


# -- functional faces ------------------------------------------------------------------------------

_BATCHED = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_UNBATCHED = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}
_KERNEL = {1: "kL", 2: "kH, kW", 3: "kD, kH, kW"}


def _conv_padding(fn, n, padding, kernel, stride, dilation):
    """One (before, after) pair per axis from an int, a tuple, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding != "same":
            raise RuntimeError(f"{fn}: padding must be 'same', 'valid', an int or a tuple of ints, got {padding!r}")
        if any(s != 1 for s in stride):
            raise RuntimeError(f"{fn}: padding='same' is not supported for strided convolutions (stride={stride}); "
                               f"pad explicitly with an int or a tuple of ints")
        # The output keeps the input's size: d·(k − 1) rows of padding, the odd one after.
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((total // 2, total - total // 2) for total in totals)
    padding = int_tuple(fn, "padding", padding, n, 0, "non-negative (negative padding is not supported)")
    return tuple((p, p) for p in padding)


def _check_shapes(fn, n, input, weight, bias, groups, transposed):
    """The checks every convolution and transposed convolution makes of its tensors and groups."""
    check_tensor(fn, "input", input)
    check_tensor(fn, "weight", weight)
    if bias is not None:
        check_tensor(fn, "bias", bias)
    if not _real(input, weight, bias):
        raise NotImplementedError(f"{fn}: complex tensors are not supported (their gradients need conjugates, which "
                                  f"this derivation leaves out); inside hand_derived() the built-in takes them")
    if input.dim() not in (n + 1, n + 2):
        raise RuntimeError(f"{fn}: input must be {n + 2}-D {_BATCHED[n]} or {n + 1}-D unbatched {_UNBATCHED[n]}, "
                           f"got shape {tuple(input.shape)}")
    layout = "in_channels, out_channels / groups" if transposed else "out_channels, in_channels / groups"
    if weight.dim() != n + 2:
        raise RuntimeError(f"{fn}: weight must be {n + 2}-D ({layout}, {_KERNEL[n]}), got shape {tuple(weight.shape)}")
    if not isinstance(groups, int) or isinstance(groups, bool):
        raise TypeError(f"{fn}: groups must be an int, got {groups!r}")
    if groups < 1:
        raise RuntimeError(f"{fn}: groups must be positive, got {groups}")
    channels = input.shape[-n - 1]
    if transposed:
        if weight.shape[0] % groups:
            raise RuntimeError(f"{fn}: weight's in_channels ({weight.shape[0]}, shape {tuple(weight.shape)}) must be a "
                               f"multiple of groups={groups}")
        if channels != weight.shape[0]:
            raise RuntimeError(f"{fn}: input has {channels} channels (shape {tuple(input.shape)}) but weight of shape "
                               f"{tuple(weight.shape)} expects {weight.shape[0]} (its first dimension)")
        out_channels = weight.shape[1] * groups
    else:
        out_channels = weight.shape[0]
        if out_channels == 0 or out_channels % groups:
            raise RuntimeError(f"{fn}: weight's out_channels ({out_channels}, shape {tuple(weight.shape)}) must be "
                               f"a positive multiple of groups={groups}")
        if channels != weight.shape[1] * groups:
            raise RuntimeError(
                f"{fn}: input has {channels} channels (shape {tuple(input.shape)}) but weight of shape "
                f"{tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups} "
                f"({weight.shape[1]} per group)")
    if bias is not None and bias.shape != (out_channels,):
        raise RuntimeError(f"{fn}: bias must be 1-D with one value per output channel, shape ({out_channels},), "
                           f"got shape {tuple(bias.shape)}")
    check_same_dtype_and_device(fn, {"input": input, "weight": weight, "bias": bias})


def _real(*args, **kwargs):
    """Whether no tensor among the arguments is complex: the calls the convolutions take inside
    ``hand_derived()`` (``Op.accepts``); a complex one runs the built-in, and the audit shows it."""
    return not any(isinstance(t, torch.Tensor) and t.is_complex() for t in (*args, *kwargs.values()))


def _batched(function, input, n, *args):
    """``function`` applied to input with a batch axis, taken away again for an unbatched input."""
    if input.dim() == n + 1:
        return apply(function, input.unsqueeze(0), *args).squeeze(0)
    return apply(function, input, *args)


def _convolution(fn, n, input, weight, bias, stride, padding, dilation, groups):
    """y = W_mat · patch(x) + b at every position: the face of conv1d, conv2d and conv3d."""
    check_tensor(fn, "input", input)
    input, weight, bias = autocast(LOWER, input, weight, bias)
    _check_shapes(fn, n, input, weight, bias, groups, transposed=False)
    stride = int_tuple(fn, "stride", stride, n, 1, "positive")
    dilation = int_tuple(fn, "dilation", dilation, n, 1, "positive")
    kernel = tuple(weight.shape[2:])
    padding = _conv_padding(fn, n, padding, kernel, stride, dilation)
    padded = tuple(size + before + after for size, (before, after) in zip(input.shape[-n:], padding))
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(p < s for p, s in zip(padded, span)):
        times = " × ".join
        raise RuntimeError(
            f"{fn}: the kernel spans {times(map(str, span))} (kernel {times(map(str, kernel))}, dilation {dilation}) "
            f"but the padded input is only {times(map(str, padded))} (input {tuple(input.shape)}, padding {padding}): "
            f"the kernel must fit in the padded input")
    return _batched(ConvNd, input, n, weight, bias, stride, padding, dilation, groups)


def _transposed_convolution(fn, n, input, weight, bias, stride, padding, output_padding, groups, dilation):
    """y = convᵀ(x, W) + b: the face of conv_transpose1d, conv_transpose2d and conv_transpose3d. The
    output has S_out = (S − 1)·s − 2·padding + d·(k − 1) + output_padding + 1 rows along each axis."""
    check_tensor(fn, "input", input)
    input, weight, bias = autocast(LOWER, input, weight, bias)
    _check_shapes(fn, n, input, weight, bias, groups, transposed=True)
    stride = int_tuple(fn, "stride", stride, n, 1, "positive")
    dilation = int_tuple(fn, "dilation", dilation, n, 1, "positive")
    padding = int_tuple(fn, "padding", padding, n, 0, "non-negative")
    output_padding = int_tuple(fn, "output_padding", output_padding, n, 0, "non-negative")
    if any(q >= max(s, d) for q, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeError(f"{fn}: output_padding {output_padding} must be smaller than the stride {stride} or the "
                           f"dilation {dilation} along each axis")
    kernel = tuple(weight.shape[2:])
    size = tuple((m - 1) * s - 2 * p + d * (k - 1) + q + 1 for m, s, p, d, k, q in
                 zip(input.shape[-n:], stride, padding, dilation, kernel, output_padding))
    if min(size) < 1 or 0 in input.shape[-n:]:
        raise RuntimeError(f"{fn}: the output would be {size} (input {tuple(input.shape)}, kernel {kernel}, stride "
                           f"{stride}, padding {padding}, dilation {dilation}, output_padding {output_padding}): each "
                           f"size must be positive")
    # The adjoint of the convolution from size S_out, padded by (padding, padding − output_padding).
    pairs = tuple((p, p - q) for p, q in zip(padding, output_padding))
    return _batched(ConvTransposeNd, input, n, weight, bias, stride, pairs, dilation, groups, size)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y = W_mat · patch(x) + b at every position, as ``torch.nn.functional.conv1d``.

    Shapes: input (N, C, L) or unbatched (C, L); weight (out, C / groups, kL); bias (out,); output
    (N, out, L') or (out, L'), L' = ⌊(L + 2·padding − dilation·(kL − 1) − 1) / stride⌋ + 1.
    ``padding`` may be an int, 'valid' (no padding) or 'same' (L' = L, stride 1 only).
    """
    return _convolution("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y = W_mat · patch(x) + b at every position, as ``torch.nn.functional.conv2d``.

    Shapes: input (N, C, H, W) or unbatched (C, H, W); weight (out, C / groups, kh, kw); bias (out,);
    output (N, out, H', W') or (out, H', W'), H' = ⌊(H + 2·padding − dilation·(kh − 1) − 1) / stride⌋ + 1.
    ``padding`` may be an int, a pair, 'valid' (no padding) or 'same' (H' = H, stride 1 only).
    """
    return _convolution("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y = W_mat · patch(x) + b at every position, as ``torch.nn.functional.conv3d``.

    Shapes: input (N, C, D, H, W) or unbatched (C, D, H, W); weight (out, C / groups, kD, kH, kW);
    bias (out,); output (N, out, D', H', W') or (out, D', H', W'), each size as conv2d's.
    ``padding`` may be an int, a triple, 'valid' (no padding) or 'same' (stride 1 only).
    """
    return _convolution("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """y = convᵀ(x, W) + b, as ``torch.nn.functional.conv_transpose1d``: every position's
    x[n, :, p]ᵀ W_mat added onto the pixels of its patch in the output.

    Shapes: input (N, C, L) or (C, L); weight (C, out / groups, kL); bias (out,); output (N, out, L_out)
    or (out, L_out), L_out = (L − 1)·stride − 2·padding + dilation·(kL − 1) + output_padding + 1.
    """
    return _transposed_convolution("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding,
                                   groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """y = convᵀ(x, W) + b, as ``torch.nn.functional.conv_transpose2d``.

    Shapes: input (N, C, H, W) or (C, H, W); weight (C, out / groups, kH, kW); bias (out,); output
    (N, out, H_out, W_out) or (out, H_out, W_out), each size as conv_transpose1d's.
    """
    return _transposed_convolution("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding,
                                   groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """y = convᵀ(x, W) + b, as ``torch.nn.functional.conv_transpose3d``.

    Shapes: input (N, C, D, H, W) or (C, D, H, W); weight (C, out / groups, kD, kH, kW); bias (out,);
    output (N, out, D_out, H_out, W_out) or unbatched, each size as conv_transpose1d's.
    """
    return _transposed_convolution("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding,
                                   groups, dilation)


_FACES = {1: conv1d, 2: conv2d, 3: conv3d}
_TRANSPOSED_FACES = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}


def _conv_module_forward(n):
    """torch.nn.Conv{n}d's forward: padding_mode 'reflect', 'replicate' or 'circular' pads with
    ``handgrad.functional.pad``, then convolves unpadded."""
    face = _FACES[n]

    def forward(self, input):
        if self.padding_mode != "zeros":
            input = hand_pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return face(input, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return face(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
    return forward


def _conv_transpose_module_forward(n):
    """torch.nn.ConvTranspose{n}d's forward: ``output_size`` chooses the output_padding."""
    face = _TRANSPOSED_FACES[n]

    def forward(self, input, output_size=None):
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size, n,
                                              self.dilation)
        return face(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                    self.dilation)
    return forward


# -- registration ----------------------------------------------------------------------------------

_FUNCTIONS = (ConvNd, ConvTransposeNd, ConvWeightGrad)
_X = {1: "x (N, C, L)", 2: "x (N, C, H, W)", 3: "x (N, C, D, H, W)"}
_G = {1: "g (N, out, L')", 2: "g (N, out, H', W')", 3: "g (N, out, D', H', W')"}
_TAPS_SHAPE = {1: "k", 2: "kh, kw", 3: "kd, kh, kw"}
_TAPS = {1: "C·k", 2: "C·kh·kw", 3: "C·kd·kh·kw"}

for _n in (1, 2, 3):
    register(Op(
        f"conv{_n}d", _FACES[_n], _FUNCTIONS,
        Derivative("y = W_mat · patch(x) + b at every position (the seed's Linear on each patch)",
                   "dL/dx = convᵀ(g, W) (each patch's g W_mat added back), dL/dW = Σ_{n,p} g patch(x)ᵀ, "
                   "dL/db = Σ g",
                   f"{_X[_n]}, W (out, C / groups, {_TAPS_SHAPE[_n]}), W_mat (out, {_TAPS[_n]} / groups), b (out), {_G[_n]}"),
        modules={getattr(torch.nn, f"Conv{_n}d"): Module(_conv_module_forward(_n))},
        accepts=_real,
    ))

for _n in (1, 2, 3):
    register(Op(
        f"conv_transpose{_n}d", _TRANSPOSED_FACES[_n], _FUNCTIONS,
        Derivative("y = convᵀ(x, W) + b: each position's x W_mat added onto its patch of y",
                   "dL/dx = conv(g, W), dL/dW = Σ_{n,p} x patch(g)ᵀ, dL/db = Σ g",
                   f"{_X[_n]}, W (C, out / groups, {_TAPS_SHAPE[_n]}), b (out), "
                   f"g (N, out, *S_out)"),
        modules={getattr(torch.nn, f"ConvTranspose{_n}d"): Module(_conv_transpose_module_forward(_n))},
        accepts=_real,
    ))
