"""Dropout's cases (``handgrad.ops.dropout``): NumPy oracle, samples, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn


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
