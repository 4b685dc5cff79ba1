"""Normalisation: batch norm (each channel over the batch) and layer norm (each sample over its last
dimensions), one derivation over two different sets.

Notation (cs231n's staged batch norm, the "backprop ninja" result): x the input; S the M entries
normalised together (batch norm: the N·(spatial) values of one channel; layer norm: the values of
one sample's last dimensions); μ = mean_S x, σ² = mean_S (x − μ)² (biased), r = 1/√(σ² + ε),
x̂ = (x − μ) r, y = γ x̂ + β with γ the weight and β the bias; g = dL/dy. mean and Σ run over S.

Backward. γ and β touch every entry they scale or shift: dL/dβ = Σ g, dL/dγ = Σ g x̂ (batch norm
sums over S, layer norm over the leading dimensions). For x, write ĝ = dL/dx̂ = γ g; each x̂_i
depends on x_j directly and through μ and σ² (dμ/dx_j = 1/M, dσ²/dx_j = 2 (x_j − μ)/M,
dr/dσ² = −r³/2, so dr/dx_j = −r² x̂_j / M):

    dx̂_i/dx_j = r (1[i = j] − 1/M − x̂_i x̂_j / M)
    dL/dx = Σ_i ĝ_i dx̂_i/dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ x̂))

In batch norm γ is one number per channel, so this is (γ r)(g − mean(g) − x̂ mean(g x̂)). In eval
mode batch norm normalises with the running statistics, constants: y is affine in x and
dL/dx = γ r g.

The training Functions return μ and r besides y (what backward needs, as PyTorch's kernels save
them). Being outputs, they carry their own gradients when backward is itself differentiated:
dL/dx gains g_μ / M + g_r (−r² x̂ / M) from the gradients g_μ, g_r reaching them.
"""

import math
import numbers

import numpy as np
import torch

from handgrad.ops._checks import FLOAT32_ON_CUDA, autocast, check_floating, check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, ModuleSample, Op, register
from handgrad.testing import ErrorInput, Sample, Tolerance, randn

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _computed_in(x):
    """Sums over many entries run in float32 for float16 and bfloat16 input, as PyTorch's kernels do."""
    return torch.float32 if x.dtype in _LOW_PRECISION else x.dtype


def _normalize_jvp(dx, x_hat, r, dims):
    """Forward mode of the statistics and of x̂, from a tangent dx:
    dμ = mean(dx), dr = −r² mean(x̂ dx), dx̂ = r (dx − dμ) + (x − μ) dr = r (dx − dμ − x̂ mean(x̂ dx))."""
    d_mu = dx.mean(dims, keepdim=True)
    xhat_dx = (x_hat * dx).mean(dims, keepdim=True)
    return r * (dx - d_mu - x_hat * xhat_dx), d_mu, -r * r * xhat_dx


# -- batch norm ----------------------------------------------------------------------------------


def _channels(x):
    """x (N, C, *) viewed as (N, C, L), L = prod(*): the statistics run over dimensions 0 and 2."""
    n, c = x.shape[:2]
    return x.reshape(n, c, math.prod(x.shape[2:]))


def _per_channel(t, dtype):
    """A (C,) tensor as (1, C, 1), broadcasting along a (N, C, L) view."""
    return t.to(dtype).view(1, -1, 1)


def _gamma(gamma, beta):
    """γ for the forward kernel: ones (y = 1 · x̂ + β, the same values) where β comes without γ, a
    case in which PyTorch's CUDA batch norm raised "tensor does not have a device" (an H100, torch
    2.11: float32 and float64, training and eval, any layout; with γ given it ran, and so does
    handgrad's with these ones)."""
    return torch.ones_like(beta) if gamma is None and beta is not None else gamma


class BatchNorm(HandFunction):
    """Training: y = γ x̂ + β with the batch's μ and σ² per channel; returns (y, μ, r).

    x (N, C, *); γ, β, μ, r and the running statistics (C,) (γ, β, running statistics may be None).
    """

    @staticmethod
    def forward(x, gamma, beta, running_mean, running_var, momentum, eps):
        if x.numel() == 0:                                   # no values: nothing to average, no update
            stats = x.new_zeros(x.shape[1], dtype=_computed_in(x))
            return torch.empty_like(x), stats, stats.clone()
        # PyTorch's forward kernel. It also updates the running statistics in place:
        # running_mean ← (1 − m) running_mean + m μ, running_var ← (1 − m) running_var + m σ² M / (M − 1).
        return torch.native_batch_norm(x, _gamma(gamma, beta), beta, running_mean, running_var, True, momentum, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma, beta = inputs[:3]
        _, mu, r = output
        ctx.save_for_backward(x, gamma, mu, r)
        ctx.save_for_forward(x, gamma, mu, r)
        ctx.beta_dtype = None if beta is None else beta.dtype
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_mu, g_r):
        x, gamma, mu, r = ctx.saved_tensors
        grad_x, grad_gamma, grad_beta = batch_norm_backward(ctx.needs_input_grad, ctx.beta_dtype, g, g_mu, g_r,
                                                            x, gamma, mu, r)
        return grad_x, grad_gamma, grad_beta, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, d_gamma, d_beta, *_):
        """Forward mode: dy = γ dx̂ + dγ x̂ + dβ, with dx̂, dμ, dr from ``_normalize_jvp``."""
        x, gamma, mu, r = ctx.saved_tensors
        dtype = _computed_in(x)
        x3 = _channels(x).to(dtype)
        r3 = _per_channel(r, dtype)
        x_hat = (x3 - _per_channel(mu, dtype)) * r3
        if dx is None or x.numel() == 0:                     # no tangent, or no values to move the statistics
            dx_hat, d_mu, d_r = torch.zeros_like(x_hat), torch.zeros_like(r3), torch.zeros_like(r3)
        else:
            dx_hat, d_mu, d_r = _normalize_jvp(_channels(dx).to(dtype), x_hat, r3, (0, 2))
        dy = dx_hat if gamma is None else dx_hat * _per_channel(gamma, dtype)
        if d_gamma is not None:
            dy = dy + x_hat * _per_channel(d_gamma, dtype)
        if d_beta is not None:
            dy = dy + _per_channel(d_beta, dtype)
        return dy.reshape(x.shape).to(x.dtype), d_mu.view(-1).to(mu.dtype), d_r.view(-1).to(r.dtype)


