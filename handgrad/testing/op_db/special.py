"""The special and trigonometric functions' cases (``handgrad.ops.special``): NumPy oracles, samples, bad
inputs, bench sizes."""

import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, list_input, sum_to, x32
from handgrad.testing.op_db.elementwise import (binary_bench, binary_errors, broadcasting_forms, leaf, positive,
                                                unary_bench, unary_samples)

# -- NumPy oracles: (y, vjp) ------------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def log1p_numpy(x):
    return np.log1p(x), lambda g: (g / (1 + x),)


def expm1_numpy(x):
    return np.expm1(x), lambda g: (g * np.exp(x),)


def erf_numpy(x):
    return _erf(x), lambda g: (g * 2 / math.sqrt(math.pi) * np.exp(-x * x),)


def erfc_numpy(x):
    return 1 - _erf(x), lambda g: (-g * 2 / math.sqrt(math.pi) * np.exp(-x * x),)


def logit_numpy(x, eps=None):
    """log(z / (1 − z)), z = x clamped to [eps, 1 − eps]: dL/dx = g / (x (1 − x)) inside, 0 where clamped."""
    z = x if eps is None else np.clip(x, eps, 1 - eps)
    inside = np.ones(x.shape, bool) if eps is None else (x >= eps) & (x <= 1 - eps)
    return np.log(z / (1 - z)), lambda g: (np.where(inside, g / (x * (1 - x)), 0.0),)


def sin_numpy(x):
    return np.sin(x), lambda g: (g * np.cos(x),)


def cos_numpy(x):
    return np.cos(x), lambda g: (-g * np.sin(x),)


def tan_numpy(x):
    return np.tan(x), lambda g: (g / np.cos(x) ** 2,)


def xlogy_numpy(a, b):
    """a log b, 0 where a = 0: dL/da = g log b (0 where a = 0 and b ≤ 0), dL/db = g a / b."""
    a_, b_ = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(a_ == 0, 0.0, a_ * np.log(b_))
        return y, lambda g: (sum_to(np.where((a_ == 0) & (b_ <= 0), 0.0, g * np.log(b_)), a_.shape),
                             sum_to(g * a_ / b_, b_.shape))


def atan2_numpy(a, b):
    r2 = a * a + b * b
    return np.arctan2(a, b), lambda g: (sum_to(g * b / r2, a.shape), sum_to(-g * a / r2, b.shape))


def hypot_numpy(a, b):
    y = np.hypot(a, b)
    return y, lambda g: (sum_to(g * a / y, a.shape), sum_to(g * b / y, b.shape))


# -- samples --------------------------------------------------------------------------------------------


def _in_unit_interval(t):
    """σ(t), still a leaf: probabilities in (0, 1)."""
    with torch.no_grad():
        return torch.sigmoid(t).requires_grad_(t.requires_grad)


def _logit_samples(gen):
    samples = unary_samples(_in_unit_interval)(gen)
    samples.append(Sample((_in_unit_interval(randn(gen, 6, 7, scale=4.0)),), {"eps": 0.05},
                          "(N, D), eps=0.05: the tails clamped"))
    samples.append(Sample((leaf([0.01, 0.5, 0.99]),), {"eps": 0.1}, "x outside [eps, 1 − eps] passes no g",
                          gradcheck=False))
    return samples


def _xlogy_samples(gen):
    forms = {name: (a, positive(b)) for name, (a, b) in broadcasting_forms(gen).items()
             if name in ("same shape (3, 4)", "(N, E) and (E)", "0-d input, (3, 4) other")}
    forms["a = 0 in places: y = 0 there"] = (leaf([0.0, 1.5, 0.0, -2.0]), positive(randn(gen, 4)))
    forms["input a number"] = (2.0, positive(randn(gen, 3, 4)))
    forms["other a number"] = (randn(gen, 3, 4), 3.0)
    return [Sample(args, name=name) for name, args in forms.items()]


def _binary(other=lambda t: t):
    """A few broadcasting forms of two tensors (atan2 and hypot take no number)."""
    def samples(gen):
        kept = ("same shape (3, 4)", "(4, 1) and (1, 5), both broadcast", "0-d other", "(0, 4) and (4), empty")
        return [Sample((a, other(b)), name=name) for name, (a, b) in broadcasting_forms(gen).items() if name in kept]
    return samples


# -- bad inputs and the database ---------------------------------------------------------------------------

_LOGIT_ERRORS = (
    list_input("logit"),
    ErrorInput("eps a string", lambda F, nn: F.logit(x32(2), "0.1"), TypeError,
               r"logit: eps must be a number or None, got str"),
)


_XLOGY_ERRORS = (
    ErrorInput("input a list", lambda F, nn: F.xlogy([1.0, 2.0], x32(2)), TypeError,
               r"xlogy: input must be a torch\.Tensor or a number, got list"),
    *binary_errors("xlogy")[1:],
)


def _two_tensors_errors(op):
    return binary_errors(op)[:2] + (
        ErrorInput("other a list", lambda F, nn: getattr(F, op)(x32(2), [1.0, 2.0]), TypeError,
                   rf"{op}: other must be a torch\.Tensor, got list"),
    )


def _tan_samples(gen):
    """x in (−1.2, 1.2), away from tan's poles at ±π/2."""
    def squash(t):
        with torch.no_grad():
            return torch.tanh(t).mul(1.2).requires_grad_(t.requires_grad)
    return unary_samples(squash)(gen)


OP_INFOS = (
    OpInfo("log1p", torch.log1p, unary_samples(positive), log1p_numpy, unary_bench(positive=True),
           errors=(list_input("log1p"),)),
    OpInfo("expm1", torch.expm1, unary_samples(), expm1_numpy, unary_bench(), errors=(list_input("expm1"),)),
    OpInfo("erf", torch.erf, unary_samples(), erf_numpy, unary_bench(), errors=(list_input("erf"),)),
    OpInfo("erfc", torch.erfc, unary_samples(), erfc_numpy, unary_bench(), errors=(list_input("erfc"),)),
    OpInfo("sin", torch.sin, unary_samples(), sin_numpy, unary_bench(), errors=(list_input("sin"),)),
    OpInfo("cos", torch.cos, unary_samples(), cos_numpy, unary_bench(), errors=(list_input("cos"),)),
    OpInfo("tan", torch.tan, _tan_samples, tan_numpy, unary_bench(), errors=(list_input("tan"),)),
    OpInfo("logit", torch.logit, _logit_samples, logit_numpy,
           lambda device: [("(128, 50, 128)", (torch.rand(128, 50, 128, device=device).requires_grad_(),), {})],
           errors=_LOGIT_ERRORS),
    OpInfo("xlogy", torch.xlogy, _xlogy_samples, xlogy_numpy, binary_bench, errors=_XLOGY_ERRORS),
    OpInfo("atan2", torch.atan2, _binary(), atan2_numpy, binary_bench, errors=_two_tensors_errors("atan2")),
    OpInfo("hypot", torch.hypot, _binary(), hypot_numpy,
           lambda device: [("(128, 50, 128) and (128)", (bench_randn(device, 128, 50, 128), bench_randn(device, 128)),
                            {})],
           errors=_two_tensors_errors("hypot")),
)
