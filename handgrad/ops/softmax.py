"""Softmax and log-softmax along one dimension: the seed's p = softmax(l), and log p.

Notation: x the logits, p = softmax(x) = eˣ / Σ eˣ along ``dim``, g = dL/d(output); every tensor
has the input's shape (*), and Σ sums along ``dim``, keeping it.
"""

import warnings

import numpy as np
import torch

from handgrad.ops._checks import FLOAT32_ON_CUDA, autocast, check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, ModuleSample, Op, register
from handgrad.testing import Sample, randn


def softmax_backward(g, p, dim):
    """dL/dx = p ∘ (g − Σ g ∘ p).

    From p_i = eˣⁱ / Σ_k eˣᵏ: dp_i/dx_j = p_i (1[i = j] − p_j), so dL/dx_j = Σ_i g_i p_i (1[i = j] − p_j)
    = p_j (g_j − Σ_i g_i p_i).
    """
    gp = g * p
    return gp - p * gp.sum(dim, keepdim=True)


def log_softmax_backward(g, p, dim):
    """dL/dx = g − p Σ g, with p = softmax(x) = exp(log p).

    From log p_i = x_i − log Σ_k eˣᵏ: d log p_i/dx_j = 1[i = j] − p_j, so dL/dx_j = g_j − p_j Σ_i g_i.
    The cross-entropy's backward is this with g = −r a (see ``handgrad.ops.loss``).
    """
    return g - p * g.sum(dim, keepdim=True)


class Softmax(HandFunction):
    """p = softmax(x) along ``dim``."""

    @staticmethod
    def forward(x, dim):
        return torch.softmax(x, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)                        # the derivative needs only p
        ctx.save_for_forward(output)
        ctx.dim = inputs[1]

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        return softmax_backward(g, p, ctx.dim), None

    @staticmethod
    def jvp(ctx, dx, _):
        """Forward mode: dp = p ∘ (dx − Σ p ∘ dx), the same Jacobian (it is symmetric) times dx."""
        (p,) = ctx.saved_tensors
        return softmax_backward(dx, p, ctx.dim)


class LogSoftmax(HandFunction):
    """log p = log softmax(x) = x − log Σ eˣ along ``dim``."""

    @staticmethod
    def forward(x, dim):
        return torch.log_softmax(x, dim)                     # x − max − log Σ e^(x − max): no overflow

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)
        ctx.dim = inputs[1]

    @staticmethod
    def backward(ctx, g):
        (log_p,) = ctx.saved_tensors
        return log_softmax_backward(g, log_p.exp(), ctx.dim), None

    @staticmethod
    def jvp(ctx, dx, _):
        """Forward mode: d log p = dx − Σ p ∘ dx."""
        (log_p,) = ctx.saved_tensors
        return dx - (log_p.exp() * dx).sum(ctx.dim, keepdim=True)


def _arguments(fn, input, dim, dtype, stacklevel):
    check_tensor(fn, "input", input)
    if dim is None:
        warnings.warn(
            f"Implicit dimension choice for {fn} has been deprecated. Change the call to include dim=X as an argument.",
            stacklevel=stacklevel,
        )
        dim = 0 if input.dim() in (0, 1, 3) else 1
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{fn}: dim must be an int, got {dim!r}")
    if not -max(input.dim(), 1) <= dim < max(input.dim(), 1):
        raise IndexError(
            f"{fn}: dim {dim} is out of range for a tensor of {input.dim()} dimensions (shape "
            f"{tuple(input.shape)}): expected it in [{-max(input.dim(), 1)}, {max(input.dim(), 1) - 1}]"
        )
    if dtype is not None:
        input = input.to(dtype)
    if not input.is_floating_point():
        raise RuntimeError(f"{fn}: input must be floating point (or pass dtype=), got {input.dtype}")
    (input,) = autocast(FLOAT32_ON_CUDA, input)
    return input, dim % max(input.dim(), 1)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(x)_i = eˣⁱ / Σ_k eˣᵏ along ``dim``, as ``torch.nn.functional.softmax``."""
    input, dim = _arguments("softmax", input, dim, dtype, _stacklevel)
    return apply(Softmax, input, dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log softmax(x)_i = x_i − log Σ_k eˣᵏ along ``dim``, as ``torch.nn.functional.log_softmax``."""
    input, dim = _arguments("log_softmax", input, dim, dtype, _stacklevel)
    return apply(LogSoftmax, input, dim)


def softmax_numpy(x, dim=None, _stacklevel=3, dtype=None):
    """The seed's softmax, shifted by the maximum (``C = np.max(vec)``), and its Jacobian product."""
    dim = dim if x.ndim else None
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    p = e / e.sum(axis=dim, keepdims=True)
    return p, lambda g: (p * (g - (g * p).sum(axis=dim, keepdims=True)),)


def log_softmax_numpy(x, dim=None, _stacklevel=3, dtype=None):
    dim = dim if x.ndim else None
    shifted = x - x.max(axis=dim, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    return log_p, lambda g: (g - np.exp(log_p) * g.sum(axis=dim, keepdims=True),)


def _samples(gen):
    forms = {
        "(N, C), dim=1": ((6, 5), 1, 1.0),
        "(N, C), dim=0": ((6, 5), 0, 1.0),
        "(N, C), dim=-1": ((6, 5), -1, 1.0),
        "(B, C, H, W), dim=1": ((2, 3, 4, 2), 1, 1.0),
        "(B, C, H, W), dim=3": ((2, 3, 4, 2), 3, 1.0),
        "(C,), dim=0": ((5,), 0, 1.0),
        "0-d, dim=0": ((), 0, 1.0),
        "(0, C) empty, dim=1": ((0, 5), 1, 1.0),
        "(N, 1) one class": ((4, 1), 1, 1.0),
        "logits ~ N(0, 100²)": ((6, 5), 1, 100.0),
    }
    return [Sample((randn(gen, *shape, scale=scale), dim), name=name) for name, (shape, dim, scale) in forms.items()]


def _bench(device):
    return [("(1024, 10), dim=1", (torch.randn(1024, 10, device=device, requires_grad=True), 1), {}),
            ("(64, 1000), dim=1", (torch.randn(64, 1000, device=device, requires_grad=True), 1), {})]


SHAPES = "x, p, g (*); Σ along dim"


def _module_samples():
    return tuple(ModuleSample(f"dim={dim}", lambda gen: (randn(gen, 2, 4, 3),), (), {"dim": dim}) for dim in (1, -1, 0))

register(Op(
    "softmax", softmax, torch.nn.functional.softmax, _samples, softmax_numpy, (Softmax,),
    Derivative("p = eˣ / Σ eˣ", "dL/dx = p ∘ (g − Σ g ∘ p)", SHAPES),
    modules={torch.nn.Softmax: Module(lambda self, input: softmax(input, self.dim, _stacklevel=5), _module_samples())},
    bench=_bench,
))

register(Op(
    "log_softmax", log_softmax, torch.nn.functional.log_softmax, _samples, log_softmax_numpy, (LogSoftmax,),
    Derivative("y = log p = x − log Σ eˣ", "dL/dx = g − p Σ g", SHAPES),
    modules={torch.nn.LogSoftmax: Module(lambda self, input: log_softmax(input, self.dim, _stacklevel=5), _module_samples())},
    bench=_bench,
))
