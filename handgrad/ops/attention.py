"""Attention: O = softmax(Q Kᵀ · scale + B) V, each query's output a weighted mean of the values,
the weights a softmax of its scores against every key.

Notation (FlashAttention-2's): Q (*, L, E) the queries, K (*, S, E) the keys, V (*, S, Ev) the values,
one row each; B (*, L, S) the additive mask (0 where a query may look, −∞ where it may not; a float
mask as given); S = Q Kᵀ · scale + B the scores, P = softmax(S) row by row, Z the dropout's scaled
keep-mask (1 without dropout), O = (P ∘ Z) V (*, L, Ev), g = dL/dO; ℓ = log Σ_j e^(S_ij), each row's
log-sum-exp, so that P = e^(S − ℓ).

Backward. O = P̃ V with P̃ = P ∘ Z is the seed's linear layer twice over: dV = P̃ᵀ g, dP̃ = g Vᵀ, and
dP = dP̃ ∘ Z. Through each row's softmax (``softmax_backward``): dS = P ∘ (dP − rowsum(dP ∘ P)), and
rowsum(dP ∘ P) = rowsum(dP̃ ∘ P̃) = rowsum(g ∘ O) =: D, which needs no L × S product. Then
S = Q Kᵀ · scale is a product again: dQ = dS K · scale, dK = dSᵀ Q · scale, and a float mask
receives dS itself. Forward keeps Q, K, V, O and ℓ, never P: backward recomputes P = e^(S − ℓ)
from them, so the bytes kept are those of PyTorch's own flash kernels.
"""

import math

import torch

from handgrad.ops._checks import LOWER, as_dtype, autocast, check_floating, check_tensor, computed_in
from handgrad.ops._function import HandFunction, apply, derivation
from handgrad.ops._registry import Derivative, Op, register


def scores(q, k, bias, scale):
    """S = Q Kᵀ · scale + B, (*, L, S)."""
    s = torch.matmul(q, k.transpose(-2, -1)) * scale
    return s if bias is None else s + bias


def probabilities(s, lse):
    """P = e^(S − ℓ) from the scores and each row's log-sum-exp; a row masked everywhere (ℓ = −∞)
    attends to nothing, P = 0, as in PyTorch."""
    return torch.exp(s - torch.where(torch.isneginf(lse), 0.0, lse).unsqueeze(-1))


def attention_forward(q, k, v, bias, m, scale):
    """(O, ℓ): the forward kernel where there is one (PyTorch's flash attention on the CPU, without
    dropout), else the formula: S, ℓ = logsumexp(S), P = e^(S − ℓ), O = (P ∘ Z) V, in float32 for
    float16 and bfloat16 (as the kernel accumulates). ℓ is float32 for those, as the kernel's."""
    flash = (m is None and q.device.type == "cpu" and q.dim() == 4 and k.shape[:-2] == v.shape[:-2] == q.shape[:-2]
             and v.shape[-1] == q.shape[-1])                  # the kernel's own conditions
    if flash:
        mask = None if bias is None else bias.expand(*q.shape[:-1], k.shape[-2])
        # The kernel reads each row as contiguous (a last dimension of stride 1), whatever the other
        # strides, and lays O out as Q is laid out: Q a view of multi-head attention's packed (L, N, 3E)
        # projection gives O in (L, N, E) order, which out_proj then reads as it is (no copy kept).
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, attn_mask=mask,
                                                                          scale=scale)
    out_dtype, dtype = q.dtype, computed_in(q.dtype)
    q, k, v, bias, m = (as_dtype(t, dtype) for t in (q, k, v, bias, m))
    s = scores(q, k, bias, scale)
    lse = torch.logsumexp(s, -1)
    p = probabilities(s, lse)
    return as_dtype(torch.matmul(p if m is None else p * m, v), out_dtype), lse


