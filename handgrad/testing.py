"""One source of truth for verification: tolerances per dtype, the input forms each op is checked
on, and the comparisons against the torch built-in and the NumPy reference.

Used by the test suite and by ``python -m handgrad.check`` alike, so what users run is what CI runs.
"""

import dataclasses
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as torch_F

from handgrad import functional as hand_F
from handgrad import reference


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """|hand − expected| ≤ atol + rtol · |expected|, elementwise (``torch.testing`` semantics)."""

    atol: float
    rtol: float


TOLERANCES = {
    torch.float64: Tolerance(atol=1e-10, rtol=1e-7),
    torch.float32: Tolerance(atol=1e-5, rtol=1e-4),
    torch.float16: Tolerance(atol=2e-3, rtol=4e-3),
    torch.bfloat16: Tolerance(atol=1e-2, rtol=3e-2),
}
DTYPES = tuple(TOLERANCES)

# Dropout is compared on the same random mask: both sides draw it right after this seed.
DROPOUT_SEED = 1234


def _reseeded(dropout):
    def run(input, p):
        torch.manual_seed(DROPOUT_SEED)
        return dropout(input, p)
    return run


def _then(activation):
    return lambda input, weight, bias=None: activation(torch_F.linear(input, weight, bias))


OPS = {
    "linear": (hand_F.linear, torch_F.linear),
    "linear_sigmoid": (hand_F.linear_sigmoid, _then(torch.sigmoid)),
    "linear_relu": (hand_F.linear_relu, _then(torch.relu)),
    "sigmoid": (hand_F.sigmoid, torch.sigmoid),
    "relu": (hand_F.relu, torch_F.relu),
    "dropout": (_reseeded(hand_F.dropout), _reseeded(torch_F.dropout)),
    "cross_entropy": (hand_F.cross_entropy, torch_F.cross_entropy),
}


