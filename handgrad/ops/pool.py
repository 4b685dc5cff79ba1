"""Pooling over 1, 2 or 3 spatial dimensions: the maximum or the average of each window (sliding or
adaptive), and the power average built from them.

Notation: x the input (N, C, *S) (or unbatched (C, *S)), S its n spatial sizes, y the output
(N, C, *S'), g = dL/dy. A window is the set of input pixels output p = (p₁, ..., pₙ) reads: along
each axis, rows p·s − pad + i·d for the kernel's taps i (dilation d, max pooling only), those in the
padding left out; adaptive pooling's windows cover the input as evenly as integers allow.

Each pooled value depends on its window only, so each backward hands g[p] to the pixels of window p
in the proportion they count in y[p]: all of it to the maximum, 1 / D to each pixel of an average
over D. Pixels in several windows (stride < kernel) sum what they receive. Two rules cover every
pooling here, whatever the number of dimensions and however the windows are laid out:

- the maximum, y = x[i] with i the argmax of each window: dL/dx = g scattered to i (``TakeArgmax``);
- the average, y = x ×₁ A₁ ⋯ ×ₙ Aₙ with Aₐ the averaging matrix of axis a: dL/dx = g ×₁ A₁ᵀ ⋯ ×ₙ Aₙᵀ
  (``Average``).
"""

import inspect
import math
import numbers

import torch

from handgrad.ops._checks import LOW_PRECISION, check_tensor, computed_in, int_tuple
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops import elementwise
from handgrad.ops.elementwise import Abs, Mul, Neg, Pow, Where

_F = torch.nn.functional
_BATCHED = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_UNBATCHED = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}
_AXIS_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def pooled_size(size, kernel, stride, padding, dilation, ceil_mode):
    """S' along one axis as torch computes it: ⌊(S + 2·pad − d·(k − 1) − 1) / s⌋ + 1, rounded up
    with ceil_mode, except that the last window must start inside the input or its left padding."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def adaptive_windows(out, size, device):
    """(start, end) of adaptive pooling's windows along one axis: [⌊i·S / S'⌋, ⌈(i + 1)·S / S'⌉)."""
    i = torch.arange(out, device=device)
    return i * size // out, ((i + 1) * size + out - 1) // out


# -- the maximum: y = x[i] ----------------------------------------------------------------------------