def batch_norm_backward(needs_input_grad, beta_dtype, g, g_mu, g_r, x, gamma, mu, r):
    """dL/dγ = Σ g x̂, dL/dβ = Σ g, dL/dx = γ r (g − mean(g) − x̂ mean(g x̂)), Σ and mean over (N, *)
    per channel (see the module docstring), plus g_μ / M − g_r r² x̂ / M when the statistics
    themselves receive gradients. Only what ``needs_input_grad`` asks for.

    With x̂ = (x − μ) r, dL/dx is a g + b x + c with one (a, b, c) per channel:
    a = γ r, b = −a r mean(g x̂) − g_r r³ / M, c = −a mean(g) + g_μ / M − b μ;
    and Σ g x̂ = r (Σ g x − μ Σ g). So x and g are read for two sums and two products, and the one
    (N, C, *) tensor made is g x, into which dL/dx is then written: making tensors the size of x
    (x − μ, x̂ and the like) is what cost most, measured, more than the passes over them.
    """
    dtype = _computed_in(x)
    x3 = _channels(x).to(dtype)                                          # (N, C, L)
    # M = N·L entries per channel; an empty batch has none to average, and 1 keeps 0/0 out of the graph.
    m = max(x3.shape[0] * x3.shape[2], 1)
    mu, r = mu.to(dtype), r.to(dtype)
    grad_x = grad_gamma = grad_beta = None
    if g is not None:
        g3 = _channels(g).to(dtype)
        gx = g3 * x3                                                     # g x, (N, C, L)
        sum_g = g3.sum((0, 2))                                           # Σ g, (C,)
        sum_g_xhat = r * (gx.sum((0, 2)) - mu * sum_g)                  # Σ g x̂ = r (Σ g x − μ Σ g), (C,)
        if needs_input_grad[1] and gamma is not None:
            grad_gamma = sum_g_xhat.to(gamma.dtype)                      # dL/dγ = Σ g x̂, (C,)
        if needs_input_grad[2] and beta_dtype is not None:
            grad_beta = sum_g.to(beta_dtype)                             # dL/dβ = Σ g, (C,)
    if needs_input_grad[0]:
        a = r if gamma is None else r * gamma.to(dtype)                  # γ r, (C,)
        b = c = torch.zeros_like(r)
        if g is not None:
            b = -a * r * sum_g_xhat / m                                  # −γ r² mean(g x̂)
            c = -a * sum_g / m                                           # −γ r mean(g)
        if g_r is not None:
            b = b - g_r.to(dtype) * r ** 3 / m                           # −g_r r² x̂ / M = −g_r r³ (x − μ) / M
        if g_mu is not None:
            c = c + g_mu.to(dtype) / m                                   # g_μ / M
        a, b, c = (_per_channel(t, dtype) for t in (a, b, c - b * mu))
        if g is None:
            grad_x = torch.addcmul(c, x3, b)                             # b x + c
        elif torch.is_grad_enabled():                                    # this backward is being differentiated
            grad_x = torch.addcmul(torch.addcmul(c, x3, b), g3, a)       # a g + b x + c
        else:                                                            # into g x's buffer, spent
            grad_x = torch.addcmul(c, x3, b, out=gx).addcmul_(g3, a)
        grad_x = grad_x.reshape(x.shape).to(x.dtype)                     # dL/dx, (N, C, *)
    return grad_x, grad_gamma, grad_beta


