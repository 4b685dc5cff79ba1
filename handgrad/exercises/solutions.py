"""The reference solution of each exercise: a complete Function written as a learner would write it.

Each class is what ``handgrad-learn start`` hands out with its backward filled in: the skeleton is
made from this source (``handgrad.exercises.skeleton``), keeping the docstring, forward,
setup_context and the first lines of backward (those that read ``ctx`` or recompute forward's
values), so the forward a learner gets is the one graded here. Backward computes with plain tensor
operations and handgrad's own ops (``hf``), never with torch's softmax, sigmoid or tanh: their
derivatives are PyTorch's kernels, which the ``hand 2nd`` check of ``verify`` would find when
backward is itself differentiated.

Under ``torch.autocast`` a forward may compute in bfloat16 (float16 on CUDA) where the built-in it
calls does: setup_context then keeps its tensors in the output's dtype, so that backward computes in
the same dtype as g.
"""

import math

import torch

import handgrad.functional as hf


class Sigmoid(torch.autograd.Function):
    """y = σ(z) = 1 / (1 + e⁻ᶻ), elementwise: z and y (*)."""

    @staticmethod
    def forward(z):
        return torch.sigmoid(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)                   # y, as torch's sigmoid keeps for its backward

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)                          # dL/dz = g σ'(z) = g y (1 − y), (*)


class Linear(torch.autograd.Function):
    """y = x Wᵀ + b: x (N, in), W (out, in) as torch.nn.Linear stores it, b (out,), y (N, out)."""

    @staticmethod
    def forward(x, W, b):
        return torch.nn.functional.linear(x, W, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        ctx.save_for_backward(x.to(output.dtype), W.to(output.dtype))   # in y's dtype (autocast)

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = g @ W                              # dL/dx = g W, (N, in)
        if ctx.needs_input_grad[1]:
            grad_W = g.T @ x                            # dL/dW = gᵀx, (out, in)
        if ctx.needs_input_grad[2]:
            grad_b = g.sum(0)                           # dL/db = Σₙ gₙ, (out,)
        return grad_x, grad_W, grad_b


class CrossEntropy(torch.autograd.Function):
    """L = mean over the batch of −log softmax(z)_t: logits z (N, C), classes t (N,), L a number."""

    @staticmethod
    def forward(z, t):
        return torch.nn.functional.cross_entropy(z, t)

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, t = inputs
        ctx.save_for_backward(z, t)

    @staticmethod
    def backward(ctx, g):
        z, t = ctx.saved_tensors
        p = hf.softmax(z, dim=1)                                        # softmax(z), (N, C)
        onehot = torch.nn.functional.one_hot(t, z.shape[1]).to(p.dtype)  # onehot(t), (N, C)
        return g * (p - onehot) / z.shape[0], None      # dL/dz = g (softmax(z) − onehot(t)) / N, (N, C)


class Tanh(torch.autograd.Function):
    """y = tanh(z), elementwise: z and y (*)."""

    @staticmethod
    def forward(z):
        return torch.tanh(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)                   # y, as torch's tanh keeps for its backward

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)                          # dL/dz = g tanh'(z) = g (1 − y²), (*)