@dataclasses.dataclass
class Problem:
    """One call of an op: positional tensors by name, keyword options, and the tensors to differentiate."""

    tensors: dict
    options: dict
    wrt: tuple

    def to(self, dtype=None, device=None):
        moved = {
            name: t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else None)
            for name, t in self.tensors.items()
        }
        options = {
            k: v.to(device=device, dtype=dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for k, v in self.options.items()
        }
        return Problem(moved, options, self.wrt)

    def leaves(self):
        """Fresh leaf copies; those in ``wrt`` require grad."""
        return {name: t.detach().clone().requires_grad_(name in self.wrt) for name, t in self.tensors.items()}


@dataclasses.dataclass(frozen=True)
class Case:
    """A named input form of an op; ``make(generator)`` draws fresh float64 data for it on the CPU."""

    op: str
    form: str
    make: Callable
    differentiable: bool = True      # False where the value itself is NaN (a mean over nothing)
    dtypes: tuple = None             # None: every dtype in TOLERANCES
    builtin_devices: tuple = None    # None: compared with the built-in on every device

    @property
    def id(self):
        return f"{self.op}[{self.form}]"


def _randn(generator, *shape):
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def _away_from_zero(t):
    """Keep samples clear of a kink (ReLU at 0), where finite differences are meaningless."""
    return t.sign() * (t.abs() + 0.1)


def _linear_cases(op="linear"):
    def make(x_shape, out=3, bias=True, weight_1d=False, bias_shape=None):
        def draw(gen):
            x = _randn(gen, *x_shape)
            n_in = x_shape[-1]
            tensors = {"input": x, "weight": _randn(gen, n_in) if weight_1d else _randn(gen, out, n_in)}
            if bias:
                tensors["bias"] = _randn(gen, *(bias_shape or (out,)))
            return Problem(tensors, {}, tuple(tensors))
        return draw

    cases = [
        Case(op, "(N, in)", make((8, 5))),
        Case(op, "(N, in) no bias", make((8, 5), bias=False)),
        Case(op, "(in,) unbatched", make((5,))),
        Case(op, "(B, T, in)", make((2, 3, 5))),
        Case(op, "(0, in) empty batch", make((0, 5))),
        Case(op, "(N, 0) no features", make((4, 0))),
        Case(op, "(N, out) broadcast bias", make((4, 5), bias_shape=(4, 3))),
    ]
    if op == "linear":
        cases.append(Case(op, "1-D weight", make((4, 5), bias=False, weight_1d=True)))
    return cases


def _elementwise_cases(op, transform=lambda t: t):
    def make(shape, scale=1.0):
        def draw(gen):
            return Problem({"input": transform(_randn(gen, *shape)) * scale}, {}, ("input",))
        return draw

    return [
        Case(op, "(N, D)", make((6, 7))),
        Case(op, "(B, C, H, W)", make((2, 3, 4, 5))),
        Case(op, "0-d", make(())),
        Case(op, "(0, D) empty", make((0, 7))),
        Case(op, "|x| ~ 1000", make((6, 7), scale=1000.0)),
    ]


def _dropout_cases():
    def make(shape, p):
        def draw(gen):
            return Problem({"input": _randn(gen, *shape)}, {"p": p}, ("input",))
        return draw

    # On CUDA torch's fused dropout kernel draws its mask from another random stream.
    cpu_only = ("cpu",)
    return [
        Case("dropout", "(N, D) p=0.3", make((40, 30), 0.3), builtin_devices=cpu_only),
        Case("dropout", "(B, C, H, W) p=0.5", make((2, 3, 4, 5), 0.5), builtin_devices=cpu_only),
        Case("dropout", "p=1 drops everything", make((6, 7), 1.0), builtin_devices=cpu_only),
        Case("dropout", "(0, D) empty", make((0, 7), 0.5), builtin_devices=cpu_only),
    ]


def _cross_entropy_cases():
    reductions = ("mean", "sum", "none")

    def make(shape, probabilities=False, weight=False, ignore=None, smoothing=0.0, scale=1.0, offset=0.0,
             all_ignored=False):
        def draw(gen, reduction):
            x = _randn(gen, *shape) * scale + offset
            class_dim = 0 if len(shape) == 1 else 1
            n_classes = shape[class_dim]
            options = {"reduction": reduction, "label_smoothing": smoothing}
            if weight:
                options["weight"] = torch.rand(n_classes, generator=gen, dtype=torch.float64) + 0.1
            if probabilities:
                target = torch.softmax(_randn(gen, *shape), class_dim)
                return Problem({"input": x, "target": target}, options, ("input", "target"))
            target_shape = shape[:class_dim] + shape[class_dim + 1:]
            target = torch.randint(0, n_classes, target_shape, generator=gen)
            if ignore is not None:
                options["ignore_index"] = ignore
                drop = torch.rand(target_shape, generator=gen) < 0.3
                target = torch.full_like(target, ignore) if all_ignored else target.masked_fill(drop, ignore)
            return Problem({"input": x, "target": target}, options, ("input",))
        return draw

    forms = {  # form: (draw, differentiable, dtypes)
        "(N, C) indices": make((8, 5)),
        "(N, C) indices, weight": make((8, 5), weight=True),
        "(N, C) indices, ignore_index": make((8, 5), ignore=-100),
        "(N, C) indices, ignore_index=2": make((8, 5), ignore=2),
        "(N, C) indices, label_smoothing": make((8, 5), smoothing=0.2),
        "(N, C) indices, weight, ignore_index, label_smoothing": make((8, 5), weight=True, ignore=-100, smoothing=0.3),
        "(C,) unbatched index": make((5,)),
        "(N, C, d1, d2) indices, weight, ignore_index": make((2, 4, 3, 2), weight=True, ignore=-100),
        "(N, C) probabilities": make((8, 5), probabilities=True),
        "(N, C, d1) probabilities, weight, label_smoothing": make((2, 4, 3), probabilities=True, weight=True, smoothing=0.1),
        "(C,) unbatched probabilities": make((5,), probabilities=True),
        "(0, C) empty batch": make((0, 5)),
        "all targets ignored": make((4, 5), ignore=-100, all_ignored=True),
        "logits 1e4 + N(0, 1)": make((8, 5), offset=1e4),
        "logits ~ N(0, 1e4)": make((8, 5), scale=1e4),
        "logits ~ N(0, 1e-8)": make((8, 5), scale=1e-8),
    }
    # A mean over no rows is NaN by definition: nothing to differentiate.
    nan_means = {"(0, C) empty batch", "all targets ignored"}
    # Losses near 1e4 summed over rows pass float16's largest value, 65504.
    no_half = {"logits ~ N(0, 1e4)": tuple(d for d in TOLERANCES if d != torch.float16)}
    reduced = ("mean", "sum")
    return [
        Case(
            "cross_entropy",
            f"{form}, {reduction}",
            lambda gen, m=m, r=reduction: m(gen, r),
            differentiable=not (form in nan_means and reduction == "mean"),
            dtypes=no_half.get(form) if reduction in reduced else None,
        )
        for form, m in forms.items()
        for reduction in reductions
    ]


CASES = (
    _linear_cases()
    + _linear_cases("linear_sigmoid")
    + _linear_cases("linear_relu")
    + _elementwise_cases("sigmoid")
    + _elementwise_cases("relu", transform=_away_from_zero)
    + _dropout_cases()
    + _cross_entropy_cases()
)


def cases(op=None):
    return [c for c in CASES if op is None or c.op == op]


def case_dtypes(case):
    return case.dtypes or DTYPES


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# -- comparisons -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Difference:
    """How far one tensor of the hand op is from the expected one: max |hand − expected| and that
    relative to the expected tensor's largest magnitude (elementwise ratios explode near zero)."""

    name: str
    max_abs: float
    max_rel: float
    ok: bool
    special_mismatch: bool = False   # NaN or ±inf where the other tensor has none

    def __str__(self):
        special = ", NaN/inf positions differ" if self.special_mismatch else ""
        return f"{self.name}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}{special}"


def difference(name, actual, expected, tolerance):
    """Compare two tensors: shapes and NaN positions must match, values within ``tolerance``."""
    actual = torch.as_tensor(actual).detach().double().cpu()
    expected = torch.as_tensor(expected).detach().double().cpu()
    if actual.shape != expected.shape:
        return Difference(f"{name} (shape {tuple(actual.shape)} vs {tuple(expected.shape)})", math.inf, math.inf, False)
    if actual.numel() == 0:
        return Difference(name, 0.0, 0.0, True)
    same_special = (actual.isnan() == expected.isnan()).all() and (
        actual[actual.isinf()] == expected[actual.isinf()]
    ).all() and (actual.isinf() == expected.isinf()).all()
    finite = actual.isfinite() & expected.isfinite()
    err = (actual - expected).abs()[finite]
    scale = expected.abs()[finite]
    max_abs = err.max().item() if err.numel() else 0.0
    max_rel = max_abs / max(scale.max().item(), torch.finfo(torch.float64).tiny) if err.numel() else 0.0
    ok = bool(same_special) and bool((err <= tolerance.atol + tolerance.rtol * scale).all())
    return Difference(name, max_abs, max_rel, ok, special_mismatch=not same_special)


def _outputs_and_grads(fn, problem, upstream_generator):
    leaves = problem.leaves()
    out = fn(*leaves.values(), **problem.options)
    wanted = [leaves[name] for name in problem.wrt]
    if not out.requires_grad or not wanted:
        return out, {}, None
    v = torch.randn(out.shape, generator=upstream_generator, dtype=torch.float64).to(out)
    grads = torch.autograd.grad(out, wanted, v, allow_unused=True)
    return out, {f"d{name}": g for name, g in zip(problem.wrt, grads)}, v


def compare_with_builtin(case, dtype, device, seed=0):
    """Run the hand op and the built-in on the same fresh random data and the same random upstream
    gradient; return a ``Difference`` for the output and for the gradient of every input."""
    problem = case.make(torch.Generator().manual_seed(seed)).to(dtype=dtype, device=device)
    hand, builtin = OPS[case.op]
    tolerance = TOLERANCES[dtype]
    expected_out, expected_grads, _ = _outputs_and_grads(builtin, problem, torch.Generator().manual_seed(seed + 1))
    out, grads, _ = _outputs_and_grads(hand, problem, torch.Generator().manual_seed(seed + 1))
    diffs = [difference("output", out, expected_out, tolerance)]
    if out.dtype != expected_out.dtype:
        diffs.append(Difference(f"output dtype {out.dtype} vs {expected_out.dtype}", math.inf, math.inf, False))
    for name, expected in expected_grads.items():
        diffs.append(difference(name, grads[name], expected, tolerance))
    return diffs


def builtin_supports(case, dtype, device):
    """Whether the torch built-in runs this case in this dtype on this device at all."""
    if case.builtin_devices is not None and torch.device(device).type not in case.builtin_devices:
        return False
    problem = case.make(torch.Generator().manual_seed(0)).to(dtype=dtype, device=device)
    try:
        _outputs_and_grads(OPS[case.op][1], problem, torch.Generator().manual_seed(1))
    except (RuntimeError, NotImplementedError):
        return False
    return True


def compare_with_reference(case, dtype, device, seed=0):
    """Hand output and gradients (computed in ``dtype`` on ``device``) against the NumPy reference
    (computed in float64 on the same data)."""
    problem = case.make(torch.Generator().manual_seed(seed)).to(dtype=dtype, device=device)
    out, grads, v = _outputs_and_grads(OPS[case.op][0], problem, torch.Generator().manual_seed(seed + 1))
    expected_out, expected_grads = _REFERENCES[case.op](
        {k: _numpy(t) for k, t in problem.tensors.items()},
        {k: _numpy(t) if isinstance(t, torch.Tensor) else t for k, t in problem.options.items()},
        None if v is None else _numpy(v),
        problem,
    )
    tolerance = TOLERANCES[dtype]
    diffs = [difference("output", out, torch.from_numpy(np.asarray(expected_out)), tolerance)]
    for name, expected in expected_grads.items():
        if f"d{name}" in grads:
            diffs.append(difference(f"d{name}", grads[f"d{name}"], torch.from_numpy(np.asarray(expected)), tolerance))
    return diffs


def gradchecks(case, device, seed=0):
    """(gradcheck, gradgradcheck) in float64, each True or the error message; both also check
    forward mode (``jvp``, and forward-over-reverse) against finite differences."""
    problem = case.make(torch.Generator().manual_seed(seed)).to(device=device)
    leaves = problem.leaves()
    names = list(leaves)
    hand = OPS[case.op][0]

    def fn(*wrt_tensors):
        tensors = dict(leaves)
        tensors.update(zip(problem.wrt, wrt_tensors))
        return hand(*(tensors[n] for n in names), **problem.options)

    inputs = tuple(leaves[n] for n in problem.wrt)
    results = []
    checks = (
        lambda: torch.autograd.gradcheck(fn, inputs, check_forward_ad=True),
        lambda: torch.autograd.gradgradcheck(fn, inputs, check_fwd_over_rev=True),
    )
    for check in checks:
        try:
            results.append(check())
        except Exception as error:  # the message is the report
            results.append(f"{type(error).__name__}: {error}")
    return tuple(results)


def assert_all_ok(diffs, context):
    bad = [str(d) for d in diffs if not d.ok]
    assert not bad, f"{context}: " + "; ".join(bad)


# -- NumPy reference adapters: torch layout in, the seed's layout inside ---------------------------


def _numpy(t):
    t = t.detach().cpu()
    return (t.double() if t.is_floating_point() else t).numpy()


def _sum_to(a, shape):
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    return a.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1), keepdims=True).reshape(shape)


