"""The tensor algebra's cases (``handgrad.ops.algebra``): NumPy oracles, samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, list_input, sum_to, without, x32

# -- NumPy oracles: (y, vjp), the vjp giving one gradient per positional argument -----------------------


def add_numpy(a, b, alpha=1):
    """y = a + α b; each gradient g summed back to its input's shape."""
    b = np.asarray(b)
    return a + alpha * b, lambda g: (sum_to(g, a.shape), sum_to(alpha * g, b.shape))


def sub_numpy(a, b, alpha=1):
    b = np.asarray(b)
    return a - alpha * b, lambda g: (sum_to(g, a.shape), sum_to(-alpha * g, b.shape))


def mul_numpy(a, b):
    b = np.asarray(b)
    return a * b, lambda g: (sum_to(g * b, a.shape), sum_to(g * a, b.shape))


def div_numpy(a, b, rounding_mode=None):
    """y = a / b, its gradients g / b and −g a / b²; rounded, a step function, flat in both."""
    b = np.asarray(b)
    q = a / b
    if rounding_mode is not None:
        y = np.trunc(q) if rounding_mode == "trunc" else np.floor(q)
        return y, lambda g: (np.zeros(a.shape), np.zeros(b.shape))
    return q, lambda g: (sum_to(g / b, a.shape), sum_to(-g * a / (b * b), b.shape))


