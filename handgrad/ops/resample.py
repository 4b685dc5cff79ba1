"""Resampling and rearranging: interpolation, im2col and col2im, pixel and channel shuffles, grid sampling.

Notation: x the input (N, C, *S) with S its spatial sizes ((L), (H, W) or (D, H, W)), y the output,
g = dL/dy. Every op here is linear in x, and most are separable: along each spatial axis on its
own, an output row is a fixed combination of input rows.

- **Interpolation** (``interpolate``): along each axis, output p is Σ_h A[p, h] x[h] for a matrix
  A (out, in) of interpolation weights (linear, cubic, antialiased, area), so in 2-D
  y = A_h x A_wᵀ — the seed's Linear on each side of the image, as in average pooling — and
  dL/dx = A_hᵀ g A_w. Nearest neighbours are a gather, y[p, q] = x[i_h[p], i_w[q]], whose backward
  adds each g[p, q] back onto x[i_h[p], i_w[q]].
- **Rearranging** (``pixel_shuffle``, ``pixel_unshuffle``, ``channel_shuffle``): y is x with its
  entries permuted; dL/dx is g with the inverse permutation.
- **Patches** (``unfold``, ``fold``): im2col copies each window of x into a column, col2im adds
  each column back onto its window. ⟨unfold(x), c⟩ = ⟨x, fold(c)⟩: each is the other's adjoint,
  so each one's backward is the other.
- **Grid sampling** (``grid_sample``, ``affine_grid``): y at each grid point is a weighted sum of
  the input pixels around it, the weights a product of one weight per axis, functions of the
  point's coordinates; the gradient for x puts g back on those pixels with the same weights, the
  gradient for the grid differentiates the weights.
"""

import itertools
import math
import numbers
import warnings

import torch

from handgrad.ops._checks import FLOAT32_ON_CUDA, autocast, check_floating, check_tensor, computed_in, int_tuple
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops.pool import _in_torch_func, adaptive_matrix

# -- interpolation along one axis ----------------------------------------------------------------
#
# torch computes each axis's source positions and weights in ``opmath`` (float64 for float64 input,
# float32 for the others) and takes integer parts with ``floorf``, a float32 floor: the matrices
# below follow it step by step on the CPU, so that each weight and each index is the one its forward
# kernel uses (an index off by one would put a gradient on the wrong pixel).

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
CUBIC_A = -0.75                  # torch's (and OpenCV's) bicubic; antialiased bicubic uses Keys' −0.5 (Pillow's)


