"""Attention's cases (``handgrad.ops.attention``): the NumPy oracle (the definition, softmax row by row),
samples, bad inputs, bench sizes."""

import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32


def _softmax_rows(s):
    """softmax along the last axis; a row that is −∞ everywhere attends to nothing (0), as in PyTorch."""
    top = np.max(s, axis=-1, keepdims=True)
    top = np.where(np.isneginf(top), 0.0, top)
    e = np.exp(s - top)
    total = e.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0)


def scaled_dot_product_attention_numpy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                       enable_gqa=False):
    """S = Q Kᵀ · scale + B, P = softmax(S), O = (P ∘ Z) V with Z drawn from torch's generator as the
    face draws it; vjp by the chain rule, stage by stage."""
    length, e, source = q.shape[-2], q.shape[-1], k.shape[-2]
    scale = 1 / math.sqrt(e) if scale is None else scale
    repeat = q.shape[-3] // k.shape[-3] if enable_gqa and q.ndim >= 3 else 1
    k_full, v_full = (np.repeat(t, repeat, axis=-3) for t in (k, v))
    s = q @ np.swapaxes(k_full, -1, -2) * scale
    if is_causal:
        s = s + np.where(np.tril(np.ones((length, source), bool)), 0.0, -np.inf)
    elif attn_mask is not None:
        s = s + (np.where(attn_mask, 0.0, -np.inf) if attn_mask.dtype == bool else attn_mask)
    p = _softmax_rows(s)
    batch = np.broadcast_shapes(q.shape[:-2], k_full.shape[:-2], v_full.shape[:-2])
    z = np.ones((*batch, length, source))
    if dropout_p > 0:
        keep = torch.empty((*batch, length, source), dtype=torch.float64).bernoulli_(1 - dropout_p).numpy()
        z = keep / (1 - dropout_p) if dropout_p < 1 else np.zeros_like(keep)
    o = (p * z) @ v_full

    def vjp(g):
        dv = np.swapaxes(p * z, -1, -2) @ g                              # (P ∘ Z)ᵀ g
        dp = (g @ np.swapaxes(v_full, -1, -2)) * z                       # (g Vᵀ) ∘ Z
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))            # softmax's vjp, row by row
        dq = ds @ k_full * scale
        dk = np.swapaxes(ds, -1, -2) @ q * scale
        if repeat > 1:                                                   # each key head served `repeat` query heads
            dk = dk.reshape(*dk.shape[:-3], -1, repeat, *dk.shape[-2:]).sum(axis=-3)
            dv = dv.reshape(*dv.shape[:-3], -1, repeat, *dv.shape[-2:]).sum(axis=-3)
        dk, dv = (_sum_to(d, t.shape) for d, t in ((dk, k), (dv, v)))
        dmask = None
        if attn_mask is not None and attn_mask.dtype != bool:
            dmask = _sum_to(ds, attn_mask.shape)
        return _sum_to(dq, q.shape), dk, dv, dmask

    return o, vjp


def _sum_to(a, shape):
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape)


def _samples(gen):
    def qkv(batch, length, source, e=4, ev=None, kv_batch=None, scale=1.0):
        kv_batch = batch if kv_batch is None else kv_batch
        return (randn(gen, *batch, length, e, scale=scale), randn(gen, *kv_batch, source, e),
                randn(gen, *kv_batch, source, ev or e))

    bool_mask = torch.rand(5, 6, generator=gen) > 0.3
    bool_mask[:, 0] = True                                               # every query sees something...
    masked_row = bool_mask.clone()
    masked_row[2] = False                                                # ... but this one, which sees nothing
    float_mask = randn(gen, 2, 1, 5, 6)
    forms = [
        ("(N, H, L, E), L ≠ S", qkv((2, 3), 5, 6), {}, {}),
        ("(N, H, L, E), value width Ev ≠ E", qkv((2, 3), 5, 6, ev=7), {}, {}),
        ("(N, L, E)", qkv((2,), 5, 6), {}, {}),
        ("(L, E)", qkv((), 5, 6), {}, {}),
        ("bool mask (L, S)", qkv((2, 3), 5, 6), {"attn_mask": bool_mask}, {}),
        ("bool mask, a query that sees no key", qkv((2, 3), 5, 6), {"attn_mask": masked_row}, {}),
        ("float mask (N, 1, L, S), differentiated", qkv((2, 3), 5, 6) + (float_mask,), {}, {}),
        ("float mask (L, S), constant", qkv((2, 3), 5, 6), {"attn_mask": randn(gen, 5, 6, requires_grad=False)}, {}),
        ("is_causal, L = S", qkv((2, 3), 6, 6), {"is_causal": True}, {}),
        ("is_causal, L < S", qkv((2, 3), 4, 6), {"is_causal": True}, {}),
        ("scale=0.3", qkv((2, 3), 5, 6), {"scale": 0.3}, {}),
        ("enable_gqa: 4 query heads, 2 key heads", (randn(gen, 2, 4, 5, 4),) + qkv((2, 2), 5, 6)[1:],
         {"enable_gqa": True}, {}),
        # Scores of ±30 rounded to half precision: the softmax's rows, near one-hot, move by more than
        # the tolerance between any two ways of rounding; compared in float64 and float32.
        ("scores ~ N(0, 100)", qkv((2, 3), 5, 6, scale=10.0), {}, {"dtypes": (torch.float64, torch.float32)}),
        ("(0, H, L, E) empty batch", qkv((0, 3), 5, 6), {}, {}),
        # PyTorch's dropout draws its own mask: compared with the NumPy oracle, which draws the face's.
        ("dropout_p=0.3", qkv((2, 3), 5, 6), {"dropout_p": 0.3}, {"builtin_devices": ()}),
    ]
    return [Sample(args, kwargs, name, **options) for name, args, kwargs, options in forms]


