"""PyTorch's own cases for every call handgrad takes over: each torch callable the registry intercepts
(``handgrad.ops._registry.INTERCEPTS``), called inside ``handgrad.hand_derived()`` on the samples of its
OpInfo in PyTorch's database (``torch.testing._internal.common_methods_invocations.op_db``), float64
on the CPU, as given.

An OpInfo is PyTorch's when one of its variants (the function, the method, the in-place method, the
operator, an alias) is an intercepted callable, or, for an OpInfo whose function is a wrapper (``where``,
``einsum``, ``nn.functional.dropout``), when its name is a registered op's. On every sample of every such
variant:

- the call raises inside ``hand_derived`` only where the built-in raises (and then it may raise too);
- the outputs and the gradients for a random upstream gradient equal the built-in's, within handgrad's
  float64 tolerance (``handgrad.testing.TOLERANCES``);
- the autograd graph holds no built-in node that computes (``handgrad.nn.audit``), unless an op's
  ``accepts`` declined the call (the built-in then runs, as ``strict=True`` would say).

A failure lists every (variant, sample, what differs). The harness is generic: it keeps no list of
handgrad's ops, and a new intercept is tested the moment some OpInfo reaches it.
"""

import collections
import dataclasses
import types
import warnings

import pytest
import torch
from torch.overrides import resolve_name

from handgrad import testing
from handgrad._audit import node_kind, walk
from handgrad._intercept import HandDerived, _requires_grad
from handgrad.ops import OPS
from handgrad.ops._registry import INTERCEPTS

op_db = pytest.importorskip("torch.testing._internal.common_methods_invocations").op_db
# Importing PyTorch's test utilities freezes torch.backends' flags for the rest of the process (its own
# suite's guard, torch.backends.disable_global_flags); the other test files here still set them.
torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True

Tensor = torch.Tensor
F64 = testing.TOLERANCES[torch.float64]
# Intercepted callables that no OpInfo of PyTorch's reaches: torch has no OpInfo for them (its
# ``nn.functional.relu`` calls F.relu only, its ``div`` has no operator variant, and
# the in-place ReLU has none); the torch.* kernels that F's poolings call, which the F function's
# own interception takes first; the recurrent layers' kernels (torch.lstm, ...: torch tests them
# through ModuleInfos, tests/test_rnn.py against the modules); and fold, affine_grid and the
# lp_pools, dropout1d and torchvision's roi_align, which torch's database does not hold (their own
# cases and the modules test them).
NO_OPINFO = {"torch.relu", "torch.Tensor.relu", "torch.nn.functional.relu_", "torch.Tensor.relu_",
             "torch.Tensor.__truediv__", "torch.Tensor.__itruediv__",
             "torch.max_pool1d", "torch.max_pool1d_with_indices", "torch.max_pool2d", "torch.max_pool3d",
             "torch.adaptive_max_pool1d",
             "torch.rnn_tanh", "torch.rnn_relu", "torch.lstm", "torch.gru", "torch.rnn_tanh_cell",
             "torch.rnn_relu_cell", "torch.lstm_cell", "torch.gru_cell",
             "torch.nn.functional.fold", "torch.nn.functional.affine_grid", "torch.nn.functional.lp_pool1d",
             "torch.nn.functional.lp_pool2d", "torch.nn.functional.lp_pool3d", "torch.nn.functional.dropout1d",
             "torchvision.roi_align"}


class Recording(HandDerived):
    """``hand_derived`` that notes, for each intercepted call it sees, whether the rule took it or the
    op's ``accepts`` declined it."""

    def __init__(self):
        super().__init__()
        self.taken, self.declined = set(), set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        entry = INTERCEPTS.get(func)
        if entry is not None and torch.is_grad_enabled() and _requires_grad(args, kwargs):
            accepted = entry[1] is None or entry[1](*args, **kwargs)
            (self.taken if accepted else self.declined).add(func)
        return super().__torch_function__(func, types, args, kwargs)