class TakeArgmax(HandFunction):
    """y = the maximum of each window of x, and i = where in x (the flat index of its spatial plane,
    h·W + w in 2-D) the maximum was taken: y = x[i]. x (N, C, *S) → y, i (N, C, *S').

    A subclass computes y and i with its forward kernel (sliding windows: ``MaxPoolNd``; adaptive
    windows: ``AdaptiveMaxPoolNd``) and keeps i with ``keep_indices``, saying whether its windows
    can overlap; the derivative is this class's, stated once."""

    @staticmethod
    def keep_indices(ctx, x, i, n, windows_overlap):
        """What backward reads: the indices i (not x), x's n spatial sizes, whether windows overlap."""
        ctx.mark_non_differentiable(i)
        ctx.save_for_backward(i)
        ctx.save_for_forward(i)
        ctx.input_size, ctx.windows_overlap = tuple(x.shape[x.dim() - n:]), windows_overlap

    @staticmethod
    def backward(ctx, g, _):
        """dL/dx[j] = Σ_{p: i[p] = j} g[p]: y[p] = x[i[p]], so ∂y[p]/∂x is 1 at the argmax and 0
        elsewhere; a pixel that is the maximum of several windows sums their g.

        Where windows do not overlap, no pixel is the maximum of two windows, so placing each g at
        its argmax is the whole sum: max_unpool2d's forward kernel (on the flattened plane, for 1-D
        and 3-D windows), faster on the CPU than scatter_add (but without a vmap rule: torch.func's
        transforms would loop over the batch, so they get scatter_add). Either is linear in g, with
        the gather h[i[p]] of the gradient h from above as its derivative (double backward)."""
        (i,) = ctx.saved_tensors
        size = ctx.input_size
        n = len(size)
        if ctx.windows_overlap or _in_torch_func(g):
            # Summed in float32 for float16 and bfloat16 (a pixel may take the g of many windows), as torch's kernel.
            grad_x = g.new_zeros(*g.shape[:-n], math.prod(size), dtype=computed_in(g.dtype))
            grad_x = grad_x.scatter_add(-1, i.flatten(-n), g.flatten(-n).to(grad_x.dtype))
            grad_x = grad_x.unflatten(-1, size).to(g.dtype)                                    # (N, C, *S)
        elif n == 2:
            grad_x = torch.ops.aten.max_unpool2d(g, i, size)                                     # (N, C, H, W)
        else:
            plane = torch.ops.aten.max_unpool2d(g.flatten(-n).unsqueeze(-2), i.flatten(-n).unsqueeze(-2),
                                                (1, math.prod(size)))
            grad_x = plane.view(*g.shape[:-n], *size)                                            # (N, C, *S)
        return (grad_x, *(None for _ in ctx.needs_input_grad[1:]))

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: dy[p] = dx[i[p]], the gather; the indices have no tangent."""
        (i,) = ctx.saved_tensors
        n = len(ctx.input_size)
        return dx.flatten(-n).gather(-1, i.flatten(-n)).view(i.shape), None


def _in_torch_func(t):
    """Whether t is wrapped by a torch.func transform (vmap, grad); a question torch.compile cannot trace."""
    return not torch.compiler.is_compiling() and torch._C._functorch.is_functorch_wrapped_tensor(t)


_MAX_POOL = {1: _F.max_pool1d_with_indices, 2: _F.max_pool2d_with_indices, 3: _F.max_pool3d_with_indices}


class MaxPoolNd(TakeArgmax):
    """y, i = the maximum of each sliding window and where it was taken."""

    @staticmethod
    def forward(x, kernel, stride, padding, dilation, ceil_mode):
        return _MAX_POOL[len(kernel)](x, kernel, stride, padding, dilation, ceil_mode)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, kernel, stride, _, dilation, _ = inputs
        overlap = any(s < d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))   # stride < dilated kernel
        TakeArgmax.keep_indices(ctx, x, output[1], len(kernel), overlap)


_ADAPTIVE_MAX_POOL = {1: _F.adaptive_max_pool1d, 2: _F.adaptive_max_pool2d, 3: _F.adaptive_max_pool3d}


class AdaptiveMaxPoolNd(TakeArgmax):
    """y, i = the maximum of each adaptive window (``adaptive_windows``) and where it was taken."""

    @staticmethod
    def forward(x, output_size):
        return _ADAPTIVE_MAX_POOL[len(output_size)](x, output_size, return_indices=True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, output_size = inputs
        n = len(output_size)
        # Unless S' divides S, the windows [⌊i·S / S'⌋, ⌈(i + 1)·S / S'⌉) share pixels.
        overlap = any(o == 0 or size % o for size, o in zip(x.shape[x.dim() - n:], output_size))
        TakeArgmax.keep_indices(ctx, x, output[1], n, overlap)


# -- the average: y = x ×₁ A₁ ⋯ ×ₙ Aₙ ---------------------------------------------------------------------
#
# Every average pooling averages over windows that are a range of rows times a range of columns (times
# a range of depths), with a divisor that is a product of counts along the axes (or one number,
# divisor_override). Row p of the averaging matrix A (S', S) of an axis holds 1 / count_p over its
# window's rows and 0 elsewhere, and y[p, q] = Σ_{h, w} A_h[p, h] x[h, w] A_w[q, w]: y = A_h x A_wᵀ in
# 2-D, the seed's Linear on each side; in n dimensions y = x ×₁ A₁ ⋯ ×ₙ Aₙ, A applied along each axis.
# So dL/dx = g ×₁ A₁ᵀ ⋯ ×ₙ Aₙᵀ (A_hᵀ g A_w in 2-D), matrix products that are again differentiable
# (double backward: the same average of h). At avg_pool2d's bench sizes they took 0.6 to 1.05 times
# as long as torch's backward kernel on the CPU, where a transposed convolution with a kernel of
# ones took up to twice.


def averaging_matrix(start, end, count, size, like):
    """A (out, size): A[p, h] = 1 / count[p] for start[p] ≤ h < end[p], 0 elsewhere."""
    pixel = torch.arange(size, device=like.device)
    inside = (pixel >= start[:, None]) & (pixel < end[:, None])
    return inside.to(like.dtype) / count[:, None].to(like.dtype)


def avg_pool_matrix(out, size, kernel, stride, padding, count_include_pad, divisor_override, like):
    """A (out, size) of avg_pool along one axis, as torch divides: window p covers the rows
    [p·s − pad, p·s − pad + k) cut at the far padding's end (S + pad; a ceil_mode window may reach
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
    """A (out, size) of adaptive average pooling along one axis: row i averages its window; None for
    a single window over the whole axis (the global average of a classifier's head), A = 1ᵀ / S."""
    if out == 1:
        return None
    start, end = adaptive_windows(out, size, like.device)
    return averaging_matrix(start, end, end - start, size, like)


