"""Normalisation, one derivation over different sets: layer norm (each sample over its last
dimensions), RMS norm (the same, not centred), group norm (each sample over a group of channels),
and batch norm (each channel over the batch: ``handgrad.ops.batch_norm``, which takes the rule from here).

Notation (cs231n's staged batch norm, the "backprop ninja" result): x the input; S the M entries
normalised together (batch norm: the N·(spatial) values of one channel; layer norm: the values of
one sample's last dimensions; group norm: one sample's values of C / G channels); μ = mean_S x, σ² = mean_S (x − μ)² (biased), r = 1/√(σ² + ε),
x̂ = (x − μ) r, y = γ x̂ + β with γ the weight and β the bias; g = dL/dy. mean and Σ run over S.

Backward. γ and β touch every entry they scale or shift: dL/dβ = Σ g, dL/dγ = Σ g x̂ (batch norm
sums over S, layer norm over the leading dimensions, group norm over the batch and positions). For x, write ĝ = dL/dx̂ = γ g; each x̂_i
depends on x_j directly and through μ and σ² (dμ/dx_j = 1/M, dσ²/dx_j = 2 (x_j − μ)/M,
dr/dσ² = −r³/2, so dr/dx_j = −r² x̂_j / M):

    dx̂_i/dx_j = r (1[i = j] − 1/M − x̂_i x̂_j / M)
    dL/dx = Σ_i ĝ_i dx̂_i/dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ x̂))

In batch norm γ is one number per channel, so this is (γ r)(g − mean(g) − x̂ mean(g x̂)); in group
norm γ varies within the set, as in layer norm. In eval mode batch norm normalises with the
running statistics, constants: y is affine in x and dL/dx = γ r g.

The training Functions return μ and r besides y (what backward needs, as PyTorch's kernels save
them). Being outputs, they carry their own gradients when backward is itself differentiated:
dL/dx gains g_μ / M + g_r (−r² x̂ / M) from the gradients g_μ, g_r reaching them.
"""

import math
import numbers

import torch

from handgrad.ops._checks import (FLOAT32_ON_CUDA, LOW_PRECISION, as_dtype, autocast, check_floating,
                                  check_same_device, check_tensor, computed_in)
from handgrad.ops._function import HandFunction, apply, derivation
from handgrad.ops._registry import Derivative, Module, Op, register

def normalized_backward(g_hat, x_hat, r, dims):
    """dL/dx = r (ĝ − mean ĝ − x̂ mean(ĝ x̂)), the means over ``dims`` (the set S): the Jacobian
    dx̂/dx = r (I − 1/M − x̂ x̂ᵀ / M) of each set applied to ĝ = dL/dx̂ (module docstring). The
    Jacobian is symmetric, so the same function takes a tangent dx to dx̂ (forward mode)."""
    term1 = g_hat                                                        # ĝ: x̂_i moves with x_i
    term2 = g_hat.mean(dims, keepdim=True)                               # mean ĝ: through μ
    term3 = x_hat * (g_hat * x_hat).mean(dims, keepdim=True)             # x̂ mean(ĝ x̂): through σ²
    return r * (term1 - term2 - term3)


def statistics_backward(g_mu, g_r, x_hat, r, m):
    """What the gradients g_μ, g_r reaching the outputs μ and r add to dL/dx (double backward):
    dμ/dx_j = 1/M and dr/dx_j = −r² x̂_j / M, so g_μ / M − g_r r² x̂ / M. None when neither came."""
    grad_x = None
    if g_mu is not None:
        grad_x = g_mu / m                                                # g_μ / M, broadcast over S
    if g_r is not None:
        through_r = -g_r * r * r * x_hat / m                             # −g_r r² x̂ / M
        grad_x = through_r if grad_x is None else grad_x + through_r
    return grad_x


