"""2-D pooling: the maximum or the average of each window, and the adaptive average.

Notation: x the input (N, C, H, W) (or unbatched (C, H, W)), y the output (N, C, H', W'),
g = dL/dy. A window is the set of input pixels output (p, q) reads: rows p·s − pad + i·d for the
kernel's taps i (dilation d, max pooling only), columns likewise, those in the padding left out.

Each pooled value depends on its window only, so each backward hands g[p, q] to the pixels of the
window (p, q) in the proportion they count in y[p, q]: all of it to the maximum, 1 / D to each pixel
of an average over D. Pixels in several windows (stride < kernel) sum what they receive.
"""


import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops.conv import int_pair


def pooled_size(size, kernel, stride, padding, dilation, ceil_mode):
    """H' as torch computes it: ⌊(H + 2·pad − d·(k − 1) − 1) / s⌋ + 1, rounded up with ceil_mode,
    except that the last window must start inside the input or its left padding."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


# -- max_pool2d -------------------------------------------------------------------------------------


class MaxPool2d(HandFunction):
    """y = max of each window of x, and i = where in x (the flat index h·W + w of its plane) the
    maximum was taken. x (N, C, H, W) → y, i (N, C, H', W')."""

    @staticmethod
    def forward(x, kernel, stride, padding, dilation, ceil_mode):
        return torch.nn.functional.max_pool2d_with_indices(x, kernel, stride, padding, dilation, ceil_mode)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, i = output
        ctx.mark_non_differentiable(i)
        ctx.save_for_backward(i)
        ctx.save_for_forward(i)
        x, kernel, stride, _, dilation, _ = inputs
        ctx.input_size = tuple(x.shape[-2:])
        ctx.windows_overlap = any(s < d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))

    @staticmethod
    def backward(ctx, g, _):
        """dL/dx[h, w] = Σ_{(p, q): i[p, q] = h·W + w} g[p, q]: y[p, q] = x[i[p, q]], so ∂y[p, q]/∂x is 1
        at the argmax and 0 elsewhere; a pixel that is the maximum of several windows sums their g.

        Where windows do not overlap (stride ≥ the dilated kernel), no pixel is the maximum of two
        windows, so placing each g at its argmax is the whole sum: max_unpool2d's forward kernel,
        faster on the CPU than scatter_add (but without a vmap rule: torch.func's
        transforms would loop over the batch, so they get scatter_add). Either is linear in g, with
        the gather h[i[p, q]] of the gradient h from above as its derivative (double backward)."""
        (i,) = ctx.saved_tensors
        size = ctx.input_size
        if ctx.windows_overlap or _in_torch_func(g):
            grad_x = g.new_zeros(*g.shape[:-2], size[0] * size[1])
            grad_x = grad_x.scatter_add(-1, i.flatten(-2), g.flatten(-2)).unflatten(-1, size)   # (N, C, H, W)
        else:
            grad_x = torch.ops.aten.max_unpool2d(g, i, size)                                   # (N, C, H, W)
        return grad_x, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: dy[p, q] = dx[i[p, q]], the gather; the indices have no tangent."""
        (i,) = ctx.saved_tensors
        return dx.flatten(-2).gather(-1, i.flatten(-2)).view(i.shape), None


def _in_torch_func(t):
    """Whether t is wrapped by a torch.func transform (vmap, grad); a question torch.compile cannot trace."""
    return not torch.compiler.is_compiling() and torch._C._functorch.is_functorch_wrapped_tensor(t)