class ScaledDotProductAttention(HandFunction):
    """O = (softmax(Q Kᵀ · scale + B) ∘ Z) V; returns (O, ℓ), ℓ each row's log-sum-exp.

    q (*, L, E), k (*, S, E), v (*, S, Ev) with the same leading dimensions; ``bias`` B broadcastable
    to (*, L, S) or None; ``m`` Z, the dropout's keep-mask / (1 − p), (*, L, S), or None.
    """

    @staticmethod
    def forward(q, k, v, bias, m, scale):
        return attention_forward(q, k, v, bias, m, scale)

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, bias, m, scale = inputs
        o, lse = output
        ctx.save_for_backward(q, k, v, bias, m, o, lse)
        ctx.save_for_forward(q, k, v, bias, m, o, lse)
        ctx.scale = scale
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_lse):
        saved = ctx.saved_tensors
        dtypes = [None if t is None else t.dtype for t in saved[:4]]   # q, k, v, bias
        dtype = computed_in(saved[0].dtype)                              # float32 for float16 and bfloat16
        grads = attention_backward(ctx.needs_input_grad[:4], *(as_dtype(t, dtype) for t in (g, g_lse, *saved)),
                                   ctx.scale)
        return (*(None if grad is None else as_dtype(grad, d) for grad, d in zip(grads, dtypes)), None, None)

    @staticmethod
    def jvp(ctx, dq, dk, dv, d_bias, *_):
        """Forward mode: dS = (dQ Kᵀ + Q dKᵀ) · scale + dB, dℓ = rowsum(P ∘ dS), dP = P ∘ (dS − dℓ),
        dO = (dP ∘ Z) V + (P ∘ Z) dV."""
        q, k, v, bias, m, o, lse = ctx.saved_tensors
        p = probabilities(scores(q, k, bias, ctx.scale), lse)
        ds = 0
        if dq is not None:
            ds = ds + torch.matmul(dq, k.transpose(-2, -1)) * ctx.scale
        if dk is not None:
            ds = ds + torch.matmul(q, dk.transpose(-2, -1)) * ctx.scale
        if d_bias is not None:
            ds = ds + d_bias
        do, d_lse = torch.zeros_like(o), torch.zeros_like(lse)
        if not isinstance(ds, int):
            d_lse = (p * ds).sum(-1)                                     # dℓ = rowsum(P ∘ dS)
            dp = p * (ds - d_lse.unsqueeze(-1))
            do = do + torch.matmul(dp if m is None else dp * m, v)
        if dv is not None:
            do = do + torch.matmul(p if m is None else p * m, dv)
        return do, d_lse


@derivation
def attention_backward(wants, g, g_lse, q, k, v, bias, m, o, lse, scale):
    """dQ, dK, dV and dB (None where not wanted), FlashAttention-2's backward from what forward kept:

        P = e^(S − ℓ)                     S recomputed, P never kept
        dV = (P ∘ Z)ᵀ g                   O = (P ∘ Z) V, the seed's dL/dW = xᵀ g
        dP = (g Vᵀ) ∘ Z                   and its dL/dx = g Wᵀ, through the dropout
        D = rowsum(g ∘ O)                 = rowsum(dP ∘ P), one number per query
        dS = P ∘ (dP − D)                 softmax's backward, row by row
        dQ = dS K · scale, dK = dSᵀ Q · scale, dB = dS (summed where B was broadcast)

    ℓ is returned too (so that double backward, which differentiates P = e^(S − ℓ), sees it move
    with S); a gradient g_ℓ reaching it adds P ∘ g_ℓ to dS (∂ℓ/∂S = P). Either of g, g_ℓ may be None.
    Shapes: q, dQ (*, L, E); k, dK (*, S, E); v, dV (*, S, Ev); o, g (*, L, Ev); S, P, dS (*, L, S); D (*, L, 1).
    Every tensor arrives in the dtype it is computed in (float32 for float16 and bfloat16 inputs).
    """
    grad_q = grad_k = grad_v = grad_bias = None
    p = probabilities(scores(q, k, bias, scale), lse)                    # (*, L, S)
    p_kept = p if m is None else p * m                                   # P ∘ Z
    if wants[2] and g is not None:
        grad_v = torch.matmul(p_kept.transpose(-2, -1), g)              # dV = (P ∘ Z)ᵀ g, (*, S, Ev)
    if wants[0] or wants[1] or wants[3]:
        ds = torch.zeros_like(p)
        if g is not None:
            dp = torch.matmul(g, v.transpose(-2, -1))                    # dP̃ = g Vᵀ, (*, L, S)
            dp = dp if m is None else dp * m                             # dP = dP̃ ∘ Z
            d = (g * o).sum(-1, keepdim=True)                            # D = rowsum(g ∘ O), (*, L, 1)
            ds = p * (dp - d)                                            # dS = P ∘ (dP − D), (*, L, S)
        if g_lse is not None:
            ds = ds + p * g_lse.unsqueeze(-1)                            # ... + P ∘ g_ℓ
        if wants[0]:
            grad_q = torch.matmul(ds, k) * scale                         # dQ = dS K · scale, (*, L, E)
        if wants[1]:
            grad_k = torch.matmul(ds.transpose(-2, -1), q) * scale       # dK = dSᵀ Q · scale, (*, S, E)
        if wants[3] and bias is not None:
            grad_bias = ds.sum_to_size(bias.shape)                       # dB = dS, B's shape
    return grad_q, grad_k, grad_v, grad_bias


