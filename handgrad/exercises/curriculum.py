"""The exercises, in the order they are meant to be done: the seed's three (sigmoid, linear,
cross_entropy), then the curriculum of cs231n's assignments and Karpathy's "backprop ninja", ending
with the seed's whole network.

Each is declared once: the forward (in its solution's class, whose skeleton the learner gets),
handgrad's own op as the reference, small float64 samples, the derivation to do, its hints in order
and its catalogue of classic mistakes. A mistake is the gradient it produces, computed here from
the forward's arguments and the upstream gradient with any torch operation (the grader's side, not
a hand-derived Function), so the diagnosis can compare a learner's gradient with each.
"""

import math

import torch
import torch.nn.functional as F

import handgrad
import handgrad.functional as hf
from handgrad.exercises import solutions
from handgrad.exercises._exercise import Exercise, Mistake, declare
from handgrad.testing import Sample, randn


def _vjp(f, inputs, g):
    """The gradients of ``f(*inputs)`` for the upstream gradient g, by torch's autograd."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    with torch.enable_grad():
        return torch.autograd.grad(f(*leaves), leaves, g)


def _indices(generator, classes, *shape):
    return torch.randint(0, classes, shape, generator=generator)


# -- sigmoid ---------------------------------------------------------------------------------------


def _sigmoid_samples(gen):
    return [Sample((randn(gen, 5, 3, scale=2.0),), name="z (5, 3)"),
            Sample((randn(gen, 2, 3, 4, scale=2.0),), name="z (2, 3, 4)")]


declare(Exercise(
    name="sigmoid",
    forward="y = σ(z) = 1 / (1 + e⁻ᶻ)",
    teaches="σ' = σ(1 − σ): a derivative written with the output y, as the seed's layers use it",
    function=solutions.Sigmoid,
    reference=hf.sigmoid,
    samples=_sigmoid_samples,
    derivation="y = σ(z) = 1 / (1 + e⁻ᶻ), elementwise. Given g = dL/dy, derive dL/dz, and write σ'(z) "
               "with what forward computed.",
    returns="dL/dz, z's shape",
    hints=(
        "Elementwise: yᵢ depends on zᵢ alone, so the chain rule keeps one term, dL/dzᵢ = gᵢ σ'(zᵢ): "
        "backward returns g times a tensor of z's shape.",
        "σ(z) = u⁻¹ with u = 1 + e⁻ᶻ, so σ'(z) = −u⁻² · du/dz = e⁻ᶻ / (1 + e⁻ᶻ)².",
        "e⁻ᶻ / (1 + e⁻ᶻ)² = 1 / (1 + e⁻ᶻ) · e⁻ᶻ / (1 + e⁻ᶻ) = σ(z) (1 − σ(z)), and forward has "
        "computed σ(z) already: it is y.",
        "dL/dz = g · y · (1 − y).",
    ),
    mistakes=(
        Mistake("σ'(z) written with z where y belongs",
                "σ'(z) = σ(z)(1 − σ(z)) = y(1 − y): the σ(z) in it is the output y, not z; "
                "z(1 − z) is no derivative of anything here.",
                lambda a, g: {"z": g * a.z * (1 - a.z)}),
        Mistake("σ' evaluated at y",
                "σ(y)(1 − σ(y)) applies σ twice: y is σ(z) already, so σ'(z) = y(1 − y).",
                lambda a, g: {"z": g * torch.sigmoid(a.z).sigmoid() * (1 - torch.sigmoid(a.z).sigmoid())}),
        Mistake("the square of (1 + e⁻ᶻ)² missing",
                "σ'(z) = e⁻ᶻ / (1 + e⁻ᶻ)² (the chain rule on (1 + e⁻ᶻ)⁻¹); without the square it is "
                "1 − y, not y(1 − y).",
                lambda a, g: {"z": g * (1 - torch.sigmoid(a.z))}),
        Mistake("the upstream gradient g missing",
                "dL/dz = g ∘ σ'(z): the chain rule multiplies the local derivative σ'(z) by the "
                "gradient arriving from above.",
                lambda a, g: {"z": torch.sigmoid(a.z) * (1 - torch.sigmoid(a.z))}),
    ),
))


# -- linear ----------------------------------------------------------------------------------------


def _linear_samples(gen):
    return [Sample((randn(gen, 5, 3), randn(gen, 4, 3), randn(gen, 4)), name="x (5, 3), W (4, 3)"),
            Sample((randn(gen, 2, 6), randn(gen, 3, 6), randn(gen, 3)), name="x (2, 6), W (3, 6)")]


declare(Exercise(
    name="linear",
    forward="y = x Wᵀ + b",
    teaches="dL/dx = g W, dL/dW = gᵀx, dL/db = Σₙ gₙ: the shapes say where each transpose goes",
    function=solutions.Linear,
    reference=hf.linear,
    samples=_linear_samples,
    derivation="y = x Wᵀ + b, that is yₙⱼ = Σᵢ xₙᵢ Wⱼᵢ + bⱼ, with x (N, in), W (out, in) as torch.nn.Linear "
               "stores it, b (out,). Given g = dL/dy (N, out), derive dL/dx, dL/dW and dL/db.",
    returns="dL/dx (N, in), dL/dW (out, in), dL/db (out,)",
    hints=(
        "One entry at a time: ∂yₙⱼ/∂xₙᵢ = Wⱼᵢ, ∂yₙⱼ/∂Wⱼᵢ = xₙᵢ and ∂yₙⱼ/∂bⱼ = 1. Each gradient sums "
        "these, times g, over every yₙⱼ its variable touches.",
        "dL/dxₙᵢ = Σⱼ gₙⱼ Wⱼᵢ: a matrix product of g (N, out) and W (out, in), which is (N, in), "
        "x's shape, as a gradient must be.",
        "dL/dWⱼᵢ = Σₙ gₙⱼ xₙᵢ sums over the batch: of the products of g and x, only gᵀx is (out, in), "
        "W's shape. b is added to every row, so dL/dbⱼ = Σₙ gₙⱼ.",
        "dL/dx = g @ W, dL/dW = g.T @ x, dL/db = g.sum(0).",
    ),
    mistakes=(
        Mistake("dL/dW transposed",
                "dL/dW = gᵀx is (out, in), the shape of W as torch stores it; xᵀg is (in, out), its "
                "transpose (the seed's own W is (in, out): its xᵀg is the same numbers).",
                lambda a, g: {"W": a.x.T @ g}),
        Mistake("the bias gradient averaged instead of summed",
                "B is added to each of the N rows, so dL/db = Σₙ gₙ: a mean loss has put its 1/N into g "
                "already.",
                lambda a, g: {"b": g.mean(0)}),
        Mistake("dL/dW divided by N",
                "dL/dW = gᵀx: the product sums over the batch, and a mean loss has put its 1/N into g "
                "already.",
                lambda a, g: {"W": g.T @ a.x / a.x.shape[0]}),
    ),
))


# -- cross_entropy ---------------------------------------------------------------------------------


def _cross_entropy_samples(gen):
    return [Sample((randn(gen, 5, 4, scale=2.0), _indices(gen, 4, 5)), name="z (5, 4), t (5,)"),
            Sample((randn(gen, 3, 6, scale=2.0), _indices(gen, 6, 3)), name="z (3, 6), t (3,)")]


def _softmax_minus_onehot(z, t):
    """softmax(z) and onehot(t), (N, C) each."""
    return torch.softmax(z, dim=1), F.one_hot(t, z.shape[1]).to(z.dtype)


def _cross_entropy_mistake(wrong):
    """A mistake written as ``wrong(p, onehot, N, g)``."""
    return lambda a, g: {"z": wrong(*_softmax_minus_onehot(a.z, a.t), a.z.shape[0], g)}


declare(Exercise(
    name="cross_entropy",
    forward="L = mean over the batch of −log softmax(z)_t",
    teaches="dL/dz = (softmax(z) − onehot(t)) / N: the seed's loss gradient, with the mean's 1/N",
    function=solutions.CrossEntropy,
    reference=hf.cross_entropy,
    samples=_cross_entropy_samples,
    derivation="For one row of logits z (C,) and its class t, L = −log softmax(z)_t = log Σₖ e^zₖ − z_t; "
               "The loss is the mean of that over the N rows of z (N, C). g = dL/dL is a number (1 when "
               "you call loss.backward()). Derive dL/dz; t, the classes, gets no gradient.",
    returns="dL/dz (N, C), and None for t",
    hints=(
        "Take one row: L = log Σₖ e^zₖ − z_t (the log laws on the softmax's ratio); differentiate the "
        "two terms apart.",
        "∂/∂zᵢ log Σₖ e^zₖ = e^zᵢ / Σₖ e^zₖ = softmax(z)ᵢ, and ∂(−z_t)/∂zᵢ is −1 at i = t and 0 "
        "elsewhere: −onehot(t).",
        "The mean divides every row's loss by N, and so its gradient; the chain rule multiplies by g "
        "(a number, as L is).",
        "dL/dz = g (softmax(z) − onehot(t)) / N, with hf.softmax(z, dim=1) and "
        "torch.nn.functional.one_hot(t, C); return it and None.",
    ),
    mistakes=(
        Mistake("the one-hot term of softmax − onehot missing",
                "L = log Σₖ e^zₖ − z_t: its second term gives −1 at the target class, so "
                "dL/dz = (softmax(z) − onehot(t)) / N.",
                _cross_entropy_mistake(lambda p, onehot, N, g: g * p / N)),
        Mistake("the mean's 1/N missing",
                "The loss is the mean over the N rows, so each row's gradient carries 1/N: "
                "dL/dz = g (softmax(z) − onehot(t)) / N.",
                _cross_entropy_mistake(lambda p, onehot, N, g: g * (p - onehot))),
        Mistake("the mean's 1/N applied twice",
                "dL/dz = g (softmax(z) − onehot(t)) / N: one 1/N, from the mean.",
                _cross_entropy_mistake(lambda p, onehot, N, g: g * (p - onehot) / N ** 2)),
        Mistake("a sign error",
                "L = log Σₖ e^zₖ − z_t: the softmax comes with +, the one-hot with −.",
                _cross_entropy_mistake(lambda p, onehot, N, g: g * (onehot - p) / N)),
        Mistake("the softmax Jacobian's Σ term missing",
                "Through p = softmax(z), dL/dp = −onehot(t) / p meets ∂pᵢ/∂zⱼ = pᵢ(δᵢⱼ − pⱼ); its "
                "−pᵢpⱼ part gives the +softmax(z) of the answer (softmax(z) − onehot(t)) / N.",
                _cross_entropy_mistake(lambda p, onehot, N, g: -g * onehot / N)),
        Mistake("the upstream gradient g missing",
                "A loss's backward multiplies by g too: it is 1 for loss.backward(), but not when the "
                "loss is scaled or summed with another.",
                _cross_entropy_mistake(lambda p, onehot, N, g: (p - onehot) / N)),
    ),
))


# -- tanh ------------------------------------------------------------------------------------------


declare(Exercise(
    name="tanh",
    forward="y = tanh(z)",
    teaches="tanh' = 1 − tanh²: like σ', a derivative written with the output",
    function=solutions.Tanh,
    reference=hf.tanh,
    samples=_sigmoid_samples,
    derivation="y = tanh(z) = (eᶻ − e⁻ᶻ) / (eᶻ + e⁻ᶻ), elementwise. Given g = dL/dy, derive dL/dz, "
               "and write tanh'(z) with what forward computed.",
    returns="dL/dz, z's shape",
    hints=(
        "Elementwise, as the sigmoid: dL/dzᵢ = gᵢ tanh'(zᵢ).",
        "The quotient rule on u / v with u = eᶻ − e⁻ᶻ and v = eᶻ + e⁻ᶻ, where u' = v and v' = u: "
        "tanh' = (v² − u²) / v².",
        "(v² − u²) / v² = 1 − (u / v)² = 1 − tanh² z, and tanh z is y.",
        "dL/dz = g · (1 − y²).",
    ),
    mistakes=(
        Mistake("the square of tanh² missing",
                "tanh'(z) = 1 − tanh² z = 1 − y²: the output squared.",
                lambda a, g: {"z": g * (1 - torch.tanh(a.z))}),
        Mistake("tanh'(z) written with z where y belongs",
                "tanh'(z) = 1 − tanh² z = 1 − y²: it is the output y that is squared, not z.",
                lambda a, g: {"z": g * (1 - a.z * a.z)}),
        Mistake("the sigmoid's derivative y(1 − y)",
                "That is σ' = σ(1 − σ); for tanh it is 1 − y².",
                lambda a, g: {"z": g * torch.tanh(a.z) * (1 - torch.tanh(a.z))}),
        Mistake("the upstream gradient g missing",
                "dL/dz = g ∘ tanh'(z): the chain rule multiplies the local derivative by the gradient "
                "arriving from above.",
                lambda a, g: {"z": 1 - torch.tanh(a.z) ** 2}),
    ),
))


# -- softmax ---------------------------------------------------------------------------------------


def _softmax_samples(gen):
    return [Sample((randn(gen, 5, 4),), name="z (5, 4)"), Sample((randn(gen, 3, 6),), name="z (3, 6)")]


def _softmax_mistake(wrong):
    """A mistake written as ``wrong(y, g)``."""
    return lambda a, g: {"z": wrong(torch.softmax(a.z, dim=-1), g)}


declare(Exercise(
    name="softmax",
    forward="yᵢ = e^zᵢ / Σⱼ e^zⱼ, along each row",
    teaches="the softmax Jacobian yᵢ(δᵢⱼ − yⱼ): every output of a row depends on every input",
    function=solutions.Softmax,
    reference=lambda z: hf.softmax(z, dim=-1),
    samples=_softmax_samples,
    derivation="y = softmax(z) along the last dimension: yᵢ = e^zᵢ / Σₖ e^zₖ in each row of z (N, C). "
               "Each yᵢ depends on every zⱼ of its row, so dL/dzⱼ = Σᵢ gᵢ ∂yᵢ/∂zⱼ. Derive it, without "
               "building the C × C Jacobian.",
    returns="dL/dz (N, C)",
    hints=(
        "The quotient rule on yᵢ = e^zᵢ / s with s = Σₖ e^zₖ, where ∂s/∂zⱼ = e^zⱼ.",
        "∂yᵢ/∂zⱼ = yᵢ(δᵢⱼ − yⱼ): yᵢ(1 − yᵢ) on the diagonal, −yᵢyⱼ off it.",
        "dL/dzⱼ = Σᵢ gᵢ yᵢ(δᵢⱼ − yⱼ) = yⱼgⱼ − yⱼ Σᵢ gᵢyᵢ: one sum per row.",
        "dL/dz = y ∘ (g − (g ∘ y).sum(-1, keepdim=True)).",
    ),
    mistakes=(
        Mistake("the softmax Jacobian's Σ term missing",
                "∂yᵢ/∂zⱼ = yᵢ(δᵢⱼ − yⱼ): its −yᵢyⱼ part gives −y ∘ Σᵢ gᵢyᵢ, so "
                "dL/dz = y ∘ (g − Σᵢ gᵢyᵢ).",
                _softmax_mistake(lambda y, g: y * g)),
        Mistake("only the diagonal of the softmax Jacobian",
                "yᵢ(1 − yᵢ) is ∂yᵢ/∂zᵢ alone; every yᵢ depends on every zⱼ of its row: "
                "dL/dz = y ∘ (g − Σᵢ gᵢyᵢ).",
                _softmax_mistake(lambda y, g: g * y * (1 - y))),
        Mistake("the Σ term without y",
                "The term is Σᵢ gᵢyᵢ, from ∂yᵢ/∂zⱼ = yᵢ(δᵢⱼ − yⱼ): dL/dz = y ∘ (g − Σᵢ gᵢyᵢ).",
                _softmax_mistake(lambda y, g: y * (g - g.sum(-1, keepdim=True)))),
        Mistake("the Σ taken over the batch instead of each row",
                "The softmax mixes the entries of one row: the sum Σᵢ gᵢyᵢ runs along the last "
                "dimension (.sum(-1, keepdim=True)).",
                _softmax_mistake(lambda y, g: y * (g - (g * y).sum(0, keepdim=True)))),
    ),
))


# -- layer norm and batch norm ---------------------------------------------------------------------


def _normalized(x, dim):
    """x̂ and r over ``dim``, as the forward's statistics (biased variance, ε = 1e-5)."""
    mu = x.mean(dim, keepdim=True)
    r = ((x - mu) ** 2).mean(dim, keepdim=True).add(1e-5).rsqrt()
    return (x - mu) * r, r


