"""Verify a hand-derived Function in one call: ``verify(function, reference, samples)``.

``function`` applies your ``torch.autograd.Function`` (a functional face, such as
``handgrad.functional.tanh``); ``reference`` is a callable with the same signature that computes
the same thing another way (a torch built-in, or your own plain-torch formula); ``samples`` is a
list of argument tuples (or ``Sample`` objects, which add keyword arguments and a name) of float64
CPU tensors, the ones with ``requires_grad=True`` being differentiated::

    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    report = handgrad.testing.verify(my_tanh, torch.tanh, [(x,)])
    assert report.passed, report

Per sample, on every device present (CPU, and CUDA where there is one):

- ``reference``: output and the gradient of every differentiable input against the reference's,
  for the same random upstream gradient, in float64, float32, bfloat16 and float16 (``TOLERANCES``);
- ``numpy``: the same against a NumPy oracle, when one is given;
- ``gradcheck``, ``gradgradcheck``: finite differences in float64, forward mode included where
  every Function of the op defines ``jvp``;
- ``vmap``: per-sample outputs and gradients with ``torch.func.vmap`` against a Python loop, where
  the Functions support vmap;
- ``compile``: ``torch.compile`` (AOTAutograd, which traces the backward too) gives the eager result;
- ``strided``: non-contiguous inputs give the reference's result on the same inputs;
- ``needs_input_grad``: backward returns None for every input that did not ask for a gradient;
- ``hand_derived``: the output comes from a custom Function, no built-in ``*_backward`` kernel is
  dispatched during backward (nor during double backward), and no built-in autograd node other
  than reshaping and casting sits between the inputs and the output;
- ``autocast``: under ``torch.autocast`` (CPU bfloat16; CUDA float16) the output and gradients
  have the reference's dtypes and values.

No samples, or no sample with an input that requires grad, is a failure, never a pass.
"""

import contextlib
import dataclasses
import math
import re
import warnings
from typing import Callable

import numpy as np
import torch
from torch.autograd import Function
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Sample", "ErrorInput", "Tolerance", "TOLERANCES", "DTYPES", "CHECKS", "verify", "Report", "available_devices", "difference", "randn"]


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
CHECKS = ("reference", "numpy", "gradcheck", "gradgradcheck", "vmap", "compile", "strided",
          "needs_input_grad", "hand_derived", "autocast")
_FLOAT64_CHECKS = CHECKS[2:]                 # run once per device, in float64
AUTOCAST_DTYPES = {"cpu": torch.bfloat16, "cuda": torch.float16}
SEED = 1234                                  # the global RNG is reseeded before every call (dropout)


@dataclasses.dataclass
class Sample:
    """One call of the op under test.

    Args:
        args: positional arguments; float64 CPU tensors with ``requires_grad=True`` are differentiated
        kwargs: keyword arguments (tensors among them are converted too, never differentiated)
        name: how the report names it (default ``sample <i>``)
        dtypes: the dtypes it is compared in (default: every dtype of ``TOLERANCES``), e.g. without
            float16 where the result exceeds float16's range
        reference_devices: device types on which it is compared with the reference and the NumPy
            oracle (default: all); e.g. ``("cpu",)`` for dropout, whose CUDA built-in draws its
            mask from another random stream
        builtin_devices: device types, among those, on which the reference (PyTorch's built-in) is
            trusted (default: all of them); e.g. ``("cpu",)`` where the CUDA built-in itself is
            wrong (embedding's max_norm with norm_type 3), while the NumPy oracle still checks CUDA
        gradcheck: False where the value itself is NaN (a mean over nothing) and finite
            differences mean nothing
    """

    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)
    name: str = ""
    dtypes: tuple = None
    reference_devices: tuple = None
    builtin_devices: tuple = None
    gradcheck: bool = True

    def tensors(self):
        """(where, key, tensor) of every tensor argument: where is "args" or "kwargs"."""
        found = [("args", i, a) for i, a in enumerate(self.args) if isinstance(a, torch.Tensor)]
        return found + [("kwargs", k, v) for k, v in self.kwargs.items() if isinstance(v, torch.Tensor)]

    def differentiable(self):
        return [(where, key) for where, key, t in self.tensors() if where == "args" and t.requires_grad]

    def call_args(self, dtype=None, device=None, replace=None):
        """Fresh leaves: the sample's tensors in ``dtype`` (floating ones) on ``device``, those that
        require grad requiring it; ``replace`` maps (where, key) to a tensor used as is."""
        replace = replace or {}

        def convert(where, key, value):
            if (where, key) in replace:
                return replace[(where, key)]
            if not isinstance(value, torch.Tensor):
                return value
            floating = value.is_floating_point()
            t = value.detach().to(device=device, dtype=dtype if floating and dtype else None, copy=True)
            return t.requires_grad_(value.requires_grad and where == "args")

        args = tuple(convert("args", i, a) for i, a in enumerate(self.args))
        kwargs = {k: convert("kwargs", k, v) for k, v in self.kwargs.items()}
        return args, kwargs



