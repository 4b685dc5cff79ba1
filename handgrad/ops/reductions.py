"""The reductions, by hand: sums, means, extrema, the variance and the vector norms.

A reduction maps x to y over ``dims``, each y made of the x of its slice. Backward puts g back at
every position of that slice (``unreduce``: the reduced dimensions restored, then expanded) and
multiplies it by ∂y/∂x there: 1 for the sum, 1/n for the mean, each maximum's share of g for the
extrema, 2 (x − μ) / (n − c) for the variance.
"""

import math

import torch

from handgrad.ops._checks import FLOAT32, FLOAT32_ON_CUDA, autocast, check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Op, register
from handgrad.ops.elementwise import NUMBER, Clamp, Div, Maximum, Minimum, Tensor, clamp, div, maximum, minimum


def _dims(dim, ndim):
    """The reduced dimensions, non-negative and sorted: all of them for None or (), and for a 0-d
    tensor, whose dim 0 or -1 names no dimension to put back in backward."""
    if dim is None or dim == () or dim == [] or ndim == 0:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(d % max(ndim, 1) for d in dims))


def unreduce(g, shape, dims, keepdim):
    """g of a reduction's output, back at every position of its input of ``shape``: the reduced
    dimensions put back (size 1) if they were dropped, then g expanded along them."""
    if not keepdim:
        for d in dims:
            g = g.unsqueeze(d)
    return g.expand(shape)


def terms(x, y):
    """n, the number of elements of x reduced into each element of y (0 for an empty x)."""
    return x.numel() // max(y.numel(), 1) if x.numel() else 0