def _norm_mistake(dim, part, gamma=True, means=None):
    """A mistake of dL/dx written as ``part(ĝ, x̂, r, mean)``: ĝ = γ ∘ g (g itself when not ``gamma``),
    x̂ and r over ``dim`` (the statistics'), ``mean`` over ``means`` (default: ``dim`` too)."""
    means = dim if means is None else means

    def gradients(a, g):
        x_hat, r = _normalized(a.x, dim)
        return {"x": part(a.gamma * g if gamma else g, x_hat, r, lambda t: t.mean(means, keepdim=True))}
    return gradients


def _norm_parameters_mistake(dim, wrong):
    """A mistake of dL/dγ and dL/dβ written as ``wrong(g, x, x̂)`` → (dγ, dβ), ``dim`` the statistics'."""

    def gradients(a, g):
        found = wrong(g, a.x, _normalized(a.x, dim)[0])
        return {name: t for name, t in zip(("gamma", "beta"), found) if t is not None}
    return gradients


def _norm_mistakes(dim):
    """The classic mistakes of a normalisation whose statistics are taken over ``dim``."""
    return (
        Mistake("the mean terms missing (μ and σ² treated as constants)",
                "μ and σ² are computed from x, so x̂ moves with every x of its set (the M values "
                "normalised together): dL/dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ ∘ x̂)), ĝ = γ ∘ g, not r ĝ alone.",
                _norm_mistake(dim, lambda g_hat, x_hat, r, mean: r * g_hat)),
        Mistake("the term through μ missing",
                "∂μ/∂xⱼ = 1/M gives the term −mean(ĝ): dL/dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ ∘ x̂)).",
                _norm_mistake(dim, lambda g_hat, x_hat, r, mean: r * (g_hat - x_hat * mean(g_hat * x_hat)))),
        Mistake("the term through σ² missing",
                "∂σ²/∂xⱼ = 2 (xⱼ − μ)/M, and ∂r/∂σ² = −r³/2, give the term −x̂ mean(ĝ ∘ x̂): "
                "dL/dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ ∘ x̂)).",
                _norm_mistake(dim, lambda g_hat, x_hat, r, mean: r * (g_hat - mean(g_hat)))),
        Mistake("γ missing from dL/dx",
                "The gradient reaching x̂ is ĝ = dL/dx̂ = γ ∘ g, since y = γ x̂ + β.",
                _norm_mistake(dim, lambda g_hat, x_hat, r, mean: r * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)),
                              gamma=False)),
        Mistake("dL/dγ written with x where x̂ belongs",
                "y = γ x̂ + β, so dL/dγ = Σₙ g ∘ x̂: γ multiplies the normalised x̂.",
                _norm_parameters_mistake(dim, lambda g, x, x_hat: ((g * x).sum(0), None))),
        Mistake("dL/dγ and dL/dβ averaged instead of summed",
                "γ and β act on every row, so their gradients sum over the rows: dL/dγ = Σₙ g ∘ x̂, "
                "dL/dβ = Σₙ g.",
                _norm_parameters_mistake(dim, lambda g, x, x_hat: ((g * x_hat).mean(0), g.mean(0)))),
    )