class BatchNormEval(HandFunction):
    """Eval: y = γ (x − running_mean) r + β with r = 1/√(running_var + ε): affine in x.

    x (N, C, *); γ, β (C,) or None; running_mean, running_var (C,), constants.
    """

    @staticmethod
    def forward(x, gamma, beta, running_mean, running_var, eps):
        if x.numel() == 0:
            return torch.empty_like(x)
        return torch.native_batch_norm(x, _gamma(gamma, beta), beta, running_mean, running_var, False, 0.0, eps)[0]

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma, beta, running_mean, running_var, eps = inputs
        ctx.save_for_backward(x, gamma, running_mean, running_var)
        ctx.save_for_forward(x, gamma, running_mean, running_var)
        ctx.beta_dtype, ctx.eps = None if beta is None else beta.dtype, eps

    @staticmethod
    def backward(ctx, g):
        """dL/dx = γ r g, dL/dγ = Σ g x̂, dL/dβ = Σ g (Σ over (N, *) per channel)."""
        x, gamma, running_mean, running_var = ctx.saved_tensors
        dtype = _computed_in(x)
        r3 = _per_channel(running_var, dtype).add(ctx.eps).rsqrt()                  # 1/√(running_var + ε)
        g3 = _channels(g).to(dtype)
        grad_x = grad_gamma = grad_beta = None
        if ctx.needs_input_grad[0]:
            a = r3 if gamma is None else r3 * _per_channel(gamma, dtype)
            grad_x = (g3 * a).reshape(x.shape).to(x.dtype)                         # dL/dx = γ r g, (N, C, *)
        if ctx.needs_input_grad[1] and gamma is not None:
            x_hat = (_channels(x).to(dtype) - _per_channel(running_mean, dtype)) * r3
            grad_gamma = (g3 * x_hat).sum((0, 2)).to(gamma.dtype)                  # dL/dγ = Σ g x̂, (C,)
        if ctx.needs_input_grad[2] and ctx.beta_dtype is not None:
            grad_beta = g3.sum((0, 2)).to(ctx.beta_dtype)                              # dL/dβ = Σ g, (C,)
        return grad_x, grad_gamma, grad_beta, None, None, None

    @staticmethod
    def jvp(ctx, dx, d_gamma, d_beta, *_):
        """Forward mode: dy = γ r dx + dγ x̂ + dβ."""
        x, gamma, running_mean, running_var = ctx.saved_tensors
        dtype = _computed_in(x)
        r3 = _per_channel(running_var, dtype).add(ctx.eps).rsqrt()
        x3 = _channels(x).to(dtype)
        dy = torch.zeros_like(x3)
        if dx is not None:
            a = r3 if gamma is None else r3 * _per_channel(gamma, dtype)
            dy = dy + _channels(dx).to(dtype) * a
        if d_gamma is not None:
            dy = dy + (x3 - _per_channel(running_mean, dtype)) * r3 * _per_channel(d_gamma, dtype)
        if d_beta is not None:
            dy = dy + _per_channel(d_beta, dtype)
        return dy.reshape(x.shape).to(x.dtype)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """y = γ (x − μ) / √(σ² + ε) + β per channel, as ``torch.nn.functional.batch_norm``.

    Training: μ and σ² are the batch's, over (N, *) for each channel; running_mean and running_var,
    when given, are updated in place: running_mean ← (1 − m) running_mean + m μ and
    running_var ← (1 − m) running_var + m σ² M / (M − 1) (the unbiased variance, M = N·prod(*)).
    Eval (``training=False``): μ and σ² are running_mean and running_var.

    Shapes: input (N, C, *); running_mean, running_var (C,); weight, bias C values (or None); the
    output has input's shape. A float16 or bfloat16 input may take float32 statistics and parameters.
    """
    gamma, beta = _batch_norm_arguments(input, running_mean, running_var, weight, bias, training, momentum, eps)
    if training:
        y, _, _ = apply(BatchNorm, input, gamma, beta, running_mean, running_var, momentum, eps)
        return y
    return apply(BatchNormEval, input, gamma, beta, running_mean, running_var, eps)


def _batch_norm_arguments(input, running_mean, running_var, weight, bias, training, momentum, eps):
    """Check batch_norm's arguments; return weight and bias as (C,) (torch takes any shape of C values)."""
    fn = "batch_norm"
    check_floating(fn, "input", input)
    if input.dim() < 2:
        raise RuntimeError(
            f"{fn}: input must be (N, C) or (N, C, *) with the channels in dimension 1, got shape "
            f"{tuple(input.shape)}; for a single sample add a batch dimension (input.unsqueeze(0))"
        )
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var must both be tensors or both be None")
    if training:
        m = input.shape[0] * math.prod(input.shape[2:])
        if m == 1:
            raise ValueError(
                f"{fn}: expected more than 1 value per channel when training, got input of shape "
                f"{tuple(input.shape)} (torch.Size({list(input.shape)})): the batch variance of a single "
                f"value is 0; train on a batch of at least 2, or normalise with the running statistics "
                f"(training=False, module.eval())"
            )
        if eps <= 0:
            raise ValueError(f"{fn}: eps must be positive during training (r = 1/√(σ² + ε)), got {eps}")
    elif eps < 0:
        raise ValueError(f"{fn}: eps must be non-negative, got {eps}")
    elif running_mean is None:
        raise RuntimeError(
            f"{fn}: eval mode (training=False) normalises with running_mean and running_var, which are "
            f"None; pass them, or training=True to normalise with the batch statistics"
        )
    if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool):
        raise TypeError(
            f"{fn}: momentum must be a float, got {momentum!r}; a cumulative average (torch.nn.BatchNorm's "
            f"momentum=None) is momentum = 1 / number of batches seen"
        )
    n_channels = input.shape[1]
    params = {"running_mean": running_mean, "running_var": running_var, "weight": weight, "bias": bias}
    for name, t in params.items():
        if t is None:
            continue
        check_tensor(fn, name, t)
        if t.numel() != n_channels or (name.startswith("running") and t.dim() != 1):
            expected = f"shape ({n_channels},)" if name.startswith("running") else f"{n_channels} values"
            raise RuntimeError(
                f"{fn}: {name} must hold one value per channel, {expected} for input of shape "
                f"{tuple(input.shape)} (C = {n_channels} in dimension 1), got shape {tuple(t.shape)}"
            )
        if t.device != input.device:
            raise RuntimeError(f"{fn}: {name} is on {t.device} but input is on {input.device}; move them to the same device")
        if name.startswith("running") and t.requires_grad:
            raise RuntimeError(
                f"{fn}: {name} requires grad, but batch norm is not differentiable with respect to its running "
                f"statistics (as in PyTorch); pass {name}.detach() or a buffer"
            )
    _check_parameter_dtypes(fn, input, params)
    return (None if weight is None else weight.reshape(n_channels)), (None if bias is None else bias.reshape(n_channels))


def _check_parameter_dtypes(fn, input, params):
    """PyTorch's rule: the statistics and parameters share one dtype, input's, or float32 for a
    float16 or bfloat16 input."""
    given = {name: t for name, t in params.items() if t is not None}
    allowed = (input.dtype, torch.float32) if input.dtype in _LOW_PRECISION else (input.dtype,)
    first = next(iter(given.items()), None)
    for name, t in given.items():
        if t.dtype not in allowed or t.dtype != first[1].dtype:
            expected = " or ".join(str(d) for d in allowed)
            raise RuntimeError(
                f"{fn}: {name} has dtype {t.dtype} but input has dtype {input.dtype}"
                + (f" and {first[0]} {first[1].dtype}" if t.dtype in allowed else "")
                + f"; the parameters must all be {expected} (e.g. {name}.to(input.dtype))"
            )


