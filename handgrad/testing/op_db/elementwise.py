"""The elementwise algebra's cases (``handgrad.ops.elementwise``): NumPy oracles, samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, list_input, sum_to, x32


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


def reciprocal_numpy(x):
    y = 1 / x
    return y, lambda g: (-g * y * y,)


def _step_numpy(function):
    """A step function: its value, and a zero gradient."""
    def oracle(x, **options):
        return function(x, **options), lambda g: (np.zeros_like(x),)
    return oracle


sign_numpy, floor_numpy, ceil_numpy, trunc_numpy = map(_step_numpy, (np.sign, np.floor, np.ceil, np.trunc))
round_numpy = _step_numpy(np.round)                     # half to even, as torch


def square_numpy(x):
    return x * x, lambda g: (2 * g * x,)


def addcmul_numpy(input, tensor1, tensor2, value=1):
    """y = c + v a b: dL/dc = g, dL/da = v g b, dL/db = v g a, each summed back to its shape."""
    y = input + value * tensor1 * tensor2
    return y, lambda g: (sum_to(g, input.shape), sum_to(value * g * tensor2, tensor1.shape),
                         sum_to(value * g * tensor1, tensor2.shape))


def addcdiv_numpy(input, tensor1, tensor2, value=1):
    """y = c + v a / b: dL/dc = g, dL/da = v g / b, dL/db = −v g a / b²."""
    y = input + value * tensor1 / tensor2
    return y, lambda g: (sum_to(g, input.shape), sum_to(value * g / tensor2, tensor1.shape),
                         sum_to(-value * g * tensor1 / (tensor2 * tensor2), tensor2.shape))


def lerp_numpy(input, end, weight):
    """y = a + w (b − a): dL/da = (1 − w) g, dL/db = w g, dL/dw = g (b − a)."""
    w = np.asarray(weight)
    y = input + w * (end - input)
    return y, lambda g: (sum_to((1 - w) * g, input.shape), sum_to(w * g, end.shape),
                         sum_to(g * (end - input), w.shape) if isinstance(weight, np.ndarray) else None)


def clamp_numpy(x, min=None, max=None):
    """y = min(max(x, lo), hi); number bounds: the gradient passes where lo < x < hi, none at a bound (torch's
    choice); tensor bounds: maximum's then minimum's gradients, chained (a tie splits g)."""
    if isinstance(min, np.ndarray) or isinstance(max, np.ndarray):
        y, through_max = (x, lambda g: (g, None)) if min is None else maximum_numpy(x, min)
        y, through_min = (y, lambda g: (g, None)) if max is None else minimum_numpy(y, max)

        def vjp(g):
            g, g_max = through_min(g)
            return (*through_max(g), g_max)

        return y, vjp
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return np.minimum(np.maximum(x, lo), hi), lambda g: (np.where((x > lo) & (x < hi), g, 0.0),)


# -- samples --------------------------------------------------------------------------------------------


def positive(t):
    """|t| + 0.5, still a leaf: log, sqrt and fractional powers smooth, far from their pole at 0."""
    with torch.no_grad():
        return (t.abs() + 0.5).requires_grad_(t.requires_grad)


def away_from_zero(t):
    """t moved 0.5 away from 0: a divisor whose quotients stay in float16's range."""
    with torch.no_grad():
        return (t.sign() * (t.abs() + 0.5)).requires_grad_(t.requires_grad)


def scale_by(factor):
    """t times ``factor``, still a leaf: values that straddle the steps of floor, round and sign."""
    def transform(t):
        with torch.no_grad():
            return (t * factor).requires_grad_(t.requires_grad)
    return transform


def _mask(gen, *shape):
    return randn(gen, *shape, requires_grad=False) > 0