@attention_backward.faster
def _attention_backward_in_place(wants, g, g_lse, q, k, v, bias, m, o, lse, scale):
    """The same in two (*, L, S) tensors where the reference makes nine: P is built in Q Kᵀ's buffer
    (scaled, masked, ℓ taken off and exponentiated in place), dS in g Vᵀ's, and the scale applied in
    dQ's and dK's own. Each (*, L, S) tensor made and freed costs page faults where the allocator gives
    freed memory back (glibc's does, for large blocks). Forward + backward of
    scaled_dot_product_attention at a small ViT's (128, 4, 50, 32) in 0.87× the reference's time,
    of multi_head_attention_forward at (50, 128, 128) in 0.96× (bench section 9)."""
    grad_q = grad_k = grad_v = grad_bias = None
    p = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)                # S = Q Kᵀ · scale ...
    if bias is not None:
        p = p.add_(bias) if torch.broadcast_shapes(bias.shape, p.shape) == p.shape else p + bias   # ... + B
    p.sub_(torch.where(torch.isneginf(lse), 0.0, lse).unsqueeze(-1)).exp_()        # P = e^(S − ℓ)
    if wants[2] and g is not None:
        grad_v = torch.matmul((p if m is None else p * m).transpose(-2, -1), g)     # dV = (P ∘ Z)ᵀ g
    if wants[0] or wants[1] or wants[3]:
        if g is not None:
            ds = torch.matmul(g, v.transpose(-2, -1))                    # dP̃ = g Vᵀ
            if m is not None:
                ds.mul_(m)                                               # dP = dP̃ ∘ Z
            ds.sub_((g * o).sum(-1, keepdim=True)).mul_(p)               # dS = P ∘ (dP − D)
            if g_lse is not None:
                ds.addcmul_(p, g_lse.unsqueeze(-1))                      # ... + P ∘ g_ℓ
        elif g_lse is not None:
            ds = p.mul_(g_lse.unsqueeze(-1))                             # dS = P ∘ g_ℓ, in P's buffer
        else:
            ds = p.zero_()
        if wants[0]:
            grad_q = torch.matmul(ds, k).mul_(scale)                     # dQ = dS K · scale
        if wants[1]:
            grad_k = torch.matmul(ds.transpose(-2, -1), q).mul_(scale)   # dK = dSᵀ Q · scale
        if wants[3] and bias is not None:
            grad_bias = ds.sum_to_size(bias.shape)                       # dB = dS, B's shape
    return grad_q, grad_k, grad_v, grad_bias