def statistics_jvp(dx, x_hat, r, dims):
    """Forward mode of the statistics: dμ = mean(dx), dr = −r² mean(x̂ dx)."""
    return dx.mean(dims, keepdim=True), -r * r * (x_hat * dx).mean(dims, keepdim=True)


def _sum(*terms):
    """The sum of the terms that are not None (None when all are)."""
    terms = [t for t in terms if t is not None]
    return sum(terms[1:], terms[0]) if terms else None


# -- channels: batch norm's and group norm's views ---------------------------------------------------


def _channels(x):
    """x (N, C, *) viewed as (N, C, L), L = prod(*): the statistics run over dimensions 0 and 2."""
    n, c = x.shape[:2]
    return x.reshape(n, c, math.prod(x.shape[2:]))


def _per_channel(t, dtype):
    """A (C,) tensor as (1, C, 1), broadcasting along a (N, C, L) view."""
    return t.to(dtype).view(1, -1, 1)


def _check_parameter_dtypes(fn, input, params):
    """PyTorch's rule: the statistics and parameters share one dtype, input's, or float32 for a
    float16 or bfloat16 input."""
    given = {name: t for name, t in params.items() if t is not None}
    allowed = (input.dtype, torch.float32) if input.dtype in LOW_PRECISION else (input.dtype,)
    first = next(iter(given.items()), None)
    for name, t in given.items():
        if t.dtype not in allowed or t.dtype != first[1].dtype:
            expected = " or ".join(str(d) for d in allowed)
            raise RuntimeError(
                f"{fn}: {name} has dtype {t.dtype} but input has dtype {input.dtype}"
                + (f" and {first[0]} {first[1].dtype}" if t.dtype in allowed else "")
                + f"; the parameters must all be {expected} (e.g. {name}.to(input.dtype))"
            )


# -- layer norm ----------------------------------------------------------------------------------


def _rows(x, k):
    """x (*, normalized_shape) viewed as (R, D), R = prod(*), D = prod(normalized_shape) (its last k
    dimensions): one row per sample."""
    lead = x.dim() - k
    return x.reshape(math.prod(x.shape[:lead]), math.prod(x.shape[lead:]))


class LayerNorm(HandFunction):
    """y = γ x̂ + β over the last dimensions, normalized_shape; returns (y, μ, r).

    x (*, normalized_shape); γ, β normalized_shape or None; μ, r (*, 1, ..., 1).
    """

    recomputable = True

    @staticmethod
    def forward(x, normalized_shape, gamma, beta, eps):
        return torch.native_layer_norm(x, normalized_shape, gamma, beta, eps)       # PyTorch's forward kernel

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, normalized_shape, gamma, beta, eps = inputs
        _, mu, r = output
        ctx.save_for_backward(x, gamma, mu, r)
        ctx.save_for_forward(x, gamma, mu, r)
        ctx.normalized_shape = normalized_shape
        ctx.param_dtype = (gamma if gamma is not None else beta if beta is not None else x).dtype
        ctx.has_beta = beta is not None
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_mu, g_r):
        x, gamma, mu, r = ctx.saved_tensors
        wants = (ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.needs_input_grad[3] and ctx.has_beta)
        # Its sums may be matrix-vector products, which autocast would otherwise run in float16 or
        # bfloat16 when backward is called inside an autocast region.
        with torch.autocast(x.device.type, enabled=False):
            grad_x, grad_gamma, grad_beta = layer_norm_backward(wants, ctx.normalized_shape, ctx.param_dtype, g, g_mu,
                                                                g_r, x, gamma, mu, r)
        return grad_x, None, grad_gamma, grad_beta, None

    @staticmethod
    def jvp(ctx, dx, _, d_gamma, d_beta, __):
        """Forward mode: dy = γ dx̂ + dγ x̂ + dβ, dx̂ = ``normalized_backward`` of dx (the Jacobian is
        symmetric), dμ and dr from ``statistics_jvp``."""
        x, gamma, mu, r = ctx.saved_tensors
        dtype, k = computed_in(x.dtype), len(ctx.normalized_shape)
        x2, r2 = _rows(x, k).to(dtype), r.reshape(-1, 1).to(dtype)
        x_hat = (x2 - mu.reshape(-1, 1).to(dtype)) * r2
        if dx is None:
            dx_hat, d_mu, d_r = torch.zeros_like(x_hat), torch.zeros_like(r2), torch.zeros_like(r2)
        else:
            dx2 = _rows(dx, k).to(dtype)
            dx_hat = normalized_backward(dx2, x_hat, r2, 1)
            d_mu, d_r = statistics_jvp(dx2, x_hat, r2, 1)
        dy = dx_hat if gamma is None else dx_hat * gamma.reshape(-1).to(dtype)
        if d_gamma is not None:
            dy = dy + x_hat * d_gamma.reshape(-1).to(dtype)
        if d_beta is not None:
            dy = dy + d_beta.reshape(-1).to(dtype)
        return dy.reshape(x.shape).to(x.dtype), d_mu.reshape(mu.shape).to(mu.dtype), d_r.reshape(r.shape).to(r.dtype)