@dataclasses.dataclass(frozen=True)
class ErrorInput:
    """A call that must raise a clear exception (PyTorch OpInfo's ``error_inputs``).

    ``call(F, nn)`` makes the call with ``F`` a functional namespace and ``nn`` a module namespace,
    handgrad's or torch's; handgrad must raise ``exception`` with a message matching the regular
    expression ``message``, of the class torch raises (so ``except`` clauses written for torch catch
    it) unless ``torch_accepts`` (torch computes a result where handgrad deliberately refuses) or
    ``torch_class`` (torch's class, where it is an accident handgrad does not copy).
    """

    name: str
    call: Callable
    exception: type
    message: str
    torch_accepts: bool = False
    torch_class: type = None


def _as_samples(samples):
    out = []
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            s = Sample(tuple(s) if isinstance(s, (tuple, list)) else (s,))
        if not s.name:
            s = dataclasses.replace(s, name=f"sample {i}")
        out.append(s)
    return out


def available_devices():
    """"cpu", and "cuda" where a GPU is present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# -- comparing tensors ------------------------------------------------------------------------------


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


def difference(name, actual, expected, tolerance):
    """Compare two tensors: shapes and NaN/inf positions must match, values within ``tolerance``."""
    if actual is None or expected is None:
        return Difference(f"{name} is None on one side only", math.inf, math.inf, actual is expected)
    actual = torch.as_tensor(actual).detach().cpu().double()
    expected = torch.as_tensor(expected).detach().cpu().double()
    if actual.shape != expected.shape:
        return Difference(f"{name} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}",
                          math.inf, math.inf, False)
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


# -- running a sample ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(device):
    """The same random numbers for every call: the device's generator reseeded, then restored
    (by hand rather than with ``torch.random.fork_rng``, which costs 40 times more per call)."""
    cuda = torch.device(device).type == "cuda"
    generator = torch.cuda.default_generators[torch.device(device).index or 0] if cuda else torch.default_generator
    state = generator.get_state()
    generator.manual_seed(SEED)
    try:
        yield
    finally:
        generator.set_state(state)


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _differentiable_outputs(outputs):
    return [o for o in outputs if isinstance(o, torch.Tensor) and o.requires_grad]


def _upstream(outputs, seed):
    """A random upstream gradient for each differentiable output, drawn in float64."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o) for o in outputs]


def _input_name(sample, where, key):
    return f"input {key}" if where == "args" else f"keyword {key}"


@dataclasses.dataclass
class _Run:
    outputs: list            # every output, tensors or not
    grads: dict              # input name -> gradient (None when not connected)
    upstream: list


def _run(function, sample, dtype, device, seed, replace=None, create_graph=False):
    """Call ``function`` on the sample and differentiate its outputs for a random upstream gradient."""
    args, kwargs = sample.call_args(dtype, device, replace)
    with _seeded(device):
        outputs = _outputs(function(*args, **kwargs))
    wrt_keys = sample.differentiable()
    wrt = [args[key] for _, key in wrt_keys]
    diff_outputs = _differentiable_outputs(outputs)
    grads = {}
    upstream = _upstream(diff_outputs, seed)
    if wrt and diff_outputs:
        found = torch.autograd.grad(diff_outputs, wrt, upstream, allow_unused=True, create_graph=create_graph)
        grads = {_input_name(sample, w, k): g for (w, k), g in zip(wrt_keys, found)}
    return _Run(outputs, grads, upstream)


