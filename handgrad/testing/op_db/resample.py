"""The resampling family's cases (``handgrad.ops.resample``): NumPy oracles written from the formulas
with loops over output positions, samples, bad inputs, bench sizes, module samples."""

import itertools
import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, list_input, x32

FLOATS = (torch.float64, torch.float32)        # torch's antialiased kernels take no half precision on the CPU


# -- interpolate ------------------------------------------------------------------------------------


def _keys(x, a):
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a if x < 2 else 0.0


def _axis_weights(mode, n, o, align_corners, scale, antialias):
    """Row p of the axis's matrix as {input pixel: weight}, from the formula, in float64."""
    step = ((n - 1) / (o - 1) if o > 1 else 0.0) if align_corners else (1 / scale if scale else n / o)
    rows = []
    for p in range(o):
        row = {}
        if mode == "area":
            start, end = p * n // o, -(-(p + 1) * n // o)
            row = {h: 1 / (end - start) for h in range(start, end)}
        elif mode in ("nearest", "nearest-exact"):
            row = {min(math.floor((p + 0.5 if mode == "nearest-exact" else p) * step), n - 1): 1.0}
        elif antialias and o == n:
            row = {p: 1.0}
        elif antialias:
            support = (1 if mode == "bilinear" else 2) * max(step, 1.0)
            centre = step * (p + 0.5)
            first, last = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n)
            kernel = (lambda u: max(0.0, 1 - abs(u))) if mode == "bilinear" else (lambda u: _keys(u, -0.5))
            row = {h: kernel((h - centre + 0.5) / max(step, 1.0)) for h in range(first, last)}
            total = sum(row.values())
            row = {h: w / total for h, w in row.items()}
        elif mode == "bicubic":
            source = step * p if align_corners else step * (p + 0.5) - 0.5
            h = math.floor(source)
            t = source - h
            for j, distance in enumerate((t + 1, t, 1 - t, 2 - t)):
                tap = min(max(h - 1 + j, 0), n - 1)
                row[tap] = row.get(tap, 0.0) + _keys(distance, -0.75)
        elif o == n:
            row = {p: 1.0}
        else:
            source = step * p if align_corners else max(step * (p + 0.5) - 0.5, 0.0)
            h = min(math.floor(source), n - 1)
            lam = min(max(source - h, 0.0), 1.0)
            row = {h: 1 - lam}
            row[min(h + 1, n - 1)] = row.get(min(h + 1, n - 1), 0.0) + lam
        rows.append(row)
    A = np.zeros((o, n))
    for p, row in enumerate(rows):
        for h, w in row.items():
            A[p, h] += w
    return A


def _along(A, x, axis):
    return np.moveaxis(np.tensordot(A, np.moveaxis(x, axis, 0), axes=1), 0, axis)


def interpolate_numpy(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                      recompute_scale_factor=None, antialias=False):
    """Per axis the matrix of weights, row by row from the formulas; y = x ×₁ A₁ ×₂ A₂ …"""
    spatial = x.shape[2:]
    if size is not None:
        outs, scales = (size,) * len(spatial) if isinstance(size, int) else tuple(size), (None,) * len(spatial)
    else:
        factors = (scale_factor,) * len(spatial) if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        outs = tuple(math.floor(n * s) for n, s in zip(spatial, factors))
        scales = (None,) * len(spatial) if recompute_scale_factor or mode == "area" else factors
    matrices = [_axis_weights(mode, n, o, bool(align_corners), s, antialias) for n, o, s in zip(spatial, outs, scales)]
    y = x
    for k, A in enumerate(matrices):
        y = _along(A, y, 2 + k)

    def vjp(g):
        for k, A in enumerate(matrices):
            g = _along(A.T, g, 2 + k)
        return (g,)

    return y, vjp


