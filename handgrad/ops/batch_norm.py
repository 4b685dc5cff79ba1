"""Batch norm: each channel normalised over the batch (and its positions), y = γ x̂ + β, with the
batch's statistics in training and the running ones in eval.

The derivation is ``handgrad.ops.norm``'s over the set S of one channel's M = N·(spatial) values:
dL/dx = γ r (g − mean(g) − x̂ mean(g x̂)) (γ is one number per channel, so it leaves the means),
dL/dγ = Σ g x̂, dL/dβ = Σ g over S. In eval mode the statistics are constants: y is affine in x and
dL/dx = γ r g.

Instance norm is batch norm of each sample on its own: x (N, C, *) viewed as (1, N·C, *), a channel
for each sample's channel, γ and β repeated for each sample (as PyTorch computes it). It adds no
derivation: its gradients are batch norm's, and dL/dγ of the repeated γ sums over the samples.
"""

import math
import numbers
import warnings

import torch

from handgrad.ops._checks import check_floating, check_same_device, check_tensor, computed_in
from handgrad.ops._function import HandFunction, apply, derivation
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops.norm import (_channels, _check_parameter_dtypes, _per_channel, _sum, normalized_backward,
                               statistics_backward, statistics_jvp)


def _gamma(gamma, beta):
    """γ for the forward kernel: ones (y = 1 · x̂ + β, the same values) where β comes without γ, a
    case in which PyTorch's CUDA batch norm raises "tensor does not have a device" (with γ given it
    runs, and so does handgrad's with these ones; docs/differences.md)."""
    return torch.ones_like(beta) if gamma is None and beta is not None else gamma


class BatchNorm(HandFunction):
    """Training: y = γ x̂ + β with the batch's μ and σ² per channel; returns (y, μ, r).

    x (N, C, *); γ, β, μ, r and the running statistics (C,) (γ, β, running statistics may be None).
    """

    @staticmethod
    def forward(x, gamma, beta, running_mean, running_var, momentum, eps):
        if x.numel() == 0:                                   # no values: nothing to average, no update
            stats = x.new_zeros(x.shape[1], dtype=computed_in(x.dtype))
            return torch.empty_like(x), stats, stats.clone()
        # PyTorch's forward kernel. It also updates the running statistics in place:
        # running_mean ← (1 − m) running_mean + m μ, running_var ← (1 − m) running_var + m σ² M / (M − 1).
        return torch.native_batch_norm(x, _gamma(gamma, beta), beta, running_mean, running_var, True, momentum, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma, beta = inputs[:3]
        _, mu, r = output
        # An empty batch has no statistics to read: its gradients are zeros of its shapes.
        ctx.save_for_backward(x, gamma, *((mu, r) if x.numel() else (None, None)))
        ctx.save_for_forward(x, gamma, mu, r)
        ctx.beta_dtype = None if beta is None else beta.dtype
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_mu, g_r):
        x, gamma, mu, r = ctx.saved_tensors
        if mu is None:
            mu = r = x.new_zeros(x.shape[1], dtype=computed_in(x.dtype))
        grad_x, grad_gamma, grad_beta = batch_norm_backward(ctx.needs_input_grad, ctx.beta_dtype, g, g_mu, g_r,
                                                            x, gamma, mu, r)
        return grad_x, grad_gamma, grad_beta, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, d_gamma, d_beta, *_):
        """Forward mode: dy = γ dx̂ + dγ x̂ + dβ, dx̂ = ``normalized_backward`` of dx (the Jacobian is
        symmetric), dμ and dr from ``statistics_jvp``."""
        x, gamma, mu, r = ctx.saved_tensors
        dtype = computed_in(x.dtype)
        x3 = _channels(x).to(dtype)
        r3 = _per_channel(r, dtype)
        x_hat = (x3 - _per_channel(mu, dtype)) * r3
        if dx is None or x.numel() == 0:                     # no tangent, or no values to move the statistics
            dx_hat, d_mu, d_r = torch.zeros_like(x_hat), torch.zeros_like(r3), torch.zeros_like(r3)
        else:
            dx3 = _channels(dx).to(dtype)
            dx_hat = normalized_backward(dx3, x_hat, r3, (0, 2))
            d_mu, d_r = statistics_jvp(dx3, x_hat, r3, (0, 2))
        dy = dx_hat if gamma is None else dx_hat * _per_channel(gamma, dtype)
        if d_gamma is not None:
            dy = dy + x_hat * _per_channel(d_gamma, dtype)
        if d_beta is not None:
            dy = dy + _per_channel(d_beta, dtype)
        return dy.reshape(x.shape).to(x.dtype), d_mu.view(-1).to(mu.dtype), d_r.view(-1).to(r.dtype)