@derivation
def layer_norm_backward(wants, normalized_shape, param_dtype, g, g_mu, g_r, x, gamma, mu, r):
    """dL/dγ = Σ g x̂, dL/dβ = Σ g (over the leading dimensions), dL/dx = r (ĝ − mean ĝ − x̂ mean(ĝ x̂))
    with ĝ = γ g and the means over the normalised dimensions (the module docstring), plus
    ``statistics_backward`` when μ and r themselves receive gradients. Only what ``wants`` (x, γ, β)
    asks for. Shapes: x, g, x̂ as (R, D), R rows of D = prod(normalized_shape) values; μ, r (R, 1);
    γ (D,)."""
    dtype, k = computed_in(x.dtype), len(normalized_shape)
    x2 = _rows(x, k).to(dtype)                                           # (R, D)
    d = max(x2.shape[1], 1)                                              # D, and 1 for no entries (no 0/0)
    r2 = r.reshape(-1, 1).to(dtype)                                      # (R, 1)
    x_hat = (x2 - mu.reshape(-1, 1).to(dtype)) * r2                      # x̂ = (x − μ) r
    g2 = None if g is None else _rows(g, k).to(dtype)
    grad_x = grad_gamma = grad_beta = None
    if g is not None and wants[1] and gamma is not None:
        grad_gamma = (g2 * x_hat).sum(0).reshape(normalized_shape).to(param_dtype)   # dL/dγ = Σ g x̂
    if g is not None and wants[2]:
        grad_beta = g2.sum(0).reshape(normalized_shape).to(param_dtype)              # dL/dβ = Σ g
    if wants[0]:
        g_hat = None if g is None else g2 if gamma is None else g2 * gamma.reshape(-1).to(dtype)    # ĝ = γ g
        grad_x = _sum(None if g is None else normalized_backward(g_hat, x_hat, r2, 1),
                      statistics_backward(None if g_mu is None else g_mu.reshape(-1, 1).to(dtype),
                                          None if g_r is None else g_r.reshape(-1, 1).to(dtype), x_hat, r2, d))
        if grad_x is not None:
            grad_x = grad_x.expand_as(x2).reshape(x.shape).to(x.dtype)  # dL/dx, (*, normalized_shape)
    return grad_x, grad_gamma, grad_beta


