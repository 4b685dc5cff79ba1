# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The seed's three exercises, graded
#
# The seed derives three gradients by hand: the sigmoid's, the linear layer's and the
# cross-entropy's. `handgrad.exercises` turns each into an exercise: the forward of a
# `torch.autograd.Function` is given, its backward is yours to derive and write, and
# `exercises.check` grades it with the checks handgrad's own ops pass
# ([`handgrad.testing.verify`](verify.md)). When a gradient is wrong, it compares it with the classic
# mistakes of that exercise and names the one it matches.
#
# This notebook works through the three as a learner would: the derivation, a first attempt with a
# mistake learners make (often the seed's own formula, carried over as it is), what the grader says
# of it, and the answer that passes. The same exercises on the command line:
# `handgrad-learn start sigmoid` writes the file to fill in, `handgrad-learn check sigmoid` grades it,
# `handgrad-learn hint sigmoid` gives the derivation step by step ([the exercises](exercises.md)).
#
# It is a plain-text notebook (Jupytext's percent format): run it as a script
# (`python examples/seed_exercises.py`), open it in Jupyter, or read it on the documentation site,
# which runs it at every build.

# %%
import torch

import handgrad.functional as hf
from handgrad import exercises

torch.set_num_threads(1)          # the samples are small: one thread computes them fastest
print(exercises.names())

# %% [markdown]
# ## 1. The sigmoid
#
# $y = \sigma(z) = 1 / (1 + e^{-z})$, elementwise, so each $y_i$ depends on $z_i$ alone and
# $\partial L / \partial z_i = g_i \, \sigma'(z_i)$, with $g = \partial L / \partial y$ the gradient
# arriving from above. The chain rule on $(1 + e^{-z})^{-1}$ gives the seed's
#
# $$
# \sigma'(z) = \frac{e^{-z}}{(1 + e^{-z})^2}
# = \frac{1}{1 + e^{-z}} \cdot \frac{e^{-z}}{1 + e^{-z}} = \sigma(z)\,(1 - \sigma(z)) = y\,(1 - y),
# $$
#
# and forward has computed $y$ already: backward needs nothing else, and the skeleton
# `handgrad-learn start sigmoid` writes keeps $y$ alone, as torch's own sigmoid does. Its beginning:

# %%
print(exercises.skeleton("sigmoid").split('"""')[1])


# %% [markdown]
# A first attempt keeps the input $z$ instead, as the seed's `dphi_dvec(l2_hat)` takes the
# pre-activation, and writes $\sigma(1 - \sigma)$ with the wrong letter:

# %%
class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(z):
        return torch.sigmoid(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)                  # z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * z * (1 - z)


print(exercises.check("sigmoid", Sigmoid))


# %% [markdown]
# The grader computed the gradient each classic mistake of the exercise would give, on the same
# samples and for the same upstream gradient, and this one matched. Keeping $y$ and writing the
# derivative with it:

# %%
class Sigmoid(Sigmoid):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)                   # y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)                          # dL/dz = g σ'(z) = g y (1 − y)


print(exercises.check("sigmoid", Sigmoid))


# %% [markdown]
# Passing means every check of `verify`: the output and gradient against handgrad's `sigmoid` in four
# dtypes, finite differences to the first and second order, `torch.compile`, non-contiguous inputs,
# autocast, and the proof that the gradient is computed by this backward and its own derivative by
# no built-in kernel (`hand_derived`, `double_backward`). `vmap` does not apply: the Function defines
# no vmap rule.
#
# ## 2. The linear layer
#
# $y = x W^\top + b$, with $x$ $(N, \text{in})$, $W$ $(\text{out}, \text{in})$ as `torch.nn.Linear`
# stores it, and $b$ $(\text{out})$: $y_{nj} = \sum_i x_{ni} W_{ji} + b_j$. One entry at a time,
# $\partial y_{nj} / \partial x_{ni} = W_{ji}$, $\partial y_{nj} / \partial W_{ji} = x_{ni}$ and
# $\partial y_{nj} / \partial b_j = 1$; summing over every $y_{nj}$ each one touches,
#
# $$
# \frac{\partial L}{\partial x} = g\,W, \qquad
# \frac{\partial L}{\partial W} = g^\top x, \qquad
# \frac{\partial L}{\partial b} = \sum_n g_n .
# $$
#
# The seed stores its $W$ as $(\text{in}, \text{out})$ and writes `dloss_dW3 = l2.T @ dloss_dl3`,
# $x^\top g$: carried over to torch's layout as it is, that is the classic mistake.