def _variants(info):
    """(kind, callable) of the variants of an OpInfo that reach an intercepted callable."""
    found = [(kind, getattr(info, kind)) for kind in ("op", "method_variant", "inplace_variant")
             if getattr(info, kind, None) is not None]
    found += [(f"{kind} ({f.__name__})", f) for kind in ("operator_variant", "inplace_operator_variant")
              if (f := getattr(info, kind, None)) is not None]
    found += [(f"alias {alias.name}: {kind}", getattr(alias, kind)) for alias in info.aliases
              for kind in ("op", "method_variant", "inplace_variant") if getattr(alias, kind, None) is not None]
    wrapper = info.name.removeprefix("nn.functional.") in OPS        # where, einsum, dropout: lambdas
    return [(kind, f) for kind, f in found if _intercepted(f) or wrapper and kind == "op"]


def _intercepted(f):
    """Whether calling ``f`` reaches an intercepted callable directly: itself, or the Tensor dunder an
    operator (``operator.add``) calls."""
    return f in INTERCEPTS or _dunder(f) in INTERCEPTS


def _dunder(f):
    """The Tensor method an ``operator`` function calls (``operator.iadd``: ``Tensor.__iadd__``), or None."""
    if getattr(f, "__module__", None) not in ("operator", "_operator"):
        return None
    return getattr(Tensor, f"__{f.__name__}__", None)


def _reached(f):
    """The callables the mode sees when ``f`` is called: its dunder for an operator, each branch of a
    ``boolean_dispatch`` (``F.max_pool2d`` calls ``F.max_pool2d_with_indices`` for return_indices)."""
    branches = torch._jit_internal.boolean_dispatched.get(f, {}) if isinstance(f, types.FunctionType) else {}
    return {f, _dunder(f), branches.get("if_true"), branches.get("if_false")} - {None}


def _opinfos():
    return [info for info in op_db if info.supports_autograd and _variants(info)]


OPINFOS = _opinfos()


def _id(info):
    return f"{info.name}.{info.variant_test_name}" if info.variant_test_name else info.name


def _copy(value):
    """The sample's tensors as fresh leaves (each run differentiates its own)."""
    if isinstance(value, Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _leaves(value):
    if isinstance(value, Tensor):
        return [value] if value.requires_grad else []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _leaves(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _leaves(v)]
    return []


def _flat(value):
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat(v)]
    return [value]


@dataclasses.dataclass
class Outcome:
    error: Exception = None
    outputs: list = None
    grads: tuple = None


def _call(kind, function, sample, mode=None):
    """The variant on a fresh copy of the sample (an in-place variant on a non-leaf copy), and the
    gradients of its differentiable outputs for a seeded random upstream gradient."""
    input, args, kwargs = _copy(sample.input), _copy(sample.args), _copy(sample.kwargs)
    wrt = _leaves([input, args, kwargs])
    if "inplace" in kind and isinstance(input, Tensor):
        input = input.clone()
    try:
        torch.manual_seed(0)                                   # the same random draws for both runs
        with mode if mode is not None else torch.enable_grad():
            result = function(input, *args, **kwargs)
        outputs = _flat(sample.output_process_fn_grad(result))
    except Exception as error:                                 # the built-in's refusals: compared below
        return Outcome(error)
    differentiable = [o for o in outputs if isinstance(o, Tensor) and o.requires_grad]
    if not (differentiable and wrt):
        return Outcome(outputs=outputs)
    gen = torch.Generator().manual_seed(0)
    upstream = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype) for o in differentiable]
    try:
        grads = torch.autograd.grad(differentiable, wrt, upstream, allow_unused=True, materialize_grads=True)
    except Exception as error:
        return Outcome(error, outputs)
    return Outcome(outputs=outputs, grads=grads)