class AttentionWeights(HandFunction):
    """W = P ∘ Z, the attention weights themselves (what ``MultiheadAttention`` returns with
    ``need_weights``), averaged over the heads (dimension −3) when ``average``; returns (W, ℓ).

    Backward is the middle of ``attention_backward``: dP = g_W ∘ Z (g_W / H on every head when
    averaged), dS = P ∘ (dP − rowsum(dP ∘ P)), then dQ, dK and dB as there.
    """

    @staticmethod
    def forward(q, k, bias, m, scale, average):
        dtype = computed_in(q.dtype)
        s = scores(as_dtype(q, dtype), as_dtype(k, dtype), as_dtype(bias, dtype), scale)
        lse = torch.logsumexp(s, -1)
        w = probabilities(s, lse)
        w = w if m is None else w * m
        return as_dtype(w.mean(-3) if average else w, q.dtype), lse

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, bias, m, scale, average = inputs
        ctx.save_for_backward(q, k, bias, m, output[1])
        ctx.scale, ctx.average = scale, average
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g_w, g_lse):
        q, k, bias, m, lse = ctx.saved_tensors
        wants = ctx.needs_input_grad
        if g_w is not None and ctx.average:
            g_w = (g_w / q.shape[-3]).unsqueeze(-3)                      # each head had weight 1 / H
        grad_q, grad_k, grad_bias = attention_weights_backward(wants, g_w, g_lse, q, k, bias, m, lse, ctx.scale)
        return grad_q, grad_k, grad_bias, None, None, None


def attention_weights_backward(wants, g_w, g_lse, q, k, bias, m, lse, scale):
    """dQ, dK, dB of W = P ∘ Z: dP = g_W ∘ Z, dS = P ∘ (dP − rowsum(dP ∘ P)) + P ∘ g_ℓ, then
    dQ = dS K · scale, dK = dSᵀ Q · scale, dB = dS."""
    dtypes = [None if t is None else t.dtype for t in (q, k, bias)]
    dtype = computed_in(q.dtype)
    q, k, bias, m, lse, g_w, g_lse = (as_dtype(t, dtype) for t in (q, k, bias, m, lse, g_w, g_lse))
    p = probabilities(scores(q, k, bias, scale), lse)                    # (*, L, S)
    ds = torch.zeros_like(p)
    if g_w is not None:
        dp = g_w if m is None else g_w * m                              # dP = g_W ∘ Z
        ds = p * (dp - (dp * p).sum(-1, keepdim=True))                   # softmax's backward
    if g_lse is not None:
        ds = ds + p * g_lse.unsqueeze(-1)
    grad_q = torch.matmul(ds, k) * scale if wants[0] else None           # dQ = dS K · scale
    grad_k = torch.matmul(ds.transpose(-2, -1), q) * scale if wants[1] else None    # dK = dSᵀ Q · scale
    grad_bias = ds.sum_to_size(bias.shape) if wants[2] and bias is not None else None
    return tuple(None if grad is None else as_dtype(grad, d) for grad, d in zip((grad_q, grad_k, grad_bias), dtypes))


# -- functional face -------------------------------------------------------------------------------


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """O = softmax(Q Kᵀ · scale + B) V, as ``torch.nn.functional.scaled_dot_product_attention``.

    Shapes: query (N, ..., Hq, L, E), key (N, ..., H, S, E), value (N, ..., H, S, Ev), output
    (N, ..., Hq, L, Ev); H = Hq, or with ``enable_gqa`` a divisor of it (each key and value head
    serves Hq / H query heads). ``attn_mask`` broadcasts to (N, ..., Hq, L, S): bool (True takes part)
    or float (added to the scores); ``is_causal`` lets query i see keys j ≤ i (the upper-left
    triangle, as PyTorch) and excludes ``attn_mask``; ``scale`` defaults to 1/√E; ``dropout_p`` drops
    attention weights in training (the mask drawn from torch's generator).
    """
    fn = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_floating(fn, name, t)
        if t.dim() < 2:
            raise RuntimeError(f"{fn}: {name} must have at least 2 dimensions (..., rows, features), got shape "
                               f"{tuple(t.shape)}")
    if attn_mask is not None:
        check_tensor(fn, "attn_mask", attn_mask)
    if not isinstance(dropout_p, (int, float)) or isinstance(dropout_p, bool) or not 0.0 <= dropout_p <= 1.0:
        raise RuntimeError(f"{fn}: dropout_p must be a probability in [0, 1], got {dropout_p!r}")
    if is_causal and attn_mask is not None:
        raise RuntimeError(f"{fn}: is_causal and attn_mask cannot both be given: is_causal is the causal mask; "
                           f"fold it into attn_mask instead")
    query, key, value, mask = autocast(LOWER, query, key, value, attn_mask)
    if not query.dtype == key.dtype == value.dtype:
        raise RuntimeError(f"{fn}: query, key and value must share a dtype, got {query.dtype}, {key.dtype} and "
                           f"{value.dtype}")
    if not query.device == key.device == value.device:
        raise RuntimeError(f"{fn}: query, key and value must be on one device, got {query.device}, {key.device} and "
                           f"{value.device}")
    (length, e), (source, e_key) = query.shape[-2:], key.shape[-2:]
    if e != e_key:
        raise RuntimeError(f"{fn}: query has {e} features per row (shape {tuple(query.shape)}) but key has {e_key} "
                           f"(shape {tuple(key.shape)}): Q Kᵀ needs the same")
    if value.shape[-2] != source:
        raise RuntimeError(f"{fn}: key has {source} rows (shape {tuple(key.shape)}) but value has {value.shape[-2]} "
                           f"(shape {tuple(value.shape)}): each key needs its value")
    key, value = _key_value_heads(fn, query, key, value, enable_gqa)
    batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    query = query.expand(*batch, length, e)
    key, value = key.expand(*batch, source, e), value.expand(*batch, source, value.shape[-1])
    bias = _bias(fn, mask, is_causal, query.dtype, query.device, (*batch, length, source))
    scale = 1 / math.sqrt(e) if scale is None else float(scale)
    m = None
    if dropout_p > 0:
        keep = torch.empty((*batch, length, source), dtype=query.dtype, device=query.device)
        m = keep.bernoulli_(1 - dropout_p).div_(1 - dropout_p) if dropout_p < 1 else keep.zero_()
    o, _ = apply(ScaledDotProductAttention, query, key, value, bias, m, scale)
    return o