def _opmath(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def rounded(value, dtype):
    """A Python float rounded to ``dtype``, float64 or float32 (24 significant bits, ties to even), in
    plain Python so that torch.compile traces it. One operation on float32 values done in float64 and
    rounded once gives the float32 operation's result (53 ≥ 2 · 24 + 2 bits)."""
    if dtype == torch.float64 or value == 0:
        return value
    mantissa, exponent = math.frexp(value)
    return math.ldexp(round(mantissa * 2 ** 24) / 2 ** 24, exponent)


def axis_scale(size, out, align_corners, scale, dtype):
    """The step between source positions, as torch computes it (``area_pixel_compute_scale``):
    (in − 1) / (out − 1) with align_corners, else 1 / scale_factor when one is used, else in / out."""
    if align_corners:
        return rounded((size - 1) / (out - 1), dtype) if out > 1 else 0.0
    if scale is not None and scale > 0:
        return rounded(1.0 / scale, dtype)
    return rounded(size / out, dtype)


def source_position(out, step, align_corners, dtype, cubic=False):
    """Where each output position p reads the input: p · step with align_corners, else the centre
    of output pixel p mapped back, (p + ½) · step − ½ (not below 0, except for cubic weights)."""
    p = torch.arange(out, dtype=dtype)
    if align_corners:
        return step * p
    position = step * (p + 0.5) - 0.5
    return position if cubic else position.clamp(min=0)


def _floorf(position):
    """⌊position⌋ as torch's kernels take it: ``floorf``, a float32 floor, even of a float64 position."""
    return position.to(torch.float32).floor().long()


def _matrix(out, size, columns, weights, dtype):
    """A (out, size): row p holds weights[k][p] at column columns[k][p] (summed where columns repeat)."""
    A = torch.zeros(out, size, dtype=dtype)
    for column, weight in zip(columns, weights):
        A.scatter_add_(1, column[:, None], weight.to(dtype)[:, None])
    return A


def linear_matrix(size, out, align_corners, scale, dtype):
    """A (out, in) of linear interpolation: row p weighs the two pixels around its source position
    s_p, h = ⌊s_p⌋ by 1 − λ and h + 1 by λ = s_p − h (both on h at the last pixel). An axis that keeps
    its size is copied, as torch's CPU kernel does whatever the scale."""
    if size == out:
        return torch.eye(size, dtype=dtype)
    position = source_position(out, axis_scale(size, out, align_corners, scale, dtype), align_corners, dtype)
    h0 = _floorf(position).clamp(max=size - 1)
    weight = (position - h0).clamp(0, 1)                           # λ
    h1 = h0 + (h0 < size - 1)
    return _matrix(out, size, (h0, h1), (1 - weight, weight), dtype)


def cubic_weight(x, a):
    """Keys' cubic convolution kernel at distance |x|: 1 at 0, 0 at the other integers."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1                    # |x| ≤ 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a               # 1 < |x| < 2
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def cubic_matrix(size, out, align_corners, scale, dtype):
    """A (out, in) of bicubic interpolation along one axis: row p weighs the four pixels h − 1 … h + 2
    around s_p (h = ⌊s_p⌋, t = s_p − h) by the cubic kernel at distances t + 1, t, 1 − t, 2 − t;
    taps past either end read the end pixel, so their weights add up there."""
    position = source_position(out, axis_scale(size, out, align_corners, scale, dtype), align_corners, dtype,
                               cubic=True)
    h = _floorf(position).clamp(max=size - 1)
    t = (position - h).clamp(0, 1)
    distances = (t + 1, t, 1 - t, (1 - t) + 1)
    taps = [(h + j - 1).clamp(0, size - 1) for j in range(4)]
    return _matrix(out, size, taps, [cubic_weight(d, CUBIC_A) for d in distances], dtype)


def _triangle(x):
    return (1 - x.abs()).clamp(min=0)


def _keys(x):
    return cubic_weight(x, -0.5)


def antialias_matrix(size, out, align_corners, scale, dtype, interp_size):
    """A (out, in) of antialiased interpolation (Pillow's resampling): output p averages the pixels
    within ``support`` of its centre c_p = step · (p + ½) with the filter (a triangle for bilinear,
    Keys' cubic for bicubic) stretched by the step when shrinking, the weights normalised to sum 1.
    Computed in the input's dtype, as torch does, with its roundings: the window's bounds are
    truncated from float64, the filter's argument rounded back to the dtype."""
    step = axis_scale(size, out, align_corners, scale, dtype)
    shrinking = step >= 1
    support = rounded(interp_size * 0.5 * step, dtype) if shrinking else interp_size * 0.5
    inverse = rounded(1.0 / step, dtype) if shrinking else 1.0
    width = math.ceil(support) * 2 + 1                             # the most pixels a window holds
    centre = step * (torch.arange(out, dtype=dtype) + 0.5)
    first = ((centre - support).double() + 0.5).trunc().long().clamp(min=0)
    count = (((centre + support).double() + 0.5).trunc().long().clamp(max=size) - first).clamp(0, width)
    j = torch.arange(width)
    pixel = first[:, None] + j                                      # (out, width)
    offset = (((pixel.to(dtype) - centre[:, None]).double() + 0.5) * inverse).to(dtype)
    weight = (_triangle if interp_size == 2 else _keys)(offset) * (j < count[:, None])
    total = weight.sum(1, keepdim=True)
    weight = torch.where(total != 0, weight / total, weight)
    A = torch.zeros(out, size + width, dtype=dtype)                 # room for window columns past the end
    A.scatter_add_(1, pixel, weight)
    return A[:, :size]


def nearest_index(size, out, scale, exact, dtype, kernel):
    """i (out,): the pixel output p copies, ⌊p · step⌋ (OpenCV's rule, torch's ``nearest``) or
    ⌊(p + ½) · step⌋ (``nearest-exact``, Pillow's), the last pixel at most, as the kernel that runs
    takes it (``nearest_kernel``): "generic" in ``opmath``; "vectorized" (the CPU's kernel for 2-D
    outputs of H' + W' ≤ 128 and for channels-last input of more than 3 channels) in float32, copying
    an axis that keeps its size and halving the index of one that doubles (``nearest``); "cuda" in
    float32, copying an axis that keeps its size."""
    p = torch.arange(out)
    if kernel != "generic" and out == size and (kernel == "cuda" or not exact):
        return p
    if kernel == "vectorized" and out == 2 * size and not exact:
        return p // 2
    opmath = _opmath(dtype) if kernel == "generic" else torch.float32
    step = axis_scale(size, out, False, scale, opmath)
    if not exact:
        position = step * p.to(opmath)
    elif kernel == "generic":
        position = source_position(out, step, False, opmath) + 0.5
    else:
        position = (p.double() + 0.5) * step                      # (p + ½) in float64 times a float32 step
    return _floorf(position).clamp(max=size - 1)


def channels_last_of(x):
    """``torch.channels_last`` (``channels_last_3d``) where x is laid out so, the layout torch's kernels
    then give their output (and a dropout after it draws its mask in), else None; None inside
    torch.func's transforms, which refuse the question."""
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    if layout is None or _in_torch_func(x) or x.is_contiguous() or not x.is_contiguous(memory_format=layout):
        return None
    return layout


def nearest_kernel(x, out):
    """Which of torch's nearest-neighbour kernels runs on x for an output of spatial size ``out``. Inside
    torch.func's transforms, which refuse to say whether a tensor is channels-last, x counts as not."""
    if x.device.type == "cuda":
        return "cuda"
    channels_last = {2: torch.channels_last, 3: torch.channels_last_3d}.get(len(out))
    vectorized = (len(out) == 2 and sum(out) <= 128) or (
        channels_last is not None and x.size(1) > 3 and not _in_torch_func(x)
        and x.is_contiguous(memory_format=channels_last))
    return "vectorized" if vectorized else "generic"


def interpolation_matrix(mode, size, out, align_corners, scale, antialias, dtype):
    """The matrix A (out, in) of one axis, built on the CPU in torch's precision, returned in ``dtype``."""
    opmath = _opmath(dtype)
    if mode == "area":
        A = adaptive_matrix(out, size, torch.empty(0, dtype=opmath))
    elif antialias and size == out:                                # an axis that keeps its size is not resampled
        A = torch.eye(size, dtype=dtype)
    elif antialias:
        A = antialias_matrix(size, out, align_corners, scale, dtype, 2 if mode == "bilinear" else 4)
    elif mode == "bicubic":
        A = cubic_matrix(size, out, align_corners, scale, opmath)
    else:
        A = linear_matrix(size, out, align_corners, scale, opmath)
    return A.to(dtype)


def along(A, x, axis):
    """A applied along ``axis`` (counted from the end): y[..., p, ...] = Σ_h A[p, h] x[..., h, ...]."""
    if axis == -1:
        return x.matmul(A.t())                                   # (..., W) · (W, W')
    return A.matmul(x.flatten(axis + 1)).unflatten(-1, x.shape[axis + 1:])   # (H', H) · (..., H, rest)


# -- interpolate: y = A_h x A_wᵀ, or a gather ------------------------------------------------------


def interpolation_matrices(mode, sizes, outs, align_corners, scales, antialias, g):
    """One matrix A (out, in) per spatial axis, on g's device in the dtype to compute in."""
    return [interpolation_matrix(mode, n, o, align_corners, s, antialias, g.dtype).to(g.device, computed_in(g.dtype))
            for n, o, s in zip(sizes, outs, scales or [None] * len(sizes))]


class Interpolate(HandFunction):
    """y = x ×₁ A₁ ×₂ A₂ …: along each spatial axis k, a matrix A_k (out_k, in_k) of interpolation
    weights (linear, cubic, antialiased or area); in 2-D, y = A_h x A_wᵀ. x (N, C, *S) → y (N, C, *S')."""

    @staticmethod
    def forward(x, mode, outs, scales, align_corners, antialias):
        return torch.nn.functional.interpolate(x, None if scales else outs, scales, mode, align_corners,
                                               antialias=antialias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, *ctx.options = inputs
        ctx.sizes = tuple(x.shape[2:])

    @staticmethod
    def backward(ctx, g):
        """dL/dx = g ×₁ A₁ᵀ ×₂ A₂ᵀ …, in 2-D A_hᵀ g A_w: y is linear in x, each axis a Linear layer
        (dL/dx = g W on each side). Only the shapes and options are kept: the matrices are rebuilt."""
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        mode, outs, scales, align_corners, antialias = ctx.options
        grad_x = g.to(computed_in(g.dtype))
        matrices = interpolation_matrices(mode, ctx.sizes, outs, align_corners, scales, antialias, g)
        for k, A in enumerate(matrices):
            grad_x = along(A.t(), grad_x, k - len(matrices))      # (.., out_k, ..) → (.., in_k, ..)
        return grad_x.to(g.dtype), None, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: y is linear in x, so dy = the same interpolation of dx."""
        return multilinear_jvp(Interpolate.forward, (None, *ctx.options), (dx, *(None for _ in ctx.options)))


def _gather(x, outs, scales, exact, kernel):
    """y[.., p, q] = x[.., i_h[p], i_w[q]]: the rows, then the columns, that each output copies."""
    sizes = x.shape[2:]
    for k, (n, o, s) in enumerate(zip(sizes, outs, scales or [None] * len(outs))):
        x = x.index_select(2 + k, nearest_index(n, o, s, exact, x.dtype, kernel).to(x.device))
    return x


class InterpolateNearest(HandFunction):
    """y[.., p, q] = x[.., i_h[p], i_w[q]]: each output pixel a copy of one input pixel, the index
    vectors i (``nearest_index``) as torch's kernel computes them. x (N, C, *S) → y (N, C, *S')."""

    @staticmethod
    def forward(x, outs, scales, exact, kernel):
        y = _gather(x, outs, scales, exact, kernel)
        layout = channels_last_of(x)
        return y if layout is None else y.contiguous(memory_format=layout)       # laid out as torch's kernel: as x

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, *ctx.options = inputs
        ctx.sizes, ctx.dtype = tuple(x.shape[2:]), x.dtype

    @staticmethod
    def backward(ctx, g):
        """dL/dx[h, w] = Σ_{(p, q): i_h[p] = h, i_w[q] = w} g[p, q]: each g[p, q] added back onto the
        pixel it copied, one axis at a time (index_add, whose own derivative is the gather)."""
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        outs, scales, exact, kernel = ctx.options
        grad_x = g
        for k, (n, o, s) in enumerate(zip(ctx.sizes, outs, scales or [None] * len(outs))):
            i = nearest_index(n, o, s, exact, ctx.dtype, kernel).to(g.device)
            shape = (*grad_x.shape[:2 + k], n, *grad_x.shape[3 + k:])
            grad_x = grad_x.new_zeros(shape).index_add(2 + k, i, grad_x)      # (.., out_k, ..) → (.., in_k, ..)
        return grad_x, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: the same gather of dx."""
        return _gather(dx, *ctx.options)


_DIMS = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}


def _interpolation_arguments(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias):
    """(output sizes, the scale factors the kernel uses or None, align_corners), with torch's checks."""
    if mode not in MODES:
        raise NotImplementedError(f"interpolate: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode in ("nearest", "nearest-exact", "area"):
        if align_corners is not None:
            raise ValueError(f"interpolate: align_corners can only be set with the modes linear, bilinear, bicubic and "
                             f"trilinear, got align_corners={align_corners!r} with mode={mode!r}")
    else:
        align_corners = bool(align_corners)
    dim = input.dim() - 2
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: give size or scale_factor, not both")
    if size is None and scale_factor is None:
        raise ValueError("interpolate: give size or scale_factor")
    if recompute_scale_factor and size is not None:
        raise ValueError("interpolate: recompute_scale_factor needs scale_factor, not size")
    if antialias and not (mode in ("bilinear", "bicubic") and input.dim() == 4):
        raise ValueError(f"interpolate: antialias needs mode 'bilinear' or 'bicubic' and a 4-D input, got "
                         f"mode={mode!r} and an input of shape {tuple(input.shape)}")
    if input.dim() not in (3, 4, 5) or _DIMS.get(mode, input.dim()) != input.dim():
        needs = f"a {_DIMS[mode]}-D" if mode in _DIMS else "a 3-D, 4-D or 5-D"
        raise NotImplementedError(f"interpolate: mode {mode!r} needs {needs} input (N, C, *spatial), got shape "
                                  f"{tuple(input.shape)}")
    spatial = tuple(input.shape[2:])
    if size is not None:
        sizes = _per_axis("size", size, dim, spatial)
        if not all(isinstance(n, numbers.Integral) or isinstance(n, torch.Tensor) and not n.is_floating_point()
                   for n in sizes):
            raise TypeError(f"interpolate: size must be an int or a sequence of {dim} ints, got {size!r}")
        outs, scales = tuple(int(n) for n in sizes), None
    else:
        factors = tuple(float(s) for s in _per_axis("scale_factor", scale_factor, dim, spatial))
        if recompute_scale_factor or mode == "area":               # the size from the factor, the scale from the size
            outs, scales = tuple(math.floor(float(n) * s) for n, s in zip(spatial, factors)), None
        else:
            outs, scales = tuple(int(n * s) for n, s in zip(spatial, factors)), factors
    if min(spatial) < 1 or min(outs) < (0 if mode == "area" else 1):
        raise RuntimeError(f"interpolate: the input's spatial sizes and the output's must be positive, got input "
                           f"{tuple(input.shape)} and output sizes {outs}")
    return outs, scales, align_corners


def _per_axis(name, value, dim, spatial):
    if isinstance(value, (tuple, list, torch.Size)):
        if len(value) != dim:
            raise ValueError(f"interpolate: {name} {tuple(value)} must give one value per spatial dimension of the "
                             f"input, {list(spatial)}")
        return tuple(value)
    return (value,) * dim


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """y = x ×₁ A₁ ×₂ A₂ … (in 2-D y = A_h x A_wᵀ), or for the nearest modes the gather
    y[.., p, q] = x[.., i_h[p], i_w[q]], as ``torch.nn.functional.interpolate``.

    Shapes: input (N, C, L), (N, C, H, W) or (N, C, D, H, W); output the same with the spatial sizes
    ``size``, or the input's times ``scale_factor`` rounded down. Modes: nearest, nearest-exact,
    linear (3-D), bilinear and bicubic (4-D, ``antialias`` too), trilinear (5-D), area (an adaptive
    average); ``lanczos`` stays on the built-in.
    """
    check_tensor("interpolate", "input", input)
    outs, scales, align_corners = _interpolation_arguments(input, size, scale_factor, mode, align_corners,
                                                           recompute_scale_factor, antialias)
    (input,) = autocast(FLOAT32_ON_CUDA, input)
    if mode in ("nearest", "nearest-exact"):
        return apply(InterpolateNearest, input, outs, scales, mode == "nearest-exact", nearest_kernel(input, outs))
    return apply(Interpolate, input, mode, outs, scales, align_corners, antialias)


def _upsample_forward(self, input):
    return interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                       recompute_scale_factor=self.recompute_scale_factor)


def _upsample_unsupported(module):
    return "" if module.mode in MODES else f"mode={module.mode!r}: handgrad interpolates {', '.join(MODES)}"


def _interpolate_accepts(input, size=None, scale_factor=None, mode="nearest", *args, **kwargs):
    return mode in MODES


# -- pixel_shuffle, pixel_unshuffle, channel_shuffle: permutations -------------------------------------


class PixelShuffle(HandFunction):
    """y[.., c, h·r + i, w·r + j] = x[.., c·r² + i·r + j, h, w]: each group of r² channels laid out as
    an r × r block of pixels. x (*, C·r², H, W) → y (*, C, H·r, W·r)."""

    @staticmethod
    def forward(x, r):
        return torch.pixel_shuffle(x, r)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.r = inputs[1]

    @staticmethod
    def backward(ctx, g):
        """dL/dx = pixel_unshuffle(g, r): y is x permuted, so each entry of x receives the g of the
        entry it moved to, which the inverse permutation brings back."""
        return (apply(PixelUnshuffle, g, ctx.r) if ctx.needs_input_grad[0] else None), None

    @staticmethod
    def jvp(ctx, dx, _):
        return torch.pixel_shuffle(dx, ctx.r)


class PixelUnshuffle(HandFunction):
    """y[.., c·r² + i·r + j, h, w] = x[.., c, h·r + i, w·r + j]: each r × r block of pixels folded into
    r² channels, pixel_shuffle's inverse. x (*, C, H·r, W·r) → y (*, C·r², H, W)."""

    @staticmethod
    def forward(x, r):
        return torch.pixel_unshuffle(x, r)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.r = inputs[1]

    @staticmethod
    def backward(ctx, g):
        """dL/dx = pixel_shuffle(g, r), the inverse permutation."""
        return (apply(PixelShuffle, g, ctx.r) if ctx.needs_input_grad[0] else None), None

    @staticmethod
    def jvp(ctx, dx, _):
        return torch.pixel_unshuffle(dx, ctx.r)


class ChannelShuffle(HandFunction):
    """y[:, j·G + i] = x[:, i·(C / G) + j]: the channels read as a G × (C / G) table and transposed.
    x (N, C, *) → y (N, C, *)."""

    @staticmethod
    def forward(x, groups):
        return torch.channel_shuffle(x, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.groups = inputs
        ctx.channels = x.shape[1]

    @staticmethod
    def backward(ctx, g):
        """dL/dx = channel_shuffle(g, C / G): the transpose of a G × (C / G) table is undone by
        transposing the (C / G) × G table back."""
        if not ctx.needs_input_grad[0]:
            return None, None
        return apply(ChannelShuffle, g, ctx.channels // ctx.groups), None

    @staticmethod
    def jvp(ctx, dx, _):
        return torch.channel_shuffle(dx, ctx.groups)


def _shuffle_factor(fn, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value < 1:
        raise RuntimeError(f"{fn}: {name} must be positive, got {value}")
    return int(value)


def _at_least_3d(fn, input):
    check_tensor(fn, "input", input)
    if input.dim() < 3:
        raise RuntimeError(f"{fn}: input must have at least 3 dimensions (*, C, H, W), got shape {tuple(input.shape)}")


def pixel_shuffle(input, upscale_factor):
    """y[.., c, h·r + i, w·r + j] = x[.., c·r² + i·r + j, h, w], as ``torch.nn.functional.pixel_shuffle``.

    Shapes: input (*, C·r², H, W), output (*, C, H·r, W·r), r = ``upscale_factor``.
    """
    _at_least_3d("pixel_shuffle", input)
    r = _shuffle_factor("pixel_shuffle", "upscale_factor", upscale_factor)
    if input.shape[-3] % (r * r):
        raise RuntimeError(f"pixel_shuffle: the channels, input.size(-3) = {input.shape[-3]}, must be divisible by "
                           f"upscale_factor² = {r * r}")
    return apply(PixelShuffle, input, r)


def pixel_unshuffle(input, downscale_factor):
    """y[.., c·r² + i·r + j, h, w] = x[.., c, h·r + i, w·r + j], as ``torch.nn.functional.pixel_unshuffle``.

    Shapes: input (*, C, H·r, W·r), output (*, C·r², H, W), r = ``downscale_factor``.
    """
    _at_least_3d("pixel_unshuffle", input)
    r = _shuffle_factor("pixel_unshuffle", "downscale_factor", downscale_factor)
    if input.shape[-2] % r or input.shape[-1] % r:
        raise RuntimeError(f"pixel_unshuffle: the height and width, {tuple(input.shape[-2:])}, must be divisible by "
                           f"downscale_factor = {r}")
    return apply(PixelUnshuffle, input, r)


def channel_shuffle(input, groups):
    """y[:, j·G + i] = x[:, i·(C / G) + j], as ``torch.nn.functional.channel_shuffle`` (ShuffleNet's).

    Shapes: input (N, C, *) with C divisible by G = ``groups``; output the same.
    """
    _at_least_3d("channel_shuffle", input)
    groups = _shuffle_factor("channel_shuffle", "groups", groups)
    if input.shape[1] % groups:
        raise RuntimeError(f"channel_shuffle: the channels, input.size(1) = {input.shape[1]}, must be divisible by "
                           f"groups = {groups}")
    return apply(ChannelShuffle, input, groups)


# -- unfold and fold: im2col and col2im, each the other's adjoint ---------------------------------------


def blocks(fn, size, kernel, dilation, padding, stride):
    """The number of windows along each axis, ⌊(n + 2·pad − d·(k − 1) − 1) / s⌋ + 1, each at least 1."""
    counts = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                   for n, k, d, p, s in zip(size, kernel, dilation, padding, stride))
    if min(counts) < 1:
        raise RuntimeError(f"{fn}: the windows of kernel_size {kernel}, dilation {dilation} do not fit the spatial "
                           f"size {tuple(size)} padded by {padding}: there would be {counts[0]} × {counts[1]} of them")
    return counts


class Unfold(HandFunction):
    """y = unfold(x) (im2col): column l of y holds the C·kh·kw values of window l of the zero-padded x.
    x (N, C, H, W) → y (N, C·kh·kw, L)."""

    @staticmethod
    def forward(x, kernel, dilation, padding, stride):
        return torch.nn.functional.unfold(x, kernel, dilation, padding, stride)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, *ctx.geometry = inputs
        ctx.size = tuple(x.shape[-2:])

    @staticmethod
    def backward(ctx, g):
        """dL/dx = fold(g): each column's g added back onto the pixels of its window, summed where
        windows overlap. ⟨unfold(x), c⟩ = ⟨x, fold(c)⟩, so fold is unfold's transpose, and fold's own
        derivative is unfold again."""
        return (apply(Fold, g, ctx.size, *ctx.geometry) if ctx.needs_input_grad[0] else None), None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        return multilinear_jvp(Unfold.forward, (None, *ctx.geometry), (dx, None, None, None, None))


class Fold(HandFunction):
    """y = fold(c) (col2im): each column of c added onto the pixels of its window, summed where windows
    overlap, the padding cut off. c (N, C·kh·kw, L) → y (N, C, H, W)."""

    @staticmethod
    def forward(c, size, kernel, dilation, padding, stride):
        y = torch.nn.functional.fold(c, size, kernel, dilation, padding, stride)
        # col2im leaves y in a buffer the size of c (kh·kw times y's at stride 1): a copy of y's own
        # size lets it go, so that a layer keeping y (VOLO's projection) keeps y's bytes, not c's.
        return y.clone() if c.numel() > y.numel() else y

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.options, ctx.geometry = inputs[1:], inputs[2:]

    @staticmethod
    def backward(ctx, g):
        """dL/dc = unfold(g): each column receives the g of the pixels its window covers."""
        grad_c = apply(Unfold, g, *ctx.geometry) if ctx.needs_input_grad[0] else None
        return grad_c, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dc, *_):
        return multilinear_jvp(Fold.forward, (None, *ctx.options), (dc, *(None for _ in ctx.options)))


def _window(fn, kernel_size, dilation, padding, stride):
    return (int_tuple(fn, "kernel_size", kernel_size, 2, 1, "positive"),
            int_tuple(fn, "dilation", dilation, 2, 1, "positive"),
            int_tuple(fn, "padding", padding, 2, 0, "non-negative"), int_tuple(fn, "stride", stride, 2, 1, "positive"))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """y = im2col(x), as ``torch.nn.functional.unfold``: column l of y is window l of x, flattened.

    Shapes: input (N, C, H, W) or unbatched (C, H, W); output (N, C·kh·kw, L) or (C·kh·kw, L), L the
    number of windows.
    """
    check_tensor("unfold", "input", input)
    if input.dim() not in (3, 4) or 0 in input.shape[-3:]:
        raise RuntimeError(f"unfold: input must be 4-D (N, C, H, W) or 3-D unbatched (C, H, W) with C, H and W "
                           f"non-zero (N may be 0), got shape {tuple(input.shape)}")
    window = _window("unfold", kernel_size, dilation, padding, stride)
    blocks("unfold", input.shape[-2:], *window)
    return apply(Unfold, input, *window)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """y = col2im(c), as ``torch.nn.functional.fold``: each column of c added onto its window of y.

    Shapes: input (N, C·kh·kw, L) or unbatched (C·kh·kw, L); output (N, C, H, W) or (C, H, W), with
    (H, W) = ``output_size`` and L the number of windows that fit it.
    """
    check_tensor("fold", "input", input)
    window = _window("fold", kernel_size, dilation, padding, stride)
    size = int_tuple("fold", "output_size", output_size, 2, 1, "positive")
    if input.dim() not in (2, 3) or 0 in input.shape[-2:]:
        raise RuntimeError(f"fold: input must be 3-D (N, C·kh·kw, L) or 2-D unbatched (C·kh·kw, L) with non-zero "
                           f"sizes (N may be 0), got shape {tuple(input.shape)}")
    kh, kw = window[0]
    if input.shape[-2] % (kh * kw):
        raise RuntimeError(f"fold: input.size({input.dim() - 2}) = {input.shape[-2]} must be divisible by the kernel's "
                           f"kh · kw = {kh * kw}")
    counts = blocks("fold", size, *window)
    if input.shape[-1] != counts[0] * counts[1]:
        raise RuntimeError(f"fold: input.size({input.dim() - 1}) = {input.shape[-1]} must be the number of windows "
                           f"of kernel_size {window[0]} that fit output_size {size}: {counts[0]} × {counts[1]} = "
                           f"{counts[0] * counts[1]}")
    return apply(Fold, input, size, *window)


# -- grid_sample: y at each grid point, a weighted sum of the pixels around it ---------------------------
#
# Grid point p holds coordinates (x, y[, z]) in [−1, 1] (x along W). Along each axis the coordinate
# becomes a pixel position c = unnormalize(x), then (padding_mode) is clamped into the image (border)
# or reflected off its edges (reflection). Each axis gives a few taps, (pixel index, weight w(c)):
# nearest one tap (round(c), 1), bilinear two (⌊c⌋, ⌊c⌋ + 1 − c) and (⌊c⌋ + 1, c − ⌊c⌋), bicubic four
# (⌊c⌋ − 1 + j, Keys' cubic of the distance), the padding then applied to each tap's position. The
# output sums over every combination of one tap per axis: y[n, :, p] = Σ Π_k w_k · x[n, :, taps], a tap
# outside the image (zeros padding) reading 0.


def _unnormalize(coord, size, align_corners):
    """c from a grid coordinate in [−1, 1], and dc/dcoord: −1 and 1 are the centres of the corner
    pixels with align_corners, their outer edges without."""
    if align_corners:
        return (coord + 1) / 2 * (size - 1), (size - 1) / 2
    return ((coord + 1) * size - 1) / 2, size / 2


def _clip(c, size):
    """c clamped into [0, size − 1], and its derivative: 1 inside, 0 where clamped."""
    return c.clamp(0, size - 1), ((c > 0) & (c < size - 1)).to(c.dtype)


def _reflect(c, twice_low, twice_high):
    """c reflected off low and high (given doubled, as torch does) until it lies between them, and
    its derivative: ±1, the sign flipping with each reflection."""
    if twice_low == twice_high:
        return torch.zeros_like(c), torch.zeros_like(c)
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    d = c - low
    sign = torch.where(d < 0, -1.0, 1.0).to(c.dtype)
    d = d.abs()
    extra = torch.fmod(d, span)
    even = torch.floor(d / span) % 2 == 0
    return torch.where(even, extra + low, span - extra + low), torch.where(even, sign, -sign)


def _pad(c, size, padding_mode, align_corners):
    """c brought into the image as padding_mode says, and dc_out/dc_in (None for zeros padding: 1)."""
    if padding_mode == "border":
        return _clip(c, size)
    if padding_mode == "reflection":
        twice = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
        c, reflected = _reflect(c, *twice)
        c, clipped = _clip(c, size)
        return c, reflected * clipped
    return c, None


def _cubic_slope(x, a):
    """d/dx of Keys' cubic at distance x ≥ 0 (see ``cubic_weight``)."""
    near = (3 * (a + 2) * x - 2 * (a + 3)) * x
    far = (3 * a * x - 10 * a) * x + 8 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _axis_taps(coord, size, mode, padding_mode, align_corners):
    """The taps of one axis: [(pixel index, weight, d weight / d coord)], each (N, *P)."""
    c, slope = _unnormalize(coord, size, align_corners)
    if mode == "bicubic":
        c0 = c.floor()
        t = c - c0
        taps = []
        for j, (distance, sign) in enumerate(((t + 1, 1), (t, 1), (1 - t, -1), (2 - t, -1))):
            position, _ = _pad(c0 + (j - 1), size, padding_mode, align_corners)
            taps.append((position.long(), cubic_weight(distance, CUBIC_A),
                         sign * _cubic_slope(distance, CUBIC_A) * slope))
        return taps
    c, padded = _pad(c, size, padding_mode, align_corners)
    slope = slope if padded is None else slope * padded
    if mode == "nearest":
        return [(torch.round(c).long(), torch.ones_like(c), torch.zeros_like(c))]
    c0 = c.floor()
    return [(c0.long(), (c0 + 1) - c, -slope * torch.ones_like(c)), (c0.long() + 1, c - c0, slope * torch.ones_like(c))]


def sampling_taps(grid, sizes, mode, padding_mode, align_corners):
    """Every combination of one tap per axis, for every grid point: flat pixel index (N, T, P), its
    weight Π_k w_k, and for each grid coordinate k the weight's derivative (w_k replaced by
    dw_k/dcoord_k); both 0 for a pixel outside the image. ``sizes`` (D,) H, W; grid (N, *P, d),
    coordinate k along spatial axis −1 − k."""
    grid = grid.flatten(1, -2)                                                   # (N, P, d)
    d = grid.shape[-1]
    axes = [_axis_taps(grid[..., k], sizes[-1 - k], mode, padding_mode, align_corners) for k in range(d)]
    index, inside, weight, slopes = [], [], [], [[] for _ in range(d)]
    for combination in itertools.product(*axes):                                # coordinate k's tap in position k
        flat, stride, valid = 0, 1, True
        for k, (i, _, _) in enumerate(combination):
            n = sizes[-1 - k]
            valid = valid & (i >= 0) & (i < n)
            flat, stride = flat + i.clamp(0, n - 1) * stride, stride * n
        index.append(flat)
        inside.append(valid)
        weights = [w for _, w, _ in combination]
        weight.append(math.prod(weights[1:], start=weights[0]))
        for k, (_, _, dw) in enumerate(combination):
            factors = [dw if j == k else w for j, w in enumerate(weights)]
            slopes[k].append(math.prod(factors[1:], start=factors[0]))
    inside = torch.stack(inside, 1)
    return torch.stack(index, 1), torch.stack(weight, 1) * inside, [torch.stack(s, 1) * inside for s in slopes]


def _pixels(x, index):
    """x[n, :, index[n, t, p]] for a flat pixel index (N, T, P): (N, C, T, P)."""
    n, c, t, p = x.shape[0], x.shape[1], index.shape[1], index.shape[2]
    return x.flatten(2).gather(2, index.reshape(n, 1, t * p).expand(n, c, t * p)).view(n, c, t, p)


def grid_sample_backward(g, x, grid, mode, padding_mode, align_corners, sizes, needs):
    """dL/dx and dL/dgrid of y[n, :, p] = Σ_t weight[t, p] x[n, :, index[t, p]]:

    - dL/dx[n, :, h] = Σ_{t, p: index = h} weight[t, p] g[n, :, p], each g put back on the taps it
      read with the weights it read them with (a scatter-add);
    - dL/dgrid[n, p, k] = Σ_t Σ_c g[n, c, p] x[n, c, index[t, p]] ∂weight[t, p]/∂coord_k, each weight
      a product of one factor per axis, of which only coordinate k's factor depends on coordinate k.
    """
    out_dtype, dtype = g.dtype, computed_in(g.dtype)  # half precision: coordinates and sums in float32, as torch's
    x, grid, g = (None if t is None else t.to(dtype) for t in (x, grid, g))
    index, weight, slopes = sampling_taps(grid, sizes, mode, padding_mode, align_corners)
    g = g.flatten(2)                                                             # (N, C, P)
    grad_x = grad_grid = None
    if needs[0]:
        n, c = g.shape[:2]
        spread = (g[:, :, None, :] * weight[:, None]).flatten(2)                 # (N, C, T·P)
        grad_x = g.new_zeros(n, c, math.prod(sizes)).scatter_add(2, index.flatten(1)[:, None].expand(n, c, -1), spread)
        grad_x = grad_x.view(n, c, *sizes)                                       # (N, C, *S)
    if needs[1]:
        seen = _pixels(x, index) * g[:, :, None, :]                              # (N, C, T, P)
        grad_grid = torch.stack([(seen * s[:, None]).sum((1, 2)) for s in slopes], -1)   # (N, P, d)
        grad_grid = grad_grid.view(grid.shape)
    return (None if grad_x is None else grad_x.to(out_dtype),
            None if grad_grid is None else grad_grid.to(out_dtype))


_MODES = {"bilinear": 0, "nearest": 1, "bicubic": 2}
_PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}


class GridSample(HandFunction):
    """y[n, :, p] = Σ_t weight[t, p] x[n, :, index[t, p]], the taps and weights functions of grid[n, p]
    (``sampling_taps``). x (N, C, *S), grid (N, *P, d) → y (N, C, *P)."""

    @staticmethod
    def forward(x, grid, mode, padding_mode, align_corners):
        return torch.grid_sampler(x, grid, _MODES[mode], _PADDINGS[padding_mode], align_corners)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, grid, *ctx.options = inputs
        ctx.sizes = tuple(x.shape[2:])
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, grid)    # dL/dx reads only the weights
        ctx.save_for_forward(x, grid)

    @staticmethod
    def backward(ctx, g):
        """dL/dx: g spread back onto the taps with their weights; dL/dgrid: g times the pixels read
        times the weights' derivatives (``grid_sample_backward``)."""
        x, grid = ctx.saved_tensors
        grad_x, grad_grid = grid_sample_backward(g, x, grid, *ctx.options, ctx.sizes, ctx.needs_input_grad[:2])
        return grad_x, grad_grid, None, None, None

    @staticmethod
    def jvp(ctx, dx, dgrid, *_):
        """Forward mode: dy = Σ_t weight x[taps] with dx for x, plus Σ_k Σ_t x[taps] ∂weight/∂coord_k dgrid_k."""
        x, grid = ctx.saved_tensors
        index, weight, slopes = sampling_taps(grid, ctx.sizes, *ctx.options)
        dy = None
        if dx is not None:
            dy = (_pixels(dx, index) * weight[:, None]).sum(2)                         # (N, C, P)
        if dgrid is not None:
            dgrid = dgrid.flatten(1, -2)                                               # (N, P, d)
            rate = sum(s * dgrid[:, None, :, k] for k, s in enumerate(slopes))          # (N, T, P)
            term = (_pixels(x, index) * rate[:, None]).sum(2)
            dy = term if dy is None else dy + term
        return dy.view(*dy.shape[:2], *grid.shape[1:-1])


def _align_corners_default(fn, align_corners):
    if align_corners is None:
        if not torch.compiler.is_compiling():
            warnings.warn("Default grid_sample and affine_grid behavior has changed to align_corners=False since "
                          "1.3.0. Please specify align_corners=True if the old behavior is desired. See the "
                          "documentation of grid_sample for details.", stacklevel=3)
        return False
    return bool(align_corners)


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """y[n, :, p] = the input sampled at grid[n, p] (coordinates in [−1, 1], x along W), as
    ``torch.nn.functional.grid_sample``: nearest, bilinear (trilinear in 3-D) or bicubic (4-D) taps,
    zeros, border or reflection padding.

    Shapes: input (N, C, H, W) or (N, C, D, H, W); grid (N, H', W', 2) or (N, D', H', W', 3); output
    (N, C, H', W') or (N, C, D', H', W').
    """
    check_floating("grid_sample", "input", input)
    check_floating("grid_sample", "grid", grid)
    if mode not in _MODES:
        raise ValueError(f"grid_sample: mode must be 'bilinear', 'nearest' or 'bicubic', got {mode!r}")
    if padding_mode not in _PADDINGS:
        raise ValueError(f"grid_sample: padding_mode must be 'zeros', 'border' or 'reflection', got {padding_mode!r}")
    align_corners = _align_corners_default("grid_sample", align_corners)
    if input.dim() not in (4, 5) or grid.dim() != input.dim():
        raise RuntimeError(f"grid_sample: input must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W) and grid of as many "
                           f"dimensions, got input {tuple(input.shape)} and grid {tuple(grid.shape)}")
    if grid.shape[0] != input.shape[0] or grid.shape[-1] != input.dim() - 2:
        raise RuntimeError(f"grid_sample: grid must be (N, *, {input.dim() - 2}) for input {tuple(input.shape)}, got "
                           f"{tuple(grid.shape)}")
    if 0 in input.shape[2:]:
        raise RuntimeError(f"grid_sample: input must have non-empty spatial dimensions, got {tuple(input.shape)}")
    if mode == "bicubic" and input.dim() == 5:
        raise RuntimeError("grid_sample: bicubic interpolation takes 4-D input only")
    if input.device != grid.device:
        raise RuntimeError(f"grid_sample: input is on {input.device} but grid on {grid.device}")
    input, grid = _grid_autocast(input, grid)
    if input.dtype != grid.dtype:
        raise RuntimeError(f"grid_sample: input and grid must have the same dtype, got {input.dtype} and {grid.dtype}")
    return apply(GridSample, input, grid, mode, padding_mode, align_corners)


def _grid_autocast(input, grid):
    """As torch.autocast treats grid_sampler: both in float32 on the CPU, the wider dtype of the two on CUDA."""
    device = input.device.type
    if device == "cuda" and torch.is_autocast_enabled("cuda"):
        wider = torch.promote_types(input.dtype, grid.dtype)
        return input.to(wider), grid.to(wider)
    return autocast({"cpu": "float32"}, input, grid)


# -- affine_grid: grid = B θᵀ ---------------------------------------------------------------------------


def _steps(n, align_corners, like):
    """The normalized coordinates of the n pixels of an axis: linspace(−1, 1), scaled by (n − 1) / n
    without align_corners (so that ±1 are the outer edges of the end pixels); 0 for one pixel."""
    if n <= 1:
        return torch.zeros(n, dtype=like.dtype, device=like.device)
    steps = torch.linspace(-1, 1, n, dtype=like.dtype, device=like.device)
    return steps if align_corners else steps * (n - 1) / n


def base_grid(spatial, align_corners, like):
    """B (*S, d + 1): row (.., h, w) holds the normalized coordinates (x_w, y_h[, z_d], 1) of the pixel."""
    axes = [_steps(n, align_corners, like) for n in reversed(spatial)]      # x along W first
    mesh = torch.meshgrid(*reversed(axes), indexing="ij")                    # (*S) each, D, H, W order
    return torch.stack([*reversed(mesh), torch.ones(spatial, dtype=like.dtype, device=like.device)], -1)


class AffineGrid(HandFunction):
    """grid[n, p] = θ[n] (x_p, y_p[, z_p], 1)ᵀ: every pixel's normalized coordinates moved by an affine
    map, grid = B θᵀ with B (P, d + 1) the base grid. θ (N, d, d + 1) → grid (N, *S, d)."""

    @staticmethod
    def forward(theta, size, align_corners):
        return torch.affine_grid_generator(theta, size, align_corners)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.size, ctx.align_corners = inputs

    @staticmethod
    def backward(ctx, g):
        """dL/dθ[n] = g[n]ᵀ B, (d, d + 1) = (d, P) · (P, d + 1): grid is the seed's Linear with θ as
        its weight and B as its input, so dL/dW = gᵀ x."""
        if not ctx.needs_input_grad[0]:
            return None, None, None
        B = base_grid(ctx.size[2:], ctx.align_corners, g).flatten(0, -2)          # (P, d + 1)
        return g.flatten(1, -2).transpose(1, 2).matmul(B), None, None             # (N, d, P) · (P, d + 1)

    @staticmethod
    def jvp(ctx, dtheta, *_):
        return torch.affine_grid_generator(dtheta, ctx.size, ctx.align_corners)


def affine_grid(theta, size, align_corners=None):
    """grid = B θᵀ: the normalized coordinates of every output pixel moved by the affine map θ, as
    ``torch.nn.functional.affine_grid`` (for ``grid_sample``).

    Shapes: theta (N, 2, 3) for size (N, C, H, W), grid (N, H, W, 2); theta (N, 3, 4) for size
    (N, C, D, H, W), grid (N, D, H, W, 3).
    """
    check_tensor("affine_grid", "theta", theta)
    align_corners = _align_corners_default("affine_grid", align_corners)
    if not theta.is_floating_point():
        raise ValueError(f"affine_grid: theta must be floating point, got {theta.dtype}")
    size = tuple(int(n) for n in size)
    d = len(size) - 2
    if d not in (2, 3):
        raise NotImplementedError(f"affine_grid: size must be (N, C, H, W) or (N, C, D, H, W), got {size}")
    if theta.dim() != 3 or tuple(theta.shape[1:]) != (d, d + 1):
        raise ValueError(f"affine_grid: theta must be (N, {d}, {d + 1}) for size {size}, got {tuple(theta.shape)}")
    if align_corners and min(size[2:]) == 1:
        if not torch.compiler.is_compiling():
            warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                          "align_corners=True. This is not an intended use case of affine_grid. See the "
                          "documentation of affine_grid for details.", stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"affine_grid: size must be positive, got {size}")
    if theta.shape[0] != size[0]:
        raise RuntimeError(f"affine_grid: theta has {theta.shape[0]} matrices but size asks for N = {size[0]}")
    (theta,) = autocast({"cpu": "lower"}, theta)
    return apply(AffineGrid, theta, size, align_corners)