def _interpolate_samples(gen):
    def sample(name, shape, *args, dtypes=None, **kwargs):
        return Sample((randn(gen, *shape), *args), kwargs, name, dtypes=dtypes)

    return [
        sample("nearest, 1-D, size", (2, 3, 5), 8),
        sample("nearest, 2-D, scale_factor (1.7, 0.6)", (2, 2, 4, 5), scale_factor=(1.7, 0.6)),
        sample("nearest-exact, 3-D, scale_factor 1.5, recompute_scale_factor", (1, 2, 3, 4, 2), scale_factor=1.5,
               mode="nearest-exact", recompute_scale_factor=True),
        sample("linear, align_corners", (2, 3, 5), 9, mode="linear", align_corners=True),
        sample("bilinear, scale_factor 1.7", (2, 2, 4, 3), scale_factor=1.7, mode="bilinear"),
        sample("bilinear, antialias, shrinking", (1, 2, 9, 8), (4, 3), mode="bilinear", antialias=True, dtypes=FLOATS),
        sample("bicubic, align_corners", (1, 2, 4, 5), (7, 3), mode="bicubic", align_corners=True),
        sample("bicubic, antialias, scale_factor 0.6", (1, 2, 8, 7), scale_factor=0.6, mode="bicubic",
               antialias=True, dtypes=FLOATS),
        sample("trilinear", (1, 2, 3, 4, 2), (5, 3, 4), mode="trilinear"),
        sample("area, 2-D", (2, 2, 7, 9), (3, 4), mode="area"),
        sample("area, 1-D, scale_factor 0.5", (2, 3, 7), scale_factor=0.5, mode="area"),
        sample("bilinear, (0, C, H, W) empty batch", (0, 2, 3, 3), 5, mode="bilinear"),
    ]


def _interpolate_bench(device):
    return [
        ("segmentation head: 4×21×64×64 → 256×256 bilinear", (bench_randn(device, 4, 21, 64, 64), (256, 256)),
         {"mode": "bilinear", "align_corners": False}),
        ("FPN: 8×256×32×32 ×2 nearest", (bench_randn(device, 8, 256, 32, 32),), {"scale_factor": 2.0}),
        ("position embedding: 1×384×14×14 → 24×24 bicubic", (bench_randn(device, 1, 384, 14, 14), (24, 24)),
         {"mode": "bicubic", "align_corners": False}),
        ("video: 2×16×8×28×28 ×2 trilinear", (bench_randn(device, 2, 16, 8, 28, 28),),
         {"scale_factor": 2.0, "mode": "trilinear"}),
    ]


_INTERPOLATE_ERRORS = (
    ErrorInput("interpolate: bilinear on a 3-D input", lambda F, nn: F.interpolate(x32(1, 2, 5), 7, mode="bilinear"),
               NotImplementedError, r"mode 'bilinear' needs a 4-D input \(N, C, \*spatial\), got shape \(1, 2, 5\)"),
    ErrorInput("interpolate: size and scale_factor", lambda F, nn: F.interpolate(x32(1, 2, 5), 7, 2.0), ValueError,
               r"give size or scale_factor, not both"),
    ErrorInput("interpolate: neither size nor scale_factor", lambda F, nn: F.interpolate(x32(1, 2, 5)), ValueError,
               r"give size or scale_factor"),
    ErrorInput("interpolate: align_corners with nearest",
               lambda F, nn: F.interpolate(x32(1, 2, 5), 7, align_corners=True), ValueError,
               r"align_corners can only be set with the modes linear, .* got align_corners=True with mode='nearest'"),
    ErrorInput("interpolate: size of the wrong length", lambda F, nn: F.interpolate(x32(1, 2, 4, 5), (3, 4, 5)),
               ValueError, r"size \(3, 4, 5\) must give one value per spatial dimension of the input, \[4, 5\]"),
    ErrorInput("interpolate: float size", lambda F, nn: F.interpolate(x32(1, 2, 4, 5), (3.5, 4)), TypeError,
               r"size must be an int or a sequence of 2 ints, got \(3\.5, 4\)"),
    ErrorInput("interpolate: antialias with nearest", lambda F, nn: F.interpolate(x32(1, 2, 4, 5), 3, antialias=True),
               ValueError, r"antialias needs mode 'bilinear' or 'bicubic' and a 4-D input, got mode='nearest'"),
    ErrorInput("interpolate: recompute_scale_factor with size",
               lambda F, nn: F.interpolate(x32(1, 2, 5), 3, recompute_scale_factor=True), ValueError,
               r"recompute_scale_factor needs scale_factor, not size"),
    ErrorInput("interpolate: unknown mode", lambda F, nn: F.interpolate(x32(1, 2, 4, 5), 3, mode="cubic"),
               NotImplementedError, r"mode must be one of nearest, nearest-exact, .*, got 'cubic'"),
    ErrorInput("interpolate: output size 0", lambda F, nn: F.interpolate(x32(1, 2, 4, 5), (0, 3), mode="bilinear"),
               RuntimeError, r"spatial sizes and the output's must be positive, got input \(1, 2, 4, 5\) and output "
                             r"sizes \(0, 3\)"),
    list_input("interpolate", torch_class=AttributeError),
    ErrorInput("nn.Upsample: bilinear on a 5-D input",
               lambda F, nn: nn.Upsample(scale_factor=2.0, mode="bilinear")(x32(1, 2, 3, 4, 5)), NotImplementedError,
               r"mode 'bilinear' needs a 4-D input"),
)