def _pool_arguments(fn, input, kernel_size, stride, padding, dilation=1):
    """Check a pooling's input and window; return kernel, stride, padding, dilation as pairs."""
    check_tensor(fn, "input", input)
    if input.dim() not in (3, 4) or 0 in input.shape[-3:]:
        raise RuntimeError(f"{fn}: input must be 4-D (N, C, H, W) or 3-D unbatched (C, H, W) with C, H and W "
                           f"non-zero (N may be 0), got shape {tuple(input.shape)}")
    kernel = int_pair(fn, "kernel_size", kernel_size, 1, "positive")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        int_pair(fn, "stride", stride, 1, "positive")
    padding = int_pair(fn, "padding", padding, 0, "non-negative")
    dilation = int_pair(fn, "dilation", dilation, 1, "positive")
    for axis, name in enumerate(("height", "width")):
        if padding[axis] > kernel[axis] // 2:
            raise RuntimeError(f"{fn}: padding {padding} must be at most half the kernel {kernel} along each axis "
                               f"(got {padding[axis]} > {kernel[axis]} // 2 along the {name})")
    return kernel, stride, padding, dilation


def _check_output(fn, input, out, kernel, padding, dilation):
    if min(out) < 1:
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        raise RuntimeError(f"{fn}: the window spans {span[0]} × {span[1]} but the input {tuple(input.shape)} padded "
                           f"by {padding} is smaller: the output would be {out[0]} × {out[1]}")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """y = max over each window, as ``torch.nn.functional.max_pool2d``; with ``return_indices`` also
    the flat index (h·W + w) of each maximum in its plane.

    Shapes: input (N, C, H, W) or (C, H, W); output (N, C, H', W') or (C, H', W'), with H' from
    ``pooled_size``. ``stride`` defaults to ``kernel_size``.
    """
    kernel, stride, padding, dilation = _pool_arguments("max_pool2d", input, kernel_size, stride, padding, dilation)
    out = tuple(pooled_size(n, *a, ceil_mode) for n, a in zip(input.shape[-2:], zip(kernel, stride, padding, dilation)))
    _check_output("max_pool2d", input, out, kernel, padding, dilation)
    y, i = apply(MaxPool2d, input, kernel, stride, padding, dilation, ceil_mode)
    return (y, i) if return_indices else y



# -- averages over windows: y = A_h x A_wᵀ -------------------------------------------------------------
#
# Both average poolings average over windows that are a range of rows times a range of columns, with
# a divisor that is a row count times a column count (or one number, divisor_override). Row p of the
# averaging matrix A_h (H', H) holds 1 / count_p over its window's rows and 0 elsewhere, A_w (W', W)
# likewise, and y[p, q] = Σ_{h, w} A_h[p, h] x[h, w] A_w[q, w]: y = A_h x A_wᵀ, the seed's Linear on
# each side. So dL/dx = A_hᵀ g A_w, two matrix products that are again differentiable (double
# backward: A_h h A_wᵀ). At avg_pool2d's bench sizes they took 0.6 to 1.05 times as long as torch's
# backward kernel on the CPU, where a transposed convolution with a kernel of ones took up to twice.


def averaging_matrix(start, end, count, size, like):
    """A (out, size): A[p, h] = 1 / count[p] for start[p] ≤ h < end[p], 0 elsewhere."""
    pixel = torch.arange(size, device=like.device)
    inside = (pixel >= start[:, None]) & (pixel < end[:, None])
    return inside.to(like.dtype) / count[:, None].to(like.dtype)


def avg_pool_matrix(out, size, kernel, stride, padding, count_include_pad, divisor_override, like):
    """A (out, size) of avg_pool2d along one axis, as torch divides: window p covers the rows
    [p·s − pad, p·s − pad + k) cut at the far padding's end (H + pad; a ceil_mode window may reach
    past it); count_include_pad counts that span, otherwise only the rows inside the input count.
    With divisor_override, A only sums (count 1); the division by it is applied once, outside."""
    start = torch.arange(out, device=like.device) * stride - padding
    end = (start + kernel).clamp(max=size + padding)
    if divisor_override:
        count = torch.ones_like(start)
    else:
        count = end - start if count_include_pad else end.clamp(max=size) - start.clamp(min=0)
    return averaging_matrix(start, end, count, size, like)