class Softmax(torch.autograd.Function):
    """y = softmax(z) along the last dimension: yᵢ = e^zᵢ / Σⱼ e^zⱼ; z and y (N, C)."""

    @staticmethod
    def forward(z):
        return torch.softmax(z, dim=-1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return y * (g - (g * y).sum(-1, keepdim=True))  # dL/dz = y ∘ (g − Σⱼ gⱼ yⱼ), (N, C)


class LayerNorm(torch.autograd.Function):
    """y = γ x̂ + β, x̂ = (x − μ) r, r = 1/√(σ² + ε), μ and σ² the mean and (biased) variance of each
    row: x and y (N, D), γ and β (D,)."""

    eps = 1e-5

    @staticmethod
    def normalize(x):
        """x̂ and r, as forward computes them (each row's statistics)."""
        mu = x.mean(-1, keepdim=True)                               # μ, (N, 1)
        r = 1 / ((x - mu) ** 2).mean(-1, keepdim=True).add(LayerNorm.eps).sqrt()   # r, (N, 1)
        return (x - mu) * r, r

    @staticmethod
    def forward(x, gamma, beta):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, LayerNorm.eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma, beta = inputs
        # In float32 at least: the terms of dL/dx nearly cancel, which float16 and bfloat16 would lose
        # (PyTorch's kernel computes them in float32 too).
        ctx.save_for_backward(x.to(torch.promote_types(x.dtype, torch.float32)), gamma)

    @staticmethod
    def backward(ctx, g):
        x, gamma = ctx.saved_tensors
        x_hat, r = LayerNorm.normalize(x)                           # forward's x̂ and r again
        g_hat = gamma * g                                           # ĝ = dL/dx̂ = γ ∘ g, (N, D)
        grad_x = r * (g_hat - g_hat.mean(-1, keepdim=True)          # dL/dx = r (ĝ − mean ĝ
                      - x_hat * (g_hat * x_hat).mean(-1, keepdim=True))   # − x̂ mean(ĝ x̂)), (N, D)
        grad_gamma = (g * x_hat).sum(0)                             # dL/dγ = Σₙ g x̂, (D,)
        grad_beta = g.sum(0)                                        # dL/dβ = Σₙ g, (D,)
        return grad_x, grad_gamma, grad_beta


class BatchNorm(torch.autograd.Function):
    """y = γ x̂ + β in training, x̂ = (x − μ) r, r = 1/√(σ² + ε), μ and σ² the mean and (biased)
    variance of each feature over the batch: x and y (N, D), γ and β (D,)."""

    eps = 1e-5

    @staticmethod
    def normalize(x):
        """x̂ and r, as forward computes them (each column's statistics, over the batch)."""
        mu = x.mean(0)                                              # μ, (D,)
        r = 1 / ((x - mu) ** 2).mean(0).add(BatchNorm.eps).sqrt()   # r, (D,)
        return (x - mu) * r, r

    @staticmethod
    def forward(x, gamma, beta):
        return torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=BatchNorm.eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma, beta = inputs
        # In float32 at least: the terms of dL/dx nearly cancel, which float16 and bfloat16 would lose
        # (PyTorch's kernel computes them in float32 too).
        ctx.save_for_backward(x.to(torch.promote_types(x.dtype, torch.float32)), gamma)

    @staticmethod
    def backward(ctx, g):
        x, gamma = ctx.saved_tensors
        x_hat, r = BatchNorm.normalize(x)                           # forward's x̂ and r again
        grad_x = gamma * r * (g - g.mean(0) - x_hat * (g * x_hat).mean(0))   # dL/dx = γ r (g − mean g − x̂ mean(g x̂)), (N, D)
        grad_gamma = (g * x_hat).sum(0)                             # dL/dγ = Σₙ g x̂, (D,)
        grad_beta = g.sum(0)                                        # dL/dβ = Σₙ g, (D,)
        return grad_x, grad_gamma, grad_beta


class Embedding(torch.autograd.Function):
    """y = W[x]: the row of the table W for each index of x; x (*) integers, W (V, D), y (*, D)."""

    @staticmethod
    def forward(x, W):
        return torch.nn.functional.embedding(x, W)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W = inputs
        ctx.save_for_backward(x)
        ctx.rows = W.shape[0]

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        D = g.shape[-1]
        grad_W = g.new_zeros(ctx.rows, D).index_add(0, x.reshape(-1), g.reshape(-1, D))  # dL/dW_v = Σ_{n: xₙ = v} gₙ, (V, D)
        return None, grad_W


class Conv2d(torch.autograd.Function):
    """y = W ⋆ x + b, a 3 × 3 convolution (cross-correlation, as torch's), stride 1, padding 1:
    x (N, C, H, W), W (out, C, 3, 3), b (out,), y (N, out, H, W)."""

    padding = 1

    @staticmethod
    def forward(x, W, b):
        return torch.nn.functional.conv2d(x, W, b, padding=Conv2d.padding)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        ctx.save_for_backward(x.to(output.dtype), W.to(output.dtype))   # in y's dtype (autocast)

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        p, k = Conv2d.padding, W.shape[-1]
        x_pad = torch.nn.functional.pad(x, (p, p, p, p))                # (N, C, H + 2p, W + 2p)
        windows = x_pad.unfold(2, k, 1).unfold(3, k, 1)                 # window (i, j) of x, (N, C, H, W, k, k)
        grad_W = torch.einsum("nohw,nchwij->ocij", g, windows)          # dL/dW = Σₙ,ᵢ,ⱼ g ⊗ window, (out, C, k, k)
        grad_b = g.sum((0, 2, 3))                                       # dL/db = Σ g, (out,)
        q = k - 1 - p                                                   # g padded so that a window sits at every pixel
        g_windows = torch.nn.functional.pad(g, (q, q, q, q)).unfold(2, k, 1).unfold(3, k, 1)   # (N, out, H, W, k, k)
        grad_x = torch.einsum("nohwij,ocij->nchw", g_windows, W.flip(2, 3))   # dL/dx = g ⋆ W flipped, (N, C, H, W)
        return grad_x, grad_W, grad_b


class MaxPool2d(torch.autograd.Function):
    """y = the largest x of each k × k window, windows every s pixels: x (N, C, H, W),
    y (N, C, H', W'), H' = (H − k) // s + 1."""

    @staticmethod
    def forward(x, kernel_size, stride):
        return torch.nn.functional.max_pool2d(x, kernel_size, stride)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, kernel_size, stride = inputs
        # i: where each y came from, as the flat index h·W + w of its maximum in x's plane (N, C, H', W'),
        # what handgrad's max pooling keeps for its backward: x itself is not needed.
        _, i = torch.nn.functional.max_pool2d(x, kernel_size, stride, return_indices=True)
        ctx.save_for_backward(i)
        ctx.size = x.shape[-2:]

    @staticmethod
    def backward(ctx, g):
        (i,) = ctx.saved_tensors
        H, W = ctx.size
        grad_x = g.new_zeros(*g.shape[:-2], H * W).scatter_add(-1, i.flatten(-2), g.flatten(-2))   # g added at its argmax
        return grad_x.unflatten(-1, (H, W)), None, None     # dL/dx, (N, C, H, W)


class Attention(torch.autograd.Function):
    """O = P V, P = softmax(S) along each row, S = Q Kᵀ / √E: q (B, L, E), k (B, S, E),
    v (B, S, Ev), O (B, L, Ev)."""

    @staticmethod
    def forward(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*(t.to(output.dtype) for t in inputs))  # in O's dtype (autocast)

    @staticmethod
    def backward(ctx, g):
        q, k, v = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        P = hf.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)        # forward's P again, (B, L, S)
        grad_v = P.transpose(-2, -1) @ g                               # dL/dV = Pᵀ g, (B, S, Ev)
        grad_P = g @ v.transpose(-2, -1)                               # dL/dP = g Vᵀ, (B, L, S)
        grad_S = P * (grad_P - (grad_P * P).sum(-1, keepdim=True))     # dL/dS = P ∘ (dP − Σⱼ dPⱼ Pⱼ), (B, L, S)
        grad_q = grad_S @ k * scale                                    # dL/dQ = dS K / √E, (B, L, E)
        grad_k = grad_S.transpose(-2, -1) @ q * scale                  # dL/dK = dSᵀ Q / √E, (B, S, E)
        return grad_q, grad_k, grad_v


