"""The seed's networks in NumPy, float64, independent of torch: the oracle the torch code is checked against.

Each op's NumPy oracle lives in the test database beside its cases (``handgrad.testing.op_db.<family>``)
as ``<op>_numpy(*args) -> (output, vjp)``: the forward in NumPy and ``vjp(g)``, the backward, which
takes g = dL/d(output) and returns the gradient of each input. This module chains them into the
seed's ``MyBasicNetwork`` and ``MyBetterNetwork`` (and the quickstart's ReLU network), vectorised
over a batch, in the seed's layout: row vectors, ``l = x W + b`` with ``W`` of shape (in, out) (the
transpose of torch's (out, in)) and ``b`` of shape (1, out); and runs the seed's per-sample
training loop.
"""

import numpy as np

from handgrad.testing.op_db.activation import relu_numpy, sigmoid_numpy
from handgrad.testing.op_db.classification import cross_entropy_rows_numpy
from handgrad.testing.op_db.linear import linear_numpy

NETWORKS = {
    # name: (activation between layers, whether layers have biases)
    "basic": (None, False),
    "better": (sigmoid_numpy, True),
    "quickstart": (relu_numpy, True),
}
SIZES = (784, 512, 512, 10)
N_LAYERS = len(SIZES) - 1


def forward(params, x, network):
    """Logits l³ (N, 10) for images x (N, 784), and the tape: each layer's vjp, bottom to top."""
    activation, _ = NETWORKS[network]
    tape, l = [], x
    for i in range(1, N_LAYERS + 1):
        l, linear_vjp = linear_numpy(l, params[f"W{i}"].T, params.get(f"b{i}"))     # lⁱ = lⁱ⁻¹ Wⁱ + bⁱ
        tape.append(("linear", i, linear_vjp))
        if activation is not None and i < N_LAYERS:
            l, activation_vjp = activation(l)                                        # φ(lⁱ)
            tape.append(("activation", i, activation_vjp))
    return l, tape


def backward(params, tape, g):
    """The chain rule from the top down: each vjp turns dL/d(its output) into dL/d(its input)."""
    grads = {}
    for kind, i, vjp in reversed(tape):
        if kind == "activation":
            (g,) = vjp(g)                                                            # g ∘ φ'(lⁱ)
            continue
        g, dW, db = vjp(g)                                                           # dL/dlⁱ⁻¹ = g (Wⁱ)ᵀ
        grads[f"W{i}"] = dW.T                                                        # xᵀ g, (in, out)
        if f"b{i}" in params:
            grads[f"b{i}"] = db
    return grads


def loss_and_grads(params, x, y, network):
    """The mean cross-entropy over the batch and its gradient for every parameter."""
    logits, tape = forward(params, x, network)
    loss, loss_vjp = cross_entropy_rows_numpy(logits, y)
    dlogits, _ = loss_vjp(1.0)                                                       # (softmax − onehot) / N
    return loss, backward(params, tape, dlogits)


def predict(params, x, network):
    return forward(params, x, network)[0].argmax(axis=1)


def accuracy(params, x, y, network):
    return float((predict(params, x, network) == y).mean())


def train_per_sample(params, images, labels, network, learning_rate=0.02, log_every=0):
    """The seed's training loop: one SGD step per image, in order, ``W -= a · dL/dW``; in place."""
    for i, (x, y) in enumerate(zip(images, labels)):
        _, grads = loss_and_grads(params, x.reshape(1, -1), np.asarray([y]), network)
        for name, grad in grads.items():
            params[name] -= learning_rate * grad
        if log_every and i % log_every == 0:
            print(f"Training iteration: sample: {i}")
    return params
