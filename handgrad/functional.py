"""Drop-in replacements for ``torch.nn.functional``: argument checks, reshaping, then ``.apply``.

Same signatures, results and gradients as the built-ins. Where PyTorch's message for bad input is
cryptic (or PyTorch computes something silently), these raise an exception of the same type that
PyTorch raises, with a message naming the argument, its shape or dtype and what was expected.
"""

import torch
from torch.nn import _reduction

from handgrad import autograd

__all__ = ["linear", "linear_sigmoid", "linear_relu", "sigmoid", "relu", "dropout", "cross_entropy"]

_REDUCTIONS = ("none", "mean", "sum")


def linear(input, weight, bias=None):
    """y = x Wᵀ + b, as ``torch.nn.functional.linear``.

    Shapes: input (*, in), weight (out, in) or (in,), bias broadcastable to (*, out); output
    (*, out), or (*) for a 1-D weight.
    """
    input, weight, bias = _linear_arguments("linear", input, weight, bias)
    if weight.dim() == 1:
        return _functions().Linear.apply(input, weight.unsqueeze(0), None).squeeze(-1)
    return _functions().Linear.apply(input, weight, bias)


def linear_sigmoid(input, weight, bias=None):
    """y = σ(x Wᵀ + b), the same as ``sigmoid(linear(input, weight, bias))`` in one Function.

    Shapes: input (*, in), weight (out, in), bias broadcastable to (*, out); output (*, out).
    """
    input, weight, bias = _linear_arguments("linear_sigmoid", input, weight, bias, weight_1d=False)
    return _functions().LinearSigmoid.apply(input, weight, bias)


def linear_relu(input, weight, bias=None):
    """y = max(x Wᵀ + b, 0), the same as ``relu(linear(input, weight, bias))`` in one Function.

    Shapes: input (*, in), weight (out, in), bias broadcastable to (*, out); output (*, out).
    """
    input, weight, bias = _linear_arguments("linear_relu", input, weight, bias, weight_1d=False)
    return _functions().LinearReLU.apply(input, weight, bias)


def _linear_arguments(fn, input, weight, bias, weight_1d=True):
    """Check linear's arguments; return them cast as autocast would cast them."""
    _check_tensor(fn, "input", input)
    _check_tensor(fn, "weight", weight)
    if input.dim() == 0:
        raise RuntimeError(f"{fn}: input must have at least 1 dimension (*, in_features), got a 0-d tensor")
    if weight.dim() != 2 and not (weight_1d and weight.dim() == 1):
        expected = "2-D (out_features, in_features) or 1-D (in_features,)" if weight_1d else "2-D (out_features, in_features)"
        raise RuntimeError(f"{fn}: weight must be {expected}, got shape {tuple(weight.shape)}")
    if input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"{fn}: input has {input.shape[-1]} features in its last dimension "
            f"(shape {tuple(input.shape)}) but weight of shape {tuple(weight.shape)} expects "
            f"{weight.shape[-1]}"
        )
    tensors = {"input": input, "weight": weight}
    if bias is not None:
        _check_tensor(fn, "bias", bias)
        if weight.dim() == 1:
            raise RuntimeError(f"{fn}: a 1-D weight takes no bias (torch.nn.functional.linear refuses it too)")
        out_shape = (*input.shape[:-1], weight.shape[0])
        if bias.shape == out_shape[-1:]:
            broadcasts = True                                 # the usual (out,) bias: no need to ask
        else:
            try:
                broadcasts = torch.broadcast_shapes(bias.shape, out_shape) == out_shape
            except RuntimeError:
                broadcasts = False
        if not broadcasts:
            raise RuntimeError(
                f"{fn}: bias of shape {tuple(bias.shape)} does not broadcast to the output shape "
                f"{out_shape}; expected a bias of shape ({weight.shape[0]},) for "
                f"{weight.shape[0]} out_features"
            )
        tensors["bias"] = bias
    _check_same_dtype_and_device(fn, tensors)
    return _autocast_to_lower_precision(input, weight, bias)


