"""Softmax and log-softmax's cases (``handgrad.ops.softmax``): NumPy oracles, samples, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn


def softmax_numpy(x, dim=None, _stacklevel=3, dtype=None):
    """The seed's softmax, shifted by the maximum (``C = np.max(vec)``), and its Jacobian product."""
    dim = dim if x.ndim else None
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    p = e / e.sum(axis=dim, keepdims=True)
    return p, lambda g: (p * (g - (g * p).sum(axis=dim, keepdims=True)),)


def softmin_numpy(x, dim=None, _stacklevel=3, dtype=None):
    """softmax(−x), and the softmax's Jacobian product through the negation."""
    p, vjp = softmax_numpy(-x, dim)
    return p, lambda g: (-vjp(g)[0],)


def log_softmax_numpy(x, dim=None, _stacklevel=3, dtype=None):
    dim = dim if x.ndim else None
    shifted = x - x.max(axis=dim, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    return log_p, lambda g: (g - np.exp(log_p) * g.sum(axis=dim, keepdims=True),)


def _samples(gen):
    forms = {
        "(N, C), dim=1": ((6, 5), 1, 1.0),
        "(N, C), dim=0": ((6, 5), 0, 1.0),
        "(N, C), dim=-1": ((6, 5), -1, 1.0),
        "(B, C, H, W), dim=1": ((2, 3, 4, 2), 1, 1.0),
        "(B, C, H, W), dim=3": ((2, 3, 4, 2), 3, 1.0),
        "(C,), dim=0": ((5,), 0, 1.0),
        "0-d, dim=0": ((), 0, 1.0),
        "(0, C) empty, dim=1": ((0, 5), 1, 1.0),
        "(N, 1) one class": ((4, 1), 1, 1.0),
        "logits ~ N(0, 100²)": ((6, 5), 1, 100.0),
    }
    return [Sample((randn(gen, *shape, scale=scale), dim), name=name) for name, (shape, dim, scale) in forms.items()]


def _softmin_samples(gen):
    """A few of softmax's forms: softmin is its rule through −x."""
    kept = ("(N, C), dim=1", "(B, C, H, W), dim=3", "0-d, dim=0", "(0, C) empty, dim=1")
    return [s for s in _samples(gen) if s.name in kept]


def _bench(device):
    return [("(1024, 10), dim=1", (bench_randn(device, 1024, 10), 1), {}),
            ("(64, 1000), dim=1", (bench_randn(device, 64, 1000), 1), {}),
            ("ViT attention weights: (128, 4, 50, 50), dim=-1", (bench_randn(device, 128, 4, 50, 50), -1), {})]


def _module_samples():
    return tuple(ModuleSample(f"dim={dim}", lambda gen: (randn(gen, 2, 4, 3),), (), {"dim": dim}) for dim in (1, -1, 0))


OP_INFOS = (
    OpInfo("softmax", torch.nn.functional.softmax, _samples, softmax_numpy, _bench,
           modules={torch.nn.Softmax: _module_samples()}),
    OpInfo("softmin", torch.nn.functional.softmin, _softmin_samples, softmin_numpy, lambda device: _bench(device)[:1],
           modules={torch.nn.Softmin: _module_samples()[:1]}),
    OpInfo("log_softmax", torch.nn.functional.log_softmax, _samples, log_softmax_numpy, _bench,
           modules={torch.nn.LogSoftmax: _module_samples()}),
)