def pow_numpy(a, b):
    """y = aᵇ: dy/da = b aᵇ⁻¹ (0 for b = 0), dy/db = aᵇ log a."""
    b = np.asarray(b)
    y = np.power(a, b)

    def vjp(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            da = np.where(b == 0, 0.0, g * b * np.power(a, b - 1.0))
            db = g * y * np.log(a)
        return sum_to(da, a.shape), sum_to(db, b.shape)

    return y, vjp


def _tie_split(a, b, wins):
    """How g is shared between two broadcast inputs: 1 where ``wins`` (a is kept), ½ at a tie."""
    a, b = np.broadcast_arrays(a, b)
    return np.where(a == b, 0.5, np.where(wins(a, b), 1.0, 0.0))


def maximum_numpy(a, b):
    share_a, share_b = _tie_split(a, b, np.greater), _tie_split(b, a, np.greater)
    return np.maximum(a, b), lambda g: (sum_to(g * share_a, a.shape), sum_to(g * share_b, b.shape))


def minimum_numpy(a, b):
    share_a, share_b = _tie_split(a, b, np.less), _tie_split(b, a, np.less)
    return np.minimum(a, b), lambda g: (sum_to(g * share_a, a.shape), sum_to(g * share_b, b.shape))


def where_numpy(condition, input, other):
    a, b = np.asarray(input), np.asarray(other)
    return np.where(condition, a, b), lambda g: (None, sum_to(np.where(condition, g, 0.0), a.shape),
                                                 sum_to(np.where(condition, 0.0, g), b.shape))


def masked_fill_numpy(input, mask, value):
    """y = v where m, else x: x keeps g where the mask is off, v receives the sum of g where it is on."""
    return np.where(mask, value, input), lambda g: (np.where(mask, 0.0, g), None, np.where(mask, g, 0.0).sum())


def neg_numpy(x):
    return -x, lambda g: (-g,)


def exp_numpy(x):
    y = np.exp(x)
    return y, lambda g: (g * y,)


def log_numpy(x):
    return np.log(x), lambda g: (g / x,)


def sqrt_numpy(x):
    y = np.sqrt(x)
    return y, lambda g: (g / (2 * y),)


def rsqrt_numpy(x):
    return 1 / np.sqrt(x), lambda g: (-0.5 * g * x ** -1.5,)


def abs_numpy(x):
    return np.abs(x), lambda g: (g * np.sign(x),)


def clamp_numpy(x, min=None, max=None):
    """y = min(max(x, lo), hi); the gradient passes where lo < x < hi, none at a bound (torch's choice)."""
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return np.minimum(np.maximum(x, lo), hi), lambda g: (np.where((x > lo) & (x < hi), g, 0.0),)


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


def matmul_numpy(a, b):
    """y = a b, a 1-D operand a row (left) or a column (right): dL/da = g bᵀ, dL/db = aᵀ g, summed over
    the batch dimensions each was broadcast along."""
    a2 = a[None, :] if a.ndim == 1 else a                       # (1, k)
    b2 = b[:, None] if b.ndim == 1 else b                       # (k, 1)

    def vjp(g):
        g2 = g[..., None] if b.ndim == 1 else g                 # the column's dimension put back
        g2 = g2[..., None, :] if a.ndim == 1 else g2            # the row's
        da = sum_to(g2 @ np.swapaxes(b2, -1, -2), a2.shape)     # (*, n, k)
        db = sum_to(np.swapaxes(a2, -1, -2) @ g2, b2.shape)     # (*, k, m)
        return da.reshape(a.shape), db.reshape(b.shape)

    return np.matmul(a, b), vjp


def addmm_numpy(input, mat1, mat2, beta=1, alpha=1):
    """y = β c + α a b: dL/dc = β g summed to c's shape, dL/da = α g bᵀ, dL/db = α aᵀ g, matrix by matrix."""
    y = beta * input + alpha * np.matmul(mat1, mat2)
    return y, lambda g: (sum_to(beta * g, input.shape), alpha * g @ np.swapaxes(mat2, -1, -2),
                         alpha * np.swapaxes(mat1, -1, -2) @ g)


# -- samples --------------------------------------------------------------------------------------------


def _positive(t):
    """|t| + 0.5, still a leaf: log, sqrt and fractional powers smooth, far from their pole at 0."""
    with torch.no_grad():
        return (t.abs() + 0.5).requires_grad_(t.requires_grad)


def _away_from_zero(t):
    """t moved 0.5 away from 0: a divisor whose quotients stay in float16's range."""
    with torch.no_grad():
        return (t.sign() * (t.abs() + 0.5)).requires_grad_(t.requires_grad)


def _mask(gen, *shape):
    return randn(gen, *shape, requires_grad=False) > 0


def _leaf(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def _broadcasting_forms(gen, other=lambda t: t):
    """(input, other) of a binary op: every way its operands broadcast; ``other`` transforms the second
    operand (a divisor kept from 0)."""
    def pair(a, b):
        return randn(gen, *a), other(randn(gen, *b))

    return {
        "same shape (3, 4)": pair((3, 4), (3, 4)),
        "(N, L, E) and (1, L, E)": pair((2, 5, 4), (1, 5, 4)),
        "(N, E) and (E)": pair((6, 4), (4,)),
        "(4, 1) and (1, 5), both broadcast": pair((4, 1), (1, 5)),
        "(E) and (N, E), input broadcast": pair((4,), (3, 4)),
        "0-d other": pair((3, 4), ()),
        "0-d input, (3, 4) other": pair((), (3, 4)),
        "(0, 4) and (4), empty": pair((0, 4), (4,)),
    }


def _samples(gen):
    forms = [
        ("same shape (3, 4)", (randn(gen, 3, 4), randn(gen, 3, 4)), {}),
        ("(N, L, E) + (1, L, E), a position embedding", (randn(gen, 2, 5, 4), randn(gen, 1, 5, 4)), {}),
        ("(N, E) + (E)", (randn(gen, 6, 4), randn(gen, 4)), {}),
        ("(4, 1) + (1, 5), both broadcast", (randn(gen, 4, 1), randn(gen, 1, 5)), {}),
        ("(E) + (N, E), input broadcast", (randn(gen, 4), randn(gen, 3, 4)), {}),
        ("alpha=-0.5", (randn(gen, 3, 4), randn(gen, 3, 4)), {"alpha": -0.5}),
        ("other a number", (randn(gen, 3, 4), 2.5), {}),
        ("0-d other", (randn(gen, 3, 4), randn(gen)), {}),
        ("(0, 4) + (4), empty", (randn(gen, 0, 4), randn(gen, 4)), {}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _binary_samples(other=lambda t: t, number=2.5, options=()):
    """The broadcasting forms, a number as other, then (3, 4) operands with each of ``options``."""
    def samples(gen):
        forms = [(name, args, {}) for name, args in _broadcasting_forms(gen, other).items()]
        forms.append(("other a number", (randn(gen, 3, 4), number), {}))
        forms += [(f"{kwargs}", (randn(gen, 3, 4), other(randn(gen, 3, 4))), kwargs) for kwargs in options]
        return [Sample(args, kwargs, name) for name, args, kwargs in forms]
    return samples


def _div_samples(gen):
    samples = _binary_samples(_away_from_zero, number=-4.0, options=({"rounding_mode": "trunc"},
                                                                     {"rounding_mode": "floor"}))(gen)
    samples.append(Sample((randn(gen, 3, 4, scale=4.0), 1.5), {"rounding_mode": "floor"},
                          "other a number, rounding_mode='floor'"))
    return samples


def _pow_samples(gen):
    forms = {
        "x ** 2": (randn(gen, 3, 4), 2),
        "x ** 3": (randn(gen, 2, 3, 4), 3),
        "x ** 0, a constant": (randn(gen, 3, 4), 0),
        "x ** 0.5, x > 0": (_positive(randn(gen, 3, 4)), 0.5),
        "x ** -1.5, x > 0": (_positive(randn(gen, 3, 4)), -1.5),
        "x ** tensor, same shape": (_positive(randn(gen, 3, 4)), randn(gen, 3, 4)),
        "(N, E) ** (E)": (_positive(randn(gen, 5, 4)), randn(gen, 4)),
        "(E) ** (N, E), input broadcast": (_positive(randn(gen, 4)), randn(gen, 3, 4)),
        "(3, 4) ** 0-d": (_positive(randn(gen, 3, 4)), randn(gen)),
        "0-d ** (3, 4)": (_positive(randn(gen)), randn(gen, 3, 4)),
        "(0, 4) ** (4), empty": (_positive(randn(gen, 0, 4)), randn(gen, 4)),
    }
    return [Sample(args, name=name) for name, args in forms.items()]


def _tied(a, b, at):
    """b, equal to a where ``at``: ties to split (a and b leaves, a of b's shape or broadcast to it)."""
    with torch.no_grad():
        b = torch.where(at, a, b)
    return a.requires_grad_(), b.requires_grad_()


def _extremum_samples(gen):
    """The broadcasting forms, then ties, where each input receives g / 2 (a kink: finite differences of
    the backward are meaningless there)."""
    samples = [Sample(args, name=name) for name, args in _broadcasting_forms(gen).items()]
    ties = {
        "ties, same shape (3, 4)": _tied(randn(gen, 3, 4, requires_grad=False), randn(gen, 3, 4, requires_grad=False),
                                         _mask(gen, 3, 4)),
        "ties, (4) and (3, 4): one row tied": _tied(randn(gen, 4, requires_grad=False),
                                                    randn(gen, 3, 4, requires_grad=False),
                                                    torch.tensor([[False], [True], [False]])),
    }
    with torch.no_grad():                                            # b tied with one a of each row
        a, b = randn(gen, 3, 4, requires_grad=False), randn(gen, 3, 1, requires_grad=False)
        a[:, 1] = b[:, 0]
    ties["ties, (3, 4) and (3, 1): the halves summed over the row"] = (a.requires_grad_(), b.requires_grad_())
    return samples + [Sample(args, name=name, gradcheck=False) for name, args in ties.items()]


def _where_samples(gen):
    forms = {
        "same shape (3, 4)": (_mask(gen, 3, 4), randn(gen, 3, 4), randn(gen, 3, 4)),
        "condition (3, 1), input (3, 4), other (4)": (_mask(gen, 3, 1), randn(gen, 3, 4), randn(gen, 4)),
        "causal (L, L) condition over (N, L, L)": (torch.ones(4, 4, dtype=torch.bool).tril(), randn(gen, 2, 4, 4),
                                                   randn(gen, 2, 4, 4)),
        "other a number": (_mask(gen, 3, 4), randn(gen, 3, 4), 0.0),
        "input a number": (_mask(gen, 3, 4), -1.5, randn(gen, 3, 4)),
        "0-d other": (_mask(gen, 3, 4), randn(gen, 3, 4), randn(gen)),
        "0-d condition": (torch.tensor(False), randn(gen, 3, 4), randn(gen, 3, 4)),
        "(0, 4) empty": (_mask(gen, 0, 4), randn(gen, 0, 4), randn(gen, 4)),
    }
    return [Sample(args, name=name) for name, args in forms.items()]


def _masked_fill_samples(gen):
    causal = torch.ones(4, 4, dtype=torch.bool).triu(1)
    forms = {
        "same shape (3, 4), value a number": (randn(gen, 3, 4), _mask(gen, 3, 4), 2.5),
        "causal (L, L) mask over (N, L, L), value -1e4": (randn(gen, 2, 4, 4), causal, -1e4),
        "mask (4) over (3, 4)": (randn(gen, 3, 4), _mask(gen, 4), -1.0),
        "mask (3, 1) over (2, 3, 4)": (randn(gen, 2, 3, 4), _mask(gen, 3, 1), 0.0),
        "value a 0-d tensor requiring grad": (randn(gen, 3, 4), _mask(gen, 3, 4), randn(gen)),
        "value an int": (randn(gen, 3, 4), _mask(gen, 3, 4), 3),
        "0-d input and mask": (randn(gen), torch.tensor(True), 0.5),
        "(0, 4) empty": (randn(gen, 0, 4), _mask(gen, 0, 4), 1.0),
    }
    samples = [Sample(args, name=name) for name, args in forms.items()]
    # Attention's mask: -inf outputs, whose finite differences are NaN.
    samples.append(Sample((randn(gen, 2, 4, 4), causal, float("-inf")), name="causal mask, value -inf",
                          gradcheck=False))
    return samples


def _unary_samples(transform=lambda t: t, extremes=()):
    """(N, D), (B, C, H, W), 0-d and empty inputs, then the given values where the op has a kink
    (finite differences of its backward are meaningless there, so no gradcheck)."""
    def samples(gen):
        forms = {"(N, D)": (6, 7), "(B, C, H, W)": (2, 3, 4, 5), "0-d": (), "(0, D) empty": (0, 7)}
        found = [Sample((transform(randn(gen, *shape)),), name=name) for name, shape in forms.items()]
        return found + [Sample((_leaf(values),), name=f"x = {values}", gradcheck=False) for values in extremes]
    return samples


def _clamp_samples(gen):
    bounds = {"min=-0.5": {"min": -0.5}, "max=0.5": {"max": 0.5}, "min=-0.5, max=0.5": {"min": -0.5, "max": 0.5},
              "min=0, max=1 (ints)": {"min": 0, "max": 1}, "min=None, max=0.25": {"min": None, "max": 0.25}}
    samples = [Sample((randn(gen, 6, 7),), kwargs, f"(N, D), {name}") for name, kwargs in bounds.items()]
    samples += [Sample((randn(gen, 4, 5), -1.0, 1.0), name="(N, D), bounds by position"),
                Sample((randn(gen),), {"min": 0.0}, "0-d, min=0"),
                Sample((randn(gen, 0, 7),), {"min": -0.5, "max": 0.5}, "(0, D) empty"),
                Sample((_leaf([-1.0, -0.5, 0.0, 0.5, 1.0]),), {"min": -0.5, "max": 0.5},
                       "x at the bounds, which pass no g", gradcheck=False)]
    return samples


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


def _matmul_samples(gen):
    forms = {
        "(n, k) @ (k, m)": ((3, 4), (4, 5)),
        "(k) @ (k, m), a row": ((4,), (4, 5)),
        "(n, k) @ (k), a column": ((3, 4), (4,)),
        "(k) @ (k), a dot product": ((4,), (4,)),
        "(B, n, k) @ (B, k, m)": ((2, 3, 4), (2, 4, 5)),
        "(2, 1, 3, 4) @ (5, 4, 2), batch broadcast": ((2, 1, 3, 4), (5, 4, 2)),
        "(N, L, E) @ (E, F), a linear layer": ((2, 3, 4), (4, 5)),
        "(k) @ (B, k, m)": ((4,), (2, 4, 3)),
        "(B, n, k) @ (k)": ((2, 3, 4), (4,)),
        "(0, k) @ (k, m), empty": ((0, 4), (4, 3)),
        "(n, 0) @ (0, m), an empty sum": ((3, 0), (0, 2)),
    }
    return [Sample((randn(gen, *a), randn(gen, *b)), name=name) for name, (a, b) in forms.items()]


def _addmm_samples(gen, batch=()):
    forms = {
        "c (n, m)": ((3, 5), {}),
        "c (m), a bias": ((5,), {}),
        "c (n, 1)": ((3, 1), {}),
        "beta=0.5, alpha=-2": ((3, 5), {"beta": 0.5, "alpha": -2.0}),
        "0-d c": ((), {}),
    }
    samples = [Sample((randn(gen, *batch, *c) if batch and len(c) == 2 else randn(gen, *c), randn(gen, *batch, 3, 4),
                       randn(gen, *batch, 4, 5)), kwargs, name) for name, (c, kwargs) in forms.items()]
    samples.append(Sample((randn(gen, *batch, 0, 2), randn(gen, *batch, 0, 3), randn(gen, *batch, 3, 2)), {},
                          "(0, k) rows, empty"))
    return samples


# -- bench sizes: a small vision transformer's, 128 images × 50 tokens of width 128 -----------------------


def _bench_positive(device, *shape):
    with torch.no_grad():
        return (torch.rand(*shape, device=device) + 0.5).requires_grad_()


def _bench(device):
    """A small vision transformer's residual connection and position embedding: 128 × 50 tokens of width 128."""
    return [("residual (128, 50, 128)", (bench_randn(device, 128, 50, 128), bench_randn(device, 128, 50, 128)), {}),
            ("position (128, 50, 128) + (1, 50, 128)", (bench_randn(device, 128, 50, 128),
                                                        bench_randn(device, 1, 50, 128)), {})]


def _binary_bench(device):
    return [("(128, 50, 128), same shape", (bench_randn(device, 128, 50, 128), bench_randn(device, 128, 50, 128)), {}),
            ("(128, 50, 128) and (128)", (bench_randn(device, 128, 50, 128), bench_randn(device, 128)), {})]


def _div_bench(device):
    return [("(128, 50, 128) / (128, 50, 1), a norm", (bench_randn(device, 128, 50, 128),
                                                      _bench_positive(device, 128, 50, 1)), {})]


def _pow_bench(device):
    return [("(128, 50, 128) ** 2", (bench_randn(device, 128, 50, 128), 2), {}),
            ("(128, 50, 128) ** (128, 50, 128)", (_bench_positive(device, 128, 50, 128),
                                                  bench_randn(device, 128, 50, 128)), {})]


def _attention_scores(device):
    return bench_randn(device, 128, 4, 50, 50)


def _causal(device):
    return torch.ones(50, 50, dtype=torch.bool, device=device).triu(1)


def _where_bench(device):
    return [("attention scores (128, 4, 50, 50), causal (50, 50)",
             (_causal(device), _attention_scores(device), _attention_scores(device)), {})]


def _masked_fill_bench(device):
    return [("attention scores (128, 4, 50, 50), causal (50, 50), -inf",
             (_attention_scores(device), _causal(device), float("-inf")), {})]


def _unary_bench(positive=False):
    def bench(device):
        make = _bench_positive if positive else bench_randn
        return [("(128, 50, 128)", (make(device, 128, 50, 128),), {})]
    return bench


def _reduction_bench(device):
    return [("(128, 50, 128), dim=-1, keepdim", (bench_randn(device, 128, 50, 128),), {"dim": -1, "keepdim": True}),
            ("(128, 50, 128), every dim", (bench_randn(device, 128, 50, 128),), {})]


def _max_bench(device):
    return [("attention scores (128, 4, 50, 50), dim=-1: softmax's shift", (_attention_scores(device), -1), {})]


def _var_bench(device):
    return [("(128, 50, 128), dim=-1, correction=0, keepdim: layer norm's", (bench_randn(device, 128, 50, 128),),
             {"dim": -1, "correction": 0, "keepdim": True})]


def _matmul_bench(device):
    return [("attention (128, 4, 50, 32) @ (128, 4, 32, 50)", (bench_randn(device, 128, 4, 50, 32),
                                                              bench_randn(device, 128, 4, 32, 50)), {}),
            ("MLP (128, 50, 128) @ (128, 512)", (bench_randn(device, 128, 50, 128), bench_randn(device, 128, 512)), {})]


def _addmm_bench(device):
    return [("a linear layer: (6400, 128) + (6400, 128) @ (128, 512)",
             (bench_randn(device, 512), bench_randn(device, 6400, 128), bench_randn(device, 128, 512)), {})]


def _baddbmm_bench(device):
    return [("attention scores with a bias: (512, 50, 50) + (512, 50, 32) @ (512, 32, 50)",
             (bench_randn(device, 512, 50, 50), bench_randn(device, 512, 50, 32), bench_randn(device, 512, 32, 50)), {})]


# -- bad inputs -----------------------------------------------------------------------------------------


def _binary_errors(op, other="other"):
    """A list as input, operands that do not broadcast, and a string as the second operand."""
    return (
        ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, -2.0], x32(2)), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list"),
        ErrorInput("shapes that do not broadcast", lambda F, nn: getattr(F, op)(x32(2, 3), x32(4)), RuntimeError,
                   rf"{op}: input of shape \(2, 3\) and {other} of shape \(4,\) do not broadcast"),
        ErrorInput(f"{other} a string", lambda F, nn: getattr(F, op)(x32(2, 3), "1"), TypeError,
                   rf"{op}: {other} must be a torch\.Tensor or a number, got str"),
    )


def _extremum_errors(op):
    return (
        ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, -2.0], x32(2)), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list"),
        ErrorInput("other a number", lambda F, nn: getattr(F, op)(x32(2, 3), 1.0), TypeError,
                   rf"{op}: other must be a torch\.Tensor, got float"),
        ErrorInput("shapes that do not broadcast", lambda F, nn: getattr(F, op)(x32(2, 3), x32(4)), RuntimeError,
                   rf"{op}: input of shape \(2, 3\) and other of shape \(4,\) do not broadcast"),
    )