def _differences(kind, function, sample):
    """What differs between the variant inside hand_derived and the built-in, on one sample."""
    builtin = _call(kind, function, sample)
    mode = Recording()
    hand = _call(kind, function, sample, mode)
    if builtin.error is not None:
        return [] if hand.error is not None else [f"the built-in raised {type(builtin.error).__name__} "
                                                  f"({builtin.error}) and hand_derived did not"]
    if hand.error is not None:
        return [f"raised {type(hand.error).__name__}: {str(hand.error).splitlines()[0]}"]
    found = []
    pairs = [(f"output {i}", h, b) for i, (h, b) in enumerate(zip(hand.outputs, builtin.outputs))]
    pairs += [(f"gradient of input {i}", h, b) for i, (h, b) in enumerate(zip(hand.grads or (), builtin.grads or ()))]
    for name, h, b in pairs:
        if not isinstance(b, Tensor):
            if h != b:
                found.append(f"{name}: {h!r} instead of {b!r}")
        elif not isinstance(h, Tensor) or h.dtype != b.dtype or h.shape != b.shape:
            found.append(f"{name}: {_describe(h)} instead of {_describe(b)}")
        elif b.is_floating_point() or b.is_complex():
            d = testing.difference(name, h, b, F64)
            found += [] if d.ok else [str(d)]
        elif not torch.equal(h, b):
            found.append(f"{name}: {h.tolist()} instead of {b.tolist()}")
    if (hand.grads is None) != (builtin.grads is None):
        found.append(f"gradients: {'none' if hand.grads is None else 'some'} where the built-in has "
                     f"{'none' if builtin.grads is None else 'some'}")
    computing = collections.Counter(name for node in walk([o for o in hand.outputs if isinstance(o, Tensor)])
                                    for kind_, name in [node_kind(node)] if kind_ == "built-in")
    if computing and not mode.declined:
        found.append(f"built-in computing nodes {dict(computing)}, though no accepts declined the call "
                     f"(handgrad took {sorted(map(_name, mode.taken))})")
    return found


def _describe(value):
    return f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)


def _name(callable_):
    return resolve_name(callable_) or getattr(callable_, "__qualname__", repr(callable_))


def _summary(sample):
    """A sample in one line: shapes for tensors, values for the rest."""
    def short(value):
        if isinstance(value, Tensor):
            return f"{'' if value.dtype == torch.float64 else str(value.dtype)[6:]}{tuple(value.shape)}"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(map(short, value)) + "]"
        return repr(value)
    return ", ".join([short(sample.input), *map(short, sample.args), *(f"{k}={short(v)}" for k, v in sample.kwargs.items())])


def _samples(info):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                        # deprecated options some samples use on purpose
        return list(info.sample_inputs("cpu", torch.float64, requires_grad=True))


@pytest.mark.parametrize("info", [pytest.param(info, id=_id(info)) for info in OPINFOS])
def test_opinfo_samples_inside_hand_derived_equal_the_builtin(info):
    samples = _samples(info)
    failures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind, function in _variants(info):
            for i, sample in enumerate(samples):
                failures += [f"{_id(info)} [{kind}] sample {i} ({_summary(sample)}): {d}"
                             for d in _differences(kind, function, sample)]
    assert samples, f"{_id(info)}: PyTorch gives no float64 sample to compare on"
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures)


def test_opinfo_samples_reach_every_intercepted_callable():
    """Each callable handgrad intercepts is reached by some OpInfo's samples (its variants, or, for a
    wrapper, the callables its first sample calls), but those PyTorch has no OpInfo for."""
    reached = {g for info in OPINFOS for _, f in _variants(info) for g in _reached(f)}
    for info in OPINFOS:
        for kind, f in _variants(info):
            if not _intercepted(f):                            # a wrapper: what does it call?
                mode = Recording()
                _call(kind, f, _samples(info)[0], mode)
                reached |= mode.taken | mode.declined
    missing = sorted(_name(c) for c in INTERCEPTS if c not in reached and _name(c) not in NO_OPINFO)
    assert not missing, f"intercepted, but no OpInfo sample reaches: {missing}"