def _key_value_heads(fn, query, key, value, enable_gqa):
    """Key and value with as many heads (dimension −3) as the query: each of their H heads repeated
    Hq / H times where ``enable_gqa`` asks for grouped-query attention (a repeat is a movement, its
    gradient the sum over the repeats)."""
    if not enable_gqa or query.dim() < 3:
        return key, value
    heads, kv_heads = query.shape[-3], key.shape[-3]
    if value.shape[-3] != kv_heads or heads % kv_heads:
        raise RuntimeError(f"{fn}: with enable_gqa the query's heads ({heads}) must be a multiple of the key's and "
                           f"value's ({kv_heads} and {value.shape[-3]}, equal)")
    repeat = heads // kv_heads
    return (t.unsqueeze(-3).expand(*t.shape[:-2], repeat, *t.shape[-2:]).flatten(-4, -3) for t in (key, value))


def _bias(fn, mask, is_causal, dtype, device, shape):
    """B: 0 where a query may attend, −∞ where not (bool mask; causal: above the diagonal), or the
    float mask itself, broadcast to the scores' shape (*, L, S)."""
    length, source = shape[-2:]
    if is_causal:
        allowed = torch.ones(length, source, dtype=torch.bool, device=device).tril()
        return torch.zeros(length, source, dtype=dtype, device=device).masked_fill(~allowed, -math.inf)
    if mask is None:
        return None
    try:
        torch.broadcast_shapes(mask.shape, shape)
    except RuntimeError:
        raise RuntimeError(f"{fn}: attn_mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                           f"{tuple(shape)} (*, L, S)") from None
    if mask.device != device:
        raise RuntimeError(f"{fn}: attn_mask is on {mask.device} but query is on {device}; move them to the same device")
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, -math.inf)
    if not mask.is_floating_point():
        raise RuntimeError(f"{fn}: attn_mask must be bool (True takes part) or float (added to the scores), got "
                           f"{mask.dtype}")
    return as_dtype(mask, dtype)


register(Op(
    "scaled_dot_product_attention", scaled_dot_product_attention, (ScaledDotProductAttention,),
    Derivative("O = (P ∘ Z) V, P = softmax(S), S = Q Kᵀ · scale + B",
               "dV = (P ∘ Z)ᵀ g, dP = (g Vᵀ) ∘ Z, dS = P ∘ (dP − rowsum(g ∘ O)), dQ = dS K · scale, "
               "dK = dSᵀ Q · scale, dB = dS",
               "Q (*, L, E), K (*, S, E), V (*, S, Ev), S, P, B (*, L, S), O and g (*, L, Ev)"),
    fused_by="functional only",
))
