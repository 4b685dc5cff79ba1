"""The padding's cases (``handgrad.ops.pad``): a NumPy oracle (np.pad), samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32


def pad_numpy(x, pad, mode="constant", value=None):
    """np.pad's modes, with negative amounts cut as torch cuts them (circular: before wrapping around;
    otherwise after padding); the vjp follows where each output element came from, found by padding
    the flat index of every input element the same way."""
    def padded(a, fill):
        axes = len(pad) // 2
        amounts = [(pad[2 * k], pad[2 * k + 1]) for k in reversed(range(axes))]
        lead = [(0, 0)] * (a.ndim - axes)
        if mode == "circular":                               # cut first, then wrap around what is left
            a = a[(..., *(slice(max(-b, 0), m - max(-e, 0)) for (b, e), m in zip(amounts, a.shape[a.ndim - axes:])))]
        widths = lead + [(max(b, 0), max(e, 0)) for b, e in amounts]
        kind = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
        a = np.pad(a, widths, kind, **({"constant_values": fill} if mode == "constant" else {}))
        if mode != "circular":
            a = a[(..., *(slice(max(-b, 0), m - max(-e, 0)) for (b, e), m in zip(amounts, a.shape[a.ndim - axes:])))]
        return a

    y = padded(x.astype(np.float64), 0.0 if value is None else value)
    source = padded(np.arange(x.size).reshape(x.shape), -1)

    def vjp(g):
        dx = np.zeros(x.size)
        np.add.at(dx, source[source >= 0], g[source >= 0])
        return (dx.reshape(x.shape),)

    return y, vjp


def _pad_samples(gen):
    def sample(name, shape, *args, **kwargs):
        return Sample((randn(gen, *shape), *args), kwargs, name)

    return [
        sample("constant, value 1.5, 3 axes of a 4-D input, one cut", (2, 3, 4, 5), (1, 2, -1, 1, 0, 2), value=1.5),
        sample("constant (default zero), the last axis of a 1-D input", (5,), (2, 1)),
        sample("reflect, (C, W) unbatched", (3, 5), (2, 4), "reflect"),
        sample("reflect 2-D, one side cut", (2, 2, 4, 5), (1, 3, -1, 2), "reflect"),
        sample("replicate 3-D, one side cut", (1, 2, 3, 4, 3), (2, 1, 0, -2, 1, 2), "replicate"),
        sample("circular 2-D, cut then wrapped", (2, 2, 4, 5), (-1, 2, 3, -1), mode="circular"),
        sample("circular, (C, H, W) unbatched", (2, 3, 4), [1, 2, 2, 0], "circular"),
        sample("reflect, (0, C, W) empty batch", (0, 2, 5), (1, 1), "reflect"),
    ]


def _module_samples():
    shapes = {1: (2, 3, 6), 2: (2, 3, 4, 5), 3: (1, 2, 3, 4, 4)}
    paddings = {1: (2, 1), 2: (1, 2, 2, 0), 3: (1, 1, 0, 2, 2, 1)}
    kinds = {"Reflection": (), "Replication": (), "Circular": (), "Zero": (), "Constant": (-0.5,)}
    return {getattr(torch.nn, f"{kind}Pad{n}d"): (ModuleSample(
        f"{kind}Pad{n}d({paddings[n]}{''.join(f', {v}' for v in extra)}) on {shapes[n]}",
        lambda gen, shape=shapes[n]: (randn(gen, *shape),), (paddings[n], *extra)),)
        for n in (1, 2, 3) for kind, extra in kinds.items()}


_ERRORS = (
    ErrorInput("pad length odd", lambda F, nn: F.pad(x32(2, 3), (1, 2, 3)), RuntimeError,
               r"pad: the padding length must be divisible by 2 \(a pair per axis\), got \(1, 2, 3\)"),
    ErrorInput("padding more axes than the input has", lambda F, nn: F.pad(x32(3), (1, 1, 1, 1)), RuntimeError,
               r"pad: the padding length must be at most twice the input's dimension: \(1, 1, 1, 1\) pads 2 axes"),
    ErrorInput("unknown mode", lambda F, nn: F.pad(x32(2, 3), (1, 1), "mirror"), NotImplementedError,
               r"pad: mode must be one of \('constant', 'reflect', 'replicate', 'circular'\), got 'mirror'"),
    ErrorInput("reflect with a value", lambda F, nn: F.pad(x32(2, 3), (1, 1), "reflect", 2.0), RuntimeError,
               r"pad: mode 'reflect' takes no value argument \(got value=2\.0\)"),
    ErrorInput("reflect on a 4-D input with a padding of length 2", lambda F, nn: F.pad(x32(1, 2, 3, 4), (1, 1), "reflect"),
               NotImplementedError, r"pad: reflect padding pads the last 1, 2 or 3 axes .* a padding of length 2 takes "
                                    r"a 2-D or 3-D input, got shape \(1, 2, 3, 4\)"),
    ErrorInput("reflect as wide as the axis", lambda F, nn: F.pad(x32(2, 3), (3, 0), "reflect"), RuntimeError,
               r"pad: reflect padding must be less than the size of the axis it pads: \(3, 0\) along axis 1 of size 3"),
    ErrorInput("circular wrapping twice", lambda F, nn: F.pad(x32(2, 3), (0, 4), "circular"), RuntimeError,
               r"pad: circular padding must be at most the size of the axis it pads"),
    ErrorInput("replicate of an empty axis", lambda F, nn: F.pad(x32(2, 3, 0), (1, 1), "replicate"), RuntimeError,
               r"pad: replicate padding takes non-zero sizes but for the batch's"),
    ErrorInput("constant cutting more than the axis", lambda F, nn: F.pad(x32(2, 3), (-2, -2)), RuntimeError,
               r"pad: the padding \(-2, -2\) leaves -1 of the 3 rows of axis 1"),
    ErrorInput("float padding", lambda F, nn: F.pad(x32(2, 3), (1.5, 1)), TypeError,
               r"pad: pad must be a tuple of ints .*got \(1\.5, 1\)"),
    ErrorInput("list input", lambda F, nn: F.pad([1.0, 2.0], (1, 1)), TypeError,
               r"pad: input must be a torch\.Tensor, got list"),
    ErrorInput("nn.ReflectionPad2d wider than the input", lambda F, nn: nn.ReflectionPad2d(3)(x32(1, 2, 3, 3)),
               RuntimeError, r"reflect padding must be less than the size of the axis it pads"),
)


def _bench(device):
    return [
        ("resnetblur's blur: reflect (1, 1, 1, 1) on 8×64×56×56", (bench_randn(device, 8, 64, 56, 56), (1, 1, 1, 1),
                                                                     "reflect"), {}),
        ("constant (2, 2, 2, 2) on 8×64×56×56", (bench_randn(device, 8, 64, 56, 56), (2, 2, 2, 2)), {}),
        ("replicate 3-D (1,) * 6 on 2×32×8×28×28", (bench_randn(device, 2, 32, 8, 28, 28), (1,) * 6, "replicate"), {}),
        ("circular (2, 2) on 32×64×1024", (bench_randn(device, 32, 64, 1024), (2, 2), "circular"), {}),
    ]


OP_INFOS = (
    OpInfo("pad", torch.nn.functional.pad, _pad_samples, pad_numpy, _bench, errors=_ERRORS, modules=_module_samples()),
)