def _layer_norm_samples(gen):
    return [Sample((randn(gen, 4, 5), randn(gen, 5), randn(gen, 5)), name="x (4, 5)"),
            Sample((randn(gen, 3, 6, scale=2.0), randn(gen, 6), randn(gen, 6)), name="x (3, 6)")]


declare(Exercise(
    name="layer_norm",
    forward="y = γ x̂ + β, x̂ = (x − μ) / √(σ² + ε) over each row",
    teaches="μ and σ² depend on x too: the three terms of a normalisation's gradient",
    function=solutions.LayerNorm,
    reference=lambda x, gamma, beta: hf.layer_norm(x, x.shape[-1:], gamma, beta),
    samples=_layer_norm_samples,
    derivation="In each row of x (N, D): μ = mean x, σ² = mean (x − μ)², r = 1/√(σ² + ε), x̂ = (x − μ) r, "
               "and y = γ ∘ x̂ + β with γ, β (D,). Given g = dL/dy, derive dL/dx, dL/dγ and dL/dβ. "
               "LayerNorm.normalize(x) gives x̂ and r again.",
    returns="dL/dx (N, D), dL/dγ (D,), dL/dβ (D,)",
    hints=(
        "γ and β first: y = γ ∘ x̂ + β in every row, so dL/dβ = Σₙ g and dL/dγ = Σₙ g ∘ x̂, summed over "
        "the rows.",
        "Write ĝ = dL/dx̂ = γ ∘ g. x̂ depends on x directly and through μ and σ²: ∂μ/∂xⱼ = 1/D, "
        "∂σ²/∂xⱼ = 2 (xⱼ − μ)/D and ∂r/∂σ² = −r³/2.",
        "So ∂x̂ᵢ/∂xⱼ = r (δᵢⱼ − 1/D − x̂ᵢx̂ⱼ/D): the direct term, the term through μ, the term through σ².",
        "dL/dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ ∘ x̂)), each mean over the row (.mean(-1, keepdim=True)).",
    ),
    mistakes=_norm_mistakes(-1),
))