def _reduction_errors(op):
    return (
        list_input(op),
        ErrorInput("dim out of range", lambda F, nn: getattr(F, op)(x32(2, 3), 2), IndexError,
                   rf"{op}: dim 2 is out of range for a tensor of 2 dimension\(s\)"),
        ErrorInput("one of the dims out of range", lambda F, nn: getattr(F, op)(x32(2, 3), (0, -3)), IndexError,
                   rf"{op}: dim -3 is out of range for a tensor of 2 dimension\(s\)"),
    )


_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.add([1.0, -2.0], x32(2)), TypeError,
               r"add: input must be a torch\.Tensor, got list"),
    ErrorInput("shapes that do not broadcast", lambda F, nn: F.add(x32(2, 3), x32(4)), RuntimeError,
               r"add: input of shape \(2, 3\) and other of shape \(4,\) do not broadcast"),
    ErrorInput("other a string", lambda F, nn: F.add(x32(2, 3), "1"), TypeError,
               r"add: other must be a torch\.Tensor or a number, got str"),
)

_DIV_ERRORS = _binary_errors("div") + (
    ErrorInput("rounding_mode 'round'", lambda F, nn: F.div(x32(2), x32(2), rounding_mode="round"), ValueError,
               r"div: rounding_mode must be None, 'trunc' or 'floor', got 'round'"),
)

