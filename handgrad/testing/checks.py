"""The table of checks that ``verify`` runs: one ``Check`` per row, each a function of one signature,
``run(case, dtype) -> Result``, from which the report's columns follow.

A ``Case`` is one sample on one device; ``dtype`` is the dtype the check runs in (each of verify's
dtypes for the comparisons, float64 for the checks that run once, the autocast dtype for autocast).
A check that raises is a failure of that check alone: no check's outcome hides another's.
"""

import dataclasses
import functools
import warnings
from typing import Callable

import numpy as np
import torch

import handgrad.functional as hand_derived_ops
from handgrad.testing.compare import TOLERANCES, difference, mismatch
from handgrad.testing.graph import (MOVEMENT_KERNELS, MOVEMENT, DispatchLog, forward_op_of, graph, has_jvp,
                                    recording_backward, supports_vmap, who_called)
from handgrad.testing.memory import Kept, by_node
from handgrad.testing.samples import (Run, differentiable_outputs, input_name, outputs_of, run, seeded, upstream)

AUTOCAST_DTYPES = {"cpu": torch.bfloat16, "cuda": torch.float16}


@dataclasses.dataclass(frozen=True)
class Result:
    """What one check found on one case: ``status`` "pass", "FAIL" or "n/a" (nothing to check, and
    ``detail`` says why), the failures or remarks in ``detail``, every tensor compared in ``diffs``,
    and ``advice``: what is legal but worth changing, which fails nothing."""

    status: str
    detail: str = ""
    diffs: tuple = ()
    advice: str = ""


def _judged(diffs, prefix=""):
    """pass, or FAIL naming every tensor that differs."""
    bad = [f"{prefix}{d}" for d in diffs if not d.ok]
    return Result("FAIL" if bad else "pass", "; ".join(bad), tuple(diffs))


def exception_line(error):
    """The exception's class and the first line of its message, ended as a sentence where the line
    breaks off (gradcheck's runs on into printed tensors: "... with respect to input 0,")."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(str(error).strip().splitlines()) > 1 and first.endswith((",", ":", ";")):
        first = first[:-1] + "."
    return f"{type(error).__name__}: {first}"


@dataclasses.dataclass
class Case:
    """One sample on one device, and what verify was given to check it with."""

    function: Callable
    reference: Callable
    numpy: Callable
    sample: object
    device: str
    seed: int
    tolerances: dict
    fullgraph: bool
    parameters: tuple = ()

    @functools.cached_property
    def functions(self):
        """The custom Function classes in the graph of one float64 call (raises what the call raises)."""
        args, kwargs = self.sample.call_args(torch.float64, self.device)
        with seeded(self.device):
            return graph(outputs_of(self.function(*args, **kwargs)))[0]

    def run(self, function, dtype=torch.float64, replace=None):
        return run(function, self.sample, dtype, self.device, self.seed, replace)


# -- comparing runs -----------------------------------------------------------------------------------


def compare_runs(actual, expected, tolerance, against, dtypes_must_match=True):
    """Differences for every output and gradient; a missing gradient counts as zeros."""
    diffs = []
    tensors = [(i, o) for i, o in enumerate(expected.outputs) if isinstance(o, torch.Tensor)]
    for i, e in tensors:
        a = actual.outputs[i] if i < len(actual.outputs) else None
        name = "output" if len(expected.outputs) == 1 else f"output {i}"
        if not isinstance(a, torch.Tensor):
            diffs.append(mismatch(f"{name} is missing"))
            continue
        if dtypes_must_match and a.dtype != e.dtype:
            diffs.append(mismatch(f"{name} dtype differs: {a.dtype} here, {e.dtype} from {against}"))
        diffs.append(difference(f"{name} differs from {against}", a, e, tolerance))
    for name, e in expected.grads.items():
        a = actual.grads.get(name)
        if a is None and e is None:
            continue
        a = torch.zeros_like(e) if a is None else a
        e = torch.zeros_like(a) if e is None else e
        if dtypes_must_match and a.dtype != e.dtype:
            diffs.append(mismatch(f"gradient of {name} dtype differs: {a.dtype} here, {e.dtype} from {against}"))
        d = difference(f"gradient of {name} differs from {against}", a, e, tolerance)
        x = actual.inputs.get(name)
        if d.worst is not None and x is not None and x.shape == a.shape:
            d.note = f"{name} = {x[d.worst[0]].item():.6g} there"
        diffs.append(d)
    return diffs


def _against(case, function, expected, dtype, tolerance, against, dtypes_must_match=True):
    """Run ``expected()`` (a ``Run``), then the function, and compare: "n/a" when the expected side
    does not run, "FAIL" when the function raises where it does or any tensor differs."""
    try:
        expected_run = expected()
    except Exception as error:
        return Result("n/a", f"{against} does not run in {dtype} on {case.device} ({exception_line(error)})")
    try:
        actual = case.run(function, dtype)
    except Exception as error:
        return Result("FAIL", f"raised {exception_line(error)} where {against} computes a result")
    return _judged(compare_runs(actual, expected_run, tolerance, against, dtypes_must_match))


# -- the checks ---------------------------------------------------------------------------------------


def check_reference(case, dtype):
    """Output and gradients against the reference's, for the same upstream gradient, in ``dtype``."""
    if not case.sample.trusted_on(case.device):
        return Result("n/a", "not compared with the reference on this device")
    return _against(case, case.function, lambda: case.run(case.reference, dtype), dtype, case.tolerances[dtype],
                    "the reference")