def _batch_norm_samples(gen):
    return [Sample((randn(gen, 6, 3), randn(gen, 3), randn(gen, 3)), name="x (6, 3)"),
            Sample((randn(gen, 4, 5, scale=2.0), randn(gen, 5), randn(gen, 5)), name="x (4, 5)")]


declare(Exercise(
    name="batch_norm",
    forward="y = γ x̂ + β, x̂ = (x − μ) / √(σ² + ε) over the batch",
    teaches="the same three terms over the batch: each feature's statistics mix every sample",
    function=solutions.BatchNorm,
    reference=lambda x, gamma, beta: hf.batch_norm(x, None, None, gamma, beta, training=True),
    samples=_batch_norm_samples,
    derivation="In training, for each feature (a column of x (N, D)) over the N samples: μ = mean x, "
               "σ² = mean (x − μ)², r = 1/√(σ² + ε), x̂ = (x − μ) r, and y = γ ∘ x̂ + β with γ, β (D,). "
               "Given g = dL/dy, derive dL/dx, dL/dγ and dL/dβ. BatchNorm.normalize(x) gives x̂ and r "
               "again.",
    returns="dL/dx (N, D), dL/dγ (D,), dL/dβ (D,)",
    hints=(
        "γ and β first: dL/dβ = Σₙ g and dL/dγ = Σₙ g ∘ x̂, summed over the batch.",
        "Each column is one set of N values: x̂ depends on x directly and through that column's μ and "
        "σ² (∂μ/∂xₙ = 1/N, ∂σ²/∂xₙ = 2 (xₙ − μ)/N, ∂r/∂σ² = −r³/2).",
        "As in layer norm, dL/dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ ∘ x̂)) with ĝ = γ ∘ g, the means now over "
        "the batch (.mean(0)).",
        "γ is one number per column, so it leaves the means: dL/dx = γ r (g − mean(g) − x̂ mean(g ∘ x̂)).",
    ),
    mistakes=_norm_mistakes(0) + (
        Mistake("the statistics' terms taken over each row (layer norm's) instead of the batch",
                "Batch norm normalises each feature over the batch: the means of its gradient run over "
                "dim 0, as μ and σ² do.",
                _norm_mistake(0, lambda g_hat, x_hat, r, mean: r * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)),
                              means=-1)),
    ),
))


# -- embedding -------------------------------------------------------------------------------------


def _embedding_samples(gen):
    return [Sample((torch.tensor([1, 3, 1, 0, 3, 1]), randn(gen, 5, 3)), name="x (6,) with repeats, W (5, 3)"),
            Sample((torch.tensor([[0, 2, 2], [3, 2, 0]]), randn(gen, 4, 2)), name="x (2, 3) with repeats, W (4, 2)")]


def _embedding_overwritten(a, g):
    """Row v of dL/dW holds one of the gₙ with xₙ = v: the last, or the first, written."""
    D = g.shape[-1]
    rows, flat = a.x.reshape(-1).tolist(), g.reshape(-1, D)
    last, first = torch.zeros_like(a.W), torch.zeros_like(a.W)
    for n, v in enumerate(rows):
        last[v] = flat[n]
    for n, v in reversed(list(enumerate(rows))):
        first[v] = flat[n]
    return {"W": (last, first)}


def _embedding_averaged(a, g):
    D = g.shape[-1]
    ids = a.x.reshape(-1)
    summed = torch.zeros_like(a.W).index_add(0, ids, g.reshape(-1, D))
    counts = torch.bincount(ids, minlength=a.W.shape[0]).clamp(min=1).to(g.dtype)
    return {"W": summed / counts[:, None]}