# %%
class Linear(torch.autograd.Function):
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
        return g @ W, x.T @ g, g.sum(0)                 # the seed's x.T @ g for dL/dW


print(exercises.check("linear", Linear))


# %% [markdown]
# Autograd itself would only have said that a gradient of shape (3, 4) does not fit W; the grader saw
# what backward returned, and which mistake gives exactly those numbers. The product that has W's
# shape is $g^\top x$:

# %%
class Linear(Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, g.T @ x, g.sum(0)                 # dL/dx = g W, dL/dW = gᵀx, dL/db = Σₙ gₙ


print(exercises.check("linear", Linear))


# %% [markdown]
# ## 3. The cross-entropy
#
# For one row of logits $z$ and its class $t$, the log laws turn the seed's loss into
# $L = -\log \operatorname{softmax}(z)_t = \log \sum_k e^{z_k} - z_t$ (the seed's Appendix 1). The
# first term's derivative is $e^{z_i} / \sum_k e^{z_k} = \operatorname{softmax}(z)_i$, the second's
# $-1$ at $i = t$: $\operatorname{softmax}(z) - \operatorname{onehot}(t)$. The seed trains on one
# image at a time; `torch.nn.functional.cross_entropy`, and this exercise, average the loss over a
# batch of $N$ rows, so
#
# $$
# \frac{\partial L}{\partial z} = \frac{g}{N} \left( \operatorname{softmax}(z) - \operatorname{onehot}(t) \right).
# $$
#
# The seed's own line, `dloss_dl3 = softmax(l3); dloss_dl3[0][y] -= 1`, for a batch:

# %%
class CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(z, t):
        return torch.nn.functional.cross_entropy(z, t)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        z, t = ctx.saved_tensors
        grad = hf.softmax(z, dim=1)                     # handgrad's: its own derivative is hand-derived too
        grad[torch.arange(len(t)), t] -= 1              # softmax − onehot, as the seed does it
        return g * grad, None                           # t, the classes, gets no gradient


print(exercises.check("cross_entropy", CrossEntropy))


# %% [markdown]
# The one image of the seed is a batch of one, where $1/N = 1$. With the mean, and written out of
# place: the seed's `-= 1` would overwrite the softmax's output, which the softmax's own derivative
# reads when backward is itself differentiated (the checks `gradgradcheck` and `double_backward`
# would fail, saying so).

# %%
class CrossEntropy(CrossEntropy):
    @staticmethod
    def backward(ctx, g):
        z, t = ctx.saved_tensors
        onehot = torch.nn.functional.one_hot(t, z.shape[1]).to(z.dtype)
        return g * (hf.softmax(z, dim=1) - onehot) / len(t), None    # dL/dz = g (softmax(z) − onehot(t)) / N


print(exercises.check("cross_entropy", CrossEntropy))

# %% [markdown]
# ## Next
#
# The curriculum goes on from here: tanh, the softmax's Jacobian, layer and batch norm, an
# embedding, a convolution, max pooling, attention, an LSTM cell, and at the end the seed's whole
# network, every gradient from the loss down to $W^1$, backprop-ninja style.

# %%
for i, name in enumerate(exercises.names(), 1):
    print(f"{i:>2}  {name:<14} {exercises.teaches(name)}")