_BATCH_NORM_SHAPES = {
    torch.nn.BatchNorm1d: ((2, 3), "(N, C) or (N, C, L)"),
    torch.nn.BatchNorm2d: ((4,), "(N, C, H, W)"),
    torch.nn.BatchNorm3d: ((5,), "(N, C, D, H, W)"),
}


def _batch_norm_module_forward(self, input):
    """torch.nn's _BatchNorm.forward: the momentum, or 1 / num_batches_tracked for momentum=None
    (a cumulative average); batch statistics in training, or in eval when there are no running
    statistics; running statistics updated only when tracked and training."""
    dims, expected = next(v for cls, v in _BATCH_NORM_SHAPES.items() if isinstance(self, cls))
    if input.dim() not in dims:
        raise ValueError(
            f"{type(self).__name__}: expected {' or '.join(f'{d}D' for d in dims)} input {expected}, got "
            f"{input.dim()}D input of shape {tuple(input.shape)}"
        )
    factor = 0.0 if self.momentum is None else self.momentum
    if self.training and self.track_running_stats and self.num_batches_tracked is not None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
    use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
    tracked = not self.training or self.track_running_stats
    return batch_norm(input, self.running_mean if tracked else None, self.running_var if tracked else None,
                      self.weight, self.bias, use_batch_stats, factor, self.eps)


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
        # Its sums are matrix-vector products, which autocast would otherwise run in float16 or
        # bfloat16 when backward is called inside an autocast region.
        with torch.autocast(x.device.type, enabled=False):
            grad_x, grad_gamma, grad_beta = layer_norm_backward(ctx.needs_input_grad, ctx, g, g_mu, g_r, x, gamma,
                                                                mu, r)
        return grad_x, None, grad_gamma, grad_beta, None

    @staticmethod
    def jvp(ctx, dx, _, d_gamma, d_beta, __):
        """Forward mode: dy = γ dx̂ + dγ x̂ + dβ, with dx̂, dμ, dr from ``_normalize_jvp``."""
        x, gamma, mu, r = ctx.saved_tensors
        dtype, k = _computed_in(x), len(ctx.normalized_shape)
        x2, r2 = _rows(x, k).to(dtype), r.reshape(-1, 1).to(dtype)
        x_hat = (x2 - mu.reshape(-1, 1).to(dtype)) * r2
        if dx is None:
            dx_hat, d_mu, d_r = torch.zeros_like(x_hat), torch.zeros_like(r2), torch.zeros_like(r2)
        else:
            dx_hat, d_mu, d_r = _normalize_jvp(_rows(dx, k).to(dtype), x_hat, r2, 1)
        dy = dx_hat if gamma is None else dx_hat * gamma.reshape(-1).to(dtype)
        if d_gamma is not None:
            dy = dy + x_hat * d_gamma.reshape(-1).to(dtype)
        if d_beta is not None:
            dy = dy + d_beta.reshape(-1).to(dtype)
        return dy.reshape(x.shape).to(x.dtype), d_mu.reshape(mu.shape).to(mu.dtype), d_r.reshape(r.shape).to(r.dtype)


def layer_norm_backward(needs_input_grad, ctx, g, g_mu, g_r, x, gamma, mu, r):
    """dL/dγ = Σ g x̂, dL/dβ = Σ g (over the leading dimensions), dL/dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ x̂))
    with ĝ = γ g and mean over the normalised dimensions (see the module docstring), plus
    g_μ / D − g_r r² x̂ / D when the statistics themselves receive gradients.

    With x̂ = (x − μ) r, dL/dx is r γ g + b x + c with one (b, c) per row:
    b = −r² mean(ĝ x̂) − g_r r³ / D, c = −r mean(ĝ) + g_μ / D − b μ;
    Σ ĝ x̂ = r (Σ γ g x − μ Σ γ g) and Σ g x̂ = Σ r g x − Σ r μ g: the sums along a row are products
    with γ, those over rows products with r and r μ (``torch.mv``: one read of the matrix each).
    As in ``batch_norm_backward``, the one (R, D) tensor made is g x, into which dL/dx is written.
    """
    dtype, k = _computed_in(x), len(ctx.normalized_shape)
    x2 = _rows(x, k).to(dtype)                                           # (R, D)
    d = max(x2.shape[1], 1)                                              # D, and 1 for no entries (no 0/0)
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
        if needs_input_grad[2] and gamma is not None:
            grad_gamma = torch.mv(gx.t(), r) - torch.mv(g2.t(), r * mu)  # dL/dγ = Σ g x̂ = Σ r g x − Σ r μ g, (D,)
            grad_gamma = grad_gamma.reshape(ctx.normalized_shape).to(ctx.param_dtype)
        if needs_input_grad[3] and ctx.has_beta:
            grad_beta = torch.mv(g2.t(), torch.ones_like(r))             # dL/dβ = Σ g, (D,)
            grad_beta = grad_beta.reshape(ctx.normalized_shape).to(ctx.param_dtype)
    if needs_input_grad[0]:
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
        elif torch.is_grad_enabled():                                    # this backward is being differentiated
            g_hat = g2 if gamma1 is None else g2 * gamma1                # ĝ = γ g
            grad_x = torch.addcmul(torch.addcmul(c, x2, b), g_hat, r)    # r ĝ + b x + c
        elif gamma1 is None:                                             # into g x's buffer, spent
            grad_x = torch.addcmul(c, x2, b, out=gx).addcmul_(g2, r)
        else:                                                            # r (γ g + (b x + c) / r), likewise
            grad_x = torch.addcmul(c / r, x2, b / r, out=gx).addcmul_(g2, gamma1).mul_(r)
        grad_x = grad_x.reshape(x.shape).to(x.dtype)                     # dL/dx, (*, normalized_shape)
    return grad_x, grad_gamma, grad_beta


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """y = γ (x − μ) / √(σ² + ε) + β over the last len(normalized_shape) dimensions, as
    ``torch.nn.functional.layer_norm``.

    Shapes: input (*, normalized_shape); weight, bias normalized_shape (or None); the output has
    input's shape. A float16 or bfloat16 input may take float32 parameters.
    """
    fn = "layer_norm"
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
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            check_tensor(fn, name, t)
            if tuple(t.shape) != normalized_shape:
                raise RuntimeError(
                    f"{fn}: {name} must have shape normalized_shape {normalized_shape}, got {tuple(t.shape)}"
                )
            if t.device != input.device:
                raise RuntimeError(f"{fn}: {name} is on {t.device} but input is on {input.device}; move them to the same device")
    input, weight, bias = autocast(FLOAT32_ON_CUDA, input, weight, bias)
    _check_parameter_dtypes(fn, input, {"weight": weight, "bias": bias})
    y, _, _ = apply(LayerNorm, input, normalized_shape, weight, bias, eps)
    return y


