"""The convolutions' cases (``handgrad.ops.conv``): NumPy oracles (the seed's Linear on every patch,
and its transpose), samples, bad inputs, bench sizes, tolerances."""

import itertools

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32


def _per_axis(value, n):
    return (value,) * n if isinstance(value, int) else tuple(value) * (n if len(value) == 1 else 1)


def _taps(p, stride, dilation, kernel):
    """The index, along the spatial axes, of the rows output position p reads (p·s + i·d for each tap i)."""
    return tuple(slice(q * s, q * s + d * (k - 1) + 1, d) for q, s, d, k in zip(p, stride, dilation, kernel))


def conv_numpy(x, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Loops over output positions; at each, the seed's layer on the patch, group by group. Any
    number of spatial axes: conv1d, conv2d and conv3d's oracle."""
    n = W.ndim - 2
    unbatched = x.ndim == n + 1
    x = x[None] if unbatched else x
    stride, dilation = _per_axis(stride, n), _per_axis(dilation, n)
    out, c_group, *kernel = W.shape
    if padding == "valid":
        padding = 0
    if padding == "same":
        pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    else:
        pads = [(p, p) for p in _per_axis(padding, n)]
    x_pad = np.pad(x, ((0, 0), (0, 0), *pads))
    batch = x.shape[0]
    sizes = [(x_pad.shape[2 + a] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1 for a in range(n)]
    o_group = out // groups
    W_mats = [W[k * o_group:(k + 1) * o_group].reshape(o_group, -1) for k in range(groups)]   # (out / G, C/G·∏k)
    positions = list(itertools.product(*map(range, sizes)))

    def patch_index(p, k):
        """Index of group k's patch at output position p in x_pad: (N, C / G, *kernel)."""
        return (slice(None), slice(k * c_group, (k + 1) * c_group), *_taps(p, stride, dilation, kernel))

    y = np.zeros((batch, out, *sizes))
    for p in positions:
        for k in range(groups):
            patch = x_pad[patch_index(p, k)].reshape(batch, -1)                         # (N, C/G·∏k)
            y[(slice(None), slice(k * o_group, (k + 1) * o_group), *p)] = patch @ W_mats[k].T   # the seed's x W
    if b is not None:
        y += b.reshape(1, -1, *(1,) * n)

    def vjp(g):
        g = g[None] if unbatched else g
        dx_pad, dW = np.zeros_like(x_pad), np.zeros(W.shape)
        for p in positions:
            for k in range(groups):
                index = patch_index(p, k)
                g_p = g[(slice(None), slice(k * o_group, (k + 1) * o_group), *p)]         # (N, out / G)
                patch = x_pad[index].reshape(batch, -1)
                dW[k * o_group:(k + 1) * o_group] += (g_p.T @ patch).reshape(o_group, c_group, *kernel)
                dx_pad[index] += (g_p @ W_mats[k]).reshape(batch, c_group, *kernel)
        dx = dx_pad[(slice(None), slice(None), *(slice(before, before + size) for (before, _), size in
                                                 zip(pads, x.shape[2:])))]
        db = None if b is None else g.sum((0, *range(2, g.ndim)))
        return (dx[0] if unbatched else dx), dW, db

    return (y[0] if unbatched else y), vjp


def conv_transpose_numpy(x, W, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Loops over input positions: each adds x[n, :, p]ᵀ W_mat onto its patch of the full output,
    which is then cut by the padding (output_padding rows, reached by no patch, holding zeros)."""
    n = W.ndim - 2
    unbatched = x.ndim == n + 1
    x = x[None] if unbatched else x
    stride, dilation = _per_axis(stride, n), _per_axis(dilation, n)
    padding, output_padding = _per_axis(padding, n), _per_axis(output_padding, n)
    c_in, o_group, *kernel = W.shape
    c_group, batch = c_in // groups, x.shape[0]
    full = [(size - 1) * s + d * (k - 1) + 1 + q for size, s, d, k, q in
            zip(x.shape[2:], stride, dilation, kernel, output_padding)]
    kept = (slice(None), slice(None), *(slice(p, r - p) for p, r in zip(padding, full)))
    positions = list(itertools.product(*(range(size) for size in x.shape[2:])))

    def parts(p, k):
        """Group k's input channels at position p, its output channels over the patch, its weights (C/G, out/G·∏k)."""
        channels = slice(k * c_group, (k + 1) * c_group)
        patch = (slice(None), slice(k * o_group, (k + 1) * o_group), *_taps(p, stride, dilation, kernel))
        return (slice(None), channels, *p), patch, W[channels].reshape(c_group, -1)

    y_full = np.zeros((batch, o_group * groups, *full))
    for p in positions:
        for k in range(groups):
            at, patch, W_mat = parts(p, k)
            y_full[patch] += (x[at] @ W_mat).reshape(batch, o_group, *kernel)                # x W_mat onto the patch
    y = y_full[kept] + (0 if b is None else b.reshape(1, -1, *(1,) * n))

    def vjp(g):
        g_full = np.zeros(y_full.shape)
        g_full[kept] = g[None] if unbatched else g
        dx, dW = np.zeros(x.shape), np.zeros(W.shape)
        for p in positions:
            for k in range(groups):
                at, patch, W_mat = parts(p, k)
                g_patch = g_full[patch].reshape(batch, -1)                                # (N, out/G·∏k)
                dx[at] += g_patch @ W_mat.T
                dW[at[1]] += (x[at].T @ g_patch).reshape(c_group, o_group, *kernel)
        db = None if b is None else g_full[kept].sum((0, *range(2, n + 2)))
        return (dx[0] if unbatched else dx), dW, db

    return (y[0] if unbatched else y), vjp


def _conv2d_samples(gen):
    def sample(name, x_shape, w_shape, bias=True, **kwargs):
        args = (randn(gen, *x_shape), randn(gen, *w_shape))
        if bias:
            args += (randn(gen, w_shape[0]),)
        return Sample(args, kwargs, name)

    return [
        sample("3×3", (2, 3, 6, 7), (4, 3, 3, 3)),
        sample("3×3, no bias", (2, 3, 6, 7), (4, 3, 3, 3), bias=False),
        sample("stride 2, padding 1", (2, 3, 7, 6), (4, 3, 3, 3), stride=2, padding=1),
        sample("stride (2, 3), padding (1, 2), dilation (2, 1), 2×3 kernel", (2, 2, 8, 9), (3, 2, 2, 3),
               stride=(2, 3), padding=(1, 2), dilation=(2, 1)),
        sample("dilation 2, padding 2", (1, 2, 7, 7), (3, 2, 3, 3), padding=2, dilation=2),
        sample("groups 2", (2, 4, 5, 5), (6, 2, 3, 3), groups=2, padding=1),
        sample("depthwise, groups = C", (2, 3, 6, 5), (3, 1, 3, 3), groups=3, padding=1),
        sample("depthwise ×2 channels, stride 2", (2, 3, 7, 6), (6, 1, 3, 3), groups=3, stride=2),
        sample("depthwise, stride (2, 1), dilation (1, 2), padding 1", (2, 3, 7, 8), (3, 1, 2, 3), groups=3,
               stride=(2, 1), dilation=(1, 2), padding=1),
        sample("1×1 kernel", (2, 5, 4, 3), (3, 5, 1, 1)),
        sample("1×1 kernel, stride 3 > kernel", (2, 3, 8, 7), (4, 3, 1, 1), stride=3),
        sample("2×2 kernel, stride 3 > kernel, unused rows", (1, 2, 8, 9), (3, 2, 2, 2), stride=3, padding=1),
        sample("padding='same', odd kernel", (2, 3, 5, 6), (4, 3, 3, 5), padding="same"),
        sample("padding='same', even kernel (asymmetric)", (2, 3, 5, 6), (4, 3, 2, 4), padding="same"),
        sample("padding='same', dilation (2, 3), 2×2 kernel", (1, 2, 6, 7), (3, 2, 2, 2), padding="same",
               dilation=(2, 3)),
        sample("padding='same', groups 2", (1, 4, 5, 5), (4, 2, 4, 3), padding="same", groups=2),
        sample("padding='valid'", (2, 3, 6, 5), (2, 3, 3, 2), padding="valid"),
        sample("kernel = input, 1×1 output", (3, 2, 4, 5), (3, 2, 4, 5)),
        sample("(C, H, W) unbatched", (3, 6, 5), (4, 3, 3, 3), padding=1),
        sample("(C, H, W) unbatched, padding='same'", (3, 6, 5), (4, 3, 2, 2), padding="same"),
        sample("(0, C, H, W) empty batch", (0, 3, 5, 5), (4, 3, 3, 3), padding=1),
        sample("stride, padding as lists", (2, 3, 7, 7), (2, 3, 3, 3), stride=[2, 1], padding=[0, 1]),
    ]


def _conv2d_module_samples():
    def input(*shape):
        return lambda gen: (randn(gen, *shape),)

    configurations = [
        ("Conv2d(3, 4, 3)", (3, 4, 3), {}, (2, 3, 7, 6)),
        ("Conv2d(3, 4, 3), bias=False", (3, 4, 3), {"bias": False}, (2, 3, 7, 6)),
        ("Conv2d(3, 6, (2, 3), stride 2, padding 1, dilation (1, 2))", (3, 6, (2, 3)),
         {"stride": 2, "padding": 1, "dilation": (1, 2)}, (2, 3, 8, 9)),
        ("Conv2d(4, 6, 3, groups=2)", (4, 6, 3), {"groups": 2, "padding": 1}, (2, 4, 5, 5)),
        ("Conv2d(4, 8, 3, depthwise groups=4)", (4, 8, 3), {"groups": 4, "padding": 1}, (2, 4, 5, 5)),
        ("Conv2d(3, 4, 1) 1×1", (3, 4, 1), {}, (2, 3, 5, 4)),
        ("Conv2d(3, 4, 4, padding='same')", (3, 4, 4), {"padding": "same"}, (2, 3, 6, 5)),
        ("Conv2d(3, 4, 3, padding='valid')", (3, 4, 3), {"padding": "valid"}, (2, 3, 6, 5)),
        ("Conv2d(3, 4, 3) on (C, H, W)", (3, 4, 3), {"padding": 1}, (3, 6, 5)),
        ("Conv2d(3, 4, 3) on an empty batch", (3, 4, 3), {"padding": 1}, (0, 3, 6, 5)),
    ] + [
        (f"Conv2d(3, 4, 3, padding_mode={mode!r})", (3, 4, 3), {"padding": (1, 2), "padding_mode": mode}, (2, 3, 6, 5))
        for mode in ("reflect", "replicate", "circular")
    ] + [("Conv2d(3, 4, 3, padding='same', padding_mode='reflect')", (3, 4, 2),
          {"padding": "same", "padding_mode": "reflect"}, (2, 3, 6, 5))]
    return tuple(ModuleSample(name, input(*shape), args, kwargs) for name, args, kwargs, shape in configurations)


_ERRORS = (
    ErrorInput("2-D input", lambda F, nn: F.conv2d(x32(4, 5), x32(6, 4, 3, 3)), RuntimeError,
               r"input must be 4-D \(N, C, H, W\) or 3-D unbatched \(C, H, W\), got shape \(4, 5\)"),
    ErrorInput("5-D input", lambda F, nn: F.conv2d(x32(1, 2, 4, 5, 5), x32(6, 4, 3, 3)), RuntimeError,
               r"input must be 4-D .*got shape \(1, 2, 4, 5, 5\)"),
    ErrorInput("3-D weight", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3)), RuntimeError,
               r"weight must be 4-D \(out_channels, in_channels / groups, kH, kW\), got shape \(6, 4, 3\)"),
    ErrorInput("input/weight channel mismatch", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 3, 3, 3)), RuntimeError,
               r"input has 4 channels \(shape \(2, 4, 5, 5\)\) but weight of shape \(6, 3, 3, 3\) with groups=1 "
               r"expects 3"),
    ErrorInput("channels not matching groups", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 2, 3, 3), groups=3),
               RuntimeError, r"input has 4 channels .* with groups=3 expects 6 \(2 per group\)"),
    ErrorInput("out_channels not divisible by groups", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(5, 2, 3, 3), groups=2),
               RuntimeError, r"out_channels \(5, shape \(5, 2, 3, 3\)\) must be a positive multiple of groups=2"),
    ErrorInput("no output channels", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(0, 4, 3, 3)), RuntimeError,
               r"out_channels \(0, .*\) must be a positive multiple of groups=1"),
    ErrorInput("groups 0", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), groups=0), RuntimeError,
               r"groups must be positive, got 0"),
    ErrorInput("kernel larger than the padded input", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 7, 7), padding=0),
               RuntimeError, r"kernel spans 7 × 7 .* padded input is only 5 × 5"),
    ErrorInput("dilated kernel larger than the padded input",
               lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), dilation=3), RuntimeError,
               r"kernel spans 7 × 7 \(kernel 3 × 3, dilation \(3, 3\)\) but the padded input is only 5 × 5"),
    ErrorInput("empty spatial input", lambda F, nn: F.conv2d(x32(2, 4, 0, 5), x32(6, 4, 3, 3)), RuntimeError,
               r"padded input is only 0 × 5"),
    ErrorInput("negative padding", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), padding=-1), RuntimeError,
               r"padding must be non-negative .*got -1"),
    ErrorInput("padding string 'full'", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), padding="full"),
               RuntimeError, r"padding must be 'same', 'valid', an int or a tuple of ints, got 'full'"),
    ErrorInput("padding='same' with stride 2",
               lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), stride=2, padding="same"), RuntimeError,
               r"padding='same' is not supported for strided convolutions \(stride=\(2, 2\)\)"),
    ErrorInput("stride 0", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), stride=0), RuntimeError,
               r"stride must be positive, got 0"),
    ErrorInput("dilation (1, 0)", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), dilation=(1, 0)),
               RuntimeError, r"dilation must be positive, got \(1, 0\)"),
    ErrorInput("stride of three values", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), stride=(1, 1, 1)),
               RuntimeError, r"stride must be an int or a tuple of two ints \(height, width\), got \(1, 1, 1\)"),
    ErrorInput("float stride", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), stride=1.5), TypeError,
               r"stride must be an int or a tuple of two ints, got 1\.5"),
    ErrorInput("bias of the wrong length", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), x32(5)), RuntimeError,
               r"bias must be 1-D with one value per output channel, shape \(6,\), got shape \(5,\)"),
    ErrorInput("float64 input, float32 weight", lambda F, nn: F.conv2d(x32(2, 4, 5, 5, dtype=torch.float64),
                                                                       x32(6, 4, 3, 3)),
               RuntimeError, r"weight has dtype torch\.float32 but input has dtype torch\.float64"),
    ErrorInput("float64 bias", lambda F, nn: F.conv2d(x32(2, 4, 5, 5), x32(6, 4, 3, 3), x32(6, dtype=torch.float64)),
               RuntimeError, r"bias has dtype torch\.float64 but input has dtype torch\.float32"),
    ErrorInput("list input", lambda F, nn: F.conv2d([[1.0]], x32(6, 4, 3, 3)), TypeError,
               r"input must be a torch\.Tensor, got list"),
    ErrorInput("nn.Conv2d input/weight channel mismatch", lambda F, nn: nn.Conv2d(3, 4, 3)(x32(2, 5, 6, 6)),
               RuntimeError, r"input has 5 channels .* weight of shape \(4, 3, 3, 3\) with groups=1 expects 3"),
    ErrorInput("nn.Conv2d kernel larger than the input", lambda F, nn: nn.Conv2d(3, 4, 5)(x32(2, 3, 4, 4)),
               RuntimeError, r"kernel spans 5 × 5 .* padded input is only 4 × 4"),
    ErrorInput("nn.Conv2d 2-D input", lambda F, nn: nn.Conv2d(3, 4, 3)(x32(3, 6)),
               RuntimeError, r"input must be 4-D .*got shape \(3, 6\)"),
)


