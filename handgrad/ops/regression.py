"""Regression losses, elementwise: mse_loss, least squares, and binary_cross_entropy_with_logits, the
loss of logistic regression.

Notation: x the input and t the target, elementwise (*); w the weights; p the positive-class weights
(pos_weight). g = dL/dL is () for 'mean' and 'sum', one per term for 'none'; r how much each term
moves L: g, or g / D for 'mean', D the number of terms or the sum of their weights.
"""

import warnings

import torch

from handgrad.ops._checks import (FLOAT32, FLOAT32_ON_CUDA, as_dtype, autocast, check_reduction, check_same_device,
                                  check_tensor, computed_in)
from handgrad.ops._function import HandFunction, apply
from handgrad.ops.activation import softplus
from handgrad.ops._reduction import reduce, scale
from handgrad.ops._registry import Derivative, Module, Op, register

# -- mse_loss --------------------------------------------------------------------------------------


class SquaredError(HandFunction):
    """L = Σ (x − t)² over the terms, reduced: ``torch.nn.functional.mse_loss``.

    ``x`` and ``t`` broadcast together to the shape (B) of the terms; ``reduction`` 'none' | 'mean' |
    'sum', 'mean' dividing by the number of terms n. (With a weight, ``mse_loss`` composes the rules
    of sub, pow, mul, sum and div, as PyTorch composes its ops.)
    """

    @staticmethod
    def forward(x, t, reduction):
        return torch.nn.functional.mse_loss(*torch.broadcast_tensors(x, t), reduction=reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, t, reduction = inputs
        ctx.save_for_backward(x, t)
        ctx.save_for_forward(x, t)
        ctx.reduction = reduction

    @staticmethod
    def backward(ctx, g):
        """dL/dx = 2 r (x − t) = −dL/dt.

        From each term (x − t)², with r = g ('sum'; one per term for 'none') or g / n ('mean'). Each
        gradient is summed back over the dimensions its input was broadcast along. Shapes: d = x − t
        (B); x, t broadcast to (B); g () or (B).
        """
        x, t = ctx.saved_tensors
        d = x - t                                                            # (B)
        d_L = d.mul_(2 * scale(g, ctx.reduction, d.numel()))                 # 2 r (x − t), (B), in d's buffer
        grad_x = d_L.sum_to_size(x.shape) if ctx.needs_input_grad[0] else None          # dL/dx, x's shape
        grad_t = d_L.neg().sum_to_size(t.shape) if ctx.needs_input_grad[1] else None    # dL/dt = −dL/dx
        return grad_x, grad_t, None

    @staticmethod
    def jvp(ctx, dx, dt, _):
        """Forward mode: dL = reduce(2 (x − t)(dx − dt))."""
        x, t = ctx.saved_tensors
        d = x - t
        d_diff = (0 if dx is None else dx) - (0 if dt is None else dt)       # d(x − t)
        return reduce(2 * d * d_diff, ctx.reduction, d.numel())


def _weighted_squared_error(input, target, weight, reduction):
    """L = reduce(w (x − t)²), / Σ w for 'mean': PyTorch's composite, written with handgrad's rules of
    sub, pow, mul, sum and div, whose chain gives dL/dx = 2 r w (x − t) = −dL/dt and
    dL/dw = r ((x − t)² − L) for the weighted mean (the derivation page works it out)."""
    import handgrad.functional as F

    terms = F.mul(F.pow(F.sub(*torch.broadcast_tensors(input, target)), 2), weight)
    if reduction == "none":
        return terms
    return F.sum(terms) if reduction == "sum" else F.div(F.sum(terms), F.sum(weight))


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """L = mean((input − target)²), their sum ('sum') or the squares themselves ('none'), each
    square weighted by ``weight`` when given, as ``torch.nn.functional.mse_loss``.

    Shapes: input and target broadcast together (PyTorch warns when their shapes differ, and so
    does this); weight has input's shape, and 'mean' then divides by Σ weight. Output: a scalar
    for 'mean' and 'sum', the broadcast shape for 'none'. Mixed dtypes are promoted as in PyTorch.
    Differentiable with respect to input, target and weight, as PyTorch's is.
    ``size_average`` and ``reduce`` are PyTorch's deprecated spellings of ``reduction``.
    """
    check_tensor("mse_loss", "input", input)
    check_tensor("mse_loss", "target", target)
    if target.shape != input.shape and not torch.compiler.is_compiling():    # Dynamo cannot trace a warning
        warnings.warn(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=2,
        )
    reduction = check_reduction("mse_loss", reduction, size_average, reduce)
    try:
        torch.broadcast_shapes(input.shape, target.shape)
    except RuntimeError:
        raise RuntimeError(
            f"mse_loss: target of shape {tuple(target.shape)} does not broadcast with input of shape "
            f"{tuple(input.shape)}; give them the same shape"
        ) from None
    # Weighted, PyTorch's loss is a composite of elementwise ops, of which autocast moves only pow to
    # float32, and only on CUDA.
    input, target = autocast(FLOAT32 if weight is None else FLOAT32_ON_CUDA, input, target)
    if weight is not None:
        check_tensor("mse_loss", "weight", weight)
        if weight.shape != input.shape:
            raise ValueError(
                f"mse_loss: weight must have the input's shape {tuple(input.shape)}, got {tuple(weight.shape)}"
            )
    dtype = torch.promote_types(input.dtype, target.dtype)
    dtype = dtype if weight is None else torch.promote_types(dtype, weight.dtype)
    if not dtype.is_floating_point:
        raise NotImplementedError(
            f"mse_loss: input and target must be floating point, got {input.dtype} and {target.dtype}"
        )
    # Half precision is computed in float32, as PyTorch's kernels do inside: one rounding at the end,
    # not one per operation (and none in the sums over broadcast dimensions).
    compute = computed_in(dtype)
    input, target = as_dtype(input, compute), as_dtype(target, compute)
    weight = None if weight is None else as_dtype(weight, compute)
    check_same_device("mse_loss", {"input": input, "target": target, "weight": weight})
    if weight is not None:
        return as_dtype(_weighted_squared_error(input, target, weight, reduction), dtype)
    return as_dtype(apply(SquaredError, input, target, reduction), dtype)


# -- binary_cross_entropy_with_logits ----------------------------------------------------------------


class SigmoidBinaryCrossEntropy(HandFunction):
    """ℓ = −w [p t log σ(x) + (1 − t) log(1 − σ(x))] per element, reduced: the binary cross-entropy
    of logits, ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``x`` logits and ``t`` targets (*); ``w`` (weight) and ``p`` (pos_weight) None or broadcastable
    to (*); ``reduction`` 'none' | 'mean' | 'sum', 'mean' dividing by the number of elements n.
    With ls = log σ(x) = −softplus(−x), finite for every finite x, and log(1 − σ(x)) = log σ(−x)
    = ls − x, each term is ℓ = w [(1 − t) x − (p t + 1 − t) ls].

    Returns ``(loss, ls)``: ls is what backward needs; it is returned rather than kept aside so
    that double backward differentiates through it (as ``SoftmaxCrossEntropy`` returns log p).
    x and t may differ in dtype (float64 logits, float32 labels): both are computed in ``_computed``'s
    dtype, and kept in their own.
    """

    @staticmethod
    def forward(x, t, w, p, reduction):
        x, t = _computed(x, t)
        ls = torch.nn.functional.logsigmoid(x)                              # log σ(x) = −softplus(−x)
        weighted = ls if p is None else ls * ((p - 1) * t + 1)               # (p t + 1 − t) ls
        if torch.compiler.is_compiling():    # no output made in place there: see linear._activate
            terms = (1 - t) * x - weighted
        else:
            terms = (1 - t).mul_(x).sub_(weighted)                           # (1 − t) x − (p t + 1 − t) ls
        if w is not None:
            terms = terms * w
        return reduce(terms, reduction, terms.numel()), ls

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, t, w, p, reduction = inputs
        _, ls = output
        ctx.save_for_backward(x, t, w, p)                    # ls is recomputed from x: it is x's size
        ctx.save_for_forward(x, t, w, p, ls)
        ctx.reduction = reduction
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_ls):
        """dL/dx = r w [(p t + 1 − t) σ(x) − p t], dL/dt = −r w [p log σ(x) − log(1 − σ(x))].

        From ℓ = w [(1 − t) x − (p t + 1 − t) ls] with dls/dx = 1 − σ(x):
        dℓ/dx = w [(1 − t) − (p t + 1 − t)(1 − σ)] = w [(p t + 1 − t) σ − p t] (σ − t when p = 1), and
        dℓ/dt = w [−x − (p − 1) ls] = −w [p ls − (ls − x)]; r = g (one per element for 'none') or
        g / n ('mean'). ls is computed again from x (``log_sigmoid``) rather than kept, and
        σ = exp(ls), so no built-in sigmoid (whose derivative is a backward kernel) enters the graph
        that double backward differentiates.
        g_ls, the gradient reaching ls, is non-zero only when this backward is itself
        differentiated: dL/dx += g_ls (1 − σ).
        Shapes: x, t, σ, ls (*); w, p broadcastable to (*); r () or (*).
        """
        x, t, w, p = ctx.saved_tensors
        dtypes = x.dtype, t.dtype
        x, t = _computed(x, t)
        ls = log_sigmoid(x)                                                  # log σ(x), (*)
        s = ls.exp()                                                         # σ(x), (*)
        grad_x = grad_t = None
        if g is not None:
            r = scale(g, ctx.reduction, x.numel())
            rw = r if w is None else r * w
            if ctx.needs_input_grad[0]:
                grad_x = _bce_slope_x(t, p, s).mul_(rw)                       # r w [(p t + 1 − t) σ − p t]
            if ctx.needs_input_grad[1]:
                grad_t = _bce_slope_t(x, p, ls).mul_(rw)                      # −r w [(p − 1) ls + x]
        if g_ls is not None and ctx.needs_input_grad[0]:
            through_ls = g_ls * (1 - s)                                      # g_ls dls/dx
            grad_x = through_ls if grad_x is None else grad_x + through_ls
        return as_dtype(grad_x, dtypes[0]), as_dtype(grad_t, dtypes[1]), None, None, None

    @staticmethod
    def jvp(ctx, dx, dt, *_):
        """Forward mode: dℓ = w [((p t + 1 − t) σ − p t) dx − ((p − 1) ls + x) dt], reduced; dls = (1 − σ) dx."""
        x, t, w, p, ls = ctx.saved_tensors
        x, t = _computed(x, t)
        dx, dt = (as_dtype(d, x.dtype) for d in (dx, dt))
        s = ls.exp()
        d_terms = 0
        if dx is not None:
            d_terms = _bce_slope_x(t, p, s) * dx
        if dt is not None:
            d_terms = d_terms + _bce_slope_t(x, p, ls) * dt
        if w is not None:
            d_terms = d_terms * w
        d_ls = torch.zeros_like(ls) if dx is None else (1 - s) * dx
        return reduce(d_terms, ctx.reduction, x.numel()), d_ls