_POW_ERRORS = _binary_errors("pow", "exponent") + (
    ErrorInput("a number base", lambda F, nn: F.pow(2.0, x32(3)), TypeError,
               r"pow: input must be a torch\.Tensor, got float", torch_accepts=True),
)

_WHERE_ERRORS = (
    ErrorInput("list condition", lambda F, nn: F.where([True, False], x32(2), x32(2)), TypeError,
               r"where: condition must be a torch\.Tensor, got list"),
    ErrorInput("float condition", lambda F, nn: F.where(x32(2), x32(2), x32(2)), RuntimeError,
               r"where: condition must be a bool tensor, got torch\.float32"),
    ErrorInput("other a string", lambda F, nn: F.where(x32(2) > 0, x32(2), "0"), TypeError,
               r"where: other must be a torch\.Tensor or a number, got str"),
    ErrorInput("input a list", lambda F, nn: F.where(x32(2) > 0, [1.0, 2.0], x32(2)), TypeError,
               r"where: input must be a torch\.Tensor or a number, got list"),
)

_MASKED_FILL_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.masked_fill([1.0, -2.0], x32(2) > 0, 0.0), TypeError,
               r"masked_fill: input must be a torch\.Tensor, got list"),
    ErrorInput("float mask", lambda F, nn: F.masked_fill(x32(2, 3), x32(2, 3), 0.0), RuntimeError,
               r"masked_fill: mask must be a bool tensor, got torch\.float32"),
    ErrorInput("1-D value", lambda F, nn: F.masked_fill(x32(2, 3), x32(2, 3) > 0, x32(3)), RuntimeError,
               r"masked_fill: value must be a number or a 0-d tensor, got a tensor of shape \(3,\)"),
)

