"""Argument checks, autocast casting and the dtype to compute in, shared by the functional faces.

Where PyTorch's message for bad input is cryptic (or PyTorch computes something silently), the faces
raise an exception of the class PyTorch raises, with a message naming the argument, its shape,
dtype or value and what was expected.
"""

import numbers
import warnings

import torch

REDUCTIONS = ("none", "mean", "sum")

# Autocast policies, as torch.autocast applies them to the built-in ops (per device type):
# "lower" runs in the autocast dtype (matrix products, convolutions), "float32" in float32
# (losses, and softmax and normalisation on CUDA); a device type not named runs in the inputs' dtype.
LOWER = {"cpu": "lower", "cuda": "lower"}
FLOAT32 = {"cpu": "float32", "cuda": "float32"}
FLOAT32_ON_CUDA = {"cuda": "float32"}
LOW_PRECISION = (torch.float16, torch.bfloat16)


def computed_in(dtype):
    """The dtype to compute in: float32 for float16 and bfloat16, as PyTorch's kernels compute them
    inside (sums and chains of operations rounded once at the end, not at every step, and no square
    of |x| > 256 overflowing float16); the dtype itself otherwise."""
    return torch.float32 if dtype in LOW_PRECISION else dtype


def as_dtype(t, dtype):
    """``t`` in ``dtype``, without a call when it already is; None passes."""
    return t if t is None or t.dtype == dtype else t.to(dtype)


def autocast(policy, *tensors):
    """``tensors`` cast as ``torch.autocast`` casts the inputs of a built-in op with this policy.

    Only floating-point tensors below float64 are cast (autocast leaves float64 alone); None passes.
    Outside autocast the tensors come back as they are.
    """
    device_type = tensors[0].device.type
    if device_type == "meta" or not torch.is_autocast_enabled(device_type):
        return tensors
    rule = policy.get(device_type)
    if rule is None:
        return tensors
    dtype = torch.get_autocast_dtype(device_type) if rule == "lower" else torch.float32
    return tuple(
        t.to(dtype) if t is not None and t.is_floating_point() and t.dtype != torch.float64 else t for t in tensors
    )


def check_tensor(fn, name, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}")


def check_floating(fn, name, value):
    check_tensor(fn, name, value)
    if not value.is_floating_point():
        raise NotImplementedError(f"{fn}: {name} must be a floating-point tensor, got {value.dtype}")


def check_same_device(fn, tensors):
    """``tensors``: name → tensor (None skipped); all must be on the first one's device."""
    (first_name, first), *rest = ((k, v) for k, v in tensors.items() if v is not None)
    for name, t in rest:
        if t.device != first.device:
            raise RuntimeError(
                f"{fn}: {name} is on {t.device} but {first_name} is on {first.device}; "
                f"move them to the same device"
            )


def check_same_dtype_and_device(fn, tensors):
    """``tensors``: name → tensor (None skipped); all must share the first one's dtype and device."""
    (first_name, first), *rest = ((k, v) for k, v in tensors.items() if v is not None)
    for name, t in rest:
        if t.dtype != first.dtype:
            raise RuntimeError(
                f"{fn}: {name} has dtype {t.dtype} but {first_name} has dtype {first.dtype}; "
                f"convert one of them (e.g. {name}.to({first_name}.dtype))"
            )
    check_same_device(fn, tensors)


def check_reduction(fn, reduction, size_average=None, reduce=None):
    """The reduction, with PyTorch's deprecated ``size_average``/``reduce`` spellings honoured."""
    if size_average is not None or reduce is not None:
        # torch.nn._reduction.legacy_get_string's rule, in plain Python so that torch.compile traces it.
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        if not torch.compiler.is_compiling():
            warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def can_inspect_values(t):
    """Whether a data-dependent check may run: not while tracing, compiling or under torch.func."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or t.is_meta:
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)


_COUNTS = {1: "one int", 2: "two ints", 3: "three ints"}
AXES = {1: "(length)", 2: "(height, width)", 3: "(depth, height, width)"}   # the spatial axes of 1-, 2- and 3-D ops


def int_tuple(fn, name, value, n, minimum, what):
    """A tuple of ``n`` ints from an int or a sequence of one or ``n`` ints, each at least ``minimum``
    (a window's size, stride, padding or dilation along the ``n`` spatial axes).

    A value that is not made of ints raises TypeError (as torch's argument parser does), the wrong
    count or a value out of range RuntimeError (as torch's checks do); ``what`` says what a valid
    value is (e.g. "positive").
    """
    values = tuple(value) if isinstance(value, (tuple, list, torch.Size)) else (value,)
    kind = f"an int or a tuple of {_COUNTS[n]}"
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{fn}: {name} must be {kind}, got {value!r}")
    if len(values) not in (1, n):
        raise RuntimeError(f"{fn}: {name} must be {kind} {AXES[n]}, got {value!r}")
    result = tuple(int(v) for v in values) * (n if len(values) == 1 else 1)
    if min(result) < minimum:
        raise RuntimeError(f"{fn}: {name} must be {what}, got {value!r}")
    return result
