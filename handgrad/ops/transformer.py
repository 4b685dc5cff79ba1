"""Multi-head attention and the transformer layers, made of handgrad's ops: each projection a
``linear``, the attention ``scaled_dot_product_attention`` (and ``AttentionWeights`` where the
weights are asked for), the feed-forward block ``linear``, an activation and ``dropout``, the residual
connections ``add``, the norms ``layer_norm``. Nothing here is derived anew: the chain rule across those ops is autograd's, the
movements between them (views, transposes, concatenations) are built-in and compute nothing.

Notation: E the embedding width, H the heads, hd = E / H each head's width; a sequence of L queries
(the target) attends to S keys (the source); N the batch. Tensors are (L, N, E), or (N, L, E) with
``batch_first``, as in ``torch.nn``.
"""

import math

import torch

from handgrad.ops._checks import check_floating, check_tensor
from handgrad.ops._function import apply
from handgrad.ops._registry import OPS, Derivative, Module, Op, register
from handgrad.ops.elementwise import add
from handgrad.ops.attention import AttentionWeights, ScaledDotProductAttention, attention_composed, keeps_probabilities
from handgrad.ops.elementwise import mul
from handgrad.ops.reductions import mean
from handgrad.ops.linear import linear


def _float_mask(fn, name, mask, dtype):
    """A mask as ``torch.nn``'s attention takes it (bool: True is masked out; float: added to the
    scores) as the float to add: −∞ where masked, 0 elsewhere."""
    if mask is None:
        return None
    check_tensor(fn, name, mask)
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, -math.inf)
    if not mask.is_floating_point():
        raise AssertionError(f"{fn}: only bool and floating types of {name} are supported, got {mask.dtype}")
    return mask.to(dtype)