def _to_numpy(value):
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    return (value.double() if value.is_floating_point() else value).numpy()


def check_numpy(case, dtype):
    """Against the NumPy oracle, which computes in float64 from the sample's values rounded to
    ``dtype``; its vjp takes the upstream gradient the function gets (drawn the same way, rounded
    the same way)."""
    if case.numpy is None:
        return Result("n/a", "no NumPy oracle was given")
    if not case.sample.compared_on(case.device):
        return Result("n/a", "not compared with the NumPy oracle on this device")
    sample = case.sample

    def expected():
        args, kwargs = sample.call_args(dtype, case.device)
        with seeded(case.device):
            out, vjp = case.numpy(*map(_to_numpy, args), **{k: _to_numpy(v) for k, v in kwargs.items()})
        outputs = [None if o is None else torch.from_numpy(np.asarray(o)) for o in outputs_of(out)]
        floating = [o for o in outputs if o is not None and o.is_floating_point()]
        gradients = [u.to(dtype).double() for u in upstream(floating, case.seed)]
        grads = {}
        if sample.differentiable() and floating:
            found = vjp(*(u.numpy() for u in gradients))
            found = found if isinstance(found, (tuple, list)) else (found,)
            for where, key in sample.differentiable():
                grad = found[key] if key < len(found) else None
                grads[input_name(where, key)] = None if grad is None else torch.from_numpy(np.asarray(grad))
        return Run(outputs, grads, gradients)

    return _against(case, case.function, expected, dtype, case.tolerances[dtype], "the NumPy oracle",
                    dtypes_must_match=False)


def _function_of_differentiable(case):
    """(f, inputs): f takes the differentiable tensors only, the other arguments held fixed."""
    args, kwargs = case.sample.call_args(torch.float64, case.device)
    keys = [key for _, key in case.sample.differentiable()]

    def f(*wrt):
        call = list(args)
        for key, t in zip(keys, wrt):
            call[key] = t
        with seeded(case.device):
            result = case.function(*call, **kwargs)
        # Outputs that are not tensors (MultiheadAttention's weights when not asked for) are left out.
        return tuple(o for o in result if isinstance(o, torch.Tensor)) if isinstance(result, (tuple, list)) else result

    return f, tuple(args[key] for key in keys)


def _finite_differences(second_order):
    def check(case, dtype):
        """Finite differences in float64, forward mode included where every Function defines jvp."""
        if not case.sample.gradcheck:
            return Result("n/a", "the value is NaN by definition")
        f, inputs = _function_of_differentiable(case)
        try:
            forward_mode = has_jvp(case.functions)
            if second_order:
                torch.autograd.gradgradcheck(f, inputs, check_fwd_over_rev=forward_mode)
            else:
                torch.autograd.gradcheck(f, inputs, check_forward_ad=forward_mode)
        except Exception as error:
            return Result("FAIL", exception_line(error))
        return Result("pass", "forward mode included" if forward_mode else "")
    return check


