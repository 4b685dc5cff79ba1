"""The convolution's cases (``handgrad.ops.conv``): NumPy oracle (the seed's Linear on every patch),
samples, bad inputs, bench sizes, tolerances."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, x32


def conv2d_numpy(x, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Loops over output positions; at each, the seed's layer on the patch, group by group."""
    unbatched = x.ndim == 3
    x = x[None] if unbatched else x
    (sh, sw), (dh, dw) = [(v, v) if isinstance(v, int) else tuple(v) * (3 - len(v)) for v in (stride, dilation)]
    out, c_group, kh, kw = W.shape
    if padding == "valid":
        padding = 0
    if padding == "same":
        pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in ((kh, dh), (kw, dw))]
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding) * (3 - len(padding))
        pads = [(ph, ph), (pw, pw)]
    x_pad = np.pad(x, ((0, 0), (0, 0), *pads))
    n = x.shape[0]
    out_h = (x_pad.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (x_pad.shape[3] - dw * (kw - 1) - 1) // sw + 1
    o_group = out // groups
    W_mats = [W[k * o_group:(k + 1) * o_group].reshape(o_group, -1) for k in range(groups)]   # (out / G, C/G·kh·kw)

    def patch_index(p, q, k):
        """Index of group k's patch at output position (p, q) in x_pad: (N, C / G, kh, kw)."""
        return (slice(None), slice(k * c_group, (k + 1) * c_group),
                slice(p * sh, p * sh + dh * (kh - 1) + 1, dh), slice(q * sw, q * sw + dw * (kw - 1) + 1, dw))

    y = np.zeros((n, out, out_h, out_w))
    for p in range(out_h):
        for q in range(out_w):
            for k in range(groups):
                patch = x_pad[patch_index(p, q, k)].reshape(n, -1)                      # (N, C/G·kh·kw)
                y[:, k * o_group:(k + 1) * o_group, p, q] = patch @ W_mats[k].T         # the seed's x W
    if b is not None:
        y += b[None, :, None, None]

    def vjp(g):
        g = g[None] if unbatched else g
        dx_pad, dW = np.zeros_like(x_pad), np.zeros(W.shape)
        for p in range(out_h):
            for q in range(out_w):
                for k in range(groups):
                    index = patch_index(p, q, k)
                    g_pq = g[:, k * o_group:(k + 1) * o_group, p, q]                    # (N, out / G)
                    patch = x_pad[index].reshape(n, -1)
                    dW[k * o_group:(k + 1) * o_group] += (g_pq.T @ patch).reshape(o_group, c_group, kh, kw)
                    dx_pad[index] += (g_pq @ W_mats[k]).reshape(n, c_group, kh, kw)
        dx = dx_pad[:, :, pads[0][0]:pads[0][0] + x.shape[2], pads[1][0]:pads[1][0] + x.shape[3]]
        db = None if b is None else g.sum((0, 2, 3))
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
               RuntimeError, r"padding must be 'same', 'valid', an int or a pair of ints, got 'full'"),
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


OP_INFOS = (
    OpInfo(
        "conv2d", torch.nn.functional.conv2d, _conv2d_samples, conv2d_numpy, _conv2d_bench, errors=_ERRORS,
        # dL/dx sums out·kh·kw terms of magnitude ~1 into values up to ~16, rounding on the way: in half
        # precision the hand and the built-in both land within 2 ulps of the exact (float64 NumPy) sum
        # at that magnitude, which is more than the default atol allows near zero.
        tolerances={torch.bfloat16: Tolerance(atol=0.25, rtol=3e-2), torch.float16: Tolerance(atol=0.03, rtol=4e-3)},
        modules={torch.nn.Conv2d: _conv2d_module_samples()}, parameters=(1, 2),
    ),
)