def _compare_runs(actual, expected, tolerance, against, dtypes_must_match=True):
    """Differences for every output and gradient; a missing gradient counts as zeros."""
    diffs = []
    tensors = [(i, o) for i, o in enumerate(expected.outputs) if isinstance(o, torch.Tensor)]
    for i, e in tensors:
        a = actual.outputs[i] if i < len(actual.outputs) else None
        name = "output" if len(expected.outputs) == 1 else f"output {i}"
        if not isinstance(a, torch.Tensor):
            diffs.append(Difference(f"{name} is missing", math.inf, math.inf, False))
            continue
        if dtypes_must_match and a.dtype != e.dtype:
            diffs.append(Difference(f"{name} has dtype {a.dtype}, {against} gives {e.dtype}", math.inf, math.inf, False))
        diffs.append(difference(f"{name} differs from {against}", a, e, tolerance))
    for name, e in expected.grads.items():
        a = actual.grads.get(name)
        if a is None and e is None:
            continue
        a = torch.zeros_like(e) if a is None else a
        e = torch.zeros_like(a) if e is None else e
        if dtypes_must_match and a.dtype != e.dtype:
            diffs.append(Difference(f"gradient of {name} has dtype {a.dtype}, {against} gives {e.dtype}",
                                    math.inf, math.inf, False))
        diffs.append(difference(f"gradient of {name} differs from {against}", a, e, tolerance))
    return diffs


# -- the graph of a call -------------------------------------------------------------------------------

# Autograd nodes that only move, reshape or cast values: allowed around a hand Function.
_STRUCTURAL = re.compile(
    r"(View|UnsafeView|Reshape|ReshapeAlias|Unsqueeze|Squeeze|Expand|Permute|Transpose|T|Clone|ToCopy|"
    r"Select|Slice|Alias|AsStrided|Unbind|Split|SplitWithSizes|Narrow|Detach|Flatten|Unflatten)Backward\d*"
)


