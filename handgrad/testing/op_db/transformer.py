"""Multi-head attention's and the transformer layers' cases (``handgrad.ops.transformer``): the NumPy
oracle (projections, heads, softmax attention, output projection, each stage's vjp), samples of
every option of ``torch.nn.functional.multi_head_attention_forward``, bad inputs, module samples of
``torch.nn``'s and torchvision's transformer layers, bench sizes."""

import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32
from handgrad.testing.op_db.attention import _softmax_rows

E, HEADS, L, S, N = 8, 2, 5, 6, 3


def _float_mask(mask):
    if mask is None:
        return None
    return np.where(mask, -np.inf, 0.0) if mask.dtype == bool else mask


def _pad(mask):
    """One key more, never masked."""
    return None if mask is None else np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, 1)])


def _heads(x, n, heads):
    """(T, N, E) → (N, H, T, hd)."""
    return x.reshape(x.shape[0], n, heads, -1).transpose(1, 2, 0, 3)


def _joined(x):
    """(N, H, T, hd) → (T, N, E)."""
    n, heads, t, hd = x.shape
    return x.transpose(2, 0, 1, 3).reshape(t, n, heads * hd)


def _rows(x):
    return x.reshape(-1, x.shape[-1])


def multi_head_attention_forward_numpy(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                       bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                       training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                       use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                       v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                       is_causal=False):
    """The definition stage by stage, and its vjp back through each: Q = x W_qᵀ + b_q (and K, V),
    heads, S = Q Kᵀ / √hd + B, P = softmax(S), O = (P ∘ Z) V, heads joined, y = O W_oᵀ + b_o."""
    batched = query.ndim == 3
    if not batched:
        query, key, value = query[:, None], key[:, None], value[:, None]
        key_padding_mask = None if key_padding_mask is None else key_padding_mask[None]
    length, n, e = query.shape
    hd = e // num_heads
    if use_separate_proj_weight:
        wq, wk, wv = q_proj_weight, k_proj_weight, v_proj_weight
    else:
        wq, wk, wv = np.split(in_proj_weight, 3)
    bq, bk, bv = np.split(in_proj_bias, 3) if in_proj_bias is not None else (0.0, 0.0, 0.0)
    q, k, v = query @ wq.T + bq, key @ wk.T + bk, value @ wv.T + bv
    attn_mask, key_padding_mask = _float_mask(attn_mask), _float_mask(key_padding_mask)
    if bias_k is not None:
        k = np.concatenate([k, np.broadcast_to(bias_k, (1, n, e))])
        v = np.concatenate([v, np.broadcast_to(bias_v, (1, n, e))])
        attn_mask, key_padding_mask = _pad(attn_mask), _pad(key_padding_mask)
    qh = _heads(q, n, num_heads)
    kh = _heads(k, n, num_heads) if static_k is None else static_k.reshape(n, num_heads, -1, hd)
    vh = _heads(v, n, num_heads) if static_v is None else static_v.reshape(n, num_heads, -1, hd)
    source = kh.shape[2]                                                 # before the zero key
    if add_zero_attn:
        kh = np.concatenate([kh, np.zeros((n, num_heads, 1, hd))], axis=2)
        vh = np.concatenate([vh, np.zeros((n, num_heads, 1, hd))], axis=2)
        attn_mask, key_padding_mask = _pad(attn_mask), _pad(key_padding_mask)
    total = kh.shape[2]
    bias = 0.0
    if attn_mask is not None:
        bias = attn_mask if attn_mask.ndim == 2 else attn_mask.reshape(n, num_heads, length, total)
    if key_padding_mask is not None:
        bias = bias + key_padding_mask.reshape(n, 1, 1, total)
    scale = 1 / math.sqrt(hd)
    p = _softmax_rows(qh @ np.swapaxes(kh, -1, -2) * scale + bias)       # (N, H, L, S)
    z = np.ones_like(p)
    if training and dropout_p > 0:                                       # drawn as the face draws it
        keep = torch.empty(p.shape, dtype=torch.float64).bernoulli_(1 - dropout_p).numpy()
        z = keep / (1 - dropout_p) if dropout_p < 1 else np.zeros_like(keep)
    pz = p * z
    o = _joined(pz @ vh)                                                 # (L, N, E)
    y = o @ out_proj_weight.T + (0.0 if out_proj_bias is None else out_proj_bias)
    weights = (pz.mean(axis=1) if average_attn_weights else pz) if need_weights else None

    def vjp(g, g_weights=None):
        if not batched:
            g = g[:, None]
            g_weights = None if g_weights is None else g_weights[None]
        grads = [None] * 25
        grads[11] = _rows(g).T @ _rows(o)                                # dW_o = gᵀ O
        grads[12] = None if out_proj_bias is None else g.sum(axis=(0, 1))
        doh = _heads(g @ out_proj_weight, n, num_heads)                  # dO = g W_o, by head
        dpz = doh @ np.swapaxes(vh, -1, -2)
        if g_weights is not None:
            dpz = dpz + (g_weights[:, None] / num_heads if average_attn_weights else g_weights)
        dvh = np.swapaxes(pz, -1, -2) @ doh                              # dV = (P ∘ Z)ᵀ dO
        dp = dpz * z
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))            # softmax's vjp
        dqh, dkh = ds @ kh * scale, np.swapaxes(ds, -1, -2) @ qh * scale
        dkh, dvh = dkh[:, :, :source], dvh[:, :, :source]               # the zero key has no gradient
        dq = _joined(dqh)
        dk = dv = None
        if static_k is None:
            dk = _joined(dkh)
        else:
            grads[21] = dkh.reshape(n * num_heads, source, hd)
        if static_v is None:
            dv = _joined(dvh)
        else:
            grads[22] = dvh.reshape(n * num_heads, source, hd)
        if bias_k is not None:
            grads[7], grads[8] = dk[-1:].sum(axis=1, keepdims=True), dv[-1:].sum(axis=1, keepdims=True)
            dk, dv = dk[:-1], dv[:-1]
        dx, dw, db = [], [], []
        for d, x, w in ((dq, query, wq), (dk, key, wk), (dv, value, wv)):
            dx.append(None if d is None else d @ w)                      # dx = dQ W_q, ...
            dw.append(np.zeros_like(w) if d is None else _rows(d).T @ _rows(x))
            db.append(np.zeros(w.shape[0]) if d is None else d.sum(axis=(0, 1)))
        grads[0:3] = [d if d is None or batched else d[:, 0] for d in dx]
        if use_separate_proj_weight:
            grads[18:21] = dw
        else:
            grads[5] = np.concatenate(dw)
        grads[6] = None if in_proj_bias is None else np.concatenate(db)
        return tuple(grads)

    if not batched:
        y = y[:, 0]
        weights = None if weights is None else weights[0]
    return (y, weights), vjp