def _conv2d_bench(device):
    def randn_(*shape, requires_grad=True):
        return torch.randn(*shape, device=device, requires_grad=requires_grad)

    def case(label, x_shape, w_shape, input_grad=True, **kwargs):
        args = (randn_(*x_shape, requires_grad=input_grad), randn_(*w_shape), randn_(w_shape[0]))
        return label, args, kwargs

    return [
        case("Fashion-MNIST conv1: 128×1×28×28, 1→32, 3×3 (no dL/dx)", (128, 1, 28, 28), (32, 1, 3, 3), False,
             padding=1),
        case("Fashion-MNIST conv2: 128×32×14×14, 32→64, 3×3", (128, 32, 14, 14), (64, 32, 3, 3), padding=1),
        case("resnet18 layer1: 8×64×56×56, 64→64, 3×3", (8, 64, 56, 56), (64, 64, 3, 3), padding=1),
        case("resnet18 layer2 down: 8×64×56×56, 64→128, 3×3 stride 2", (8, 64, 56, 56), (128, 64, 3, 3),
             stride=2, padding=1),
        case("depthwise: 8×64×56×56, 3×3, groups 64", (8, 64, 56, 56), (64, 1, 3, 3), padding=1, groups=64),
    ]


def _sample(gen, name, x_shape, w_shape, bias=True, transposed=False, **kwargs):
    """A convolution's call: x, W and (unless ``bias`` is False) b, drawn from ``gen``."""
    args = (randn(gen, *x_shape), randn(gen, *w_shape))
    if bias:
        args += (randn(gen, w_shape[1] * kwargs.get("groups", 1) if transposed else w_shape[0]),)
    return Sample(args, kwargs, name)