def _graph(outputs):
    """(custom Function classes, names of built-in nodes) between the outputs and the leaves."""
    seen, functions, builtin = set(), [], []
    stack = [o.grad_fn for o in _differentiable_outputs(outputs) if o.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        cls = getattr(node, "_forward_cls", None)
        name = type(node).__name__
        if cls is not None:
            functions.append(cls)
        elif name != "AccumulateGrad":
            builtin.append(name)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return list(dict.fromkeys(functions)), builtin


def _overrides(cls, method):
    return getattr(cls, method, None) is not getattr(Function, method, None)


def _has_jvp(functions):
    return bool(functions) and all(_overrides(f, "jvp") for f in functions)


def _supports_vmap(functions):
    return bool(functions) and all(getattr(f, "generate_vmap_rule", False) or _overrides(f, "vmap") for f in functions)


class _DispatchLog(TorchDispatchMode):
    """Every aten op dispatched while active."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def builtin_backward_kernels(ops):
    """The built-in backward kernels among dispatched op names (``sigmoid_backward``, ...)."""
    return sorted({op for op in ops if "backward" in op})


@contextlib.contextmanager
def _recording_backward(functions):
    """Record (Function, needs_input_grad, returned gradients) of every backward call of these Functions."""
    calls, own = [], {cls: vars(cls).get("backward") for cls in functions}
    for cls in functions:
        def backward(ctx, *grads, _inner=cls.backward, _cls=cls):
            returned = _inner(ctx, *grads)
            calls.append((_cls, tuple(ctx.needs_input_grad), returned if isinstance(returned, tuple) else (returned,)))
            return returned

        cls.backward = staticmethod(backward)
    try:
        yield calls
    finally:
        for cls, backward in own.items():
            if backward is None:
                del cls.backward                     # inherited again
            else:
                cls.backward = backward


# -- the checks --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """The result of one check on one sample: ``status`` is "pass", "FAIL" or "n/a"."""

    check: str
    sample: str
    device: str
    dtype: torch.dtype
    status: str
    detail: str = ""
    diffs: list = dataclasses.field(default_factory=list)


def _exception(error):
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}"


def _check_against(function, expected_fn, sample, dtype, device, seed, tolerance, against, dtypes_must_match=True):
    """Run ``expected_fn()`` (a ``_Run``), then the function, and compare: "n/a" when the expected
    side does not run, "FAIL" when the function raises where it does or any tensor differs."""
    try:
        expected = expected_fn()
    except Exception as error:
        return "n/a", f"{against} does not run in {dtype} on {device} ({_exception(error)})", []
    try:
        actual = _run(function, sample, dtype, device, seed)
    except Exception as error:
        return "FAIL", f"raised {_exception(error)} where {against} computes a result", []
    diffs = _compare_runs(actual, expected, tolerance, against, dtypes_must_match)
    bad = [str(d) for d in diffs if not d.ok]
    return ("FAIL" if bad else "pass"), "; ".join(bad), diffs


def _check_reference(function, reference, sample, dtype, device, seed, tolerances):
    return _check_against(
        function, lambda: _run(reference, sample, dtype, device, seed), sample, dtype, device, seed,
        tolerances[dtype], "the reference",
    )


def _to_numpy(value):
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    return (value.double() if value.is_floating_point() else value).numpy()


def _check_numpy(function, numpy_fn, sample, dtype, device, seed, tolerances):
    """The oracle computes in float64 from the sample's values rounded to ``dtype``, and its vjp
    takes the upstream gradient the function gets (drawn the same way, rounded the same way)."""
    def expected():
        args, kwargs = sample.call_args(dtype, device)
        with _seeded(device):
            out, vjp = numpy_fn(*map(_to_numpy, args), **{k: _to_numpy(v) for k, v in kwargs.items()})
        outputs = [torch.from_numpy(np.asarray(o)) for o in _outputs(out)]
        floating = [o for o in outputs if o.is_floating_point()]
        upstream = [u.to(dtype).double() for u in _upstream(floating, seed)]
        grads = {}
        if sample.differentiable() and floating:
            found = vjp(*(u.numpy() for u in upstream))
            found = found if isinstance(found, (tuple, list)) else (found,)
            for where, key in sample.differentiable():
                grad = found[key] if key < len(found) else None
                grads[_input_name(sample, where, key)] = None if grad is None else torch.from_numpy(np.asarray(grad))
        return _Run(outputs, grads, upstream)

    return _check_against(function, expected, sample, dtype, device, seed, tolerances[dtype], "the NumPy oracle",
                          dtypes_must_match=False)


def _function_of_differentiable(function, sample, device, replace=None):
    """(f, inputs): f takes the differentiable tensors only, the other arguments held fixed."""
    args, kwargs = sample.call_args(torch.float64, device, replace)
    keys = [key for _, key in sample.differentiable()]

    def f(*wrt):
        call = list(args)
        for key, t in zip(keys, wrt):
            call[key] = t
        with _seeded(device):
            return function(*call, **kwargs)

    return f, tuple(args[key] for key in keys)


def _check_gradchecks(function, sample, device, functions):
    if not sample.gradcheck:
        return {name: ("n/a", "the value is NaN by definition") for name in ("gradcheck", "gradgradcheck")}
    f, inputs = _function_of_differentiable(function, sample, device)
    forward_mode = _has_jvp(functions)
    results = {}
    checks = {
        "gradcheck": lambda: torch.autograd.gradcheck(f, inputs, check_forward_ad=forward_mode),
        "gradgradcheck": lambda: torch.autograd.gradgradcheck(f, inputs, check_fwd_over_rev=forward_mode),
    }
    for name, check in checks.items():
        try:
            check()
            results[name] = ("pass", "forward mode included" if forward_mode else "")
        except Exception as error:
            results[name] = ("FAIL", _exception(error))
    return results


def _batched(value, copies=3):
    """``copies`` versions of a tensor stacked along a new dimension 0: itself, then scaled copies."""
    if not isinstance(value, torch.Tensor):
        return value
    if not value.is_floating_point():
        return torch.stack([value] * copies)
    scales = [1.0, 0.5, 1.5][:copies]
    return torch.stack([value.detach() * s for s in scales]).requires_grad_(value.requires_grad)


def _check_vmap(function, sample, device, functions, seed):
    if not _supports_vmap(functions):
        return "n/a", "its Functions define no vmap rule", []
    args, kwargs = sample.call_args(torch.float64, device)
    batched_args = [_batched(a) for a in args]
    keys = [key for _, key in sample.differentiable()]
    tensor_positions = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    copies = 3

    def per_sample(*tensors):
        call = list(args)
        for i, t in zip(tensor_positions, tensors):
            call[i] = t
        return function(*call, **kwargs)

    def value_and_grads(*tensors_and_v):
        tensors, v = tensors_and_v[: len(tensor_positions)], tensors_and_v[len(tensor_positions):]
        wrt_index = [tensor_positions.index(k) for k in keys]

        def of_wrt(*wrt):
            full = list(tensors)
            for j, t in zip(wrt_index, wrt):
                full[j] = t
            return tuple(o for o in _outputs(per_sample(*full)) if isinstance(o, torch.Tensor) and o.is_floating_point())

        outs, vjp_fn = torch.func.vjp(of_wrt, *[tensors[j] for j in wrt_index])
        return outs, vjp_fn(tuple(v))

    try:
        with _seeded(device):
            probe = [o for o in _outputs(per_sample(*[args[i] for i in tensor_positions]))
                     if isinstance(o, torch.Tensor) and o.is_floating_point()]
        gen = torch.Generator().manual_seed(seed)
        vs = [torch.randn((copies, *o.shape), generator=gen, dtype=torch.float64).to(o) for o in probe]
        tensors = [batched_args[i].detach() for i in tensor_positions]
        with _seeded(device):
            outs, grads = torch.func.vmap(value_and_grads, randomness="same")(*tensors, *vs)
    except Exception as error:
        return "FAIL", f"under vmap: {_exception(error)}", []
    diffs = []
    tolerance = TOLERANCES[torch.float64]
    for b in range(copies):
        loop_tensors = [t[b] for t in tensors]
        with _seeded(device):
            loop_outs, loop_grads = value_and_grads(*loop_tensors, *[v[b] for v in vs])
        for i, (o, lo) in enumerate(zip(outs, loop_outs)):
            diffs.append(difference(f"output {i} of batch element {b} under vmap differs from the loop", o[b], lo, tolerance))
        for key, g, lg in zip(keys, grads, loop_grads):
            diffs.append(difference(f"per-sample gradient of input {key}, batch element {b}, under vmap differs "
                                    f"from the loop", g[b], lg, tolerance))
    bad = [str(d) for d in diffs if not d.ok]
    return ("FAIL" if bad else "pass"), "; ".join(bad), diffs


def _check_compile(function, sample, device, seed, fullgraph):
    eager = _run(function, sample, torch.float64, device, seed)
    torch._dynamo.reset()
    compiled = torch.compile(function, backend="aot_eager", fullgraph=fullgraph, dynamic=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = _run(compiled, sample, torch.float64, device, seed)
    except Exception as error:
        return "FAIL", f"under torch.compile: {_exception(error)}", []
    finally:
        torch._dynamo.reset()
    diffs = _compare_runs(result, eager, TOLERANCES[torch.float64], "the eager result")
    bad = [str(d) for d in diffs if not d.ok]
    return ("FAIL" if bad else "pass"), "; ".join(bad), diffs


def _noncontiguous(t):
    """The same values laid out as no kernel expects: every other element of a buffer, and for two
    dimensions or more, the last two transposed in memory (so that no ``view`` can flatten it)."""
    shape = t.shape if t.dim() < 2 else (*t.shape[:-2], t.shape[-1], t.shape[-2])
    with torch.no_grad():
        strided = torch.empty((*shape, 2), dtype=t.dtype, device=t.device)[..., 0]
        strided = strided if t.dim() < 2 else strided.transpose(-1, -2)
        strided.copy_(t)
    return strided.requires_grad_(t.requires_grad)


def _check_strided(function, reference, sample, device, seed, compared):
    """The function on non-contiguous inputs against the first of these that runs: the reference on
    the same inputs (a random op such as dropout draws its mask in memory order, as PyTorch's does on
    the CPU), the reference on contiguous inputs (for a built-in that refuses the layout), and the
    function's own result on contiguous inputs (where the reference is not compared on this device,
    or raises whatever the layout: CUDA's batch norm with β but no γ, an H100, torch 2.11)."""
    args, kwargs = sample.call_args(torch.float64, device)
    replace = {("args", i): _noncontiguous(a) for i, a in enumerate(args)
               if isinstance(a, torch.Tensor) and a.dim() >= 1 and a.numel() > 1}
    replace.update({("kwargs", k): _noncontiguous(v).requires_grad_(False) for k, v in kwargs.items()
                    if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.numel() > 1})
    if not replace:
        return "n/a", "no tensor argument with more than one element", []
    candidates = [(reference, replace, "the reference"), (reference, None, "the reference on contiguous inputs")]
    for expected_fn, layout, against in candidates if compared else []:
        try:
            expected = _run(expected_fn, sample, torch.float64, device, seed, replace=layout)
            break
        except Exception:
            continue
    else:
        expected, against = _run(function, sample, torch.float64, device, seed), "contiguous inputs"
    try:
        strided = _run(function, sample, torch.float64, device, seed, replace=replace)
    except Exception as error:
        return "FAIL", f"non-contiguous inputs: {_exception(error)}", []
    diffs = _compare_runs(strided, expected, TOLERANCES[torch.float64], against)
    bad = [f"non-contiguous inputs: {d}" for d in diffs if not d.ok]
    return ("FAIL" if bad else "pass"), "; ".join(bad), diffs


def _check_needs_input_grad(function, sample, device, functions, seed):
    if not functions:
        return "n/a", "no custom Function in the graph", []
    keys = sample.differentiable()
    problems = []
    for only in keys:
        args, kwargs = sample.call_args(torch.float64, device)
        args = tuple(a.detach().requires_grad_(i == only[1]) if isinstance(a, torch.Tensor) and a.is_floating_point()
                     else a for i, a in enumerate(args))
        with _seeded(device):
            outputs = _differentiable_outputs(_outputs(function(*args, **kwargs)))
        if not outputs:
            continue
        with _recording_backward(functions) as calls:
            torch.autograd.grad(outputs, [args[only[1]]], _upstream(outputs, seed), allow_unused=True)
        for cls, needs, returned in calls:
            extra = [i for i, (need, g) in enumerate(zip(needs, returned)) if not need and g is not None]
            if extra:
                problems.append(
                    f"{cls.__name__}.backward returned a gradient for its input(s) {extra}, which did not ask "
                    f"for one (only input {only[1]} of the op requires grad; ctx.needs_input_grad = {list(needs)})"
                )
    return ("FAIL" if problems else "pass"), "; ".join(dict.fromkeys(problems)), []


def _check_hand_derived(function, sample, device, seed):
    args, kwargs = sample.call_args(torch.float64, device)
    with _seeded(device):
        outputs = _outputs(function(*args, **kwargs))
    functions, builtin = _graph(outputs)
    problems = []
    if not functions:
        problems.append("the output does not come from a custom autograd Function"
                        + (f" (its graph holds only built-in nodes: {', '.join(sorted(set(builtin)))})" if builtin else ""))
    computing = sorted({n for n in builtin if not _STRUCTURAL.fullmatch(n)})
    if computing:
        problems.append(f"built-in autograd nodes compute part of the result: {', '.join(computing)}")
    diff_outputs = _differentiable_outputs(outputs)
    wrt = [args[key] for _, key in sample.differentiable()]
    if diff_outputs and wrt:
        with _DispatchLog() as first:
            grads = torch.autograd.grad(diff_outputs, wrt, _upstream(diff_outputs, seed), allow_unused=True,
                                        create_graph=True)
        ops = first.ops
        connected = [g for g in grads if g is not None and g.requires_grad]
        if connected:
            with _DispatchLog() as second:
                torch.autograd.grad(sum((g * g).sum() for g in connected), wrt, allow_unused=True)
            ops = ops + second.ops
        kernels = builtin_backward_kernels(ops)
        if kernels:
            problems.append(f"built-in backward kernels ran during backward: {', '.join(kernels)}")
    return ("FAIL" if problems else "pass"), "; ".join(problems), functions


def _check_autocast(function, reference, sample, device, seed, tolerances):
    dtype = AUTOCAST_DTYPES[torch.device(device).type]
    if sample.dtypes is not None and dtype not in sample.dtypes:
        return "n/a", f"not compared in {dtype}", []

    def under_autocast(fn):
        def run(*args, **kwargs):
            with torch.autocast(torch.device(device).type, dtype=dtype):
                return fn(*args, **kwargs)
        return run

    return _check_against(
        under_autocast(function), lambda: _run(under_autocast(reference), sample, torch.float32, device, seed),
        sample, torch.float32, device, seed, tolerances[dtype], f"the reference under autocast({dtype})",
    )


# -- verify and its report -----------------------------------------------------------------------------


def verify(function, reference, samples, *, numpy=None, name=None, dtypes=DTYPES, devices=None, checks=CHECKS,
           tolerances=None, fullgraph=False, seed=0):
    """Verify a hand-derived ``function`` against ``reference`` on ``samples``; returns a ``Report``.

    Args:
        function: callable that applies a hand-derived ``torch.autograd.Function``
        reference: callable with the same signature computing the same thing another way
        samples: list of argument tuples or ``Sample`` objects, float64 CPU tensors; those with
            ``requires_grad=True`` are differentiated
        numpy: optional NumPy oracle ``numpy(*args, **kwargs) -> (output, vjp)``, tensors passed as
            float64 (or integer) arrays; ``vjp(*g)`` returns the gradient of each positional argument
            (None where there is none)
        name: the name the report gives the function (default: its ``__name__``)
        dtypes: dtypes of the comparisons (default: float64, float32, bfloat16, float16)
        devices: devices (default: "cpu", and "cuda" where available)
        checks: which checks to run (default: all of ``CHECKS``)
        tolerances: per-dtype ``Tolerance`` overriding ``TOLERANCES``
        fullgraph: require ``torch.compile`` to capture the function in one graph
        seed: seed of the upstream gradients

    Returns:
        ``Report``: ``.passed``, ``.failures`` (one sentence per failed check) and, printed, the same
        table ``handgrad-check`` prints.
    """
    name = name or _name_of(function)
    samples = _as_samples(samples)
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"verify: unknown checks {unknown}; choose from {CHECKS}")
    tolerances = {**TOLERANCES, **(tolerances or {})}
    outcomes, problems = [], []
    if not samples:
        problems.append(f"{name}: no samples were given, so nothing was verified")
    elif not any(s.differentiable() for s in samples):
        problems.append(f"{name}: no sample has an input with requires_grad=True, so no gradient was verified")
    for sample in samples:
        for where, key, t in sample.tensors():
            if t.is_floating_point() and (t.dtype != torch.float64 or t.device.type != "cpu"):
                problems.append(f"{name} [{sample.name}]: {_input_name(sample, where, key)} is {t.dtype} on "
                                f"{t.device}; samples are float64 CPU tensors (verify converts them)")
    if problems:
        return Report(name, outcomes, problems)
    with _one_thread():
        for device in devices or available_devices():
            for sample in samples:
                outcomes += _verify_sample(function, reference, numpy, sample, device, dtypes, checks, tolerances,
                                           fullgraph, seed)
    return Report(name, outcomes, [])