@derivation
def batch_norm_backward(wants, beta_dtype, g, g_mu, g_r, x, gamma, mu, r):
    """dL/dγ = Σ g x̂, dL/dβ = Σ g, dL/dx = γ r (g − mean(g) − x̂ mean(g x̂)), Σ and mean over (N, *)
    per channel (the module docstring), plus ``statistics_backward`` when μ and r themselves
    receive gradients. Only what ``wants`` (needs_input_grad of x, γ, β) asks for.
    Shapes: x, g, x̂ as (N, C, L); γ, μ, r as (1, C, 1); M = N·L."""
    dtype = computed_in(x.dtype)
    x3 = _channels(x).to(dtype)                                          # (N, C, L)
    # M = N·L entries per channel; an empty batch has none to average, and 1 keeps 0/0 out of the graph.
    m = max(x3.shape[0] * x3.shape[2], 1)
    r3 = _per_channel(r, dtype)
    x_hat = (x3 - _per_channel(mu, dtype)) * r3                          # x̂ = (x − μ) r
    g3 = None if g is None else _channels(g).to(dtype)
    grad_x = grad_gamma = grad_beta = None
    if g is not None and wants[1] and gamma is not None:
        grad_gamma = (g3 * x_hat).sum((0, 2)).to(gamma.dtype)            # dL/dγ = Σ g x̂, (C,)
    if g is not None and wants[2] and beta_dtype is not None:
        grad_beta = g3.sum((0, 2)).to(beta_dtype)                        # dL/dβ = Σ g, (C,)
    if wants[0]:
        g_hat = None if g is None else g3 if gamma is None else g3 * _per_channel(gamma, dtype)      # ĝ = γ g
        grad_x = _sum(None if g is None else normalized_backward(g_hat, x_hat, r3, (0, 2)),
                      statistics_backward(None if g_mu is None else _per_channel(g_mu, dtype),
                                          None if g_r is None else _per_channel(g_r, dtype), x_hat, r3, m))
        if grad_x is not None:
            grad_x = grad_x.expand_as(x3).reshape(x.shape).to(x.dtype)  # dL/dx, (N, C, *)
    return grad_x, grad_gamma, grad_beta


@batch_norm_backward.faster
def _batch_norm_backward_affine(wants, beta_dtype, g, g_mu, g_r, x, gamma, mu, r):
    """The same, with dL/dx written as a g + b x + c, one (a, b, c) per channel:
    a = γ r, b = −a r mean(g x̂) − g_r r³ / M, c = −a mean(g) + g_μ / M − b μ; and Σ g x̂ =
    r (Σ g x − μ Σ g). So x and g are read for two sums and two products, and the one (N, C, *)
    tensor made is g x, into which dL/dx is then written: making tensors the size of x (x − μ, x̂
    and the like) is what the reference spends most of its time on. Forward + backward of batch_norm
    in 0.47× the reference's time on (128, 32, 28, 28), 0.66× on (128, 64, 14, 14) (bench section 9)."""
    dtype = computed_in(x.dtype)
    x3 = _channels(x).to(dtype)                                          # (N, C, L)
    m = max(x3.shape[0] * x3.shape[2], 1)
    mu, r = mu.to(dtype), r.to(dtype)
    grad_x = grad_gamma = grad_beta = None
    if g is not None:
        g3 = _channels(g).to(dtype)
        gx = g3 * x3                                                     # g x, (N, C, L)
        sum_g = g3.sum((0, 2))                                           # Σ g, (C,)
        sum_g_xhat = r * (gx.sum((0, 2)) - mu * sum_g)                  # Σ g x̂ = r (Σ g x − μ Σ g), (C,)
        if wants[1] and gamma is not None:
            grad_gamma = sum_g_xhat.to(gamma.dtype)                      # dL/dγ = Σ g x̂, (C,)
        if wants[2] and beta_dtype is not None:
            grad_beta = sum_g.to(beta_dtype)                             # dL/dβ = Σ g, (C,)
    if wants[0]:
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
        else:                                                            # into g x's buffer, spent
            grad_x = torch.addcmul(c, x3, b, out=gx).addcmul_(g3, a)     # a g + b x + c
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
        dtype = computed_in(x.dtype)
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
        dtype = computed_in(x.dtype)
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
        check_same_device(fn, {"input": input, name: t})
        if name.startswith("running") and t.requires_grad:
            raise RuntimeError(
                f"{fn}: {name} requires grad, but batch norm is not differentiable with respect to its running "
                f"statistics (as in PyTorch); pass {name}.detach() or a buffer"
            )
    _check_parameter_dtypes(fn, input, params)
    return (None if weight is None else weight.reshape(n_channels)), (None if bias is None else bias.reshape(n_channels))



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


