"""The poolings' and the padding's cases (``handgrad.ops.pool``, ``handgrad.ops.pad``): NumPy oracles
(loops over the windows; np.pad), samples, bad inputs, bench sizes."""

import itertools
import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, Tolerance, randn
from handgrad.ops.pool import pooled_size
from handgrad.testing.op_db._common import OpInfo, x32


def _per_axis(value, n):
    return (value,) * n if isinstance(value, int) else (tuple(value) * n)[:n] if len(value) == 1 else tuple(value)


def _windows(sizes, kernel, stride, padding, dilation, ceil_mode):
    """(output position, the rows of each axis it reads, inside the input) of every sliding window."""
    out = [pooled_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation)]
    for position in itertools.product(*map(range, out)):
        rows = [[r for r in range(q * s - p, q * s - p + d * (k - 1) + 1, d) if 0 <= r < n]
                for q, n, k, s, p, d in zip(position, sizes, kernel, stride, padding, dilation)]
        yield position, rows


def _planes(x, n):
    """x as (planes, *S): every channel of every image on its own."""
    return x.reshape(-1, *x.shape[x.ndim - n:])


def _argmax_oracle(x, n, windows, out, return_indices):
    """The first maximum of each window (a NaN counts as the maximum, the last one seen), as torch
    picks it, its flat index in the plane, and the vjp that sends each g to its argmax."""
    planes, sizes = _planes(x, n), x.shape[x.ndim - n:]
    y = np.empty((planes.shape[0], *out))
    index = np.zeros(y.shape, dtype=np.int64)
    for c, plane in enumerate(planes):
        for position, rows in windows:
            best, at = -np.inf, None
            for pixel in itertools.product(*rows):
                flat = int(np.ravel_multi_index(pixel, sizes))
                at = flat if at is None else at
                if plane[pixel] > best or np.isnan(plane[pixel]):
                    best, at = plane[pixel], flat
            y[(c, *position)], index[(c, *position)] = best, at
    shape = x.shape[:x.ndim - n] + tuple(out)

    def vjp(g):
        dx = np.zeros((planes.shape[0], int(np.prod(sizes))))
        for c, (g_c, i_c) in enumerate(zip(g.reshape(len(planes), -1), index.reshape(len(planes), -1))):
            np.add.at(dx[c], i_c, g_c)                       # each g to its argmax, summed
        return (dx.reshape(x.shape),)

    return ((y.reshape(shape), index.reshape(shape)) if return_indices else y.reshape(shape)), vjp