# -- NumPy oracles: cs231n's staged forward and backward, one intermediate at a time -------------


def _normalize_numpy(x, axes, eps):
    """x̂ = (x − μ) / √(σ² + ε) over ``axes``, and the vjp dL/dx̂ ↦ dL/dx stage by stage."""
    m = math.prod(x.shape[a] for a in axes)
    with np.errstate(invalid="ignore", divide="ignore"):     # an empty set has no mean: NaN
        mu = x.sum(axis=axes, keepdims=True) / m
        xmu = x - mu
        var = (xmu ** 2).sum(axis=axes, keepdims=True) / m
        inv = 1 / np.sqrt(var + eps)
    x_hat = xmu * inv

    def vjp(dx_hat):
        dinv = (dx_hat * xmu).sum(axis=axes, keepdims=True)             # x̂ = xmu · inv
        dxmu = dx_hat * inv
        dvar = -0.5 * (var + eps) ** -1.5 * dinv                         # inv = (var + ε)^(−1/2)
        dxmu = dxmu + 2 * xmu * dvar / max(m, 1)                          # var = mean(xmu²)
        dmu = -dxmu.sum(axis=axes, keepdims=True)                        # xmu = x − μ
        return dxmu + dmu / max(m, 1)                                     # μ = mean(x)

    return x_hat, vjp