def _reference_linear(t, options, v, problem):
    x, W, b = t["input"], t["weight"], t.get("bias")
    W2 = W if W.ndim == 2 else W[None]                       # (out, in); a 1-D weight is one row
    x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
    out2 = reference.linear_forward(x2, W2.T)                # the seed's l = x W with W (in, out)
    out_shape = x.shape[:-1] + ((W.shape[0],) if W.ndim == 2 else ())
    out = out2.reshape(out_shape) + (0 if b is None else b)
    if v is None:
        return out, {}
    v2 = v.reshape(x2.shape[0], W2.shape[0])
    dx, dW, _ = reference.linear_backward(v2, x2, W2.T)
    grads = {"input": dx.reshape(x.shape), "weight": dW.T.reshape(W.shape)}
    if b is not None:
        grads["bias"] = _sum_to(v, b.shape)
    return out, grads


def _reference_elementwise(forward, backward):
    def run(t, options, v, problem):
        y = forward(t["input"])
        return y, ({} if v is None else {"input": backward(v, y)})
    return run


def _reference_cross_entropy(t, options, v, problem):
    x, target = t["input"], t["target"]
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    x2 = np.moveaxis(x, class_dim, -1).reshape(-1, n_classes)
    probabilities = np.issubdtype(target.dtype, np.floating)
    t2 = np.moveaxis(target, class_dim, -1).reshape(-1, n_classes) if probabilities else target.reshape(-1)
    kwargs = dict(options)
    out = reference.cross_entropy_forward(x2, t2, **kwargs)
    class_free = x.shape[:class_dim] + x.shape[class_dim + 1:]
    if options.get("reduction") == "none":
        out = out.reshape(class_free)
    if v is None:
        return out, {}
    dx2, dt2 = reference.cross_entropy_backward(v.reshape(-1) if v.ndim else v, x2, t2, **kwargs)
    unflatten = lambda a: np.moveaxis(a.reshape(class_free + (n_classes,)), -1, class_dim)
    grads = {"input": unflatten(dx2)}
    if dt2 is not None:
        grads["target"] = unflatten(dt2)
    return out, grads


def _reference_dropout(t, options, v, problem):
    x = problem.tensors["input"]                             # the mask is drawn on x's device, in x's dtype
    torch.manual_seed(DROPOUT_SEED)
    keep = _numpy(torch.empty_like(x).bernoulli_(1 - options["p"]).bool())
    y = reference.dropout_forward(t["input"], keep, options["p"])
    return y, ({} if v is None else {"input": reference.dropout_backward(v, keep, options["p"])})


def _reference_linear_then(forward, backward):
    def run(t, options, v, problem):
        z, _ = _reference_linear(t, options, None, problem)
        y = forward(z)
        if v is None:
            return y, {}
        return y, _reference_linear(t, options, backward(v, y), problem)[1]
    return run


_REFERENCES = {
    "linear": _reference_linear,
    "linear_sigmoid": _reference_linear_then(reference.sigmoid_forward, reference.sigmoid_backward),
    "linear_relu": _reference_linear_then(reference.relu_forward, reference.relu_backward),
    "sigmoid": _reference_elementwise(reference.sigmoid_forward, reference.sigmoid_backward),
    "relu": _reference_elementwise(reference.relu_forward, reference.relu_backward),
    "dropout": _reference_dropout,
    "cross_entropy": _reference_cross_entropy,
}