class LSTMCell(torch.autograd.Function):
    """One step of an LSTM cell (torch.nn.LSTMCell's, with one bias): the gates
    a = x W_ihᵀ + h W_hhᵀ + b, (N, 4H), split into i, f, u, o (input, forget, candidate, output;
    torch's docs call u "g"), i = σ(aᵢ), f = σ(a_f), u = tanh(a_u), o = σ(aₒ); then
    c' = f c + i u and h' = o tanh(c'). x (N, I), h and c (N, H), W_ih (4H, I), W_hh (4H, H),
    b (4H,); returns (h', c'), each (N, H)."""

    @staticmethod
    def gates(x, h, W_ih, W_hh, b):
        """i, f, u, o, each (N, H)."""
        a_i, a_f, a_u, a_o = (hf.linear(x, W_ih, b) + hf.linear(h, W_hh)).chunk(4, dim=1)
        return hf.sigmoid(a_i), hf.sigmoid(a_f), hf.tanh(a_u), hf.sigmoid(a_o)

    @staticmethod
    def forward(x, h, c, W_ih, W_hh, b):
        i, f, u, o = LSTMCell.gates(x, h, W_ih, W_hh, b)
        c_new = f * c + i * u
        return o * hf.tanh(c_new), c_new

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs, output[1])

    @staticmethod
    def backward(ctx, g_h, g_c):
        x, h, c, W_ih, W_hh, b, c_new = ctx.saved_tensors
        i, f, u, o = LSTMCell.gates(x, h, W_ih, W_hh, b)               # forward's gates again
        tanh_c = hf.tanh(c_new)
        grad_c_new = g_c + g_h * o * (1 - tanh_c * tanh_c)  # dL/dc' = g_c + g_h o tanh'(c'): directly and through h'
        grad_a = torch.cat([grad_c_new * u * i * (1 - i),   # dL/daᵢ = dL/dc' u σ'(aᵢ)
                            grad_c_new * c * f * (1 - f),   # dL/da_f = dL/dc' c σ'(a_f)
                            grad_c_new * i * (1 - u * u),   # dL/da_u = dL/dc' i tanh'(a_u)
                            g_h * tanh_c * o * (1 - o)],    # dL/daₒ = g_h tanh(c') σ'(aₒ)
                           dim=1)                           # (N, 4H)
        grad_x = grad_a @ W_ih                              # dL/dx = dL/da W_ih, (N, I)
        grad_h = grad_a @ W_hh                              # dL/dh = dL/da W_hh, (N, H)
        grad_c = grad_c_new * f                             # dL/dc = dL/dc' f, (N, H)
        grad_W_ih = grad_a.T @ x                            # dL/dW_ih = (dL/da)ᵀ x, (4H, I)
        grad_W_hh = grad_a.T @ h                            # dL/dW_hh = (dL/da)ᵀ h, (4H, H)
        return grad_x, grad_h, grad_c, grad_W_ih, grad_W_hh, grad_a.sum(0)   # dL/db = Σₙ dL/da, (4H,)