def _module_samples(configurations):
    return tuple(ModuleSample(f"{name} on {shape}", lambda gen, shape=shape: (randn(gen, *shape),), args, kwargs)
                 for name, args, kwargs, shape in configurations)


_UPSAMPLE_MODULES = {
    torch.nn.Upsample: _module_samples([
        ("Upsample(scale_factor=2)", (), {"scale_factor": 2.0}, (2, 3, 4, 5)),
        ("Upsample((5, 7), mode='bilinear', align_corners=True)", ((5, 7),), {"mode": "bilinear",
                                                                             "align_corners": True}, (2, 2, 3, 4)),
        ("Upsample(scale_factor=1.5, mode='bicubic', recompute_scale_factor=True)", (),
         {"scale_factor": 1.5, "mode": "bicubic", "recompute_scale_factor": True}, (1, 2, 4, 5)),
        ("Upsample(scale_factor=0.5, mode='trilinear')", (), {"scale_factor": 0.5, "mode": "trilinear"},
         (1, 2, 4, 4, 6)),
    ]),
    torch.nn.UpsamplingNearest2d: _module_samples([("UpsamplingNearest2d(scale_factor=2)", (), {"scale_factor": 2},
                                                    (2, 3, 3, 4))]),
    torch.nn.UpsamplingBilinear2d: _module_samples([("UpsamplingBilinear2d(size=(6, 5))", (), {"size": (6, 5)},
                                                     (2, 3, 3, 4))]),
}


# -- pixel_shuffle, pixel_unshuffle, channel_shuffle ------------------------------------------------------


