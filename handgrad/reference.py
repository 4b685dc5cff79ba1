"""The seed's math in NumPy, float64, independent of torch: the oracle the torch code is checked against.

Written in the seed's notation and layout: row vectors, ``l = x W + b`` with ``W`` of shape
(in, out) (the transpose of torch's (out, in)), ``b`` of shape (1, out). Each op is a
``<op>_forward`` / ``<op>_backward`` pair; ``backward`` takes ``g = dL/d(output)``. The networks at
the bottom are the seed's ``MyBasicNetwork`` and ``MyBetterNetwork`` (and the quickstart's ReLU
network) vectorised over a batch, plus the seed's per-sample training loop.
"""

import numpy as np

# -- ops -----------------------------------------------------------------------------------------


def linear_forward(x, W, b=None):
    """l = x W + b; x (N, in), W (in, out), b (1, out) or (out,)."""
    return x @ W if b is None else x @ W + b


def linear_backward(g, x, W):
    """dL/dx = g Wᵀ (N, in), dL/dW = xᵀ g (in, out), dL/db = Σ_rows g (out,)."""
    return g @ W.T, x.T @ g, g.sum(axis=0)


def sigmoid_forward(z):
    """φ(z) = 1 / (1 + e⁻ᶻ), evaluated without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(g, y):
    """dL/dz = g ∘ e⁻ᶻ / (1 + e⁻ᶻ)² = g ∘ φ(z)(1 − φ(z)), from y = φ(z)."""
    return g * y * (1 - y)


def relu_forward(z):
    return np.maximum(z, 0)


def relu_backward(g, y):
    """dL/dz = g ∘ 1[z > 0]."""
    return np.where(y > 0, g, 0.0)


def dropout_forward(x, keep, p):
    """y = x ∘ m / (1 − p) for a keep-mask m."""
    return np.where(keep, x / (1 - p), 0.0) if p < 1 else np.zeros_like(x)


def dropout_backward(g, keep, p):
    """dL/dx = g ∘ m / (1 − p)."""
    return dropout_forward(g, keep, p)


def softmax(logits):
    """Row-wise softmax, shifted by the row maximum as in the seed (``C = np.max(vec)``)."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _coefficients(target, n_rows, n_classes, weight, ignore_index, label_smoothing):
    """Per-row target distribution A (M, C) with L_row = −Σ_c A log p, and the 'mean' divisor."""
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    if np.issubdtype(target.dtype, np.floating):
        q = (1 - eps) * target + eps / n_classes
        return q * w, n_rows
    A = np.zeros((n_rows, n_classes))
    divisor = 0.0
    for m, t in enumerate(target):
        if t == ignore_index:
            continue
        A[m, t] += (1 - eps) * w[t]
        A[m] += eps / n_classes * w
        divisor += w[t]
    return A, divisor


def cross_entropy_forward(logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """L = −Σ_c A_c log softmax(l)_c per row (the seed's −log softmax(l)_y when A is one-hot).

    logits (M, C); target (M,) class indices or (M, C) probabilities.
    """
    A, divisor = _coefficients(target, *logits.shape, weight, ignore_index, label_smoothing)
    rows = -(A * log_softmax(logits)).sum(axis=1)
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    with np.errstate(invalid="ignore"):                      # a mean over no rows is NaN, as in torch
        return rows.sum() / divisor


def cross_entropy_backward(g, logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """dL/dl = r (s · softmax(l) − A), s = Σ_c A, r the per-row weight of L; for one row with a
    one-hot target this is the seed's ``softmax(l) − onehot``. Returns (dL/dlogits, dL/dtarget),
    dL/dtarget = −r (1 − ε) w log softmax(l) for probability targets, else None."""
    A, divisor = _coefficients(target, *logits.shape, weight, ignore_index, label_smoothing)
    g = np.asarray(g, dtype=np.float64)
    if reduction == "none":
        r = g.reshape(-1, 1)
    elif reduction == "sum":
        r = np.full((logits.shape[0], 1), float(g))
    else:
        r = np.full((logits.shape[0], 1), float(g) / divisor if divisor else 0.0)
    dlogits = r * (A.sum(axis=1, keepdims=True) * softmax(logits) - A)
    if not np.issubdtype(target.dtype, np.floating):
        return dlogits, None
    w = np.ones(logits.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)
    return dlogits, -r * (1 - label_smoothing) * w * log_softmax(logits)


# -- the seed's networks -------------------------------------------------------------------------

NETWORKS = {
    # name: (activation between layers, whether layers have biases)
    "basic": (None, False),
    "better": ("sigmoid", True),
    "quickstart": ("relu", True),
}
_ACTIVATIONS = {"sigmoid": (sigmoid_forward, sigmoid_backward), "relu": (relu_forward, relu_backward)}
SIZES = (784, 512, 512, 10)


def init_params(network, rng):
    """The seed's initialisation: W ~ N(0, 1/fan_in) of shape (in, out), biases zero."""
    _, bias = NETWORKS[network]
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:]), start=1):
        params[f"W{i}"] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(1 / fan_in)
        if bias:
            params[f"b{i}"] = np.zeros((1, fan_out))
    return params


def forward(params, x, network):
    """Logits l³ (N, 10) for images x (N, 784), and the layer outputs kept for backward."""
    activation, _ = NETWORKS[network]
    outputs = [x]
    n_layers = len(SIZES) - 1
    for i in range(1, n_layers + 1):
        l = linear_forward(outputs[-1], params[f"W{i}"], params.get(f"b{i}"))
        if activation is not None and i < n_layers:
            l = _ACTIVATIONS[activation][0](l)
        outputs.append(l)
    return outputs[-1], outputs


def backward(params, outputs, y, network):
    """Gradients of the mean cross-entropy over the batch, by the chain rule from the top layer down."""
    activation, _ = NETWORKS[network]
    n_layers = len(SIZES) - 1
    logits = outputs[-1]
    g = cross_entropy_backward(1.0, logits, y)[0]               # dL/dl³ = (softmax − onehot) / N
    grads = {}
    for i in range(n_layers, 0, -1):
        if activation is not None and i < n_layers:
            g = _ACTIVATIONS[activation][1](g, outputs[i])       # through φ: g ∘ φ'(l̂ⁱ)
        g_in, grads[f"W{i}"], db = linear_backward(g, outputs[i - 1], params[f"W{i}"])
        if f"b{i}" in params:
            grads[f"b{i}"] = db.reshape(1, -1)
        g = g_in                                                # dL/dlⁱ⁻¹ = g (Wⁱ)ᵀ
    return grads


def loss_and_grads(params, x, y, network):
    logits, outputs = forward(params, x, network)
    return cross_entropy_forward(logits, y), backward(params, outputs, y, network)


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
