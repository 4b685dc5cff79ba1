"""The tensor algebra's cases (``handgrad.ops.algebra``): NumPy oracles, samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, sum_to, x32


def add_numpy(a, b, alpha=1):
    """y = a + α b; each gradient g summed back to its input's shape."""
    b = np.asarray(b)
    return a + alpha * b, lambda g: (sum_to(g, a.shape), sum_to(alpha * g, b.shape))


def _samples(gen):
    forms = [
        ("same shape (3, 4)", (randn(gen, 3, 4), randn(gen, 3, 4)), {}),
        ("(N, L, E) + (1, L, E), a position embedding", (randn(gen, 2, 5, 4), randn(gen, 1, 5, 4)), {}),
        ("(N, E) + (E)", (randn(gen, 6, 4), randn(gen, 4)), {}),
        ("(4, 1) + (1, 5), both broadcast", (randn(gen, 4, 1), randn(gen, 1, 5)), {}),
        ("(E) + (N, E), input broadcast", (randn(gen, 4), randn(gen, 3, 4)), {}),
        ("alpha=-0.5", (randn(gen, 3, 4), randn(gen, 3, 4)), {"alpha": -0.5}),
        ("other a number", (randn(gen, 3, 4), 2.5), {}),
        ("0-d other", (randn(gen, 3, 4), randn(gen)), {}),
        ("(0, 4) + (4), empty", (randn(gen, 0, 4), randn(gen, 4)), {}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _bench(device):
    """A small vision transformer's residual connection and position embedding: 128 × 50 tokens of width 128."""
    return [("residual (128, 50, 128)", (bench_randn(device, 128, 50, 128), bench_randn(device, 128, 50, 128)), {}),
            ("position (128, 50, 128) + (1, 50, 128)", (bench_randn(device, 128, 50, 128),
                                                        bench_randn(device, 1, 50, 128)), {})]


_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.add([1.0, -2.0], x32(2)), TypeError,
               r"add: input must be a torch\.Tensor, got list"),
    ErrorInput("shapes that do not broadcast", lambda F, nn: F.add(x32(2, 3), x32(4)), RuntimeError,
               r"add: input of shape \(2, 3\) and other of shape \(4,\) do not broadcast"),
    ErrorInput("other a string", lambda F, nn: F.add(x32(2, 3), "1"), TypeError,
               r"add: other must be a torch\.Tensor or a number, got str"),
)

OP_INFOS = (OpInfo("add", torch.add, _samples, add_numpy, _bench, errors=_ERRORS),)