_CLAMP_ERRORS = (
    list_input("clamp"),
    ErrorInput("neither bound", lambda F, nn: F.clamp(x32(2, 3)), RuntimeError,
               r"clamp: at least one of 'min' or 'max' must not be None"),
    ErrorInput("a tensor bound", lambda F, nn: F.clamp(x32(2, 3), x32(3)), TypeError,
               r"clamp: handgrad's min must be a number or None, got Tensor", torch_accepts=True),
    ErrorInput("a string bound", lambda F, nn: F.clamp(x32(2, 3), max="1"), TypeError,
               r"clamp: handgrad's max must be a number or None, got str"),
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

def _add_product_errors(op, dims):
    factor = "mat" if dims == 2 else "batch"
    lead = (2,) * (dims - 2)
    return (
        ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0], x32(*lead, 2, 3), x32(*lead, 3, 1)), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list"),
        ErrorInput(f"{factor}1 a list", lambda F, nn: getattr(F, op)(x32(3), [1.0], x32(*lead, 2, 3)), TypeError,
                   rf"{op}: {factor}1 must be a torch\.Tensor, got list"),
        ErrorInput(f"{dims - 1}-D factors", lambda F, nn: getattr(F, op)(x32(3), x32(*lead[1:], 3), x32(*lead[1:], 3)),
                   RuntimeError, rf"{op}: the factors must be {dims}-D"),
        ErrorInput("input that does not broadcast", lambda F, nn: getattr(F, op)(x32(*lead, 4, 4), x32(*lead, 2, 3),
                                                                                   x32(*lead, 3, 5)),
                   RuntimeError, rf"{op}: input of shape \({', '.join(map(str, (*lead, 4, 4)))}\) does not broadcast"),
    )


