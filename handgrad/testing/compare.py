"""How close is close enough: the one table of tolerances per dtype, and ``difference``, the one
comparison of two tensors that verify, the tests, ``handgrad-check`` and the benchmark all make."""

import dataclasses
import math

import torch


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """|hand − expected| ≤ atol + rtol · |expected|, elementwise (``torch.testing`` semantics)."""

    atol: float
    rtol: float


TOLERANCES = {
    torch.float64: Tolerance(atol=1e-10, rtol=1e-7),
    torch.float32: Tolerance(atol=1e-5, rtol=1e-4),
    torch.bfloat16: Tolerance(atol=1e-2, rtol=3e-2),
    torch.float16: Tolerance(atol=2e-3, rtol=4e-3),
}
DTYPES = tuple(TOLERANCES)


@dataclasses.dataclass
class Difference:
    """How far one tensor is from the expected one: max |actual − expected| and that relative to the
    expected tensor's largest magnitude (elementwise ratios explode near zero)."""

    name: str
    max_abs: float
    max_rel: float
    ok: bool
    special_mismatch: bool = False   # NaN or ±inf where the other tensor has none

    def __str__(self):
        if self.special_mismatch:
            return f"{self.name}: NaN or inf in different places"
        return f"{self.name}, max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}"


def mismatch(name):
    """A Difference that is a failure by itself (a tensor missing, another shape or dtype)."""
    return Difference(name, math.inf, math.inf, False)


def difference(name, actual, expected, tolerance):
    """Compare two tensors: shapes and NaN/inf positions must match, values within ``tolerance``."""
    if actual is None or expected is None:
        return Difference(f"{name} is None on one side only", math.inf, math.inf, actual is expected)
    actual = torch.as_tensor(actual).detach().cpu().double()
    expected = torch.as_tensor(expected).detach().cpu().double()
    if actual.shape != expected.shape:
        return mismatch(f"{name} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if actual.numel() == 0:
        return Difference(name, 0.0, 0.0, True)
    same_special = bool(
        (actual.isnan() == expected.isnan()).all()
        and (actual.isinf() == expected.isinf()).all()
        and (actual[actual.isinf()] == expected[actual.isinf()]).all()
    )
    finite = actual.isfinite() & expected.isfinite()
    err = (actual - expected).abs()[finite]
    scale = expected.abs()[finite]
    max_abs = err.max().item() if err.numel() else 0.0
    max_rel = max_abs / max(scale.max().item(), torch.finfo(torch.float64).tiny) if err.numel() else 0.0
    ok = same_special and bool((err <= tolerance.atol + tolerance.rtol * scale).all())
    return Difference(name, max_abs, max_rel, ok, special_mismatch=not same_special)
