"""How close is close enough: the one table of tolerances per dtype, and ``difference``, the one
comparison of two tensors that verify, the tests, ``handgrad-check`` and the benchmark all make."""

import dataclasses
import math

import torch


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """|hand − expected| ≤ atol + rtol · |expected|, elementwise (``torch.testing`` semantics).

    With ``scaled``, atol is a fraction of the expected tensor's largest magnitude: for a long chain
    in half precision (multi-head attention: three projections, a softmax, two products), where
    every element carries rounding of the size of the tensor's scale, an entry whose true value
    cancels to near zero (the key bias's gradient, zero exactly) is as far off as the largest."""

    atol: float
    rtol: float
    scaled: bool = False


TOLERANCES = {
    torch.float64: Tolerance(atol=1e-10, rtol=1e-7),
    torch.float32: Tolerance(atol=1e-5, rtol=1e-4),
    torch.bfloat16: Tolerance(atol=1e-2, rtol=3e-2),
    torch.float16: Tolerance(atol=2e-3, rtol=4e-3),
}
DTYPES = tuple(TOLERANCES)


@dataclasses.dataclass
class Difference:
    """How far one tensor is from the expected one.

    ``max_abs`` is max |actual − expected|; ``max_rel`` that relative to the expected tensor's
    largest magnitude (elementwise ratios explode near zero), or None where that magnitude is within
    the absolute tolerance and a relative difference means nothing. ``worst`` is (index, actual,
    expected) of the element furthest outside the tolerance, for a tensor that differs. A
    ``mismatch`` (a tensor missing, another shape or dtype) has no numbers: its name says it all.
    """

    name: str
    max_abs: float
    max_rel: float
    ok: bool
    special_mismatch: bool = False   # NaN or ±inf where the other tensor has none
    worst: tuple = None
    mismatch: bool = False
    note: str = ""                   # what the caller knows of the worst element (the input there)

    def __str__(self):
        if self.mismatch:
            return self.name
        if self.special_mismatch:
            return f"{self.name}: NaN or inf in different places" + (f" (first at {list(self.worst[0])})" if self.worst else "")
        rel = "" if self.max_rel is None else f", max rel {self.max_rel:.3g}"
        text = f"{self.name}, max abs {self.max_abs:.3g}{rel}"
        if self.worst is not None:
            index, actual, expected = self.worst
            text += f"; worst at {list(index)}: {actual:.6g} instead of {expected:.6g}" + (f" ({self.note})" if self.note else "")
        return text


def mismatch(name):
    """A Difference that is a failure by itself (a tensor missing, another shape or dtype)."""
    return Difference(name, math.inf, math.inf, False, mismatch=True)


def _index(flat, shape):
    """The index (a tuple) of flat position ``flat`` in a tensor of ``shape``."""
    index = []
    for n in reversed(shape):
        index.append(flat % n)
        flat //= n
    return tuple(reversed(index))


def difference(name, actual, expected, tolerance):
    """Compare two tensors: shapes and NaN/inf positions must match, values within ``tolerance``."""
    if actual is None or expected is None:
        return Difference(f"{name} is None on one side only", math.inf, math.inf, actual is expected,
                          mismatch=actual is not expected)
    actual = torch.as_tensor(actual).detach().cpu().double()
    expected = torch.as_tensor(expected).detach().cpu().double()
    if actual.shape != expected.shape:
        return mismatch(f"{name} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if actual.numel() == 0:
        return Difference(name, 0.0, 0.0, True)
    special = (actual.isnan() != expected.isnan()) | (actual.isinf() | expected.isinf()) & (actual != expected)
    finite = actual.isfinite() & expected.isfinite()
    err = torch.where(finite, (actual - expected).abs(), 0.0)
    scale = torch.where(finite, expected.abs(), 0.0).max().item()
    bound = tolerance.atol * (scale if tolerance.scaled else 1.0) + tolerance.rtol * expected.abs()
    max_abs = err.max().item()
    max_rel = max_abs / scale if scale > tolerance.atol else None
    outside = special | (err > bound)
    worst = None
    if outside.any():
        flat = int(special.flatten().nonzero()[0]) if special.any() else int((err - bound).flatten().argmax())
        worst = (_index(flat, actual.shape), actual.flatten()[flat].item(), expected.flatten()[flat].item())
    return Difference(name, max_abs, max_rel, worst is None, special_mismatch=bool(special.any()), worst=worst)