def max_pool_numpy(n):
    """The oracle of max_pool{n}d: loops over windows."""
    def oracle(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        kernel = _per_axis(kernel_size, n)
        geometry = (kernel, _per_axis(stride or kernel_size, n), _per_axis(padding, n), _per_axis(dilation, n))
        sizes = x.shape[x.ndim - n:]
        windows = list(_windows(sizes, *geometry, ceil_mode))
        out = [pooled_size(m, *axis, ceil_mode) for m, axis in zip(sizes, zip(*geometry))]
        return _argmax_oracle(x, n, windows, out, return_indices)
    return oracle


def _adaptive_rows(out, sizes):
    """The rows [⌊i·S / S'⌋, ⌈(i + 1)·S / S'⌉) of each adaptive window along each axis."""
    return [[list(range(i * m // o, math.ceil((i + 1) * m / o))) for i in range(o)] for o, m in zip(out, sizes)]


def _adaptive_out(output_size, sizes, n):
    sizes_out = (output_size,) * n if isinstance(output_size, int) else tuple(output_size)
    return [m if o is None else o for o, m in zip(sizes_out, sizes)]


def adaptive_max_pool_numpy(n):
    """The oracle of adaptive_max_pool{n}d: loops over the adaptive windows."""
    def oracle(x, output_size, return_indices=False):
        sizes = x.shape[x.ndim - n:]
        out = _adaptive_out(output_size, sizes, n)
        per_axis = _adaptive_rows(out, sizes)
        windows = [(position, [per_axis[a][q] for a, q in enumerate(position)])
                   for position in itertools.product(*map(range, out))]
        return _argmax_oracle(x, n, windows, out, return_indices)
    return oracle


def _average_oracle(x, n, windows, out):
    """y[p] = Σ_window x / divisor, for (position, rows, divisor) windows; vjp: g / divisor onto each pixel."""
    planes = _planes(x, n)
    y = np.zeros((planes.shape[0], *out))
    for position, rows, divisor in windows:
        y[(slice(None), *position)] = planes[(slice(None), *np.ix_(*rows))].reshape(len(planes), -1).sum(1) / divisor

    def vjp(g):
        g = g.reshape(len(planes), *out)
        dx = np.zeros(planes.shape)
        for position, rows, divisor in windows:
            dx[(slice(None), *np.ix_(*rows))] += (g[(slice(None), *position)] / divisor).reshape(-1, *(1,) * n)
        return (dx.reshape(x.shape),)

    return y.reshape(x.shape[:x.ndim - n] + tuple(out)), vjp


def avg_pool_numpy(n):
    """The oracle of avg_pool{n}d: the sum over the pixels inside the input, divided as torch divides
    (the window's span cut at the far padding's end, with or without the padding, or the override)."""
    def oracle(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
        kernel, stride, padding = (_per_axis(v, n) for v in (kernel_size, stride or kernel_size, padding))
        sizes = x.shape[x.ndim - n:]
        out = [pooled_size(m, k, s, p, 1, ceil_mode) for m, k, s, p in zip(sizes, kernel, stride, padding)]
        windows = []
        for position, rows in _windows(sizes, kernel, stride, padding, (1,) * n, ceil_mode):
            spans = [min(q * s - p + k, m + p) - (q * s - p) for q, m, k, s, p in zip(position, sizes, kernel, stride,
                                                                                      padding)]
            divisor = divisor_override or int(np.prod(spans) if count_include_pad else np.prod([len(r) for r in rows]))
            windows.append((position, rows, divisor))
        return _average_oracle(x, n, windows, out)
    return oracle


def adaptive_avg_pool_numpy(n):
    """The oracle of adaptive_avg_pool{n}d: the mean over each adaptive window."""
    def oracle(x, output_size):
        sizes = x.shape[x.ndim - n:]
        out = _adaptive_out(output_size, sizes, n)
        per_axis = _adaptive_rows(out, sizes)
        windows = []
        for position in itertools.product(*map(range, out)):
            rows = [per_axis[a][q] for a, q in enumerate(position)]
            windows.append((position, rows, int(np.prod([len(r) for r in rows]))))
        return _average_oracle(x, n, windows, out)
    return oracle


def lp_pool_numpy(n):
    """The oracle of lp_pool{n}d: y = (k / count · Σ_window x^p)^(1/p), count the window's rows inside
    the input (k / count = 1 but for a ceil_mode window cut short), max of ±|x| for p = ±∞;
    dy/dx = y^(1−p) (k / count) x^(p−1), zero where the sum is zero."""
    def oracle(x, norm_type, kernel_size, stride=None, ceil_mode=False):
        if math.isinf(norm_type):
            sign = 1 if norm_type > 0 else -1
            y, vjp = max_pool_numpy(n)(sign * np.abs(x), kernel_size, stride, 0, 1, ceil_mode)
            return sign * y, lambda g: (vjp(sign * g)[0] * sign * np.sign(x),)
        kernel = _per_axis(kernel_size, n)
        mean, mean_vjp = avg_pool_numpy(n)(x ** norm_type, kernel_size, stride, 0, ceil_mode)
        total = mean * np.prod(kernel)
        y = total ** (1.0 / norm_type)

        def vjp(g):
            with np.errstate(divide="ignore", invalid="ignore"):
                d_total = np.where(total != 0, g * y ** (1 - norm_type) / norm_type, 0.0)   # dy / d(k · mean)
            return (mean_vjp(d_total * np.prod(kernel))[0] * norm_type * x ** (norm_type - 1),)

        return y, vjp
    return oracle


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
               RuntimeError, r"H and W non-zero \(N may be 0\), got shape \(2, 3, 0, 5\)"),
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


def _sample(gen, name, shape, *args, gradcheck=True, positive=False, **kwargs):
    x = randn(gen, *shape, requires_grad=False)
    x = (x.abs() + 0.1 if positive else x).requires_grad_()
    return Sample((x, *args), kwargs, name, gradcheck=gradcheck)


def _in_float32_on_the_cpu(builtin):
    """``builtin`` (avg_pool3d, lp_pool3d), which has no half-precision kernel on the CPU, there
    computed in float32 and rounded back (what its CUDA kernel computes, and handgrad's face)."""
    def reference(input, *args, **kwargs):
        if input.device.type == "cpu" and input.dtype in (torch.float16, torch.bfloat16):
            return builtin(input.float(), *args, **kwargs).to(input.dtype)
        return builtin(input, *args, **kwargs)
    return reference


def _max_pool1d_samples(gen):
    return [
        _sample(gen, "3, stride 2, padding 1, dilation 2, ceil_mode, return_indices", (2, 3, 10), 3, 2, 1, 2,
                ceil_mode=True, return_indices=True),
        _sample(gen, "2, stride 3 > kernel (windows apart)", (2, 3, 8), 2, 3),
        _sample(gen, "(C, L) unbatched, 3, stride 1", (3, 7), 3, 1),
    ]


def _max_pool3d_samples(gen):
    return [
        _sample(gen, "(2, 3, 2), stride (1, 2, 2), padding (1, 1, 0), dilation (2, 1, 1), ceil_mode, return_indices",
                (2, 2, 5, 6, 5), (2, 3, 2), (1, 2, 2), (1, 1, 0), (2, 1, 1), ceil_mode=True, return_indices=True),
        _sample(gen, "(C, D, H, W) unbatched, 2 (windows apart)", (2, 4, 4, 5), 2),
        _sample(gen, "(0, C, D, H, W) empty batch", (0, 2, 4, 4, 4), 2),
    ]


def _avg_pool1d_samples(gen):
    return [
        _sample(gen, "3, stride 2, padding 1, ceil_mode, count_include_pad=False", (2, 3, 8), 3, 2, 1, True, False),
        _sample(gen, "3, stride 1, padding 1 (overlapping)", (2, 3, 6), 3, 1, 1),
        _sample(gen, "(C, L) unbatched, 2", (3, 7), 2),
    ]


def _avg_pool3d_samples(gen):
    return [
        _sample(gen, "(3, 2, 3), stride (2, 1, 2), padding (1, 1, 0), ceil_mode, count_include_pad=False",
                (2, 2, 5, 4, 6), (3, 2, 3), (2, 1, 2), (1, 1, 0), True, False),
        _sample(gen, "2, padding 1, divisor_override 5", (1, 2, 4, 5, 4), 2, 2, 1, divisor_override=5),
        _sample(gen, "(C, D, H, W) unbatched, 2", (2, 4, 5, 4), 2),
    ]


def _adaptive_samples(n, return_indices=False):
    shapes = {1: ((2, 3, 7), (3, 8), (0, 2, 5)), 2: ((2, 3, 7, 9), (3, 6, 8), (0, 2, 5, 5)),
              3: ((1, 2, 5, 7, 6), (2, 4, 4, 4), (0, 2, 3, 3, 3))}[n]
    uneven, even, empty = shapes
    halves = tuple(m // 2 for m in even[1:])
    keep = (3,) if n == 1 else (3, None, *(2,) * (n - 2))
    extra = {"return_indices": True} if return_indices else {}

    def samples(gen):
        return [
            _sample(gen, f"{uneven} → 3 (uneven, overlapping windows){', return_indices' if extra else ''}", uneven, 3,
                    **extra),
            _sample(gen, f"(C, *S) unbatched {even} → {halves} (windows apart)", even, halves),
            _sample(gen, f"{uneven} → {keep} (None keeps a size)", uneven, keep),
            _sample(gen, f"{uneven} → larger than the input", uneven, tuple(m + 2 for m in uneven[2:])),
            _sample(gen, f"{uneven} → 1 (global)", uneven, 1),
            _sample(gen, f"{empty} empty batch", empty, 2),
        ]
    return samples


def _lp_pool_samples(n):
    shape = {1: (2, 3, 9), 2: (2, 2, 5, 7), 3: (1, 2, 4, 5, 4)}[n]

    def samples(gen):
        zeros = randn(gen, *shape, requires_grad=False)
        zeros[(..., *(slice(0, 2),) * n)] = 0.0                # the first window's Σ x^p is zero
        return [
            _sample(gen, "p = 2, 3, stride 2, ceil_mode (a window cut short)", shape, 2, 3, 2, True),
            _sample(gen, "p = 1.5 on positive input, 2", shape, 1.5, 2, positive=True),
            _sample(gen, "p = ∞: max pooling of |x|", shape, float("inf"), 2),
            _sample(gen, "p = −∞, stride 1", shape, float("-inf"), 2, 1),
            _sample(gen, "(C, *S) unbatched, p = 3 on positive input", shape[1:], 3, 2, positive=True),
            Sample((zeros.requires_grad_(), 2, 2), {}, "p = 2, a window of zeros (its gradient is zero)",
                   gradcheck=False),
        ]
    return samples


def _modules(cls, configurations):
    return tuple(ModuleSample(f"{cls}({', '.join(map(repr, args))}{', ' if args and kwargs else ''}"
                              f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) on {shape}",
                              lambda gen, shape=shape: (randn(gen, *shape),), args, kwargs)
                 for args, kwargs, shape in configurations)


_MODULES = {
    "MaxPool1d": [((3,), {"stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}, (2, 3, 10)),
                  ((2,), {}, (3, 7))],
    "MaxPool3d": [(((2, 3, 2),), {"stride": (1, 2, 2), "padding": 1}, (2, 2, 5, 6, 5)), ((2,), {}, (2, 4, 4, 5))],
    "AvgPool1d": [((3, 2, 1), {"ceil_mode": True, "count_include_pad": False}, (2, 3, 8)), ((2,), {}, (3, 7))],
    "AvgPool3d": [((2,), {"stride": 1, "padding": 1, "divisor_override": 3}, (2, 2, 4, 4, 3)),
                  ((3, 2, 1), {"ceil_mode": True, "count_include_pad": False}, (2, 5, 4, 5))],
    "AdaptiveAvgPool1d": [((3,), {}, (2, 3, 7)), ((1,), {}, (3, 5))],
    "AdaptiveAvgPool3d": [(((2, None, 3),), {}, (1, 2, 5, 4, 7)), ((1,), {}, (2, 3, 3, 3))],
    "AdaptiveMaxPool1d": [((3,), {}, (2, 3, 7)), ((4,), {}, (3, 8))],
    "AdaptiveMaxPool2d": [((3,), {}, (2, 3, 7, 9)), (((1, 4),), {}, (3, 4, 8)), (((4, 1),), {}, (2, 2, 8, 8))],
    "AdaptiveMaxPool3d": [(((2, 3, 2),), {}, (1, 2, 5, 6, 4)), ((1,), {}, (2, 3, 3, 3))],
    "LPPool1d": [((2, 3, 2), {"ceil_mode": True}, (2, 3, 9))],
    "LPPool2d": [((2, (2, 3)), {"stride": (1, 2)}, (2, 2, 5, 7)), ((float("inf"), 2), {}, (2, 4, 4))],
    "LPPool3d": [((2, 2), {}, (1, 2, 4, 4, 4))],
}


def _modules_of(name):
    return {getattr(torch.nn, name): _modules(name, _MODULES[name])}


def _errors_nd(fn, n, module):
    """A few bad inputs of a 1-D or 3-D pooling: its input's dimensions, its window, through F and nn."""
    shape = (2, 3, *(5,) * n)
    batched, unbatched = {1: (r"3-D \(N, C, L\)", r"2-D unbatched \(C, L\)"),
                          3: (r"5-D \(N, C, D, H, W\)", r"4-D unbatched \(C, D, H, W\)")}[n]
    return (
        ErrorInput(f"{fn}: input of {n + 3} dimensions", lambda F, nn: getattr(F, fn)(x32(1, *shape), 2), RuntimeError,
                   rf"{fn}: input must be {batched} or {unbatched} .*got shape"),
        ErrorInput(f"{fn}: kernel_size of {n + 1} values", lambda F, nn: getattr(F, fn)(x32(*shape), (2,) * (n + 1)),
                   RuntimeError, rf"{fn}: kernel_size must be an int or a tuple of {'one int' if n == 1 else 'three ints'}"),
        ErrorInput(f"{fn}: kernel larger than the input", lambda F, nn: getattr(F, fn)(x32(*shape), 7), RuntimeError,
                   rf"{fn}: the window spans 7( × 7)* but the input .* is smaller"),
        ErrorInput(f"nn.{module}: padding over half the kernel", lambda F, nn: getattr(nn, module)(2, padding=2)(
            x32(*shape)), RuntimeError, r"padding \(2(, 2)*,?\) must be at most half the kernel"),
    )


def _adaptive_errors_nd(fn, n):
    shape = (2, 3, *(5,) * n)
    return (
        ErrorInput(f"{fn}: output_size of {n + 1} values", lambda F, nn: getattr(F, fn)(x32(*shape), (2,) * (n + 1)),
                   RuntimeError, rf"{fn}: output_size must be an int or a"),
        ErrorInput(f"{fn}: empty spatial axis", lambda F, nn: getattr(F, fn)(x32(2, 3, 0, *(5,) * (n - 1)), 2),
                   RuntimeError, rf"{fn}: input must be .* non-zero \(N may be 0\), got shape \(2, 3, 0"),
        ErrorInput(f"{fn}: negative output_size", lambda F, nn: getattr(F, fn)(x32(*shape), -1), RuntimeError,
                   r"output_size must be non-negative, got -1"),
    )


def _lp_errors(fn, n):
    shape = (2, 3, *(5,) * n)
    return (
        ErrorInput(f"{fn}: norm_type 0", lambda F, nn: getattr(F, fn)(x32(*shape), 0, 2), ValueError,
                   rf"{fn}: norm_type must be a non-zero number, got 0"),
        ErrorInput(f"{fn}: kernel larger than the input", lambda F, nn: getattr(F, fn)(x32(*shape), 2, 7),
                   RuntimeError, r"the window spans 7"),
    )


def _bench(*cases):
    def bench(device):
        return [(label, (_input(device, *shape), *args), kwargs) for label, shape, args, kwargs in cases]
    return bench


_F = torch.nn.functional

# Where adaptive windows share pixels (an output larger than the input: up to 8 windows a pixel in 3-D),
# torch's CPU backward sums their g in bfloat16, off the exact sum by up to 0.07 in the samples;
# handgrad sums in float32, within 0.016 of it (and equal to the NumPy oracle in every dtype).
_SHARED_PIXELS = {torch.bfloat16: Tolerance(atol=0.1, rtol=3e-2)}

OP_INFOS = (
    OpInfo("max_pool1d", _F.max_pool1d, _max_pool1d_samples, max_pool_numpy(1),
           _bench(("32×64×1024, 3 stride 2 padding 1", (32, 64, 1024), (3, 2, 1), {})),
           errors=_errors_nd("max_pool1d", 1, "MaxPool1d"), modules=_modules_of("MaxPool1d")),
    OpInfo("max_pool2d", _F.max_pool2d, _max_pool2d_samples, max_pool_numpy(2), _max_pool2d_bench,
           errors=_MAX_POOL_ERRORS, modules={torch.nn.MaxPool2d: _MAX_POOL_MODULES}),
    OpInfo("max_pool3d", _F.max_pool3d, _max_pool3d_samples, max_pool_numpy(3),
           _bench(("r3d: 2×64×8×56×56, 3 stride 2 padding 1", (2, 64, 8, 56, 56), (3, 2, 1), {}),
                  ("2×64×8×28×28, (1, 2, 2) (windows apart)", (2, 64, 8, 28, 28), ((1, 2, 2),), {})),
           errors=_errors_nd("max_pool3d", 3, "MaxPool3d"), modules=_modules_of("MaxPool3d")),
    OpInfo("avg_pool1d", _F.avg_pool1d, _avg_pool1d_samples, avg_pool_numpy(1),
           _bench(("32×64×1024, 2", (32, 64, 1024), (2,), {}),
                  ("nextvit's spatial reduction: 8×784×64, 4", (8, 784, 64), (4,), {})),
           errors=_errors_nd("avg_pool1d", 1, "AvgPool1d"), modules=_modules_of("AvgPool1d")),
    OpInfo("avg_pool2d", _F.avg_pool2d, _avg_pool2d_samples, avg_pool_numpy(2), _avg_pool2d_bench,
           errors=_AVG_POOL_ERRORS, modules={torch.nn.AvgPool2d: _AVG_POOL_MODULES}),
    OpInfo("avg_pool3d", _in_float32_on_the_cpu(_F.avg_pool3d), _avg_pool3d_samples, avg_pool_numpy(3),
           _bench(("2×64×8×28×28, 2", (2, 64, 8, 28, 28), (2,), {}),
                  ("2×64×8×28×28, 3 stride 1 padding 1", (2, 64, 8, 28, 28), (3, 1, 1), {})),
           errors=_errors_nd("avg_pool3d", 3, "AvgPool3d"), modules=_modules_of("AvgPool3d")),
    OpInfo("adaptive_avg_pool1d", _F.adaptive_avg_pool1d, _adaptive_samples(1), adaptive_avg_pool_numpy(1),
           _bench(("32×64×1024 → 1", (32, 64, 1024), (1,), {}), ("32×64×1000 → 7", (32, 64, 1000), (7,), {})),
           errors=_adaptive_errors_nd("adaptive_avg_pool1d", 1), modules=_modules_of("AdaptiveAvgPool1d")),
    OpInfo("adaptive_avg_pool2d", _F.adaptive_avg_pool2d, _adaptive_avg_pool2d_samples, adaptive_avg_pool_numpy(2),
           _adaptive_avg_pool2d_bench, errors=_ADAPTIVE_ERRORS, modules={torch.nn.AdaptiveAvgPool2d: _ADAPTIVE_MODULES}),
    OpInfo("adaptive_avg_pool3d", _F.adaptive_avg_pool3d, _adaptive_samples(3), adaptive_avg_pool_numpy(3),
           _bench(("video head: 2×512×2×7×7 → 1", (2, 512, 2, 7, 7), (1,), {}),
                  ("2×64×8×28×28 → (4, 7, 7)", (2, 64, 8, 28, 28), ((4, 7, 7),), {})),
           errors=_adaptive_errors_nd("adaptive_avg_pool3d", 3), modules=_modules_of("AdaptiveAvgPool3d")),
) + tuple(
    OpInfo(f"adaptive_max_pool{n}d", getattr(_F, f"adaptive_max_pool{n}d"), _adaptive_samples(n, True),
           adaptive_max_pool_numpy(n),
           _bench(*[(f"{'×'.join(map(str, shape))} → {out}", shape, (out,), {}) for shape, out in bench]),
           errors=_adaptive_errors_nd(f"adaptive_max_pool{n}d", n), modules=_modules_of(f"AdaptiveMaxPool{n}d"),
           tolerances=_SHARED_PIXELS if n == 3 else None)
    for n, bench in ((1, [((32, 64, 1000), 7)]),
                     (2, [((8, 64, 56, 56), 7), ((8, 64, 56, 56), (7, 1))]),
                     (3, [((2, 64, 8, 28, 28), (2, 7, 7))]))
) + tuple(
    OpInfo(f"lp_pool{n}d", (_in_float32_on_the_cpu if n == 3 else lambda f: f)(getattr(_F, f"lp_pool{n}d")),
           _lp_pool_samples(n), lp_pool_numpy(n),
           _bench((f"{'×'.join(map(str, shape))}, p = 2, 2", shape, (2, 2), {})),
           errors=_lp_errors(f"lp_pool{n}d", n), modules=_modules_of(f"LPPool{n}d"))
    for n, shape in ((1, (32, 64, 1024)), (2, (8, 64, 56, 56)), (3, (2, 64, 8, 28, 28)))
)