class SeedNetwork(torch.autograd.Function):
    """The seed's better network and its loss: l¹ = σ(x W¹ᵀ + b¹), l² = σ(l¹ W²ᵀ + b²),
    l³ = l² W³ᵀ + b³ (the logits), L = mean over the batch of −log softmax(l³)_t. x (N, D) images,
    t (N,) classes, W¹ (H¹, D), W² (H², H¹), W³ (C, H²), each bⁱ (rows of Wⁱ,); L a number."""

    @staticmethod
    def layers(x, W1, b1, W2, b2, W3, b3):
        """l¹, l², l³: (N, H¹), (N, H²), (N, C)."""
        l1 = hf.sigmoid(hf.linear(x, W1, b1))
        l2 = hf.sigmoid(hf.linear(l1, W2, b2))
        return l1, l2, hf.linear(l2, W3, b3)

    @staticmethod
    def forward(x, t, W1, b1, W2, b2, W3, b3):
        l1, l2, l3 = SeedNetwork.layers(x, W1, b1, W2, b2, W3, b3)
        return hf.cross_entropy(l3, t)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        x, t, W1, b1, W2, b2, W3, b3 = ctx.saved_tensors
        l1, l2, l3 = SeedNetwork.layers(x, W1, b1, W2, b2, W3, b3)     # forward's layers again
        onehot = torch.nn.functional.one_hot(t, l3.shape[1]).to(l3.dtype)
        d3 = g * (hf.softmax(l3, dim=1) - onehot) / x.shape[0]  # dL/dl³ = g (softmax(l³) − onehot(t)) / N, (N, C)
        d2 = (d3 @ W3) * l2 * (1 - l2)                      # dL/dl̂² = (dL/dl³ W³) ∘ σ'(l̂²), σ' = l²(1 − l²), (N, H²)
        d1 = (d2 @ W2) * l1 * (1 - l1)                      # dL/dl̂¹ = (dL/dl̂² W²) ∘ l¹(1 − l¹), (N, H¹)
        return (None, None,
                d1.T @ x, d1.sum(0),                        # dL/dW¹ = (dL/dl̂¹)ᵀ x, dL/db¹ = Σₙ dL/dl̂¹
                d2.T @ l1, d2.sum(0),                       # dL/dW² = (dL/dl̂²)ᵀ l¹, dL/db²
                d3.T @ l2, d3.sum(0))                       # dL/dW³ = (dL/dl³)ᵀ l², dL/db³
