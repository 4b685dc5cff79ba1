"""PyTorch's own OpInfo samples of the convolutions, poolings and padding (``op_db`` of
``torch.testing._internal.common_methods_invocations``), called as written inside
``handgrad.hand_derived()``: every sample the built-in accepts gives the built-in's output and
gradients in float64, and its graph holds the op's hand-derived Functions and no built-in node that
computes (``audit``); every sample the built-in refuses is refused too. No sample is left out.
"""

import pytest
import torch

import handgrad
from handgrad import testing
from handgrad.nn import audit
from handgrad.ops import OPS

F64 = testing.TOLERANCES[torch.float64]

# op_db entry (name, or name.variant) → the handgrad op whose Functions must compute it.
ENTRIES = {
    **{f"nn.functional.conv{n}d": f"conv{n}d" for n in (1, 2, 3)},
    **{f"nn.functional.conv_transpose{n}d": f"conv_transpose{n}d" for n in (1, 2, 3)},
    **{f"nn.functional.{kind}_pool{n}d": f"{kind}_pool{n}d" for kind in ("max", "avg", "adaptive_avg", "adaptive_max")
       for n in (1, 2, 3)},
    **{f"nn.functional.pad.{variant}": "pad" for variant in ("constant", "reflect", "replicate", "replicate_negative",
                                                             "circular")},
    "constant_pad_nd": "pad",
}


@pytest.fixture(scope="module")
def opinfos():
    """PyTorch's op_db by entry, imported when first needed: importing it freezes ``torch.backends``'
    flags for the whole process (a guard of PyTorch's own test suite), which other tests' fixtures
    set, so they are unfrozen again."""
    frozen = torch.backends.flags_frozen()
    from torch.testing._internal.common_methods_invocations import op_db
    if not frozen:
        setattr(torch.backends, "__allow_nonbracketed_mutation_flag", True)
    return {info.name + (f".{info.variant_test_name}" if info.variant_test_name else ""): info for info in op_db}


def _fresh(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(v) for v in value)
    return value


def _run(op, sample, hand):
    """(tensor outputs, gradients of the inputs that require grad, the differentiable outputs)."""
    args, kwargs = _fresh((sample.input, *sample.args)), {k: _fresh(v) for k, v in sample.kwargs.items()}
    wrt = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor) and t.requires_grad]
    if hand:
        with handgrad.hand_derived():
            result = op(*args, **kwargs)
    else:
        result = op(*args, **kwargs)
    outputs = [o for o in (result if isinstance(result, (tuple, list)) else (result,)) if isinstance(o, torch.Tensor)]
    differentiable = [o for o in outputs if o.requires_grad]
    gen = torch.Generator().manual_seed(0)
    upstream = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in differentiable]
    grads = torch.autograd.grad(differentiable, wrt, upstream, allow_unused=True) if differentiable and wrt else ()
    return outputs, grads, differentiable


def _describe(sample):
    def short(v):
        return f"tensor{tuple(v.shape)}" if isinstance(v, torch.Tensor) else v
    return f"input {short(sample.input)}, args {tuple(map(short, sample.args))}, kwargs " \
           f"{ {k: short(v) for k, v in sample.kwargs.items()} }"


def _mismatches(actual, expected, functions):
    """What differs between the hand-derived run and the built-in's, and what the graph lacks."""
    (outs, grads, differentiable), (outs_ref, grads_ref, _) = actual, expected
    problems = [d for d in [testing.difference(f"output {i}", a, e, F64) for i, (a, e) in enumerate(zip(outs, outs_ref))]
                + [testing.difference(f"gradient {i}", a, e, F64) for i, (a, e) in enumerate(zip(grads, grads_ref))
                   if a is not None or e is not None]
                if not d.ok]
    problems += [f"{len(outs)} outputs, the built-in gives {len(outs_ref)}"] if len(outs) != len(outs_ref) else []
    report = audit(*differentiable)
    if not report.complete or not functions & set(report.hand):
        problems.append(f"graph: {report.summary()}")
    return problems


@pytest.fixture
def one_thread():
    """PyTorch's samples are a few elements each: on one thread each call costs microseconds, on a
    pool of threads that the machine's other work keeps busy, milliseconds of waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("entry", ENTRIES)
def test_op_equals_the_builtin_on_pytorchs_own_samples(entry, opinfos, one_thread):
    info, functions = opinfos[entry], {f.__name__ for f in OPS[ENTRIES[entry]].functions}
    accepted, failures = 0, []
    for sample in info.sample_inputs("cpu", torch.float64, requires_grad=True):
        try:
            expected = _run(info.op, sample, hand=False)
        except Exception as refusal:                 # the built-in refuses it: so must the hand-derived call
            try:
                _run(info.op, sample, hand=True)
            except Exception:
                continue
            failures.append(f"{_describe(sample)}: computed where the built-in raises {type(refusal).__name__}")
            continue
        accepted += 1
        try:
            problems = _mismatches(_run(info.op, sample, hand=True), expected, functions)
        except Exception as error:
            problems = [f"raised {type(error).__name__}: {error}"]
        failures += [f"{_describe(sample)}: {'; '.join(map(str, problems))}"] if problems else []
    assert accepted, f"{entry}: no sample of PyTorch's is accepted by the built-in: compared with nothing"
    assert not failures, f"{entry}: {len(failures)} of {accepted} samples differ:\n" + "\n".join(failures[:10])