def pixel_shuffle_numpy(x, upscale_factor):
    """(*, C·r², H, W) → (*, C, r, r, H, W) → (*, C, H, r, W, r) → (*, C, H·r, W·r)."""
    r, lead, (c, h, w) = upscale_factor, x.shape[:-3], x.shape[-3:]
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    y = np.moveaxis(y, (-5, -4, -3, -2, -1), (-5, -3, -1, -4, -2)).reshape(*lead, c // (r * r), h * r, w * r)
    return y, lambda g: (pixel_unshuffle_numpy(g, r)[0],)


def pixel_unshuffle_numpy(x, downscale_factor):
    """(*, C, H·r, W·r) → (*, C, H, r, W, r) → (*, C, r, r, H, W) → (*, C·r², H, W)."""
    r, lead, (c, h, w) = downscale_factor, x.shape[:-3], x.shape[-3:]
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    y = np.moveaxis(y, (-5, -4, -3, -2, -1), (-5, -2, -4, -1, -3)).reshape(*lead, c * r * r, h // r, w // r)
    return y, lambda g: (pixel_shuffle_numpy(g, r)[0],)


def channel_shuffle_numpy(x, groups):
    """y[:, j·G + i] = x[:, i·(C / G) + j], one channel at a time."""
    channels = x.shape[1]
    source = [i * (channels // groups) + j for j in range(channels // groups) for i in range(groups)]
    y = x[:, source]

    def vjp(g):
        dx = np.zeros(g.shape)
        dx[:, source] = g
        return (dx,)

    return y, vjp


def _shuffle_samples(factor_name, shapes):
    def samples(gen):
        return [Sample((randn(gen, *shape), factor), {}, f"{shape}, {factor_name} {factor}")
                for shape, factor in shapes]
    return samples


def _shuffle_errors(op, module, good, bad_shape, message):
    return (
        ErrorInput(f"{op}: 2-D input", lambda F, nn: getattr(F, op)(x32(4, 4), 2), RuntimeError,
                   r"input must have at least 3 dimensions \(\*, C, H, W\), got shape \(4, 4\)"),
        ErrorInput(f"{op}: factor 0", lambda F, nn: getattr(F, op)(x32(*good), 0), RuntimeError,
                   r"must be positive, got 0"),
        ErrorInput(f"{op}: float factor", lambda F, nn: getattr(F, op)(x32(*good), 2.0), TypeError,
                   r"must be an int, got 2\.0"),
        ErrorInput(f"{op}: sizes not divisible", lambda F, nn: getattr(F, op)(x32(*bad_shape), 2), RuntimeError,
                   message),
        ErrorInput(f"nn.{module}: sizes not divisible", lambda F, nn: getattr(nn, module)(2)(x32(*bad_shape)),
                   RuntimeError, message),
    )


def _shuffle_bench(op_shape, factor):
    label = f"{'×'.join(map(str, op_shape))}, factor {factor}"
    return lambda device: [(label, (bench_randn(device, *op_shape), factor), {})]


# -- unfold and fold ---------------------------------------------------------------------------------------


def _pairs(*values):
    return [(v, v) if isinstance(v, int) else tuple(v) for v in values]


def _windows(size, kernel, dilation, padding, stride):
    """(block (p, q), channel-free tap (i, j), pixel (h, w) of the unpadded image or None) for each tap."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = _pairs(kernel, dilation, padding, stride)
    h, w = size
    bh, bw = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    for p, q, i, j in itertools.product(range(bh), range(bw), range(kh), range(kw)):
        r, s = p * sh - ph + i * dh, q * sw - pw + j * dw
        yield p * bw + q, i * kw + j, ((r, s) if 0 <= r < h and 0 <= s < w else None)


def unfold_numpy(x, kernel_size, dilation=1, padding=0, stride=1):
    """Loops over windows and taps: col[c·kh·kw + i·kw + j, l] = x_pad[c, window l's tap (i, j)]."""
    unbatched = x.ndim == 3
    x = x[None] if unbatched else x
    (kh, kw), = _pairs(kernel_size)
    taps = list(_windows(x.shape[2:], kernel_size, dilation, padding, stride))
    blocks = max(t[0] for t in taps) + 1
    n, c = x.shape[:2]
    y = np.zeros((n, c * kh * kw, blocks))
    for block, tap, pixel in taps:
        if pixel is not None:
            y[:, tap::kh * kw][:, :c, block] = x[:, :, pixel[0], pixel[1]]

    def vjp(g):
        g = g[None] if unbatched else g
        dx = np.zeros(x.shape)
        for block, tap, pixel in taps:
            if pixel is not None:
                dx[:, :, pixel[0], pixel[1]] += g[:, tap::kh * kw][:, :c, block]
        return (dx[0] if unbatched else dx,)

    return (y[0] if unbatched else y), vjp


def fold_numpy(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Loops over windows and taps: y[c, tap (i, j) of window l] += col[c·kh·kw + i·kw + j, l]."""
    unbatched = x.ndim == 2
    x = x[None] if unbatched else x
    (kh, kw), = _pairs(kernel_size)
    size = _pairs(output_size)[0]
    taps = list(_windows(size, kernel_size, dilation, padding, stride))
    n, c = x.shape[0], x.shape[1] // (kh * kw)
    y = np.zeros((n, c, *size))
    for block, tap, pixel in taps:
        if pixel is not None:
            y[:, :, pixel[0], pixel[1]] += x[:, tap::kh * kw][:, :c, block]

    def vjp(g):
        g = g[None] if unbatched else g
        dx = np.zeros(x.shape)
        for block, tap, pixel in taps:
            if pixel is not None:
                dx[:, tap::kh * kw][:, :c, block] = g[:, :, pixel[0], pixel[1]]
        return (dx[0] if unbatched else dx,)

    return (y[0] if unbatched else y), vjp


def _unfold_samples(gen):
    def sample(name, shape, *args, **kwargs):
        return Sample((randn(gen, *shape), *args), kwargs, name)

    return [
        sample("2×2, stride 2 (non-overlapping patches)", (2, 3, 4, 6), 2, stride=2),
        sample("3×3, padding 1 (overlapping)", (1, 2, 4, 5), 3, padding=1),
        sample("(2, 3) kernel, dilation (2, 1), padding (1, 0), stride (1, 2)", (2, 2, 5, 6), (2, 3), (2, 1), (1, 0),
               (1, 2)),
        sample("(C, H, W) unbatched", (3, 4, 4), 2, stride=2),
        sample("(0, C, H, W) empty batch", (0, 2, 4, 4), 2),
    ]


def _fold_samples(gen):
    def sample(name, shape, *args, **kwargs):
        return Sample((randn(gen, *shape), *args), kwargs, name)

    return [
        sample("2×2, stride 2 (non-overlapping)", (2, 12, 6), (4, 6), 2, stride=2),
        sample("3×3, padding 1 (overlapping, summed)", (1, 18, 20), (4, 5), 3, padding=1),
        sample("(2, 3) kernel, dilation (2, 1), padding (1, 0), stride (1, 2)", (2, 12, 10), (5, 6), (2, 3), (2, 1),
               (1, 0), (1, 2)),
        sample("(C·kh·kw, L) unbatched", (12, 4), (4, 4), 2, stride=2),
    ]


_UNFOLD_ERRORS = (
    ErrorInput("unfold: 2-D input", lambda F, nn: F.unfold(x32(4, 4), 2), RuntimeError,
               r"input must be 4-D \(N, C, H, W\) or 3-D unbatched \(C, H, W\) .*got shape \(4, 4\)",
               torch_class=IndexError),
    ErrorInput("unfold: kernel larger than the input", lambda F, nn: F.unfold(x32(1, 2, 3, 3), 4), RuntimeError,
               r"the windows of kernel_size \(4, 4\), dilation \(1, 1\) do not fit the spatial size \(3, 3\)"),
    ErrorInput("unfold: kernel_size 0", lambda F, nn: F.unfold(x32(1, 2, 3, 3), 0), RuntimeError,
               r"kernel_size must be positive, got 0"),
    ErrorInput("unfold: stride 0", lambda F, nn: F.unfold(x32(1, 2, 3, 3), 2, stride=0), RuntimeError,
               r"stride must be positive, got 0"),
    ErrorInput("unfold: float kernel_size", lambda F, nn: F.unfold(x32(1, 2, 3, 3), 2.0), TypeError,
               r"kernel_size must be an int or a tuple of two ints, got 2\.0"),
    ErrorInput("nn.Unfold: kernel larger than the input", lambda F, nn: nn.Unfold(5)(x32(1, 2, 3, 3)), RuntimeError,
               r"do not fit the spatial size \(3, 3\)"),
)

_FOLD_ERRORS = (
    ErrorInput("fold: 4-D input", lambda F, nn: F.fold(x32(1, 4, 4, 4), (3, 3), 2), RuntimeError,
               r"input must be 3-D \(N, C·kh·kw, L\) or 2-D unbatched .*got shape \(1, 4, 4, 4\)"),
    ErrorInput("fold: channels not divisible by the kernel", lambda F, nn: F.fold(x32(1, 5, 4), (3, 3), 2),
               RuntimeError, r"input\.size\(1\) = 5 must be divisible by the kernel's kh · kw = 4"),
    ErrorInput("fold: wrong number of windows", lambda F, nn: F.fold(x32(1, 4, 5), (3, 3), 2), RuntimeError,
               r"input\.size\(2\) = 5 must be the number of windows of kernel_size \(2, 2\) that fit output_size "
               r"\(3, 3\): 2 × 2 = 4"),
    ErrorInput("nn.Fold: wrong number of windows", lambda F, nn: nn.Fold((3, 3), 2)(x32(1, 4, 5)), RuntimeError,
               r"input\.size\(2\) = 5 must be the number of windows"),
)


# -- grid_sample and affine_grid ---------------------------------------------------------------------------


def _grid_axis(coordinate, n, mode, padding_mode, align_corners):
    """The taps of one axis: [(pixel, weight, d weight / d coordinate)], from scalars."""
    def unnormalize(c):
        return (c + 1) / 2 * (n - 1) if align_corners else ((c + 1) * n - 1) / 2

    def pad(c):
        """(position, derivative) after the padding."""
        if padding_mode == "zeros":
            return c, 1.0
        derivative = 1.0
        if padding_mode == "reflection":
            low, high = (0.0, n - 1.0) if align_corners else (-0.5, n - 0.5)
            if high == low:
                return 0.0, 0.0
            span = high - low
            d = c - low
            derivative = -1.0 if d < 0 else 1.0
            d = abs(d)
            flips, extra = math.floor(d / span), math.fmod(d, span)
            c, derivative = (extra + low, derivative) if flips % 2 == 0 else (span - extra + low, -derivative)
        inside = 0 < c < n - 1
        return min(max(c, 0.0), n - 1.0), derivative * inside

    slope = (n - 1) / 2 if align_corners else n / 2
    c = unnormalize(coordinate)
    if mode == "bicubic":
        h = math.floor(c)
        t = c - h
        a = -0.75
        taps = []
        for j, (distance, sign) in enumerate(((t + 1, 1), (t, 1), (1 - t, -1), (2 - t, -1))):
            position, _ = pad(float(h - 1 + j))
            dk = (3 * (a + 2) * distance - 2 * (a + 3)) * distance if distance <= 1 else \
                (3 * a * distance - 10 * a) * distance + 8 * a
            taps.append((int(position), _keys(distance, a), sign * dk * slope))
        return taps
    c, derivative = pad(c)
    slope *= derivative
    if mode == "nearest":
        return [(int(round(c)), 1.0, 0.0)]
    h = math.floor(c)
    return [(h, h + 1 - c, -slope), (h + 1, c - h, slope)]


def grid_sample_numpy(x, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """Loops over grid points: the taps of each axis from the scalar formulas, every combination of one
    tap per axis, the out-of-image ones reading zero."""
    align_corners = bool(align_corners)
    sizes = x.shape[2:]
    d = len(sizes)
    n_batch, points = grid.shape[0], grid.shape[1:-1]
    y = np.zeros((n_batch, x.shape[1], *points))
    record = []
    for n in range(n_batch):
        for point in itertools.product(*(range(p) for p in points)):
            axes = [_grid_axis(grid[(n, *point, k)], sizes[-1 - k], mode, padding_mode, align_corners)
                    for k in range(d)]
            for combination in itertools.product(*axes):
                pixel = tuple(i for i, _, _ in reversed(combination))
                if all(0 <= i < s for i, s in zip(pixel, sizes)):
                    weights = [w for _, w, _ in combination]
                    y[(n, slice(None), *point)] += np.prod(weights) * x[(n, slice(None), *pixel)]
                    record.append((n, point, pixel, weights, [dw for _, _, dw in combination]))

    def vjp(g):
        dx, dgrid = np.zeros(x.shape), np.zeros(grid.shape)
        for n, point, pixel, weights, slopes in record:
            g_p = g[(n, slice(None), *point)]
            dx[(n, slice(None), *pixel)] += np.prod(weights) * g_p
            seen = float(g_p @ x[(n, slice(None), *pixel)])
            for k in range(d):
                dgrid[(n, *point, k)] += seen * np.prod([slopes[j] if j == k else w for j, w in enumerate(weights)])
        return dx, dgrid

    return y, vjp


def _grid_sample_samples(gen):
    """In float32 and float64 only: torch's CPU kernel computes a half-precision grid's pixel
    coordinates in half precision (a coordinate off by up to 1/256 of the image, a gradient for the
    grid of the wrong sign where that moves the point into the next cell); handgrad computes them in
    float32 (docs/differences.md; tests/test_resample.py compares both with float64)."""
    def sample(name, x_shape, grid_shape, **kwargs):
        grid = (1.2 * (2 * torch.rand(grid_shape, generator=gen, dtype=torch.float64) - 1)).requires_grad_()
        return Sample((randn(gen, *x_shape), grid), kwargs, name, dtypes=FLOATS)

    lattice = ((2 * torch.randint(-5, 5, (2, 3, 2, 2), generator=gen) + 1) / 8).double().requires_grad_()
    return [
        # Coordinates k / 8 for odd k: the pixel positions and weights exact in half precision, so
        # torch's half-precision kernel and handgrad's float32 agree to rounding.
        Sample((randn(gen, 2, 2, 3, 4), lattice), {"align_corners": False},
               "bilinear, zeros, grid on a lattice of 1/8"),
        sample("bilinear, border, align_corners", (2, 2, 4, 5), (2, 2, 3, 2), padding_mode="border",
               align_corners=True),
        sample("nearest, reflection", (1, 2, 5, 4), (1, 3, 3, 2), mode="nearest", padding_mode="reflection",
               align_corners=False),
        sample("bicubic, reflection, align_corners", (1, 1, 4, 5), (1, 2, 2, 2), mode="bicubic",
               padding_mode="reflection", align_corners=True),
        sample("bicubic, zeros", (1, 2, 4, 4), (1, 2, 2, 2), mode="bicubic", align_corners=False),
        sample("trilinear (5-D), reflection", (1, 1, 3, 4, 3), (1, 2, 2, 2, 3), padding_mode="reflection",
               align_corners=False),
        sample("nearest (5-D), border, align_corners", (1, 2, 3, 3, 4), (1, 2, 2, 2, 3), mode="nearest",
               padding_mode="border", align_corners=True),
    ]


def _grid_sample_bench(device):
    return [
        ("optical flow warp: 4×64×48×64, bilinear",
         (bench_randn(device, 4, 64, 48, 64), (torch.rand(4, 48, 64, 2, device=device) * 2 - 1).requires_grad_()),
         {"align_corners": True}),
        ("spatial transformer: 16×3×64×64 → 32×32, bicubic, border",
         (bench_randn(device, 16, 3, 64, 64), (torch.rand(16, 32, 32, 2, device=device) * 2 - 1).requires_grad_()),
         {"mode": "bicubic", "padding_mode": "border", "align_corners": False}),
    ]


_GRID_SAMPLE_ERRORS = (
    ErrorInput("grid_sample: unknown mode", lambda F, nn: F.grid_sample(x32(1, 2, 3, 3), x32(1, 2, 2, 2), mode="area",
                                                                         align_corners=False),
               ValueError, r"mode must be 'bilinear', 'nearest' or 'bicubic', got 'area'"),
    ErrorInput("grid_sample: unknown padding_mode",
               lambda F, nn: F.grid_sample(x32(1, 2, 3, 3), x32(1, 2, 2, 2), padding_mode="circular",
                                           align_corners=False),
               ValueError, r"padding_mode must be 'zeros', 'border' or 'reflection', got 'circular'"),
    ErrorInput("grid_sample: grid of 3 coordinates for a 4-D input",
               lambda F, nn: F.grid_sample(x32(1, 2, 3, 3), x32(1, 2, 2, 3), align_corners=False), RuntimeError,
               r"grid must be \(N, \*, 2\) for input \(1, 2, 3, 3\), got \(1, 2, 2, 3\)"),
    ErrorInput("grid_sample: bicubic on a 5-D input",
               lambda F, nn: F.grid_sample(x32(1, 2, 3, 3, 3), x32(1, 2, 2, 2, 3), mode="bicubic", align_corners=False),
               RuntimeError, r"bicubic interpolation takes 4-D input only"),
    ErrorInput("grid_sample: input and grid of different dtypes",
               lambda F, nn: F.grid_sample(x32(1, 2, 3, 3), x32(1, 2, 2, 2, dtype=torch.float64), align_corners=False),
               RuntimeError, r"input and grid must have the same dtype, got torch\.float32 and torch\.float64"),
    ErrorInput("grid_sample: batch sizes differ",
               lambda F, nn: F.grid_sample(x32(2, 2, 3, 3), x32(1, 2, 2, 2), align_corners=False), RuntimeError,
               r"grid must be \(N, \*, 2\) for input \(2, 2, 3, 3\), got \(1, 2, 2, 2\)"),
)


def affine_grid_numpy(theta, size, align_corners=None):
    """The base grid from linspace, one (x, y[, z], 1) row per pixel; grid = B θᵀ."""
    spatial = size[2:]

    def steps(n):
        if n <= 1:
            return np.zeros(n)
        s = np.linspace(-1, 1, n)
        return s if align_corners else s * (n - 1) / n

    mesh = np.meshgrid(*(steps(n) for n in spatial), indexing="ij")
    B = np.stack([*reversed(mesh), np.ones(tuple(spatial))], -1).reshape(-1, len(spatial) + 1)    # (P, d + 1)
    y = np.einsum("pk,njk->npj", B, theta).reshape(theta.shape[0], *spatial, len(spatial))
    return y, lambda g: (np.einsum("npj,pk->njk", g.reshape(g.shape[0], -1, len(spatial)), B),)


def _affine_grid_samples(gen):
    def sample(name, theta_shape, size, align_corners):
        return Sample((randn(gen, *theta_shape), size, align_corners), {}, name)

    return [
        sample("2-D", (2, 2, 3), (2, 3, 4, 5), False),
        sample("2-D, align_corners", (2, 2, 3), (2, 1, 3, 2), True),
        sample("3-D", (1, 3, 4), (1, 2, 3, 2, 4), False),
    ]


_AFFINE_ERRORS = (
    ErrorInput("affine_grid: theta of the wrong shape", lambda F, nn: F.affine_grid(x32(2, 3, 3), (2, 1, 4, 4), False),
               ValueError, r"theta must be \(N, 2, 3\) for size \(2, 1, 4, 4\), got \(2, 3, 3\)"),
    ErrorInput("affine_grid: a 3-D size", lambda F, nn: F.affine_grid(x32(2, 2, 3), (2, 1, 4), False),
               NotImplementedError, r"size must be \(N, C, H, W\) or \(N, C, D, H, W\), got \(2, 1, 4\)"),
    ErrorInput("affine_grid: integer theta",
               lambda F, nn: F.affine_grid(torch.ones(1, 2, 3, dtype=torch.long), (1, 1, 2, 2), False), ValueError,
               r"theta must be floating point, got torch\.int64"),
    ErrorInput("affine_grid: empty size", lambda F, nn: F.affine_grid(x32(1, 2, 3), (1, 1, 0, 2), False), ValueError,
               r"size must be positive, got \(1, 1, 0, 2\)"),
)


OP_INFOS = (
    OpInfo("interpolate", torch.nn.functional.interpolate, _interpolate_samples, interpolate_numpy, _interpolate_bench,
           errors=_INTERPOLATE_ERRORS, modules=_UPSAMPLE_MODULES),
    OpInfo("pixel_shuffle", torch.nn.functional.pixel_shuffle,
           _shuffle_samples("upscale_factor", [((2, 8, 3, 2), 2), ((3, 9, 2, 2), 3), ((2, 1, 4, 3, 2), 1)]),
           pixel_shuffle_numpy, _shuffle_bench((16, 64, 64, 64), 2),
           errors=_shuffle_errors("pixel_shuffle", "PixelShuffle", (1, 4, 2, 2), (1, 6, 2, 2),
                                  r"the channels, input\.size\(-3\) = 6, must be divisible by upscale_factor² = 4"),
           modules={torch.nn.PixelShuffle: _module_samples([("PixelShuffle(2)", (2,), {}, (2, 8, 3, 3))])}),
    OpInfo("pixel_unshuffle", torch.nn.functional.pixel_unshuffle,
           _shuffle_samples("downscale_factor", [((2, 2, 6, 4), 2), ((3, 6, 6), 3), ((2, 1, 2, 2, 4), 2)]),
           pixel_unshuffle_numpy, _shuffle_bench((16, 16, 128, 128), 2),
           errors=_shuffle_errors("pixel_unshuffle", "PixelUnshuffle", (1, 1, 4, 4), (1, 1, 4, 5),
                                  r"the height and width, \(4, 5\), must be divisible by downscale_factor = 2"),
           modules={torch.nn.PixelUnshuffle: _module_samples([("PixelUnshuffle(2)", (2,), {}, (2, 2, 4, 6))])}),
    OpInfo("channel_shuffle", torch.nn.functional.channel_shuffle,
           _shuffle_samples("groups", [((2, 6, 3, 2), 2), ((2, 6, 4), 3), ((1, 8, 2, 2, 2), 4)]),
           channel_shuffle_numpy, _shuffle_bench((32, 116, 28, 28), 2),
           errors=_shuffle_errors("channel_shuffle", "ChannelShuffle", (1, 4, 2, 2), (1, 5, 2, 2),
                                  r"the channels, input\.size\(1\) = 5, must be divisible by groups = 2"),
           modules={torch.nn.ChannelShuffle: _module_samples([("ChannelShuffle(3)", (3,), {}, (2, 6, 3, 3))])}),
    OpInfo("unfold", torch.nn.functional.unfold, _unfold_samples, unfold_numpy,
           lambda device: [("tnt's inner patches: 64×24×56×56, 4×4 stride 4", (bench_randn(device, 64, 24, 56, 56), 4),
                            {"stride": 4}),
                           ("volo's outlook: 8×192×28×28, 3×3 padding 1", (bench_randn(device, 8, 192, 28, 28), 3),
                            {"padding": 1})],
           errors=_UNFOLD_ERRORS,
           modules={torch.nn.Unfold: _module_samples([("Unfold(2, stride=2)", (2,), {"stride": 2}, (2, 3, 4, 6)),
                                                      ("Unfold(3, padding=1)", (3,), {"padding": 1}, (3, 4, 5))])}),
    OpInfo("fold", torch.nn.functional.fold, _fold_samples, fold_numpy,
           lambda device: [("volo's outlook: 8×1728×784 → 28×28, 3×3 padding 1",
                            (bench_randn(device, 8, 192 * 9, 784), (28, 28), 3), {"padding": 1})],
           errors=_FOLD_ERRORS,
           modules={torch.nn.Fold: _module_samples([("Fold((4, 5), 3, padding=1)", ((4, 5), 3), {"padding": 1},
                                                     (2, 18, 20)),
                                                    ("Fold((4, 6), 2, stride=2)", ((4, 6), 2), {"stride": 2},
                                                     (12, 6))])}),
    OpInfo("grid_sample", torch.nn.functional.grid_sample, _grid_sample_samples, grid_sample_numpy, _grid_sample_bench,
           errors=_GRID_SAMPLE_ERRORS),
    OpInfo("affine_grid", torch.nn.functional.affine_grid, _affine_grid_samples, affine_grid_numpy,
           lambda device: [("8×2×3 → 8×3×128×128", (bench_randn(device, 8, 2, 3), (8, 3, 128, 128), False), {})],
           errors=_AFFINE_ERRORS),
)