def _computed(x, t):
    """Logits and targets in the dtype the loss is computed in: their promoted dtype, float32 for
    float16 and bfloat16 (as in mse_loss)."""
    dtype = computed_in(torch.promote_types(x.dtype, t.dtype))
    return as_dtype(x, dtype), as_dtype(t, dtype)


def log_sigmoid(x):
    """log σ(x) = −softplus(−x): the built-in's kernel, as forward computed it; where backward is
    itself differentiated, handgrad's softplus, so that the derivative stays hand-derived."""
    if not torch.is_grad_enabled():
        return torch.nn.functional.logsigmoid(x)
    return -softplus(-x)


def _bce_slope_x(t, p, s):
    """dℓ/dx / w = (p t + 1 − t) σ(x) − p t, (*); σ(x) − t without pos_weight. A new tensor."""
    if p is None:
        return s - t
    pt = p * t
    return (pt + 1 - t) * s - pt


def _bce_slope_t(x, p, ls):
    """dℓ/dt / w = −(x + (p − 1) log σ(x)), (*); −x without pos_weight. A new tensor."""
    return x.neg() if p is None else -(x + (p - 1) * ls)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """ℓ = −weight [pos_weight target log σ(input) + (1 − target) log(1 − σ(input))] elementwise,
    averaged ('mean'), summed or kept ('none'), as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Shapes: input and target (*), the same; weight and pos_weight broadcastable to (*) (e.g. (C,)
    for the last dimension, (C, 1, 1) for the channels of (N, C, H, W)). Output: a scalar for 'mean'
    and 'sum', (*) for 'none'. Differentiable with respect to input and target, not the weights.
    ``size_average`` and ``reduce`` are PyTorch's deprecated spellings of ``reduction``.
    """
    fn = "binary_cross_entropy_with_logits"
    reduction = check_reduction(fn, reduction, size_average, reduce)
    check_tensor(fn, "input", input)
    check_tensor(fn, "target", target)
    if target.shape != input.shape:
        raise ValueError(f"{fn}: target must have the input's shape {tuple(input.shape)}, got {tuple(target.shape)}")
    if not input.is_floating_point():
        raise NotImplementedError(f"{fn}: input (logits) must be floating point, got {input.dtype}")
    if not target.is_floating_point():
        raise RuntimeError(
            f"{fn}: target must be floating point (probabilities in [0, 1]), got {target.dtype}; "
            f"convert it with target.to(input.dtype)"
        )
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            continue
        check_tensor(fn, name, value)
        try:
            broadcasts = torch.broadcast_shapes(value.shape, input.shape) == input.shape
        except RuntimeError:
            broadcasts = False
        if not broadcasts:
            raise RuntimeError(
                f"{fn}: {name} of shape {tuple(value.shape)} does not broadcast to the input's shape "
                f"{tuple(input.shape)}"
            )
        if value.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(
                f"{fn}: the loss is not differentiable with respect to {name} (as in PyTorch); "
                f"pass {name}.detach() or a {name} that does not require grad"
            )
    input, target, weight, pos_weight = autocast(FLOAT32, input, target, weight, pos_weight)
    # Computed in the promoted dtype (the weights cast to it, the logits and targets kept in their
    # own); PyTorch's loss has the target's dtype, float32 for float64 logits and float32 labels
    # (torchvision's detectors compute those).
    dtype = target.dtype
    compute = computed_in(torch.promote_types(input.dtype, target.dtype))
    weight, pos_weight = (None if v is None else as_dtype(v, compute) for v in (weight, pos_weight))
    check_same_device(fn, {"input": input, "target": target, "weight": weight, "pos_weight": pos_weight})
    loss, _ = apply(SigmoidBinaryCrossEntropy, input, target, weight, pos_weight, reduction)
    return as_dtype(loss, dtype)


# -- registration ----------------------------------------------------------------------------------

register(Op(
    "mse_loss", mse_loss, (SquaredError,),
    Derivative("L = Σ w (x − t)², / n or / Σ w for 'mean'",
               "dL/dx = 2 r w (x − t), dL/dt = −dL/dx, dL/dw = r (x − t)² (− r L, weighted mean); weighted: the "
               "rules of sub, pow, mul, sum and div composed",
               "x, t, w broadcast to (B); r = g, g / n or g / Σ w"),
    modules={torch.nn.MSELoss: Module(lambda self, input, target: mse_loss(input, target, reduction=self.reduction))},
))

register(Op(
    "binary_cross_entropy_with_logits", binary_cross_entropy_with_logits, (SigmoidBinaryCrossEntropy,),
    Derivative("ℓ = −w [p t log σ(x) + (1 − t) log(1 − σ(x))]",
               "dL/dx = r w [(p t + 1 − t) σ(x) − p t], dL/dt = −r w [p log σ(x) − log(1 − σ(x))]",
               "x, t (*); w, p broadcast to (*); r = g or g / n"),
    modules={torch.nn.BCEWithLogitsLoss: Module(
        lambda self, input, target: binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction))},
))
