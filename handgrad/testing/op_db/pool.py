"""The poolings' cases (``handgrad.ops.pool``): NumPy oracles (loops over the windows), samples, bad
inputs, bench sizes."""

import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.ops.pool import pooled_size
from handgrad.testing.op_db._common import OpInfo, x32


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


def _pool_errors(name):
    """Bad input shared by max_pool2d and avg_pool2d (``name``), through F and through nn."""
    module = {"max_pool2d": "MaxPool2d", "avg_pool2d": "AvgPool2d"}[name]
    return (
        ErrorInput(f"{name}: 2-D input", lambda F, nn: getattr(F, name)(x32(4, 5), 2), RuntimeError,
                   r"input must be 4-D \(N, C, H, W\) or 3-D unbatched \(C, H, W\) .*got shape \(4, 5\)",
                   torch_class=IndexError if name == "avg_pool2d" else None),
        ErrorInput(f"{name}: 5-D input", lambda F, nn: getattr(F, name)(x32(1, 2, 3, 4, 4), 2), RuntimeError,
                   r"input must be 4-D .*got shape \(1, 2, 3, 4, 4\)"),
        ErrorInput(f"{name}: no channels", lambda F, nn: getattr(F, name)(x32(2, 0, 4, 4), 2), RuntimeError,
                   r"C, H and W non-zero \(N may be 0\), got shape \(2, 0, 4, 4\)"),
        ErrorInput(f"{name}: empty height", lambda F, nn: getattr(F, name)(x32(2, 3, 0, 4), 2), RuntimeError,
                   r"got shape \(2, 3, 0, 4\)"),
        ErrorInput(f"{name}: kernel_size 0", lambda F, nn: getattr(F, name)(x32(2, 3, 5, 5), 0, 1), RuntimeError,
                   r"kernel_size must be positive, got 0"),
        ErrorInput(f"{name}: stride -1", lambda F, nn: getattr(F, name)(x32(2, 3, 5, 5), 2, -1), RuntimeError,
                   r"stride must be positive, got -1"),
        ErrorInput(f"{name}: negative padding", lambda F, nn: getattr(F, name)(x32(2, 3, 5, 5), 2, padding=-1),
                   RuntimeError, r"padding must be non-negative, got -1"),
        ErrorInput(f"{name}: padding over half the kernel",
                   lambda F, nn: getattr(F, name)(x32(2, 3, 5, 5), 2, padding=2), RuntimeError,
                   r"padding \(2, 2\) must be at most half the kernel \(2, 2\) .*2 > 2 // 2"),
        ErrorInput(f"{name}: kernel larger than the input", lambda F, nn: getattr(F, name)(x32(2, 3, 5, 5), 7),
                   RuntimeError, r"window spans 7 × 7 but the input \(2, 3, 5, 5\) padded by \(0, 0\) is smaller"),
        ErrorInput(f"{name}: kernel_size of three values", lambda F, nn: getattr(F, name)(x32(2, 3, 5, 5), (2, 2, 2)),
                   RuntimeError,
                   r"kernel_size must be an int or a tuple of two ints \(height, width\), got \(2, 2, 2\)"),
        ErrorInput(f"{name}: float kernel_size", lambda F, nn: getattr(F, name)(x32(2, 3, 5, 5), 2.0), TypeError,
                   r"kernel_size must be an int or a tuple of two ints, got 2\.0"),
        ErrorInput(f"{name}: list input", lambda F, nn: getattr(F, name)([[1.0]], 2), TypeError,
                   r"input must be a torch\.Tensor, got list"),
        ErrorInput(f"nn.{module}: kernel larger than the input", lambda F, nn: getattr(nn, module)(4)(x32(2, 3, 3, 3)),
                   RuntimeError, r"window spans 4 × 4 but the input \(2, 3, 3, 3\)"),
    )