def sigmoid(input):
    """y = σ(x) = 1 / (1 + e⁻ˣ), elementwise, as ``torch.nn.functional.sigmoid``."""
    _check_tensor("sigmoid", "input", input)
    return _functions().Sigmoid.apply(input)


def relu(input, inplace=False):
    """y = max(x, 0), elementwise, as ``torch.nn.functional.relu``."""
    _check_tensor("relu", "input", input)
    if input.dtype == torch.bool:
        raise NotImplementedError("relu: input has dtype torch.bool; relu needs a numeric tensor")
    return _functions().ReLU.apply(input, inplace)


def dropout(input, p=0.5, training=True, inplace=False):
    """y = x ∘ m / (1 − p), m ~ Bernoulli(1 − p) elementwise, in training; y = x otherwise.

    As ``torch.nn.functional.dropout``. On the CPU the mask is drawn and scaled exactly as the
    built-in does it, so the same seed drops the same elements and gives the same numbers; CUDA's
    built-in uses a fused kernel whose random stream differs, so there the masks differ (their
    distribution does not).
    """
    _check_tensor("dropout", "input", input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if not input.is_floating_point():
        raise TypeError(f"dropout: input must be floating point, got {input.dtype}")
    if p == 1.0:
        m = torch.zeros_like(input)                          # drops everything, draws nothing
    else:
        m = torch.empty_like(input).bernoulli_(1.0 - p).div_(1.0 - p)    # keep / (1 − p)
    return _functions().Dropout.apply(input, m, inplace)


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0.0,
):
    """L = −Σ_c a_c log softmax(input)_c, as ``torch.nn.functional.cross_entropy``.

    Shapes: input (C), (N, C) or (N, C, d1, ..., dK); target of class indices (), (N) or
    (N, d1, ..., dK) (int64, or uint8), or of class probabilities with input's shape and dtype.
    Output: a scalar for 'mean' and 'sum', the target's shape (indices) or input's shape without
    the class dimension (probabilities) for 'none'. ``size_average`` and ``reduce`` are PyTorch's
    deprecated spellings of ``reduction`` and are honoured the same way.
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    _check_tensor("cross_entropy", "input", input)
    _check_tensor("cross_entropy", "target", target)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if not input.is_floating_point():
        raise NotImplementedError(f"cross_entropy: input (logits) must be floating point, got {input.dtype}")
    if input.dim() == 0:
        raise RuntimeError("cross_entropy: input must be (C), (N, C) or (N, C, d1, ..., dK); got a 0-d tensor")
    class_dim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[class_dim]
    if n_classes == 0:
        raise IndexError(f"cross_entropy: input of shape {tuple(input.shape)} has no classes (C = 0)")
    tensors = {"input": input, "target": target}
    if weight is not None:
        _check_tensor("cross_entropy", "weight", weight)
        if weight.shape != (n_classes,):
            raise RuntimeError(
                f"cross_entropy: weight must hold one value per class, shape ({n_classes},), "
                f"got shape {tuple(weight.shape)}"
            )
        if weight.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(
                "cross_entropy: the loss is not differentiable with respect to weight (as in PyTorch); "
                "pass weight.detach() or a weight that does not require grad"
            )
        tensors["weight"] = weight
    probabilities = _check_target(input, target, class_dim, n_classes, ignore_index)
    _check_same_dtype_and_device(
        "cross_entropy", tensors if probabilities else {k: v for k, v in tensors.items() if k != "target"}
    )
    if target.device != input.device:
        raise RuntimeError(f"cross_entropy: target is on {target.device} but input is on {input.device}")

    if input.device.type != "meta" and _autocast_enabled(input.device.type):
        input, weight = input.float(), None if weight is None else weight.float()
        target = target.float() if probabilities else target
    x, t = input, target if probabilities or target.dtype == torch.long else target.long()
    if input.dim() != 2:                                     # to one row per prediction: (M, C)
        x = input.movedim(class_dim, -1).reshape(-1, n_classes)
        t = t.movedim(class_dim, -1).reshape(-1, n_classes) if probabilities else t.reshape(-1)
    loss, _ = _functions().SoftmaxCrossEntropy.apply(x, t, weight, ignore_index, label_smoothing, reduction)
    if reduction == "none" and input.dim() != 2:
        return loss.reshape(input.shape[:class_dim] + input.shape[class_dim + 1:])
    return loss


def _functions():
    """The hand Functions; while torch.compile traces, their twins without forward mode."""
    return autograd.traceable if torch.compiler.is_compiling() else autograd


def _check_tensor(fn, name, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}")


def _check_same_dtype_and_device(fn, tensors):
    (first_name, first), *rest = tensors.items()
    for name, t in rest:
        if t.dtype != first.dtype:
            raise RuntimeError(
                f"{fn}: {name} has dtype {t.dtype} but {first_name} has dtype {first.dtype}; "
                f"convert one of them (e.g. {name}.to({first_name}.dtype))"
            )
        if t.device != first.device:
            raise RuntimeError(
                f"{fn}: {name} is on {t.device} but {first_name} is on {first.device}; "
                f"move them to the same device"
            )


def _check_target(input, target, class_dim, n_classes, ignore_index):
    """Validate target against input; True when it holds class probabilities."""
    class_free_shape = input.shape[:class_dim] + input.shape[class_dim + 1:]
    if target.is_floating_point():
        if target.shape != input.shape:
            raise RuntimeError(
                f"cross_entropy: a floating-point target is read as class probabilities and must have "
                f"the input's shape {tuple(input.shape)}, got {tuple(target.shape)}; for class indices "
                f"of shape {tuple(class_free_shape)} use an int64 (torch.long) target"
            )
        if ignore_index != -100:
            raise RuntimeError(
                "cross_entropy: ignore_index applies to class-index targets only; "
                "it is not supported with class-probability targets"
            )
        return True
    if target.dtype not in (torch.long, torch.uint8):
        raise RuntimeError(
            f"cross_entropy: class-index target must have dtype torch.long (or torch.uint8), "
            f"got {target.dtype}"
        )
    if target.shape != class_free_shape:
        # torch raises ValueError when the batch sizes differ and RuntimeError otherwise.
        mismatch = ValueError if target.shape[:1] != class_free_shape[:1] else RuntimeError
        raise mismatch(
            f"cross_entropy: target of shape {tuple(target.shape)} does not match input of shape "
            f"{tuple(input.shape)}: class-index targets must have shape {tuple(class_free_shape)} "
            f"(input without its class dimension {class_dim})"
        )
    if target.numel() and _can_inspect_values(target):
        low, high = (int(v) for v in torch.aminmax(target))   # one pass; the exact test only if needed
        if low >= 0 and high < n_classes:
            return False
        bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
        if bad.any():
            value = target[bad].flatten()[0].item()
            raise IndexError(
                f"cross_entropy: target {value} is out of bounds: class indices must lie in "
                f"[0, {n_classes - 1}] for {n_classes} classes, or equal ignore_index={ignore_index}"
            )
    return False


def _can_inspect_values(t):
    """Whether a data-dependent check may run: not while tracing, compiling or under torch.func."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or t.device.type == "meta":
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)


def _autocast_enabled(device_type):
    return torch.is_autocast_enabled(device_type)


def _autocast_to_lower_precision(*tensors):
    """Inside ``torch.autocast``, run in the autocast dtype as the built-in linear does."""
    reference = tensors[0]
    if reference.device.type == "meta" or not reference.is_floating_point():
        return tensors
    device_type = reference.device.type
    if not _autocast_enabled(device_type):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(None if t is None else t.to(dtype) for t in tensors)