@layer_norm_backward.faster
def _layer_norm_backward_affine(wants, normalized_shape, param_dtype, g, g_mu, g_r, x, gamma, mu, r):
    """The same, with dL/dx written as r γ g + b x + c, one (b, c) per row:
    b = −r² mean(ĝ x̂) − g_r r³ / D, c = −r mean(ĝ) + g_μ / D − b μ;
    Σ ĝ x̂ = r (Σ γ g x − μ Σ γ g) and Σ g x̂ = Σ r g x − Σ r μ g: the sums along a row are products
    with γ, those over rows products with r and r μ (``torch.mv``: one read of the matrix each).
    As in batch norm's, the one (R, D) tensor made is g x, into which dL/dx is written. Forward +
    backward of layer_norm on (64, 128, 512) in 0.58× the reference's time (bench section 9)."""
    dtype, k = computed_in(x.dtype), len(normalized_shape)
    x2 = _rows(x, k).to(dtype)                                           # (R, D)
    d = max(x2.shape[1], 1)
    mu, r = mu.reshape(-1).to(dtype), r.reshape(-1).to(dtype)            # (R,)
    gamma1 = None if gamma is None else gamma.reshape(-1).to(dtype)      # (D,)
    grad_x = grad_gamma = grad_beta = None
    if g is not None:
        g2 = _rows(g, k).to(dtype)
        gx = g2 * x2                                                     # g x, (R, D)
        if gamma1 is None:
            sum_g_hat, sum_g_hat_x = g2.sum(1), gx.sum(1)
        else:
            sum_g_hat, sum_g_hat_x = torch.mv(g2, gamma1), torch.mv(gx, gamma1)    # Σ ĝ, Σ ĝ x = Σ γ g x, (R,)
        sum_g_hat_xhat = r * (sum_g_hat_x - mu * sum_g_hat)              # Σ ĝ x̂ = r (Σ ĝ x − μ Σ ĝ), (R,)
        if wants[1] and gamma is not None:
            grad_gamma = torch.mv(gx.t(), r) - torch.mv(g2.t(), r * mu)  # dL/dγ = Σ g x̂ = Σ r g x − Σ r μ g, (D,)
            grad_gamma = grad_gamma.reshape(normalized_shape).to(param_dtype)
        if wants[2]:
            grad_beta = g2.sum(0)                                        # dL/dβ = Σ g, (D,)
            grad_beta = grad_beta.reshape(normalized_shape).to(param_dtype)
    if wants[0]:
        b = c = torch.zeros_like(r)
        if g is not None:
            b = -r * r * sum_g_hat_xhat / d                              # −r² mean(ĝ x̂)
            c = -r * sum_g_hat / d                                       # −r mean(ĝ)
        if g_r is not None:
            b = b - g_r.reshape(-1).to(dtype) * r ** 3 / d               # −g_r r² x̂ / D = −g_r r³ (x − μ) / D
        if g_mu is not None:
            c = c + g_mu.reshape(-1).to(dtype) / d                       # g_μ / D
        b, c, r = b.unsqueeze(1), (c - b * mu).unsqueeze(1), r.unsqueeze(1)
        if g is None:
            grad_x = torch.addcmul(c, x2, b)                             # b x + c
        elif gamma1 is None:                                             # into g x's buffer, spent
            grad_x = gx.copy_(c.expand_as(gx)).addcmul_(x2, b).addcmul_(g2, r)
        else:                                                            # r (γ g + (b x + c) / r), likewise
            # c's copy first, then x b added: addcmul with two (R, 1) factors broadcast is ~3× slower
            grad_x = gx.copy_((c / r).expand_as(gx)).addcmul_(x2, b / r).addcmul_(g2, gamma1).mul_(r)
        grad_x = grad_x.reshape(x.shape).to(x.dtype)                     # dL/dx, (*, normalized_shape)
    return grad_x, grad_gamma, grad_beta


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """y = γ (x − μ) / √(σ² + ε) + β over the last len(normalized_shape) dimensions, as
    ``torch.nn.functional.layer_norm``.

    Shapes: input (*, normalized_shape); weight, bias normalized_shape (or None); the output has
    input's shape. A float16 or bfloat16 input may take float32 parameters.
    """
    normalized_shape = _check_normalized("layer_norm", input, normalized_shape, {"weight": weight, "bias": bias})
    input, weight, bias = autocast(FLOAT32_ON_CUDA, input, weight, bias)
    _check_parameter_dtypes("layer_norm", input, {"weight": weight, "bias": bias})
    y, _, _ = apply(LayerNorm, input, normalized_shape, weight, bias, eps)
    return y