def batch_norm_numpy(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    c = x.shape[1]
    shape = (1, c) + (1,) * (x.ndim - 2)
    axes = (0,) + tuple(range(2, x.ndim))
    gamma = np.ones(shape) if weight is None else weight.reshape(shape)
    beta = np.zeros(shape) if bias is None else bias.reshape(shape)
    if training:
        x_hat, normalize_vjp = _normalize_numpy(x, axes, eps)
    else:
        inv = 1 / np.sqrt(running_var.reshape(shape) + eps)
        x_hat = (x - running_mean.reshape(shape)) * inv
        normalize_vjp = lambda dx_hat: dx_hat * inv                      # the statistics are constants
    y = gamma * x_hat + beta

    def vjp(g):
        dx = normalize_vjp(g * gamma)
        dgamma = None if weight is None else (g * x_hat).sum(axis=axes).reshape(weight.shape)
        dbeta = None if bias is None else g.sum(axis=axes).reshape(bias.shape)
        return dx, None, None, dgamma, dbeta

    return y, vjp


def layer_norm_numpy(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    k = len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    lead = tuple(range(x.ndim - k))
    x_hat, normalize_vjp = _normalize_numpy(x, axes, eps)
    gamma = 1.0 if weight is None else weight
    y = gamma * x_hat + (0.0 if bias is None else bias)

    def vjp(g):
        dx = normalize_vjp(g * gamma)
        dgamma = None if weight is None else (g * x_hat).sum(axis=lead)
        dbeta = None if bias is None else g.sum(axis=lead)
        return dx, None, dgamma, dbeta

    return y, vjp


# -- samples, errors, bench and registration -----------------------------------------------------


# Where float16 and bfloat16 cannot hold the input well enough to normalise it: 10 + N(0, 1) rounds
# to steps of 0.06 in bfloat16, and two values per channel give x̂ = ±1 and dL/dx ≈ 0 (ε alone).
# The offset is 10, not more: at 100, float32's own rounding of x (7.6e-6, times r), and PyTorch's
# layer-norm backward, which works from x rather than x − μ (off by 5e-5), reach float32's tolerance.
_WIDE = (torch.float64, torch.float32)


def _batch_norm_samples(gen):
    def sample(name, shape, training=True, stats=True, weight=True, bias=True, momentum=0.1, eps=1e-5, scale=1.0,
               offset=0.0, **options):
        c = shape[1]
        running = (randn(gen, c, requires_grad=False) * 0.1, torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
        gamma, beta = randn(gen, c), randn(gen, c)
        x = (randn(gen, *shape, requires_grad=False) * scale + offset).requires_grad_()
        args = (x, *(running if stats else (None, None)), gamma if weight else None, beta if bias else None,
                training, momentum, eps)
        return Sample(args, name=f"{name}, {'training' if training else 'eval'}", **options)

    samples = []
    for training in (True, False):
        samples += [
            sample("(N, C)", (8, 3), training),
            sample("(N, C, L)", (4, 3, 5), training),
            sample("(N, C, H, W)", (3, 2, 4, 3), training),
            sample("(N, C, D, H, W)", (2, 2, 3, 2, 2), training),
            sample("(N, C, L), no affine", (4, 3, 5), training, weight=False, bias=False),
            sample("(N, C, L), weight only", (4, 3, 5), training, bias=False),
            sample("(N, C, L), bias only", (4, 3, 5), training, weight=False),
            sample("(N, C, L), eps=1e-3", (4, 3, 5), training, eps=1e-3),
            sample("(1, C, L) one sample", (1, 3, 4), training),
            sample("(0, C) empty batch", (0, 3), training),
            sample("(N, C, 0) empty", (2, 3, 0), training),
            sample("x ~ 10 + N(0, 1)", (6, 3, 4), training, offset=10.0, dtypes=_WIDE),
            sample("x ~ N(0, 1e-4²), σ² ≪ ε", (6, 3, 4), training, scale=1e-4),
        ]
    samples += [
        sample("(N, C, L), no running statistics", (4, 3, 5), stats=False),
        sample("(N, C, L), momentum=0", (4, 3, 5), momentum=0.0),
        sample("(N, C, L), momentum=1", (4, 3, 5), momentum=1.0),
        sample("(N, C) N=2", (2, 4), dtypes=_WIDE),
        sample("(1, C) one sample", (1, 3), training=False),
    ]
    return samples


def _layer_norm_samples(gen):
    def sample(name, shape, k=1, weight=True, bias=True, eps=1e-5, scale=1.0, offset=0.0, as_list=False, **options):
        normalized = tuple(shape[len(shape) - k:])
        gamma, beta = randn(gen, *normalized), randn(gen, *normalized)
        x = (randn(gen, *shape, requires_grad=False) * scale + offset).requires_grad_()
        args = (x, list(normalized) if as_list else normalized, gamma if weight else None, beta if bias else None, eps)
        return Sample(args, name=name, **options)

    return [
        sample("(N, D)", (6, 5)),
        sample("(B, T, D)", (2, 3, 5)),
        sample("(N, C, H, W) over (C, H, W)", (2, 3, 2, 2), k=3),
        sample("(B, T, D) over (T, D), normalized_shape a list", (2, 3, 4), k=2, as_list=True),
        sample("(D,) unbatched", (5,)),
        sample("(N, D), no affine", (6, 5), weight=False, bias=False),
        sample("(N, D), weight only (bias=False)", (6, 5), bias=False),
        sample("(N, D), bias only", (6, 5), weight=False),
        sample("(N, D), eps=1e-3", (6, 5), eps=1e-3),
        # x̂ = 0 and dL/dx = 0 exactly; float32 leaves r·ulp(ĝ) ≈ 1e-5 of noise there (here and in PyTorch).
        sample("(N, 1), one value per row", (4, 1), dtypes=(torch.float64,)),
        sample("(0, D) empty batch", (0, 5)),
        sample("x ~ 10 + N(0, 1)", (6, 5), offset=10.0, dtypes=_WIDE),
        sample("x ~ N(0, 1e-4²), σ² ≪ ε", (6, 5), scale=1e-4),
    ]


def _x(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype)


def _stats(c=3, dtype=torch.float32):
    return torch.zeros(c, dtype=dtype), torch.ones(c, dtype=dtype)


_BATCH_NORM_ERRORS = (
    ErrorInput("N=1 in training", lambda F, nn: F.batch_norm(_x(1, 3), *_stats(), training=True), ValueError,
               r"more than 1 value per channel when training, got input of shape \(1, 3\)"),
    ErrorInput("(1, C, 1) in training", lambda F, nn: F.batch_norm(_x(1, 3, 1), None, None, training=True), ValueError,
               r"more than 1 value per channel when training, got input of shape \(1, 3, 1\)"),
    ErrorInput("nn.BatchNorm1d training on one sample", lambda F, nn: nn.BatchNorm1d(3)(_x(1, 3)), ValueError,
               r"more than 1 value per channel when training.*module\.eval\(\)"),
    ErrorInput("1-D input", lambda F, nn: F.batch_norm(_x(3), *_stats(), training=True), RuntimeError,
               r"input must be \(N, C\) or \(N, C, \*\).*got shape \(3,\)"),
    ErrorInput("running_mean of the wrong length", lambda F, nn: F.batch_norm(_x(4, 3), torch.zeros(4), torch.ones(3)),
               RuntimeError, r"running_mean must hold one value per channel, shape \(3,\).*got shape \(4,\)"),
    ErrorInput("weight of the wrong length", lambda F, nn: F.batch_norm(_x(4, 3), *_stats(), torch.ones(4)),
               RuntimeError, r"weight must hold one value per channel, 3 values.*got shape \(4,\)"),
    ErrorInput("bias of the wrong length", lambda F, nn: F.batch_norm(_x(4, 3, 2), *_stats(), None, torch.ones(2)),
               RuntimeError, r"bias must hold one value per channel, 3 values.*got shape \(2,\)"),
    ErrorInput("running_mean without running_var", lambda F, nn: F.batch_norm(_x(4, 3), torch.zeros(3), None,
                                                                              training=True),
               ValueError, r"running_mean and running_var must both be tensors or both be None"),
    ErrorInput("eval mode without running statistics", lambda F, nn: F.batch_norm(_x(4, 3), None, None), RuntimeError,
               r"eval mode .* running_mean and running_var, which are None"),
    ErrorInput("eps=0 in training", lambda F, nn: F.batch_norm(_x(4, 3), *_stats(), training=True, eps=0.0),
               ValueError, r"eps must be positive during training.*got 0\.0"),
    ErrorInput("negative eps in eval", lambda F, nn: F.batch_norm(_x(4, 3), *_stats(), eps=-1.0), ValueError,
               r"eps must be non-negative, got -1\.0"),
    ErrorInput("momentum=None", lambda F, nn: F.batch_norm(_x(4, 3), *_stats(), training=True, momentum=None),
               TypeError, r"momentum must be a float, got None.*1 / number of batches"),
    ErrorInput("int64 input", lambda F, nn: F.batch_norm(torch.ones(4, 3, dtype=torch.long), *_stats()),
               NotImplementedError, r"input must be a floating-point tensor, got torch\.int64"),
    ErrorInput("float64 input, float32 parameters",
               lambda F, nn: F.batch_norm(_x(4, 3, dtype=torch.float64), *_stats(), torch.ones(3)), RuntimeError,
               r"running_mean has dtype torch\.float32 but input has dtype torch\.float64"),
    ErrorInput("float32 input, bfloat16 weight",
               lambda F, nn: F.batch_norm(_x(4, 3), *_stats(), torch.ones(3, dtype=torch.bfloat16)), RuntimeError,
               r"weight has dtype torch\.bfloat16 but input has dtype torch\.float32"),
    ErrorInput("bfloat16 input, bfloat16 weight, float32 statistics",
               lambda F, nn: F.batch_norm(_x(4, 3, dtype=torch.bfloat16), *_stats(), torch.ones(3, dtype=torch.bfloat16)),
               RuntimeError, r"weight has dtype torch\.bfloat16 but input has dtype torch\.bfloat16 and running_mean "
                             r"torch\.float32"),
    ErrorInput("list input", lambda F, nn: F.batch_norm([[1.0, 2.0, 3.0]], *_stats()), TypeError,
               r"input must be a torch\.Tensor, got list"),
    ErrorInput("running_mean requiring grad",
               lambda F, nn: F.batch_norm(_x(4, 3), torch.zeros(3, requires_grad=True), torch.ones(3)), RuntimeError,
               r"running_mean requires grad, but batch norm is not differentiable with respect to its running"),
    ErrorInput("nn.BatchNorm2d on (N, C, L)", lambda F, nn: nn.BatchNorm2d(3)(_x(4, 3, 5)), ValueError,
               r"BatchNorm2d: expected 4D input \(N, C, H, W\), got 3D input of shape \(4, 3, 5\)"),
    ErrorInput("nn.BatchNorm1d on (N, C, H, W)", lambda F, nn: nn.BatchNorm1d(3)(_x(4, 3, 5, 5)), ValueError,
               r"BatchNorm1d: expected 2D or 3D input \(N, C\) or \(N, C, L\), got 4D"),
    ErrorInput("nn.BatchNorm1d with the wrong number of channels", lambda F, nn: nn.BatchNorm1d(4)(_x(5, 3)),
               RuntimeError, r"running_mean must hold one value per channel, shape \(3,\) for input of shape \(5, 3\)"),
)

_LAYER_NORM_ERRORS = (
    ErrorInput("normalized_shape not the input's last dimensions", lambda F, nn: F.layer_norm(_x(4, 3, 5), (4,)),
               RuntimeError, r"input of shape \(4, 3, 5\) does not end in normalized_shape \(4,\).*\(\*, 4\)"),
    ErrorInput("normalized_shape longer than the input", lambda F, nn: F.layer_norm(_x(3, 5), (2, 3, 5)),
               RuntimeError, r"input of shape \(3, 5\) does not end in normalized_shape \(2, 3, 5\)"),
    ErrorInput("normalized_shape ()", lambda F, nn: F.layer_norm(_x(3, 5), ()), RuntimeError,
               r"normalized_shape must name at least one dimension, got \(\)"),
    ErrorInput("normalized_shape an int", lambda F, nn: F.layer_norm(_x(3, 5), 5), TypeError,
               r"normalized_shape must be a tuple or list of ints, got 5; .*write \(5,\)"),
    ErrorInput("normalized_shape of floats", lambda F, nn: F.layer_norm(_x(3, 5), (5.0,)), TypeError,
               r"normalized_shape must hold ints, got \(5\.0,\)"),
    ErrorInput("weight of the wrong shape", lambda F, nn: F.layer_norm(_x(3, 5), (5,), torch.ones(4)), RuntimeError,
               r"weight must have shape normalized_shape \(5,\), got \(4,\)"),
    ErrorInput("bias of the wrong shape", lambda F, nn: F.layer_norm(_x(3, 5), (5,), None, torch.ones(1, 5)),
               RuntimeError, r"bias must have shape normalized_shape \(5,\), got \(1, 5\)"),
    ErrorInput("int64 input", lambda F, nn: F.layer_norm(torch.ones(3, 5, dtype=torch.long), (5,)),
               NotImplementedError, r"input must be a floating-point tensor, got torch\.int64"),
    ErrorInput("float64 input, float32 weight",
               lambda F, nn: F.layer_norm(_x(3, 5, dtype=torch.float64), (5,), torch.ones(5)), RuntimeError,
               r"weight has dtype torch\.float32 but input has dtype torch\.float64"),
    ErrorInput("list input", lambda F, nn: F.layer_norm([[1.0, 2.0]], (2,)), TypeError,
               r"input must be a torch\.Tensor, got list"),
    ErrorInput("nn.LayerNorm on the wrong last dimension", lambda F, nn: nn.LayerNorm(5)(_x(2, 4)), RuntimeError,
               r"input of shape \(2, 4\) does not end in normalized_shape \(5,\)"),
)


def _batch_norm_module_samples():
    def input(*shape):
        return lambda gen: (randn(gen, *shape),)

    configurations = [  # (name, class, args, kwargs, input shape)
        ("BatchNorm1d(4) on (N, C)", torch.nn.BatchNorm1d, (4,), {}, (8, 4)),
        ("BatchNorm1d(4) on (N, C, L)", torch.nn.BatchNorm1d, (4,), {}, (3, 4, 5)),
        ("BatchNorm1d(4) on (1, C, L)", torch.nn.BatchNorm1d, (4,), {}, (1, 4, 5)),
        ("BatchNorm1d(4, affine=False)", torch.nn.BatchNorm1d, (4,), {"affine": False}, (6, 4)),
        ("BatchNorm1d(4, momentum=None)", torch.nn.BatchNorm1d, (4,), {"momentum": None}, (6, 4, 2)),
        ("BatchNorm1d(4, track_running_stats=False)", torch.nn.BatchNorm1d, (4,), {"track_running_stats": False},
         (6, 4)),
        ("BatchNorm1d(4, eps=1e-3, momentum=0.3)", torch.nn.BatchNorm1d, (4,), {"eps": 1e-3, "momentum": 0.3},
         (6, 4)),
        ("BatchNorm2d(3)", torch.nn.BatchNorm2d, (3,), {}, (4, 3, 5, 5)),
        ("BatchNorm2d(3, affine=False)", torch.nn.BatchNorm2d, (3,), {"affine": False}, (4, 3, 5, 5)),
        ("BatchNorm2d(3, momentum=None)", torch.nn.BatchNorm2d, (3,), {"momentum": None}, (2, 3, 4, 4)),
        ("BatchNorm2d(3, track_running_stats=False)", torch.nn.BatchNorm2d, (3,), {"track_running_stats": False},
         (2, 3, 4, 4)),
        ("BatchNorm2d(3, affine=False, track_running_stats=False)", torch.nn.BatchNorm2d, (3,),
         {"affine": False, "track_running_stats": False}, (2, 3, 4, 4)),
        ("BatchNorm3d(2)", torch.nn.BatchNorm3d, (2,), {}, (2, 2, 3, 3, 3)),
    ]
    samples = {}
    for name, cls, args, kwargs, shape in configurations:
        samples.setdefault(cls, []).append(ModuleSample(name, input(*shape), args, kwargs))
    return {cls: tuple(found) for cls, found in samples.items()}


def _layer_norm_module_samples():
    def input(*shape):
        return lambda gen: (randn(gen, *shape),)

    configurations = [  # (name, args, kwargs, input shape)
        ("LayerNorm(5) on (N, D)", (5,), {}, (4, 5)),
        ("LayerNorm(5) on (B, T, D)", (5,), {}, (2, 3, 5)),
        ("LayerNorm(5) on (D,)", (5,), {}, (5,)),
        ("LayerNorm((3, 5))", ((3, 5),), {}, (2, 3, 5)),
        ("LayerNorm([3, 2, 2]) on (N, C, H, W)", ([3, 2, 2],), {}, (2, 3, 2, 2)),
        ("LayerNorm(5, elementwise_affine=False)", (5,), {"elementwise_affine": False}, (4, 5)),
        ("LayerNorm(5, bias=False)", (5,), {"bias": False}, (4, 5)),
        ("LayerNorm(5, eps=1e-3)", (5,), {"eps": 1e-3}, (4, 5)),
    ]
    return tuple(ModuleSample(name, input(*shape), args, kwargs) for name, args, kwargs, shape in configurations)


def _batch_norm_bench(device):
    def case(n, c, h, w):
        x = torch.randn(n, c, h, w, device=device, requires_grad=True)
        params = [torch.randn(c, device=device, requires_grad=True) for _ in range(2)]
        stats = (torch.zeros(c, device=device), torch.ones(c, device=device))
        return f"({n}, {c}, {h}, {w}), training", (x, *stats, *params, True), {}
    return [case(128, 32, 28, 28), case(128, 64, 14, 14)]


def _layer_norm_bench(device):
    x = torch.randn(64, 128, 512, device=device, requires_grad=True)
    params = [torch.randn(512, device=device, requires_grad=True) for _ in range(2)]
    return [("(64, 128, 512) over (512,)", (x, (512,), *params), {})]


# μ and r are kept in the input's dtype for float16 and bfloat16 input, as PyTorch keeps them: r
# rounded by up to 2⁻¹¹ (float16) or 2⁻⁸ (bfloat16) moves the larger entries of dL/dx (≈ 5) by
# 2.5e-3 or 2e-2, against the NumPy oracle, whatever the size of the entry compared.
_LAYER_NORM_TOLERANCES = {torch.float16: Tolerance(atol=4e-3, rtol=8e-3), torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2)}

# dL/dγ = Σ g x̂ sums terms of size ~1 over (N, *): PyTorch's CUDA kernel and this one round them to
# bfloat16 (2⁻⁸) at other places, which moved a sum of 36 terms by 0.02 (eval, an H100), over the
# default 1e-2 + 3e-2 |dL/dγ| where dL/dγ is small.
_BATCH_NORM_TOLERANCES = {torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2)}

register(Op(
    "batch_norm", batch_norm, torch.nn.functional.batch_norm, _batch_norm_samples, batch_norm_numpy,
    (BatchNorm, BatchNormEval),
    Derivative("y = γ x̂ + β, x̂ = (x − μ) / √(σ² + ε), μ σ² over (N, *) per channel (eval: running μ σ²)",
               "dL/dγ = Σ g x̂, dL/dβ = Σ g, dL/dx = γ r (g − mean g − x̂ mean(g x̂)), r = 1/√(σ² + ε); "
               "eval: dL/dx = γ r g",
               "x, g (N, C, *); γ, β, μ, σ² (C,)"),
    modules={cls: Module(lambda self, input: _batch_norm_module_forward(self, input), samples)
             for cls, samples in _batch_norm_module_samples().items()},
    bench=_batch_norm_bench,
    tolerances=_BATCH_NORM_TOLERANCES,
    errors=_BATCH_NORM_ERRORS,
))

register(Op(
    "layer_norm", layer_norm, torch.nn.functional.layer_norm, _layer_norm_samples, layer_norm_numpy, (LayerNorm,),
    Derivative("y = γ x̂ + β, x̂ = (x − μ) / √(σ² + ε), μ σ² over the last dimensions",
               "dL/dγ = Σ g x̂, dL/dβ = Σ g, dL/dx = r (ĝ − mean ĝ − x̂ mean(ĝ x̂)), ĝ = γ g",
               "x, g (*, normalized_shape); γ, β normalized_shape; μ, σ² (*, 1, …, 1)"),
    modules={torch.nn.LayerNorm: Module(
        lambda self, input: layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps),
        _layer_norm_module_samples())},
    bench=_layer_norm_bench,
    tolerances=_LAYER_NORM_TOLERANCES,
    errors=_LAYER_NORM_ERRORS,
))