def leaf(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def broadcasting_forms(gen, other=lambda t: t):
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


def binary_samples(other=lambda t: t, number=2.5, options=()):
    """The broadcasting forms, a number as other, then (3, 4) operands with each of ``options``."""
    def samples(gen):
        forms = [(name, args, {}) for name, args in broadcasting_forms(gen, other).items()]
        forms.append(("other a number", (randn(gen, 3, 4), number), {}))
        forms += [(f"{kwargs}", (randn(gen, 3, 4), other(randn(gen, 3, 4))), kwargs) for kwargs in options]
        return [Sample(args, kwargs, name) for name, args, kwargs in forms]
    return samples


def _div_samples(gen):
    samples = binary_samples(away_from_zero, number=-4.0, options=({"rounding_mode": "trunc"},
                                                                     {"rounding_mode": "floor"}))(gen)
    samples.append(Sample((randn(gen, 3, 4, scale=4.0), 1.5), {"rounding_mode": "floor"},
                          "other a number, rounding_mode='floor'"))
    return samples


def _pow_samples(gen):
    forms = {
        "x ** 2": (randn(gen, 3, 4), 2),
        "x ** 3": (randn(gen, 2, 3, 4), 3),
        "x ** 0, a constant": (randn(gen, 3, 4), 0),
        "x ** 0.5, x > 0": (positive(randn(gen, 3, 4)), 0.5),
        "x ** -1.5, x > 0": (positive(randn(gen, 3, 4)), -1.5),
        "x ** tensor, same shape": (positive(randn(gen, 3, 4)), randn(gen, 3, 4)),
        "(N, E) ** (E)": (positive(randn(gen, 5, 4)), randn(gen, 4)),
        "(E) ** (N, E), input broadcast": (positive(randn(gen, 4)), randn(gen, 3, 4)),
        "(3, 4) ** 0-d": (positive(randn(gen, 3, 4)), randn(gen)),
        "0-d ** (3, 4)": (positive(randn(gen)), randn(gen, 3, 4)),
        "(0, 4) ** (4), empty": (positive(randn(gen, 0, 4)), randn(gen, 4)),
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
    samples = [Sample(args, name=name) for name, args in broadcasting_forms(gen).items()]
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


def unary_samples(transform=lambda t: t, extremes=()):
    """(N, D), (B, C, H, W), 0-d and empty inputs, then the given values where the op has a kink
    (finite differences of its backward are meaningless there, so no gradcheck)."""
    def samples(gen):
        forms = {"(N, D)": (6, 7), "(B, C, H, W)": (2, 3, 4, 5), "0-d": (), "(0, D) empty": (0, 7)}
        found = [Sample((transform(randn(gen, *shape)),), name=name) for name, shape in forms.items()]
        return found + [Sample((leaf(values),), name=f"x = {values}", gradcheck=False) for values in extremes]
    return samples


def _clamp_samples(gen):
    bounds = {"min=-0.5": {"min": -0.5}, "max=0.5": {"max": 0.5}, "min=-0.5, max=0.5": {"min": -0.5, "max": 0.5},
              "min=0, max=1 (ints)": {"min": 0, "max": 1}, "min=None, max=0.25": {"min": None, "max": 0.25}}
    samples = [Sample((randn(gen, 6, 7),), kwargs, f"(N, D), {name}") for name, kwargs in bounds.items()]
    samples += [Sample((randn(gen, 4, 5), -1.0, 1.0), name="(N, D), bounds by position"),
                Sample((randn(gen),), {"min": 0.0}, "0-d, min=0"),
                Sample((randn(gen, 0, 7),), {"min": -0.5, "max": 0.5}, "(0, D) empty"),
                Sample((leaf([-1.0, -0.5, 0.0, 0.5, 1.0]),), {"min": -0.5, "max": 0.5},
                       "x at the bounds, which pass no g", gradcheck=False),
                Sample((randn(gen, 4, 5), randn(gen, 5), randn(gen, 4, 1)),
                       name="tensor bounds (D) and (N, 1), broadcast, lo > hi in places"),
                Sample((randn(gen, 3, 4), randn(gen, 3, 4), None), name="a tensor min, max None"),
                Sample((randn(gen, 4), None, randn(gen, 3, 4)), name="max (N, D) over x (D): y broadcast")]
    with torch.no_grad():                                        # x on its bounds: the tie splits g (a kink)
        lo, hi = randn(gen, 5, requires_grad=False) - 1.0, randn(gen, 5, requires_grad=False) + 1.0
        x = torch.stack([lo, hi, (lo + hi) / 2])
    samples.append(Sample((x.requires_grad_(), lo.requires_grad_(), hi.requires_grad_()),
                          name="tensor bounds, x equal to each", gradcheck=False))
    return samples


def _round_samples(gen):
    samples = unary_samples()(gen)
    samples += [Sample((randn(gen, 6, 7, scale=30.0),), {"decimals": d}, f"(N, D), decimals={d}") for d in (1, -1)]
    samples.append(Sample((leaf([0.5, 1.5, 2.5, -0.5]),), name="halves: to even", gradcheck=False))
    return samples


def _addc_samples(divide=False):
    """addcmul's (addcdiv's with ``divide``, the divisor kept from 0) forms: same shapes, every operand
    broadcast, value, a 0-d input."""
    def samples(gen):
        t2 = away_from_zero if divide else (lambda t: t)
        forms = [
            ("same shape (3, 4)", (randn(gen, 3, 4), randn(gen, 3, 4), t2(randn(gen, 3, 4))), {}),
            ("(N, D) + (D) ∘ (N, 1), every operand broadcast", (randn(gen, 4, 5), randn(gen, 5), t2(randn(gen, 4, 1))),
             {}),
            ("value=-0.5", (randn(gen, 3, 4), randn(gen, 3, 4), t2(randn(gen, 3, 4))), {"value": -0.5}),
            ("0-d input, (2, 3) tensors", (randn(gen), randn(gen, 2, 3), t2(randn(gen, 2, 3))), {"value": 2}),
        ]
        return [Sample(args, kwargs, name) for name, args, kwargs in forms]
    return samples


def _lerp_samples(gen):
    forms = [
        ("weight 0.3", (randn(gen, 3, 4), randn(gen, 3, 4), 0.3)),
        ("weight 0.7, end broadcast (D)", (randn(gen, 3, 4), randn(gen, 4), 0.7)),
        ("weight a tensor (N, 1)", (randn(gen, 3, 4), randn(gen, 3, 4), randn(gen, 3, 1))),
        ("0-d input and end, weight (D)", (randn(gen), randn(gen), randn(gen, 5))),
    ]
    return [Sample(args, name=name) for name, args in forms]


# -- bench sizes: a small vision transformer's, 128 images × 50 tokens of width 128 ---------------------


def _bench_positive(device, *shape):
    with torch.no_grad():
        return (torch.rand(*shape, device=device) + 0.5).requires_grad_()


def _bench(device):
    """A small vision transformer's residual connection and position embedding: 128 × 50 tokens of width 128."""
    return [("residual (128, 50, 128)", (bench_randn(device, 128, 50, 128), bench_randn(device, 128, 50, 128)), {}),
            ("position (128, 50, 128) + (1, 50, 128)", (bench_randn(device, 128, 50, 128),
                                                        bench_randn(device, 1, 50, 128)), {})]


def binary_bench(device):
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


def unary_bench(positive=False):
    def bench(device):
        make = _bench_positive if positive else bench_randn
        return [("(128, 50, 128)", (make(device, 128, 50, 128),), {})]
    return bench


# -- bad inputs -----------------------------------------------------------------------------------------


def binary_errors(op, other="other"):
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


_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.add([1.0, -2.0], x32(2)), TypeError,
               r"add: input must be a torch\.Tensor, got list"),
    ErrorInput("shapes that do not broadcast", lambda F, nn: F.add(x32(2, 3), x32(4)), RuntimeError,
               r"add: input of shape \(2, 3\) and other of shape \(4,\) do not broadcast"),
    ErrorInput("other a string", lambda F, nn: F.add(x32(2, 3), "1"), TypeError,
               r"add: other must be a torch\.Tensor or a number, got str"),
)


