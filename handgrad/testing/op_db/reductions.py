"""The reductions' cases (``handgrad.ops.reductions``): NumPy oracles, samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, list_input, without, x32
from handgrad.testing.op_db.elementwise import leaf, maximum_numpy, minimum_numpy


# -- NumPy oracles: (y, vjp), the vjp giving one gradient per positional argument -----------------------


def _axes(dim, ndim):
    """NumPy's axes of a reduction over ``dim``: every axis for None, () or a 0-d array."""
    if dim is None or dim == () or dim == [] or ndim == 0:
        return tuple(range(ndim))
    return tuple(sorted(d % ndim for d in ((dim,) if isinstance(dim, int) else dim)))


def _spread(g, shape, axes, keepdim):
    """g of a reduction back at every position of its input: the reduced axes put back, then broadcast."""
    g = np.asarray(g) if keepdim else np.expand_dims(g, axes)
    return np.broadcast_to(g, shape).copy()


def sum_numpy(x, dim=None, keepdim=False, dtype=None):
    axes = _axes(dim, x.ndim)
    return x.sum(axis=axes, keepdims=keepdim), lambda g: (_spread(g, x.shape, axes, keepdim),)


def mean_numpy(x, dim=None, keepdim=False, dtype=None):
    """y = Σ x / n, n the number of terms of each mean: dL/dx = g / n."""
    axes = _axes(dim, x.ndim)
    n = int(np.prod([x.shape[a] for a in axes]))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = x.sum(axis=axes, keepdims=keepdim) / n
    return y, lambda g: (_spread(g / n, x.shape, axes, keepdim),)


def _extremum_numpy(x, dim, keepdim, extremum):
    """y = the extremum of x; g goes to the elements equal to y, shared evenly between them."""
    axes = _axes(dim, x.ndim)
    y = extremum(x, axis=axes, keepdims=True)
    at = (x == y).astype(np.float64)
    share = at / at.sum(axis=axes, keepdims=True)
    return (y if keepdim else np.squeeze(y, axes)), lambda g: (_spread(g, x.shape, axes, keepdim) * share,)


def amax_numpy(x, dim=None, keepdim=False):
    return _extremum_numpy(x, dim, keepdim, np.max)


def amin_numpy(x, dim=None, keepdim=False):
    return _extremum_numpy(x, dim, keepdim, np.min)


def _along_numpy(x, dim, keepdim, pick):
    """The extremum along ``dim`` and the index of its first occurrence (``pick``, np.argmax or np.argmin: torch's
    index on the CPU where the values differ), as a (values, indices) pair; g goes to that one element."""
    x1 = x.reshape(1) if x.ndim == 0 else x                     # a 0-d input: its one element, dim 0 or -1
    axis = dim % x1.ndim
    i = np.expand_dims(pick(x1, axis=axis), axis)
    kept = (lambda a: a.reshape(())) if x.ndim == 0 else (lambda a: a if keepdim else np.squeeze(a, axis))

    def vjp(g):
        grad = np.zeros(x1.shape)
        np.put_along_axis(grad, i, np.reshape(g, i.shape), axis)
        return (grad.reshape(x.shape),)

    return (kept(np.take_along_axis(x1, i, axis)), kept(i)), vjp


def max_numpy(x, dim=None, keepdim=False):
    """torch.max's three forms: every element (amax's oracle, ties sharing g), the maximum along an int dim and
    its index, or the elementwise maximum with a second tensor (maximum's oracle)."""
    if isinstance(dim, np.ndarray):
        return maximum_numpy(x, dim)
    if dim is None:
        return amax_numpy(x)
    return _along_numpy(x, dim, keepdim, np.argmax)


def min_numpy(x, dim=None, keepdim=False):
    if isinstance(dim, np.ndarray):
        return minimum_numpy(x, dim)
    if dim is None:
        return amin_numpy(x)
    return _along_numpy(x, dim, keepdim, np.argmin)