def _check_normalized(fn, input, normalized_shape, params):
    """Check the input and normalized_shape of a normalisation over the last dimensions, and the
    parameters of that shape; return normalized_shape as a tuple of ints."""
    check_floating(fn, "input", input)
    if isinstance(normalized_shape, numbers.Integral) or not isinstance(normalized_shape, (tuple, list, torch.Size)):
        raise TypeError(
            f"{fn}: normalized_shape must be a tuple or list of ints, got {normalized_shape!r}; "
            f"for the last dimension alone write ({normalized_shape},)"
        )
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in normalized_shape):
        raise TypeError(f"{fn}: normalized_shape must hold ints, got {tuple(normalized_shape)!r}")
    normalized_shape = tuple(int(n) for n in normalized_shape)
    if not normalized_shape:
        raise RuntimeError(f"{fn}: normalized_shape must name at least one dimension, got ()")
    k = len(normalized_shape)
    if input.dim() < k or tuple(input.shape[-k:]) != normalized_shape:
        raise RuntimeError(
            f"{fn}: input of shape {tuple(input.shape)} does not end in normalized_shape {normalized_shape}: "
            f"expected input of shape (*, {', '.join(map(str, normalized_shape))})"
        )
    for name, t in params.items():
        if t is not None:
            check_tensor(fn, name, t)
            if tuple(t.shape) != normalized_shape:
                raise RuntimeError(
                    f"{fn}: {name} must have shape normalized_shape {normalized_shape}, got {tuple(t.shape)}"
                )
            check_same_device(fn, {"input": input, name: t})
    return normalized_shape


# -- rms norm --------------------------------------------------------------------------------------


class RMSNorm(HandFunction):
    """y = γ x̂, x̂ = x r, r = 1/√(mean x² + ε) over the last dimensions, normalized_shape; returns (y, r).

    x (*, normalized_shape); γ normalized_shape or None; r (*, 1, ..., 1). Layer norm without the
    centring: no μ, no β.
    """

    recomputable = True

    @staticmethod
    def forward(x, normalized_shape, gamma, eps):
        dims = tuple(range(x.dim() - len(normalized_shape), x.dim()))
        xf = as_dtype(x, computed_in(x.dtype))
        r = torch.rsqrt(xf.square().mean(dims, keepdim=True) + eps)          # 1/√(mean x² + ε)
        y = xf * r if gamma is None else xf * r * gamma
        return as_dtype(y, x.dtype), r

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, normalized_shape, gamma, eps = inputs
        _, r = output
        ctx.save_for_backward(x, gamma, r)
        ctx.save_for_forward(x, gamma, r)
        ctx.normalized_shape = normalized_shape
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_r):
        x, gamma, r = ctx.saved_tensors
        grad_x, grad_gamma = rms_norm_backward(ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.normalized_shape,
                                               g, g_r, x, gamma, r)
        return grad_x, None, grad_gamma, None

    @staticmethod
    def jvp(ctx, dx, _, d_gamma, __):
        """Forward mode: dy = γ dx̂ + dγ x̂, dx̂ = ``rms_normalized_backward`` of dx (a symmetric
        Jacobian), dr = −r² mean(x̂ dx)."""
        x, gamma, r = ctx.saved_tensors
        dtype, k = computed_in(x.dtype), len(ctx.normalized_shape)
        x2, r2 = _rows(x, k).to(dtype), r.reshape(-1, 1)
        x_hat = x2 * r2
        dy, d_r = torch.zeros_like(x_hat), torch.zeros_like(r2)
        if dx is not None:
            dx2 = _rows(dx, k).to(dtype)
            dy = rms_normalized_backward(dx2, x_hat, r2, 1)
            d_r = statistics_jvp(dx2, x_hat, r2, 1)[1]
        if gamma is not None:
            dy = dy * gamma.reshape(-1).to(dtype)
        if d_gamma is not None:
            dy = dy + x_hat * d_gamma.reshape(-1).to(dtype)
        return dy.reshape(x.shape).to(x.dtype), d_r.reshape(r.shape)