_MATMUL_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.matmul([1.0, -2.0], x32(2)), TypeError,
               r"matmul: input must be a torch\.Tensor, got list"),
    ErrorInput("other a number", lambda F, nn: F.matmul(x32(2, 3), 2.0), TypeError,
               r"matmul: other must be a torch\.Tensor, got float"),
    ErrorInput("inner dimensions differ", lambda F, nn: F.matmul(x32(2, 3), x32(4, 5)), RuntimeError,
               r"matmul: input of shape \(2, 3\) and other of shape \(4, 5\): input's last dimension \(3\) must "
               r"equal other's second-to-last \(4\)"),
    ErrorInput("vectors of different lengths", lambda F, nn: F.matmul(x32(3), x32(4)), RuntimeError,
               r"matmul: input of shape \(3,\) and other of shape \(4,\): input's last dimension \(3\) must "
               r"equal other's only \(4\)"),
    ErrorInput("0-d input", lambda F, nn: F.matmul(x32(), x32(3)), RuntimeError,
               r"matmul: both arguments need at least 1 dimension, got 0D and 1D"),
)


# -- the database ---------------------------------------------------------------------------------------

_SMOOTH, _POSITIVE = _unary_samples(), _unary_samples(_positive)

def norm_numpy(x, p="fro", dim=None, keepdim=False, dtype=None):
    """‖x‖_p = (Σ |x|ᵖ)^(1/p) and g sign(x) (|x| / ‖x‖)ᵖ⁻¹ (p = inf: g sign(x) at the largest |x|, ties split)."""
    p = 2 if p == "fro" else p
    axes = tuple(range(x.ndim)) if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
    a = np.abs(x)
    if p == np.inf:
        y = a.max(axis=axes, keepdims=True)
        at = (a == y).astype(x.dtype)
        slope = np.sign(x) * at / at.sum(axis=axes, keepdims=True)
    else:
        y = (a ** p).sum(axis=axes, keepdims=True) ** (1 / p)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(y == 0, 0.0, np.sign(x) * (a / y) ** (p - 1))
    out = y if keepdim else y.reshape([n for i, n in enumerate(x.shape) if i not in [d % max(x.ndim, 1) for d in axes]])

    def vjp(g):
        g = np.asarray(g).reshape(y.shape)
        return (g * slope,)

    return out, vjp


