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
# # The seed tutorial, with handgrad
#
# handgrad starts from a tutorial, *the seed*: a network classifying Fashion-MNIST images, trained
# first with PyTorch's quickstart and then by hand in NumPy, every gradient derived with the chain
# rule. This notebook walks through it again with handgrad: the data, the network, the derivation
# of each gradient next to the code that computes it, the check that the gradients computed by
# hand, by handgrad's Functions, by PyTorch's autograd and by the seed's NumPy all agree, a short
# training run, and a look at what the network learned.
#
# It is a plain-text notebook (Jupytext's percent format): run it as a script
# (`python examples/seed_tutorial.py`), open it in Jupyter (`jupytext --to notebook
# examples/seed_tutorial.py`), or read it on the documentation site, which runs it at every build.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import handgrad.functional as F
import handgrad.nn
from handgrad import reference
from handgrad.training import models
from handgrad.training.data import CLASSES, FashionMNISTDataModule

# The matrices here are small: one thread computes them fastest, and a busy machine
# cannot slow a single thread down by making it wait for a second one.
torch.set_num_threads(1)
torch.manual_seed(0)

# The repository, wherever this runs from (its root, examples/, the docs build), or the one the
# installed handgrad comes from: the data ships with it.
PLACES = [Path.cwd(), *Path.cwd().parents, Path(handgrad.nn.__file__).resolve().parents[1]]
ROOT = next((p for p in PLACES if (p / "data/FashionMNIST").is_dir()), None)
if ROOT is None:
    raise SystemExit("seed_tutorial: no data/FashionMNIST/ here, above here, nor beside the installed handgrad: "
                     "run it from a clone of the handgrad repository (it ships the four Fashion-MNIST files)")
FIGURES = ROOT / "runs" / "seed_tutorial"