@contextlib.contextmanager
def _one_thread():
    """Samples are small: one CPU thread computes them fastest, and on a busy machine a parallel
    kernel waiting for its threads can take a thousand times longer (8 ms for an (8, 5) log_softmax
    with 2 threads on a loaded 2-core machine, 5 µs with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _name_of(function):
    """``MyTanh`` for ``MyTanh.apply``, else the function's own name."""
    owner = getattr(function, "__self__", None)
    if isinstance(owner, type):
        return owner.__name__
    return getattr(function, "__name__", type(function).__name__)


def _verify_sample(function, reference, numpy_fn, sample, device, dtypes, checks, tolerances, fullgraph, seed):
    outcomes = []
    device_type = torch.device(device).type
    compared = sample.reference_devices is None or device_type in sample.reference_devices
    trusted = compared and (sample.builtin_devices is None or device_type in sample.builtin_devices)
    for dtype in dtypes:
        if sample.dtypes is not None and dtype not in sample.dtypes:
            continue
        if "reference" in checks and trusted:
            status, detail, diffs = _check_reference(function, reference, sample, dtype, device, seed, tolerances)
            outcomes.append(Outcome("reference", sample.name, device, dtype, status, detail, diffs))
        if "numpy" in checks and numpy_fn is not None and compared:
            status, detail, diffs = _check_numpy(function, numpy_fn, sample, dtype, device, seed, tolerances)
            outcomes.append(Outcome("numpy", sample.name, device, dtype, status, detail, diffs))
    if not sample.differentiable() or not set(checks) & set(_FLOAT64_CHECKS) or torch.float64 not in dtypes:
        return outcomes

    def add(check, status, detail="", diffs=()):
        outcomes.append(Outcome(check, sample.name, device, torch.float64, status, detail, list(diffs)))

    try:
        status, detail, functions = _check_hand_derived(function, sample, device, seed)
    except Exception as error:
        add("hand_derived", "FAIL", f"raised {_exception(error)}")
        return outcomes
    if "hand_derived" in checks:
        add("hand_derived", status, detail)
    if {"gradcheck", "gradgradcheck"} & set(checks):
        for check, (status, detail) in _check_gradchecks(function, sample, device, functions).items():
            if check in checks:
                add(check, status, detail)
    runners = {
        "vmap": lambda: _check_vmap(function, sample, device, functions, seed),
        "compile": lambda: _check_compile(function, sample, device, seed, fullgraph),
        "strided": lambda: _check_strided(function, reference, sample, device, seed, trusted),
        "needs_input_grad": lambda: _check_needs_input_grad(function, sample, device, functions, seed),
        "autocast": lambda: (_check_autocast(function, reference, sample, device, seed, tolerances)
                             if trusted else ("n/a", "not compared with the reference on this device", [])),
    }
    for check, run in runners.items():
        if check in checks:
            try:
                add(check, *run())
            except Exception as error:
                add(check, "FAIL", f"raised {_exception(error)}")
            if check == "autocast":                 # reported in the row of the autocast dtype
                outcomes[-1].dtype = AUTOCAST_DTYPES[device_type]
    return outcomes


