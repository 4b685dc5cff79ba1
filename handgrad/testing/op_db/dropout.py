"""Dropout's and stochastic depth's cases (``handgrad.ops.dropout``): NumPy oracles, samples, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, list_input, x32


def dropout_numpy(x, p=0.5, training=True, inplace=False):
    """The keep-mask comes from torch's generator, as the Function's does (the harness seeds it
    before each call); on the CPU the mask does not depend on the dtype."""
    if not training or p == 0:
        return x, lambda g: (g,)
    keep = torch.empty(x.shape, dtype=torch.float64).bernoulli_(1 - p).numpy().astype(bool) if p < 1 else np.zeros(x.shape, bool)
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return np.where(keep, x * scale, 0.0), lambda g: (np.where(keep, g * scale, 0.0),)


def _dropout_samples(gen):
    # On CUDA torch's fused dropout kernel draws its mask from another random stream.
    forms = {"(N, D) p=0.3": ((10, 8), 0.3), "(B, C, H, W) p=0.5": ((2, 3, 4, 5), 0.5),
             "p=1 drops everything": ((6, 7), 1.0), "(0, D) empty": ((0, 7), 0.5)}
    return [Sample((randn(gen, *shape), p), name=name, reference_devices=("cpu",)) for name, (shape, p) in forms.items()]


OP_INFOS = (
    OpInfo(
        "dropout", torch.nn.functional.dropout, _dropout_samples, dropout_numpy,
        lambda device: [("(1024, 512), p=0.2", (bench_randn(device, 1024, 512), 0.2), {})],
        modules={torch.nn.Dropout: tuple(
            ModuleSample(f"p={p}{', inplace' if inplace else ''}", lambda gen: (randn(gen, 20, 15),), (p, inplace),
                         train_devices=("cpu",))
            for p in (0.2, 0.5, 0.9) for inplace in (False, True))},
    ),
)


def _feature_dropout_numpy(spatial):
    """The oracle of ``dropout{spatial}d``: one keep per (sample, channel), drawn from torch's generator
    in m's shape as the Function draws it, broadcast over the channel's positions; an input without
    its batch dimension (dropout1d's (C, L), dropout3d's (C, D, H, W)) draws one keep per channel."""
    def oracle(x, p=0.5, training=True, inplace=False):
        if not training or p == 0 or x.size == 0:
            return x, lambda g: (g,)
        batched = x.ndim == spatial + 2 or spatial == 2
        lead = x.shape[:2] if batched else (1, x.shape[0])
        shape = lead + (1,) * (x.ndim - (2 if batched else 1))
        keep = torch.empty(shape, dtype=torch.float64).bernoulli_(1 - p).numpy() if p < 1 else np.zeros(shape)
        m = (keep / (1 - p) if p < 1 else keep).reshape(keep.shape if batched else keep.shape[1:])
        return x * m, lambda g: (g * m,)
    return oracle


# Each form of each: batched, without the batch dimension (dropout2d reads a 3-D input as (N, C, L)),
# and p = 1, which draws nothing.
_FEATURE_FORMS = {
    1: {"(N, C, L) p=0.3": ((3, 4, 5), 0.3), "(C, L) p=0.5": ((6, 5), 0.5),
        "p=1 drops every channel": ((2, 3, 4), 1.0)},
    2: {"(N, C, H, W) p=0.5": ((3, 4, 3, 2), 0.5), "(N, C, L) 3-D p=0.4": ((4, 3, 5), 0.4)},
    3: {"(N, C, D, H, W) p=0.3": ((2, 4, 2, 3, 2), 0.3), "(C, D, H, W) p=0.5": ((6, 2, 2, 3), 0.5)},
}

_FEATURE_BENCH = {1: (32, 64, 1024), 2: (32, 64, 32, 32), 3: (8, 64, 8, 32, 32)}


def _feature_dropout_samples(spatial):
    def samples(gen):
        return [Sample((randn(gen, *shape), p), name=name) for name, (shape, p) in _FEATURE_FORMS[spatial].items()]
    return samples


def _feature_dropout_errors(spatial):
    name = f"dropout{spatial}d"
    errors = (ErrorInput("p 1.5", lambda F, nn: getattr(F, name)(x32(2, 3, *(4,) * spatial), 1.5), ValueError,
                         rf"{name}: probability p must be in \[0, 1\], got 1\.5"),
              # torch's AttributeError comes from calling list.dim: an accident, not an API.
              list_input(name, torch_class=AttributeError))
    if spatial == 1:
        errors += (ErrorInput("4-D input", lambda F, nn: F.dropout1d(x32(2, 3, 4, 5)), RuntimeError,
                              r"dropout1d: Expected 2D or 3D input, but received a 4D input"),)
    return errors


OP_INFOS += tuple(
    OpInfo(
        f"dropout{n}d", getattr(torch.nn.functional, f"dropout{n}d"), _feature_dropout_samples(n),
        _feature_dropout_numpy(n),
        lambda device, n=n: [(f"{_FEATURE_BENCH[n]}, p=0.1", (bench_randn(device, *_FEATURE_BENCH[n]), 0.1), {})],
        errors=_feature_dropout_errors(n),
        modules={getattr(torch.nn, f"Dropout{n}d"): tuple(
            ModuleSample(f"p={p}{', inplace' if inplace else ''}",
                         lambda gen, n=n: (randn(gen, 4, 6, *(3,) * n),), (p, inplace))
            for p, inplace in ((0.3, False), (0.5, True)))},
    )
    for n in (1, 2, 3)
)


def stochastic_depth_numpy(x, p, mode, training=True):
    """The mask drawn from torch's generator as torchvision draws it: one Bernoulli per sample (row)
    or one for the batch, broadcast over the rest."""
    if not training or p == 0:
        return x, lambda g: (g,)
    size = (x.shape[0],) + (1,) * (x.ndim - 1) if mode == "row" else (1,) * x.ndim
    m = torch.empty(size, dtype=torch.float64).bernoulli_(1 - p).numpy()
    m = m / (1 - p) if p < 1 else m
    return x * m, lambda g: (g * m,)


def _torchvision_stochastic_depth(input, p, mode, training=True):
    from torchvision.ops import stochastic_depth

    return stochastic_depth(input, p, mode, training)


def _stochastic_depth_samples(gen):
    forms = {"row, (N, C, H, W), p=0.4": ((6, 3, 4, 4), 0.4, "row"), "row, (N, L, E), p=0.5": ((8, 5, 4), 0.5, "row"),
             "batch, p=0.3": ((4, 3, 2), 0.3, "batch"), "row, p=1 drops every sample": ((5, 3), 1.0, "row"),
             "(0, C) empty": ((0, 3), 0.5, "row")}
    # p = 0 and training=False return the input itself (as torchvision does): the module's eval mode tests it.
    return [Sample((randn(gen, *shape), p, mode), name=name) for name, (shape, p, mode) in forms.items()]


# torchvision's class, by its import path (as the registry names it): handgrad does not need torchvision.
_STOCHASTIC_DEPTH_MODULES = {"torchvision.ops.StochasticDepth": tuple(
    ModuleSample(f"p={p}, {mode}", lambda gen: (randn(gen, 8, 3, 4, 4),), (p, mode)) for p in (0.2, 0.5)
    for mode in ("row", "batch"))}


_STOCHASTIC_DEPTH_ERRORS = (
    ErrorInput("p 1.5", lambda F, nn: F.stochastic_depth(x32(4, 3), 1.5, "row"), ValueError,
               r"stochastic_depth: drop probability p has to be between 0 and 1, but got 1\.5"),
    ErrorInput("mode 'rows'", lambda F, nn: F.stochastic_depth(x32(4, 3), 0.5, "rows"), ValueError,
               r"stochastic_depth: mode has to be either 'batch' or 'row', but got 'rows'"),
    ErrorInput("integer input", lambda F, nn: F.stochastic_depth(torch.ones(4, 3, dtype=torch.long), 0.5, "row"),
               TypeError, r"stochastic_depth: input must be floating point, got torch\.int64"),
)

OP_INFOS += (
    OpInfo("stochastic_depth", _torchvision_stochastic_depth, _stochastic_depth_samples, stochastic_depth_numpy,
           lambda device: [("ViT block (128, 50, 128), p=0.1", (bench_randn(device, 128, 50, 128), 0.1, "row"), {})],
           errors=_STOCHASTIC_DEPTH_ERRORS, modules=_STOCHASTIC_DEPTH_MODULES),
)
