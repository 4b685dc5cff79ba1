"""The distances' cases (``handgrad.ops.distance``): NumPy oracles, samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, sum_to, x32
from handgrad.testing.op_db.elementwise import leaf
from handgrad.testing.op_db.reductions import norm_numpy

# -- NumPy oracles: (y, vjp) ------------------------------------------------------------------------------


def cdist_numpy(x1, x2, p=2.0, compute_mode=None):
    """y_pr = ‖x1_p − x2_r‖_p from the differences d (*, P, R, M); ∂y/∂x1 = sign(d) (|d| / y)ᵖ⁻¹ (0 where y = 0),
    p = ∞: sign(d) where |d| = y; ∂y/∂x2 = −∂y/∂x1; each summed over its broadcast batch dimensions."""
    d = x1[..., :, None, :] - x2[..., None, :, :]
    a = np.abs(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        if p == np.inf:
            y = a.max(-1)
            term = np.sign(d) * (a == y[..., None])
        elif p == 0:
            y = (a != 0).sum(-1).astype(np.float64)
            term = np.zeros_like(d)
        else:
            y = (a ** p).sum(-1) ** (1 / p)
            term = np.where(y[..., None] == 0, 0.0, np.sign(d) * (a / y[..., None]) ** (p - 1))

    def vjp(g):
        weighted = term * g[..., None]
        return sum_to(weighted.sum(-2), x1.shape), sum_to(-weighted.sum(-3), x2.shape)

    return y, vjp


def pairwise_distance_numpy(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """‖x1 − x2 + ε‖_p along the last dimension: the norm's vjp, to x1 and negated to x2."""
    z = x1 - x2 + eps
    y, vjp = norm_numpy(z, p, z.ndim - 1, keepdim)
    return y, lambda g: (sum_to(vjp(g)[0], x1.shape), sum_to(-vjp(g)[0], x2.shape))


def cosine_similarity_numpy(x1, x2, dim=1, eps=1e-8):
    """Σ u1 u2 along dim, u = x / c, c = max(‖x‖, ε): dL/du1 = g u2, and dL/dx1 = dL/du1 / c − x1 Σ(dL/du1 x1) / (c² ‖x1‖)
    where ‖x1‖ > ε (c constant below)."""
    shape1, shape2 = x1.shape, x2.shape
    x1, x2 = np.broadcast_arrays(x1, x2)
    n1, n2 = (np.sqrt((x * x).sum(dim, keepdims=True)) for x in (x1, x2))
    c1, c2 = np.maximum(n1, eps), np.maximum(n2, eps)
    u1, u2 = x1 / c1, x2 / c2

    def back(du, x, n, c):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > eps, du / c - x * (du * x).sum(dim, keepdims=True) / (c * c * n), du / c)

    def vjp(g):
        g = np.expand_dims(g, dim)
        return sum_to(back(g * u2, x1, n1, c1), shape1), sum_to(back(g * u1, x2, n2, c2), shape2)

    return (u1 * u2).sum(dim), vjp


# -- samples --------------------------------------------------------------------------------------------


def _cdist_samples(gen):
    forms = [
        ("(P, M) and (R, M), p=2", (randn(gen, 4, 3), randn(gen, 5, 3)), {}),
        ("p=1", (randn(gen, 4, 3), randn(gen, 2, 3), 1.0), {}),
        ("p=3", (randn(gen, 4, 3), randn(gen, 2, 3)), {"p": 3.0}),
        ("p=inf", (randn(gen, 4, 3), randn(gen, 2, 3), float("inf")), {}),
        ("(B, P, M) and (1, R, M), batch broadcast", (randn(gen, 2, 4, 3), randn(gen, 1, 5, 3)), {}),
        ("p=2, use_mm_for_euclid_dist", (randn(gen, 4, 3), randn(gen, 5, 3)),
         {"compute_mode": "use_mm_for_euclid_dist"}),
        ("p=0: the count of coordinates that differ", (randn(gen, 3, 2), randn(gen, 2, 2), 0.0), {}),
    ]
    found = [Sample(args, kwargs, name) for name, args, kwargs in forms]
    found.append(Sample((leaf([[1.0, 2.0], [0.5, -1.0]]), leaf([[1.0, 2.0], [3.0, 0.0]])), name="a pair at distance 0",
                        gradcheck=False))
    return found


def _pairwise_distance_samples(gen):
    forms = [
        ("(N, D), p=2", (randn(gen, 4, 5), randn(gen, 4, 5)), {}),
        ("(N, D) and (D), p=1, keepdim", (randn(gen, 4, 5), randn(gen, 5)), {"p": 1.0, "keepdim": True}),
        ("(D) and (D), p=3, eps=0", (randn(gen, 5), randn(gen, 5)), {"p": 3.0, "eps": 0.0}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _cosine_similarity_samples(gen):
    forms = [
        ("(N, D), dim=1", (randn(gen, 4, 5), randn(gen, 4, 5)), {}),
        ("(N, D) and (D), dim=-1, broadcast", (randn(gen, 4, 5), randn(gen, 5)), {"dim": -1}),
        ("(B, C, H, W), dim=1: feature maps", (randn(gen, 2, 3, 2, 2), randn(gen, 2, 3, 2, 2)), {}),
    ]
    found = [Sample(args, kwargs, name) for name, args, kwargs in forms]
    found.append(Sample((leaf([[0.0, 0.0, 0.0], [0.5, -1.0, 2.0]]), randn(gen, 2, 3)), name="a zero vector: ‖x‖ < eps",
                        gradcheck=False, dtypes=(torch.float64, torch.float32, torch.bfloat16)))   # ε is 0 in float16
    return found


def _pair_errors(op):
    return (ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, 2.0], x32(2)), TypeError,
                       rf"{op}: x1 must be a torch\.Tensor, got list"),)


OP_INFOS = (
    OpInfo("cdist", torch.cdist, _cdist_samples, cdist_numpy,
           lambda device: [("(64, 256, 32) and (64, 128, 32)", (bench_randn(device, 64, 256, 32),
                                                               bench_randn(device, 64, 128, 32)), {})],
           errors=_pair_errors("cdist") + (
               ErrorInput("columns that differ", lambda F, nn: F.cdist(x32(3, 2), x32(4, 3)), RuntimeError,
                          r"cdist: x1 and x2 must have the same number of columns, got 2 and 3"),
               ErrorInput("p < 0", lambda F, nn: F.cdist(x32(3, 2), x32(4, 2), -1.0), RuntimeError,
                          r"cdist: p must be a number ≥ 0, got -1\.0"))),
    OpInfo("pairwise_distance", torch.nn.functional.pairwise_distance, _pairwise_distance_samples,
           pairwise_distance_numpy,
           lambda device: [("(6400, 128)", (bench_randn(device, 6400, 128), bench_randn(device, 6400, 128)), {})],
           errors=_pair_errors("pairwise_distance")),
    OpInfo("cosine_similarity", torch.nn.functional.cosine_similarity, _cosine_similarity_samples,
           cosine_similarity_numpy,
           lambda device: [("(6400, 128)", (bench_randn(device, 6400, 128), bench_randn(device, 6400, 128)), {})],
           errors=_pair_errors("cosine_similarity")),
)