def _bench(device):
    """A small vision transformer's attention: batch 128, 50 tokens, 4 heads of 32."""
    return [("ViT: (128, 4, 50, 32)", tuple(bench_randn(device, 128, 4, 50, 32) for _ in range(3)), {})]


_ERRORS = (
    ErrorInput("list query", lambda F, nn: F.scaled_dot_product_attention([1.0], x32(2, 6, 3), x32(2, 6, 3)),
               TypeError, r"scaled_dot_product_attention: query must be a torch\.Tensor, got list"),
    ErrorInput("query and key of other widths",
               lambda F, nn: F.scaled_dot_product_attention(x32(2, 5, 4), x32(2, 6, 3), x32(2, 6, 3)), RuntimeError,
               r"query has 4 features per row .* but key has 3"),
    ErrorInput("key and value of other lengths",
               lambda F, nn: F.scaled_dot_product_attention(x32(2, 5, 4), x32(2, 6, 4), x32(2, 7, 4)), RuntimeError,
               r"key has 6 rows .* but value has 7", torch_accepts=True),
    ErrorInput("is_causal with a mask",
               lambda F, nn: F.scaled_dot_product_attention(x32(2, 5, 4), x32(2, 5, 4), x32(2, 5, 4),
                                                            attn_mask=torch.ones(5, 5, dtype=torch.bool), is_causal=True),
               RuntimeError, r"is_causal and attn_mask cannot both be given"),
    ErrorInput("mask that does not broadcast",
               lambda F, nn: F.scaled_dot_product_attention(x32(2, 5, 4), x32(2, 6, 4), x32(2, 6, 4),
                                                            attn_mask=torch.ones(5, 5, dtype=torch.bool)),
               RuntimeError, r"attn_mask of shape \(5, 5\) does not broadcast to the scores' shape \(2, 5, 6\)"),
    ErrorInput("int mask",
               lambda F, nn: F.scaled_dot_product_attention(x32(2, 5, 4), x32(2, 6, 4), x32(2, 6, 4),
                                                            attn_mask=torch.ones(5, 6, dtype=torch.long)),
               RuntimeError, r"attn_mask must be bool .* or float .*, got torch\.int64"),
    ErrorInput("dropout_p 1.5",
               lambda F, nn: F.scaled_dot_product_attention(x32(2, 5, 4), x32(2, 6, 4), x32(2, 6, 4), dropout_p=1.5),
               RuntimeError, r"dropout_p must be a probability in \[0, 1\], got 1\.5"),
    ErrorInput("query heads not a multiple of the key's",
               lambda F, nn: F.scaled_dot_product_attention(x32(2, 3, 5, 4), x32(2, 2, 6, 4), x32(2, 2, 6, 4),
                                                            enable_gqa=True), RuntimeError,
               r"with enable_gqa the query's heads \(3\) must be a multiple of the key's and value's"),
    ErrorInput("float64 key, float32 query",
               lambda F, nn: F.scaled_dot_product_attention(x32(2, 5, 4), x32(2, 6, 4, dtype=torch.float64),
                                                            x32(2, 6, 4)), RuntimeError,
               r"query, key and value must share a dtype, got torch\.float32, torch\.float64 and torch\.float32"),
)

OP_INFOS = (
    OpInfo("scaled_dot_product_attention", torch.nn.functional.scaled_dot_product_attention, _samples,
           scaled_dot_product_attention_numpy, _bench, errors=_ERRORS,
           # A softmax of scores that are sums of E products, then sums of S products: in half precision
           # the built-in and the hand forms round at other places.
           tolerances={torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2), torch.float16: Tolerance(atol=4e-3, rtol=8e-3)}),
)