declare(Exercise(
    name="embedding",
    forward="y = W[x]",
    teaches="a lookup's gradient is a scatter-add: a row used twice gets both gradients",
    function=solutions.Embedding,
    reference=hf.embedding,
    samples=_embedding_samples,
    derivation="y = W[x]: for each index xₙ of x (integers, any shape), yₙ = W_{xₙ}, a row of the table "
               "W (V, D). Given g = dL/dy (x's shape, D), derive dL/dW; x gets no gradient.",
    returns="None for x, and dL/dW (V, D)",
    hints=(
        "∂yₙ/∂W_v is the identity where xₙ = v and zero elsewhere: row v of dL/dW collects gₙ from "
        "every n with xₙ = v, and a row no index names gets zeros.",
        "An index may repeat: its row gets the sum of those gₙ (the total derivative), not one of them; "
        "dW[x] = g keeps one and drops the others.",
        "Start from zeros (V, D) and add each gₙ to row xₙ: .index_add(0, x.reshape(-1), g.reshape(-1, D)).",
    ),
    mistakes=(
        Mistake("repeated indices overwritten instead of summed",
                "A row of W used k times receives the sum of its k gradients: add them "
                "(index_add(0, x, g)) rather than assign (dW[x] = g).",
                _embedding_overwritten),
        Mistake("repeated indices averaged instead of summed",
                "A row of W used k times receives the sum of its k gradients, not their mean.",
                _embedding_averaged),
    ),
))


# -- conv2d ----------------------------------------------------------------------------------------


def _conv2d_samples(gen):
    return [Sample((randn(gen, 2, 2, 4, 5), randn(gen, 3, 2, 3, 3), randn(gen, 3)), name="x (2, 2, 4, 5), W (3, 2, 3, 3)"),
            Sample((randn(gen, 1, 3, 3, 3), randn(gen, 2, 3, 3, 3), randn(gen, 2)), name="x (1, 3, 3, 3), W (2, 3, 3, 3)")]


def _conv2d_grads(a, g):
    """The right (dL/dx, dL/dW, dL/db), from torch's autograd."""
    return _vjp(lambda x, W, b: F.conv2d(x, W, b, padding=1), (a.x, a.W, a.b), g)


def _conv2d_unflipped(a, g):
    """dL/dx with W where W flipped belongs: g correlated with W, not with W rotated by 180°."""
    return {"x": _vjp(lambda x: F.conv2d(x, a.W.flip(2, 3), padding=1), (a.x,), g)[0]}


def _conv2d_padded(a, g):
    """dL/dx_pad, the padding not cut off."""
    return {"x": _vjp(lambda x_pad: F.conv2d(x_pad, a.W), (F.pad(a.x, (1, 1, 1, 1)),), g)[0]}


declare(Exercise(
    name="conv2d",
    forward="y = W ⋆ x + b (3 × 3, stride 1, padding 1)",
    teaches="dL/dW correlates x with g; dL/dx convolves g with the kernel flipped",
    function=solutions.Conv2d,
    reference=lambda x, W, b: hf.conv2d(x, W, b, padding=1),
    samples=_conv2d_samples,
    derivation="y[n, o, h, w] = b[o] + Σ_{c, i, j} W[o, c, i, j] x_pad[n, c, h + i, w + j], x_pad being x "
               "(N, C, H, W) with a border of one zero; W (out, C, 3, 3), b (out,), y (N, out, H, W). "
               "Given g = dL/dy, derive dL/dx, dL/dW and dL/db.",
    returns="dL/dx (N, C, H, W), dL/dW (out, C, 3, 3), dL/db (out,)",
    hints=(
        "b[o] is added at every position of channel o: dL/db[o] = Σ_{n, h, w} g[n, o, h, w].",
        "dL/dW[o, c, i, j] = Σ_{n, h, w} g[n, o, h, w] x_pad[n, c, h + i, w + j]: for each offset (i, j), "
        "g against x_pad's window shifted by (i, j). x_pad.unfold(2, 3, 1).unfold(3, 3, 1) gives those "
        "windows, (N, C, H, W, 3, 3), and torch.einsum sums the product.",
        "x_pad[n, c, p, q] feeds y[n, o, p − i, q − j] through W[o, c, i, j] for each (o, i, j): "
        "dL/dx_pad[p, q] = Σ_{o, i, j} g[n, o, p − i, q − j] W[o, c, i, j], g read backwards across "
        "the window: g correlated with the kernel flipped (W.flip(2, 3)).",
        "Pad g by k − 1 − p = 1, take its 3 × 3 windows as for x, and einsum them with W.flip(2, 3) "
        "over (o, i, j): that is dL/dx at x's H × W pixels, the padding left out.",
    ),
    mistakes=(
        Mistake("the kernel not flipped in dL/dx",
                "Forward correlates x with W, so each pixel of x meets g through the kernel read "
                "backwards: dL/dx is g correlated with W rotated by 180° (W.flip(2, 3)).",
                _conv2d_unflipped),
        Mistake("the kernel flipped in dL/dW",
                "dL/dW[o, c, i, j] = Σ g[n, o, h, w] x_pad[n, c, h + i, w + j]: the offset (i, j) of x "
                "is the offset of W, nothing flipped; only dL/dx reads the kernel backwards.",
                lambda a, g: {"W": _conv2d_grads(a, g)[1].flip(2, 3)}),
        Mistake("dL/dW with its in and out channels swapped",
                "W is (out, C, k, k): dL/dW[o, c] pairs g's channel o with x's channel c, in that order.",
                lambda a, g: {"W": _conv2d_grads(a, g)[1].transpose(0, 1)}),
        Mistake("the bias gradient averaged instead of summed",
                "b[o] is added at every position of every image: dL/db = Σ_{n, h, w} g.",
                lambda a, g: {"b": g.mean((0, 2, 3))}),
        Mistake("dL/dx still padded",
                "The gradient of x_pad is (N, C, H + 2, W + 2); x is its inside: cut one pixel off "
                "each side ([:, :, 1:-1, 1:-1]).",
                _conv2d_padded),
    ),
))


# -- max_pool2d ------------------------------------------------------------------------------------


def _max_pool2d_samples(gen):
    overlapping = randn(gen, 1, 2, 5, 5, requires_grad=False)
    overlapping[0, 0, 2, 2] = 4.0              # the maximum of all four overlapping windows of channel 0
    return [Sample((randn(gen, 2, 2, 4, 4), 2, 2), name="x (2, 2, 4, 4), 2 × 2 windows, stride 2"),
            Sample((overlapping.requires_grad_(), 3, 2), name="x (1, 2, 5, 5), 3 × 3 windows, stride 2")]