def _conv1d_samples(gen):
    return [
        _sample(gen, "stride 2, padding 1, dilation 2, groups 2", (2, 4, 9), (6, 2, 3), stride=2, padding=1,
                dilation=2, groups=2),
        _sample(gen, "padding='same', even kernel (asymmetric), no bias", (2, 3, 7), (4, 3, 4), bias=False,
                padding="same"),
        _sample(gen, "depthwise, groups = C, stride 3 > kernel", (2, 3, 10), (3, 1, 2), groups=3, stride=3),
        _sample(gen, "(C, L) unbatched, padding='valid'", (3, 8), (2, 3, 3), padding="valid"),
    ]


def _conv3d_samples(gen):
    return [
        _sample(gen, "stride (2, 1, 1), padding (1, 0, 1), dilation (1, 2, 1), groups 2", (2, 4, 5, 6, 4),
                (4, 2, 3, 2, 3), stride=(2, 1, 1), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2),
        _sample(gen, "padding='same', even kernel, depthwise, no bias", (1, 3, 4, 5, 4), (3, 1, 2, 3, 2), bias=False,
                padding="same", groups=3),
        _sample(gen, "(C, D, H, W) unbatched, stride 2", (2, 5, 4, 5), (3, 2, 2, 2, 2), stride=2),
    ]


