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
from them, so the bytes kept are those of PyTorch's own flash kernels. The causal mask is made again
where it is needed, never kept; with grouped-query attention each of K's and V's heads serves several
of Q's, and K and V are kept with their own heads, repeated in backward only, where each head's dK and
dV are the sums over the query heads it served.

Keeping O and ℓ instead of P pays where P (*, L, S) is the larger: for a short sequence (S ≤ Ev, give
or take the mask) P is the smaller, and ``scaled_dot_product_attention`` then composes the rules of
matmul, mul, add, masked_fill and softmax (``attention_composed``), which keep Q, K, V and P, as
PyTorch's own math path does: whichever keeps fewer bytes (``keeps_probabilities``).
"""

import math

import torch

from handgrad.ops._checks import LOWER, as_dtype, autocast, check_floating, check_tensor, computed_in
from handgrad.ops._function import LEAN_TRACED, HandFunction, apply, derivation
from handgrad.ops._registry import Derivative, Op, register
from handgrad.ops.elementwise import add, masked_fill, mul
from handgrad.ops.products import matmul
from handgrad.ops.softmax import softmax


def scores(q, k, bias, scale, causal=False):
    """S = Q Kᵀ · scale + B, (*, L, S); causal: −∞ above the diagonal (query i sees keys j ≤ i, the
    upper-left triangle, as PyTorch)."""
    s = torch.matmul(q, k.transpose(-2, -1)) * scale
    s = s if bias is None else s + bias
    return s.masked_fill(_above_diagonal(s), -math.inf) if causal else s


def _above_diagonal(s):
    """True where key j > query i, for scores (*, L, S)."""
    return torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).triu(1)


def query_heads(t, heads):
    """K or V (*, H, S, ·) with ``heads`` heads: each of its H heads repeated heads / H times (grouped-query
    attention); itself where H = heads."""
    if t is None or heads is None or t.shape[-3] == heads:
        return t
    return t.repeat_interleave(heads // t.shape[-3], dim=-3)


def own_heads(grad, heads):
    """dK or dV back on K's or V's own ``heads`` heads: the sum over the query heads each one served."""
    return grad if grad is None or heads is None or grad.shape[-3] == heads else grad.unflatten(-3, (heads, -1)).sum(-3)


def probabilities(s, lse):
    """P = e^(S − ℓ) from the scores and each row's log-sum-exp; a row masked everywhere (ℓ = −∞)
    attends to nothing, P = 0, as in PyTorch."""
    return torch.exp(s - torch.where(torch.isneginf(lse), 0.0, lse).unsqueeze(-1))


def flash_kernel(q, k, v, m):
    """Whether forward runs PyTorch's flash attention kernel for the CPU (its own conditions)."""
    return (m is None and q.device.type == "cpu" and q.dim() == 4 and k.shape[:-2] == v.shape[:-2]
            and k.shape[0] == q.shape[0] and v.shape[-1] == q.shape[-1])


def attention_forward(q, k, v, bias, m, scale, causal=False):
    """(O, ℓ): the forward kernel where there is one (PyTorch's flash attention on the CPU, without
    dropout; it takes K and V with fewer heads than Q), else the formula: S, ℓ = logsumexp(S),
    P = e^(S − ℓ), O = (P ∘ Z) V, in float32 for float16 and bfloat16 (as the kernel accumulates). ℓ is
    float32 for those, as the kernel's."""
    if flash_kernel(q, k, v, m):
        mask = None if bias is None else bias.expand(*q.shape[:-1], k.shape[-2])
        # The kernel reads each row as contiguous (a last dimension of stride 1), whatever the other
        # strides, and lays O out as Q is laid out: Q a view of multi-head attention's packed (L, N, 3E)
        # projection gives O in (L, N, E) order, which out_proj then reads as it is (no copy kept).
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, attn_mask=mask,
                                                                          scale=scale)
    out_dtype, dtype = q.dtype, computed_in(q.dtype)
    k, v = (query_heads(t, None if q.dim() < 3 else q.shape[-3]) for t in (k, v))
    q, k, v, bias, m = (as_dtype(t, dtype) for t in (q, k, v, bias, m))
    s = scores(q, k, bias, scale, causal)
    lse = torch.logsumexp(s, -1)
    p = probabilities(s, lse)
    return as_dtype(torch.matmul(p if m is None else p * m, v), out_dtype), lse