def _in_projection(query, key, value, in_proj_weight, in_proj_bias, q_proj_weight, k_proj_weight, v_proj_weight):
    """Q, K, V: the three linear projections, from one packed (3E, E) weight or three of their own.
    Self-attention (query, key and value the same tensor) projects once and splits."""
    if q_proj_weight is None:
        if query is key and key is value:
            return linear(query, in_proj_weight, in_proj_bias).chunk(3, dim=-1)
        weights = in_proj_weight.chunk(3)
    else:
        weights = (q_proj_weight, k_proj_weight, v_proj_weight)
    biases = (None,) * 3 if in_proj_bias is None else in_proj_bias.chunk(3)
    return tuple(linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """Multi-head attention, as ``torch.nn.functional.multi_head_attention_forward``: project
    query, key and value (``linear``), split E into H heads of hd, attend in each
    (``scaled_dot_product_attention``, scale 1/√hd), join the heads and project out (``linear``).
    Returns (output, weights): the weights (N, L, S), averaged over heads, or (N, H, L, S), or None
    when ``need_weights`` is False.

    Shapes: query (L, N, E) or unbatched (L, E); key and value (S, N, E) or (S, E); key_padding_mask
    (N, S) or (S); attn_mask (L, S) or (N·H, L, S), bool (True masked out) or float (added).
    """
    fn = "multi_head_attention_forward"
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_floating(fn, name, t)
    batched = _check_shapes(fn, query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"{fn}: was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"{fn}: embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if key.shape[:2] != value.shape[:2]:
            raise AssertionError(f"{fn}: key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                                 f"{tuple(value.shape[:2])}")
        missing = [n for n, w in (("q_proj_weight", q_proj_weight), ("k_proj_weight", k_proj_weight),
                                  ("v_proj_weight", v_proj_weight)) if w is None]
        if missing:
            raise AssertionError(f"{fn}: use_separate_proj_weight is True but {', '.join(missing)} is None")
    elif key.shape != value.shape:
        raise AssertionError(f"{fn}: key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}")
    elif in_proj_weight is None:
        raise AssertionError(f"{fn}: use_separate_proj_weight is False but in_proj_weight is None")
    if (bias_k is None) != (bias_v is None):
        raise AssertionError(f"{fn}: bias_k and bias_v go together, got only {'bias_k' if bias_v is None else 'bias_v'}")
    if bias_k is not None and (static_k is not None or static_v is not None):
        raise AssertionError(f"{fn}: bias_k and bias_v cannot be added to a static key or value")
    for name, static in (("static_k", static_k), ("static_v", static_v)):
        if static is not None and (static.dim() != 3 or static.shape[0] != bsz * num_heads
                                   or static.shape[2] != head_dim):
            raise AssertionError(f"{fn}: expecting {name} of shape ({bsz * num_heads}, S, {head_dim}) (N·H, S, "
                                 f"head_dim), but got {tuple(static.shape)}")
    if is_causal and attn_mask is None:
        raise RuntimeError(f"{fn}: is_causal needs attn_mask (torch.nn.Transformer.generate_square_subsequent_mask "
                           f"makes one)")
    dtype = query.dtype
    key_padding_mask = _float_mask(fn, "key_padding_mask", key_padding_mask, dtype)
    attn_mask = _float_mask(fn, "attn_mask", attn_mask, dtype)
    causal = is_causal and key_padding_mask is None and not need_weights      # the mask is then the causal one

    q, k, v = _in_projection(query, key, value, in_proj_weight, in_proj_bias,
                             *((q_proj_weight, k_proj_weight, v_proj_weight) if use_separate_proj_weight else (None,) * 3))
    masks = [attn_mask, key_padding_mask]                                      # grown with the keys below
    if bias_k is not None:                                                      # one learned key more
        k = torch.cat([k, bias_k.to(k.dtype).expand(1, bsz, embed_dim)])      # (its dtype under autocast)
        v = torch.cat([v, bias_v.to(v.dtype).expand(1, bsz, embed_dim)])
        masks = [None if m is None else torch.nn.functional.pad(m, (0, 1)) for m in masks]
    q = q.reshape(tgt_len, bsz, num_heads, head_dim).permute(1, 2, 0, 3)         # (N, H, L, hd)
    k = (k.reshape(k.shape[0], bsz, num_heads, head_dim).permute(1, 2, 0, 3) if static_k is None
         else static_k.to(q.dtype).reshape(bsz, num_heads, -1, head_dim))      # (N, H, S, hd)
    v = (v.reshape(v.shape[0], bsz, num_heads, head_dim).permute(1, 2, 0, 3) if static_v is None
         else static_v.to(q.dtype).reshape(bsz, num_heads, -1, head_dim))
    if add_zero_attn:                                                           # one key and value of zeros more
        k = torch.cat([k, k.new_zeros(bsz, num_heads, 1, head_dim)], dim=2)
        v = torch.cat([v, v.new_zeros(bsz, num_heads, 1, head_dim)], dim=2)
        masks = [None if m is None else torch.nn.functional.pad(m, (0, 1)) for m in masks]
    src_len = k.shape[2]
    bias = None if causal else _merged_mask(fn, *masks, bsz, num_heads, tgt_len, src_len, dtype)
    dropout_p = dropout_p if training else 0.0
    m = None
    if dropout_p > 0:
        keep = torch.empty(bsz, num_heads, tgt_len, src_len, dtype=dtype, device=q.device)
        m = keep.bernoulli_(1 - dropout_p).div_(1 - dropout_p) if dropout_p < 1 else keep.zero_()
    scale = 1 / math.sqrt(head_dim)
    weights = None
    if keeps_probabilities(q, k, v, bias, m):                                  # P the smaller: kept once
        o, p = attention_composed(q, k, v, bias, m, scale, causal)
        if need_weights:
            weights = p if m is None else mul(p, m)
            weights = mean(weights, -3) if average_attn_weights else weights
    else:
        o, _ = apply(ScaledDotProductAttention, q, k, v, bias, m, scale, causal)    # (N, H, L, hd)
        if need_weights:
            weights, _ = apply(AttentionWeights, q, k, bias, m, scale, average_attn_weights)
    o = o.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim)                 # heads joined, (L, N, E)
    out = linear(o, out_proj_weight, out_proj_bias)
    if not batched:
        out = out.squeeze(1)
        weights = None if weights is None else weights.squeeze(0)
    return out, weights


def _check_shapes(fn, query, key, value, key_padding_mask, attn_mask, num_heads):
    """Whether the input is batched (query (L, N, E)) or not ((L, E)), the others' dimensions checked
    against it."""
    if query.dim() not in (2, 3):
        raise AssertionError(f"{fn}: query should be unbatched 2-D (L, E) or batched 3-D (L, N, E), got a "
                             f"{query.dim()}-D tensor")
    batched = query.dim() == 3
    form = "batched (3-D)" if batched else "unbatched (2-D)"
    if key.dim() != query.dim() or value.dim() != query.dim():
        raise AssertionError(f"{fn}: for {form} query, key and value must be {query.dim()}-D too, got {key.dim()}-D "
                             f"and {value.dim()}-D")
    if key_padding_mask is not None and key_padding_mask.dim() != query.dim() - 1:
        raise AssertionError(f"{fn}: for {form} query, key_padding_mask must be None or {query.dim() - 1}-D, got "
                             f"{key_padding_mask.dim()}-D")
    if attn_mask is not None and attn_mask.dim() not in (2, 3):
        raise AssertionError(f"{fn}: attn_mask must be None, 2-D (L, S) or 3-D (N·H, L, S), got {attn_mask.dim()}-D")
    return batched


def _merged_mask(fn, attn_mask, key_padding_mask, bsz, heads, tgt_len, src_len, dtype):
    """B (N or 1, H or 1, L, S): the attention mask and the key padding mask added, as floats; None
    when there is none."""
    bias = None
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if attn_mask.shape != (tgt_len, src_len):
                raise RuntimeError(f"{fn}: the shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(tgt_len, src_len)}")
            bias = attn_mask
        elif attn_mask.dim() == 3:
            if attn_mask.shape != (bsz * heads, tgt_len, src_len):
                raise RuntimeError(f"{fn}: the shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(bsz * heads, tgt_len, src_len)}")
            bias = attn_mask.reshape(bsz, heads, tgt_len, src_len)
        else:
            raise RuntimeError(f"{fn}: attn_mask's dimension {attn_mask.dim()} is not supported")
    if key_padding_mask is not None:
        if key_padding_mask.shape != (bsz, src_len):
            raise AssertionError(f"{fn}: expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                                 f"{tuple(key_padding_mask.shape)}")
        padding = key_padding_mask.reshape(bsz, 1, 1, src_len)
        bias = padding if bias is None else bias + padding
    return bias


# -- the modules -----------------------------------------------------------------------------------


def _multihead_attention_forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 average_attn_weights=True, is_causal=False):
    """torch.nn.MultiheadAttention's forward on ``multi_head_attention_forward`` (its fast path,
    which runs a built-in kernel, is not taken)."""
    batched = query.dim() == 3
    if self.batch_first and batched:                     # transposed keeping which are the same tensor, as
        self_attention = query is key and key is value   # torch's module does: self-attention projects once
        query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        if self_attention:
            key = value = query
        elif key is value:
            value = key
    separate = not self._qkv_same_embed_dim
    out, weights = multi_head_attention_forward(
        query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias, self.bias_k,
        self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
        training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
        use_separate_proj_weight=separate, q_proj_weight=self.q_proj_weight if separate else None,
        k_proj_weight=self.k_proj_weight if separate else None, v_proj_weight=self.v_proj_weight if separate else None,
        average_attn_weights=average_attn_weights, is_causal=is_causal)
    return (out.transpose(1, 0) if self.batch_first and batched else out), weights


def _activation(self):
    """The layer's activation as handgrad's: a ``torch.nn.functional`` function handgrad has (F.relu
    and F.gelu, which "relu" and "gelu" build, F.silu, ...) becomes handgrad's; a module is converted
    with the rest; any other callable is called as given (``coverage`` says so)."""
    activation = self.activation
    name = getattr(activation, "__name__", None)
    if name in OPS and getattr(torch.nn.functional, name, None) is activation:
        return OPS[name].function
    return activation


def _encoder_layer_forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
    """torch.nn.TransformerEncoderLayer's forward, post-norm or pre-norm (``norm_first``), without
    the fast path (a built-in kernel); the residual connections are ``add``."""
    def self_attention(x):
        x = self.self_attn(x, x, x, attn_mask=src_mask, key_padding_mask=src_key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def feed_forward(x):
        return self.dropout2(self.linear2(self.dropout(_activation(self)(self.linear1(x)))))

    x = src
    if self.norm_first:
        x = add(x, self_attention(self.norm1(x)))
        return add(x, feed_forward(self.norm2(x)))
    x = self.norm1(add(x, self_attention(x)))
    return self.norm2(add(x, feed_forward(x)))


def _decoder_layer_forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                           memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
    """torch.nn.TransformerDecoderLayer's forward: self-attention, attention to the memory, feed-forward."""
    def self_attention(x):
        x = self.self_attn(x, x, x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask, need_weights=False,
                           is_causal=tgt_is_causal)[0]
        return self.dropout1(x)

    def cross_attention(x):
        x = self.multihead_attn(x, memory, memory, attn_mask=memory_mask, key_padding_mask=memory_key_padding_mask,
                                need_weights=False, is_causal=memory_is_causal)[0]
        return self.dropout2(x)

    def feed_forward(x):
        return self.dropout3(self.linear2(self.dropout(_activation(self)(self.linear1(x)))))

    x = tgt
    if self.norm_first:
        x = add(x, self_attention(self.norm1(x)))
        x = add(x, cross_attention(self.norm2(x)))
        return add(x, feed_forward(self.norm3(x)))
    x = self.norm1(add(x, self_attention(x)))
    x = self.norm2(add(x, cross_attention(x)))
    return self.norm3(add(x, feed_forward(x)))


def _encoder_forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
    """torch.nn.TransformerEncoder's forward: the layers one after the other, then the norm (without
    the nested-tensor fast path)."""
    output = src
    for layer in self.layers:
        output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
    return output if self.norm is None else self.norm(output)


def _decoder_forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                     memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
    """torch.nn.TransformerDecoder's forward: the layers one after the other, then the norm."""
    output = tgt
    for layer in self.layers:
        output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                       tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                       tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
    return output if self.norm is None else self.norm(output)


def _unsupported_activation(module):
    """A layer whose activation is a function handgrad has no derivation of stays built-in."""
    activation = module.activation
    if isinstance(activation, torch.nn.Module) or _activation(module) is not activation:
        return ""
    return (f"activation {getattr(activation, '__name__', activation)!r} is a function handgrad has no derivation "
            f"for (pass a module, or 'relu' or 'gelu')")


# -- torchvision's vision transformer (registered once torchvision is imported) ------------------------


def _vit_encoder_block_forward(self, input):
    """torchvision's EncoderBlock: x = input + dropout(attention(ln₁(input))), y = x + mlp(ln₂(x))."""
    if input.dim() != 3:
        raise ValueError(f"EncoderBlock: expected (batch_size, seq_length, hidden_dim), got shape {tuple(input.shape)}")
    x = self.ln_1(input)
    x, _ = self.self_attention(x, x, x, need_weights=False)
    x = add(self.dropout(x), input)
    return add(x, self.mlp(self.ln_2(x)))


def _vit_encoder_forward(self, input):
    """torchvision's Encoder: the position embedding added (``add``: its gradient is g summed over
    the batch), dropout, the blocks, the final layer norm."""
    if input.dim() != 3:
        raise ValueError(f"Encoder: expected (batch_size, seq_length, hidden_dim), got shape {tuple(input.shape)}")
    return self.ln(self.layers(self.dropout(add(input, self.pos_embedding))))


def _vision_transformer_forward(self, x):
    """torchvision's VisionTransformer: patches (its ``conv_proj``), the class token joined in front of
    them (a concatenation: its gradient is g's first row, summed over the batch by the expand), the
    encoder, the class token's row into the heads. It computes nothing itself but through those."""
    x = self._process_input(x)
    x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
    return self.heads(self.encoder(x)[:, 0])


register(Op(
    "multi_head_attention_forward", multi_head_attention_forward, (ScaledDotProductAttention, AttentionWeights),
    Derivative("Q, K, V = x Wᵢᵀ + bᵢ; each head's O = softmax(Q Kᵀ / √hd + B) V; y = [O₁ … O_H] W_oᵀ + b_o",
               "the rows of `linear` and `scaled_dot_product_attention`, by the chain rule",
               "query (L, N, E), key and value (S, N, E), y (L, N, E), weights (N, L, S)"),
    modules={
        torch.nn.MultiheadAttention: Module(_multihead_attention_forward),
        torch.nn.TransformerEncoderLayer: Module(_encoder_layer_forward, _unsupported_activation),
        torch.nn.TransformerDecoderLayer: Module(_decoder_layer_forward, _unsupported_activation),
        torch.nn.TransformerEncoder: Module(_encoder_forward),
        torch.nn.TransformerDecoder: Module(_decoder_forward),
        "torchvision.models.vision_transformer.EncoderBlock": Module(_vit_encoder_block_forward),
        "torchvision.models.vision_transformer.Encoder": Module(_vit_encoder_forward),
        "torchvision.models.vision_transformer.VisionTransformer": Module(_vision_transformer_forward),
    },
))