def _arguments(gen, kdim=E, vdim=E, source=S, batched=True, bias=True, bias_kv=False, zero_attn=False, separate=False,
               static=False, dropout_p=0.0, masks=None, need_weights=True, average=True, is_causal=False):
    """The 25 arguments of multi_head_attention_forward, positionally (so that every tensor among
    them is differentiated), query (L, N, E), key (S, N, kdim), value (S, N, vdim)."""
    lead = (N,) if batched else ()

    def seq(t, width):
        return randn(gen, t, *lead, width)

    masks = masks or {}
    separate = separate or kdim != E or vdim != E
    args = [seq(L, E), seq(source, kdim), seq(source, vdim), E, HEADS,
            None if separate else randn(gen, 3 * E, E, scale=0.5), randn(gen, 3 * E) if bias else None,
            randn(gen, 1, 1, E) if bias_kv else None, randn(gen, 1, 1, E) if bias_kv else None, zero_attn, dropout_p,
            randn(gen, E, E, scale=0.5), randn(gen, E) if bias else None, True, masks.get("key_padding_mask"),
            need_weights, masks.get("attn_mask"), separate]
    args += ([randn(gen, E, E, scale=0.5), randn(gen, E, kdim, scale=0.5), randn(gen, E, vdim, scale=0.5)] if separate
             else [None] * 3)
    args += ([randn(gen, N * HEADS, source, E // HEADS), randn(gen, N * HEADS, source, E // HEADS)] if static
             else [None] * 2)
    return tuple(args + [average, is_causal])


def _samples(gen):
    padding = torch.zeros(N, S, dtype=torch.bool)
    padding[0, -2:] = padding[2, -1] = True                              # keys 4-5 of sample 0, key 5 of sample 2
    heads_mask = torch.rand(N * HEADS, L, S, generator=gen) > 0.4
    heads_mask[..., 0] = False                                           # every query sees key 0
    causal = torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.float64)
    forms = [
        ("(L, N, E) cross-attention, weights averaged", {}),
        ("need_weights=False (through scaled_dot_product_attention)", {"need_weights": False}),
        ("weights per head", {"average": False}),
        ("unbatched (L, E)", {"batched": False}),
        ("key_padding_mask bool (N, S)", {"masks": {"key_padding_mask": padding}}),
        ("key_padding_mask float (N, S)", {"masks": {"key_padding_mask": torch.where(padding, -1e4, 0.5).double()}}),
        ("attn_mask float (L, S)", {"masks": {"attn_mask": torch.randn(L, S, generator=gen, dtype=torch.float64)}}),
        ("attn_mask bool (N·H, L, S) and key_padding_mask", {"masks": {"attn_mask": heads_mask,
                                                                       "key_padding_mask": padding}}),
        ("bias_k, bias_v and add_zero_attn", {"bias_kv": True, "zero_attn": True,
                                              "masks": {"key_padding_mask": padding}}),
        ("kdim=3, vdim=5: separate projection weights", {"kdim": 3, "vdim": 5}),
        ("separate projection weights, E each", {"separate": True}),
        ("static_k and static_v", {"static": True}),
        ("no biases", {"bias": False}),
        ("causal attn_mask with is_causal, need_weights=False", {"masks": {"attn_mask": causal}, "is_causal": True,
                                                                 "need_weights": False, "source": L}),
        ("causal attn_mask with is_causal, weights", {"masks": {"attn_mask": causal}, "is_causal": True,
                                                      "source": L}),
    ]
    samples = [Sample(_arguments(gen, **options), name=name) for name, options in forms]
    # torch's dropout draws its own mask: compared with the NumPy oracle, which draws the face's.
    samples.append(Sample(_arguments(gen, dropout_p=0.3), name="dropout_p=0.3, training", builtin_devices=()))
    return samples


def _bench(device):
    """A small vision transformer's self-attention: 50 tokens, batch 128, width 128, 4 heads."""
    x = bench_randn(device, 50, 128, 128)
    weights = (bench_randn(device, 384, 128), bench_randn(device, 384), None, None, False, 0.0,
               bench_randn(device, 128, 128), bench_randn(device, 128))
    return [("ViT: (50, 128, 128), 4 heads", (x, x, x, 128, 4, *weights), {"need_weights": False})]


def _mha(F, **changes):
    """A call of multi_head_attention_forward on (L, N, E) = (5, 3, 8), 2 heads, with ``changes``."""
    args = dict(query=x32(L, N, E), key=x32(S, N, E), value=x32(S, N, E), embed_dim_to_check=E, num_heads=HEADS,
                in_proj_weight=x32(3 * E, E), in_proj_bias=x32(3 * E), bias_k=None, bias_v=None, add_zero_attn=False,
                dropout_p=0.0, out_proj_weight=x32(E, E), out_proj_bias=x32(E))
    args.update(changes)
    return F.multi_head_attention_forward(**args)


_ERRORS = (
    ErrorInput("4-D query", lambda F, nn: _mha(F, query=x32(2, L, N, E)), AssertionError,
               r"query should be unbatched 2-D \(L, E\) or batched 3-D \(L, N, E\), got a 4-D tensor"),
    ErrorInput("2-D key with a 3-D query", lambda F, nn: _mha(F, key=x32(S, E)), AssertionError,
               r"for batched \(3-D\) query, key and value must be 3-D too, got 2-D and 3-D"),
    ErrorInput("embed_dim_to_check 6", lambda F, nn: _mha(F, embed_dim_to_check=6), AssertionError,
               r"was expecting embedding dimension of 6, but got 8"),
    ErrorInput("3 heads of 8", lambda F, nn: _mha(F, num_heads=3), AssertionError,
               r"embed_dim 8 not divisible by num_heads 3"),
    ErrorInput("key and value of other lengths", lambda F, nn: _mha(F, value=x32(S + 1, N, E)), AssertionError,
               r"key shape \(6, 3, 8\) does not match value shape \(7, 3, 8\)"),
    ErrorInput("attn_mask (L, L) for S keys", lambda F, nn: _mha(F, attn_mask=torch.zeros(L, L)), RuntimeError,
               r"the shape of the 2D attn_mask is \(5, 5\), but should be \(5, 6\)"),
    ErrorInput("key_padding_mask (N, L)", lambda F, nn: _mha(F, key_padding_mask=torch.zeros(N, L, dtype=torch.bool)),
               AssertionError, r"expecting key_padding_mask shape of \(3, 6\), but got \(3, 5\)"),
    ErrorInput("integer attn_mask", lambda F, nn: _mha(F, attn_mask=torch.zeros(L, S, dtype=torch.long)),
               AssertionError, r"only bool and floating types of attn_mask are supported, got torch\.int64"),
    ErrorInput("is_causal without attn_mask", lambda F, nn: _mha(F, is_causal=True, need_weights=False), RuntimeError,
               r"is_causal needs attn_mask"),
    ErrorInput("bias_k without bias_v", lambda F, nn: _mha(F, bias_k=x32(1, 1, E)), AssertionError,
               r"bias_k and bias_v go together, got only bias_k"),
    ErrorInput("static_k of the wrong shape", lambda F, nn: _mha(F, static_k=x32(N, S, E)), AssertionError,
               r"expecting static_k of shape \(6, S, 4\) \(N·H, S, head_dim\), but got \(3, 6, 8\)"),
    ErrorInput("list query", lambda F, nn: _mha(F, query=[1.0]), TypeError,
               r"multi_head_attention_forward: query must be a torch\.Tensor, got list", torch_class=AttributeError),
)


# -- the modules -------------------------------------------------------------------------------------


def _sequences(*shapes):
    return lambda gen: tuple(randn(gen, *shape) for shape in shapes)


def _self(shape):
    """One sequence as query, key and value."""
    def draw(gen):
        x = randn(gen, *shape)
        return x, x, x
    return draw


_PADDING = torch.tensor([[False] * 4 + [True, True], [False] * 6])      # (N=2, S=6): two keys of sample 0 padded
_CAUSAL = torch.nn.Transformer.generate_square_subsequent_mask(6, dtype=torch.float64)

_MHA_MODULES = tuple(ModuleSample(name, draw, args, kwargs, forward_kwargs=call) for name, draw, args, kwargs, call in [
    ("self-attention, weights averaged", _self((6, 2, 8)), (8, 2), {}, {}),
    ("cross-attention, need_weights=False", _sequences((5, 2, 8), (6, 2, 8), (6, 2, 8)), (8, 2), {},
     {"need_weights": False}),
    ("batch_first, kdim=3, vdim=5, weights per head", _sequences((2, 5, 8), (2, 6, 3), (2, 6, 5)), (8, 2),
     {"kdim": 3, "vdim": 5, "batch_first": True}, {"average_attn_weights": False}),
    ("add_bias_kv, add_zero_attn, key_padding_mask", _sequences((5, 2, 8), (6, 2, 8), (6, 2, 8)), (8, 4),
     {"add_bias_kv": True, "add_zero_attn": True}, {"key_padding_mask": _PADDING}),
    ("bias=False, causal attn_mask, is_causal", _self((6, 2, 8)), (8, 2), {"bias": False},
     {"attn_mask": _CAUSAL, "is_causal": True, "need_weights": False}),
    ("unbatched (L, E)", _sequences((5, 8), (6, 8), (6, 8)), (8, 2), {}, {}),
])

_ENCODER_LAYER_MODULES = tuple(
    ModuleSample(name, _sequences(shape), (8, 2, 16), {"dropout": 0.0, **kwargs}, forward_kwargs=call)
    for name, shape, kwargs, call in [
        ("post-norm, relu", (6, 2, 8), {}, {}),
        ("pre-norm, gelu, batch_first", (2, 6, 8), {"norm_first": True, "activation": "gelu", "batch_first": True}, {}),
        ("activation F.silu, bias=False", (6, 2, 8), {"activation": torch.nn.functional.silu, "bias": False}, {}),
        ("activation a module (GELU tanh), key padding", (6, 2, 8), {"activation": torch.nn.GELU("tanh")},
         {"src_key_padding_mask": _PADDING}),
        ("causal src_mask, is_causal", (6, 2, 8), {}, {"src_mask": _CAUSAL, "is_causal": True}),
    ])

_DECODER_LAYER_MODULES = tuple(
    ModuleSample(name, _sequences(tgt, memory), (8, 2, 16), {"dropout": 0.0, **kwargs}, forward_kwargs=call)
    for name, tgt, memory, kwargs, call in [
        ("post-norm, relu, causal tgt_mask", (6, 2, 8), (5, 2, 8), {},
         {"tgt_mask": _CAUSAL, "tgt_is_causal": True}),
        ("pre-norm, gelu, batch_first, memory padding", (2, 6, 8), (2, 6, 8),
         {"norm_first": True, "activation": "gelu", "batch_first": True}, {"memory_key_padding_mask": _PADDING}),
    ])


def _stack_samples(layer_cls, inputs, call, **kwargs):
    """TransformerEncoder / TransformerDecoder of two layers (the layer handed to the constructor is
    deep-copied into each position, as torch.nn does; the layers' own samples are above)."""
    return (ModuleSample("2 layers, final LayerNorm", inputs, (layer_cls(8, 2, 16, dropout=0.0), 2),
                         {"norm": torch.nn.LayerNorm(8), **kwargs}, forward_kwargs=call),
            ModuleSample("2 pre-norm layers, no final norm", inputs,
                         (layer_cls(8, 2, 16, dropout=0.0, norm_first=True, activation="gelu"), 2), kwargs))


# torchvision's vision transformer blocks, by import path (as the registry names them).
_VIT = "torchvision.models.vision_transformer."
_TORCHVISION_MODULES = {
    _VIT + "EncoderBlock": (ModuleSample("4 heads, width 8, MLP 16", _sequences((2, 5, 8)), (4, 8, 16, 0.0, 0.0)),),
    _VIT + "Encoder": (ModuleSample("5 tokens, 2 blocks", _sequences((2, 5, 8)), (5, 2, 4, 8, 16, 0.0, 0.0)),),
    _VIT + "VisionTransformer": (ModuleSample("16 × 16 images, patches of 4", _sequences((2, 3, 16, 16)),
                                              (16, 4, 2, 2, 8, 16), {"num_classes": 3}),),
}


def _modules():
    encoder_input = _sequences((6, 2, 8))
    return {
        torch.nn.MultiheadAttention: _MHA_MODULES,
        torch.nn.TransformerEncoderLayer: _ENCODER_LAYER_MODULES,
        torch.nn.TransformerDecoderLayer: _DECODER_LAYER_MODULES,
        torch.nn.TransformerEncoder: _stack_samples(torch.nn.TransformerEncoderLayer, encoder_input,
                                                    {"mask": _CAUSAL, "is_causal": True}, enable_nested_tensor=False),
        torch.nn.TransformerDecoder: _stack_samples(torch.nn.TransformerDecoderLayer,
                                                    _sequences((6, 2, 8), (5, 2, 8)), {"tgt_mask": _CAUSAL}),
        **_TORCHVISION_MODULES,
    }


OP_INFOS = (
    OpInfo("multi_head_attention_forward", torch.nn.functional.multi_head_attention_forward, _samples,
           multi_head_attention_forward_numpy, _bench, errors=_ERRORS, modules=_modules(),
           # in_proj_weight and bias, bias_k, bias_v, out_proj's weight and bias, the separate projections
           parameters=(5, 6, 7, 8, 11, 12, "q_proj_weight", "k_proj_weight", "v_proj_weight"),
           # Three projections, a softmax, two products and the output projection: in half precision each
           # gradient is off from the float64 one by up to 2.1 % of its scale for the built-in, 2.4 % for
           # the hand forms (bfloat16; float16: 0.31 %, 0.33 %), entries that cancel to zero included. In
           # float32 the key bias's gradient, zero exactly, comes out as rounding of the size of the value
           # bias's (1.6e-5 against entries of 18 on one CPU's kernels): float32's tolerance, scaled.
           tolerances={torch.float32: Tolerance(atol=1e-5, rtol=1e-4, scaled=True),
                       torch.bfloat16: Tolerance(atol=4e-2, rtol=4e-2, scaled=True),
                       torch.float16: Tolerance(atol=6e-3, rtol=6e-3, scaled=True)}),
)