def show(fig, name):
    """Show the figure (inline in a notebook) and save it to runs/seed_tutorial/<name>.png, so that a
    run as a script, with no screen, keeps it too."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / f"{name}.png", dpi=100, bbox_inches="tight")
    print(f"figure saved to {os.path.relpath(FIGURES / f'{name}.png')}")
    plt.show()

# %% [markdown]
# ## The data
#
# Fashion-MNIST: $28 \times 28$ grey images of clothes, 60,000 for training and 10,000 for testing,
# each with one of 10 labels. The repository ships the four original files in
# `data/FashionMNIST/raw/`; handgrad's data module reads them once into tensors, with pixels scaled
# to $[0, 1]$ as the seed's `ToTensor` does, in file order, all 60,000 for training (the seed's
# setting: no validation split, no normalisation).

# %%
data = FashionMNISTDataModule(str(ROOT / "data"), val_size=0, normalize=False,
                              shuffle=False)
data.prepare_data()
data.setup()
x_train, y_train = data.train_set
x_test, y_test = data.test_set
print("training images", tuple(x_train.shape), x_train.dtype)
print("labels         ", tuple(y_train.shape), y_train.dtype)
print("test images    ", tuple(x_test.shape))
print("pixel range    ", x_train.min().item(), "to", x_train.max().item())

# %%
fig, axes = plt.subplots(2, 8, figsize=(12, 3.4))
for ax, image, label in zip(axes.flat, x_train, y_train):
    ax.imshow(image[0], cmap="gray_r")
    ax.set_title(CLASSES[label], fontsize=9)
    ax.axis("off")
fig.suptitle("The first 16 training images")
show(fig, "training_images")

# %% [markdown]
# Each image is flattened into a row vector $\mathbf{x}$ of $784$ pixels, and a batch of $N$
# images into a matrix of $N$ rows, $(N, 784)$.
#
# ## The networks
#
# The PyTorch quickstart's network is three linear layers, $784 \to 512 \to 512 \to 10$, with a
# ReLU after the first two; its output is the 10 *logits*, one score per class. handgrad builds it
# from its own layers (`impl="hand"`), whose backward passes are the hand-derived ones, or from
# `torch.nn`'s (`impl="torch"`): the same modules, names and initialisation.

# %%
quickstart = models.build("quickstart", impl="hand")
print(quickstart)
print("all on hand-derived backward:", handgrad.nn.coverage(quickstart).complete)

# %% [markdown]
# The seed then writes two networks by hand. Its *basic* network has no bias and no activation,
#
# $$
# \mathbf{l}^1 = \mathbf{x} W^1, \qquad \mathbf{l}^2 = \mathbf{l}^1 W^2, \qquad \mathbf{l}^3 = \mathbf{l}^2 W^3,
# $$
#
# and its *better* network adds a bias to every layer and a sigmoid $\sigma$ after the first two:
#
# $$
# \mathbf{l}^1 = \sigma(\mathbf{x} W^1 + \mathbf{b}^1), \qquad
# \mathbf{l}^2 = \sigma(\mathbf{l}^1 W^2 + \mathbf{b}^2), \qquad
# \mathbf{l}^3 = \mathbf{l}^2 W^3 + \mathbf{b}^3 .
# $$
#
# The seed stores each $W$ as $(\text{in}, \text{out})$; handgrad, like `torch.nn.Linear`, stores
# it $(\text{out}, \text{in})$ and computes $\mathbf{x} W^\top$: the same numbers, transposed. Below,
# $W$ is handgrad's, so the seed's $W$ is our $W^\top$.
#
# The loss is the cross-entropy of the logits $\mathbf{l}^3$ and the label $y$, averaged over the
# batch: with $\mathbf{p} = \operatorname{softmax}(\mathbf{l}^3)$, $p_k = e^{l^3_k} / \sum_j e^{l^3_j}$,
#
# $$
# L = \frac1N \sum_{n} -\log p_{n, y_n} .
# $$

# %% [markdown]
# ## Every gradient, derived and computed
#
# Take the better network and a batch of 16 training images, in float64 so that the comparisons are
# exact to rounding. First, handgrad computes the gradients: the forward pass layer by layer with
# handgrad's functional ops, and `backward()` runs each op's hand-derived backward.

# %%
better = models.build("better", impl="hand").double()
linears = [layer for layer in better.layers if isinstance(layer, torch.nn.Linear)]
(W1, b1), (W2, b2), (W3, b3) = [(layer.weight, layer.bias) for layer in linears]
x = x_train[:16].flatten(1).double()                      # (N, 784)
y = y_train[:16]                                          # (N,)
N = len(y)

l1 = F.sigmoid(F.linear(x, W1, b1))                       # (N, 512)
l2 = F.sigmoid(F.linear(l1, W2, b2))                      # (N, 512)
l3 = F.linear(l2, W3, b3)                                 # (N, 10), the logits
for hidden in (l1, l2, l3):
    hidden.retain_grad()                                  # keep dL/dl, to compare
L = F.cross_entropy(l3, y)
L.backward()
print("loss", L.item())


def compare(name, by_hand, by_handgrad):
    """How far the gradient computed by hand is from handgrad's."""
    difference = (by_hand - by_handgrad).abs().max().item()
    shape = str(tuple(by_hand.shape))
    print(f"{name:6s} {shape:11s} max |by hand − handgrad| = {difference:.1e}")


# %% [markdown]
# Now by hand, with plain tensor arithmetic and no autograd, from the top of the network down, as
# the seed's `update_weights` does.
#
# ### The loss: $\partial L / \partial \mathbf{l}^3$
#
# For one image, $-\log p_y = \log \sum_k e^{l^3_k} - l^3_y$ (the seed's Appendix 1). The first term
# depends on every logit, with $\partial \log \sum_k e^{l^3_k} / \partial l^3_n = p_n$; the second only
# on $l^3_y$. So
#
# $$
# \frac{\partial L}{\partial l^3_n} = p_n - \mathbb{1}[n = y],
# \qquad
# \frac{\partial L}{\partial \mathbf{l}^3} = \operatorname{softmax}(\mathbf{l}^3) - \operatorname{onehot}(y),
# $$
#
# and the mean over the batch divides each row by $N$.