def var_numpy(x, dim=None, *, correction=1, keepdim=False):
    """σ² = Σ (x − μ)² / (n − c), n the number of terms of each: dL/dx = g · 2 (x − μ) / (n − c) (the term
    through μ is g · Σ −2 (x − μ) / (n − c) / n = 0); NaN or ±inf for n = c, and NaN for n = 0 (no mean to
    centre on), as torch's."""
    axes = _axes(dim, x.ndim)
    n = int(np.prod([x.shape[a] for a in axes]))
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = x - x.sum(axis=axes, keepdims=True) / n
        y = (centred * centred).sum(axis=axes, keepdims=keepdim) / np.float64(n - correction)
    y = y if n else np.full(y.shape, np.nan)

    def vjp(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (_spread(g, x.shape, axes, keepdim) * centred * (2 / np.float64(n - correction)),)

    return y, vjp


def std_numpy(x, dim=None, *, correction=1, keepdim=False):
    """σ = √σ²: dL/dσ² = g / 2σ (0 where σ = 0), then the variance's vjp."""
    v, var_vjp = var_numpy(x, dim, correction=correction, keepdim=keepdim)
    sigma = np.sqrt(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sigma, lambda g: var_vjp(np.where(sigma == 0, 0.0, g / (2 * sigma)))


def _with_mean(spread):
    """(σ² or σ, μ) and the sum of the two vjps."""
    def oracle(x, dim=None, *, correction=1, keepdim=False):
        s, s_vjp = spread(x, dim, correction=correction, keepdim=keepdim)
        m, m_vjp = mean_numpy(x, dim, keepdim)
        return (s, m), lambda g_s, g_m: (s_vjp(g_s)[0] + m_vjp(g_m)[0],)
    return oracle


var_mean_numpy, std_mean_numpy = _with_mean(var_numpy), _with_mean(std_numpy)


def logsumexp_numpy(x, dim, keepdim=False):
    """y = m + log Σ e^(x − m), m the maximum; dL/dx = g e^(x − y)."""
    axes = _axes(dim, x.ndim)
    m = x.max(axis=axes, keepdims=True) if x.size else np.zeros([1] * x.ndim)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(np.isfinite(m), m, 0.0)
        y = m + np.log(np.exp(x - m).sum(axis=axes, keepdims=True))
        return (y if keepdim else np.squeeze(y, axes)), lambda g: (_spread(g, x.shape, axes, keepdim) * np.exp(x - y),)


def prod_numpy(x, dim=None, keepdim=False, dtype=None):
    """y = Π x; dL/dx_i = g Π_{j≠i} x_j, each product taken with x_i left out (no division)."""
    flat = dim is None
    a = x.reshape(-1) if flat else x
    d = 0 if flat else dim % max(a.ndim, 1)
    a = a.reshape(1) if a.ndim == 0 else a
    moved = np.moveaxis(a, d, -1)
    others = np.stack([np.prod(np.delete(moved, i, axis=-1), axis=-1) for i in range(moved.shape[-1])], -1) \
        if moved.shape[-1] else moved.copy()
    others = np.moveaxis(others, -1, d)
    y = np.prod(a, axis=d, keepdims=keepdim and not flat and x.ndim > 0)
    y = y.reshape(()) if flat or x.ndim == 0 else y

    def vjp(g):
        g = np.asarray(g)
        g = g.reshape([1] * a.ndim) if flat or x.ndim == 0 else (g if keepdim else np.expand_dims(g, d))
        return ((g * others).reshape(x.shape),)

    return y, vjp


def cumsum_numpy(x, dim, dtype=None):
    """y_i = Σ_{j≤i} x_j; dL/dx_j = Σ_{i≥j} g_i."""
    a = x.reshape(1) if x.ndim == 0 else x
    d = dim % a.ndim
    return np.cumsum(a, axis=d).reshape(x.shape), \
        lambda g: (np.flip(np.cumsum(np.flip(np.reshape(g, a.shape), d), axis=d), d).reshape(x.shape),)


def cumprod_numpy(x, dim, dtype=None):
    """y_i = Π_{j≤i} x_j; dL/dx_j = Σ_{i≥j} g_i Π_{k≤i, k≠j} x_k, each product taken with x_j set to 1."""
    a = np.moveaxis(x.reshape(1) if x.ndim == 0 else x, dim % max(x.ndim, 1), -1)
    n = a.shape[-1]

    def vjp(g):
        g = np.moveaxis(np.reshape(g, np.moveaxis(a, -1, dim % max(x.ndim, 1)).shape), dim % max(x.ndim, 1), -1)
        grads = []
        for j in range(n):
            without = np.cumprod(np.where(np.arange(n) == j, 1.0, a), axis=-1)   # Π_{k≤i, k≠j} x_k
            grads.append((g * without)[..., j:].sum(-1))
        grad = np.stack(grads, -1) if n else np.zeros(a.shape)
        return (np.moveaxis(grad, -1, dim % max(x.ndim, 1)).reshape(x.shape),)

    y = np.moveaxis(np.cumprod(a, axis=-1), -1, dim % max(x.ndim, 1)).reshape(x.shape)
    return y, vjp


def norm_numpy(x, p="fro", dim=None, keepdim=False, dtype=None):
    """‖x‖_p = (Σ |x|ᵖ)^(1/p) and g sign(x) (|x| / ‖x‖)ᵖ⁻¹, 0 where ‖x‖ = 0 and, for p < 1, where x = 0 (p = ±inf:
    g sign(x) at the largest (smallest) |x|, ties split; p = 0: the count of x ≠ 0, flat)."""
    p = 2 if p == "fro" else p
    axes = tuple(range(x.ndim)) if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
    a = np.abs(x)
    if np.isinf(p):
        y = (a.max if p > 0 else a.min)(axis=axes, keepdims=True)
        at = (a == y).astype(x.dtype)
        slope = np.sign(x) * at / at.sum(axis=axes, keepdims=True)
    elif p == 0:
        y = (a != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
        slope = np.zeros_like(x)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = (a ** p).sum(axis=axes, keepdims=True) ** (1 / p)
            slope = np.where((y == 0) | ((a == 0) & (p < 1)), 0.0, np.sign(x) * (a / y) ** (p - 1))
    out = y if keepdim else y.reshape([n for i, n in enumerate(x.shape) if i not in [d % max(x.ndim, 1) for d in axes]])

    def vjp(g):
        g = np.asarray(g).reshape(y.shape)
        return (g * slope,)

    return out, vjp


def normalize_numpy(x, p=2.0, dim=1, eps=1e-12):
    """x / max(‖x‖_p, ε), through the quotient rule: dL/dx = g / n − x Σ(g x) / n² · ∂n/∂x."""
    a = np.abs(x)
    n = (a ** p).sum(axis=dim, keepdims=True) ** (1 / p)
    d = np.maximum(n, eps)
    y = x / d

    def vjp(g):
        slope = np.where(n >= eps, np.sign(x) * (a / np.where(n == 0, 1, n)) ** (p - 1), 0.0)   # ∂d/∂x
        return (g / d - slope * (g * x).sum(axis=dim, keepdims=True) / d ** 2,)

    return y, vjp


# -- samples --------------------------------------------------------------------------------------------


def _reduction_samples(positive=False, dtype=False, mean=False):
    """Every way to name the reduced dimensions, keepdim, 0-d and empty inputs."""
    def samples(gen):
        forms = {
            "(N, D), every dim (default)": ((4, 5), {}),
            "(N, D), dim=1": ((4, 5), {"dim": 1}),
            "(N, L, E), dim=-1": ((2, 3, 4), {"dim": -1}),
            "(N, L, E), dim=(0, 2)": ((2, 3, 4), {"dim": (0, 2)}),
            "(N, L, E), dim=[-1, 0], keepdim": ((2, 3, 4), {"dim": [-1, 0], "keepdim": True}),
            "(N, L, E), dim=1, keepdim": ((2, 3, 4), {"dim": 1, "keepdim": True}),
            "(N, D), dim=None, keepdim": ((4, 5), {"dim": None, "keepdim": True}),
            "(N, D), dim=()": ((4, 5), {"dim": ()}),
            "(N, D), positional dim and keepdim": ((4, 5), (0, True)),
            "0-d": ((), {}),
            "0-d, dim=0": ((), {"dim": 0}),
            "0-d, dim=-1, keepdim": ((), {"dim": -1, "keepdim": True}),
            "(0, D), dim=1, empty": ((0, 5), {"dim": 1}),
        }
        if dtype:
            forms["(N, D), dim=1, dtype=float64"] = ((4, 5), {"dim": 1, "dtype": torch.float64})
        if not mean:
            forms["(0, D), dim=0, a sum of nothing"] = ((0, 5), {"dim": 0})
        found = []
        for name, (shape, options) in forms.items():
            x = randn(gen, *shape)
            args, kwargs = ((x, *options), {}) if isinstance(options, tuple) else ((x,), options)
            found.append(Sample(args, kwargs, name))
        if mean:
            found.append(Sample((randn(gen, 0, 5),), {"dim": 0}, "(0, D), dim=0, a mean of nothing: NaN",
                                gradcheck=False))
        return found
    return samples


def _two_extrema(gen, smallest=False):
    """(3, 4) draws of which two equal elements are the maximum (the minimum with ``smallest``), a leaf."""
    with torch.no_grad():
        x = randn(gen, 3, 4, requires_grad=False)
        x[0, 1] = x[2, 3] = x.min() - 0.5 if smallest else x.max() + 0.5
    return x.requires_grad_()


def _amax_samples(smallest=False):
    """The reductions' samples, then ties of the maxima (of the minima with ``smallest``), which share g evenly
    (a kink: no gradcheck)."""
    word = "minima" if smallest else "maxima"

    def samples(gen):
        # No extremum over an empty dimension: that is a bad input.
        found = [s for s in _reduction_samples()(gen) if s.name != "(0, D), dim=0, a sum of nothing"]
        with torch.no_grad():
            x = randn(gen, 4, 5, requires_grad=False)
            top = x.amin(1) - 1.0 if smallest else x.amax(1) + 1.0
            x[:, 1], x[:, 3] = top, top                          # two extrema in every row
            rows_3 = x.clone()
            rows_3[:, 4] = top                                   # three
        found += [Sample((x.requires_grad_(), 1), name=f"two {word} in every row, dim=1", gradcheck=False),
                  Sample((rows_3.requires_grad_(),), {"dim": -1, "keepdim": True},
                         f"three {word} in every row, dim=-1, keepdim", gradcheck=False),
                  Sample((_two_extrema(gen, smallest),), name=f"two {word}, every dim", gradcheck=False)]
        return found
    return samples


def _max_samples(smallest=False):
    """torch.max's (torch.min's with ``smallest``) three forms: every element, ties included (sharing g, a kink:
    no gradcheck); an int dim, a (values, indices) pair; a second tensor, broadcast, elementwise."""
    def samples(gen):
        forms = {
            "(N, D), every element": ((randn(gen, 4, 5),), {}),
            "0-d, every element": ((randn(gen),), {}),
            "(N, D), dim=1": ((randn(gen, 4, 5), 1), {}),
            "(N, L, E), dim=-1": ((randn(gen, 2, 3, 4), -1), {}),
            "(N, L, E), dim=0, keepdim": ((randn(gen, 2, 3, 4), 0, True), {}),
            "(N, L, E), dim=1, keepdim, by keyword": ((randn(gen, 2, 3, 4),), {"dim": 1, "keepdim": True}),
            "(D), dim=0": ((randn(gen, 6), 0), {}),
            "0-d, dim=0": ((randn(gen), 0), {}),
            "0-d, dim=-1, keepdim": ((randn(gen),), {"dim": -1, "keepdim": True}),
            "(0, D), dim=1, empty": ((randn(gen, 0, 5), 1), {}),
            "other: same shape (3, 4)": ((randn(gen, 3, 4), randn(gen, 3, 4)), {}),
            "other: (N, E) and (E)": ((randn(gen, 6, 4), randn(gen, 4)), {}),
            "other: (4, 1) and (1, 5), both broadcast": ((randn(gen, 4, 1), randn(gen, 1, 5)), {}),
        }
        found = [Sample(args, kwargs, name) for name, (args, kwargs) in forms.items()]
        found.append(Sample((_two_extrema(gen, smallest),), name=f"two {'minima' if smallest else 'maxima'}, "
                            "every element", gradcheck=False))
        return found
    return samples


def _var_samples(gen):
    """The ways to name the reduced dimensions, keepdim, corrections 0 (layer norm's), 1 (Bessel's) and 2, a 1-D
    input; and the variances of one element (n = c: NaN) and of nothing, whose finite differences mean nothing."""
    forms = {
        "(N, D), every dim (default)": ((4, 5), {}),
        "(N, D), dim=1": ((4, 5), {"dim": 1}),
        "(N, L, E), dim=-1": ((2, 3, 4), {"dim": -1}),
        "(N, L, E), dim=(0, 2)": ((2, 3, 4), {"dim": (0, 2)}),
        "(N, L, E), dim=1, keepdim": ((2, 3, 4), {"dim": 1, "keepdim": True}),
        "(N, D), positional dim": ((4, 5), (0,)),
        "(N, D), every dim, correction=0": ((4, 5), {"correction": 0}),
        "(N, D), dim=-1, correction=0, keepdim: layer norm's": ((4, 5), {"dim": -1, "correction": 0, "keepdim": True}),
        "(N, D), dim=0, correction=1": ((4, 5), {"dim": 0, "correction": 1}),
        "(N, L, E), dim=[0, -1], correction=2, keepdim": ((2, 3, 4), {"dim": [0, -1], "correction": 2,
                                                                        "keepdim": True}),
        "(D)": ((6,), {}),
        "(D), dim=0, correction=2": ((6,), {"dim": 0, "correction": 2}),
        "(0, D), dim=1, empty": ((0, 5), {"dim": 1}),
    }
    found = []
    for name, (shape, options) in forms.items():
        x = randn(gen, *shape)
        args, kwargs = ((x, *options), {}) if isinstance(options, tuple) else ((x,), options)
        found.append(Sample(args, kwargs, name))
    found += [Sample((randn(gen, 3, 1),), {"dim": 1}, "(N, 1), dim=1, one element each: NaN", gradcheck=False),
              Sample((randn(gen, 0, 5),), {"dim": 0}, "(0, D), dim=0, a variance of nothing: NaN", gradcheck=False)]
    return found


def _spread_samples(gen):
    """std's (var_mean's, std_mean's) forms: every dim, dim, dims with keepdim, the corrections; a constant
    row (σ = 0, where the square root has a kink: no finite differences)."""
    forms = {
        "(N, D), every dim": ((4, 5), {}),
        "(N, D), dim=1": ((4, 5), {"dim": 1}),
        "(N, L, E), dim=(0, 2), keepdim": ((2, 3, 4), {"dim": (0, 2), "keepdim": True}),
        "(N, D), dim=-1, correction=0": ((4, 5), {"dim": -1, "correction": 0}),
    }
    found = [Sample((randn(gen, *shape),), kwargs, name) for name, (shape, kwargs) in forms.items()]
    found.append(Sample((leaf([[1.0, 1.0, 1.0], [0.5, -1.0, 2.0]]),), {"dim": 1}, "a constant row: σ = 0",
                        gradcheck=False))
    return found


def _logsumexp_samples(gen):
    forms = {
        "(N, D), dim=1": ((randn(gen, 4, 5), 1), {}),
        "(N, L, E), dim=(0, 2), keepdim": ((randn(gen, 2, 3, 4), (0, 2), True), {}),
        "scores ~ N(0, 100²), dim=-1": ((randn(gen, 3, 6, scale=100.0), -1), {}),
        "0-d, dim=0": ((randn(gen), 0), {}),
        "(0, D), dim=1, empty": ((randn(gen, 0, 5), 1), {}),
    }
    found = [Sample(args, kwargs, name) for name, (args, kwargs) in forms.items()]
    inf = float("inf")
    found.append(Sample((leaf([[-inf, -inf], [0.5, -inf]]), 1), name="a row of −inf: y = −inf, g NaN",
                        gradcheck=False))
    return found


def _prod_samples(gen):
    forms = {
        "(N, D), every element": ((randn(gen, 3, 4),), {}),
        "(N, D), dim=1": ((randn(gen, 3, 4), 1), {}),
        "(N, L, E), dim=0, keepdim": ((randn(gen, 2, 3, 4), 0, True), {}),
        "zeros: one in a row, two in another, dim=1": ((leaf([[1.5, 0.0, -2.0], [0.0, 3.0, 0.0], [0.5, 2.0, 1.5]]), 1),
                                                       {}),
        "0-d": ((randn(gen),), {}),
        "(0, D), dim=0, a product of nothing": ((randn(gen, 0, 4), 0), {}),
    }
    return [Sample(args, kwargs, name) for name, (args, kwargs) in forms.items()]


def _scan_samples(zeros=False):
    """cumsum's (cumprod's, with rows holding zeros) forms: each dim, 0-d, empty."""
    def samples(gen):
        forms = {
            "(N, D), dim=1": ((randn(gen, 3, 5), 1), {}),
            "(N, L, E), dim=0": ((randn(gen, 3, 2, 4), 0), {}),
            "(N, D), dim=-1, dtype=float64": ((randn(gen, 3, 4), -1), {"dtype": torch.float64}),
            "0-d, dim=0": ((randn(gen), 0), {}),
            "(0, D), dim=1, empty": ((randn(gen, 0, 5), 1), {}),
        }
        if zeros:
            forms["a zero in each row, dim=1"] = ((leaf([[1.5, 0.0, -2.0, 0.5], [0.0, 3.0, 0.5, 2.0]]), 1), {})
        found = [Sample(args, kwargs, name) for name, (args, kwargs) in forms.items()]
        if zeros:                  # a second zero: the gradient there is 0 by a mask, flat to second order
            found.append(Sample((leaf([[1.5, 0.0, -2.0, 0.0, 0.5]]), 1), name="two zeros in a row, dim=1",
                                gradcheck=False))
        return found
    return samples


def _norm_samples(gen):
    forms = [
        ("(3, 4), the whole tensor, fro", (randn(gen, 3, 4),), {}),
        ("(3, 4), p=2, dim=1", (randn(gen, 3, 4), 2, 1), {}),
        ("(3, 4), p=1, dim=0, keepdim", (randn(gen, 3, 4), 1, 0, True), {}),
        ("(2, 3, 4), p=3, dim=(0, 2)", (randn(gen, 2, 3, 4), 3, (0, 2)), {}),
        ("(3, 4), p=inf, dim=-1", (randn(gen, 3, 4), float("inf"), -1), {}),
        ("(5,), p=0.5 on |x| > 0", (randn(gen, 5),), {"p": 0.5}),
        ("(3, 4), p=-inf, dim=1: the smallest |x|", (randn(gen, 3, 4), float("-inf"), 1), {}),
        ("(3, 4), p=-1.5, dim=-1, keepdim", (randn(gen, 3, 4), -1.5, -1, True), {}),
        ("(3, 4), p=0, dim=1: the count of x ≠ 0", (randn(gen, 3, 4), 0, 1), {}),
    ]
    samples = [Sample(args, kwargs, name) for name, args, kwargs in forms]
    # A zero entry: |x|ᵖ⁻¹ is infinite for p < 1 (a kink, no finite differences), and y = 0 for p < 0.
    samples += [Sample((leaf([[0.0, -1.5, 2.0], [0.5, 0.0, 0.0]]), p, 1), name=f"(2, 3) with zeros, p={p}, dim=1",
                       gradcheck=False) for p in (0.5, -2)]
    return samples


def _normalize_samples(gen):
    tiny = randn(gen, 2, 3, requires_grad=False) * 1e-14
    forms = [
        ("(4, 5), dim=1", (randn(gen, 4, 5),), {}),
        ("(4, 5), dim=-1, p=1", (randn(gen, 4, 5),), {"dim": -1, "p": 1.0}),
        ("(2, 3, 4), dim=2, p=3", (randn(gen, 2, 3, 4),), {"dim": 2, "p": 3.0}),
        ("swin v2's q: (2, 3, 5, 8), dim=-1", (randn(gen, 2, 3, 5, 8),), {"dim": -1}),
    ]
    samples = [Sample(args, kwargs, name) for name, args, kwargs in forms]
    samples.append(Sample((tiny.requires_grad_(),), {"eps": 1e-12}, "norm below eps: x / eps", gradcheck=False,
                          dtypes=without(torch.float16)))           # ε = 1e-12 is 0 in float16: 0 / 0 there
    return samples


# -- bench sizes: a small vision transformer's, 128 images × 50 tokens of width 128 ---------------------


def _reduction_bench(device):
    return [("(128, 50, 128), dim=-1, keepdim", (bench_randn(device, 128, 50, 128),), {"dim": -1, "keepdim": True}),
            ("(128, 50, 128), every dim", (bench_randn(device, 128, 50, 128),), {})]


def _max_bench(device):
    return [("attention scores (128, 4, 50, 50), dim=-1: softmax's shift", (bench_randn(device, 128, 4, 50, 50), -1),
             {})]


def _var_bench(device):
    return [("(128, 50, 128), dim=-1, correction=0, keepdim: layer norm's", (bench_randn(device, 128, 50, 128),),
             {"dim": -1, "correction": 0, "keepdim": True})]


def _norm_bench(device):
    return [("(128, 50, 128), p=2, dim=-1", (bench_randn(device, 128, 50, 128), 2, -1), {})]


def _normalize_bench(device):
    return [("swin v2's q, k: (128, 4, 49, 32), dim=-1", (bench_randn(device, 128, 4, 49, 32),), {"dim": -1})]


# -- bad inputs -----------------------------------------------------------------------------------------


def _reduction_errors(op):
    return (
        list_input(op),
        ErrorInput("dim out of range", lambda F, nn: getattr(F, op)(x32(2, 3), 2), IndexError,
                   rf"{op}: dim 2 is out of range for a tensor of 2 dimension\(s\)"),
        ErrorInput("one of the dims out of range", lambda F, nn: getattr(F, op)(x32(2, 3), (0, -3)), IndexError,
                   rf"{op}: dim -3 is out of range for a tensor of 2 dimension\(s\)"),
    )


_MEAN_ERRORS = _reduction_errors("mean") + (
    ErrorInput("int64 input", lambda F, nn: F.mean(torch.ones(3, dtype=torch.long)), RuntimeError,
               r"mean: input must be a floating-point tensor, got torch\.int64"),
)


_AMAX_ERRORS = _reduction_errors("amax") + (
    ErrorInput("the maximum over an empty dimension", lambda F, nn: F.amax(x32(0, 3), 0), IndexError,
               r"amax: .*empty.*the maximum of no elements is undefined"),
)


_AMIN_ERRORS = _reduction_errors("amin") + (
    ErrorInput("the minimum over an empty dimension", lambda F, nn: F.amin(x32(0, 3), 0), IndexError,
               r"amin: .*empty.*the minimum of no elements is undefined"),
)


def _max_errors(op):
    """max and min: a list, a dim out of range or not an int, a dim with no element to pick."""
    return _reduction_errors(op)[:2] + (
        ErrorInput("a tuple of dims", lambda F, nn: getattr(F, op)(x32(2, 3), (0, 1)), TypeError,
                   rf"{op}: dim must be an int, or other a tensor; got tuple"),
        ErrorInput("an empty dimension", lambda F, nn: getattr(F, op)(x32(0, 3), 0), IndexError,
                   rf"{op}: input of shape \(0, 3\) is empty along dim 0"),
        ErrorInput("all of an empty input", lambda F, nn: getattr(F, op)(x32(0, 3)), RuntimeError,
                   rf"{op}: input of shape \(0, 3\) is empty: the {op}imum of no elements is undefined"),
    )


_VAR_ERRORS = _reduction_errors("var") + (
    ErrorInput("int64 input", lambda F, nn: F.var(torch.ones(3, dtype=torch.long)), RuntimeError,
               r"var: input must be a floating-point tensor, got torch\.int64"),
)


_STD_ERRORS = _reduction_errors("std")
_PROD_ERRORS = (
    list_input("prod"),
    ErrorInput("a tuple of dims", lambda F, nn: F.prod(x32(2, 3), (0, 1)), TypeError,
               r"prod: dim must be an int or None, got tuple"),
    ErrorInput("dim out of range", lambda F, nn: F.prod(x32(2, 3), 2), IndexError,
               r"prod: dim 2 is out of range for a tensor of 2 dimension\(s\)"),
)


def _scan_errors(op):
    return (
        ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, -2.0], 0), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list"),
        ErrorInput("dim out of range", lambda F, nn: getattr(F, op)(x32(2, 3), -3), IndexError,
                   rf"{op}: dim -3 is out of range for a tensor of 2 dimension\(s\)"),
        ErrorInput("dim None", lambda F, nn: getattr(F, op)(x32(2, 3), None), TypeError,
                   rf"{op}: dim must be an int, got NoneType"),
    )


_NORM_ERRORS = (
    list_input("norm"),
    ErrorInput("nuclear norm", lambda F, nn: F.norm(x32(3, 4), "nuc"), ValueError,
               r"norm: handgrad derives the vector norms, p a number, ±inf or 'fro'; got p='nuc'"),
    ErrorInput("integer input", lambda F, nn: F.norm(torch.arange(4)), RuntimeError,
               r"norm: input must be a floating-point tensor, got torch\.int64"),
)


_NORMALIZE_ERRORS = (list_input("normalize", torch_class=AttributeError),)


# -- the database ---------------------------------------------------------------------------------------

# dL/dx = g / n − x Σ(g x) / n³ cancels where g lies along x: in 8 bits of mantissa, attention's tolerances.
_CANCELLING = {torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2), torch.float16: Tolerance(atol=4e-3, rtol=8e-3)}