_COLUMNS = ("reference", "numpy", "gradcheck", "gradgradcheck", "vmap", "compile", "strided", "needs_input_grad",
            "hand_derived", "autocast")
_HEADERS = {"reference": "vs reference abs / rel", "numpy": "vs NumPy abs / rel", "gradgradcheck": "gradgrad",
            "needs_input_grad": "needs_grad", "hand_derived": "hand"}


class Report:
    """What ``verify`` found: ``passed``, ``failures``, ``rows`` (one per device and dtype), and a
    table when printed (``str(report)``), the same one ``handgrad-check`` prints."""

    def __init__(self, name, outcomes, problems):
        self.name = name
        self.outcomes = outcomes
        self.problems = problems

    @property
    def failures(self):
        found = list(self.problems)
        for o in self.outcomes:
            if o.status == "FAIL":
                dtype = str(o.dtype).removeprefix("torch.")
                found.append(f"{self.name} {o.device} {dtype} [{o.sample}]: {o.check}: {o.detail}")
        return found

    @property
    def passed(self):
        return not self.problems and bool(self.outcomes) and all(o.status != "FAIL" for o in self.outcomes)

    def __bool__(self):
        return self.passed

    @property
    def rows(self):
        rows = {}
        for o in self.outcomes:
            key = (o.device, o.dtype)
            row = rows.setdefault(key, {"function": self.name, "device": o.device,
                                        "dtype": str(o.dtype).removeprefix("torch."), "samples": set(),
                                        **{c: None for c in _COLUMNS}})
            row["samples"].add(o.sample)
            cell = row[o.check] or {"status": "n/a", "max_abs": 0.0, "max_rel": 0.0, "count": 0}
            if o.status == "FAIL" or (o.status == "pass" and cell["status"] == "n/a"):
                cell["status"] = o.status
            if o.status != "n/a":
                cell["count"] += 1
            for d in o.diffs:
                if math.isfinite(d.max_abs):
                    cell["max_abs"] = max(cell["max_abs"], d.max_abs)
                    cell["max_rel"] = max(cell["max_rel"], d.max_rel)
            row[o.check] = cell
        out = []
        for (device, dtype), row in sorted(rows.items(), key=lambda kv: (kv[0][0], DTYPES.index(kv[0][1]))):
            row["samples"] = len(row["samples"])
            row["ok"] = all(row[c] is None or row[c]["status"] != "FAIL" for c in _COLUMNS)
            out.append(row)
        return out

    def to_dict(self):
        return {"function": self.name, "passed": self.passed, "rows": self.rows, "failures": self.failures}

    def __str__(self):
        return format_table(self.rows, self.failures, [self])

    __repr__ = __str__