# %%
with torch.no_grad():
    e = torch.exp(l3 - l3.max(1, keepdim=True).values)    # the seed's softmax, shifted
    p = e / e.sum(1, keepdim=True)                        # (N, 10)
    onehot = torch.zeros_like(p)
    onehot[torch.arange(N), y] = 1
    g3 = (p - onehot) / N                                 # dL/dl³, (N, 10)
compare("dL/dl3", g3, l3.grad)

# %% [markdown]
# ### The last layer: $\partial L / \partial W^3$ and $\partial L / \partial \mathbf{b}^3$
#
# Entry by entry, $l^3_{nj} = \sum_i l^2_{ni} W^3_{ji} + b^3_j$. The weight $W^3_{ji}$ moves only the
# outputs $l^3_{nj}$ of unit $j$, one per image, each by $l^2_{ni}$ times its change; the bias
# $b^3_j$ moves them by exactly its change. The total derivative sums over those outputs:
#
# $$
# \frac{\partial L}{\partial W^3_{ji}} = \sum_n \frac{\partial L}{\partial l^3_{nj}}\, l^2_{ni},
# \qquad
# \frac{\partial L}{\partial b^3_j} = \sum_n \frac{\partial L}{\partial l^3_{nj}} .
# $$
#
# A sum over $n$ of products is a matrix product: with $\mathbf{g}^3 = \partial L / \partial \mathbf{l}^3$,
#
# $$
# \frac{\partial L}{\partial W^3} = (\mathbf{g}^3)^\top \mathbf{l}^2 \quad (10, 512) = (10, N) \times (N, 512),
# \qquad
# \frac{\partial L}{\partial \mathbf{b}^3} = \sum_n \mathbf{g}^3_n \quad (10).
# $$
#
# (For one image this is the seed's outer product $(\mathbf{l}^2)^\top \partial L / \partial \mathbf{l}^3$, transposed to handgrad's layout.)

# %%
with torch.no_grad():
    dW3 = g3.T @ l2                                       # (10, 512)
    db3 = g3.sum(0)                                       # (10,)
compare("dL/dW3", dW3, W3.grad)
compare("dL/db3", db3, b3.grad)

# %% [markdown]
# ### Down to the second layer: $\partial L / \partial \mathbf{l}^2$
#
# $l^2_{ni}$ moves every logit of its image, $l^3_{nj}$ by $W^3_{ji}$ times its change:
#
# $$
# \frac{\partial L}{\partial l^2_{ni}} = \sum_j \frac{\partial L}{\partial l^3_{nj}}\, W^3_{ji}
# \qquad\Longrightarrow\qquad
# \mathbf{g}^2 = \frac{\partial L}{\partial \mathbf{l}^2} = \mathbf{g}^3\, W^3 \quad (N, 512) = (N, 10) \times (10, 512).
# $$

# %%
with torch.no_grad():
    g2 = g3 @ W3                                          # dL/dl², (N, 512)
compare("dL/dl2", g2, l2.grad)

# %% [markdown]
# ### Through the sigmoid, and the second layer's parameters
#
# $\mathbf{l}^2 = \sigma(\mathbf{z}^2)$ with $\mathbf{z}^2 = \mathbf{l}^1 W^{2\top} + \mathbf{b}^2$ (the
# seed's $\hat{\mathbf{l}}^2$). Each $l^2_{ni}$ depends on $z^2_{ni}$ alone, and
# $\sigma'(z) = \frac{e^{-z}}{(1 + e^{-z})^2} = \sigma(z)(1 - \sigma(z))$, so the gradient at the
# pre-activation is an elementwise product that needs only the layer's output:
#
# $$
# \boldsymbol{\delta}^2 = \frac{\partial L}{\partial \mathbf{z}^2} = \mathbf{g}^2 \circ \mathbf{l}^2 \circ (1 - \mathbf{l}^2).
# $$
#
# Then the second layer's parameters are the last layer's rules with $\boldsymbol{\delta}^2$ for the
# gradient at the output and $\mathbf{l}^1$ for the input:
#
# $$
# \frac{\partial L}{\partial W^2} = (\boldsymbol{\delta}^2)^\top \mathbf{l}^1 \quad (512, 512),
# \qquad
# \frac{\partial L}{\partial \mathbf{b}^2} = \sum_n \boldsymbol{\delta}^2_n \quad (512).
# $$