def _max_pool2d_overwritten(a, g):
    """g at each window's maximum, written rather than added: where windows share their maximum,
    one window's g alone (the last written, or the first)."""
    _, i = F.max_pool2d(a.x, a.kernel_size, a.stride, return_indices=True)
    i, flat = i.flatten(-2), g.flatten(-2)
    last, first = torch.zeros_like(a.x).flatten(-2), torch.zeros_like(a.x).flatten(-2)
    for n, c in torch.cartesian_prod(torch.arange(g.shape[0]), torch.arange(g.shape[1])).tolist():
        for j in range(i.shape[-1]):
            last[n, c, i[n, c, j]] = flat[n, c, j]
        for j in reversed(range(i.shape[-1])):
            first[n, c, i[n, c, j]] = flat[n, c, j]
    return {"x": (last.view_as(a.x), first.view_as(a.x))}


declare(Exercise(
    name="max_pool2d",
    forward="y = the largest x of each k × k window",
    teaches="a max's gradient goes to the argmax alone: a router, summed where windows overlap",
    function=solutions.MaxPool2d,
    reference=hf.max_pool2d,
    samples=_max_pool2d_samples,
    derivation="y[n, c, p, q] is the largest x[n, c] in the kernel_size × kernel_size window starting at "
               "(p · stride, q · stride); setup_context keeps i, where each maximum was: its flat index "
               "h · W + w in x's plane. Given g = dL/dy, derive dL/dx (kernel_size and stride get None).",
    returns="dL/dx (N, C, H, W), None, None",
    hints=(
        "In a window, y equals one x, the largest: ∂y/∂x is 1 there and 0 at the others, so g[p, q] "
        "goes to that one pixel, i[p, q], and the others get nothing from this window.",
        "Work on each plane flattened, (N, C, H · W): the place of g[p, q] in it is i[p, q].",
        "With a stride smaller than the window, windows overlap and one pixel can be the maximum of "
        "two: it receives both gradients, summed (scatter_add, not scatter, which keeps one).",
        "g.new_zeros(N, C, H * W).scatter_add(-1, i.flatten(-2), g.flatten(-2)), then "
        ".unflatten(-1, (H, W)).",
    ),
    mistakes=(
        Mistake("g spread over the whole window (average pooling's gradient)",
                "Only the maximum reaches y; the window's other pixels do not move it, so they get 0 "
                "and the maximum gets all of g.",
                lambda a, g: {"x": _vjp(lambda x: F.avg_pool2d(x, a.kernel_size, a.stride), (a.x,), g)[0]}),
        Mistake("g sent to every pixel of the window",
                "Only the maximum reaches y: ∂y/∂x is 1 at the argmax and 0 elsewhere.",
                lambda a, g: {"x": a.kernel_size ** 2 * _vjp(lambda x: F.avg_pool2d(x, a.kernel_size, a.stride),
                                                             (a.x,), g)[0]}),
        Mistake("overlapping windows overwritten instead of summed",
                "A pixel that is the maximum of two windows receives both windows' g: add them "
                "(scatter_add), do not write one over the other (scatter, or dL/dx[i] = g).",
                _max_pool2d_overwritten),
        Mistake("the upstream gradient g missing",
                "dL/dx at the maximum is g of that window, not 1.",
                lambda a, g: {"x": _vjp(lambda x: F.max_pool2d(x, a.kernel_size, a.stride), (a.x,),
                                        torch.ones_like(g))[0]}),
    ),
))


# -- attention -------------------------------------------------------------------------------------


def _attention_samples(gen):
    return [Sample((randn(gen, 2, 3, 4), randn(gen, 2, 5, 4), randn(gen, 2, 5, 2)), name="q (2, 3, 4), k (2, 5, 4)"),
            Sample((randn(gen, 1, 4, 3), randn(gen, 1, 2, 3), randn(gen, 1, 2, 3)), name="q (1, 4, 3), k (1, 2, 3)")]


def _attention_grads(a, g, *, scale_back=1.0, softmax="full"):
    """(dL/dQ, dL/dK) with the scale 1/√E put back ``scale_back`` times and the softmax's backward
    ``softmax``: "full", "no_sum" (its Σ term missing) or "diagonal" (its Jacobian's diagonal only)."""
    scale = 1 / math.sqrt(a.q.shape[-1])
    P = torch.softmax(a.q @ a.k.mT * scale, dim=-1)
    dP = g @ a.v.mT
    dS = {"full": P * (dP - (dP * P).sum(-1, keepdim=True)), "no_sum": P * dP, "diagonal": dP * P * (1 - P)}[softmax]
    back = scale ** scale_back
    return {"q": dS @ a.k * back, "k": dS.mT @ a.q * back}


declare(Exercise(
    name="attention",
    forward="O = softmax(Q Kᵀ / √E) V",
    teaches="a softmax between two products: dV, dP, the softmax's Σ term, and the scale on the way back",
    function=solutions.Attention,
    reference=hf.scaled_dot_product_attention,
    samples=_attention_samples,
    derivation="S = Q Kᵀ / √E (B, L, S), P = softmax(S) along each row, O = P V (B, L, Ev), with Q (B, L, E), "
               "K (B, S, E), V (B, S, Ev). Given g = dL/dO, derive dL/dQ, dL/dK and dL/dV.",
    returns="dL/dQ (B, L, E), dL/dK (B, S, E), dL/dV (B, S, Ev)",
    hints=(
        "backward needs P: compute it again from q and k (hf.softmax(q @ k.transpose(-2, -1) / √E, "
        "dim=-1)). O = P V is a product, as in linear: dL/dV = Pᵀ g and dL/dP = g Vᵀ.",
        "Through the softmax, row by row (the softmax exercise): dL/dS = P ∘ (dL/dP − Σⱼ (dL/dP)ⱼ Pⱼ).",
        "S = Q Kᵀ / √E is a product too: dL/dQ = dL/dS K / √E and dL/dK = (dL/dS)ᵀ Q / √E; the scale "
        "comes back with the chain rule.",
        "grad_v = P.mT @ g; grad_P = g @ v.mT; grad_S = P * (grad_P - (grad_P * P).sum(-1, keepdim=True)); "
        "grad_q = grad_S @ k / √E; grad_k = grad_S.mT @ q / √E.",
    ),
    mistakes=(
        Mistake("attention's scale 1/√E missing",
                "S = Q Kᵀ / √E: the chain rule passes the 1/√E back, so dL/dQ = dL/dS K / √E and "
                "dL/dK = (dL/dS)ᵀ Q / √E.",
                lambda a, g: _attention_grads(a, g, scale_back=0)),
        Mistake("attention's scale applied twice",
                "S = Q Kᵀ / √E puts one 1/√E on dL/dQ and dL/dK (the P you recompute has it already).",
                lambda a, g: _attention_grads(a, g, scale_back=2)),
        Mistake("the softmax Jacobian's Σ term missing",
                "∂Pᵢ/∂Sⱼ = Pᵢ(δᵢⱼ − Pⱼ): dL/dS = P ∘ (dL/dP − Σⱼ (dL/dP)ⱼ Pⱼ), not P ∘ dL/dP.",
                lambda a, g: _attention_grads(a, g, softmax="no_sum")),
        Mistake("only the diagonal of the softmax Jacobian",
                "Each Pᵢ depends on every Sⱼ of its row: dL/dS = P ∘ (dL/dP − Σⱼ (dL/dP)ⱼ Pⱼ).",
                lambda a, g: _attention_grads(a, g, softmax="diagonal")),
    ),
))