OP_INFOS = (
    OpInfo("sum", torch.sum, _reduction_samples(dtype=True), sum_numpy, _reduction_bench,
           errors=_reduction_errors("sum")),
    OpInfo("mean", torch.mean, _reduction_samples(dtype=True, mean=True), mean_numpy, _reduction_bench,
           errors=_MEAN_ERRORS),
    OpInfo("amax", torch.amax, _amax_samples(), amax_numpy, _reduction_bench, errors=_AMAX_ERRORS),
    OpInfo("amin", torch.amin, _amax_samples(smallest=True), amin_numpy, _reduction_bench, errors=_AMIN_ERRORS),
    OpInfo("max", torch.max, _max_samples(), max_numpy, _max_bench, errors=_max_errors("max")),
    OpInfo("min", torch.min, _max_samples(smallest=True), min_numpy, _max_bench, errors=_max_errors("min")),
    OpInfo("var", torch.var, _var_samples, var_numpy, _var_bench, errors=_VAR_ERRORS),
    OpInfo("std", torch.std, _spread_samples, std_numpy, _var_bench, errors=_STD_ERRORS),
    OpInfo("var_mean", torch.var_mean, lambda gen: _spread_samples(gen)[1:4], var_mean_numpy, _var_bench,
           errors=_reduction_errors("var_mean")[:1]),
    OpInfo("std_mean", torch.std_mean, lambda gen: _spread_samples(gen)[1:4], std_mean_numpy, _var_bench,
           errors=_reduction_errors("std_mean")[:1]),
    OpInfo("logsumexp", torch.logsumexp, _logsumexp_samples, logsumexp_numpy,
           lambda device: [("(128, 50, 128), dim=-1", (bench_randn(device, 128, 50, 128), -1), {})],
           errors=(ErrorInput("list input", lambda F, nn: F.logsumexp([1.0, -2.0], 0), TypeError,
                              r"logsumexp: input must be a torch\.Tensor, got list"),)),
    OpInfo("prod", torch.prod, _prod_samples, prod_numpy,
           lambda device: [("(128, 50, 128), dim=-1", (bench_randn(device, 128, 50, 128), -1), {})],
           errors=_PROD_ERRORS),
    OpInfo("cumsum", torch.cumsum, _scan_samples(), cumsum_numpy,
           lambda device: [("(128, 50, 128), dim=1", (bench_randn(device, 128, 50, 128), 1), {})],
           errors=_scan_errors("cumsum")),
    OpInfo("cumprod", torch.cumprod, _scan_samples(zeros=True), cumprod_numpy,
           lambda device: [("(128, 50, 128), dim=1", (bench_randn(device, 128, 50, 128), 1), {})],
           errors=_scan_errors("cumprod")),
    OpInfo("norm", torch.norm, _norm_samples, norm_numpy, _norm_bench, errors=_NORM_ERRORS),
    OpInfo("normalize", torch.nn.functional.normalize, _normalize_samples, normalize_numpy, _normalize_bench,
           errors=_NORMALIZE_ERRORS, tolerances=_CANCELLING),
)