def average_backward(g, matrices, size):
    """dL/dx = g ×₁ A₁ᵀ ⋯ ×ₙ Aₙᵀ, (N, C, *S): A_hᵀ g A_w in 2-D, from y = A_h x A_wᵀ, linear in x.
    Along an axis whose A is None (1ᵀ / S), every row gets g / S, with no matrix built; where every
    A is (the global average of a classifier's head), every pixel gets g / ∏S at once."""
    n = len(matrices)
    if all(A is None for A in matrices):
        return (g / math.prod(size)).expand(*g.shape[:-n], *size).contiguous()
    for axis, A, rows in zip(range(-n, 0), matrices, size):
        if A is None:
            g = (g / rows).expand(*g.shape[:g.dim() + axis], rows, *g.shape[g.dim() + axis + 1:])
        elif axis == -1:
            g = g.matmul(A)                                  # (..., S'ₙ) · (S'ₙ, Sₙ)
        elif axis == -2:
            g = A.t().matmul(g)                              # (Sₐ, S'ₐ) · (..., S'ₐ, W)
        else:
            g = A.t().matmul(g.movedim(axis, -2)).movedim(-2, axis)
    return g.contiguous()


class Average(HandFunction):
    """y = x ×₁ A₁ ⋯ ×ₙ Aₙ (÷ divisor): the average of each window, x (N, C, *S) → y (N, C, *S').

    A subclass defines ``forward(x, *options)``, its kernel, and ``matrices(out, size, like,
    *options)``, the averaging matrix of each axis, and may define ``divisor(*options)``, a number
    divided once (divisor_override). The derivative is stated once, here, as Elementwise states
    its rule: setup_context, backward and jvp are made for each subclass from those."""

    @staticmethod
    def divisor(*options):
        return 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" not in vars(cls):                  # a twin (``make_twins``), whose forward is replaced
            return
        average, matrices, divisor = cls.forward, cls.matrices, cls.divisor

        def setup_context(ctx, inputs, output):
            x, *options = inputs
            n = len(options[0])                          # the kernel's or the output's sizes: one per axis
            ctx.options, ctx.input_size = tuple(options), tuple(x.shape[x.dim() - n:])

        def backward(ctx, g):
            """dL/dx = g ×₁ A₁ᵀ ⋯ ×ₙ Aₙᵀ (÷ divisor): each window's g / D added onto each of its pixels."""
            size = ctx.input_size
            grad_x = average_backward(g, matrices(tuple(g.shape[-len(size):]), size, g, *ctx.options), size)
            scale = divisor(*ctx.options)
            return (grad_x if scale == 1 else grad_x / scale, *(None for _ in ctx.options))    # (N, C, *S)

        def jvp(ctx, dx, *_):
            """Forward mode: y is linear in x, so dy is the same average pooling of dx."""
            return multilinear_jvp(average, (None, *ctx.options), (dx, *(None for _ in ctx.options)))

        cls.setup_context = staticmethod(setup_context)
        cls.backward = staticmethod(backward)
        cls.jvp = staticmethod(jvp)


_AVG_POOL = {1: _F.avg_pool1d, 2: _F.avg_pool2d, 3: _F.avg_pool3d}