# -- lstm_cell -------------------------------------------------------------------------------------


def _lstm_cell_samples(gen):
    return [Sample((randn(gen, 3, 4), randn(gen, 3, 2), randn(gen, 3, 2), randn(gen, 8, 4), randn(gen, 8, 2),
                    randn(gen, 8)), name="x (3, 4), h (3, 2)"),
            Sample((randn(gen, 2, 2), randn(gen, 2, 3), randn(gen, 2, 3), randn(gen, 12, 2), randn(gen, 12, 3),
                    randn(gen, 12)), name="x (2, 2), h (2, 3)")]


def _lstm_cell_grads(a, g_h, g_c, *, through_h=True, tanh_of_c=True, forget_with="c", candidate="tanh",
                     keep_f=True):
    """Every gradient of the cell, with the knobs of its mistakes: ``through_h`` False drops the path
    c' → h' from dL/dc'; ``tanh_of_c`` False writes tanh'(c') as 1 − c'²; ``forget_with`` "c_new"
    puts c' where c belongs in dL/df; ``candidate`` "sigmoid" differentiates u as a sigmoid;
    ``keep_f`` False forgets f in dL/dc."""
    a_i, a_f, a_u, a_o = (a.x @ a.W_ih.T + a.h @ a.W_hh.T + a.b).chunk(4, dim=1)
    i, f, u, o = a_i.sigmoid(), a_f.sigmoid(), a_u.tanh(), a_o.sigmoid()
    c_new = f * a.c + i * u
    tanh_c = c_new.tanh()
    d_c_new = g_c + (g_h * o * (1 - (tanh_c if tanh_of_c else c_new) ** 2) if through_h else 0)
    d_u = d_c_new * i * ((1 - u * u) if candidate == "tanh" else u * (1 - u))
    d_a = torch.cat([d_c_new * u * i * (1 - i), d_c_new * (a.c if forget_with == "c" else c_new) * f * (1 - f),
                     d_u, g_h * tanh_c * o * (1 - o)], dim=1)
    return {"x": d_a @ a.W_ih, "h": d_a @ a.W_hh, "c": d_c_new * f if keep_f else d_c_new,
            "W_ih": d_a.T @ a.x, "W_hh": d_a.T @ a.h, "b": d_a.sum(0)}


def _lstm_cell_reference(x, h, c, W_ih, W_hh, b):
    """The cell's forward run by handgrad's rules, op by op (``handgrad.hand_derived``)."""
    with handgrad.hand_derived():
        return solutions.LSTMCell.forward(x, h, c, W_ih, W_hh, b)


declare(Exercise(
    name="lstm_cell",
    forward="h', c' = one step of an LSTM cell",
    teaches="two outputs: c' reaches the loss directly and through h'; four gates share one matrix",
    function=solutions.LSTMCell,
    reference=_lstm_cell_reference,
    samples=_lstm_cell_samples,
    derivation="a = x W_ihᵀ + h W_hhᵀ + b (N, 4H) = [aᵢ, a_f, a_u, aₒ]; i = σ(aᵢ), f = σ(a_f), u = tanh(a_u), "
               "o = σ(aₒ); c' = f ∘ c + i ∘ u; h' = o ∘ tanh(c'). backward receives g_h = dL/dh' and "
               "g_c = dL/dc'. Derive the gradients of x, h, c, W_ih, W_hh and b. LSTMCell.gates gives "
               "i, f, u, o again.",
    returns="dL/dx (N, I), dL/dh (N, H), dL/dc (N, H), dL/dW_ih (4H, I), dL/dW_hh (4H, H), dL/db (4H,)",
    hints=(
        "c' reaches L twice: as an output (g_c) and through h' = o tanh(c'); so "
        "dL/dc' = g_c + g_h ∘ o ∘ (1 − tanh²(c')).",
        "From c' = f c + i u: dL/di = dL/dc' ∘ u, dL/df = dL/dc' ∘ c, dL/du = dL/dc' ∘ i and "
        "dL/dc = dL/dc' ∘ f; from h': dL/do = g_h ∘ tanh(c').",
        "Through the activations: σ' = σ(1 − σ) for i, f and o, tanh' = 1 − u² for u; stack the four "
        "into dL/da (N, 4H) in the order i, f, u, o (torch.cat(..., dim=1)).",
        "a is linear in x, h and b, as the linear exercise: dL/dx = dL/da W_ih, dL/dh = dL/da W_hh, "
        "dL/dW_ih = (dL/da)ᵀ x, dL/dW_hh = (dL/da)ᵀ h, dL/db = Σₙ dL/da.",
    ),
    mistakes=(
        Mistake("the path from c' through h' missing",
                "c' is an output and also feeds h' = o tanh(c'): dL/dc' = g_c + g_h ∘ o ∘ (1 − tanh²(c')).",
                lambda a, g_h, g_c: _lstm_cell_grads(a, g_h, g_c, through_h=False)),
        Mistake("tanh'(c') written with c' where tanh(c') belongs",
                "tanh' = 1 − tanh²: the derivative of tanh(c') is 1 − tanh²(c'), not 1 − c'².",
                lambda a, g_h, g_c: _lstm_cell_grads(a, g_h, g_c, tanh_of_c=False)),
        Mistake("the forget gate's gradient with c' where c belongs",
                "c' = f ∘ c + i ∘ u: f multiplies the old cell state c, so dL/df = dL/dc' ∘ c.",
                lambda a, g_h, g_c: _lstm_cell_grads(a, g_h, g_c, forget_with="c_new")),
        Mistake("the candidate u differentiated as a sigmoid",
                "u = tanh(a_u): its derivative is 1 − u², not u(1 − u).",
                lambda a, g_h, g_c: _lstm_cell_grads(a, g_h, g_c, candidate="sigmoid")),
        Mistake("f missing from dL/dc",
                "c' = f ∘ c + i ∘ u, so dL/dc = dL/dc' ∘ f.",
                lambda a, g_h, g_c: _lstm_cell_grads(a, g_h, g_c, keep_f=False)),
    ),
))