def rms_normalized_backward(g_hat, x_hat, r, dims):
    """dL/dx = r (ĝ − x̂ mean(ĝ x̂)): ``normalized_backward`` without term 2, since x is not centred
    (dx̂_i/dx_j = r (1[i = j] − x̂_i x̂_j / M)); symmetric, so forward mode too."""
    return r * (g_hat - x_hat * (g_hat * x_hat).mean(dims, keepdim=True))


def rms_norm_backward(wants_x, wants_gamma, normalized_shape, g, g_r, x, gamma, r):
    """dL/dγ = Σ g x̂ over the leading dimensions, dL/dx = r (ĝ − x̂ mean(ĝ x̂)), ĝ = γ g, plus what a
    gradient g_r reaching r adds (double backward). Shapes: x, g, x̂ as (R, D); r (R, 1); γ (D,)."""
    dtype, k = computed_in(x.dtype), len(normalized_shape)
    x2 = _rows(x, k).to(dtype)                                           # (R, D)
    d = max(x2.shape[1], 1)
    r2 = r.reshape(-1, 1)                                                # (R, 1)
    x_hat = x2 * r2                                                      # x̂ = x r
    g2 = None if g is None else _rows(g, k).to(dtype)
    grad_x = grad_gamma = None
    if g is not None and wants_gamma and gamma is not None:
        grad_gamma = (g2 * x_hat).sum(0).reshape(normalized_shape).to(gamma.dtype)  # dL/dγ = Σ g x̂
    if wants_x:
        g_hat = None if g is None else g2 if gamma is None else g2 * gamma.reshape(-1).to(dtype)    # ĝ = γ g
        grad_x = _sum(None if g is None else rms_normalized_backward(g_hat, x_hat, r2, 1),
                      statistics_backward(None, None if g_r is None else g_r.reshape(-1, 1), x_hat, r2, d))
        if grad_x is not None:
            grad_x = grad_x.expand_as(x2).reshape(x.shape).to(x.dtype)  # dL/dx, (*, normalized_shape)
    return grad_x, grad_gamma


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """y = γ x / √(mean x² + ε) over the last len(normalized_shape) dimensions, as
    ``torch.nn.functional.rms_norm``; eps None is the machine epsilon of the dtype it computes in (float32
    for float16 and bfloat16 input), as there.

    Shapes: input (*, normalized_shape); weight normalized_shape (or None); the output has input's shape.
    """
    normalized_shape = _check_normalized("rms_norm", input, normalized_shape, {"weight": weight})
    input, weight = autocast(FLOAT32_ON_CUDA, input, weight)
    _check_parameter_dtypes("rms_norm", input, {"weight": weight})
    if eps is None:
        eps = torch.finfo(computed_in(input.dtype)).eps
    y, _ = apply(RMSNorm, input, normalized_shape, weight, float(eps))
    return y


# -- group norm ----------------------------------------------------------------------------------