register(Op(
    "batch_norm", batch_norm, (BatchNorm, BatchNormEval),
    Derivative("y = γ x̂ + β, x̂ = (x − μ) / √(σ² + ε), μ σ² over (N, *) per channel (eval: running μ σ²)",
               "dL/dγ = Σ g x̂, dL/dβ = Σ g, dL/dx = γ r (g − mean g − x̂ mean(g x̂)), r = 1/√(σ² + ε); "
               "eval: dL/dx = γ r g",
               "x, g (N, C, *); γ, β, μ, σ² (C,)"),
    modules={cls: Module(_batch_norm_module_forward) for cls in _BATCH_NORM_SHAPES},
    # A 1-D input has no channel dimension: torch takes only an empty one (an empty output), which the
    # built-in computes; handgrad.functional refuses every 1-D input, naming the shape it needs.
    accepts=lambda input, *args, **kwargs: input.dim() >= 2,
))


# -- instance norm: batch norm of each sample on its own --------------------------------------------


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """y = γ (x − μ) / √(σ² + ε) + β with μ and σ² over the positions of each sample's channel, as
    ``torch.nn.functional.instance_norm``.

    Batch norm of x viewed as (1, N·C, *), with γ, β and the running statistics repeated for each of
    the N samples, as PyTorch computes it: with ``use_input_stats`` the statistics of each (n, c)
    (``BatchNorm``), and the running statistics, when given, updated with the mean over the samples of
    what batch norm gives each; without, the running statistics (``BatchNormEval``).

    Shapes: input (N, C, *); running_mean, running_var, weight, bias (C,) or None; the output has
    input's shape.
    """
    fn = "instance_norm"
    check_floating(fn, "input", input)
    if input.dim() < 2:
        raise RuntimeError(f"{fn}: input must be (N, C, *) with the channels in dimension 1, got shape "
                           f"{tuple(input.shape)}")
    if use_input_stats and math.prod(input.shape[2:]) == 1:
        raise ValueError(f"{fn}: expected more than 1 spatial element when training, got input size "
                         f"{list(input.shape)}: the variance of a single value is 0")
    if not use_input_stats and (running_mean is None or running_var is None):
        raise RuntimeError(f"{fn}: use_input_stats=False normalises with running_mean and running_var, which must "
                           f"be given")
    n, c = input.shape[:2]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None:
            check_tensor(fn, name, t)
            if t.numel() != c:
                raise RuntimeError(f"{fn}: {name} must hold one value per channel, {c} for input of shape "
                                   f"{tuple(input.shape)}, got shape {tuple(t.shape)}")
    mean, var, gamma, beta = (None if t is None else t.reshape(c).repeat(n)          # (N·C,)
                              for t in (running_mean, running_var, weight, bias))
    y = batch_norm(input.contiguous().view(1, n * c, *input.shape[2:]), mean, var, gamma, beta, use_input_stats,
                   momentum, eps)
    if use_input_stats and running_mean is not None:
        # Into an alias, as torch's instance_norm writes them: torch.func's transforms refuse a copy into
        # a tensor captured from outside them, not into a view of it made inside.
        torch.ops.aten.alias(running_mean).copy_(mean.view(n, c).mean(0))             # the samples' mean
        torch.ops.aten.alias(running_var).copy_(var.view(n, c).mean(0))
    return y.view(input.shape)


def _instance_norm_module_forward(self, input):
    """torch.nn's _InstanceNorm.forward: an input without its batch dimension taken as one sample;
    input statistics in training or when running statistics are not tracked."""
    self._check_input_dim(input)
    unbatched = input.dim() == self._get_no_batch_dim()
    channels = input.shape[0 if unbatched else 1]
    if channels != self.num_features:
        if self.affine:
            raise ValueError(f"{type(self).__name__}: expected input's size at dim={int(not unbatched)} to match "
                             f"num_features ({self.num_features}), but got: {channels}.")
        warnings.warn(f"input's size at dim={int(not unbatched)} does not match num_features. You can silence this "
                      f"warning by not passing in num_features, which is not used because affine=False")
    y = instance_norm(input.unsqueeze(0) if unbatched else input, self.running_mean, self.running_var, self.weight,
                      self.bias, self.training or not self.track_running_stats,
                      0.0 if self.momentum is None else self.momentum, self.eps)
    return y.squeeze(0) if unbatched else y


register(Op(
    "instance_norm", instance_norm, (BatchNorm, BatchNormEval),
    Derivative("y = γ x̂ + β, x̂ = (x − μ) / √(σ² + ε), μ σ² over (*) per sample and channel: "
               "batch norm of x as (1, N·C, *), γ β repeated N times",
               "batch norm's, each (n, c) a channel: dL/dx = γ r (g − mean g − x̂ mean(g x̂)), "
               "dL/dγ = Σ_n Σ g x̂, dL/dβ = Σ_n Σ g",
               "x, g (N, C, *); γ, β, running μ σ² (C,)"),
    modules={cls: Module(_instance_norm_module_forward)
             for cls in (torch.nn.InstanceNorm1d, torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)},
))