_MAX_POOL_ERRORS = _pool_errors("max_pool2d") + (
    ErrorInput("max_pool2d: dilation 0", lambda F, nn: F.max_pool2d(x32(2, 3, 5, 5), 2, dilation=0), RuntimeError,
               r"dilation must be positive, got 0"),
    ErrorInput("max_pool2d: dilated kernel larger than the input",
               lambda F, nn: F.max_pool2d(x32(2, 3, 5, 5), 3, dilation=3), RuntimeError,
               r"window spans 7 × 7 but the input \(2, 3, 5, 5\)"),
)


_AVG_POOL_ERRORS = _pool_errors("avg_pool2d") + (
    ErrorInput("avg_pool2d: divisor_override 0", lambda F, nn: F.avg_pool2d(x32(2, 3, 5, 5), 2, divisor_override=0),
               RuntimeError, r"divisor_override must not be zero"),
    ErrorInput("avg_pool2d: float divisor_override",
               lambda F, nn: F.avg_pool2d(x32(2, 3, 5, 5), 2, divisor_override=2.5), TypeError,
               r"divisor_override must be an int or None, got 2\.5"),
)


_ADAPTIVE_ERRORS = (
    ErrorInput("adaptive_avg_pool2d: 2-D input", lambda F, nn: F.adaptive_avg_pool2d(x32(4, 5), 2), RuntimeError,
               r"input must be 4-D \(N, C, H, W\) or 3-D unbatched \(C, H, W\) .*got shape \(4, 5\)"),
    ErrorInput("adaptive_avg_pool2d: empty height", lambda F, nn: F.adaptive_avg_pool2d(x32(2, 3, 0, 5), 2),
               RuntimeError, r"H and W non-zero, got shape \(2, 3, 0, 5\)"),
    ErrorInput("adaptive_avg_pool2d: negative output_size", lambda F, nn: F.adaptive_avg_pool2d(x32(2, 3, 5, 5), -1),
               RuntimeError, r"output_size must be non-negative, got -1"),
    ErrorInput("adaptive_avg_pool2d: output_size of three values",
               lambda F, nn: F.adaptive_avg_pool2d(x32(2, 3, 5, 5), (1, 2, 3)), RuntimeError,
               r"output_size must be an int or a pair \(H', W'\), got \(1, 2, 3\)"),
    ErrorInput("adaptive_avg_pool2d: string output_size",
               lambda F, nn: F.adaptive_avg_pool2d(x32(2, 3, 5, 5), ("a", 2)), TypeError,
               r"output_size must be ints \(or None\), got \('a', 2\)"),
    ErrorInput("adaptive_avg_pool2d: int64 input",
               lambda F, nn: F.adaptive_avg_pool2d(torch.ones(2, 3, 5, 5, dtype=torch.long), 2), NotImplementedError,
               r"input must be floating point, got torch\.int64"),
    ErrorInput("adaptive_avg_pool2d: list input", lambda F, nn: F.adaptive_avg_pool2d([[1.0]], 2), TypeError,
               r"input must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("nn.AdaptiveAvgPool2d: 5-D input", lambda F, nn: nn.AdaptiveAvgPool2d(2)(x32(1, 2, 3, 4, 4)),
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


OP_INFOS = (
    OpInfo("max_pool2d", torch.nn.functional.max_pool2d, _max_pool2d_samples, max_pool2d_numpy, _max_pool2d_bench,
           errors=_MAX_POOL_ERRORS, modules={torch.nn.MaxPool2d: _MAX_POOL_MODULES}),
    OpInfo("avg_pool2d", torch.nn.functional.avg_pool2d, _avg_pool2d_samples, avg_pool2d_numpy, _avg_pool2d_bench,
           errors=_AVG_POOL_ERRORS, modules={torch.nn.AvgPool2d: _AVG_POOL_MODULES}),
    OpInfo("adaptive_avg_pool2d", torch.nn.functional.adaptive_avg_pool2d, _adaptive_avg_pool2d_samples,
           adaptive_avg_pool2d_numpy, _adaptive_avg_pool2d_bench, errors=_ADAPTIVE_ERRORS,
           modules={torch.nn.AdaptiveAvgPool2d: _ADAPTIVE_MODULES}),
)
