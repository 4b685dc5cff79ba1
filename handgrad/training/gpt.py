"""A GPT, as nanoGPT's ``model.py`` builds it, written with ``torch.nn`` and ``torch.nn.functional``:
token and position embeddings, pre-norm blocks of causal self-attention and a GELU MLP, a final layer
norm and a head tied to the token embedding, its loss ``linear_cross_entropy`` (the head and the
cross-entropy in one call).

With ``impl="hand"`` the very same module is converted (``handgrad.nn.convert``): its layers run
handgrad's Functions and every call its forward makes (the attention, the residual sums, the head
and its loss) runs hand-derived, with ``memory="lean"`` keeping fewer bytes than autograd would.
"""

import math

import torch
import torch.nn.functional as F


class GPT(torch.nn.Module):
    """A decoder-only transformer over tokens.

    Args:
        vocab_size: tokens the vocabulary holds
        block_size: the longest context, in tokens (the position embedding's size)
        layers, heads, width: blocks, attention heads per block, and the width of a token's vector
        dropout: dropout of the embeddings, the attention weights and each block's two outputs
        bias: biases in the Linear layers and the layer norms (nanoGPT's ``bias``)

    Shape:
        - Input: idx (B, T) int64 token ids, T ≤ block_size; targets (B, T) or None
        - Output: the mean cross-entropy of predicting targets (nats per token), or, without
          targets, the logits (B, T, vocab_size)

    Initialisation as nanoGPT's: weights N(0, 0.02²), the two output projections of each block
    N(0, (0.02 / √(2 · layers))²), biases 0.
    """

    def __init__(self, vocab_size, block_size=64, layers=4, heads=4, width=128, dropout=0.0, bias=False):
        super().__init__()
        if width % heads:
            raise ValueError(f"width must be a multiple of heads, got width={width} and heads={heads}")
        self.block_size = block_size
        self.wte = torch.nn.Embedding(vocab_size, width)
        self.wpe = torch.nn.Embedding(block_size, width)
        self.drop = torch.nn.Dropout(dropout)
        self.blocks = torch.nn.ModuleList(Block(width, heads, dropout, bias) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(width, bias=bias)
        self.apply(_init)
        for name, p in self.named_parameters():
            if name.endswith(("attn_proj.weight", "mlp_proj.weight")):
                torch.nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

    def forward(self, idx, targets=None):
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"GPT: a context of {T} tokens is longer than block_size={self.block_size}")
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))       # (B, T, C)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if targets is None:
            return F.linear(x, self.wte.weight)                                          # (B, T, vocab)
        return F.linear_cross_entropy(x.view(B * T, -1), self.wte.weight, targets.reshape(B * T))   # the head tied

    @torch.no_grad()
    def generate(self, idx, tokens, temperature=1.0, top_k=None, generator=None):
        """``idx`` (B, T) continued by ``tokens`` tokens, each drawn from the softmax of the last
        position's logits / temperature (among the top_k largest, if given), the context cropped to
        the last block_size tokens."""
        for _ in range(tokens):
            logits = self(idx[:, -self.block_size:])[:, -1, :] / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, -math.inf)
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


class Block(torch.nn.Module):
    """x + attention(LN(x)), then x + MLP(LN(x)): nanoGPT's pre-norm block."""

    def __init__(self, width, heads, dropout, bias):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln_1 = torch.nn.LayerNorm(width, bias=bias)
        self.attn_qkv = torch.nn.Linear(width, 3 * width, bias=bias)
        self.attn_proj = torch.nn.Linear(width, width, bias=bias)
        self.ln_2 = torch.nn.LayerNorm(width, bias=bias)
        self.mlp_fc = torch.nn.Linear(width, 4 * width, bias=bias)
        self.gelu = torch.nn.GELU()
        self.mlp_proj = torch.nn.Linear(4 * width, width, bias=bias)
        self.resid_drop = torch.nn.Dropout(dropout)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.attn_qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))   # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_drop(self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C)))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.resid_drop(self.mlp_proj(self.gelu(self.mlp_fc(self.ln_2(x)))))


def _init(module):
    if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
        torch.nn.init.normal_(module.weight, 0.0, 0.02)
    if isinstance(module, torch.nn.Linear) and module.bias is not None:
        torch.nn.init.zeros_(module.bias)