# -- registration ----------------------------------------------------------------------------------

register(Op(
    "interpolate", interpolate, (Interpolate, InterpolateNearest),
    Derivative("y = x ×₁ A₁ ×₂ A₂ … (2-D: y = A_h x A_wᵀ), A the per-axis interpolation weights; nearest: "
               "y[p, q] = x[i_h[p], i_w[q]]",
               "dL/dx = A_hᵀ g A_w; nearest: each g[p, q] added back onto x[i_h[p], i_w[q]]",
               "x (N, C, *S), y and g (N, C, *S'), A_k (S'_k, S_k)"),
    modules={cls: Module(_upsample_forward, _upsample_unsupported)
             for cls in (torch.nn.Upsample, torch.nn.UpsamplingNearest2d, torch.nn.UpsamplingBilinear2d)},
    accepts=_interpolate_accepts,
))

register(Op(
    "pixel_shuffle", pixel_shuffle, (PixelShuffle,),
    Derivative("y[c, h·r + i, w·r + j] = x[c·r² + i·r + j, h, w]", "dL/dx = pixel_unshuffle(g, r)",
               "x (*, C·r², H, W), y and g (*, C, H·r, W·r)"),
    modules={torch.nn.PixelShuffle: Module(lambda self, input: pixel_shuffle(input, self.upscale_factor))},
))