class ScaledDotProductAttention(HandFunction):
    """O = (softmax(Q Kᵀ · scale + B) ∘ Z) V; returns (O, ℓ), ℓ each row's log-sum-exp.

    q (*, H, L, E), k (*, Hk, S, E), v (*, Hk, S, Ev) with the same leading dimensions, Hk = H or a
    divisor of it (grouped-query attention); ``bias`` B broadcastable to (*, H, L, S) or None; ``m`` Z,
    the dropout's keep-mask / (1 − p), (*, H, L, S), or None; ``causal``: the causal mask on top.
    """

    @staticmethod
    def forward(q, k, v, bias, m, scale, causal=False):
        return attention_forward(q, k, v, bias, m, scale, causal)

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, bias, m, scale, causal = inputs
        o, lse = output
        ctx.save_for_backward(q, k, v, bias, m, o, lse)
        ctx.save_for_forward(q, k, v, bias, m, o, lse)
        ctx.scale, ctx.causal = scale, causal
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_lse):
        q, k, v, *rest = ctx.saved_tensors
        dtypes = [None if t is None else t.dtype for t in (q, k, v, rest[0])]   # q, k, v, bias
        dtype = computed_in(q.dtype)                                             # float32 for float16 and bfloat16
        heads = None if k.dim() < 3 else k.shape[-3]
        k, v = (query_heads(t, None if q.dim() < 3 else q.shape[-3]) for t in (k, v))   # (*, H, S, ·)
        grads = attention_backward(ctx.needs_input_grad[:4], *(as_dtype(t, dtype) for t in (g, g_lse, q, k, v, *rest)),
                                   ctx.scale, ctx.causal)
        grads = (grads[0], own_heads(grads[1], heads), own_heads(grads[2], heads), grads[3])
        return (*(None if grad is None else as_dtype(grad, d) for grad, d in zip(grads, dtypes)), None, None, None)

    @staticmethod
    def jvp(ctx, dq, dk, dv, d_bias, *_):
        """Forward mode: dS = (dQ Kᵀ + Q dKᵀ) · scale + dB, dℓ = rowsum(P ∘ dS), dP = P ∘ (dS − dℓ),
        dO = (dP ∘ Z) V + (P ∘ Z) dV."""
        q, k, v, bias, m, o, lse = ctx.saved_tensors
        heads = q.shape[-3] if q.dim() >= 3 else None
        k, v, dk, dv = (query_heads(t, heads) for t in (k, v, dk, dv))
        p = probabilities(scores(q, k, bias, ctx.scale, ctx.causal), lse)
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
def attention_backward(wants, g, g_lse, q, k, v, bias, m, o, lse, scale, causal=False):
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
    Every tensor arrives in the dtype it is computed in (float32 for float16 and bfloat16 inputs), K
    and V with Q's heads; ``causal`` masks S as forward did.
    """
    grad_q = grad_k = grad_v = grad_bias = None
    p = probabilities(scores(q, k, bias, scale, causal), lse)            # (*, L, S)
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
def _attention_backward_in_place(wants, g, g_lse, q, k, v, bias, m, o, lse, scale, causal=False):
    """The same in two (*, L, S) tensors where the reference makes nine: P is built in Q Kᵀ's buffer
    (scaled, masked, ℓ taken off and exponentiated in place), dS in g Vᵀ's, and the scale applied in
    dQ's and dK's own. Each (*, L, S) tensor made and freed costs page faults where the allocator gives
    freed memory back (glibc's does, for large blocks). Forward + backward of
    scaled_dot_product_attention at a small ViT's (128, 4, 50, 32) in 0.87× the reference's time,
    of multi_head_attention_forward at (50, 128, 128) in 0.96× (bench section 9)."""
    grad_q = grad_k = grad_v = grad_bias = None
    # Q, K and g enter two batched products each, which copy a strided operand (heads strided through
    # the projection's rows) every time: copied once here instead.
    q, k = q.contiguous(), k.contiguous()
    g = None if g is None else g.contiguous()
    p = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)                # S = Q Kᵀ · scale ...
    if bias is not None:
        p = p.add_(bias) if torch.broadcast_shapes(bias.shape, p.shape) == p.shape else p + bias   # ... + B
    if causal:
        p.masked_fill_(_above_diagonal(p), -math.inf)                   # ... causal
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


# -- short sequences: the primitives composed -------------------------------------------------------


def keeps_probabilities(q, k, v, bias, m):
    """Whether P (*, L, S) takes fewer bytes than what ``ScaledDotProductAttention`` keeps beside Q, K,
    V and Z: O (*, L, Ev), ℓ (*, L) and B (its own storage); in float32 and float64, where the
    composed rules compute as the Function does (the Function under torch.func's transforms and
    torch.compile). O costs nothing of its own where the flash kernel lays it out with the heads
    inside the positions (as it lays out a Q sliced from a packed projection, timm's and multi-head
    attention's), or with one head or one position: the merge of the heads that follows,
    (*, L, H · Ev), is then a view of O, which the next layer keeps anyway."""
    if (q.dtype not in (torch.float32, torch.float64) or torch.compiler.is_compiling()
            or torch._C._are_functorch_transforms_active()):
        return False
    rows = math.prod(torch.broadcast_shapes(q.shape[:-1], k.shape[:-3] + q.shape[-3:-1] if k.dim() >= 3
                                            else k.shape[:-2] + q.shape[-2:-1]))
    merged_in_place = flash_kernel(q, k, v, m) and (q.shape[-3] == 1 or q.shape[-2] == 1
                                                    or q.stride(-3) < q.stride(-2))
    o = 0 if merged_in_place else rows * v.shape[-1]
    instead = o + rows + (0 if bias is None else bias.untyped_storage().nbytes() // q.element_size())
    return rows * k.shape[-2] < instead


def attention_composed(q, k, v, bias, m, scale, causal):
    """(O, P): O = (P ∘ Z) V, P = softmax(Q Kᵀ · scale + B), from the rules of matmul, mul, add,
    masked_fill and softmax, which keep Q, K, V and P (and Z), as PyTorch's math path keeps them. A row
    masked everywhere attends to nothing (P = 0), as there."""
    heads = None if q.dim() < 3 else q.shape[-3]
    k, v = (t if heads is None or t.shape[-3] == heads else
            t.unsqueeze(-3).expand(*t.shape[:-2], heads // t.shape[-3], *t.shape[-2:]).flatten(-4, -3) for t in (k, v))
    s = mul(matmul(q, k.transpose(-2, -1)), scale)                       # S = Q Kᵀ · scale, (*, L, S)
    if bias is not None:
        s = add(s, bias)                                                 # ... + B
    if causal:
        s = masked_fill(s, _above_diagonal(s), -math.inf)                # ... −∞ above the diagonal
    p = softmax(s, -1)                                                   # P = softmax(S)
    dead = torch.isneginf(s.detach()).all(-1, keepdim=True) if bias is not None else None
    if dead is not None and not s.is_meta and dead.any():            # on the meta device, no row known dead
        p = masked_fill(p, dead, 0.0)                                    # a row masked everywhere: P = 0
    return matmul(p if m is None else mul(p, m), v), p                   # O = (P ∘ Z) V


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
    kv_heads = _key_value_heads(fn, query, key, value, enable_gqa)
    with_heads = (lambda shape: shape) if kv_heads is None else (lambda shape: (*shape[:-1], query.shape[-3]))
    batch = torch.broadcast_shapes(query.shape[:-2], with_heads(key.shape[:-2]), with_heads(value.shape[:-2]))
    kv_batch = batch if kv_heads is None else (*batch[:-1], kv_heads)
    query = query.expand(*batch, length, e)
    key, value = key.expand(*kv_batch, source, e), value.expand(*kv_batch, source, value.shape[-1])
    bias = _bias(fn, mask, query.dtype, query.device, (*batch, length, source))
    scale = 1 / math.sqrt(e) if scale is None else float(scale)
    m = None
    if dropout_p > 0:
        keep = torch.empty((*batch, length, source), dtype=query.dtype, device=query.device)
        m = keep.bernoulli_(1 - dropout_p).div_(1 - dropout_p) if dropout_p < 1 else keep.zero_()
    if keeps_probabilities(query, key, value, bias, m):
        return attention_composed(query, key, value, bias, m, scale, bool(is_causal))[0]
    if LEAN_TRACED and torch.compiler.is_compiling():
        # Compiled under memory="lean": the partitioner counts a saved view by its own size, not its
        # storage's, so with the heads as views of one projection it keeps that whole projection for V and
        # copies of Q and K besides; made contiguous here, it keeps the three copies, as many bytes as the
        # projection, and nothing else.
        query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
    o, _ = apply(ScaledDotProductAttention, query, key, value, bias, m, scale, bool(is_causal))
    return o


def _key_value_heads(fn, query, key, value, enable_gqa):
    """The key's and value's heads H (dimension −3) where ``enable_gqa`` asks for grouped-query
    attention with fewer of them than the query's Hq (each serving Hq / H query heads), else None."""
    if not enable_gqa or query.dim() < 3 or key.dim() < 3 or key.shape[-3] == query.shape[-3]:
        return None
    heads, kv_heads = query.shape[-3], key.shape[-3]
    if value.dim() < 3 or value.shape[-3] != kv_heads or heads % kv_heads:
        raise RuntimeError(f"{fn}: with enable_gqa the query's heads ({heads}) must be a multiple of the key's and "
                           f"value's ({kv_heads} and {value.shape[-3] if value.dim() >= 3 else None}, equal)")
    return kv_heads


def _bias(fn, mask, dtype, device, shape):
    """B: 0 where a query may attend, −∞ where not (bool mask), or the float mask itself, broadcast to
    the scores' shape (*, L, S); None for none (the causal mask is the Function's own)."""
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