# %%
with torch.no_grad():
    d2 = g2 * l2 * (1 - l2)                               # dL/dz², (N, 512)
    dW2 = d2.T @ l1                                       # (512, 512)
    db2 = d2.sum(0)                                       # (512,)
compare("dL/dW2", dW2, W2.grad)
compare("dL/db2", db2, b2.grad)

# %% [markdown]
# ### The first layer
#
# The same two steps once more: down through $W^2$, through the first sigmoid, and onto the first
# layer's parameters, whose input is the image $\mathbf{x}$:
#
# $$
# \mathbf{g}^1 = \boldsymbol{\delta}^2 W^2, \qquad
# \boldsymbol{\delta}^1 = \mathbf{g}^1 \circ \mathbf{l}^1 \circ (1 - \mathbf{l}^1), \qquad
# \frac{\partial L}{\partial W^1} = (\boldsymbol{\delta}^1)^\top \mathbf{x} \quad (512, 784), \qquad
# \frac{\partial L}{\partial \mathbf{b}^1} = \sum_n \boldsymbol{\delta}^1_n .
# $$

# %%
with torch.no_grad():
    g1 = d2 @ W2                                          # dL/dl¹, (N, 512)
    d1 = g1 * l1 * (1 - l1)                               # dL/dz¹, (N, 512)
    dW1 = d1.T @ x                                        # (512, 784)
    db1 = d1.sum(0)                                       # (512,)
compare("dL/dl1", g1, l1.grad)
compare("dL/dW1", dW1, W1.grad)
compare("dL/db1", db1, b1.grad)

# %% [markdown]
# Every gradient computed by hand is the one handgrad's backward computed, to float64 rounding.
# handgrad's own code for each step is on the [derivation pages](../ops/linear/): `linear_backward`
# computes $\mathbf{g} W$, $\mathbf{g}^\top \mathbf{x}$ and $\sum \mathbf{g}$, `sigmoid_backward`
# computes $\mathbf{g} \circ \mathbf{y} \circ (1 - \mathbf{y})$.
#
# ## Hand = autograd = NumPy
#
# Three independent computations of the same gradients: handgrad's network (its `Sequential` runs
# the three layers as one Function, the seed's `update_weights`), the same network on `torch.nn`'s
# built-in layers and PyTorch's autograd, and the seed's NumPy code (`handgrad.reference`, which
# chains each op's NumPy oracle in the seed's $(\text{in}, \text{out})$ layout). For each of the seed's
# networks, the largest difference between them, over every parameter:

# %%
def seed_layout(net):
    """A network's gradients in the seed's layout: dL/dW (in, out), dL/db (1, out)."""
    grads = {}
    layers = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    for i, layer in enumerate(layers, 1):
        grads[f"W{i}"] = layer.weight.grad.T.numpy()
        if layer.bias is not None:
            grads[f"b{i}"] = layer.bias.grad.reshape(1, -1).numpy()
    return grads


def gradients_three_ways(network):
    torch.manual_seed(0)
    hand = models.build(network, impl="hand").double()
    builtin = models.build(network, impl="torch").double()
    builtin.load_state_dict(hand.state_dict())                   # the same weights
    F.cross_entropy(hand(x), y).backward()                       # handgrad's backward
    torch.nn.functional.cross_entropy(builtin(x), y).backward()  # PyTorch's autograd
    params = models.seed_parameters(hand)                        # W (in, out), b (1, out)
    _, from_numpy = reference.loss_and_grads(params, x.numpy(), y.numpy(), network)
    return seed_layout(hand), seed_layout(builtin), from_numpy


print(f"{'network':11s} {'gradient':9s} {'|handgrad − autograd|':>22s}",
      f"{'|handgrad − NumPy|':>19s}")