class AvgPoolNd(Average):
    """y = the average of each sliding window, its divisor counting the padding or not (or divisor_override)."""

    @staticmethod
    def forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        override = () if len(kernel) == 1 else (divisor_override,)          # avg_pool1d takes none
        return _AVG_POOL[len(kernel)](x, kernel, stride, padding, ceil_mode, count_include_pad, *override)

    @staticmethod
    def matrices(out, size, like, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        return [avg_pool_matrix(*axis, count_include_pad, divisor_override, like)
                for axis in zip(out, size, kernel, stride, padding)]

    @staticmethod
    def divisor(kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        return divisor_override or 1


_ADAPTIVE_AVG_POOL = {1: _F.adaptive_avg_pool1d, 2: _F.adaptive_avg_pool2d, 3: _F.adaptive_avg_pool3d}


class AdaptiveAvgPoolNd(Average):
    """y = the average of each adaptive window (``adaptive_windows``)."""

    @staticmethod
    def forward(x, output_size):
        return _ADAPTIVE_AVG_POOL[len(output_size)](x, output_size)

    @staticmethod
    def matrices(out, size, like, output_size):
        return [adaptive_matrix(o, n, like) for o, n in zip(out, size)]


# -- functional faces ---------------------------------------------------------------------------------


_LETTERS = {1: ("C", "L"), 2: ("C", "H", "W"), 3: ("C", "D", "H", "W")}


def _check_input(fn, n, input, empty_channels=False):
    """input (N, C, *S) or (C, *S), with S (and C, unless ``empty_channels``) non-zero."""
    check_tensor(fn, "input", input)
    letters = _LETTERS[n][1:] if empty_channels else _LETTERS[n]
    if input.dim() not in (n + 1, n + 2) or 0 in input.shape[-len(letters):]:
        names = ", ".join(letters[:-1]) + " and " + letters[-1] if len(letters) > 1 else letters[0]
        raise RuntimeError(f"{fn}: input must be {n + 2}-D {_BATCHED[n]} or {n + 1}-D unbatched {_UNBATCHED[n]} "
                           f"with {names} non-zero (N may be 0), got shape {tuple(input.shape)}")


def _window(fn, n, input, kernel_size, stride, padding, dilation=1):
    """Check a pooling's input and window; return kernel, stride, padding, dilation, one int per axis."""
    _check_input(fn, n, input)
    kernel = int_tuple(fn, "kernel_size", kernel_size, n, 1, "positive")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        int_tuple(fn, "stride", stride, n, 1, "positive")
    padding = int_tuple(fn, "padding", padding, n, 0, "non-negative")
    dilation = int_tuple(fn, "dilation", dilation, n, 1, "positive")
    for axis, name in enumerate(_AXIS_NAMES[n]):
        if padding[axis] > kernel[axis] // 2:
            raise RuntimeError(f"{fn}: padding {padding} must be at most half the kernel {kernel} along each axis "
                               f"(got {padding[axis]} > {kernel[axis]} // 2 along the {name})")
    return kernel, stride, padding, dilation


def _check_windows(fn, input, kernel, stride, padding, dilation, ceil_mode):
    """That S' holds at least one window along each axis."""
    n = len(kernel)
    out = tuple(pooled_size(size, *axis, ceil_mode) for size, axis in
                zip(input.shape[-n:], zip(kernel, stride, padding, dilation)))
    if min(out) < 1:
        span = " × ".join(str(d * (k - 1) + 1) for k, d in zip(kernel, dilation))
        raise RuntimeError(f"{fn}: the window spans {span} but the input {tuple(input.shape)} padded by {padding} is "
                           f"smaller: the output would be {' × '.join(map(str, out))}")


def _max_pool(fn, n, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    kernel, stride, padding, dilation = _window(fn, n, input, kernel_size, stride, padding, dilation)
    _check_windows(fn, input, kernel, stride, padding, dilation, ceil_mode)
    y, i = apply(MaxPoolNd, input, kernel, stride, padding, dilation, ceil_mode)
    return (y, i) if return_indices else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """y = max over each window, as ``torch.nn.functional.max_pool1d``; with ``return_indices`` also
    the index of each maximum along L. Shapes: input (N, C, L) or (C, L); output (N, C, L') or
    (C, L'), L' from ``pooled_size``; ``stride`` defaults to ``kernel_size``."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """y = max over each window, as ``torch.nn.functional.max_pool2d``; with ``return_indices`` also
    the flat index (h·W + w) of each maximum in its plane.

    Shapes: input (N, C, H, W) or (C, H, W); output (N, C, H', W') or (C, H', W'), with H' from
    ``pooled_size``. ``stride`` defaults to ``kernel_size``.
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """y = max over each window, as ``torch.nn.functional.max_pool3d``; with ``return_indices`` also
    the flat index (d·H·W + h·W + w) of each maximum in its volume. Shapes: input (N, C, D, H, W) or
    (C, D, H, W); output (N, C, D', H', W') or unbatched."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _check_divisor(fn, divisor_override):
    if divisor_override is not None:
        if not isinstance(divisor_override, numbers.Integral) or isinstance(divisor_override, bool):
            raise TypeError(f"{fn}: divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise RuntimeError(f"{fn}: divisor_override must not be zero")


def _avg_pool(fn, n, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    kernel, stride, padding, _ = _window(fn, n, input, kernel_size, stride, padding)
    _check_divisor(fn, divisor_override)
    divisor_override = None if divisor_override is None else int(divisor_override)
    _check_windows(fn, input, kernel, stride, padding, (1,) * n, ceil_mode)
    options = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    if n == 3 and input.device.type == "cpu" and input.dtype in LOW_PRECISION:
        # The CPU has no half-precision avg_pool3d kernel: averaged in float32, as CUDA's kernel sums, rounded back.
        return apply(AvgPoolNd, input.float(), *options).to(input.dtype)
    return apply(AvgPoolNd, input, *options)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """y = the average of each window, as ``torch.nn.functional.avg_pool1d``. Shapes: input (N, C, L)
    or (C, L); output (N, C, L') or (C, L'). The divisor of each window is its size counting the
    padding (``count_include_pad``) or not; ``stride`` defaults to ``kernel_size``."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """y = the average of each window, as ``torch.nn.functional.avg_pool2d``.

    Shapes: input (N, C, H, W) or (C, H, W); output (N, C, H', W') or (C, H', W'). The divisor of
    each window is its size counting the padding (``count_include_pad``) or not, or
    ``divisor_override``; ``stride`` defaults to ``kernel_size``.
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """y = the average of each window, as ``torch.nn.functional.avg_pool3d``. Shapes: input
    (N, C, D, H, W) or (C, D, H, W); output (N, C, D', H', W') or unbatched; divisors as avg_pool2d's."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


_OUTPUT_SIZES = {1: "an int or a tuple of one int (L')", 2: "an int or a pair (H', W')",
                 3: "an int or a triple (D', H', W')"}


def _output_size(fn, n, input, output_size, empty_channels=False):
    """The adaptive pooling's output size, one int per axis, None entries keeping the input's size."""
    _check_input(fn, n, input, empty_channels)
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list, torch.Size)) else (output_size,) * n
    if len(sizes) != n:
        raise RuntimeError(f"{fn}: output_size must be {_OUTPUT_SIZES[n]}, got {output_size!r}")
    sizes = tuple(size if o is None else o for o, size in zip(sizes, input.shape[-n:]))
    if not all(isinstance(o, numbers.Integral) and not isinstance(o, bool) for o in sizes):
        raise TypeError(f"{fn}: output_size must be ints (or None), got {output_size!r}")
    sizes = tuple(int(o) for o in sizes)
    if min(sizes) < 0:
        raise RuntimeError(f"{fn}: output_size must be non-negative, got {output_size!r}")
    if not input.is_floating_point():
        raise NotImplementedError(f"{fn}: input must be floating point, got {input.dtype}")
    return sizes


def adaptive_avg_pool1d(input, output_size):
    """y = x A_Lᵀ: the average over L' windows that cover the input as evenly as integers allow, as
    ``torch.nn.functional.adaptive_avg_pool1d``. Shapes: input (N, C, L) or (C, L); output (N, C, L')."""
    return apply(AdaptiveAvgPoolNd, input, _output_size("adaptive_avg_pool1d", 1, input, output_size, True))


def adaptive_avg_pool2d(input, output_size):
    """y = A_h x A_wᵀ: the average over H' × W' windows that cover the input as evenly as integers
    allow, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Shapes: input (N, C, H, W) or (C, H, W); output_size an int, or a pair whose None entries keep
    the input's size; output (N, C, H', W') or (C, H', W').
    """
    return apply(AdaptiveAvgPoolNd, input, _output_size("adaptive_avg_pool2d", 2, input, output_size, True))


def adaptive_avg_pool3d(input, output_size):
    """y = x ×₁ A_d ×₂ A_h ×₃ A_w, as ``torch.nn.functional.adaptive_avg_pool3d``. Shapes: input
    (N, C, D, H, W) or (C, D, H, W); output_size an int or a triple (None keeps a size)."""
    return apply(AdaptiveAvgPoolNd, input, _output_size("adaptive_avg_pool3d", 3, input, output_size))


def _adaptive_max_pool(fn, n, input, output_size, return_indices):
    y, i = apply(AdaptiveMaxPoolNd, input, _output_size(fn, n, input, output_size))
    return (y, i) if return_indices else y


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """y = max over L' windows that cover the input as evenly as integers allow, as
    ``torch.nn.functional.adaptive_max_pool1d``; with ``return_indices`` the index of each maximum."""
    return _adaptive_max_pool("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """y = max over H' × W' adaptive windows, as ``torch.nn.functional.adaptive_max_pool2d``; with
    ``return_indices`` the flat index (h·W + w) of each maximum in its plane."""
    return _adaptive_max_pool("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """y = max over D' × H' × W' adaptive windows, as ``torch.nn.functional.adaptive_max_pool3d``."""
    return _adaptive_max_pool("adaptive_max_pool3d", 3, input, output_size, return_indices)


def _lp_pool(fn, n, input, norm_type, kernel_size, stride, ceil_mode):
    """y = (Σ_window x^r)^(1/r), r = norm_type, composed as torch composes it: k · avg_pool(x^r) (k the
    kernel's size), to the power 1/r; where that sum is zero its gradient is zero (torch's convention,
    a masked pass-through here); r = ±∞ is the max pooling of ±|x|."""
    check_tensor(fn, "input", input)
    if not isinstance(norm_type, (int, float)) or isinstance(norm_type, bool) or norm_type == 0:
        raise ValueError(f"{fn}: norm_type must be a non-zero number, got {norm_type!r}")
    if math.isinf(norm_type):
        max_pool, magnitude = _MAX_FACES[n], elementwise.abs(input)
        if norm_type > 0:
            return max_pool(magnitude, kernel_size, stride, 0, 1, ceil_mode)
        return elementwise.neg(max_pool(elementwise.neg(magnitude), kernel_size, stride, 0, 1, ceil_mode))
    kernel = int_tuple(fn, "kernel_size", kernel_size, n, 1, "positive")
    out = _AVG_FACES[n](elementwise.pow(input, norm_type), kernel, stride, 0, ceil_mode)    # avg over window of x^r
    kept = elementwise.where(out.detach() != 0, out, 0.0)                                  # no gradient where Σ = 0
    return elementwise.pow(elementwise.mul(kept, math.prod(kernel)), 1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """y = (Σ_window x^r)^(1/r), r = norm_type, as ``torch.nn.functional.lp_pool1d``."""
    return _lp_pool("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """y = (Σ_window x^r)^(1/r), r = norm_type, as ``torch.nn.functional.lp_pool2d``."""
    return _lp_pool("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """y = (Σ_window x^r)^(1/r), r = norm_type, as ``torch.nn.functional.lp_pool3d``."""
    return _lp_pool("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


_MAX_FACES = {1: max_pool1d, 2: max_pool2d, 3: max_pool3d}
_AVG_FACES = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}
_ADAPTIVE_AVG_FACES = {1: adaptive_avg_pool1d, 2: adaptive_avg_pool2d, 3: adaptive_avg_pool3d}
_ADAPTIVE_MAX_FACES = {1: adaptive_max_pool1d, 2: adaptive_max_pool2d, 3: adaptive_max_pool3d}
_LP_FACES = {1: lp_pool1d, 2: lp_pool2d, 3: lp_pool3d}


def _with_indices(face):
    """``face`` always returning the indices too, as ``F.max_pool2d_with_indices`` and the aten ops
    of that name do (their ``return_indices`` argument, where they take one, is ignored)."""
    parameters = list(inspect.signature(face).parameters)

    def call(*args, **kwargs):
        bound = dict(zip(parameters, args), **kwargs)
        bound["return_indices"] = True
        return face(**bound)
    return call


# -- registration ----------------------------------------------------------------------------------

_X = {1: "x (N, C, L), y and g (N, C, L')", 2: "x (N, C, H, W), y and g (N, C, H', W')",
      3: "x (N, C, D, H, W), y and g (N, C, D', H', W')"}
_MATRICES = {1: "A (L', L)", 2: "A_h (H', H), A_w (W', W)", 3: "A_d (D', D), A_h (H', H), A_w (W', W)"}
_AVERAGE = {1: "y = x Aᵀ", 2: "y = A_h x A_wᵀ", 3: "y = x ×₁ A_d ×₂ A_h ×₃ A_w"}
_AVERAGE_BACKWARD = {1: "dL/dx = g A", 2: "dL/dx = A_hᵀ g A_w", 3: "dL/dx = g ×₁ A_dᵀ ×₂ A_hᵀ ×₃ A_wᵀ"}


def _module(face, *attributes):
    """A pooling module's forward: ``face`` on the input and the module's ``attributes``."""
    def forward(self, input):
        return face(input, *(getattr(self, name) for name in attributes))
    return forward


_MAX_BACKWARD = "dL/dx = g scattered to the argmax i of each window (summed where windows share it)"

for _n in (1, 2, 3):
    register(Op(
        f"max_pool{_n}d", _MAX_FACES[_n], (MaxPoolNd,),
        Derivative("y[p] = max over window p of x = x[i[p]]",
                   _MAX_BACKWARD, _X[_n]),
        modules={getattr(torch.nn, f"MaxPool{_n}d"): Module(_module(
            _MAX_FACES[_n], "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"))},
        intercepts={getattr(torch, f"max_pool{_n}d"): None,
                    getattr(_F, f"max_pool{_n}d_with_indices"): _with_indices(_MAX_FACES[_n]),
                    **({torch.max_pool1d_with_indices: _with_indices(max_pool1d)} if _n == 1 else {})},
    ))

for _n in (1, 2, 3):
    divisor = "(or divisor_override)" if _n > 1 else ""
    register(Op(
        f"avg_pool{_n}d", _AVG_FACES[_n], (AvgPoolNd,),
        Derivative(f"{_AVERAGE[_n]}: each window's sum / D, D = the product of its counts {divisor}".strip(),
                   f"{_AVERAGE_BACKWARD[_n]}: each window's g / D added onto each of its pixels",
                   f"{_X[_n]}, {_MATRICES[_n]}"),
        modules={getattr(torch.nn, f"AvgPool{_n}d"): Module(_module(
            _AVG_FACES[_n], "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
            *(("divisor_override",) if _n > 1 else ())))},
    ))

for _n in (1, 2, 3):
    register(Op(
        f"adaptive_avg_pool{_n}d", _ADAPTIVE_AVG_FACES[_n], (AdaptiveAvgPoolNd,),
        Derivative(f"{_AVERAGE[_n]}, A the averaging matrices of the windows", _AVERAGE_BACKWARD[_n],
                   f"{_X[_n]}, {_MATRICES[_n]}"),
        modules={getattr(torch.nn, f"AdaptiveAvgPool{_n}d"): Module(_module(_ADAPTIVE_AVG_FACES[_n], "output_size"))},
    ))

for _n in (1, 2, 3):
    register(Op(
        f"adaptive_max_pool{_n}d", _ADAPTIVE_MAX_FACES[_n], (AdaptiveMaxPoolNd,),
        Derivative("y[p] = max over adaptive window p of x = x[i[p]]",
                   _MAX_BACKWARD, _X[_n]),
        modules={getattr(torch.nn, f"AdaptiveMaxPool{_n}d"): Module(_module(
            _ADAPTIVE_MAX_FACES[_n], "output_size", "return_indices"))},
        intercepts={getattr(_F, f"adaptive_max_pool{_n}d_with_indices"): _with_indices(_ADAPTIVE_MAX_FACES[_n]),
                    **({torch.adaptive_max_pool1d: _with_indices(adaptive_max_pool1d)} if _n == 1 else {})},
    ))

for _n in (1, 2, 3):
    register(Op(
        f"lp_pool{_n}d", _LP_FACES[_n], (Pow, AvgPoolNd, Where, Mul, MaxPoolNd, Abs, Neg),
        Derivative("y = (k · avg_pool(x^r))^(1/r), r = norm_type, k the kernel's size; r = ±∞: ±max_pool(±|x|)",
                   "pow's, avg_pool's and mul's rules; zero where the window's Σ x^r is zero",
                   _X[_n]),
        modules={getattr(torch.nn, f"LPPool{_n}d"): Module(
            lambda self, input, face=_LP_FACES[_n]: face(input, float(self.norm_type), self.kernel_size, self.stride,
                                                         self.ceil_mode))},
    ))