def _norm_samples(gen):
    forms = [
        ("(3, 4), the whole tensor, fro", (randn(gen, 3, 4),), {}),
        ("(3, 4), p=2, dim=1", (randn(gen, 3, 4), 2, 1), {}),
        ("(3, 4), p=1, dim=0, keepdim", (randn(gen, 3, 4), 1, 0, True), {}),
        ("(2, 3, 4), p=3, dim=(0, 2)", (randn(gen, 2, 3, 4), 3, (0, 2)), {}),
        ("(3, 4), p=inf, dim=-1", (randn(gen, 3, 4), float("inf"), -1), {}),
        ("(5,), p=0.5 on |x| > 0", (randn(gen, 5),), {"p": 0.5}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


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


def einsum_numpy(equation, *operands):
    """np.einsum, and each operand's gradient as np.einsum with g in its place (summed over its lone indices)."""
    equation = equation.replace(" ", "")
    y = np.einsum(equation, *operands)
    ins, out = equation.split("->")
    ins = ins.split(",")

    def vjp(g):
        grads = []
        for i, mine in enumerate(ins):
            others = ins[:i] + ins[i + 1:]
            reach = "".join(c for c in mine if c in out or any(c in o for o in others))
            grad = np.einsum(",".join([out, *others]) + "->" + reach, g, *operands[:i], *operands[i + 1:])
            for axis, c in enumerate(mine):
                if c not in reach:
                    grad = np.expand_dims(grad, axis)
            grads.append(np.broadcast_to(grad, operands[i].shape).copy())
        return (None, *grads)

    return y, vjp


def _einsum_samples(gen):
    forms = [
        ("ij,jk->ik, matmul", ("ij,jk->ik", randn(gen, 3, 4), randn(gen, 4, 5))),
        ("bij,bjk->bik, bmm", ("bij,bjk->bik", randn(gen, 2, 3, 4), randn(gen, 2, 4, 5))),
        ("maxvit's attention, with spaces", ("B G P H I D, B G P H J D -> B G P H I J",
                                            randn(gen, 1, 2, 2, 2, 3, 4), randn(gen, 1, 2, 2, 2, 3, 4))),
        ("i,i->, a dot product", ("i,i->", randn(gen, 5), randn(gen, 5))),
        ("i,j->ij, an outer product", ("i,j->ij", randn(gen, 3), randn(gen, 4))),
        ("bij->j, indices summed in one operand", ("bij->j", randn(gen, 2, 3, 4))),
        ("ij,jk,kl->il, three operands", ("ij,jk,kl->il", randn(gen, 2, 3), randn(gen, 3, 4), randn(gen, 4, 2))),
        ("ij->ji, a transpose", ("ij->ji", randn(gen, 3, 4))),
    ]
    return [Sample(args, {}, name) for name, args in forms]


def _norm_bench(device):
    return [("(128, 50, 128), p=2, dim=-1", (bench_randn(device, 128, 50, 128), 2, -1), {})]


def _normalize_bench(device):
    return [("swin v2's q, k: (128, 4, 49, 32), dim=-1", (bench_randn(device, 128, 4, 49, 32),), {"dim": -1})]


def _einsum_bench(device):
    return [("attention scores: bhid,bhjd->bhij (128, 4, 50, 32)",
             ("bhid,bhjd->bhij", bench_randn(device, 128, 4, 50, 32), bench_randn(device, 128, 4, 50, 32)), {})]


_NORM_ERRORS = (
    list_input("norm"),
    ErrorInput("nuclear norm", lambda F, nn: F.norm(x32(3, 4), "nuc"), ValueError,
               r"norm: handgrad derives the vector norms, p a number ≥ 0, inf or 'fro'; got p='nuc'"),
    ErrorInput("integer input", lambda F, nn: F.norm(torch.arange(4)), RuntimeError,
               r"norm: input must be a floating-point tensor, got torch\.int64"),
)
_NORMALIZE_ERRORS = (list_input("normalize", torch_class=AttributeError),)
# dL/dx = g / n − x Σ(g x) / n³ cancels where g lies along x: in 8 bits of mantissa, attention's tolerances.
_CANCELLING = {torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2), torch.float16: Tolerance(atol=4e-3, rtol=8e-3)}
_EINSUM_ERRORS = (
    ErrorInput("operands before the equation", lambda F, nn: F.einsum(x32(2, 3), "ij->j"), TypeError,
               r"einsum: handgrad takes the equation as a string first"),
    ErrorInput("a diagonal", lambda F, nn: F.einsum("ii->i", x32(3, 3)), NotImplementedError,
               r"einsum: an index repeated within one operand \('ii'\, a diagonal\) is not derived by handgrad",
               torch_accepts=True),
    ErrorInput("too few operands", lambda F, nn: F.einsum("ij,jk->ik", x32(2, 3)), ValueError,
               r"einsum: the equation names 2 operand\(s\), 1 given", torch_class=RuntimeError),
)


OP_INFOS = (
    OpInfo("add", torch.add, _samples, add_numpy, _bench, errors=_ERRORS),
    OpInfo("sub", torch.sub, _binary_samples(options=({"alpha": -0.5}, {"alpha": 2})), sub_numpy, _binary_bench,
           errors=_binary_errors("sub")),
    OpInfo("mul", torch.mul, _binary_samples(), mul_numpy, _binary_bench, errors=_binary_errors("mul")),
    OpInfo("div", torch.div, _div_samples, div_numpy, _div_bench, errors=_DIV_ERRORS),
    OpInfo("pow", torch.pow, _pow_samples, pow_numpy, _pow_bench, errors=_POW_ERRORS),
    OpInfo("maximum", torch.maximum, _extremum_samples, maximum_numpy, _binary_bench,
           errors=_extremum_errors("maximum")),
    OpInfo("minimum", torch.minimum, _extremum_samples, minimum_numpy, _binary_bench,
           errors=_extremum_errors("minimum")),
    OpInfo("where", torch.where, _where_samples, where_numpy, _where_bench, errors=_WHERE_ERRORS),
    OpInfo("masked_fill", torch.masked_fill, _masked_fill_samples, masked_fill_numpy, _masked_fill_bench,
           errors=_MASKED_FILL_ERRORS),
    OpInfo("neg", torch.neg, _SMOOTH, neg_numpy, _unary_bench(), errors=(list_input("neg"),)),
    OpInfo("exp", torch.exp, _SMOOTH, exp_numpy, _unary_bench(), errors=(list_input("exp"),)),
    OpInfo("log", torch.log, _POSITIVE, log_numpy, _unary_bench(positive=True), errors=(list_input("log"),)),
    OpInfo("sqrt", torch.sqrt, _POSITIVE, sqrt_numpy, _unary_bench(positive=True), errors=(list_input("sqrt"),)),
    OpInfo("rsqrt", torch.rsqrt, _POSITIVE, rsqrt_numpy, _unary_bench(positive=True), errors=(list_input("rsqrt"),)),
    OpInfo("abs", torch.abs, _unary_samples(_away_from_zero, extremes=([-1.5, 0.0, 2.0, -0.0],)), abs_numpy,
           _unary_bench(), errors=(list_input("abs"),)),
    OpInfo("clamp", torch.clamp, _clamp_samples, clamp_numpy,
           lambda device: [("(128, 50, 128), min=-1, max=1", (bench_randn(device, 128, 50, 128),),
                            {"min": -1.0, "max": 1.0})],
           errors=_CLAMP_ERRORS),
    OpInfo("sum", torch.sum, _reduction_samples(dtype=True), sum_numpy, _reduction_bench,
           errors=_reduction_errors("sum")),
    OpInfo("mean", torch.mean, _reduction_samples(dtype=True, mean=True), mean_numpy, _reduction_bench,
           errors=_MEAN_ERRORS),
    OpInfo("amax", torch.amax, _amax_samples(), amax_numpy, _reduction_bench, errors=_AMAX_ERRORS),
    OpInfo("amin", torch.amin, _amax_samples(smallest=True), amin_numpy, _reduction_bench, errors=_AMIN_ERRORS),
    OpInfo("max", torch.max, _max_samples(), max_numpy, _max_bench, errors=_max_errors("max")),
    OpInfo("min", torch.min, _max_samples(smallest=True), min_numpy, _max_bench, errors=_max_errors("min")),
    OpInfo("var", torch.var, _var_samples, var_numpy, _var_bench, errors=_VAR_ERRORS),
    OpInfo("matmul", torch.matmul, _matmul_samples, matmul_numpy, _matmul_bench, errors=_MATMUL_ERRORS),
    OpInfo("norm", torch.norm, _norm_samples, norm_numpy, _norm_bench, errors=_NORM_ERRORS),
    OpInfo("normalize", torch.nn.functional.normalize, _normalize_samples, normalize_numpy, _normalize_bench,
           errors=_NORMALIZE_ERRORS, tolerances=_CANCELLING),
    OpInfo("einsum", torch.einsum, _einsum_samples, einsum_numpy, _einsum_bench, errors=_EINSUM_ERRORS),
    OpInfo("addmm", torch.addmm, _addmm_samples, addmm_numpy, _addmm_bench, errors=_add_product_errors("addmm", 2)),
    OpInfo("baddbmm", torch.baddbmm, lambda gen: _addmm_samples(gen, batch=(2,)), addmm_numpy, _baddbmm_bench,
           errors=_add_product_errors("baddbmm", 3)),
)
