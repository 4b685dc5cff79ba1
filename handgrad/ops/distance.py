"""Distances, by hand: cdist between two sets of vectors (a rule), pairwise_distance and
cosine_similarity (compositions of the algebra's rules: a subtraction and a norm; two normalisations,
a product and a sum).

Notation: x1 (*, P, M) and x2 (*, R, M) hold P and R vectors of M entries; y = cdist(x1, x2) (*, P, R),
y_pr = ‖x1_p − x2_r‖_p = (Σ_m |d_prm|ᵖ)^(1/p) with d_prm = x1_pm − x2_rm; g = dL/dy.
"""

import torch

from handgrad.ops._checks import FLOAT32, LOW_PRECISION, autocast, check_tensor
from handgrad.ops._function import HandFunction, apply, sum_to
from handgrad.ops._registry import Derivative, Op, register
from handgrad.ops.elementwise import NUMBER, Add, Clamp, Div, Mul, Sub, add, clamp, div, mul, sub
from handgrad.ops.reductions import Sum, VectorNorm, norm, sum

Tensor = torch.Tensor


class Cdist(HandFunction):
    """y_pr = ‖x1_p − x2_r‖_p for every pair (p, r) of rows, batch dimensions * broadcast.

    Each y_pr is the p-norm of one difference, so ∂y_pr/∂x1_pm = sign(d) |d|ᵖ⁻¹ / y_prᵖ⁻¹ (the norm's
    rule) and ∂y_pr/∂x2_rm = −∂y_pr/∂x1_pm. Summing over what each row touches:

        dL/dx1_pm = Σ_r g_pr sign(d_prm) |d_prm|ᵖ⁻¹ / y_prᵖ⁻¹,    dL/dx2_rm = −Σ_p (the same term).

    For p = 2 the term is g_pr d_prm / y_pr, and the sums are matrix products: with G = g / y,
    dL/dx1 = x1 ∘ rowsum(G) − G x2, dL/dx2 = x2 ∘ colsum(G) − Gᵀ x1, no (P, R, M) tensor. Where
    y_pr = 0 the pair passes no gradient (torch's choice of subgradient); p = ∞ sends g to the
    coordinates where |d| = y, each whole, as torch's does; p = 0 counts, flat.
    """

    @staticmethod
    def forward(x1, x2, p, compute_mode):
        return torch.cdist(x1, x2, p, compute_mode)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x1, x2, ctx.p, _ = inputs
        ctx.save_for_backward(x1, x2, output)

    @staticmethod
    def backward(ctx, g):
        x1, x2, y = ctx.saved_tensors
        grad_x1, grad_x2 = cdist_backward(g, x1, x2, y, ctx.p)
        return (sum_to(grad_x1, x1.shape) if ctx.needs_input_grad[0] else None,
                sum_to(grad_x2, x2.shape) if ctx.needs_input_grad[1] else None, None, None)


def cdist_backward(g, x1, x2, y, p):
    """(dL/dx1, dL/dx2), each of the broadcast batch shape (summed back by the caller)."""
    if p == 0:
        return torch.zeros_like(x1), torch.zeros_like(x2)
    if p == 2:
        G = torch.where(y == 0, 0.0, g / y)                                       # (*, P, R)
        grad_x1 = x1 * G.sum(-1, keepdim=True) - G @ x2                           # x1 ∘ rowsum(G) − G x2
        grad_x2 = x2 * G.sum(-2).unsqueeze(-1) - G.mT @ x1                        # x2 ∘ colsum(G) − Gᵀ x1
        return grad_x1, grad_x2
    d = x1.unsqueeze(-2) - x2.unsqueeze(-3)                                       # (*, P, R, M)
    y_ = y.unsqueeze(-1)
    if p == float("inf"):
        term = d.sgn() * (d.abs() == y_)                                          # sign(d) 1[|d| = y]
    elif p == 1:
        term = d.sgn()
    else:
        term = torch.where(y_ == 0, 0.0, d.sgn() * d.abs().pow(p - 1) / y_.pow(p - 1))
    term = term * g.unsqueeze(-1)                                                 # g_pr ∂y_pr/∂x1_pm
    return term.sum(-2), -term.sum(-3)                                            # Σ_r, and −Σ_p