def _batched(value, copies=3):
    """``copies`` versions of a tensor stacked along a new dimension 0: itself, then scaled copies."""
    if not isinstance(value, torch.Tensor):
        return value
    if not value.is_floating_point():
        return torch.stack([value] * copies)
    scales = [1.0, 0.5, 1.5][:copies]
    return torch.stack([value.detach() * s for s in scales]).requires_grad_(value.requires_grad)


def check_vmap(case, dtype):
    """Per-sample outputs and gradients under ``torch.func.vmap`` against a Python loop."""
    if not supports_vmap(case.functions):
        return Result("n/a", "its Functions define no vmap rule")
    if case.sample.data_dependent:
        return Result("n/a", f"the size of the work depends on the values: {case.sample.data_dependent}")
    args, kwargs = case.sample.call_args(torch.float64, case.device)
    keys = [key for _, key in case.sample.differentiable()]
    tensor_positions = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    copies = 3

    def per_sample(*tensors):
        call = list(args)
        for i, t in zip(tensor_positions, tensors):
            call[i] = t
        return case.function(*call, **kwargs)

    def value_and_grads(*tensors_and_v):
        tensors, v = tensors_and_v[: len(tensor_positions)], tensors_and_v[len(tensor_positions):]
        wrt_index = [tensor_positions.index(k) for k in keys]

        def of_wrt(*wrt):
            full = list(tensors)
            for j, t in zip(wrt_index, wrt):
                full[j] = t
            return tuple(o for o in outputs_of(per_sample(*full)) if isinstance(o, torch.Tensor) and o.is_floating_point())

        outs, vjp_fn = torch.func.vjp(of_wrt, *[tensors[j] for j in wrt_index])
        return outs, vjp_fn(tuple(v))

    try:
        with seeded(case.device):
            probe = [o for o in outputs_of(per_sample(*[args[i] for i in tensor_positions]))
                     if isinstance(o, torch.Tensor) and o.is_floating_point()]
        gen = torch.Generator().manual_seed(case.seed)
        vs = [torch.randn((copies, *o.shape), generator=gen, dtype=torch.float64).to(o) for o in probe]
        tensors = [_batched(args[i]).detach() for i in tensor_positions]
        with seeded(case.device):
            outs, grads = torch.func.vmap(value_and_grads, randomness="same")(*tensors, *vs)
    except Exception as error:
        return Result("FAIL", f"under vmap: {exception_line(error)}")
    diffs = []
    tolerance = TOLERANCES[torch.float64]
    for b in range(copies):
        with seeded(case.device):
            loop_outs, loop_grads = value_and_grads(*[t[b] for t in tensors], *[v[b] for v in vs])
        for i, (o, lo) in enumerate(zip(outs, loop_outs)):
            diffs.append(difference(f"output {i} of batch element {b} under vmap differs from the loop", o[b], lo, tolerance))
        for key, g, lg in zip(keys, grads, loop_grads):
            diffs.append(difference(f"per-sample gradient of input {key}, batch element {b}, under vmap differs "
                                    f"from the loop", g[b], lg, tolerance))
    return _judged(diffs)