class Sum(HandFunction):
    """y = Σ x over ``dims``: every x it sums moves y one for one, so dL/dx = g, put back and
    expanded along the summed dimensions."""

    @staticmethod
    def forward(x, dims, keepdim, dtype):
        return torch.sum(x, dims, keepdim=keepdim, dtype=dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, dims, keepdim, _ = inputs
        ctx.shape, ctx.dtype, ctx.dims, ctx.keepdim = x.shape, x.dtype, dims, keepdim

    @staticmethod
    def backward(ctx, g):
        return unreduce(g, ctx.shape, ctx.dims, ctx.keepdim).to(ctx.dtype), None, None, None   # dL/dx = g

    @staticmethod
    def jvp(ctx, dx, *_):
        return torch.sum(dx, ctx.dims, keepdim=ctx.keepdim)       # dy = Σ dx: the sum is linear


class Mean(HandFunction):
    """y = (1/n) Σ x over ``dims``, n the number of terms: dL/dx = g / n, expanded."""

    @staticmethod
    def forward(x, dims, keepdim, dtype):
        return torch.mean(x, dims, keepdim=keepdim, dtype=dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, dims, keepdim, _ = inputs
        ctx.shape, ctx.dtype, ctx.dims, ctx.keepdim = x.shape, x.dtype, dims, keepdim
        ctx.n = terms(x, output)

    @staticmethod
    def backward(ctx, g):
        return (unreduce(g / ctx.n, ctx.shape, ctx.dims, ctx.keepdim).to(ctx.dtype),   # dL/dx = g / n
                None, None, None)

    @staticmethod
    def jvp(ctx, dx, *_):
        return torch.mean(dx, ctx.dims, keepdim=ctx.keepdim)      # dy = mean dx: linear


class Amax(HandFunction):
    """y = max x over ``dims``. g goes to the maxima, split evenly between ties, as torch splits it:
    dL/dx = g 1[x = y] / (number of x equal to y)."""

    @staticmethod
    def forward(x, dims, keepdim):
        return torch.amax(x, dims, keepdim=keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, dims, keepdim = inputs
        ctx.save_for_backward(x, output)
        ctx.save_for_forward(x, output)
        ctx.dims, ctx.keepdim = dims, keepdim

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return amax_backward(g, x, y, ctx.dims, ctx.keepdim), None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        x, y = ctx.saved_tensors
        share = _max_share(x, y, ctx.dims, ctx.keepdim)
        return (dx * share).sum(ctx.dims, keepdim=ctx.keepdim)  # dy = the maxima's mean change


class Amin(Amax):
    """y = min x over ``dims``: g goes to the minima, split evenly between ties (the rule of ``Amax``,
    whose share 1[x = y] / count(x = y) reads the extremum whichever it is)."""

    @staticmethod
    def forward(x, dims, keepdim):
        return torch.amin(x, dims, keepdim=keepdim)


class MaxDim(HandFunction):
    """(y, i) = the maximum of x along ``dim`` and where it is (the minimum with ``smallest``): g goes
    to that one element, the index torch returns, and nothing to the others: dL/dx = g at i, else 0."""

    @staticmethod
    def forward(x, dim, keepdim, smallest):
        # A plain tuple, not torch.return_types.max: vmap's generated rule matches the outputs' pytree to
        # their batch dims, and a structseq unpacked on the way no longer matches its own spec.
        return tuple((torch.min if smallest else torch.max)(x, dim, keepdim=keepdim))

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, ctx.keepdim, _ = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])
        ctx.save_for_forward(output[1])
        ctx.shape = x.shape

    @staticmethod
    def backward(ctx, g, _):
        (i,) = ctx.saved_tensors
        if not ctx.keepdim:
            g, i = g.unsqueeze(ctx.dim), i.unsqueeze(ctx.dim)
        return g.new_zeros(ctx.shape).scatter(ctx.dim, i, g), None, None, None     # dL/dx = g at i, 0 elsewhere

    @staticmethod
    def jvp(ctx, dx, *_):
        (i,) = ctx.saved_tensors
        index = i if ctx.keepdim else i.unsqueeze(ctx.dim)
        dy = dx.gather(ctx.dim, index)                                               # dy = dx at i
        return (dy if ctx.keepdim else dy.squeeze(ctx.dim)), None


class Var(HandFunction):
    """σ² = Σ (x − μ)² / (n − c) over ``dims``, c the correction (1: Bessel's)."""

    @staticmethod
    def forward(x, dims, correction, keepdim):
        return torch.var(x, dims, correction=correction, keepdim=keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dims, ctx.correction, ctx.keepdim = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        ctx.n = terms(x, output)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return var_backward(g, x, ctx.dims, ctx.correction, ctx.keepdim, ctx.n), None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        (x,) = ctx.saved_tensors
        slope = var_backward(torch.ones((), dtype=x.dtype, device=x.device), x, ctx.dims, ctx.correction, True, ctx.n)
        return (slope * dx).sum(ctx.dims, keepdim=ctx.keepdim)


def var_backward(g, x, dims, correction, keepdim, n):
    """dL/dx = g · 2 (x − μ) / (n − c). The term through μ vanishes: ∂σ²/∂μ = −2 Σ (x − μ) / (n − c) = 0."""
    centred = x - x.mean(dims, keepdim=True)
    scale = 2 / (n - correction) if n != correction else math.inf   # n = c: torch's 2.0 / 0, NaN or ±inf
    return unreduce(g, x.shape, dims, keepdim) * centred * scale


class Std(HandFunction):
    """σ = √σ², the standard deviation over ``dims``: the square root's rule, then the variance's."""

    @staticmethod
    def forward(x, dims, correction, keepdim):
        return torch.std(x, dims, correction=correction, keepdim=keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dims, ctx.correction, ctx.keepdim = inputs
        ctx.save_for_backward(x, output)
        ctx.save_for_forward(x, output)
        ctx.n = terms(x, output)

    @staticmethod
    def backward(ctx, g):
        x, sigma = ctx.saved_tensors
        return std_backward(g, x, sigma, ctx.dims, ctx.correction, ctx.keepdim, ctx.n), None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        x, sigma = ctx.saved_tensors
        slope = std_backward(torch.ones_like(sigma), x, sigma, ctx.dims, ctx.correction, ctx.keepdim, ctx.n)
        return (slope * dx).sum(ctx.dims, keepdim=ctx.keepdim)


def std_backward(g, x, sigma, dims, correction, keepdim, n):
    """dL/dσ² = g / 2σ (the square root's rule; 0 where σ = 0, torch's choice at the kink), then
    dL/dx = dL/dσ² · 2 (x − μ) / (n − c), the variance's."""
    g_var = torch.where(sigma == 0, 0.0, g / (2 * sigma))
    return var_backward(g_var, x, dims, correction, keepdim, n)


class LogSumExp(HandFunction):
    """y = log Σ eˣ over ``dims``."""

    @staticmethod
    def forward(x, dims, keepdim):
        return torch.logsumexp(x, dims, keepdim=keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dims, ctx.keepdim = inputs
        ctx.save_for_backward(x, output)
        ctx.save_for_forward(x, output)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return logsumexp_backward(g, x, y, ctx.dims, ctx.keepdim), None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        x, y = ctx.saved_tensors
        p = torch.exp(x - unreduce(y, x.shape, ctx.dims, ctx.keepdim))
        return (p * dx).sum(ctx.dims, keepdim=ctx.keepdim)                   # dy = Σ softmax(x) dx


def logsumexp_backward(g, x, y, dims, keepdim):
    """dL/dx = g eˣ / Σ eˣ = g e^(x − y): the softmax of x, read from x and y."""
    return unreduce(g, x.shape, dims, keepdim) * torch.exp(x - unreduce(y, x.shape, dims, keepdim))


class Prod(HandFunction):
    """y = Π x along ``dim``."""

    @staticmethod
    def forward(x, dim, keepdim):
        return torch.prod(x, dim, keepdim=keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, ctx.keepdim = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        g = g if ctx.keepdim else g.unsqueeze(ctx.dim)
        return g * others_product(x, ctx.dim), None, None                   # dL/dx_i = g Π_{j≠i} x_j

    @staticmethod
    def jvp(ctx, dx, *_):
        (x,) = ctx.saved_tensors
        return (others_product(x, ctx.dim) * dx).sum(ctx.dim, keepdim=ctx.keepdim)


def others_product(x, dim):
    """Π_{j≠i} x_j along ``dim``, at every i: the product of those before i times that of those after,
    two exclusive cumulative products, with no division (a zero in x divides nothing)."""
    n = x.shape[dim]
    if n == 0:
        return torch.zeros_like(x)
    one = torch.ones_like(x.narrow(dim, 0, 1))
    before = torch.cat([one, x.narrow(dim, 0, n - 1)], dim).cumprod(dim)            # Π_{j<i} x_j
    after = torch.cat([x.narrow(dim, 1, n - 1), one], dim).flip(dim).cumprod(dim).flip(dim)   # Π_{j>i} x_j
    return before * after


def reverse_cumsum(t, dim):
    """Σ_{j ≥ i} t_j along ``dim``: the sums from each position to the end."""
    return t.flip(dim).cumsum(dim).flip(dim)


class Cumsum(HandFunction):
    """y_i = Σ_{j ≤ i} x_j along ``dim``: x_j enters every y_i from i = j on, so dL/dx_j = Σ_{i ≥ j} g_i."""

    @staticmethod
    def forward(x, dim, dtype):
        return torch.cumsum(x, dim, dtype=dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, _ = inputs
        ctx.dtype, ctx.out_dtype = x.dtype, output.dtype

    @staticmethod
    def backward(ctx, g):
        return reverse_cumsum(g, ctx.dim).to(ctx.dtype), None, None           # dL/dx_j = Σ_{i ≥ j} g_i

    @staticmethod
    def jvp(ctx, dx, *_):
        return torch.cumsum(dx, ctx.dim, dtype=ctx.out_dtype)                 # linear: dy = cumsum(dx)


class Cumprod(HandFunction):
    """y_i = Π_{j ≤ i} x_j along ``dim``."""

    @staticmethod
    def forward(x, dim, dtype):
        return torch.cumprod(x, dim, dtype=dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, _ = inputs
        ctx.save_for_backward(x, output)
        ctx.save_for_forward(x, output)
        ctx.dtype = x.dtype

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors                              # x kept in its dtype, computed in y's, as forward did
        return cumprod_backward(g, x.to(y.dtype), y, ctx.dim).to(ctx.dtype), None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        x, y = ctx.saved_tensors
        return cumprod_jvp(dx.to(y.dtype), x.to(y.dtype), y, ctx.dim)


def _first_zero(x, dim):
    """(the first zero of each slice along ``dim``, the positions before it), as masks."""
    zeros = (x == 0).cumsum(dim)
    return (x == 0) & (zeros == 1), zeros == 0


def cumprod_backward(g, x, y, dim):
    """dL/dx_j = Σ_{i ≥ j} g_i ∂y_i/∂x_j, ∂y_i/∂x_j = Π_{k ≤ i, k ≠ j} x_k.

    Before a slice's first zero z, that is y_i / x_j: dL/dx_j = Σ_{i ≥ j} g_i y_i / x_j (y_i = 0 from z
    on, so the sum stops there by itself; after z it is 0, as every product holds x_z). At z itself,
    Π_{k ≤ i, k ≠ z} x_k is y' = cumprod(x with x_z = 1): dL/dx_z = Σ_{i ≥ z} g_i y'_i. Zeros after
    the first receive 0 (a mask, so their second derivative is 0 too, though x_z moves them)."""
    first, _ = _first_zero(x, dim)
    safe = torch.where(x == 0, 1.0, x)                                        # no 0 / 0 where masked
    away = torch.where(x == 0, 0.0, reverse_cumsum(g * y, dim) / safe)       # Σ_{i ≥ j} g_i y_i / x_j
    y_without_z = torch.cumprod(torch.where(first, 1.0, x), dim)             # y', x_z taken out
    return torch.where(first, reverse_cumsum(g * y_without_z, dim), away)


def cumprod_jvp(dx, x, y, dim):
    """dy_i = Σ_{j ≤ i} dx_j Π_{k ≤ i, k ≠ j} x_k: y_i Σ_{j ≤ i} dx_j / x_j before the first zero z,
    dx_z y'_i from z on (every other term holds x_z = 0)."""
    first, before = _first_zero(x, dim)
    safe = torch.where(x == 0, 1.0, x)
    y_without_z = torch.cumprod(torch.where(first, 1.0, x), dim)
    dx_at_z = torch.where(first, dx, 0.0).sum(dim, keepdim=True)
    return torch.where(before, y * torch.cumsum(torch.where(before, dx / safe, 0.0), dim), dx_at_z * y_without_z)


def _max_share(x, y, dims, keepdim):
    """1[x = y] / (number of x equal to y): each maximum's share of g."""
    at_max = (x == unreduce(y, x.shape, dims, keepdim)).to(x.dtype)
    return at_max / at_max.sum(dims, keepdim=True)


def amax_backward(g, x, y, dims, keepdim):
    """dL/dx = g 1[x = y] / count(x = y)."""
    return unreduce(g, x.shape, dims, keepdim) * _max_share(x, y, dims, keepdim)


class VectorNorm(HandFunction):
    """y = ‖x‖_p = (Σ |x|ᵖ)^(1/p) over ``dims`` (p = inf: max |x|, p = −inf: min |x|, p = 0: the number
    of x ≠ 0)."""

    @staticmethod
    def forward(x, p, dims, keepdim):
        return torch.linalg.vector_norm(x, p, dims, keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.p, ctx.dims, ctx.keepdim = inputs
        ctx.save_for_backward(x, output)
        ctx.save_for_forward(x, output)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return norm_backward(g, x, y, ctx.p, ctx.dims, ctx.keepdim), None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        x, y = ctx.saved_tensors
        slope = norm_backward(torch.ones_like(y), x, y, ctx.p, ctx.dims, ctx.keepdim)
        return (slope * dx).sum(ctx.dims, keepdim=ctx.keepdim)               # dy = Σ ∂y/∂x dx


def norm_backward(g, x, y, p, dims, keepdim):
    """dL/dx = g ∂‖x‖/∂x: from y = (Σ |x|ᵖ)^(1/p), ∂y/∂x = sign(x) |x|ᵖ⁻¹ / yᵖ⁻¹ = sign(x) (|x| / y)ᵖ⁻¹.
    p = 2: g x / y; p = 1: g sign(x); p = ±inf: g sign(x) at the largest (smallest) |x|, split between
    ties; p = 0 counts, flat. Where y = 0, and for p < 1 where x = 0 (|x|ᵖ⁻¹ infinite, a kink of y),
    the gradient is 0 (torch's choice of subgradient)."""
    g, y_ = unreduce(g, x.shape, dims, keepdim), unreduce(y, x.shape, dims, keepdim)
    if p == 0:
        return torch.zeros_like(x)
    if p == 1:
        return g * x.sgn()                                                  # dL/dx = g sign(x)
    if math.isinf(p):
        return g * x.sgn() * _max_share(x.abs(), y, dims, keepdim)          # g sign(x) 1[|x| = y] / count
    if p == 2:
        return torch.where(y_ == 0, 0.0, g * x / y_)                        # dL/dx = g x / ‖x‖
    flat = (y_ == 0) | (x == 0) if p < 1 else y_ == 0
    return torch.where(flat, 0.0, g * x.sgn() * (x.abs() / y_).pow(p - 1))


# -- the faces, as torch's ----------------------------------------------------------------------------


def reduction_dims(fn, input, dim):
    check_tensor(fn, "input", input)
    dims = _dims(dim, input.dim())
    bad = [d for d in ((dim,) if isinstance(dim, int) else dim or ()) if not -max(input.dim(), 1) <= d < max(input.dim(), 1)]
    if bad:
        raise IndexError(f"{fn}: dim {bad[0]} is out of range for a tensor of {input.dim()} dimension(s)")
    return dims


def sum(input, dim=None, keepdim=False, *, dtype=None):
    """y = Σ input over ``dim`` (every dimension by default), as ``torch.sum``."""
    return apply(Sum, input, reduction_dims("sum", input, dim), keepdim, dtype)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """y = the mean of input over ``dim`` (every dimension by default), as ``torch.mean``."""
    dims = reduction_dims("mean", input, dim)
    if not (input.is_floating_point() or input.is_complex() or dtype is not None):
        raise RuntimeError(f"mean: input must be a floating-point tensor, got {input.dtype}")
    return apply(Mean, input, dims, keepdim, dtype)


def amax(input, dim=None, keepdim=False):
    """y = the maximum of input over ``dim`` (every dimension by default), as ``torch.amax``."""
    dims = reduction_dims("amax", input, dim)
    empty = [d for d in dims if input.shape[d] == 0]
    if empty:
        raise IndexError(f"amax: input of shape {tuple(input.shape)} is empty along dim {empty[0]}: the maximum of "
                         f"no elements is undefined")
    return apply(Amax, input, dims, keepdim)


def amin(input, dim=None, keepdim=False):
    """y = the minimum of input over ``dim`` (every dimension by default), as ``torch.amin``."""
    dims = reduction_dims("amin", input, dim)
    empty = [d for d in dims if input.shape[d] == 0]
    if empty:
        raise IndexError(f"amin: input of shape {tuple(input.shape)} is empty along dim {empty[0]}: the minimum of "
                         f"no elements is undefined")
    return apply(Amin, input, dims, keepdim)


def _extremum(fn, input, dim, keepdim, smallest):
    check_tensor(fn, "input", input)
    if isinstance(dim, Tensor):
        return (minimum if smallest else maximum)(input, dim)       # torch.max(a, b): elementwise
    if dim is None:
        if input.numel() == 0:
            raise RuntimeError(f"{fn}: input of shape {tuple(input.shape)} is empty: the {fn}imum of no elements is "
                               f"undefined (give dim to reduce along a dimension of size > 0)")
        return (amin if smallest else amax)(input)                  # all elements: g split between ties
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{fn}: dim must be an int, or other a tensor; got {type(dim).__name__}")
    d = (reduction_dims(fn, input, dim) or (0,))[0]               # a 0-d input: dim 0 or -1, () here
    if input.dim() and input.shape[d] == 0:
        raise IndexError(f"{fn}: input of shape {tuple(input.shape)} is empty along dim {d}")
    values, indices = apply(MaxDim, input, d, keepdim, smallest)
    return (torch.return_types.min if smallest else torch.return_types.max)((values, indices))


def max_(input, dim=None, keepdim=False):
    """As ``torch.max``: the maximum of all elements (``max(x)``), the maximum along ``dim`` and its
    index (``max(x, dim)``, a ``(values, indices)`` pair), or the elementwise maximum (``max(x, y)``)."""
    return _extremum("max", input, dim, keepdim, False)


def min_(input, dim=None, keepdim=False):
    """As ``torch.min``: ``max``'s counterpart."""
    return _extremum("min", input, dim, keepdim, True)


def var(input, dim=None, *, correction=1, keepdim=False):
    """σ² of input over ``dim`` (every dimension by default), as ``torch.var``; ``correction`` 1
    divides by n − 1 (Bessel's), 0 by n."""
    dims = reduction_dims("var", input, dim)
    if not input.is_floating_point():
        raise RuntimeError(f"var: input must be a floating-point tensor, got {input.dtype}")
    return apply(Var, input, dims, 1 if correction is None else correction, keepdim)


def std(input, dim=None, *, correction=1, keepdim=False):
    """σ of input over ``dim`` (every dimension by default), as ``torch.std``: √σ², ``correction`` as for var."""
    dims = reduction_dims("std", input, dim)
    if not input.is_floating_point():
        raise RuntimeError(f"std: input must be a floating-point tensor, got {input.dtype}")
    return apply(Std, input, dims, 1 if correction is None else correction, keepdim)


def var_mean(input, dim=None, *, correction=1, keepdim=False):
    """(σ², μ) of input over ``dim``, as ``torch.var_mean``: the variance's rule and the mean's."""
    check_tensor("var_mean", "input", input)
    return var(input, dim, correction=correction, keepdim=keepdim), mean(input, dim, keepdim)


def std_mean(input, dim=None, *, correction=1, keepdim=False):
    """(σ, μ) of input over ``dim``, as ``torch.std_mean``: the standard deviation's rule and the mean's."""
    check_tensor("std_mean", "input", input)
    return std(input, dim, correction=correction, keepdim=keepdim), mean(input, dim, keepdim)


def _unbiased(function):
    """``function`` (var, std, var_mean, std_mean) taking torch's call forms too: (input, dim, unbiased,
    keepdim), (input, unbiased), keywords."""
    def call(input, *args, **kwargs):
        if args and isinstance(args[0], bool):
            kwargs["unbiased"], args = args[0], args[1:]
        kwargs.update(zip(["dim", "unbiased", "keepdim"], args))
        unbiased = kwargs.pop("unbiased", None)
        if unbiased is not None:
            kwargs["correction"] = int(unbiased)
        return function(input, **kwargs)
    return call


def logsumexp(input, dim, keepdim=False):
    """y = log Σ eˣ over ``dim``, as ``torch.logsumexp``."""
    dims = reduction_dims("logsumexp", input, dim)
    if not input.is_floating_point():
        raise RuntimeError(f"logsumexp: input must be a floating-point tensor, got {input.dtype}")
    (input,) = autocast(FLOAT32_ON_CUDA, input)
    return apply(LogSumExp, input, dims, keepdim)


def prod(input, dim=None, keepdim=False, *, dtype=None):
    """y = Π input along ``dim`` (every element by default, as one slice), as ``torch.prod``."""
    check_tensor("prod", "input", input)
    if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool)):
        raise TypeError(f"prod: dim must be an int or None, got {type(dim).__name__}")
    (x,) = autocast(FLOAT32, input) if dtype is None else (input.to(dtype),)   # autocast leaves a dtype= alone
    dims = reduction_dims("prod", input, dim)
    if dim is None or x.dim() == 0:
        return apply(Prod, x.reshape(-1), 0, False)                 # every element, one slice: a 0-d y
    return apply(Prod, x, dims[0], keepdim)


def _scan(fn, function, input, dim, dtype):
    check_tensor(fn, "input", input)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{fn}: dim must be an int, got {type(dim).__name__}")
    d = reduction_dims(fn, input, dim)
    if input.dim() == 0:
        return apply(function, input.reshape(1), 0, dtype).reshape(())
    return apply(function, input, d[0], dtype)


def cumsum(input, dim, *, dtype=None):
    """y_i = Σ_{j ≤ i} x_j along ``dim``, as ``torch.cumsum``."""
    return _scan("cumsum", Cumsum, input, dim, dtype)


def cumprod(input, dim, *, dtype=None):
    """y_i = Π_{j ≤ i} x_j along ``dim``, as ``torch.cumprod``."""
    return _scan("cumprod", Cumprod, input, dim, dtype)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """y = ‖input‖_p over ``dim`` (every dimension by default), as ``torch.norm`` for vector norms:
    p a number (negative too), ±inf, or "fro" (p = 2)."""
    check_tensor("norm", "input", input)
    p = 2 if p == "fro" else p
    if isinstance(p, (str, bool)) or not isinstance(p, NUMBER):
        raise ValueError(f"norm: handgrad derives the vector norms, p a number, ±inf or 'fro'; got p={p!r}")
    if not input.is_floating_point():
        raise RuntimeError(f"norm: input must be a floating-point tensor, got {input.dtype}")
    dims = reduction_dims("norm", input, dim)
    x = input if dtype is None else input.to(dtype)
    return apply(VectorNorm, x, p, dims, keepdim)


def _norm_accepts(input, *args, **kwargs):
    """A vector norm written to no ``out``: p (or vector_norm's ord) a number or "fro"; not "nuc"."""
    p = args[0] if args else kwargs.get("p", kwargs.get("ord", 2))
    return kwargs.get("out") is None and (p == "fro" or isinstance(p, NUMBER) and not isinstance(p, bool))


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """y = x / max(‖x‖_p, ε) along ``dim``, as ``torch.nn.functional.normalize``: three rules (the
    norm, the clamp, the division) composed."""
    check_tensor("normalize", "input", input)
    return div(input, clamp(norm(input, p, dim, keepdim=True), eps))


# -- the table ----------------------------------------------------------------------------------------

register(Op(
    "sum", sum, (Sum,),
    Derivative("y = Σ x", "dL/dx = g, expanded along the summed dimensions", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.sum: None, Tensor.sum: None},
))
register(Op(
    "mean", mean, (Mean,),
    Derivative("y = Σ x / n", "dL/dx = g / n, expanded along the averaged dimensions", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.mean: None, Tensor.mean: None},
))
register(Op(
    "amax", amax, (Amax,),
    Derivative("y = max x", "dL/dx = g 1[x = y] / count(x = y)", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.amax: None, Tensor.amax: None},
))
register(Op(
    "amin", amin, (Amin,),
    Derivative("y = min x", "dL/dx = g 1[x = y] / count(x = y)", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.amin: None, Tensor.amin: None},
))
register(Op(
    "max", max_, (Amax, MaxDim, Maximum),
    Derivative("y = max x, along dim with its index i, or max(a, b)",
               "dL/dx = g at i along dim; g 1[x = y] / count(x = y) over all; as maximum for two tensors",
               "(*) → (), (*) without dim, or broadcast"),
    fused_by="the tensor algebra", intercepts={torch.max: None, Tensor.max: None},
))
register(Op(
    "min", min_, (Amin, MaxDim, Minimum),
    Derivative("y = min x, along dim with its index i, or min(a, b)", "as max's, at the minimum",
               "(*) → (), (*) without dim, or broadcast"),
    fused_by="the tensor algebra", intercepts={torch.min: None, Tensor.min: None},
))
register(Op(
    "var", var, (Var,),
    Derivative("σ² = Σ (x − μ)² / (n − c)", "dL/dx = g · 2 (x − μ) / (n − c)", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts=dict.fromkeys((torch.var, Tensor.var), _unbiased(var)),
))
register(Op(
    "std", std, (Std,),
    Derivative("σ = √σ²", "dL/dx = g / 2σ · 2 (x − μ) / (n − c): the square root's rule, then the variance's",
               "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts=dict.fromkeys((torch.std, Tensor.std), _unbiased(std)),
))
register(Op(
    "var_mean", var_mean, (Var, Mean),
    Derivative("(σ², μ)", "the variance's rule and the mean's, their gradients added", "(*) → two (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.var_mean: _unbiased(var_mean)},
))
register(Op(
    "std_mean", std_mean, (Std, Mean),
    Derivative("(σ, μ)", "the standard deviation's rule and the mean's, their gradients added",
               "(*) → two (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.std_mean: _unbiased(std_mean)},
))
register(Op(
    "logsumexp", logsumexp, (LogSumExp,),
    Derivative("y = log Σ eˣ", "dL/dx = g e^(x − y), the softmax of x", "(*) → (*) without dim"),
    fused_by="the tensor algebra",
    intercepts={torch.logsumexp: None, Tensor.logsumexp: None, torch.special.logsumexp: None},
))
register(Op(
    "prod", prod, (Prod,),
    Derivative("y = Π x", "dL/dx_i = g Π_{j≠i} x_j, the products before and after i (no division)",
               "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.prod: None, Tensor.prod: None},
))
register(Op(
    "cumsum", cumsum, (Cumsum,),
    Derivative("y_i = Σ_{j≤i} x_j", "dL/dx_j = Σ_{i≥j} g_i, g's sums from the end", "(*) → (*)"),
    fused_by="the tensor algebra", intercepts={torch.cumsum: None, Tensor.cumsum: None},
))
register(Op(
    "cumprod", cumprod, (Cumprod,),
    Derivative("y_i = Π_{j≤i} x_j", "dL/dx_j = Σ_{i≥j} g_i y_i / x_j (at a slice's first zero z: Σ_{i≥z} g_i y'_i, "
               "y' without x_z)", "(*) → (*)"),
    fused_by="the tensor algebra", intercepts={torch.cumprod: None, Tensor.cumprod: None},
))
register(Op(
    "norm", norm, (VectorNorm,),
    Derivative("y = ‖x‖ₚ = (Σ |x|ᵖ)^(1/p)", "dL/dx = g sign(x) (|x| / y)ᵖ⁻¹ (p = 2: g x / y)", "(*) → (*) without dim"),
    fused_by="the tensor algebra",
    intercepts={torch.norm: lambda input, p="fro", dim=None, keepdim=False, out=None, dtype=None:
                    norm(input, p, dim, keepdim, dtype),
                Tensor.norm: None,
                torch.linalg.vector_norm: lambda x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None:
                    norm(x, ord, dim, keepdim, dtype)},
    accepts=_norm_accepts,
))
register(Op(
    "normalize", normalize, (VectorNorm, Clamp, Div),
    Derivative("y = x / max(‖x‖ₚ, ε)", "the norm's, the clamp's and the division's rules, composed", "(*) → (*)"),
    fused_by="the tensor algebra",
    intercepts={torch.nn.functional.normalize: lambda input, p=2.0, dim=1, eps=1e-12, out=None:
                normalize(input, p, dim, eps)},
    accepts=lambda *args, out=None, **kwargs: out is None,
))