def _conv_transpose1d_samples(gen):
    return [
        _sample(gen, "stride 2, padding 1, output_padding 1, groups 2", (2, 4, 5), (4, 3, 3), transposed=True,
                stride=2, padding=1, output_padding=1, groups=2),
        _sample(gen, "dilation 2, output_padding 1 > padding (stride 1), no bias", (2, 3, 5), (3, 2, 3), bias=False,
                transposed=True, dilation=2, output_padding=1),
        _sample(gen, "(C, L) unbatched, stride 3 > kernel", (3, 4), (3, 2, 2), transposed=True, stride=3),
    ]


def _conv_transpose2d_samples(gen):
    return [
        _sample(gen, "4×4 kernel, stride 2, padding 1 (a decoder's upsampling)", (2, 4, 4, 5), (4, 3, 4, 4),
                transposed=True, stride=2, padding=1),
        _sample(gen, "stride (2, 3), padding (1, 0), output_padding (1, 2), dilation (1, 2), groups 2",
                (2, 4, 3, 4), (4, 2, 3, 2), transposed=True, stride=(2, 3), padding=(1, 0), output_padding=(1, 2),
                dilation=(1, 2), groups=2),
        _sample(gen, "depthwise, groups = C, no bias", (2, 3, 4, 4), (3, 1, 3, 3), bias=False, transposed=True,
                groups=3, padding=1),
        _sample(gen, "(C, H, W) unbatched", (3, 4, 3), (3, 2, 2, 3), transposed=True, stride=2),
        _sample(gen, "(0, C, H, W) empty batch", (0, 3, 4, 4), (3, 2, 3, 3), transposed=True, padding=1),
    ]