class GroupNorm(HandFunction):
    """y = γ x̂ + β, x̂ normalised over each sample's group of C / G channels; returns (y, μ, r).

    x (N, C, *); γ, β (C,) or None; μ, r (N, G).
    """

    recomputable = True

    @staticmethod
    def forward(x, num_groups, gamma, beta, eps):
        n, c = x.shape[:2]
        return torch.native_group_norm(x, gamma, beta, n, c, math.prod(x.shape[2:]), num_groups, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, num_groups, gamma, beta, eps = inputs
        _, mu, r = output
        ctx.save_for_backward(x, gamma, mu, r)
        ctx.save_for_forward(x, gamma, mu, r)
        ctx.num_groups, ctx.has_beta = num_groups, beta is not None
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_mu, g_r):
        x, gamma, mu, r = ctx.saved_tensors
        wants = (ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.needs_input_grad[3] and ctx.has_beta)
        grad_x, grad_gamma, grad_beta = group_norm_backward(wants, ctx.num_groups, g, g_mu, g_r, x, gamma, mu, r)
        return grad_x, None, grad_gamma, grad_beta, None

    @staticmethod
    def jvp(ctx, dx, _, d_gamma, d_beta, __):
        """Forward mode: dy = γ dx̂ + dγ x̂ + dβ, dx̂ = ``normalized_backward`` of dx over each group."""
        x, gamma, mu, r = ctx.saved_tensors
        dtype, groups = computed_in(x.dtype), ctx.num_groups
        x4, mu4, r4 = _groups(x, groups).to(dtype), _per_group(mu, dtype), _per_group(r, dtype)
        x_hat = (x4 - mu4) * r4                                                # (N, G, C / G, L)
        dx_hat, d_mu, d_r = torch.zeros_like(x_hat), torch.zeros_like(mu4), torch.zeros_like(r4)
        if dx is not None and x.numel():
            dx4 = _groups(dx, groups).to(dtype)
            dx_hat = normalized_backward(dx4, x_hat, r4, (2, 3))
            d_mu, d_r = statistics_jvp(dx4, x_hat, r4, (2, 3))
        dy = dx_hat if gamma is None else dx_hat * _per_group_channel(gamma, groups, dtype)
        if d_gamma is not None:
            dy = dy + x_hat * _per_group_channel(d_gamma, groups, dtype)
        if d_beta is not None:
            dy = dy + _per_group_channel(d_beta, groups, dtype)
        return dy.reshape(x.shape).to(x.dtype), d_mu.reshape(mu.shape).to(mu.dtype), d_r.reshape(r.shape).to(r.dtype)


def _groups(x, groups):
    """x (N, C, *) viewed as (N, G, C / G, L): the statistics run over dimensions 2 and 3."""
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, math.prod(x.shape[2:]))


def _per_group(t, dtype):
    """A (N, G) statistic as (N, G, 1, 1)."""
    return t.to(dtype).reshape(*t.shape, 1, 1)


def _per_group_channel(t, groups, dtype):
    """A (C,) parameter as (1, G, C / G, 1), along a (N, G, C / G, L) view."""
    return t.to(dtype).reshape(1, groups, -1, 1)