for network in ("basic", "better", "quickstart"):
    from_handgrad, from_autograd, from_numpy = gradients_three_ways(network)
    for key, grad in from_handgrad.items():
        vs_autograd = np.abs(grad - from_autograd[key]).max()
        vs_numpy = np.abs(grad - from_numpy[key]).max()
        print(f"{network:11s} {'dL/d' + key:9s} {vs_autograd:22.1e} {vs_numpy:19.1e}")

# %% [markdown]
# ## A short training run
#
# The seed trains one image at a time. Here, mini-batches of 64 images (one gradient per batch, the
# mean of the 64 images' gradients, as the quickstart does), plain SGD, two passes over the training
# set in file order, for the basic and the better network, with handgrad's hand-derived gradients.
# The test accuracy is measured every quarter of an epoch.

# %%
def train(network, lr, epochs=2, batch_size=64):
    torch.manual_seed(0)
    net = models.build(network, impl="hand")
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    steps_per_epoch = -(-len(y_train) // batch_size)
    quarters = {round(steps_per_epoch * k / 4) for k in (1, 2, 3, 4)}
    curve = {"step": [], "loss": [], "test_step": [], "test_accuracy": []}
    for epoch in range(epochs):
        for i in range(steps_per_epoch):
            batch = slice(i * batch_size, (i + 1) * batch_size)
            loss = F.cross_entropy(net(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()                              # W ← W − lr · dL/dW
            step = epoch * steps_per_epoch + i + 1
            curve["step"].append(step)
            curve["loss"].append(loss.item())
            if i + 1 in quarters:
                with torch.no_grad():
                    accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
                curve["test_step"].append(step)
                curve["test_accuracy"].append(accuracy)
        print(f"{network}: epoch {epoch + 1}, test accuracy {accuracy:.1%}")
    return net, curve


basic, basic_curve = train("basic", lr=0.05)
better, better_curve = train("better", lr=0.5)

# %%
fig, (ax_loss, ax_accuracy) = plt.subplots(1, 2, figsize=(12, 4))
for name, curve in (("basic", basic_curve), ("better", better_curve)):
    loss = np.convolve(curve["loss"], np.ones(50) / 50, mode="valid")   # last 50 batches
    ax_loss.plot(curve["step"][49:], loss, label=name)
    ax_accuracy.plot(curve["test_step"], curve["test_accuracy"], "o-", label=name)
ax_loss.set(xlabel="step (batch of 64)", ylabel="training loss (mean of 50 batches)",
            title="Training loss")
ax_accuracy.set(xlabel="step (batch of 64)", ylabel="test accuracy",
                title="Test accuracy (10,000 images)")
for ax in (ax_loss, ax_accuracy):
    ax.grid(alpha=0.3)
    ax.legend()
show(fig, "training_curves")

# %% [markdown]
# Both networks end near 79 % after two passes: with so few steps of plain SGD on batches of 64,
# the better network's sigmoids have not paid off yet. The seed's one-image-at-a-time runs reach
# about 73 % (basic) and 83 % (better) after one pass; `train.py` reproduces those runs exactly,
# and its default recipe (Adam, a cosine schedule, 8 epochs) takes the better network to 88.6 %
# (see [Training](../training/)).
#
# ## What the basic network learned: one template per class
#
# The seed asks what the network learns, and suggests that its weight matrices learn "10
# templates, but not quite". For the basic network the answer can be computed. Without
# activations or biases, its three layers multiply out to one matrix:
#
# $$
# \mathbf{l}^3 = \mathbf{x}\, W^{1\top} W^{2\top} W^{3\top} = \mathbf{x}\, T^\top, \qquad
# T = W^3 W^2 W^1 \quad (10, 784) = (10, 512) \times (512, 512) \times (512, 784).
# $$
#
# Row $c$ of $T$ is a $28 \times 28$ image, and the logit of class $c$ is its dot product with the
# input image, $l^3_c = \sum_{\text{pixels}} x \cdot T_c$: a *template* of the class, bright where
# ink raises the score of the class, dark where ink lowers it. The network is a linear classifier
# in disguise (the seed: "in practice this 'network' reduces to a single linear classifier"), and
# its 10 templates are all it learned.

# %%
with torch.no_grad():
    W1, W2, W3 = (layer.weight for layer in basic.layers)
    T = W3 @ W2 @ W1                                      # (10, 784)
    same = torch.allclose(x_test.flatten(1) @ T.T, basic(x_test), atol=1e-4)
print("the product of the three layers gives the network's logits:", same)

fig, axes = plt.subplots(2, 5, figsize=(13, 5.6))
for c, ax in enumerate(axes.flat):
    template = T[c].reshape(28, 28)
    limit = template.abs().max()
    ax.imshow(template, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(CLASSES[c], fontsize=10)
    ax.axis("off")
fig.suptitle("The basic network's 10 templates, T = W³W²W¹ "
             "(red: ink raises the class's score, blue: lowers it)")
show(fig, "templates")

# %% [markdown]
# The templates are noisy: nothing in the loss asks neighbouring pixels for similar weights. Their
# large-scale patterns can be read, though. The trouser template's strongest feature is a blue
# stripe down the middle: ink in the gap between two legs counts against "trouser". The footwear
# templates (sandal, sneaker, ankle boot) are mostly blue in their upper half, where shirts, coats
# and bags have ink and shoes do not. A template is not a picture of the average item of its class
# but what separates the class from the other nine: the seed's "10 templates, but not quite". The
# better network's sigmoids break the product apart; its first layer alone holds 512 patterns
# like these, combined non-linearly by the layers above.

# %% [markdown]
# ## From the seed's network to a transformer block
#
# The seed's network reads an image as one row of 784 pixels. A transformer reads it as a sequence
# of *tokens*: cut the image into 16 patches of $7 \times 7$ pixels, each a row of 49, and map every
# patch to a row of width $d$ with one linear layer that all patches share (the seed's layer,
# applied to each row). A pre-norm encoder block then updates the $T = 16$ rows $X$ $(T, d)$ twice,
# each time adding to what is there (the residual):
#
# $$
# H = X + \text{Attention}(\text{LN}(X)) W_o^\top, \qquad
# Y = H + \text{GELU}(\text{LN}(H)\, W_1^\top)\, W_2^\top .
# $$
#
# Everything in it but attention is a layer whose backward is already derived: linear, layer norm,
# GELU, and the residual's sum, whose gradient reaches both terms unchanged. Attention lets every
# token read the others. From $A = \text{LN}(X)$, three linear layers make the queries
# $Q = A W_q^\top$, the keys $K = A W_k^\top$ and the values $V = A W_v^\top$, and
#
# $$
# S = Q K^\top / \sqrt{d}, \qquad P = \text{softmax}(S) \text{ row by row}, \qquad O = P V,
# $$
#
# row $i$ of $O$ a weighted mean of the values, the weights $P_i$ how well query $i$ matches each key.
# Its backward, with $\mathbf{g} = \partial L / \partial O$, in the seed's manner:
#
# - $O = P V$ is the seed's linear layer with $P$ as the input and $V$ as the weights, so
#   $\partial L / \partial V = P^\top \mathbf{g}$ and $\partial L / \partial P = \mathbf{g} V^\top$;
# - each row of $P$ is a softmax. The seed's $\text{softmax} - \text{onehot}$ came from
#   $\partial p_i / \partial s_j = p_i (1[i = j] - p_j)$; with any upstream gradient it gives
#   $\partial L / \partial S = P \circ (\partial L / \partial P - D)$, where
#   $D_i = \sum_j (\partial L / \partial P)_{ij} P_{ij} = \sum_e \mathbf{g}_{ie} O_{ie}$: one number per
#   query, read from $\mathbf{g}$ and $O$ without the $T \times T$ product;
# - $S = Q K^\top / \sqrt{d}$ is a product again: $\partial L / \partial Q = (\partial L / \partial S)\, K / \sqrt{d}$
#   and $\partial L / \partial K = (\partial L / \partial S)^\top Q / \sqrt{d}$.
#
# handgrad's `scaled_dot_product_attention` computes exactly this (the [derivation
# page](../ops/attention/) has it entry by entry, and why the log-sum-exp of each row of $S$ is all
# that forward needs to keep). Below, one block with a single attention head, in float64 on 16
# images, its tokens pooled into the seed's 10 logits; the backward of attention is then computed
# by hand from $\mathbf{g}$ and compared with handgrad's, and every parameter's gradient with
# PyTorch's autograd on its built-in layers.

# %%
torch.manual_seed(0)
d = 32
images = x_train[:16].double()                                             # (N, 1, 28, 28)
patches = images.unfold(2, 7, 7).unfold(3, 7, 7).reshape(16, 16, 49)      # (N, T, 49): 16 patches of 7 × 7
y = y_train[:16]
shapes = {"W_e": (d, 49), "W_q": (d, d), "W_k": (d, d), "W_v": (d, d), "W_o": (d, d),
          "W_1": (2 * d, d), "W_2": (d, 2 * d), "W_c": (10, d)}
params = {name: (torch.randn(shape, dtype=torch.float64) / shape[1] ** 0.5).requires_grad_()
          for name, shape in shapes.items()}


def block(ops, p, keep=None):
    """The tokens, one pre-norm block, the tokens' mean, the logits and the loss, with ``ops`` as the
    functional layers (handgrad's or torch's); ``keep`` collects Q, K, V, O."""
    X = ops.linear(patches, p["W_e"])                                      # (N, T, d)
    A = ops.layer_norm(X, (d,))
    Q, K, V = (ops.linear(A, p[w]) for w in ("W_q", "W_k", "W_v"))        # (N, T, d) each
    O = ops.scaled_dot_product_attention(Q, K, V)                          # softmax(Q Kᵀ / √d) V
    H = X + ops.linear(O, p["W_o"])
    Y = H + ops.linear(ops.gelu(ops.linear(ops.layer_norm(H, (d,)), p["W_1"])), p["W_2"])
    if keep is not None:
        for name, t in zip("QKVO", (Q, K, V, O)):
            t.retain_grad()
            keep[name] = t
    return ops.cross_entropy(ops.linear(Y.mean(1), p["W_c"]), y)


kept = {}
L = block(F, params, kept)
L.backward()
Q, K, V, O = (kept[name].detach() for name in "QKVO")
g = kept["O"].grad                                                         # dL/dO, (N, T, d)

S = Q @ K.transpose(1, 2) / d ** 0.5                                       # (N, T, T)
P = torch.softmax(S, -1)
dV = P.transpose(1, 2) @ g                                                 # Pᵀ g
dP = g @ V.transpose(1, 2)                                                 # g Vᵀ
D = (g * O).sum(-1, keepdim=True)                                          # D_i = Σ_e g_ie O_ie
dS = P * (dP - D)                                                          # P ∘ (dP − D)
dQ = dS @ K / d ** 0.5
dK = dS.transpose(1, 2) @ Q / d ** 0.5
for name, by_hand in (("dL/dV", dV), ("dL/dQ", dQ), ("dL/dK", dK)):
    print(f"{name} max |by hand − handgrad| = {(by_hand - kept[name[-1]].grad).abs().max().item():.1e}")

builtin = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
block(torch.nn.functional, builtin).backward()
worst = max((params[name].grad - builtin[name].grad).abs().max().item() for name in params)
print(f"every parameter: max |handgrad − autograd| = {worst:.1e} (loss {L.item():.4f})")

# %% [markdown]
# The gradients of attention computed by hand are handgrad's, and every parameter's gradient
# through the block is autograd's, to float64 rounding. `models.ViT` stacks four such blocks (four
# heads, width 64, 49 patches of $4 \times 4$ behind a small convolution stem, a class token and
# learned positions); `python train.py --config configs/vit.yaml` trains it on hand-derived
# gradients only to 90.6 % test accuracy (see [Training](../training/)).