def _conv_transpose3d_samples(gen):
    return [
        _sample(gen, "stride 2, padding 1, output_padding (1, 0, 1), groups 2", (2, 4, 3, 3, 2), (4, 2, 3, 3, 3),
                transposed=True, stride=2, padding=1, output_padding=(1, 0, 1), groups=2),
        _sample(gen, "(C, D, H, W) unbatched, dilation (1, 2, 1), no bias", (2, 3, 2, 3), (2, 3, 2, 2, 2), bias=False,
                transposed=True, dilation=(1, 2, 1)),
    ]


def _module_samples(configurations, forward_kwargs=None):
    return tuple(ModuleSample(name, lambda gen, shape=shape: (randn(gen, *shape),), args, kwargs,
                              forward_kwargs=(forward_kwargs or {}).get(name, {}))
                 for name, args, kwargs, shape in configurations)


_CONV1D_MODULES = _module_samples([
    ("Conv1d(4, 6, 3, stride 2, groups 2)", (4, 6, 3), {"stride": 2, "groups": 2, "padding": 1}, (2, 4, 9)),
    ("Conv1d(3, 4, 4, padding='same', bias=False)", (3, 4, 4), {"padding": "same", "bias": False}, (3, 7)),
    ("Conv1d(1, 1, 3) (ECA's channel attention)", (1, 1, 3), {"padding": 1, "bias": False}, (2, 1, 8)),
] + [(f"Conv1d(3, 4, 3, padding_mode={mode!r})", (3, 4, 3), {"padding": 2, "padding_mode": mode}, (2, 3, 6))
     for mode in ("reflect", "replicate", "circular")])