# -- the faces, as torch's ----------------------------------------------------------------------------

_COMPUTE_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist")


def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """y = the p-norm distance between each row of x1 and each row of x2, as ``torch.cdist``."""
    check_tensor("cdist", "x1", x1)
    check_tensor("cdist", "x2", x2)
    if x1.dim() < 2 or x2.dim() < 2:
        raise RuntimeError(f"cdist: x1 and x2 must be at least 2-D, got shapes {tuple(x1.shape)} and {tuple(x2.shape)}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"cdist: x1 and x2 must have the same number of columns, got {x1.shape[-1]} and "
                           f"{x2.shape[-1]}")
    if not isinstance(p, NUMBER) or isinstance(p, bool) or p < 0:
        raise RuntimeError(f"cdist: p must be a number ≥ 0, got {p!r}")
    if compute_mode not in _COMPUTE_MODES:
        raise ValueError(f"cdist: {compute_mode!r} is not a valid value for compute_mode; one of {_COMPUTE_MODES}")
    x1, x2 = autocast(FLOAT32, x1, x2)
    dtype = x1.dtype
    if dtype in LOW_PRECISION and x1.device.type == "cpu":      # torch has no CPU half kernel: computed in float32
        return apply(Cdist, x1.float(), x2.float(), float(p), compute_mode).to(dtype)
    return apply(Cdist, x1, x2, float(p), compute_mode)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """y = ‖x1 − x2 + ε‖_p along the last dimension, as ``torch.nn.functional.pairwise_distance``: the
    subtraction's, the addition's and the norm's rules."""
    check_tensor("pairwise_distance", "x1", x1)
    check_tensor("pairwise_distance", "x2", x2)
    return norm(add(sub(x1, x2), eps), p, max(x1.dim(), x2.dim()) - 1, keepdim)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """y = Σ (x1 / max(‖x1‖, ε)) ∘ (x2 / max(‖x2‖, ε)) along ``dim``, as
    ``torch.nn.functional.cosine_similarity``: each normalised first, then the product summed (torch's
    order). The norm's, the clamp's, the division's, the product's and the sum's rules."""
    check_tensor("cosine_similarity", "x1", x1)
    check_tensor("cosine_similarity", "x2", x2)
    shape = torch.broadcast_shapes(x1.shape, x2.shape)
    x1, x2 = x1.expand(shape), x2.expand(shape)                   # broadcast first: a norm per pair
    unit1 = div(x1, clamp(norm(x1, 2, dim, keepdim=True), eps))
    unit2 = div(x2, clamp(norm(x2, 2, dim, keepdim=True), eps))
    return sum(mul(unit1, unit2), dim)


# -- the table ----------------------------------------------------------------------------------------

register(Op(
    "cdist", cdist, (Cdist,),
    Derivative("y_pr = ‖x1_p − x2_r‖ₚ", "dL/dx1_p = Σ_r g_pr sign(d) (abs(d) / y_pr)ᵖ⁻¹, dL/dx2_r = −Σ_p (the same); "
               "p = 2: x1 ∘ rowsum(G) − G x2, G = g / y", "x1 (*, P, M), x2 (*, R, M) → (*, P, R)"),
    fused_by="the tensor algebra", intercepts={torch.cdist: None},
))
register(Op(
    "pairwise_distance", pairwise_distance, (Sub, Add, VectorNorm),
    Derivative("y = ‖x1 − x2 + ε‖ₚ along the last dim", "the norm's rule, to x1 and (negated) to x2",
               "x1, x2 broadcastable (*, D) → (*)"),
    fused_by="the tensor algebra", intercepts={torch.pairwise_distance: None},
))
register(Op(
    "cosine_similarity", cosine_similarity, (VectorNorm, Clamp, Div, Mul, Sum),
    Derivative("y = Σ x̂1 ∘ x̂2, x̂ = x / max(‖x‖, ε)", "the norm's, clamp's, division's, product's and sum's rules",
               "x1, x2 broadcastable (*, D, *) → (*, *)"),
    fused_by="the tensor algebra", intercepts={torch.cosine_similarity: None},
))