_DIV_ERRORS = binary_errors("div") + (
    ErrorInput("rounding_mode 'round'", lambda F, nn: F.div(x32(2), x32(2), rounding_mode="round"), ValueError,
               r"div: rounding_mode must be None, 'trunc' or 'floor', got 'round'"),
)


_POW_ERRORS = binary_errors("pow", "exponent") + (
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


def _addc_errors(op):
    return (
        ErrorInput("input a list", lambda F, nn: getattr(F, op)([1.0, 2.0], x32(2), x32(2)), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list"),
        ErrorInput("tensor2 a list", lambda F, nn: getattr(F, op)(x32(2), x32(2), [1.0, 2.0]), TypeError,
                   rf"{op}: tensor2 must be a torch\.Tensor, got list"),
    )


_LERP_ERRORS = (
    ErrorInput("input a list", lambda F, nn: F.lerp([1.0, 2.0], x32(2), 0.5), TypeError,
               r"lerp: input must be a torch\.Tensor, got list"),
    ErrorInput("a string weight", lambda F, nn: F.lerp(x32(2), x32(2), "0.5"), TypeError,
               r"lerp: weight must be a number or a torch\.Tensor, got str"),
    ErrorInput("shapes that do not broadcast", lambda F, nn: F.lerp(x32(2, 3), x32(4), 0.5), RuntimeError,
               r"lerp: input of shape \(2, 3\) and end of shape \(4,\) do not broadcast"),
)

_ROUND_ERRORS = (
    list_input("round"),
    ErrorInput("decimals a float", lambda F, nn: F.round(x32(2), decimals=1.5), TypeError,
               r"round: decimals must be an int, got float"),
)


def _addc_bench(device):
    return [("(128, 50, 128) three times", tuple(bench_randn(device, 128, 50, 128) for _ in range(3)), {})]


_CLAMP_ERRORS = (
    list_input("clamp"),
    ErrorInput("neither bound", lambda F, nn: F.clamp(x32(2, 3)), RuntimeError,
               r"clamp: at least one of 'min' or 'max' must not be None"),
    ErrorInput("a tensor bound and a number bound", lambda F, nn: F.clamp(x32(2, 3), x32(3), 1.0), TypeError,
               r"clamp: min and max must both be numbers or both be tensors \(or None\), got Tensor and float"),
    ErrorInput("a string bound", lambda F, nn: F.clamp(x32(2, 3), max="1"), TypeError,
               r"clamp: max must be a number, a tensor or None, got str"),
)


# -- the database ---------------------------------------------------------------------------------------

_SMOOTH, _POSITIVE = unary_samples(), unary_samples(positive)

OP_INFOS = (
    OpInfo("add", torch.add, _samples, add_numpy, _bench, errors=_ERRORS),
    OpInfo("sub", torch.sub, binary_samples(options=({"alpha": -0.5}, {"alpha": 2})), sub_numpy, binary_bench,
           errors=binary_errors("sub")),
    OpInfo("mul", torch.mul, binary_samples(), mul_numpy, binary_bench, errors=binary_errors("mul")),
    OpInfo("div", torch.div, _div_samples, div_numpy, _div_bench, errors=_DIV_ERRORS),
    OpInfo("pow", torch.pow, _pow_samples, pow_numpy, _pow_bench, errors=_POW_ERRORS),
    OpInfo("maximum", torch.maximum, _extremum_samples, maximum_numpy, binary_bench,
           errors=_extremum_errors("maximum")),
    OpInfo("minimum", torch.minimum, _extremum_samples, minimum_numpy, binary_bench,
           errors=_extremum_errors("minimum")),
    OpInfo("where", torch.where, _where_samples, where_numpy, _where_bench, errors=_WHERE_ERRORS),
    OpInfo("masked_fill", torch.masked_fill, _masked_fill_samples, masked_fill_numpy, _masked_fill_bench,
           errors=_MASKED_FILL_ERRORS),
    OpInfo("neg", torch.neg, _SMOOTH, neg_numpy, unary_bench(), errors=(list_input("neg"),)),
    OpInfo("exp", torch.exp, _SMOOTH, exp_numpy, unary_bench(), errors=(list_input("exp"),)),
    OpInfo("log", torch.log, _POSITIVE, log_numpy, unary_bench(positive=True), errors=(list_input("log"),)),
    OpInfo("sqrt", torch.sqrt, _POSITIVE, sqrt_numpy, unary_bench(positive=True), errors=(list_input("sqrt"),)),
    OpInfo("rsqrt", torch.rsqrt, _POSITIVE, rsqrt_numpy, unary_bench(positive=True), errors=(list_input("rsqrt"),)),
    OpInfo("reciprocal", torch.reciprocal, unary_samples(away_from_zero), reciprocal_numpy, unary_bench(),
           errors=(list_input("reciprocal"),)),
    *(OpInfo(name, getattr(torch, name), unary_samples(scale_by(3.0)), oracle, unary_bench(),
             errors=(list_input(name),))
      for name, oracle in (("sign", sign_numpy), ("floor", floor_numpy), ("ceil", ceil_numpy), ("trunc", trunc_numpy))),
    OpInfo("round", torch.round, _round_samples, round_numpy, unary_bench(), errors=_ROUND_ERRORS),
    OpInfo("square", torch.square, _SMOOTH, square_numpy, unary_bench(), errors=(list_input("square"),)),
    OpInfo("addcmul", torch.addcmul, _addc_samples(), addcmul_numpy, _addc_bench, errors=_addc_errors("addcmul")),
    OpInfo("addcdiv", torch.addcdiv, _addc_samples(divide=True), addcdiv_numpy, _addc_bench,
           errors=_addc_errors("addcdiv")),
    OpInfo("lerp", torch.lerp, _lerp_samples, lerp_numpy, binary_bench, errors=_LERP_ERRORS),
    OpInfo("abs", torch.abs, unary_samples(away_from_zero, extremes=([-1.5, 0.0, 2.0, -0.0],)), abs_numpy,
           unary_bench(), errors=(list_input("abs"),)),
    OpInfo("clamp", torch.clamp, _clamp_samples, clamp_numpy,
           lambda device: [("(128, 50, 128), min=-1, max=1", (bench_randn(device, 128, 50, 128),),
                            {"min": -1.0, "max": 1.0})],
           errors=_CLAMP_ERRORS),
)
