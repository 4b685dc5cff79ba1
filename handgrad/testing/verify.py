"""``verify``: every check of the table (``checks.TABLE``) on every sample, device and dtype."""

import contextlib

import torch

from handgrad.testing.checks import CHECKS, TABLE, Case, Result, exception_line
from handgrad.testing.compare import DTYPES, TOLERANCES
from handgrad.testing.report import Outcome, Report
from handgrad.testing.samples import as_samples, input_name


def available_devices():
    """"cpu", and "cuda" where a GPU is present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def verify(function, reference, samples, *, numpy=None, name=None, dtypes=DTYPES, devices=None, checks=CHECKS,
           tolerances=None, fullgraph=False, seed=0, parameters=()):
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
        parameters: the positions (and keywords) of the inputs that are a model's parameters in use
            (a layer's weight and bias), which the ``kept_bytes`` check does not count
        seed: seed of the upstream gradients

    Returns:
        ``Report``: ``.passed``, ``.failures`` (one sentence per failure, each said once with the
        checks it failed), ``.advice`` (legal but worth changing) and, printed, the same table
        ``handgrad-check`` prints.
    """
    if isinstance(function, type) and issubclass(function, torch.autograd.Function):
        raise TypeError(f"verify: {function.__name__} is a torch.autograd.Function class; pass the function that "
                        f"applies it, {function.__name__}.apply (or a function calling it)")
    name = name or _name_of(function)
    samples = as_samples(samples)
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"verify: unknown checks {unknown}; choose from {CHECKS}")
    tolerances = {**TOLERANCES, **(tolerances or {})}
    problems = []
    if not samples:
        problems.append(f"{name}: no samples were given, so nothing was verified")
    elif not any(s.differentiable() for s in samples):
        problems.append(f"{name}: no sample has an input with requires_grad=True, so no gradient was verified")
    for sample in samples:
        for where, key, t in sample.tensors():
            if t.is_floating_point() and (t.dtype != torch.float64 or t.device.type != "cpu"):
                problems.append(f"{name} [{sample.name}]: {input_name(where, key)} is {t.dtype} on "
                                f"{t.device}; samples are float64 CPU tensors (verify converts them)")
    if problems:
        return Report(name, [], problems)
    table = [check for check in TABLE if check.name in checks]
    outcomes = []
    with _one_thread():
        for device in devices or available_devices():
            for sample in samples:
                case = Case(function, reference, numpy, sample, device, seed, tolerances, fullgraph, tuple(parameters))
                for check in table:
                    for dtype in check.dtypes_for(sample, device, dtypes):
                        outcomes.append(Outcome(check.name, sample.name, device, dtype, _run(check, case, dtype)))
    return Report(name, outcomes, [])


def _run(check, case, dtype):
    """The check's result; an exception it did not expect is its failure, and no other check's."""
    try:
        return check.run(case, dtype)
    except Exception as error:
        return Result("FAIL", f"raised {exception_line(error)}")


@contextlib.contextmanager
def _one_thread():
    """Samples are small: one CPU thread computes them fastest, and on a busy machine a parallel
    kernel waiting for its threads can take a thousand times longer."""
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