def adaptive_matrix(out, size, like):
    """A (out, size) of adaptive_avg_pool2d along one axis: row i averages [⌊i·H / H'⌋, ⌈(i + 1)·H / H'⌉)."""
    i = torch.arange(out, device=like.device)
    start, end = i * size // out, ((i + 1) * size + out - 1) // out
    return averaging_matrix(start, end, end - start, size, like)


def average_backward(g, A_h, A_w):
    """dL/dx = A_hᵀ g A_w, (N, C, H, W): from y = A_h x A_wᵀ, linear in x."""
    return A_h.t().matmul(g).matmul(A_w)                     # (H, H') · (N, C, H', W') · (W', W)


# -- avg_pool2d -------------------------------------------------------------------------------------


class AvgPool2d(HandFunction):
    """y = A_h x A_wᵀ (÷ divisor_override): the average of each window, x (N, C, H, W) → y (N, C, H', W')."""

    @staticmethod
    def forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        return torch.nn.functional.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad,
                                              divisor_override)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.options, ctx.input_size = inputs[1:], tuple(inputs[0].shape[-2:])

    @staticmethod
    def backward(ctx, g):
        """dL/dx = A_hᵀ g A_w (÷ divisor_override): each window's g / D added onto each of its pixels."""
        kernel, stride, padding, _, count_include_pad, divisor_override = ctx.options
        A_h, A_w = (avg_pool_matrix(o, n, k, s, p, count_include_pad, divisor_override, g)
                    for o, n, k, s, p in zip(g.shape[-2:], ctx.input_size, kernel, stride, padding))
        grad_x = average_backward(g, A_h, A_w)               # (N, C, H, W)
        if divisor_override:
            grad_x = grad_x / divisor_override
        return grad_x, None, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: y is linear in x, so dy = A_h dx A_wᵀ, the same average pooling of dx."""
        return multilinear_jvp(AvgPool2d.forward, (None, *ctx.options), (dx, *(None for _ in ctx.options)))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """y = the average of each window, as ``torch.nn.functional.avg_pool2d``.

    Shapes: input (N, C, H, W) or (C, H, W); output (N, C, H', W') or (C, H', W'). The divisor of
    each window is its size counting the padding (``count_include_pad``) or not, or
    ``divisor_override``; ``stride`` defaults to ``kernel_size``.
    """
    kernel, stride, padding, _ = _pool_arguments("avg_pool2d", input, kernel_size, stride, padding)
    if divisor_override is not None:
        if not isinstance(divisor_override, int) or isinstance(divisor_override, bool):
            raise TypeError(f"avg_pool2d: divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise RuntimeError("avg_pool2d: divisor_override must not be zero")
    out = tuple(pooled_size(n, k, s, p, 1, ceil_mode) for n, k, s, p in zip(input.shape[-2:], kernel, stride, padding))
    _check_output("avg_pool2d", input, out, kernel, padding, (1, 1))
    return apply(AvgPool2d, input, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)



# -- adaptive_avg_pool2d ----------------------------------------------------------------------------


class AdaptiveAvgPool2d(HandFunction):
    """y = A_h x A_wᵀ, x (N, C, H, W) → y (N, C, H', W'), A_h (H', H) and A_w (W', W) the averaging
    matrices of windows that cover the input as evenly as integers allow (``adaptive_matrix``)."""

    @staticmethod
    def forward(x, output_size):
        return torch.nn.functional.adaptive_avg_pool2d(x, output_size)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.output_size = inputs
        ctx.input_size = tuple(x.shape[-2:])

    @staticmethod
    def backward(ctx, g):
        """dL/dx = A_hᵀ g A_w, (N, C, H, W). For the global average (1 × 1, a classifier's head)
        A_h = 1ᵀ / H and A_w = 1ᵀ / W: every pixel gets g / (H W), with no matrix built."""
        if ctx.output_size == (1, 1):
            height, width = ctx.input_size
            return (g / (height * width)).expand(*g.shape[:-2], height, width).contiguous(), None
        A_h, A_w = (adaptive_matrix(o, n, g) for o, n in zip(ctx.output_size, ctx.input_size))
        return average_backward(g, A_h, A_w), None

    @staticmethod
    def jvp(ctx, dx, _):
        """Forward mode: y is linear in x, so dy = A_h dx A_wᵀ, the same adaptive average of dx."""
        return multilinear_jvp(AdaptiveAvgPool2d.forward, (None, ctx.output_size), (dx, None))


def adaptive_avg_pool2d(input, output_size):
    """y = A_h x A_wᵀ: the average over H' × W' windows that cover the input as evenly as integers
    allow, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Shapes: input (N, C, H, W) or (C, H, W); output_size an int, or a pair whose None entries keep
    the input's size; output (N, C, H', W') or (C, H', W').
    """
    check_tensor("adaptive_avg_pool2d", "input", input)
    if input.dim() not in (3, 4) or 0 in input.shape[-2:]:
        raise RuntimeError(f"adaptive_avg_pool2d: input must be 4-D (N, C, H, W) or 3-D unbatched (C, H, W) with H "
                           f"and W non-zero, got shape {tuple(input.shape)}")
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list, torch.Size)) else (output_size, output_size)
    if len(sizes) != 2:
        raise RuntimeError(f"adaptive_avg_pool2d: output_size must be an int or a pair (H', W'), got {output_size!r}")
    sizes = tuple(n if o is None else o for o, n in zip(sizes, input.shape[-2:]))
    if not all(isinstance(o, int) and not isinstance(o, bool) for o in sizes):
        raise TypeError(f"adaptive_avg_pool2d: output_size must be ints (or None), got {output_size!r}")
    if min(sizes) < 0:
        raise RuntimeError(f"adaptive_avg_pool2d: output_size must be non-negative, got {output_size!r}")
    if not input.is_floating_point():
        raise NotImplementedError(f"adaptive_avg_pool2d: input must be floating point, got {input.dtype}")
    return apply(AdaptiveAvgPool2d, input, sizes)


# -- registration ----------------------------------------------------------------------------------

POOL_SHAPES = "x (N, C, H, W), y and g (N, C, H', W')"

register(Op(
    "max_pool2d", max_pool2d, (MaxPool2d,),
    Derivative("y[p, q] = max over window (p, q) of x = x[i[p, q]]",
               "dL/dx = g scattered to the argmax i of each window (summed where windows share it)", POOL_SHAPES),
    modules={torch.nn.MaxPool2d: Module(
        lambda self, input: max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                       self.ceil_mode, self.return_indices))},
    # F.max_pool2d(..., return_indices=True) reaches the mode as the function it dispatches to.
    intercepts={torch.nn.functional.max_pool2d_with_indices:
                lambda input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False:
                max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)},
))

register(Op(
    "avg_pool2d", avg_pool2d, (AvgPool2d,),
    Derivative("y = A_h x A_wᵀ: each window's sum / D, D = row count · column count (or divisor_override)",
               "dL/dx = A_hᵀ g A_w: each window's g / D added onto each of its pixels",
               POOL_SHAPES + ", A_h (H', H), A_w (W', W)"),
    modules={torch.nn.AvgPool2d: Module(
        lambda self, input: avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                       self.count_include_pad, self.divisor_override))},
))

register(Op(
    "adaptive_avg_pool2d", adaptive_avg_pool2d, (AdaptiveAvgPool2d,),
    Derivative("y = A_h x A_wᵀ, A the averaging matrices of the windows", "dL/dx = A_hᵀ g A_w",
               POOL_SHAPES + ", A_h (H', H), A_w (W', W)"),
    modules={torch.nn.AdaptiveAvgPool2d: Module(lambda self, input: adaptive_avg_pool2d(input, self.output_size))},
))
