"""2-D pooling: the maximum or the average of each window, and the adaptive average.

Notation: x the input (N, C, H, W) (or unbatched (C, H, W)), y the output (N, C, H', W'),
g = dL/dy. A window is the set of input pixels output (p, q) reads: rows p·s − pad + i·d for the
kernel's taps i (dilation d, max pooling only), columns likewise, those in the padding left out.

Each pooled value depends on its window only, so each backward hands g[p, q] to the pixels of the
window (p, q) in the proportion they count in y[p, q]: all of it to the maximum, 1 / D to each pixel
of an average over D. Pixels in several windows (stride < kernel) sum what they receive.
"""

import math

import numpy as np
import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, ModuleSample, Op, register
from handgrad.ops.conv import int_pair
from handgrad.testing import ErrorInput, Sample, randn


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
        1.5 times faster on the CPU than scatter_add (but without a vmap rule: torch.func's
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


def max_pool2d_numpy(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Loops over windows, the first maximum of each (a NaN counts as the maximum, the last one
    seen), as torch picks it."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _numpy_pairs(kernel_size, stride or kernel_size, padding, dilation)
    h, w = x.shape[-2:]
    out_h, out_w = pooled_size(h, kh, sh, ph, dh, ceil_mode), pooled_size(w, kw, sw, pw, dw, ceil_mode)
    planes = x.reshape(-1, h, w)
    y = np.empty((planes.shape[0], out_h, out_w))
    index = np.zeros(y.shape, dtype=np.int64)
    for c, plane in enumerate(planes):
        for p in range(out_h):
            for q in range(out_w):
                best, at = -np.inf, None
                for r in range(p * sh - ph, p * sh - ph + dh * (kh - 1) + 1, dh):
                    for s in range(q * sw - pw, q * sw - pw + dw * (kw - 1) + 1, dw):
                        if 0 <= r < h and 0 <= s < w:
                            at = r * w + s if at is None else at
                            if plane[r, s] > best or np.isnan(plane[r, s]):
                                best, at = plane[r, s], r * w + s
                y[c, p, q], index[c, p, q] = best, at
    shape = x.shape[:-2] + (out_h, out_w)

    def vjp(g):
        dx = np.zeros(planes.shape).reshape(planes.shape[0], -1)
        for c, (g_c, i_c) in enumerate(zip(g.reshape(-1, out_h * out_w), index.reshape(-1, out_h * out_w))):
            np.add.at(dx[c], i_c, g_c)                       # each g to its argmax, summed
        return (dx.reshape(x.shape),)

    return ((y.reshape(shape), index.reshape(shape)) if return_indices else y.reshape(shape)), vjp


def _numpy_pairs(*values):
    return [(v, v) if isinstance(v, int) else (v[0], v[-1]) for v in values]


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
        """Forward mode: dy = A_h dx A_wᵀ, the same average pooling of dx."""
        return AvgPool2d.forward(dx, *ctx.options)


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


def avg_pool2d_numpy(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                     divisor_override=None):
    """Loops over windows: the sum over the pixels inside the input, divided as torch divides."""
    (kh, kw), (sh, sw), (ph, pw) = _numpy_pairs(kernel_size, stride or kernel_size, padding)
    h, w = x.shape[-2:]
    out_h, out_w = pooled_size(h, kh, sh, ph, 1, ceil_mode), pooled_size(w, kw, sw, pw, 1, ceil_mode)
    windows = []                                             # (rows, columns, divisor) per output position
    for p in range(out_h):
        for q in range(out_w):
            r0, s0 = p * sh - ph, q * sw - pw
            r1, s1 = min(r0 + kh, h + ph), min(s0 + kw, w + pw)
            rows, cols = slice(max(r0, 0), min(r1, h)), slice(max(s0, 0), min(s1, w))
            inside = (rows.stop - rows.start) * (cols.stop - cols.start)
            divisor = divisor_override or ((r1 - r0) * (s1 - s0) if count_include_pad else inside)
            windows.append((p, q, rows, cols, divisor))
    y = np.zeros(x.shape[:-2] + (out_h, out_w))
    for p, q, rows, cols, divisor in windows:
        y[..., p, q] = x[..., rows, cols].sum((-2, -1)) / divisor

    def vjp(g):
        dx = np.zeros(x.shape)
        for p, q, rows, cols, divisor in windows:
            dx[..., rows, cols] += (g[..., p, q] / divisor)[..., None, None]
        return (dx,)

    return y, vjp


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
        """Forward mode: dy = A_h dx A_wᵀ, the same adaptive average of dx."""
        return AdaptiveAvgPool2d.forward(dx, ctx.output_size)


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


def adaptive_avg_pool2d_numpy(x, output_size):
    """Loops over the windows [⌊i·H / H'⌋, ⌈(i + 1)·H / H'⌉) × the same for columns."""
    h, w = x.shape[-2:]
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    out_h, out_w = (n if o is None else o for o, n in zip(sizes, (h, w)))
    windows = [(i, j, slice(i * h // out_h, math.ceil((i + 1) * h / out_h)),
                slice(j * w // out_w, math.ceil((j + 1) * w / out_w)))
               for i in range(out_h) for j in range(out_w)]
    y = np.zeros(x.shape[:-2] + (out_h, out_w))
    for i, j, rows, cols in windows:
        y[..., i, j] = x[..., rows, cols].mean((-2, -1))

    def vjp(g):
        dx = np.zeros(x.shape)
        for i, j, rows, cols in windows:
            size = (rows.stop - rows.start) * (cols.stop - cols.start)
            dx[..., rows, cols] += (g[..., i, j] / size)[..., None, None]
        return (dx,)

    return y, vjp


# -- samples ---------------------------------------------------------------------------------------


def _max_pool2d_samples(gen):
    def sample(name, shape, *args, **kwargs):
        return Sample((randn(gen, *shape), *args), kwargs, name)

    def special(name, shape, values, *args, gradcheck=True):
        x = randn(gen, *shape, requires_grad=False)
        for index, value in values:
            x[index] = value
        return Sample((x.requires_grad_(), *args), {}, name, gradcheck=gradcheck)

    nan, inf = float("nan"), float("inf")
    return [
        sample("2×2", (2, 3, 6, 6), 2),
        sample("3×3, stride 2", (2, 2, 7, 7), 3, 2),
        sample("3×3, stride 2, padding 1 (overlapping)", (2, 2, 7, 8), 3, 2, 1),
        sample("(2, 3) kernel, stride (1, 2), padding (1, 1), dilation (2, 1)", (2, 2, 7, 8), (2, 3), (1, 2), (1, 1),
               (2, 1)),
        sample("dilation 2", (1, 3, 8, 7), 2, 1, 0, 2),
        sample("ceil_mode, partial last window", (2, 2, 6, 7), 3, 2, ceil_mode=True),
        sample("ceil_mode, padding 1, last window dropped", (1, 2, 6, 6), 2, 4, 1, ceil_mode=True),
        sample("ceil_mode, dilation 2, padding 1", (1, 2, 7, 6), 3, 2, 1, 2, ceil_mode=True),
        sample("stride 3 > kernel 2", (2, 2, 8, 7), 2, 3),
        sample("1×1 kernel, stride 2", (2, 3, 5, 4), 1, 2),
        sample("kernel = input, 1×1 output", (2, 3, 4, 5), (4, 5)),
        sample("return_indices", (2, 3, 6, 5), 2, return_indices=True),
        sample("return_indices, ceil_mode, padding", (2, 2, 7, 5), 3, 2, 1, return_indices=True, ceil_mode=True),
        sample("stride=() means kernel_size", (2, 3, 6, 6), 2, ()),
        sample("(C, H, W) unbatched", (3, 6, 5), 2),
        sample("(C, H, W) unbatched, return_indices", (3, 7, 5), 3, 2, 1, return_indices=True),
        sample("(0, C, H, W) empty batch", (0, 3, 6, 6), 2),
        special("-inf in a window", (1, 2, 4, 4), [((0, 0, 0, 0), -inf), ((0, 1, 2, 3), -inf)], 2),
        special("a window all -inf", (1, 2, 4, 4), [((0, 1, slice(0, 2), slice(0, 2)), -inf)], 2, gradcheck=False),
        special("NaN in a window", (1, 2, 4, 4), [((0, 0, 1, 1), nan), ((0, 1, 2, 2), nan)], 2, gradcheck=False),
    ]


def _avg_pool2d_samples(gen):
    def sample(name, shape, *args, **kwargs):
        return Sample((randn(gen, *shape), *args), kwargs, name)

    return [
        sample("2×2", (2, 3, 6, 6), 2),
        sample("2×2, odd size (last row unused)", (2, 3, 7, 5), 2),
        sample("3×3, stride 2, padding 1", (2, 2, 7, 8), 3, 2, 1),
        sample("3×3, stride 2, padding 1, count_include_pad=False", (2, 2, 7, 8), 3, 2, 1, count_include_pad=False),
        sample("3×3, stride 1, padding 1 (overlapping)", (1, 2, 5, 6), 3, 1, 1),
        sample("(2, 3) kernel, stride (1, 2), padding (1, 1)", (2, 2, 6, 7), (2, 3), (1, 2), (1, 1)),
        sample("ceil_mode, partial last window", (2, 2, 6, 7), 3, 2, ceil_mode=True),
        sample("ceil_mode, 2×2 tiles, partial last tile", (2, 2, 5, 7), 2, ceil_mode=True),
        sample("ceil_mode, padding 1", (1, 2, 6, 6), 3, 2, 1, ceil_mode=True),
        sample("ceil_mode, padding 1, count_include_pad=False", (1, 2, 6, 6), 3, 2, 1, ceil_mode=True,
               count_include_pad=False),
        sample("ceil_mode, padding 1, last window dropped", (1, 2, 6, 6), 2, 4, 1, ceil_mode=True),
        sample("divisor_override=3", (2, 2, 6, 6), 2, divisor_override=3),
        sample("divisor_override=5, padding 1, ceil_mode", (1, 2, 6, 7), 3, 2, 1, True, False, 5),
        sample("stride 3 > kernel 2", (2, 2, 8, 7), 2, 3),
        sample("1×1 kernel, stride 2", (2, 3, 5, 4), 1, 2),
        sample("kernel = input, 1×1 output", (2, 3, 4, 5), (4, 5)),
        sample("stride as a list", (2, 3, 6, 6), 2, [1, 2]),
        sample("(C, H, W) unbatched", (3, 6, 5), 2),
        sample("(C, H, W) unbatched, padding, count_include_pad=False", (3, 6, 5), 3, 2, 1,
               count_include_pad=False),
        sample("(0, C, H, W) empty batch", (0, 3, 6, 6), 2),
    ]


def _adaptive_avg_pool2d_samples(gen):
    def sample(name, shape, output_size, **options):
        return Sample((randn(gen, *shape), output_size), {}, name, **options)

    return [
        sample("7×9 → 3×3 (uneven, overlapping windows)", (2, 3, 7, 9), 3),
        sample("7×9 → (4, 5)", (2, 2, 7, 9), (4, 5)),
        sample("6×8 → (3, 4) (even windows)", (2, 2, 6, 8), (3, 4)),
        sample("→ 1 (global average)", (2, 3, 5, 4), 1),
        sample("→ (None, 2): height kept", (2, 2, 5, 7), (None, 2)),
        sample("→ (3, None): width kept", (2, 2, 5, 7), [3, None]),
        sample("→ the input's size", (1, 2, 4, 5), (4, 5)),
        sample("→ larger than the input", (1, 2, 3, 4), (5, 7)),
        # torch computes the empty output but its backward refuses it, so it is compared with nothing.
        sample("→ 0×0 (empty output)", (1, 2, 3, 4), 0, reference_devices=()),
        sample("(C, H, W) unbatched", (3, 7, 6), (2, 4)),
        sample("(0, C, H, W) empty batch", (0, 3, 5, 5), 2),
    ]


# -- modules, errors, bench, registration -------------------------------------------------------------


def _module_samples(configurations):
    return tuple(ModuleSample(f"{name} on {shape}", lambda gen, shape=shape: (randn(gen, *shape),), args, kwargs)
                 for name, args, kwargs, shape in configurations)


_MAX_POOL_MODULES = _module_samples([
    ("MaxPool2d(2)", (2,), {}, (2, 3, 6, 6)),
    ("MaxPool2d(3, stride=2, padding=1)", (3,), {"stride": 2, "padding": 1}, (2, 3, 7, 8)),
    ("MaxPool2d((2, 3), dilation=(2, 1), ceil_mode=True)", ((2, 3),), {"dilation": (2, 1), "ceil_mode": True},
     (2, 2, 7, 8)),
    ("MaxPool2d(2, stride=3)", (2, 3), {}, (2, 3, 8, 7)),
    ("MaxPool2d(2)", (2,), {}, (3, 6, 5)),
    ("MaxPool2d(2)", (2,), {}, (0, 3, 6, 6)),
])
_AVG_POOL_MODULES = _module_samples([
    ("AvgPool2d(2)", (2,), {}, (2, 3, 6, 6)),
    ("AvgPool2d(3, stride=2, padding=1)", (3,), {"stride": 2, "padding": 1}, (2, 3, 7, 8)),
    ("AvgPool2d(3, 2, 1, count_include_pad=False)", (3, 2, 1), {"count_include_pad": False}, (2, 3, 7, 8)),
    ("AvgPool2d(3, 2, 1, ceil_mode=True)", (3, 2, 1), {"ceil_mode": True}, (2, 2, 6, 6)),
    ("AvgPool2d(2, ceil_mode=True, divisor_override=3)", (2,), {"ceil_mode": True, "divisor_override": 3},
     (2, 2, 5, 7)),
    ("AvgPool2d((2, 3), stride=(1, 2))", ((2, 3),), {"stride": (1, 2)}, (2, 2, 6, 7)),
    ("AvgPool2d(2)", (2,), {}, (3, 6, 5)),
    ("AvgPool2d(2)", (2,), {}, (0, 3, 6, 6)),
])
_ADAPTIVE_MODULES = _module_samples([
    ("AdaptiveAvgPool2d(3)", (3,), {}, (2, 3, 7, 9)),
    ("AdaptiveAvgPool2d(1)", (1,), {}, (2, 3, 5, 4)),
    ("AdaptiveAvgPool2d((None, 2))", ((None, 2),), {}, (2, 2, 5, 7)),
    ("AdaptiveAvgPool2d((5, 7))", ((5, 7),), {}, (1, 2, 3, 4)),
    ("AdaptiveAvgPool2d(2)", (2,), {}, (3, 7, 6)),
    ("AdaptiveAvgPool2d(2)", (2,), {}, (0, 3, 5, 5)),
])


def _x(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype)


def _pool_errors(name):
    """Bad input shared by max_pool2d and avg_pool2d (``name``), through F and through nn."""
    module = {"max_pool2d": "MaxPool2d", "avg_pool2d": "AvgPool2d"}[name]
    return (
        ErrorInput(f"{name}: 2-D input", lambda F, nn: getattr(F, name)(_x(4, 5), 2), RuntimeError,
                   r"input must be 4-D \(N, C, H, W\) or 3-D unbatched \(C, H, W\) .*got shape \(4, 5\)",
                   torch_class=IndexError if name == "avg_pool2d" else None),
        ErrorInput(f"{name}: 5-D input", lambda F, nn: getattr(F, name)(_x(1, 2, 3, 4, 4), 2), RuntimeError,
                   r"input must be 4-D .*got shape \(1, 2, 3, 4, 4\)"),
        ErrorInput(f"{name}: no channels", lambda F, nn: getattr(F, name)(_x(2, 0, 4, 4), 2), RuntimeError,
                   r"C, H and W non-zero \(N may be 0\), got shape \(2, 0, 4, 4\)"),
        ErrorInput(f"{name}: empty height", lambda F, nn: getattr(F, name)(_x(2, 3, 0, 4), 2), RuntimeError,
                   r"got shape \(2, 3, 0, 4\)"),
        ErrorInput(f"{name}: kernel_size 0", lambda F, nn: getattr(F, name)(_x(2, 3, 5, 5), 0, 1), RuntimeError,
                   r"kernel_size must be positive, got 0"),
        ErrorInput(f"{name}: stride -1", lambda F, nn: getattr(F, name)(_x(2, 3, 5, 5), 2, -1), RuntimeError,
                   r"stride must be positive, got -1"),
        ErrorInput(f"{name}: negative padding", lambda F, nn: getattr(F, name)(_x(2, 3, 5, 5), 2, padding=-1),
                   RuntimeError, r"padding must be non-negative, got -1"),
        ErrorInput(f"{name}: padding over half the kernel",
                   lambda F, nn: getattr(F, name)(_x(2, 3, 5, 5), 2, padding=2), RuntimeError,
                   r"padding \(2, 2\) must be at most half the kernel \(2, 2\) .*2 > 2 // 2"),
        ErrorInput(f"{name}: kernel larger than the input", lambda F, nn: getattr(F, name)(_x(2, 3, 5, 5), 7),
                   RuntimeError, r"window spans 7 × 7 but the input \(2, 3, 5, 5\) padded by \(0, 0\) is smaller"),
        ErrorInput(f"{name}: kernel_size of three values", lambda F, nn: getattr(F, name)(_x(2, 3, 5, 5), (2, 2, 2)),
                   RuntimeError,
                   r"kernel_size must be an int or a tuple of two ints \(height, width\), got \(2, 2, 2\)"),
        ErrorInput(f"{name}: float kernel_size", lambda F, nn: getattr(F, name)(_x(2, 3, 5, 5), 2.0), TypeError,
                   r"kernel_size must be an int or a tuple of two ints, got 2\.0"),
        ErrorInput(f"{name}: list input", lambda F, nn: getattr(F, name)([[1.0]], 2), TypeError,
                   r"input must be a torch\.Tensor, got list"),
        ErrorInput(f"nn.{module}: kernel larger than the input", lambda F, nn: getattr(nn, module)(4)(_x(2, 3, 3, 3)),
                   RuntimeError, r"window spans 4 × 4 but the input \(2, 3, 3, 3\)"),
    )


_MAX_POOL_ERRORS = _pool_errors("max_pool2d") + (
    ErrorInput("max_pool2d: dilation 0", lambda F, nn: F.max_pool2d(_x(2, 3, 5, 5), 2, dilation=0), RuntimeError,
               r"dilation must be positive, got 0"),
    ErrorInput("max_pool2d: dilated kernel larger than the input",
               lambda F, nn: F.max_pool2d(_x(2, 3, 5, 5), 3, dilation=3), RuntimeError,
               r"window spans 7 × 7 but the input \(2, 3, 5, 5\)"),
)
_AVG_POOL_ERRORS = _pool_errors("avg_pool2d") + (
    ErrorInput("avg_pool2d: divisor_override 0", lambda F, nn: F.avg_pool2d(_x(2, 3, 5, 5), 2, divisor_override=0),
               RuntimeError, r"divisor_override must not be zero"),
    ErrorInput("avg_pool2d: float divisor_override",
               lambda F, nn: F.avg_pool2d(_x(2, 3, 5, 5), 2, divisor_override=2.5), TypeError,
               r"divisor_override must be an int or None, got 2\.5"),
)
_ADAPTIVE_ERRORS = (
    ErrorInput("adaptive_avg_pool2d: 2-D input", lambda F, nn: F.adaptive_avg_pool2d(_x(4, 5), 2), RuntimeError,
               r"input must be 4-D \(N, C, H, W\) or 3-D unbatched \(C, H, W\) .*got shape \(4, 5\)"),
    ErrorInput("adaptive_avg_pool2d: empty height", lambda F, nn: F.adaptive_avg_pool2d(_x(2, 3, 0, 5), 2),
               RuntimeError, r"H and W non-zero, got shape \(2, 3, 0, 5\)"),
    ErrorInput("adaptive_avg_pool2d: negative output_size", lambda F, nn: F.adaptive_avg_pool2d(_x(2, 3, 5, 5), -1),
               RuntimeError, r"output_size must be non-negative, got -1"),
    ErrorInput("adaptive_avg_pool2d: output_size of three values",
               lambda F, nn: F.adaptive_avg_pool2d(_x(2, 3, 5, 5), (1, 2, 3)), RuntimeError,
               r"output_size must be an int or a pair \(H', W'\), got \(1, 2, 3\)"),
    ErrorInput("adaptive_avg_pool2d: string output_size",
               lambda F, nn: F.adaptive_avg_pool2d(_x(2, 3, 5, 5), ("a", 2)), TypeError,
               r"output_size must be ints \(or None\), got \('a', 2\)"),
    ErrorInput("adaptive_avg_pool2d: int64 input",
               lambda F, nn: F.adaptive_avg_pool2d(torch.ones(2, 3, 5, 5, dtype=torch.long), 2), NotImplementedError,
               r"input must be floating point, got torch\.int64"),
    ErrorInput("adaptive_avg_pool2d: list input", lambda F, nn: F.adaptive_avg_pool2d([[1.0]], 2), TypeError,
               r"input must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("nn.AdaptiveAvgPool2d: 5-D input", lambda F, nn: nn.AdaptiveAvgPool2d(2)(_x(1, 2, 3, 4, 4)),
               RuntimeError, r"input must be 4-D .*got shape \(1, 2, 3, 4, 4\)"),
)


def _input(device, *shape):
    return torch.randn(*shape, device=device, requires_grad=True)


def _max_pool2d_bench(device):
    return [
        ("Fashion-MNIST: 128×32×28×28, 2×2", (_input(device, 128, 32, 28, 28), 2), {}),
        ("Fashion-MNIST: 128×64×14×14, 2×2", (_input(device, 128, 64, 14, 14), 2), {}),
        ("resnet18 stem: 8×64×112×112, 3×3 stride 2 padding 1", (_input(device, 8, 64, 112, 112), 3, 2, 1), {}),
    ]


def _avg_pool2d_bench(device):
    return [
        ("Fashion-MNIST: 128×32×28×28, 2×2", (_input(device, 128, 32, 28, 28), 2), {}),
        ("8×64×56×56, 3×3 stride 1 padding 1", (_input(device, 8, 64, 56, 56), 3, 1, 1), {}),
        ("8×64×56×56, 3×3 stride 2 padding 1, count_include_pad=False, ceil_mode",
         (_input(device, 8, 64, 56, 56), 3, 2, 1, True, False), {}),
    ]


def _adaptive_avg_pool2d_bench(device):
    return [
        ("resnet18 head: 8×512×7×7 → 1×1", (_input(device, 8, 512, 7, 7), 1), {}),
        ("128×64×7×7 → 1×1", (_input(device, 128, 64, 7, 7), 1), {}),
        ("8×64×56×56 → 7×7", (_input(device, 8, 64, 56, 56), 7), {}),
    ]


POOL_SHAPES = "x (N, C, H, W), y and g (N, C, H', W')"

register(Op(
    "max_pool2d", max_pool2d, torch.nn.functional.max_pool2d, _max_pool2d_samples, max_pool2d_numpy, (MaxPool2d,),
    Derivative("y[p, q] = max over window (p, q) of x = x[i[p, q]]",
               "dL/dx = g scattered to the argmax i of each window (summed where windows share it)", POOL_SHAPES),
    modules={torch.nn.MaxPool2d: Module(
        lambda self, input: max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                       self.ceil_mode, self.return_indices),
        _MAX_POOL_MODULES)},
    bench=_max_pool2d_bench,
    errors=_MAX_POOL_ERRORS,
))

register(Op(
    "avg_pool2d", avg_pool2d, torch.nn.functional.avg_pool2d, _avg_pool2d_samples, avg_pool2d_numpy,
    (AvgPool2d,),
    Derivative("y = A_h x A_wᵀ: each window's sum / D, D = row count · column count (or divisor_override)",
               "dL/dx = A_hᵀ g A_w: each window's g / D added onto each of its pixels",
               POOL_SHAPES + ", A_h (H', H), A_w (W', W)"),
    modules={torch.nn.AvgPool2d: Module(
        lambda self, input: avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                       self.count_include_pad, self.divisor_override),
        _AVG_POOL_MODULES)},
    bench=_avg_pool2d_bench,
    errors=_AVG_POOL_ERRORS,
))

register(Op(
    "adaptive_avg_pool2d", adaptive_avg_pool2d, torch.nn.functional.adaptive_avg_pool2d, _adaptive_avg_pool2d_samples,
    adaptive_avg_pool2d_numpy, (AdaptiveAvgPool2d,),
    Derivative("y = A_h x A_wᵀ, A the averaging matrices of the windows", "dL/dx = A_hᵀ g A_w",
               POOL_SHAPES + ", A_h (H', H), A_w (W', W)"),
    modules={torch.nn.AdaptiveAvgPool2d: Module(lambda self, input: adaptive_avg_pool2d(input, self.output_size),
                                                _ADAPTIVE_MODULES)},
    bench=_adaptive_avg_pool2d_bench,
    errors=_ADAPTIVE_ERRORS,
))