def group_norm_backward(wants, groups, g, g_mu, g_r, x, gamma, mu, r):
    """dL/dγ = Σ g x̂, dL/dβ = Σ g (over the batch and positions, per channel), dL/dx =
    r (ĝ − mean ĝ − x̂ mean(ĝ x̂)) over each group, ĝ = γ g, plus ``statistics_backward``.
    Shapes: x, g, x̂ as (N, G, C / G, L); μ, r (N, G, 1, 1); γ (1, G, C / G, 1)."""
    dtype = computed_in(x.dtype)
    x4 = _groups(x, groups).to(dtype)
    m = max(x4.shape[2] * x4.shape[3], 1)                                # M = C / G · L values a group
    r4 = _per_group(r, dtype)
    x_hat = (x4 - _per_group(mu, dtype)) * r4                            # x̂ = (x − μ) r
    g4 = None if g is None else _groups(g, groups).to(dtype)
    grad_x = grad_gamma = grad_beta = None
    if g is not None and wants[1] and gamma is not None:
        grad_gamma = (g4 * x_hat).sum((0, 3)).reshape(-1).to(gamma.dtype)   # dL/dγ = Σ g x̂, (C,)
    if g is not None and wants[2]:
        grad_beta = g4.sum((0, 3)).reshape(-1).to(x.dtype if gamma is None else gamma.dtype)   # dL/dβ = Σ g
    if wants[0]:
        g_hat = None if g is None else g4 if gamma is None else g4 * _per_group_channel(gamma, groups, dtype)
        grad_x = _sum(None if g is None else normalized_backward(g_hat, x_hat, r4, (2, 3)),
                      statistics_backward(None if g_mu is None else _per_group(g_mu, dtype),
                                          None if g_r is None else _per_group(g_r, dtype), x_hat, r4, m))
        if grad_x is not None:
            grad_x = grad_x.expand_as(x4).reshape(x.shape).to(x.dtype)  # dL/dx, (N, C, *)
    return grad_x, grad_gamma, grad_beta


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """y = γ (x − μ) / √(σ² + ε) + β, μ and σ² over each sample's groups of C / num_groups channels,
    as ``torch.nn.functional.group_norm``.

    Shapes: input (N, C, *); weight, bias (C,) (or None); the output has input's shape.
    """
    fn = "group_norm"
    check_floating(fn, "input", input)
    if input.dim() < 2:
        raise RuntimeError(f"{fn}: input must be (N, C, *) with the channels in dimension 1, got shape "
                           f"{tuple(input.shape)}")
    if not isinstance(num_groups, numbers.Integral) or isinstance(num_groups, bool) or num_groups < 1:
        raise ValueError(f"{fn}: num_groups must be a positive int, got {num_groups!r}")
    channels = input.shape[1]
    if channels % num_groups:
        raise RuntimeError(f"{fn}: the {channels} channels of input (shape {tuple(input.shape)}) must split into "
                           f"num_groups={num_groups} groups of equal size")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            check_tensor(fn, name, t)
            if t.shape != (channels,):
                raise RuntimeError(f"{fn}: {name} must hold one value per channel, shape ({channels},), got shape "
                                   f"{tuple(t.shape)}")
            check_same_device(fn, {"input": input, name: t})
    input, weight, bias = autocast(FLOAT32_ON_CUDA, input, weight, bias)
    _check_parameter_dtypes(fn, input, {"weight": weight, "bias": bias})
    y, _, _ = apply(GroupNorm, input, int(num_groups), weight, bias, float(eps))
    return y


# -- registration ----------------------------------------------------------------------------------

register(Op(
    "layer_norm", layer_norm, (LayerNorm,),
    Derivative("y = γ x̂ + β, x̂ = (x − μ) / √(σ² + ε), μ σ² over the last dimensions",
               "dL/dγ = Σ g x̂, dL/dβ = Σ g, dL/dx = r (ĝ − mean ĝ − x̂ mean(ĝ x̂)), ĝ = γ g",
               "x, g (*, normalized_shape); γ, β normalized_shape; μ, σ² (*, 1, …, 1)"),
    modules={torch.nn.LayerNorm: Module(
        lambda self, input: layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps))},
))

register(Op(
    "rms_norm", rms_norm, (RMSNorm,),
    Derivative("y = γ x̂, x̂ = x / √(mean x² + ε) over the last dimensions",
               "dL/dγ = Σ g x̂, dL/dx = r (ĝ − x̂ mean(ĝ x̂)), ĝ = γ g, r = 1/√(mean x² + ε)",
               "x, g (*, normalized_shape); γ normalized_shape; r (*, 1, …, 1)"),
    modules={torch.nn.RMSNorm: Module(lambda self, input: rms_norm(input, self.normalized_shape, self.weight, self.eps))},
))

register(Op(
    "group_norm", group_norm, (GroupNorm,),
    Derivative("y = γ x̂ + β, x̂ = (x − μ) / √(σ² + ε), μ σ² over each sample's group of C / G channels",
               "dL/dγ = Σ g x̂, dL/dβ = Σ g, dL/dx = r (ĝ − mean ĝ − x̂ mean(ĝ x̂)) per group, ĝ = γ g",
               "x, g (N, C, *); γ, β (C,); μ, σ² (N, G)"),
    modules={torch.nn.GroupNorm: Module(
        lambda self, input: group_norm(input, self.num_groups, self.weight, self.bias, self.eps))},
))