def _cell(cell, numeric):
    if cell is None or cell["status"] == "n/a":
        return "-"
    if cell["status"] == "FAIL":
        return "FAIL"
    return f"{cell['max_abs']:.1e} / {cell['max_rel']:.1e}" if numeric else "pass"


def format_table(rows, failures, reports=()):
    """One line per function/device/dtype, then every failure, then a one-line summary."""
    header = ["function", "device", "dtype", "samples", *(_HEADERS.get(c, c) for c in _COLUMNS), "result"]
    lines = [[r["function"], r["device"], r["dtype"], str(r["samples"]),
              *(_cell(r[c], c in ("reference", "numpy")) for c in _COLUMNS), "pass" if r["ok"] else "FAIL"]
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines]
    out += [f"FAIL {f}" for f in failures]
    out.append(summary(rows, failures, reports))
    return "\n".join(out)


def summary(rows, failures, reports=()):
    checked = sum(1 for report in reports for o in report.outcomes if o.status != "n/a")
    devices_seen = sorted({r["device"] for r in rows})
    verdict = "all passed" if not failures and rows else f"FAILED ({len(failures)} failures)"
    if not rows and not failures:
        verdict = "FAILED (nothing was verified)"
    return (f"{verdict}: {len(rows)} rows, {checked} checks, devices: {', '.join(devices_seen) or 'none'}")


def randn(generator, *shape, requires_grad=True, scale=1.0):
    """A float64 CPU tensor of N(0, scale²) draws from ``generator``, a leaf requiring grad by default."""
    t = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    return t.requires_grad_(requires_grad)