# -- seed_network ----------------------------------------------------------------------------------


def _seed_network_samples(gen):
    def network(n, d, h1, h2, c):
        return (randn(gen, n, d, requires_grad=False), _indices(gen, c, n), randn(gen, h1, d), randn(gen, h1),
                randn(gen, h2, h1), randn(gen, h2), randn(gen, c, h2), randn(gen, c))
    return [Sample(network(4, 6, 5, 4, 3), name="x (4, 6), layers 6-5-4-3"),
            Sample(network(3, 4, 3, 5, 6), name="x (3, 4), layers 4-3-5-6")]


def _seed_network_grads(a, g, *, onehot=True, mean=True, prime="output", bias="sum"):
    """Every gradient of the network, with the knobs of its mistakes: ``onehot`` False drops −onehot(t)
    from dL/dl³, ``mean`` False its 1/N; ``prime`` the sigmoid's derivative written from "output"
    (l(1 − l), right), "pre_activation" (l̂(1 − l̂)), "sigma_of_output" (σ(l)(1 − σ(l))) or "none"
    (no σ'); ``bias`` "sum" or "mean" over the batch."""
    N = a.x.shape[0]
    z1 = a.x @ a.W1.T + a.b1
    l1 = z1.sigmoid()
    z2 = l1 @ a.W2.T + a.b2
    l2 = z2.sigmoid()
    l3 = l2 @ a.W3.T + a.b3
    derivative = {"output": lambda z, l: l * (1 - l), "pre_activation": lambda z, l: z * (1 - z),
                  "sigma_of_output": lambda z, l: l.sigmoid() * (1 - l.sigmoid()),
                  "none": lambda z, l: torch.ones_like(l)}[prime]
    d3 = g * (torch.softmax(l3, dim=1) - (F.one_hot(a.t, l3.shape[1]).to(l3.dtype) if onehot else 0))
    d3 = d3 / N if mean else d3
    d2 = (d3 @ a.W3) * derivative(z2, l2)
    d1 = (d2 @ a.W2) * derivative(z1, l1)
    reduce = (lambda d: d.sum(0)) if bias == "sum" else (lambda d: d.mean(0))
    return {"W1": d1.T @ a.x, "b1": reduce(d1), "W2": d2.T @ l1, "b2": reduce(d2), "W3": d3.T @ l2, "b3": reduce(d3)}


declare(Exercise(
    name="seed_network",
    forward="L = −log softmax(l³)_t averaged, l³ from two sigmoid layers and a linear one",
    teaches="the seed's whole network by hand, backprop-ninja style: every gradient from the loss down",
    function=solutions.SeedNetwork,
    reference=lambda x, t, *params: hf.linear_chain_cross_entropy(x, t, ("sigmoid", "sigmoid", None), *params),
    samples=_seed_network_samples,
    derivation="l¹ = σ(x W¹ᵀ + b¹), l² = σ(l¹ W²ᵀ + b²), l³ = l² W³ᵀ + b³ (the logits), and L = the mean over "
               "the N rows of −log softmax(l³)_t, as the seed's better network. g = dL/dL is a number. Derive "
               "dL/dWⁱ and dL/dbⁱ of the three layers; x and t get None. SeedNetwork.layers gives l¹, l², "
               "l³ again.",
    returns="None, None, dL/dW¹, dL/db¹, dL/dW², dL/db², dL/dW³, dL/db³ (each its tensor's shape)",
    hints=(
        "Start at the top, as the seed's update_weights does: dL/dl³ = g (softmax(l³) − onehot(t)) / N "
        "(the cross_entropy exercise).",
        "Each layer is the linear exercise: from the gradient at its pre-activation, dL/dl̂ⁱ, "
        "dL/dWⁱ = (dL/dl̂ⁱ)ᵀ lⁱ⁻¹ (l⁰ = x), dL/dbⁱ = Σₙ dL/dl̂ⁱ, and the layer below gets dL/dl̂ⁱ Wⁱ.",
        "Through each sigmoid (the sigmoid exercise): dL/dl̂ⁱ = dL/dlⁱ ∘ lⁱ(1 − lⁱ); the logits have no "
        "sigmoid, so dL/dl̂³ = dL/dl³.",
        "d3 = g (softmax(l³) − onehot) / N; d2 = (d3 @ W3) * l2 * (1 − l2); d1 = (d2 @ W2) * l1 * (1 − l1); "
        "dWⁱ = dᵢ.T @ lⁱ⁻¹, dbⁱ = dᵢ.sum(0).",
    ),
    mistakes=(
        Mistake("the one-hot term of softmax − onehot missing",
                "dL/dl³ = g (softmax(l³) − onehot(t)) / N: the −onehot(t) comes from the −l³_t of the "
                "loss.",
                lambda a, g: _seed_network_grads(a, g, onehot=False)),
        Mistake("the mean's 1/N missing",
                "L is the mean over the N rows: dL/dl³ = g (softmax(l³) − onehot(t)) / N, and every "
                "gradient below inherits the 1/N.",
                lambda a, g: _seed_network_grads(a, g, mean=False)),
        Mistake("σ'(l̂) written with l̂ where l belongs",
                "σ'(l̂) = σ(l̂)(1 − σ(l̂)) = l(1 − l): the σ(l̂) in it is the layer's output l.",
                lambda a, g: _seed_network_grads(a, g, prime="pre_activation")),
        Mistake("σ' evaluated at the output l",
                "σ(l)(1 − σ(l)) applies σ twice (the seed's dphi_dvec takes l̂, not l): σ'(l̂) = l(1 − l).",
                lambda a, g: _seed_network_grads(a, g, prime="sigma_of_output")),
        Mistake("σ' missing between the layers",
                "lⁱ = σ(l̂ⁱ): going down through a sigmoid multiplies by σ'(l̂ⁱ) = lⁱ(1 − lⁱ).",
                lambda a, g: _seed_network_grads(a, g, prime="none")),
        Mistake("the bias gradients averaged instead of summed",
                "Each bⁱ is added to every row, so dL/dbⁱ = Σₙ dL/dl̂ⁱ: the mean's 1/N is in dL/dl³ "
                "already.",
                lambda a, g: _seed_network_grads(a, g, bias="mean")),
    ),
))