def check_compile(case, dtype):
    """``torch.compile`` (AOTAutograd, which traces the backward too) gives the eager result."""
    eager = case.run(case.function)
    torch._dynamo.reset()
    fullgraph = case.fullgraph and not case.sample.data_dependent
    compiled = torch.compile(case.function, backend="aot_eager", fullgraph=fullgraph, dynamic=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = case.run(compiled)
    except Exception as error:
        return Result("FAIL", f"under torch.compile: {exception_line(error)}")
    finally:
        torch._dynamo.reset()
    return _judged(compare_runs(result, eager, TOLERANCES[torch.float64], "the eager result"))


def _noncontiguous(t):
    """The same values laid out as no kernel expects: every other element of a buffer, and for two
    dimensions or more, the last two transposed in memory (so that no ``view`` can flatten it)."""
    shape = t.shape if t.dim() < 2 else (*t.shape[:-2], t.shape[-1], t.shape[-2])
    with torch.no_grad():
        strided = torch.empty((*shape, 2), dtype=t.dtype, device=t.device)[..., 0]
        strided = strided if t.dim() < 2 else strided.transpose(-1, -2)
        strided.copy_(t)
    return strided.requires_grad_(t.requires_grad)


def check_strided(case, dtype):
    """The function on non-contiguous inputs against the first of these that runs: the reference on
    the same inputs (a random op such as dropout draws its mask in memory order, as PyTorch's does on
    the CPU), the reference on contiguous inputs (for a built-in that refuses the layout), and the
    function's own result on contiguous inputs (where the reference is not trusted on this device,
    or raises whatever the layout, as CUDA's batch norm with β but no γ did)."""
    args, kwargs = case.sample.call_args(torch.float64, case.device)
    replace = {("args", i): _noncontiguous(a) for i, a in enumerate(args)
               if isinstance(a, torch.Tensor) and a.dim() >= 1 and a.numel() > 1}
    replace.update({("kwargs", k): _noncontiguous(v).requires_grad_(False) for k, v in kwargs.items()
                    if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.numel() > 1})
    if not replace:
        return Result("n/a", "no tensor argument with more than one element")
    candidates = [(replace, "the reference"), (None, "the reference on contiguous inputs")]
    for layout, against in candidates if case.sample.trusted_on(case.device) else []:
        try:
            expected = case.run(case.reference, replace=layout)
            break
        except Exception:
            continue
    else:
        expected, against = case.run(case.function), "contiguous inputs"
    try:
        strided = case.run(case.function, replace=replace)
    except Exception as error:
        return Result("FAIL", f"non-contiguous inputs: {exception_line(error)}")
    return _judged(compare_runs(strided, expected, TOLERANCES[torch.float64], against), "non-contiguous inputs: ")


def check_needs_input_grad(case, dtype):
    """Backward returns None for every input that did not ask for a gradient. Returning one anyway
    is legal (autograd drops it): advice, not a failure, as it only costs time."""
    functions = case.functions
    if not functions:
        return Result("n/a", "no custom Function in the graph")
    notes = []
    for only in case.sample.differentiable():
        args, kwargs = case.sample.call_args(torch.float64, case.device)
        args = tuple(a.detach().requires_grad_(i == only[1]) if isinstance(a, torch.Tensor) and a.is_floating_point()
                     else a for i, a in enumerate(args))
        with seeded(case.device):
            outputs = differentiable_outputs(outputs_of(case.function(*args, **kwargs)))
        if not outputs:
            continue
        with recording_backward(functions) as (calls, _):
            torch.autograd.grad(outputs, [args[only[1]]], upstream(outputs, case.seed), allow_unused=True)
        for cls, needs, returned in calls:
            extra = [i for i, (need, g) in enumerate(zip(needs, returned)) if not need and g is not None]
            if extra:
                notes.append(
                    f"{cls.__name__}.backward computes a gradient for its input(s) {extra}, which did not ask for "
                    f"one (ctx.needs_input_grad = {list(needs)}): autograd drops it, but skipping it under "
                    f"`if ctx.needs_input_grad[i]` saves the work"
                )
    return Result("pass", advice="; ".join(dict.fromkeys(notes)))


def _kernels_named(ops, first_ops, when):
    """The built-in backward kernels among ``ops`` ((Function, op) pairs), each with who ran it: a
    Function's backward itself, or (in double backward) the forward op a Function's backward called,
    found among ``first_ops``; and how to mend it."""
    found = {}
    for owner, op in ops:
        if "backward" not in op or op in found or op in MOVEMENT_KERNELS:
            continue
        if owner is not None:
            found[op] = f"{owner.__name__}.backward called it; compute its formula instead"
            continue
        caller, forward = who_called(op, first_ops)
        if caller is None:
            found[op] = "from a built-in node of the graph"
            continue
        name = forward_op_of(op)
        mend = (f"use handgrad.functional.{name} there (hand-derived all the way)" if hasattr(hand_derived_ops, name)
                else "write it with elementary operations (products, sums, exp, ...)")
        found[op] = f"{caller.__name__}.backward called torch's {forward}, whose derivative it is: {mend}"
    if not found:
        return None
    return f"built-in backward kernels ran during {when}: " + "; ".join(f"{k} ({why})" for k, why in found.items())


def _graph_problems(outputs):
    """The Functions of the graph, and what is wrong with it: no custom Function, or built-in nodes
    that compute (not only reshape or cast) between the inputs and the output."""
    functions, builtin = graph(outputs)
    problems = []
    if not functions:
        problems.append("the output does not come from a custom autograd Function"
                        + (f" (its graph holds only built-in nodes: {', '.join(sorted(set(builtin)))})" if builtin else ""))
    computing = sorted({n for n in builtin if not MOVEMENT.fullmatch(n)})
    if computing:
        problems.append(f"built-in autograd nodes compute part of the result: {', '.join(computing)}")
    return functions, problems


def check_hand_derived(case, dtype):
    """The output comes from a custom Function, no built-in autograd node other than reshaping and
    casting sits between the inputs and the output, and no built-in ``*_backward`` kernel is
    dispatched during backward."""
    args, kwargs = case.sample.call_args(torch.float64, case.device)
    with seeded(case.device):
        outputs = outputs_of(case.function(*args, **kwargs))
    functions, problems = _graph_problems(outputs)
    diff_outputs = differentiable_outputs(outputs)
    wrt = [args[key] for _, key in case.sample.differentiable()]
    if diff_outputs and wrt:
        with recording_backward(functions) as (_, running), DispatchLog(running) as log:
            torch.autograd.grad(diff_outputs, wrt, upstream(diff_outputs, case.seed), allow_unused=True)
        kernels = _kernels_named(log.ops, log.ops, "backward")
        if kernels:
            problems.append(kernels)
    return Result("FAIL" if problems else "pass", "; ".join(problems))


def check_double_backward(case, dtype):
    """Differentiating the backward itself (double backward, with respect to the inputs and the
    upstream gradients, as gradgradcheck does) dispatches no built-in ``*_backward`` kernel either."""
    args, kwargs = case.sample.call_args(torch.float64, case.device)
    with seeded(case.device):
        outputs = differentiable_outputs(outputs_of(case.function(*args, **kwargs)))
    wrt = [args[key] for _, key in case.sample.differentiable()]
    functions = graph(outputs)[0]
    gradients = [g.requires_grad_() for g in upstream(outputs, case.seed)]
    with recording_backward(functions) as (_, running), DispatchLog(running) as first:
        grads = torch.autograd.grad(outputs, wrt, gradients, allow_unused=True, create_graph=True)
    connected = [g for g in grads if g is not None and g.requires_grad]
    if not connected:
        return Result("n/a", "the gradients do not depend on the inputs or on the upstream gradient")
    with DispatchLog() as second:
        torch.autograd.grad(sum((g * g).sum() for g in connected), wrt + gradients, allow_unused=True)
    kernels = _kernels_named(first.ops + second.ops, first.ops, "double backward")
    return Result("FAIL", kernels) if kernels else Result("pass")


def check_autocast(case, dtype):
    """Under ``torch.autocast`` (in ``dtype``: CPU bfloat16, CUDA float16) the output and gradients
    have the reference's dtypes and values."""
    if not case.sample.trusted_on(case.device):
        return Result("n/a", "not compared with the reference on this device")
    if case.sample.dtypes is not None and dtype not in case.sample.dtypes:
        return Result("n/a", f"not compared in {dtype}")

    def under_autocast(fn):
        def call(*args, **kwargs):
            with torch.autocast(torch.device(case.device).type, dtype=dtype):
                return fn(*args, **kwargs)
        return call

    return _against(case, under_autocast(case.function), lambda: case.run(under_autocast(case.reference),
                                                                           torch.float32),
                    torch.float32, case.tolerances[dtype], f"the reference under autocast({dtype})")


def _kept(function, case, args, kwargs):
    """(bytes kept for backward, by node) of one call, ctx attributes included, the inputs that are a
    model's parameters (``case.parameters``: positions and keywords) excluded."""
    parameters = [(args[k] if k < len(args) else None) if isinstance(k, int) else kwargs.get(k) for k in case.parameters]
    parameters = [t for t in parameters if isinstance(t, torch.Tensor)]
    with seeded(case.device), Kept(exclude=parameters) as kept:
        outputs = differentiable_outputs(outputs_of(function(*args, **kwargs)))
    kept.count(outputs)
    return kept.bytes, by_node(outputs, exclude=parameters)


def _listed_bytes(counts):
    return ", ".join(f"{name} {n} B" for name, n in counts.most_common()) or "nothing"


def check_kept_bytes(case, dtype):
    """Keeps no more bytes for backward than the reference (unique storages saved, ctx attributes
    included), the sample's inputs asking for gradients as it says. The inputs that are a model's
    parameters (``verify``'s ``parameters``) are not counted, on either side: a model keeps them
    anyway. In float32, the dtype models train in (float64 where the sample is not compared in float32).

    With a gradient asked of each input alone, a derivative that reads only what the inputs asking
    need (``ctx.needs_input_grad``, as autograd's own formulas do) keeps no more either; where it
    keeps more there, the advice says so, since a trade may be deliberate (attention keeps Q, K, V,
    O and ℓ and recomputes P, which keeps more than P itself for a short sequence only)."""
    if not case.sample.trusted_on(case.device):
        return Result("n/a", "not compared with the reference on this device")
    sample = case.sample
    measured = torch.float32 if sample.dtypes is None or torch.float32 in sample.dtypes else torch.float64
    wanted = [key for _, key in sample.differentiable()]
    problems, notes = [], []
    for keys in [wanted] + ([[key] for key in wanted] if len(wanted) > 1 else []):
        def call_args():
            args, kwargs = sample.call_args(measured, case.device)
            return tuple(a.detach().requires_grad_(i in keys) if isinstance(a, torch.Tensor) and a.requires_grad
                         else a for i, a in enumerate(args)), kwargs
        try:
            expected, expected_by = _kept(case.reference, case, *call_args())
        except Exception:
            if keys is wanted:
                return Result("n/a", "the reference does not run on this sample")
            continue
        kept, kept_by = _kept(case.function, case, *call_args())
        if kept > expected:
            found = (f"keeps {kept} bytes for backward where the reference keeps {expected} (kept: "
                     f"{_listed_bytes(kept_by)}; the reference: {_listed_bytes(expected_by)})")
            if keys is wanted:
                problems.append(found)
            else:
                notes.append(f"with a gradient asked of input {keys[0]} alone, {found}")
    return Result("FAIL" if problems else "pass", "; ".join(problems), advice="; ".join(notes))


# -- the table ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check:
    """A row of the table: the check's name, its column in the report, ``run(case, dtype)``, and
    which dtypes it runs in: ``"each"`` (every dtype verify compares in), ``"float64"`` (once per
    device and sample with something to differentiate) or ``"autocast"`` (once, in the device's
    autocast dtype). ``numeric``: the report shows its largest differences."""

    name: str
    header: str
    run: Callable
    dtypes: str = "float64"
    numeric: bool = False

    def dtypes_for(self, sample, device, dtypes):
        """The dtypes this check runs in, for this sample on this device."""
        if self.dtypes == "each":
            return [d for d in dtypes if sample.dtypes is None or d in sample.dtypes]
        if torch.float64 not in dtypes or not sample.differentiable():
            return []
        return [AUTOCAST_DTYPES[torch.device(device).type] if self.dtypes == "autocast" else torch.float64]


TABLE = (
    Check("reference", "vs reference abs / rel", check_reference, "each", numeric=True),
    Check("numpy", "vs NumPy abs / rel", check_numpy, "each", numeric=True),
    Check("gradcheck", "gradcheck", _finite_differences(second_order=False)),
    Check("gradgradcheck", "gradgrad", _finite_differences(second_order=True)),
    Check("vmap", "vmap", check_vmap),
    Check("compile", "compile", check_compile),
    Check("strided", "strided", check_strided),
    Check("needs_input_grad", "needs_grad", check_needs_input_grad),
    Check("hand_derived", "hand", check_hand_derived),
    Check("double_backward", "hand 2nd", check_double_backward),
    Check("kept_bytes", "memory", check_kept_bytes),
    Check("autocast", "autocast", check_autocast, "autocast"),
)
CHECKS = tuple(check.name for check in TABLE)