_CONV3D_MODULES = _module_samples([
    ("Conv3d(3, 4, (3, 2, 2), stride (1, 2, 2))", (3, 4, (3, 2, 2)), {"stride": (1, 2, 2), "padding": (1, 0, 0)},
     (2, 3, 4, 6, 5)),
    ("Conv3d(4, 4, 3, groups 4, padding='same')", (4, 4, 3), {"groups": 4, "padding": "same"}, (4, 3, 4, 4)),
    ("Conv3d(1, 3, (3, 3, 1)) (a lambda layer's position convolution)", (1, 3, (3, 3, 1)), {"padding": (1, 1, 0)},
     (2, 1, 4, 4, 3)),
] + [(f"Conv3d(2, 3, 2, padding_mode={mode!r})", (2, 3, 2), {"padding": 1, "padding_mode": mode}, (1, 2, 3, 4, 3))
     for mode in ("reflect", "replicate", "circular")])

_CONV_TRANSPOSE_MODULES = {
    1: _module_samples([
        ("ConvTranspose1d(4, 6, 3, stride 2, output_padding 1, groups 2)", (4, 6, 3),
         {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, (2, 4, 5)),
        ("ConvTranspose1d(3, 2, 3, dilation 2, bias=False)", (3, 2, 3), {"dilation": 2, "bias": False}, (3, 4)),
    ]),
    2: _module_samples([
        ("ConvTranspose2d(4, 3, 4, stride 2, padding 1)", (4, 3, 4), {"stride": 2, "padding": 1}, (2, 4, 4, 5)),
        ("ConvTranspose2d(3, 6, 3, groups 3, dilation (1, 2))", (3, 6, 3), {"groups": 3, "dilation": (1, 2)},
         (2, 3, 3, 4)),
        ("ConvTranspose2d(3, 2, 3, stride 2, padding 1), output_size (8, 7)", (3, 2, 3), {"stride": 2, "padding": 1},
         (2, 3, 4, 4)),
    ], forward_kwargs={"ConvTranspose2d(3, 2, 3, stride 2, padding 1), output_size (8, 7)": {"output_size": (8, 7)}}),
    3: _module_samples([
        ("ConvTranspose3d(2, 3, 2, stride 2)", (2, 3, 2), {"stride": 2}, (2, 2, 2, 3, 2)),
        ("ConvTranspose3d(2, 2, 3, padding 1, output_padding 1, stride 2)", (2, 2, 3),
         {"stride": 2, "padding": 1, "output_padding": 1}, (2, 2, 3, 2)),
    ]),
}


_ERRORS_1D = (
    ErrorInput("conv1d: 4-D input", lambda F, nn: F.conv1d(x32(1, 2, 4, 5), x32(6, 2, 3)), RuntimeError,
               r"conv1d: input must be 3-D \(N, C, L\) or 2-D unbatched \(C, L\), got shape \(1, 2, 4, 5\)"),
    ErrorInput("conv1d: 4-D weight", lambda F, nn: F.conv1d(x32(2, 4, 5), x32(6, 4, 3, 3)), RuntimeError,
               r"weight must be 3-D \(out_channels, in_channels / groups, kL\), got shape \(6, 4, 3, 3\)"),
    ErrorInput("conv1d: stride of two values", lambda F, nn: F.conv1d(x32(2, 4, 5), x32(6, 4, 3), stride=(1, 2)),
               RuntimeError, r"stride must be an int or a tuple of one int \(length\), got \(1, 2\)"),
    ErrorInput("conv1d: complex input", lambda F, nn: F.conv1d(x32(2, 4, 5, dtype=torch.complex64),
                                                               x32(6, 4, 3, dtype=torch.complex64)),
               NotImplementedError, r"conv1d: complex tensors are not supported", torch_accepts=True),
    ErrorInput("conv1d: kernel larger than the input", lambda F, nn: F.conv1d(x32(2, 4, 5), x32(6, 4, 7)),
               RuntimeError, r"kernel spans 7 \(kernel 7, dilation \(1,\)\) but the padded input is only 5"),
    ErrorInput("nn.Conv1d channel mismatch", lambda F, nn: nn.Conv1d(3, 4, 3)(x32(2, 5, 6)), RuntimeError,
               r"input has 5 channels .* weight of shape \(4, 3, 3\) with groups=1 expects 3"),
)

_ERRORS_3D = (
    ErrorInput("conv3d: 4-D weight", lambda F, nn: F.conv3d(x32(2, 4, 3, 5, 5), x32(6, 4, 3, 3)), RuntimeError,
               r"weight must be 5-D \(out_channels, in_channels / groups, kD, kH, kW\), got shape \(6, 4, 3, 3\)"),
    ErrorInput("conv3d: padding='same' with stride 2",
               lambda F, nn: F.conv3d(x32(2, 4, 3, 5, 5), x32(6, 4, 3, 3, 3), stride=2, padding="same"), RuntimeError,
               r"conv3d: padding='same' is not supported for strided convolutions \(stride=\(2, 2, 2\)\)"),
    ErrorInput("conv3d: dilation of two values",
               lambda F, nn: F.conv3d(x32(2, 4, 3, 5, 5), x32(6, 4, 3, 3, 3), dilation=(1, 2)), RuntimeError,
               r"dilation must be an int or a tuple of three ints \(depth, height, width\), got \(1, 2\)"),
    ErrorInput("nn.Conv3d 3-D input", lambda F, nn: nn.Conv3d(3, 4, 3)(x32(3, 6, 6)), RuntimeError,
               r"input must be 5-D \(N, C, D, H, W\) or 4-D unbatched \(C, D, H, W\), got shape \(3, 6, 6\)"),
)


def _transposed_errors(n):
    fn = f"conv_transpose{n}d"
    x, W = (2, 4, *(5,) * n), (4, 3, *(3,) * n)

    def call(x_shape=x, w_shape=W, bias=None, **kwargs):
        return lambda F, nn: getattr(F, fn)(x32(*x_shape), x32(*w_shape), bias if bias is None else x32(bias),
                                            **kwargs)

    return (
        ErrorInput(f"{fn}: input/weight channel mismatch", call(w_shape=(3, 3, *(3,) * n)), RuntimeError,
                   rf"{fn}: input has 4 channels .* but weight of shape \(3, 3(, 3)+\) expects 3 \(its first dimension\)"),
        ErrorInput(f"{fn}: in_channels not divisible by groups", call(groups=3), RuntimeError,
                   rf"{fn}: weight's in_channels \(4, .*\) must be a multiple of groups=3"),
        ErrorInput(f"{fn}: bias of the wrong length", call(bias=5), RuntimeError,
                   r"bias must be 1-D with one value per output channel, shape \(3,\), got shape \(5,\)"),
        ErrorInput(f"{fn}: output_padding not smaller than stride or dilation", call(stride=2, output_padding=2),
                   RuntimeError, rf"{fn}: output_padding \(2(, 2)*,?\) must be smaller than the stride "
                                 rf"\(2(, 2)*,?\) or the dilation"),
        ErrorInput(f"{fn}: padding string", call(padding="same"), TypeError,
                   rf"{fn}: padding must be an int or a tuple of .*, got 'same'"),
        ErrorInput(f"{fn}: stride 0", call(stride=0), RuntimeError, r"stride must be positive, got 0"),
        ErrorInput(f"{fn}: complex weight", lambda F, nn: getattr(F, fn)(x32(*x, dtype=torch.complex64),
                                                                         x32(*W, dtype=torch.complex64)),
                   NotImplementedError, rf"{fn}: complex tensors are not supported", torch_accepts=True),
        ErrorInput(f"{fn}: no output rows", call(padding=4), RuntimeError, rf"{fn}: the output would be \(-1"
                   rf"(, -1)*,?\) .*each size must be positive"),
    )


def _bench_case(device, label, x_shape, w_shape, transposed=False, **kwargs):
    args = (bench_randn(device, *x_shape), bench_randn(device, *w_shape),
            bench_randn(device, w_shape[1] * kwargs.get("groups", 1) if transposed else w_shape[0]))
    return label, args, kwargs


def _conv1d_bench(device):
    return [
        _bench_case(device, "32×64×1024, 64→64, k 5, padding 2", (32, 64, 1024), (64, 64, 5), padding=2),
        _bench_case(device, "ECA channel attention: 64×1×256, k 5", (64, 1, 256), (1, 1, 5), padding=2),
    ]


def _conv3d_bench(device):
    return [
        _bench_case(device, "r3d layer1: 2×64×8×28×28, 64→64, 3×3×3", (2, 64, 8, 28, 28), (64, 64, 3, 3, 3), padding=1),
        _bench_case(device, "r3d stem: 2×3×8×56×56, 3→64, 3×7×7 stride (1, 2, 2)", (2, 3, 8, 56, 56), (64, 3, 3, 7, 7),
                    stride=(1, 2, 2), padding=(1, 3, 3)),
    ]


def _conv_transpose1d_bench(device):
    return [_bench_case(device, "32×64×256, 64→32, k 4 stride 2 padding 1", (32, 64, 256), (64, 32, 4), True, stride=2,
                        padding=1)]


def _conv_transpose2d_bench(device):
    return [
        _bench_case(device, "decoder: 8×64×28×28, 64→32, 4×4 stride 2 padding 1", (8, 64, 28, 28), (64, 32, 4, 4), True,
                    stride=2, padding=1),
        _bench_case(device, "8×64×56×56, 64→64, 3×3 padding 1", (8, 64, 56, 56), (64, 64, 3, 3), True, padding=1),
    ]


def _conv_transpose3d_bench(device):
    return [_bench_case(device, "2×32×8×14×14, 32→16, 2×2×2 stride 2", (2, 32, 8, 14, 14), (32, 16, 2, 2, 2), True,
                        stride=2)]


# dL/dx sums out·∏k terms of magnitude ~1 into values up to ~16, rounding on the way: in half precision
# the hand and the built-in both land within 2 ulps of the exact (float64 NumPy) sum at that magnitude,
# which is more than the default atol allows near zero.
_HALF = {torch.bfloat16: Tolerance(atol=0.25, rtol=3e-2), torch.float16: Tolerance(atol=0.03, rtol=4e-3)}
_F = torch.nn.functional
_WEIGHT_AND_BIAS = (1, 2)        # a layer's parameters, in use anyway: not counted in the bytes kept

OP_INFOS = (
    OpInfo("conv1d", _F.conv1d, _conv1d_samples, conv_numpy, _conv1d_bench, errors=_ERRORS_1D, tolerances=_HALF,
           modules={torch.nn.Conv1d: _CONV1D_MODULES}, parameters=_WEIGHT_AND_BIAS),
    OpInfo("conv2d", _F.conv2d, _conv2d_samples, conv_numpy, _conv2d_bench, errors=_ERRORS, tolerances=_HALF,
           modules={torch.nn.Conv2d: _conv2d_module_samples()}, parameters=_WEIGHT_AND_BIAS),
    OpInfo("conv3d", _F.conv3d, _conv3d_samples, conv_numpy, _conv3d_bench, errors=_ERRORS_3D, tolerances=_HALF,
           modules={torch.nn.Conv3d: _CONV3D_MODULES}, parameters=_WEIGHT_AND_BIAS),
) + tuple(
    OpInfo(f"conv_transpose{n}d", getattr(_F, f"conv_transpose{n}d"), samples, conv_transpose_numpy, bench,
           errors=_transposed_errors(n), tolerances=_HALF, parameters=_WEIGHT_AND_BIAS,
           modules={getattr(torch.nn, f"ConvTranspose{n}d"): _CONV_TRANSPOSE_MODULES[n]})
    for n, samples, bench in ((1, _conv_transpose1d_samples, _conv_transpose1d_bench),
                              (2, _conv_transpose2d_samples, _conv_transpose2d_bench),
                              (3, _conv_transpose3d_samples, _conv_transpose3d_bench))
)