register(Op(
    "pixel_unshuffle", pixel_unshuffle, (PixelUnshuffle,),
    Derivative("y[c·r² + i·r + j, h, w] = x[c, h·r + i, w·r + j]", "dL/dx = pixel_shuffle(g, r)",
               "x (*, C, H·r, W·r), y and g (*, C·r², H, W)"),
    modules={torch.nn.PixelUnshuffle: Module(lambda self, input: pixel_unshuffle(input, self.downscale_factor))},
))

register(Op(
    "channel_shuffle", channel_shuffle, (ChannelShuffle,),
    Derivative("y[:, j·G + i] = x[:, i·(C / G) + j]", "dL/dx = channel_shuffle(g, C / G)", "x, y and g (N, C, *)"),
    modules={torch.nn.ChannelShuffle: Module(lambda self, input: channel_shuffle(input, self.groups))},
))

register(Op(
    "unfold", unfold, (Unfold,),
    Derivative("y = im2col(x): column l holds window l of x", "dL/dx = fold(g) = col2im(g)",
               "x (N, C, H, W), y and g (N, C·kh·kw, L)"),
    modules={torch.nn.Unfold: Module(lambda self, input: unfold(input, self.kernel_size, self.dilation, self.padding,
                                                                self.stride))},
))

register(Op(
    "fold", fold, (Fold,),
    Derivative("y = col2im(c): each column added onto its window", "dL/dc = unfold(g) = im2col(g)",
               "c (N, C·kh·kw, L), y and g (N, C, H, W)"),
    modules={torch.nn.Fold: Module(lambda self, input: fold(input, self.output_size, self.kernel_size, self.dilation,
                                                            self.padding, self.stride))},
))

register(Op(
    "grid_sample", grid_sample, (GridSample,),
    Derivative("y[:, p] = Σ_t Π_k w_k(grid[p]) · x[:, taps of grid[p]]",
               "dL/dx = g spread onto the taps with their weights; dL/dgrid_k = Σ_t Σ_c g x[taps] ∂w/∂grid_k",
               "x (N, C, *S), grid (N, *P, d), y and g (N, C, *P)"),
    fused_by="called as a function",
))

register(Op(
    "affine_grid", affine_grid, (AffineGrid,),
    Derivative("grid = B θᵀ, B (P, d + 1) the base grid of normalized coordinates", "dL/dθ = gᵀ B",
               "θ (N, d, d + 1), grid and g (N, *S, d)"),
    fused_by="called as a function",
))
